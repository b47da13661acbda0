"""
Road warriors (RFC 7296 2.19, 3.15) in network namespaces on this host:
strongSwan's charon (kernel-libipsec) on host b asks ikedtx on host a (the
user-space datapath) for a virtual IP (C{vips = 0.0.0.0}); ikedtx lends one
from its C{config address} pool, narrows the Child SA to it, and a ping
from that address reaches host a's inner address through ESP.
"""

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab.charon import Auth, Child, Connection, Secret

from ikedtx.testing.lab import poll

from tests.interop import A, A_INNER, B, B_INNER, PSK
from tests.test_interop_userspace import UserspaceMixin, ping

POOL = "10.77.0.0/29"
DNS = "10.1.0.53"


def serverPolicy(pool=POOL):
    """
    ikedtx on host a, serving any peer identity with an address of C{pool}.
    """
    return ('ikev2 "rw" passive esp from %s to dynamic local %s srcid %s psk "%s" '
            'config address %s config name-server %s\n' % (A_INNER, A, A, PSK, pool, DNS))


class CharonRoadWarriorTests(UserspaceMixin, TestCase):
    """
    charon as road-warrior client, ikedtx as gateway with a pool.
    """

    def startClient(self, identity=B, vips=("0.0.0.0",)):
        charon = self.charon(self.b, libipsec=True)
        charon.addSecret(Secret(PSK, ids=[A, identity]))
        charon.addConnection(Connection(
            "rw", local_addrs=[B], remote_addrs=[A], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("psk", id=identity), remote=Auth("psk", id=A), vips=list(vips),
            children=[Child("net", local_ts=["dynamic"], remote_ts=[A_INNER + "/32"], esp_proposals=["aes128gcm16"])]))
        charon.start()
        return charon

    def test_virtualIPAndPing(self):
        """
        charon gets the pool's first address and the name server; both sides
        hold a Child SA between that address and host a's inner address, and
        a ping from it is answered through the user-space datapath.
        """
        self.hosts()
        ours = self.startOurs(self.a, serverPolicy(), A)
        charon = self.startClient()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertSameSAs(ours, charon)
        self.labAssertEqual(theirs.get("local-vips"), ["10.77.0.1"], "charon's virtual IPs: %r" % (theirs,))
        self.labAssertEqual(mine.get("vips"), "10.77.0.1", "ikectl show sa: %r" % (mine,))
        (child,) = theirs["child-sas"]
        self.labAssertEqual((child["local-ts"], child["remote-ts"]), (["10.77.0.1/32"], [A_INNER + "/32"]),
                            "charon's Child SA: %r" % (child,))
        got = ping(self.b, "10.77.0.1", A_INNER, 3)
        self.labAssertEqual(got, 3, "ping 10.77.0.1 -> %s from charon's virtual IP" % (A_INNER,))

    def test_severalClients(self):
        """
        Four road warriors with their own identities (four connections of
        one charon) each get their own address of a pool of two, until it
        is exhausted: the third and fourth are answered
        INTERNAL_ADDRESS_FAILURE (RFC 7296 3.15.4) and get no Child SA;
        each address that was lent pings through the tunnel.
        """
        self.hosts()
        self.startOurs(self.a, serverPolicy(pool="10.77.0.0/30"), A)
        charon = self.charon(self.b, libipsec=True)
        names = ["rw%d.example" % (n,) for n in range(4)]
        charon.addSecret(Secret(PSK, ids=[A] + names))
        for n, name in enumerate(names):
            # (A dot would split a swanctl.conf section name.)
            charon.addConnection(Connection(
                "rw%d" % (n,), local_addrs=[B], remote_addrs=[A], proposals=["aes128gcm16-prfsha256-x25519"],
                local=Auth("psk", id=name), remote=Auth("psk", id=A), vips=["0.0.0.0"],
                children=[Child("net%d" % (n,), local_ts=["dynamic"], remote_ts=[A_INNER + "/32"],
                                esp_proposals=["aes128gcm16"])]))
        charon.start()
        results = [charon.initiate(child="net%d" % (n,))[0] for n in range(len(names))]
        self.labAssertEqual(results, [True, True, False, False], "charon's initiates")
        vips = {}
        for sa in charon.listSas():
            # The refused ones may keep an IKE SA without a Child SA.
            if sa["child-sas"] or sa.get("local-vips"):
                vips[sa["local-id"]] = (sa.get("local-vips"), len(sa["child-sas"]))
        self.labAssertEqual(vips, {names[0]: (["10.77.0.1"], 1), names[1]: (["10.77.0.2"], 1)},
                            "charon's IKE SAs: %r" % (charon.listSas(),))
        self.labAssert("INTERNAL_ADDRESS_FAILURE" in open(charon.logPath).read(), "charon saw no INTERNAL_ADDRESS_FAILURE")
        for address in ("10.77.0.1", "10.77.0.2"):
            self.labAssertEqual(ping(self.b, address, A_INNER, 2), 2, "ping %s -> %s" % (address, A_INNER))

    def test_fiftyClients(self):
        """
        Fifty road warriors (fifty connections of one charon, each its own
        identity) get fifty different addresses of one pool, and a ping from
        each address is answered through the user-space datapath.
        """
        count = 50
        self.hosts()
        ours = self.startOurs(self.a, serverPolicy(pool="10.77.0.0/26"), A)
        charon = self.charon(self.b, libipsec=True)
        names = ["rw%d.example" % (n,) for n in range(count)]
        charon.addSecret(Secret(PSK, ids=[A] + names))
        for n, name in enumerate(names):
            charon.addConnection(Connection(
                "rw%d" % (n,), local_addrs=[B], remote_addrs=[A], proposals=["aes128gcm16-prfsha256-x25519"],
                local=Auth("psk", id=name), remote=Auth("psk", id=A), vips=["0.0.0.0"],
                children=[Child("net%d" % (n,), local_ts=["dynamic"], remote_ts=[A_INNER + "/32"],
                                esp_proposals=["aes128gcm16"])]))
        charon.start()
        failed = [n for n in range(count) if not charon.initiate(child="net%d" % (n,))[0]]
        self.labAssertEqual(failed, [], "charon's initiates that failed")
        vips = sorted(sa["local-vips"][0] for sa in charon.listSas() if sa.get("local-vips"))
        self.labAssertEqual(vips, sorted("10.77.0.%d" % (n,) for n in range(1, count + 1)), "charon's addresses")
        self.labAssertEqual(len(ours.showSa()), count, "ikedtx's IKE SAs")
        unanswered = [address for address in vips if ping(self.b, address, A_INNER, 1) != 1]
        self.labAssertEqual(unanswered, [], "addresses whose ping went unanswered")


class IkedtxClientTests(UserspaceMixin, TestCase):
    """
    ikedtx as road-warrior client (C{request address any}) against charon
    with a pool (C{pools} in swanctl.conf).
    """

    def test_clientGetsAddress(self):
        """
        ikedtx asks for an address, charon lends the first of its pool;
        ikedtx puts it on its TUN device, uses it as its selector, a ping
        from it to charon's inner address is answered, and the address is
        gone from the device once the IKE SA is deleted.
        """
        self.hosts()
        charon = self.charon(self.b, libipsec=True)
        charon.addSecret(Secret(PSK, ids=[A, B]))
        charon.addPool("rw", "10.88.0.0/29", dns=["10.2.0.53"])
        charon.addConnection(Connection(
            "rw", local_addrs=[B], remote_addrs=[A], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("psk", id=B), remote=Auth("psk", id=A), pools=["rw"],
            children=[Child("net", local_ts=[B_INNER + "/32"], remote_ts=["dynamic"], esp_proposals=["aes128gcm16"])]))
        charon.start()
        ours = self.startOurs(self.a, 'ikev2 "peer" passive esp from dynamic to %s local %s peer %s childsa enc aes-128-gcm '
                                      'srcid %s dstid %s psk "%s" request address any request name-server any\n'
                              % (B_INNER, A, B, A, B, PSK), A)
        ours.initiate("peer")
        mine, theirs = self.assertSameSAs(ours, charon)
        self.labAssertEqual(theirs.get("remote-vips"), ["10.88.0.1"], "charon lent: %r" % (theirs,))
        (child,) = theirs["child-sas"]
        self.labAssertEqual(child["remote-ts"], ["10.88.0.1/32"], "charon's Child SA: %r" % (child,))
        addresses = self.a.run(["ip", "-o", "addr", "show", "dev", "ipsec0"], check=False).stdout
        self.labAssert("10.88.0.1/32" in addresses, "10.88.0.1 on ipsec0: %r" % (addresses,))
        got = ping(self.a, "10.88.0.1", B_INNER, 3)
        self.labAssertEqual(got, 3, "ping 10.88.0.1 -> %s from our virtual IP" % (B_INNER,))
        ours.deleteIkeSA(mine["spiI"])

        def gone():
            return "10.88.0.1" not in self.a.run(["ip", "-o", "addr", "show", "dev", "ipsec0"], check=False).stdout

        poll(gone, 5.0, interval=0.1, what=lambda: "10.88.0.1 off ipsec0\n" + self.labReport())

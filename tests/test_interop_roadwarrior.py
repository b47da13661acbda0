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
from tests.test_interop_userspace import USERSPACE, UserspaceMixin, ping

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
        (child,) = theirs["child-sas"]
        self.labAssertEqual((child["local-ts"], child["remote-ts"]), (["10.77.0.1/32"], [A_INNER + "/32"]),
                            "charon's Child SA: %r" % (child,))
        got = ping(self.b, "10.77.0.1", A_INNER, 3)
        self.labAssertEqual(got, 3, "ping 10.77.0.1 -> %s from charon's virtual IP" % (A_INNER,))


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

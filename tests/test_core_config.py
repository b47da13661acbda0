"""
Tests for configuration payloads and address pools (L{ikedtx.core.tasks.config},
L{ikedtx.core.pools}): road-warrior clients pumped against a server core with
a pool, one datagram at a time, with a fake clock (RFC 7296 2.19, 3.15).
"""

from ipaddress import ip_address, ip_network

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import parseConfig
from ikedtx.core.actions import AddVirtualAddress, RemoveVirtualAddress
from ikedtx.core.errors import NegotiationFailed, TrafficSelectorsUnacceptable
from ikedtx.core.pools import AddressPool, AddressPools, PoolExhausted
from ikedtx.core.timers import TimerKey
from ikedtx.core.ts import TrafficSelector
from ikedtx.wire.constants import ConfigurationAttribute as CfgAttr
from ikedtx.wire.constants import ConfigurationType, ExchangeType, NotifyType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify
from ikedtx.wire.payloads.cp import Configuration, ConfigurationAttribute

from tests.corehelpers import CoreTestCase, Host, Network

SERVER = "192.0.2.2"
CLIENTS = ["192.0.2.%d" % (n,) for n in (11, 12, 13, 14)]


def serverConfig(pool="10.77.0.0/29", extra="config name-server 10.2.0.53 config netbios-server 10.2.0.54 "
                 "config address 2001:db8:77::/64", settings=""):
    return parseConfig('%s\nikev2 "rw" passive esp from 10.2.0.0/24 to dynamic local %s srcid server.example '
                       'psk "secret" config address %s %s' % (settings, SERVER, pool, extra))


def clientConfig(address, name, request="request address any request name-server any"):
    return parseConfig('ikev2 "c" active esp from dynamic to 10.2.0.0/24 local %s peer %s srcid %s '
                       'dstid server.example psk "secret" %s' % (address, SERVER, name, request))


class RoadWarriorTests(CoreTestCase):
    """
    Clients with C{request address any} against a server with
    C{config address NET/PREFIX}.
    """

    def setUp(self):
        self.network = Network()
        self.server = Host(self.network, SERVER, serverConfig())
        self.clients = {}

    def client(self, n, name=None):
        address = CLIENTS[n]
        host = self.clients.get(n)
        if host is None:
            host = self.clients[n] = Host(self.network, address, clientConfig(address, name or "c%d.example" % (n,)))
        return host

    def connect(self, n, name=None):
        host = self.client(n, name)
        requestId = host.initiate("c")
        self.network.pump()
        return host, requestId

    def serverSAOf(self, host):
        return next(sa for sa in self.server.ikeSAs if str(sa.remote[0]) == host.address)

    def test_addressAssigned(self):
        """
        RFC 7296 2.19: the CFG_REQUEST in IKE_AUTH is answered with a
        CFG_REPLY holding an address of the pool (the first host address),
        the configured name and NetBIOS servers; the Child SA's selectors on
        both sides are narrowed to that address (the C{dynamic} flow).
        """
        host, requestId = self.connect(0)
        ikeSA = self.assertSucceeded(host, requestId)
        self.assertEqual(ikeSA.localVirtualIPs, [ip_address("10.77.0.1")])
        self.assertIn(("INTERNAL_IP4_DNS", ip_address("10.2.0.53"), None), ikeSA.peerConfig)
        (child,) = ikeSA.children
        self.assertEqual(list(child.localTS), [TrafficSelector.fromNetwork("10.77.0.1/32")])
        self.assertEqual(list(child.remoteTS), [TrafficSelector.fromNetwork("10.2.0.0/24")])
        serverSA = self.serverSAOf(host)
        self.assertEqual(serverSA.peerVirtualIPs, [ip_address("10.77.0.1")])
        (serverChild,) = serverSA.children
        self.assertEqual(list(serverChild.remoteTS), [TrafficSelector.fromNetwork("10.77.0.1/32")])
        # The request asked for an address and a name server; the reply has
        # the IPv4 address (no IPv6 one was asked for) and the served options.
        request, reply = self.authMessages()
        self.assertEqual(request.cfgType, ConfigurationType.CFG_REQUEST)
        self.assertEqual([(a.attributeType, a.value) for a in request.attributes],
                         [(CfgAttr.INTERNAL_IP4_ADDRESS, b""), (CfgAttr.INTERNAL_IP4_DNS, b"")])
        self.assertEqual(reply.cfgType, ConfigurationType.CFG_REPLY)
        self.assertEqual([(a.attributeType, a.address) for a in reply.attributes],
                         [(CfgAttr.INTERNAL_IP4_ADDRESS, ip_address("10.77.0.1")),
                          (CfgAttr.INTERNAL_IP4_DNS, ip_address("10.2.0.53")),
                          (CfgAttr.INTERNAL_IP4_NBNS, ip_address("10.2.0.54"))])

    def authMessages(self):
        """
        The CP payloads of the IKE_AUTH request (decrypted by the server's
        IKE SA) and response (by the client's).
        """
        host = self.clients[0]
        cps = []
        for data, source, destination in self.network.delivered:
            message = Message.decode(data)
            if message.exchangeType != ExchangeType.IKE_AUTH:
                continue
            ikeSA = host.ikeSAs[0] if message.isResponse else self.serverSAOf(host)
            cps += [p for p in message.decrypt(ikeSA.cipherIn) if isinstance(p, Configuration)]
        self.assertEqual(len(cps), 2)
        return cps

    def test_eachClientItsAddress(self):
        """
        Two identities get two different addresses of the pool.
        """
        a, ra = self.connect(0)
        b, rb = self.connect(1)
        self.assertEqual(self.assertSucceeded(a, ra).localVirtualIPs, [ip_address("10.77.0.1")])
        self.assertEqual(self.assertSucceeded(b, rb).localVirtualIPs, [ip_address("10.77.0.2")])
        self.assertEqual(sorted(self.server.core.pools.pool(ip_network("10.77.0.0/29")).leases),
                         [ip_address("10.77.0.1"), ip_address("10.77.0.2")])

    def test_releasedOnDelete(self):
        """
        The address goes back to the pool when the IKE SA is deleted, and
        the same identity gets it again when it reconnects, while another
        identity connecting in between gets another one.
        """
        a, ra = self.connect(0)
        ikeSA = self.assertSucceeded(a, ra)
        pool = self.server.core.pools.pool(ip_network("10.77.0.0/29"))
        self.assertIn(ip_address("10.77.0.1"), pool.leases)
        a.command(a.core.deleteIKESA, ikeSA)
        self.network.pump()
        self.assertEqual(self.server.ikeSAs, [])
        self.assertEqual(pool.leases, {})
        b, rb = self.connect(1)
        self.assertEqual(self.assertSucceeded(b, rb).localVirtualIPs, [ip_address("10.77.0.2")])
        requestId = a.initiate("c")
        self.network.pump()
        self.assertEqual(self.assertSucceeded(a, requestId).localVirtualIPs, [ip_address("10.77.0.1")])

    def test_virtualAddressInstalledAndRemoved(self):
        """
        The client asks its datapath to put the lent address on the policy's
        C{iface} once the CFG_REPLY is in (before the Child SA is installed,
        whose selectors hold it), and to take it off when the IKE SA goes;
        the server asks for nothing.
        """
        host = self.clients[0] = Host(self.network, CLIENTS[0], parseConfig(
            'ikev2 "c" active esp from dynamic to 10.2.0.0/24 local %s peer %s srcid c0.example '
            'dstid server.example psk "secret" request address any iface lo' % (CLIENTS[0], SERVER)))
        requestId = host.initiate("c")
        self.network.pump()
        ikeSA = self.assertSucceeded(host, requestId)
        added = AddVirtualAddress(ip_address("10.77.0.1"), "lo")
        kinds = [type(e).__name__ for e in host.events if type(e).__name__ in ("AddVirtualAddress", "InstallChildSA")]
        self.assertEqual(kinds, ["AddVirtualAddress", "InstallChildSA"])
        self.assertEqual(host.eventsOf(AddVirtualAddress), [added])
        self.assertEqual(self.server.eventsOf(AddVirtualAddress), [])
        host.command(host.core.deleteIKESA, ikeSA)
        self.network.pump()
        self.assertEqual(host.eventsOf(RemoveVirtualAddress), [RemoveVirtualAddress(ip_address("10.77.0.1"), "lo")])

    def test_exhausted(self):
        """
        RFC 7296 3.15.4: with the pool exhausted the server answers
        INTERNAL_ADDRESS_FAILURE and creates no Child SA (no other Notify),
        the IKE SA stays; the client's command fails.
        """
        self.server = Host(self.network, SERVER, serverConfig(pool="10.77.0.0/30", extra=""))
        a, ra = self.connect(0)
        b, rb = self.connect(1)
        self.assertSucceeded(a, ra)
        self.assertSucceeded(b, rb)
        c, rc = self.connect(2)
        self.assertFailedWith(c, rc, NegotiationFailed)
        serverSA = self.serverSAOf(c)
        self.assertEqual(serverSA.peerVirtualIPs, [])
        self.assertEqual(serverSA.children, [])
        self.assertTrue(serverSA.isEstablished)
        message = Message.decode(self.network.delivered[-1][0])
        self.assertEqual((message.exchangeType, message.isResponse), (ExchangeType.IKE_AUTH, True))
        notifies = [p.notifyType for p in message.decrypt(c.ikeSAs[0].cipherIn) if isinstance(p, Notify) and p.notifyType < 16384]
        # The only error Notify: no TS_UNACCEPTABLE for the Child SA next to it.
        self.assertEqual(notifies, [NotifyType.INTERNAL_ADDRESS_FAILURE])
        self.assertEqual(len(self.server.core.pools.pool(ip_network("10.77.0.0/30")).leases), 2)

    def test_requestIgnoredWithoutConfig(self):
        """
        A policy that serves no configuration ignores a CFG_REQUEST (RFC
        7296 3.15: it may); its C{dynamic} flow then has no address and the
        Child SA is refused.
        """
        self.server = Host(self.network, SERVER, parseConfig(
            'ikev2 "rw" passive esp from 10.2.0.0/24 to 10.9.0.0/24 local %s srcid server.example psk "secret"'
            % (SERVER,)))
        host = self.clients[0] = Host(self.network, CLIENTS[0], parseConfig(
            'ikev2 "c" active esp from 10.9.0.0/24 to 10.2.0.0/24 local %s peer %s srcid c0.example '
            'dstid server.example psk "secret" request address any' % (CLIENTS[0], SERVER)))
        requestId = host.initiate("c")
        self.network.pump()
        ikeSA = self.assertSucceeded(host, requestId)
        self.assertEqual(ikeSA.localVirtualIPs, [])
        self.assertEqual(len(ikeSA.children), 1)

    def test_dynamicWithoutRequest(self):
        """
        A client that asks for no address gets no Child SA under a policy
        whose peer side is C{dynamic}: TS_UNACCEPTABLE (RFC 7296 2.9), the
        IKE SA stays.
        """
        host = self.clients[0] = Host(self.network, CLIENTS[0], parseConfig(
            'ikev2 "c" active esp from 10.9.0.0/24 to 10.2.0.0/24 local %s peer %s srcid c0.example '
            'dstid server.example psk "secret"' % (CLIENTS[0], SERVER)))
        requestId = host.initiate("c")
        self.network.pump()
        self.assertFailedWith(host, requestId, TrafficSelectorsUnacceptable)
        self.assertTrue(self.serverSAOf(host).isEstablished)
        self.assertEqual(self.serverSAOf(host).children, [])

    def test_ipv6Address(self):
        """
        An INTERNAL_IP6_ADDRESS request gets an address of the IPv6 pool
        with its prefix length (RFC 7296 3.15.1).
        """
        host = self.clients[0] = Host(self.network, CLIENTS[0], parseConfig(
            'ikev2 "c" active esp from dynamic to 10.2.0.0/24 local %s peer %s srcid c0.example '
            'dstid server.example psk "secret" request address any request address ::' % (CLIENTS[0], SERVER)))
        requestId = host.initiate("c")
        self.network.pump()
        ikeSA = self.assertSucceeded(host, requestId)
        self.assertEqual(ikeSA.localVirtualIPs, [ip_address("10.77.0.1"), ip_address("2001:db8:77::1")])
        self.assertEqual(self.serverSAOf(host).peerVirtualIPs, ikeSA.localVirtualIPs)

    def test_ikeRekeyKeepsLease(self):
        """
        An IKE SA rekey moves the lease to the new IKE SA: deleting the old
        one frees nothing, deleting the new one frees the address.
        """
        a, ra = self.connect(0)
        ikeSA = self.assertSucceeded(a, ra)
        pool = self.server.core.pools.pool(ip_network("10.77.0.0/29"))
        a.execute(a.core.timerExpired(TimerKey.ikeRekey(ikeSA.localSPI)))
        self.network.pump()
        self.assertEqual(len(self.server.ikeSAs), 1)
        self.assertEqual(list(pool.leases), [ip_address("10.77.0.1")])
        (new,) = self.server.ikeSAs
        self.assertEqual(new.peerVirtualIPs, [ip_address("10.77.0.1")])
        (client,) = a.ikeSAs
        self.assertEqual(client.localVirtualIPs, [ip_address("10.77.0.1")])
        # The old client IKE SA went without taking the address off.
        self.assertEqual(a.eventsOf(RemoveVirtualAddress), [])
        a.command(a.core.deleteIKESA, client)
        self.network.pump()
        self.assertEqual(pool.leases, {})
        self.assertEqual(a.eventsOf(RemoveVirtualAddress), [RemoveVirtualAddress(ip_address("10.77.0.1"), None)])


    def test_staticAndSubnets(self):
        """
        A static C{config address} (no prefix) is lent as it is (RFC 7296
        3.15.1); C{protected-subnet} goes as INTERNAL_IP4_SUBNET with its
        netmask and C{access-server} as iked's private INTERNAL_IP4_SERVER.
        """
        self.server = Host(self.network, SERVER, parseConfig(
            'ikev2 "rw" passive esp from 10.2.0.0/24 to dynamic local %s srcid server.example psk "secret" '
            'config address 10.66.0.7 config protected-subnet 10.3.0.0/16 config access-server 10.2.0.9 '
            'config netmask 255.255.0.0' % (SERVER,)))
        host, requestId = self.connect(0)
        ikeSA = self.assertSucceeded(host, requestId)
        self.assertEqual(ikeSA.localVirtualIPs, [ip_address("10.66.0.7")])
        self.assertEqual(sorted(ikeSA.peerConfig, key=str), sorted([
            ("INTERNAL_IP4_SUBNET", ip_address("10.3.0.0"), 16),
            ("INTERNAL_IP4_SERVER", ip_address("10.2.0.9"), None),
            ("INTERNAL_IP4_NETMASK", ip_address("255.255.0.0"), None)], key=str))
        self.assertEqual([ts for ts in ikeSA.children[0].localTS], [TrafficSelector.fromNetwork("10.66.0.7/32")])
    def test_leasesSurviveReload(self):
        """
        A reload that keeps the pool keeps its leases: the next client gets
        the next address, not the one lent before the reload.
        """
        a, ra = self.connect(0)
        self.assertSucceeded(a, ra)
        self.server.execute(self.server.core.reload(serverConfig()))
        b, rb = self.connect(1)
        self.assertEqual(self.assertSucceeded(b, rb).localVirtualIPs, [ip_address("10.77.0.2")])

    def test_retransmittedRequestLendsOnce(self):
        """
        A retransmitted IKE_AUTH request is answered from the response cache
        (RFC 7296 2.1): no second address is lent.
        """
        host = self.client(0)
        requestId = host.initiate("c")
        self.network.deliverOne()
        self.network.deliverOne()
        (authRequest, source, destination) = self.network.inFlight[0]
        self.network.deliverOne()
        self.network.inFlight.append((authRequest, source, destination))
        self.network.pump()
        self.assertSucceeded(host, requestId)
        self.assertEqual(list(self.server.core.pools.pool(ip_network("10.77.0.0/29")).leases),
                         [ip_address("10.77.0.1")])


class AddressPoolTests(SynchronousTestCase):
    """
    L{AddressPool} on its own.
    """

    def test_skipsNetworkAndBroadcast(self):
        pool = AddressPool(ip_network("10.0.0.0/30"))
        self.assertEqual(len(pool), 2)
        self.assertEqual(pool.acquire("a", 1), ip_address("10.0.0.1"))
        self.assertEqual(pool.acquire("b", 2), ip_address("10.0.0.2"))
        self.assertRaises(PoolExhausted, pool.acquire, "c", 3)

    def test_hostPool(self):
        pool = AddressPool(ip_network("10.0.0.7/32"))
        self.assertEqual(pool.acquire("a", 1), ip_address("10.0.0.7"))
        self.assertRaises(PoolExhausted, pool.acquire, "b", 2)

    def test_sticky(self):
        """
        With C{stickyaddress} a second IKE SA of the same identity shares its
        address; the address is free only when both are gone.
        """
        pool = AddressPool(ip_network("10.0.0.0/29"))
        first, second = object(), object()
        self.assertEqual(pool.acquire("a", first, sticky=True), ip_address("10.0.0.1"))
        self.assertEqual(pool.acquire("a", second, sticky=True), ip_address("10.0.0.1"))
        self.assertEqual(pool.release(first), [])
        self.assertEqual(pool.release(second), [ip_address("10.0.0.1")])

    def test_notSticky(self):
        pool = AddressPool(ip_network("10.0.0.0/29"))
        self.assertEqual(pool.acquire("a", 1), ip_address("10.0.0.1"))
        self.assertEqual(pool.acquire("a", 2), ip_address("10.0.0.2"))

    def test_rememberedForReturningIdentity(self):
        pool = AddressPool(ip_network("10.0.0.0/29"))
        pool.acquire("a", 1)
        pool.release(1)
        self.assertEqual(pool.acquire("b", 2), ip_address("10.0.0.2"))
        self.assertEqual(pool.acquire("a", 3), ip_address("10.0.0.1"))

    def test_largeIPv6Pool(self):
        """
        A /64 is not walked through: the scan is bounded by what is lent.
        """
        pool = AddressPool(ip_network("2001:db8::/64"))
        self.assertEqual([pool.acquire(str(n), n) for n in range(3)],
                         [ip_address("2001:db8::%d" % (n,)) for n in (1, 2, 3)])


    def test_shares(self):
        """
        The shares of two workers in one /29 (six usable addresses) lend
        three addresses each, never the same one, and each runs out on its
        own.
        """
        network = ip_network("10.0.0.0/29")
        first, second = AddressPool(network, (0, 2)), AddressPool(network, (1, 2))
        self.assertEqual((len(first), len(second)), (3, 3))
        lent = [[pool.acquire("%d-%d" % (i, n), (i, n)) for n in range(3)] for i, pool in enumerate((first, second))]
        self.assertEqual(lent, [[ip_address("10.0.0.%d" % (n,)) for n in (1, 3, 5)],
                                [ip_address("10.0.0.%d" % (n,)) for n in (2, 4, 6)]])
        self.assertRaises(PoolExhausted, first.acquire, "x", "x")
        self.assertRaises(PoolExhausted, second.acquire, "y", "y")
        self.assertEqual(len(AddressPool(ip_network("10.0.0.7/32"), (1, 2))), 0)
        self.assertRaises(ValueError, AddressPool, network, (2, 2))

    def test_shareRemembers(self):
        """
        A returning identity gets its address again within a share; a
        /64's share is not walked through either.
        """
        pool = AddressPool(ip_network("2001:db8::/64"), (2, 3))
        self.assertEqual(pool.acquire("a", 1), ip_address("2001:db8::3"))
        self.assertEqual(pool.acquire("b", 2), ip_address("2001:db8::6"))
        self.assertEqual(pool.release(1), [ip_address("2001:db8::3")])
        self.assertEqual(pool.acquire("c", 3), ip_address("2001:db8::9"))
        self.assertEqual(pool.acquire("a", 4), ip_address("2001:db8::3"))

    def test_transferThenRelease(self):
        """
        After a rekey the new IKE SA holds the lease: releasing the old one
        frees nothing, releasing the new one frees the address; a sticky
        identity's second holder keeps it until it goes too.
        """
        pool = AddressPool(ip_network("10.0.0.0/29"))
        old, new, other = object(), object(), object()
        address = pool.acquire("a", old, sticky=True)
        pool.transfer(old, new)
        self.assertEqual(pool.release(old), [])
        self.assertEqual(pool.acquire("a", other, sticky=True), address)
        self.assertEqual(pool.release(new), [])
        self.assertEqual(pool.release(other), [address])
        self.assertEqual((pool.leases, pool._byHolder, pool._byIdentity), ({}, {}, {}))

    def test_poolsShare(self):
        """
        L{AddressPools.setShare} makes every pool lend one worker's share;
        refused once an address is lent.
        """
        pools = AddressPools()
        pools.setShare(1, 2)
        self.assertEqual(pools.pool(ip_network("10.0.0.0/29")).acquire("a", 1), ip_address("10.0.0.2"))
        self.assertRaises(ValueError, pools.setShare, 0, 2)


class DynamicPlaceholderTests(SynchronousTestCase):
    """
    The C{0.0.0.0/32} that stands for a C{dynamic} side is not an address:
    not a peer to initiate to, nor a trap flow's selector.
    """

    def test_notAPeer(self):
        """
        A policy without C{peer} whose C{to} is C{dynamic} has no peer address
        (it is not a host-to-host flow to 0.0.0.0).
        """
        from ikedtx.core.policy import peerAddressOf

        (policy,) = serverConfig().policies
        self.assertIsNone(peerAddressOf(policy))

    def test_noTrapFlows(self):
        """
        No trap flow covers a C{dynamic} side: the road-warrior server has
        none, and the client only its non-dynamic flows (here none either).
        """
        from ikedtx.core.engine import IKECore
        from ikedtx.core.trap import trapFlows

        server = IKECore(serverConfig(), localAddressFor=lambda peer: SERVER)
        self.assertEqual(trapFlows(server), [])
        client = IKECore(clientConfig(CLIENTS[0], "c0.example"), localAddressFor=lambda peer: CLIENTS[0])
        self.assertEqual(trapFlows(client), [])


class _Core:
    def __init__(self):
        self.emitted = []

    def emit(self, action):
        self.emitted.append(action)


class _IKESA:
    def __init__(self, policy):
        self.policy = policy
        self.localVirtualIPs = []
        self.peerConfig = []


class ReplyTests(SynchronousTestCase):
    """
    What the initiator keeps of a CFG_REPLY (RFC 7296 3.15.1).
    """

    def process(self, attributes, cfgType=ConfigurationType.CFG_REPLY):
        from ikedtx.core.tasks.config import ConfigTask

        (policy,) = clientConfig(CLIENTS[0], "c0.example").policies
        core, ikeSA = _Core(), _IKESA(policy)
        ConfigTask(True).processI(core, ikeSA, None, [Configuration(cfgType, attributes)], None, None)
        return core, ikeSA

    def test_unusableAddressesIgnored(self):
        """
        An unspecified or multicast INTERNAL_IP4_ADDRESS, or an empty one, is
        not taken (nor put on an interface); a good one next to them is.
        """
        core, ikeSA = self.process([
            ConfigurationAttribute(CfgAttr.INTERNAL_IP4_ADDRESS, b""),
            ConfigurationAttribute.fromAddress(CfgAttr.INTERNAL_IP4_ADDRESS, "0.0.0.0"),
            ConfigurationAttribute.fromAddress(CfgAttr.INTERNAL_IP4_ADDRESS, "224.0.0.1"),
            ConfigurationAttribute.fromAddress(CfgAttr.INTERNAL_IP4_ADDRESS, "10.5.0.9"),
        ])
        self.assertEqual(ikeSA.localVirtualIPs, [ip_address("10.5.0.9")])
        self.assertEqual(core.emitted, [AddVirtualAddress(ip_address("10.5.0.9"), None)])

    def test_unknownAttributesIgnored(self):
        """
        Attributes we do not know (a private-use type, APPLICATION_VERSION)
        are ignored; the known ones are kept.
        """
        core, ikeSA = self.process([
            ConfigurationAttribute(16400, b"\x01\x02"),
            ConfigurationAttribute(CfgAttr.APPLICATION_VERSION, b"gw 1.0"),
            ConfigurationAttribute.fromAddress(CfgAttr.INTERNAL_IP4_DNS, "10.2.0.53"),
        ])
        self.assertEqual(ikeSA.localVirtualIPs, [])
        self.assertEqual(ikeSA.peerConfig, [("INTERNAL_IP4_DNS", ip_address("10.2.0.53"), None)])

    def test_notAReply(self):
        """
        A CFG_SET (or CFG_REQUEST) in the response is not a reply: nothing
        is taken from it.
        """
        core, ikeSA = self.process([ConfigurationAttribute.fromAddress(CfgAttr.INTERNAL_IP4_ADDRESS, "10.5.0.9")],
                                   ConfigurationType.CFG_SET)
        self.assertEqual((ikeSA.localVirtualIPs, core.emitted), ([], []))


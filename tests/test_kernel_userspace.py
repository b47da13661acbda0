"""
Tests for L{ikedtx.kernel.userspace}: the user-space ESP datapath, in
memory. Two providers with fake TUN devices and route tables are wired
back to back through their C{sendUdp} and C{espReceived}, with time from
a L{task.Clock}.
"""

import struct
from dataclasses import replace
from ipaddress import ip_address, ip_network

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ikedtx.kernel import esp
from ikedtx.kernel.interfaces import (IDatapathEvents, IKernel, KernelError, KernelFlow, KernelSA, KernelSAUsage,
                                      KernelSelector)
from ikedtx.kernel.userspace import (ACQUIRE_HOLD, NO_FLOW, NO_SA, NO_TRANSPORT, IRouteTable, ITunDevice,
                                     UserspaceKernel, parsePacket)
from ikedtx.wire.constants import EncrId, IntegId, ProtocolId

from tests.corehelpers import DeterministicRandom
from tests.test_kernel_esp import ipv4

A, B = ip_address("192.0.2.1"), ip_address("192.0.2.2")
A_NET, B_NET = ip_network("10.1.0.0/24"), ip_network("10.2.0.0/24")


@implementer(ITunDevice)
class FakeTun:
    """
    A TUN device in memory: C{written} holds what the provider handed to
    the host's stack.
    """

    name = "ipsec0"

    def __init__(self):
        self.written = []
        self.opened = 0
        self.closed = 0
        self.full = False
        self.pending = []

    def open(self):
        self.opened += 1
        return None

    def read(self):
        return self.pending.pop(0) if self.pending else None

    def write(self, packet):
        if self.full:
            return False
        self.written.append(packet)
        return True

    def close(self):
        self.closed += 1


@implementer(IRouteTable)
class FakeRoutes:
    """
    A route table in memory: C{log} records every change in order.
    """

    def __init__(self, addresses=()):
        self.log = []
        self.routes = set()
        self.addresses = [ip_address(a) for a in addresses]

    def addRoute(self, network, device, source):
        self.log.append(("add", str(network), device, str(source) if source else None))
        self.routes.add((network, device, source))

    def deleteRoute(self, network, device, source):
        self.log.append(("del", str(network), device, str(source) if source else None))
        self.routes.remove((network, device, source))

    def localAddressIn(self, start, end):
        for address in self.addresses:
            if address.version == start.version and start <= address <= end:
                return address
        return None


@implementer(IDatapathEvents)
class RecordingEvents:
    def __init__(self):
        self.calls = []

    def acquire(self, reqid, source, destination):
        self.calls.append(("acquire", reqid, source, destination))

    def expired(self, protocol, spi, destination, hard):
        self.calls.append(("expired", protocol, spi, destination, hard))

    def addressChanged(self, address, added):
        self.calls.append(("addressChanged", address, added))


def selector(network, protocol=0, ports=(0, 65535)):
    return KernelSelector(network[0], network[-1], protocol, *ports)


KEYS = {
    "gcm": ((EncrId.AES_GCM_16, 128), None, 20, 0),
    "cbc": ((EncrId.AES_CBC, 256), IntegId.HMAC_SHA2_256_128, 32, 32),
}


def childSAs(spiAB=0x1000AB, spiBA=0x1000BA, reqid=7, kind="gcm", encap=(4500, 4500), ours=A_NET, theirs=B_NET,
             **extra):
    """
    The SAs of one Child SA as host A installs them (outbound A->B with
    C{spiAB}, inbound B->A with C{spiBA}) and as host B does.
    """
    encryption, integrity, keyLength, integLength = KEYS[kind]
    keyAB, keyBA = bytes(range(keyLength)), bytes(range(1, keyLength + 1))
    integAB, integBA = bytes(range(2, integLength + 2)), bytes(range(3, integLength + 3))
    selectorsA = ((selector(ours), selector(theirs)),)
    selectorsB = ((selector(theirs), selector(ours)),)
    common = dict(protocol=ProtocolId.ESP, mode="tunnel", encryption=encryption, integrity=integrity, reqid=reqid,
                  **extra)
    outA = KernelSA(spi=spiAB, inbound=False, source=A, destination=B, encryptionKey=keyAB, integrityKey=integAB,
                    encapsulation=encap, selectors=selectorsA, **common)
    inA = KernelSA(spi=spiBA, inbound=True, source=B, destination=A, encryptionKey=keyBA, integrityKey=integBA,
                   encapsulation=encap and (encap[1], encap[0]), selectors=selectorsA, **common)
    outB = replace(inA, inbound=False, source=B, destination=A, selectors=selectorsB)
    inB = replace(outA, inbound=True, source=A, destination=B, selectors=selectorsB)
    return (inA, outA), (inB, outB)


def flows(reqid=7, local=A, peer=B, ours=A_NET, theirs=B_NET):
    return [KernelFlow(selector(ours), selector(theirs), "out", ProtocolId.ESP, "tunnel", local, peer, reqid),
            KernelFlow(selector(theirs), selector(ours), "in", ProtocolId.ESP, "tunnel", peer, local, reqid)]


def udp(src, dst, payload=b"ping", sport=1234, dport=5678):
    return ipv4(ip_address(src).packed, ip_address(dst).packed, 17,
                struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)


class Pair:
    """
    Host A and host B, each with a provider, back to back: what one sends
    in UDP the other receives as ESP, unless C{wire} is told to hold it.
    """

    def __init__(self, testCase, kind="gcm", **saOptions):
        self.clock = task.Clock()
        self.tunA, self.tunB = FakeTun(), FakeTun()
        self.routesA, self.routesB = FakeRoutes(["10.1.0.1", "192.0.2.1"]), FakeRoutes(["10.2.0.1"])
        self.wire = []
        self.deliver = True
        self.a = UserspaceKernel(self._sender("b"), self.clock, self.tunA, self.routesA, rawEsp=False,
                                 randomBytes=DeterministicRandom(b"a"))
        self.b = UserspaceKernel(self._sender("a"), self.clock, self.tunB, self.routesB, rawEsp=False,
                                 randomBytes=DeterministicRandom(b"b"))
        self.eventsA, self.eventsB = RecordingEvents(), RecordingEvents()
        self.a.setEventReceiver(self.eventsA)
        self.b.setEventReceiver(self.eventsB)
        (self.inA, self.outA), (self.inB, self.outB) = childSAs(kind=kind, **saOptions)
        self.testCase = testCase

    def _sender(self, to):
        def send(data, local, remote):
            self.wire.append((to, data, local, remote))
            if self.deliver:
                (self.a if to == "a" else self.b).espReceived(data, local, remote)

        return send

    def install(self):
        t = self.testCase
        for kernel, sas, fs in ((self.a, (self.inA, self.outA), flows()),
                                (self.b, (self.inB, self.outB), flows(local=B, peer=A, ours=B_NET, theirs=A_NET))):
            for sa in sas:
                t.successResultOf(kernel.addSA(sa))
            for flow in fs:
                t.successResultOf(kernel.addFlow(flow))


class UserspaceKernelTests(SynchronousTestCase):
    def test_interface(self):
        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=FakeRoutes(), rawEsp=False)
        self.assertTrue(verifyObject(IKernel, kernel))
        self.assertEqual(kernel.name, "userspace")

    def test_allocateSpi(self):
        """
        SPIs are above 255 and distinct, answered at once through a
        Deferred.
        """
        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=FakeRoutes(), rawEsp=False,
                                 randomBytes=DeterministicRandom(b"spi"))
        spis = {self.successResultOf(kernel.allocateSpi(ProtocolId.ESP, B, A)) for _ in range(300)}
        self.assertEqual(len(spis), 300)
        self.assertTrue(all(255 < s < 2 ** 32 for s in spis))

    def test_releaseSpi(self):
        """
        An SPI given back with releaseSpi (lent to a privilege-separated
        worker and not used) may be allocated again; one still reserved is
        not (spiBlocks: its SPIs need no addresses).
        """
        values = iter([0x1234, 0x1234, 0x5678, 0x1234])
        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=FakeRoutes(), rawEsp=False,
                                 randomBytes=lambda n: next(values).to_bytes(4, "big"))
        self.assertTrue(kernel.spiBlocks)
        self.assertEqual(self.successResultOf(kernel.allocateSpi(ProtocolId.ESP, None, None)), 0x1234)
        self.assertEqual(self.successResultOf(kernel.allocateSpi(ProtocolId.ESP, None, None)), 0x5678)
        kernel.releaseSpi(ProtocolId.ESP, 0x1234)
        self.assertEqual(self.successResultOf(kernel.allocateSpi(ProtocolId.ESP, None, None)), 0x1234)

    def test_bothWays(self):
        """
        A packet the host routes into A's device comes out of B's device,
        byte for byte, and back; it travels as ESP in UDP between the SA's
        addresses and ports (RFC 3948) under the outbound SPI; both SAs
        count its bytes and packets (for querySA).
        """
        pair = Pair(self)
        pair.install()
        self.assertEqual(pair.tunA.opened, 1)
        pair.clock.advance(10)
        packet = udp("10.1.0.1", "10.2.0.1")
        pair.tunA.pending.append(packet)
        pair.a._tunReadable()
        self.assertEqual(pair.tunB.written, [packet])
        to, data, local, remote = pair.wire[0]
        self.assertEqual((to, local, remote), ("b", ("192.0.2.1", 4500), ("192.0.2.2", 4500)))
        self.assertEqual(esp.spiOf(data), 0x1000AB)
        reply = udp("10.2.0.1", "10.1.0.1", b"pong", 5678, 1234)
        pair.b.packetFromTun(reply)
        self.assertEqual(pair.tunA.written, [reply])
        for kernel, sa in ((pair.a, pair.outA), (pair.b, pair.inB)):
            self.assertEqual(self.successResultOf(kernel.querySA(sa)),
                             KernelSAUsage(bytes=len(packet), packets=1, installed=0.0, lastUsed=10.0))
        self.assertEqual(self.successResultOf(pair.a.querySA(pair.inA)).bytes, len(reply))
        self.assertEqual(pair.a.dropCounts() + pair.b.dropCounts(), {})

    def test_cbc(self):
        """
        The same with AES-CBC and HMAC-SHA2-256-128.
        """
        pair = Pair(self, kind="cbc")
        pair.install()
        for n in range(20):
            packet = udp("10.1.0.%d" % (n + 1,), "10.2.0.9", bytes(n))
            pair.a.packetFromTun(packet)
            self.assertEqual(pair.tunB.written[-1], packet)
        self.assertEqual(self.successResultOf(pair.b.querySA(pair.inB)).packets, 20)

    def test_segmentRuns(self):
        """
        The packets read from the device in one wake-up leave in UDP GSO
        sends when the service offers them: a run of sealed packets of one
        size to one peer, ended by a shorter one, at 64 packets or before
        64,000 octets. B opens every one of them, in order.
        """
        pair = Pair(self)
        pair.install()
        sends = []

        def segments(buffers, size, local, remote):
            sends.append((size, [len(b) for b in buffers]))
            for data in buffers:
                pair.b.espReceived(data, local, remote)

        pair.a.sendUdpSegments = segments
        big = [udp("10.1.0.1", "10.2.0.1", bytes(1000) + bytes([n])) for n in range(70)]
        small = udp("10.1.0.1", "10.2.0.1", b"short")
        other = udp("10.1.0.1", "10.2.0.1", bytes(500))
        packets = big + [small, other, other, small]
        pair.tunA.pending = list(packets)
        pair.a._tunReadable()
        # GCM: header and IV (16), the packet and trailer to four octets,
        # the ICV (16).
        bigSize, smallSize, otherSize = 16 + 1032 + 16, 16 + 36 + 16, 16 + 532 + 16
        self.assertEqual(sends, [(bigSize, [bigSize] * 60), (bigSize, [bigSize] * 10 + [smallSize]),
                                 (otherSize, [otherSize] * 2 + [smallSize])])
        self.assertEqual(pair.tunB.written, packets)
        self.assertEqual(pair.wire, [])
        self.assertEqual(pair.a.dropCounts() + pair.b.dropCounts(), {})

        pair.tunA.pending = [other] * 70
        pair.a._tunReadable()
        self.assertEqual([len(lengths) for _, lengths in sends[3:]], [64, 6])

    def test_noSegments(self):
        """
        Where the host has no UDP GSO (the send raises C{OSError}), the run
        goes out one datagram each, and so does everything of that SA from
        then on.
        """
        pair = Pair(self)
        pair.install()
        calls = []

        def refusing(buffers, size, local, remote):
            calls.append(len(buffers))
            raise OSError(22, "Invalid argument")

        pair.a.sendUdpSegments = refusing
        packet = udp("10.1.0.1", "10.2.0.1", bytes(100))
        pair.tunA.pending = [packet] * 5
        pair.a._tunReadable()
        pair.tunA.pending = [packet] * 5
        pair.a._tunReadable()
        self.assertEqual(calls, [5])
        self.assertEqual(len(pair.wire), 10)
        self.assertEqual(pair.tunB.written, [packet] * 10)

    def test_flowCache(self):
        """
        A packet's flow is remembered, and forgotten when the flows change:
        after its flow is deleted, the next packet of the same header
        matches no flow.
        """
        pair = Pair(self)
        pair.install()
        packet = udp("10.1.0.1", "10.2.0.1")
        pair.a.packetFromTun(packet)
        pair.a.packetFromTun(packet)
        self.assertEqual(len(pair.tunB.written), 2)
        self.successResultOf(pair.a.deleteFlow(flows()[0]))
        pair.a.packetFromTun(packet)
        self.assertEqual(pair.a.drops, {NO_FLOW: 1})

    def test_routes(self):
        """
        An outbound flow routes the remote network through the device with
        a local address inside the local selector as source (what libipsec
        needs); two flows to one network share the route; deleting the
        flows and flushing removes it. Inbound flows add no route.
        """
        pair = Pair(self)
        pair.install()
        self.assertEqual(pair.routesA.log, [("add", "10.2.0.0/24", "ipsec0", "10.1.0.1")])
        second = KernelFlow(selector(A_NET, 6), selector(B_NET), "out", ProtocolId.ESP, "tunnel", A, B, 8)
        self.successResultOf(pair.a.addFlow(second))
        self.assertEqual(len(pair.routesA.log), 1)
        self.successResultOf(pair.a.deleteFlow(flows()[0]))
        self.assertEqual(len(pair.routesA.log), 1)
        self.successResultOf(pair.a.flush())
        self.assertEqual(pair.routesA.log[1:], [("del", "10.2.0.0/24", "ipsec0", "10.1.0.1")])
        self.assertEqual(pair.routesA.routes, set())
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(pair.a.drops, {NO_FLOW: 1})

    def test_rangeRoutesAvoidPeer(self):
        """
        A range selector becomes the networks that cover it; a network that
        holds the peer's own address is not routed into the tunnel.
        """
        routes = FakeRoutes()
        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=routes, rawEsp=False)
        ranged = KernelSelector(ip_address("10.2.0.0"), ip_address("10.2.0.5"))
        self.successResultOf(kernel.addFlow(KernelFlow(selector(A_NET), ranged, "out", ProtocolId.ESP, "tunnel", A,
                                                       B, 1)))
        anywhere = selector(ip_network("192.0.2.0/24"))
        self.successResultOf(kernel.addFlow(KernelFlow(selector(A_NET), anywhere, "out", ProtocolId.ESP, "tunnel",
                                                       A, B, 2)))
        self.assertEqual(routes.log, [("add", "10.2.0.0/30", "ipsec0", None), ("add", "10.2.0.4/31", "ipsec0", None)])

    def test_routeFailure(self):
        """
        A route the host refuses fails addFlow with L{KernelError}.
        """

        class Refusing(FakeRoutes):
            def addRoute(self, network, device, source):
                raise OSError("RTNETLINK answers: No such device")

        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=Refusing(), rawEsp=False)
        failure = self.failureResultOf(kernel.addFlow(flows()[0]), KernelError)
        self.assertIn("No such device", str(failure.value))

    def test_selectorsAndPorts(self):
        """
        Outbound packets pick the flow whose protocol and ports match;
        others are dropped as matching no flow.
        """
        pair = Pair(self)
        pair.install()
        self.successResultOf(pair.a.deleteFlow(flows()[0]))
        web = KernelFlow(selector(A_NET), selector(B_NET, 6, (80, 80)), "out", ProtocolId.ESP, "tunnel", A, B, 7)
        self.successResultOf(pair.a.addFlow(web))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1", dport=80))
        tcp = ipv4([10, 1, 0, 1], [10, 2, 0, 1], 6, struct.pack("!HH", 40000, 80) + bytes(16))
        self.assertEqual(pair.a.drops, {NO_FLOW: 1})
        # B's inbound selectors allow any protocol from 10.1.0.0/24.
        pair.a.packetFromTun(tcp)
        self.assertEqual(pair.tunB.written, [tcp])

    def test_acquire(self):
        """
        A packet for a flow with no SA raises one acquire with the packet's
        addresses (ports only where the flow has them), then none for
        ACQUIRE_HOLD seconds; installing the SA ends the hold.
        """
        pair = Pair(self)
        for flow in flows():
            self.successResultOf(pair.a.addFlow(flow))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        src, dst = ip_address("10.1.0.1"), ip_address("10.2.0.1")
        expected = ("acquire", 7, KernelSelector(src, src, 17), KernelSelector(dst, dst, 17))
        self.assertEqual(pair.eventsA.calls, [expected])
        pair.clock.advance(ACQUIRE_HOLD)
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(pair.eventsA.calls, [expected, expected])
        self.assertEqual(pair.a.drops, {NO_SA: 3})
        self.successResultOf(pair.a.addSA(pair.outA))
        self.successResultOf(pair.b.addSA(pair.inB))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(len(pair.tunB.written), 1)

    def test_lifetimeSeconds(self):
        """
        Soft and hard lifetimes in seconds raise expire events at their
        times; the hard one removes the SA first.
        """
        pair = Pair(self, lifetimeSeconds=100, softLifetimeSeconds=80)
        pair.install()
        pair.clock.advance(79)
        self.assertEqual(pair.eventsA.calls, [])
        pair.clock.advance(1)
        self.assertEqual(pair.eventsA.calls, [("expired", ProtocolId.ESP, 0x1000BA, A, False),
                                              ("expired", ProtocolId.ESP, 0x1000AB, B, False)])
        pair.clock.advance(20)
        self.assertEqual(pair.eventsA.calls[2:], [("expired", ProtocolId.ESP, 0x1000BA, A, True),
                                                  ("expired", ProtocolId.ESP, 0x1000AB, B, True)])
        self.failureResultOf(pair.a.querySA(pair.outA), KernelError)

    def test_deleteCancelsTimers(self):
        pair = Pair(self, lifetimeSeconds=100, softLifetimeSeconds=80)
        pair.install()
        for sa in (pair.inA, pair.outA):
            self.successResultOf(pair.a.deleteSA(sa))
        pair.clock.advance(200)
        self.assertEqual(pair.eventsA.calls, [])

    def test_lifetimeBytes(self):
        """
        Byte lifetimes count inner bytes: the soft expire once past the soft
        limit, the hard one (and removal) past the hard limit; the flow
        then has no SA, so the next packet asks for one.
        """
        packet = udp("10.1.0.1", "10.2.0.1")
        pair = Pair(self, lifetimeBytes=5 * len(packet), softLifetimeBytes=3 * len(packet))
        pair.install()
        for _ in range(6):
            pair.a.packetFromTun(packet)
        self.assertEqual([c[:2] for c in pair.eventsA.calls][2:], [("acquire", 7)])
        self.assertEqual(pair.eventsA.calls[:2], [("expired", ProtocolId.ESP, 0x1000AB, B, False),
                                                  ("expired", ProtocolId.ESP, 0x1000AB, B, True)])
        self.assertEqual(len(pair.tunB.written), 5)
        self.assertEqual(pair.a.drops, {NO_SA: 1})

    def test_inboundDrops(self):
        """
        Corrupted, truncated, replayed and unknown-SPI ESP, and inner
        packets outside the SA's selectors, are dropped and counted by
        reason; genuine packets before and after still pass.
        """
        pair = Pair(self)
        pair.install()
        pair.deliver = False
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1", b"one"))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1", b"two"))
        first, second = pair.wire[0][1], pair.wire[1][1]
        b = pair.b
        b.espReceived(first, ("192.0.2.1", 4500), ("192.0.2.2", 4500))
        corrupted = bytearray(second)
        corrupted[-1] ^= 1
        b.espReceived(bytes(corrupted), ("192.0.2.1", 4500), None)
        b.espReceived(second[:20], ("192.0.2.1", 4500), None)
        b.espReceived(second[:5], ("192.0.2.1", 4500), None)
        b.espReceived(first, ("192.0.2.1", 4500), None)
        b.espReceived(b"\x00\x00\x99\x99" + second[4:], ("192.0.2.1", 4500), None)
        b.espReceived(second, ("192.0.2.1", 4500), None)
        self.assertEqual(len(pair.tunB.written), 2)
        self.assertEqual(b.dropCounts(), {esp.BAD_ICV: 1, esp.TRUNCATED: 2, esp.REPLAYED: 1, esp.UNKNOWN_SPI: 1})
        # A packet sealed with the SA's keys but from outside its selectors.
        outside = pair.a._outbound[7][-1].codec.seal(udp("10.9.0.1", "10.2.0.1"), 4)
        b.espReceived(outside, ("192.0.2.1", 4500), None)
        garbage = pair.a._outbound[7][-1].codec.seal(b"\x00" * 30, 4)
        b.espReceived(garbage, ("192.0.2.1", 4500), None)
        self.assertEqual(b.dropCounts()[esp.POLICY], 1)
        self.assertEqual(b.dropCounts()[esp.BAD_INNER], 1)
        self.assertEqual(len(pair.tunB.written), 2)

    def test_dropsOutliveSAs(self):
        """
        The codec's drop counts stay in dropCounts after its SA is deleted.
        """
        pair = Pair(self)
        pair.install()
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        pair.b.espReceived(pair.wire[0][1], ("192.0.2.1", 4500), None)
        self.successResultOf(pair.b.deleteSA(pair.inB))
        self.assertEqual(pair.b.dropCounts(), {esp.REPLAYED: 1})

    def test_refused(self):
        """
        AH, transport mode, IPcomp, unusable keys and duplicate SAs are
        refused with L{KernelError}.
        """
        pair = Pair(self)
        for sa in (replace(pair.outA, protocol=ProtocolId.AH), replace(pair.outA, mode="transport"),
                   replace(pair.outA, ipcompCpi=0x4000), replace(pair.outA, encryptionKey=b"short")):
            self.failureResultOf(pair.a.addSA(sa), KernelError)
        self.successResultOf(pair.a.addSA(pair.outA))
        self.failureResultOf(pair.a.addSA(pair.outA), KernelError)

    def test_updateSA(self):
        """
        updateSA moves an SA to new ports (a NAT mapping change) and keeps
        its sequence numbers.
        """
        pair = Pair(self)
        pair.install()
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        moved = replace(pair.outA, encapsulation=(4500, 31000))
        self.successResultOf(pair.a.updateSA(pair.outA, moved))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(pair.wire[1][3], ("192.0.2.2", 31000))
        self.assertEqual(struct.unpack("!I", pair.wire[1][1][4:8])[0], 2)
        self.assertEqual(len(pair.tunB.written), 2)
        unknown = replace(pair.outA, spi=0x999)
        self.failureResultOf(pair.a.updateSA(unknown, moved), KernelError)

    def test_detachKeepsSequences(self):
        """
        C{ikectl decouple} then C{couple} on host A (detachSA, then addSA of
        the same SAs): A's outbound sequence numbers go on where they
        stood, so B's replay window takes the traffic after re-couple; A's
        inbound window is the one it had, so a packet of B's from before
        is still a replay.
        """
        pair = Pair(self)
        pair.install()
        for n in range(3):
            pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        pair.b.packetFromTun(udp("10.2.0.1", "10.1.0.1", b"pong", 5678, 1234))
        fromB = pair.wire[-1][1]
        fs = flows()
        for sa in (pair.inA, pair.outA):
            self.successResultOf(pair.a.detachSA(sa))
        for flow in fs:
            self.successResultOf(pair.a.deleteFlow(flow))
        self.failureResultOf(pair.a.querySA(pair.outA), KernelError)
        for sa in (pair.inA, pair.outA):
            self.successResultOf(pair.a.addSA(sa))
        for flow in fs:
            self.successResultOf(pair.a.addFlow(flow))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(struct.unpack("!I", pair.wire[-1][1][4:8])[0], 4)
        self.assertEqual(len(pair.tunB.written), 4)
        pair.a.espReceived(fromB, ("192.0.2.2", 4500), None)
        self.assertEqual(len(pair.tunA.written), 1)
        self.assertEqual(pair.b.dropCounts(), {})
        self.assertEqual(sum(pair.a.dropCounts().values()), 1)

    def test_detachedForgottenOnDelete(self):
        """
        A detached SA deleted for good (its Child SA went while decoupled)
        or flushed starts afresh if ever installed again.
        """
        pair = Pair(self)
        pair.install()
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.successResultOf(pair.a.detachSA(pair.outA))
        self.successResultOf(pair.a.deleteSA(pair.outA))
        self.successResultOf(pair.a.addSA(pair.outA))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(struct.unpack("!I", pair.wire[-1][1][4:8])[0], 1)
        self.successResultOf(pair.a.detachSA(pair.outA))
        self.successResultOf(pair.a.flush())
        self.successResultOf(pair.a.addSA(pair.outA))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(struct.unpack("!I", pair.wire[-1][1][4:8])[0], 1)

    def test_rekeyOverlap(self):
        """
        With two outbound SAs for one reqid (a rekey), the newer carries
        the traffic; deleting it falls back to the older.
        """
        pair = Pair(self)
        pair.install()
        (newInA, newOutA), (newInB, newOutB) = childSAs(spiAB=0x2000AB, spiBA=0x2000BA)
        for kernel, sa in ((pair.a, newOutA), (pair.b, newInB)):
            self.successResultOf(kernel.addSA(sa))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(esp.spiOf(pair.wire[-1][1]), 0x2000AB)
        self.successResultOf(pair.a.deleteSA(newOutA))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(esp.spiOf(pair.wire[-1][1]), 0x1000AB)
        self.assertEqual(len(pair.tunB.written), 2)

    def test_sequenceOverflow(self):
        """
        When the outbound SA runs out of sequence numbers the packet is
        dropped and the SA hard-expires (RFC 4303 3.3.3).
        """
        pair = Pair(self)
        pair.install()
        pair.a._outbound[7][-1].codec.seq = 0xFFFFFFFF
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(pair.eventsA.calls, [("expired", ProtocolId.ESP, 0x1000AB, B, True)])
        self.assertEqual(pair.a.dropCounts(), {esp.SEQUENCE_OVERFLOW: 1})
        self.assertEqual(pair.wire, [])

    def test_sequenceSoftExpire(self):
        """
        A sixteenth of the sequence space before its end the SA soft-expires
        (so that the daemon rekeys in time), once.
        """
        pair = Pair(self)
        pair.install()
        codec = pair.a._outbound[7][-1].codec
        self.assertEqual(codec.softSeq, 0xFFFFFFFF - 0x0FFFFFFF)
        codec.seq = codec.softSeq - 2
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(pair.eventsA.calls, [])
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(pair.eventsA.calls, [("expired", ProtocolId.ESP, 0x1000AB, B, False)])
        self.assertEqual(len(pair.wire), 3)

    def test_noTransport(self):
        """
        An SA without UDP encapsulation needs the raw ESP socket; without
        one, packets are dropped and counted.
        """
        pair = Pair(self, encap=None)
        pair.install()
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(pair.a.drops, {NO_TRANSPORT: 1})

    def test_tunFull(self):
        pair = Pair(self)
        pair.install()
        pair.tunB.full = True
        pair.a.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(pair.b.drops, {"tun-full": 1})

    def test_deviceFailure(self):
        """
        A TUN device that cannot be opened fails addSA and addFlow with
        L{KernelError}; once it can, the next call opens it.
        """

        class Broken(FakeTun):
            def open(self):
                if not self.opened:
                    self.opened = -1
                    raise PermissionError("Operation not permitted")
                return FakeTun.open(self)

        device = Broken()
        kernel = UserspaceKernel(reactor=task.Clock(), device=device, routes=FakeRoutes(), rawEsp=False)
        (_, outA), _ = childSAs()
        failure = self.failureResultOf(kernel.addSA(outA), KernelError)
        self.assertIn("Operation not permitted", str(failure.value))
        self.failureResultOf(kernel.querySA(outA), KernelError)
        self.successResultOf(kernel.addSA(outA))
        self.assertEqual(device.opened, 0)

    def test_garbageNeverRaises(self):
        """
        Nothing from the device or the network raises out of the provider.
        """
        pair = Pair(self)
        pair.install()
        for data in (b"", b"\x45", b"\x60" + bytes(10), b"\xff" * 100, bytes(8), struct.pack("!I", 0x1000BA)):
            pair.a.packetFromTun(data)
            pair.a.espReceived(data, ("192.0.2.2", 4500), None)
        self.assertNotIn("error", pair.a.dropCounts())


class ParsePacketTests(SynchronousTestCase):
    def test_ipv4(self):
        self.assertEqual(parsePacket(udp("10.1.0.1", "10.2.0.1")),
                         (4, int(ip_address("10.1.0.1")), int(ip_address("10.2.0.1")), 17, 1234, 5678))

    def test_ipv4Fragment(self):
        """
        A non-first fragment has no ports.
        """
        packet = bytearray(udp("10.1.0.1", "10.2.0.1"))
        packet[6:8] = struct.pack("!H", 100)
        self.assertEqual(parsePacket(bytes(packet))[4:], (None, None))

    def test_ipv6WithExtension(self):
        """
        IPv6 ports are found behind a hop-by-hop header; ICMPv6 type and
        code stand in for ports (RFC 7296 3.13.1).
        """
        src, dst = ip_address("2001:db8::1"), ip_address("2001:db8:1::1")
        hopByHop = bytes([17, 0]) + bytes(6)
        packet = (struct.pack("!IHBB", 6 << 28, 16, 0, 64) + src.packed + dst.packed + hopByHop
                  + struct.pack("!HHHH", 53, 5353, 8, 0))
        self.assertEqual(parsePacket(packet), (6, int(src), int(dst), 17, 53, 5353))
        icmp = struct.pack("!IHBB", 6 << 28, 8, 58, 64) + src.packed + dst.packed + bytes([128, 0]) + bytes(6)
        self.assertEqual(parsePacket(icmp)[3:], (58, 128 << 8, 128 << 8))

    def test_bad(self):
        for data in (b"", b"\x45" + bytes(5), b"\x60" + bytes(20), b"\x30" + bytes(40), b"\x41" + bytes(40)):
            self.assertIsNone(parsePacket(data))


@implementer(ITunDevice)
class SocketTun:
    """
    A TUN device made of a C{SOCK_SEQPACKET} socket pair: the provider
    reads and writes one end (non-blocking, a file descriptor the outbound
    thread polls), the test the other (C{host}).
    """

    name = "ipsec0"

    def __init__(self):
        import socket

        self.host, self.end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.end.setblocking(False)

    def open(self):
        return self.end.fileno()

    def read(self):
        try:
            return self.end.recv(65535)
        except BlockingIOError:
            return None

    def write(self, packet):
        self.end.send(packet)
        return True

    def close(self):
        self.end.close()
        self.host.close()


class OutboundThreadTests(TestCase):
    """
    The outbound thread with the real reactor: packets the host writes to
    the device are sealed and sent from that thread; what it tells the
    core arrives in the reactor's thread.
    """

    def poll(self, condition, timeout=10.0):
        from twisted.internet import reactor
        from twisted.internet.defer import succeed
        from twisted.internet.task import deferLater

        deadline = reactor.seconds() + timeout

        def check(_=None):
            if condition():
                return None
            if reactor.seconds() > deadline:
                self.fail("timed out")
            return deferLater(reactor, 0.01, check)

        # A Deferred even when the condition already holds (the thread may
        # be done before the test polls).
        return succeed(None).addCallback(check)

    def kernel(self, wire):
        from twisted.internet import reactor

        tun = SocketTun()
        kernel = UserspaceKernel(lambda data, local, remote: wire.append(bytes(data)), reactor, tun, FakeRoutes(),
                                 rawEsp=False, outboundThread=True)
        self.addCleanup(tun.close)
        self.addCleanup(kernel.close)
        return kernel, tun

    def test_sealsInItsThread(self):
        """
        Packets the host routes into the device leave sealed, in order; B
        opens them all; closing the provider stops the thread.
        """
        import threading

        wire = []
        a, tun = self.kernel(wire)
        sends = []
        a.sendUdpSegments = lambda buffers, size, local, remote: sends.append(threading.current_thread().name) or [
            wire.append(bytes(data)) for data in buffers]
        # One packet read in a wake-up leaves alone (no GSO run): from the
        # same thread.
        a.sendUdp = lambda data, local, remote: sends.append(threading.current_thread().name) or wire.append(
            bytes(data))
        (inA, outA), (inB, outB) = childSAs()
        self.successResultOf(a.addSA(outA))
        self.successResultOf(a.addFlow(flows()[0]))
        b = UserspaceKernel(None, task.Clock(), FakeTun(), FakeRoutes(), rawEsp=False)
        self.successResultOf(b.addSA(inB))
        packets = [udp("10.1.0.1", "10.2.0.1", bytes([n]) * 200) for n in range(50)]
        for packet in packets:
            tun.host.send(packet)

        def check(_):
            for data in wire:
                b.espReceived(data, ("192.0.2.1", 4500), ("192.0.2.2", 4500))
            self.assertEqual(b.device.written, packets)
            self.assertEqual(set(sends), {"ikedtx-esp-out"})
            thread = a._thread
            a.close()
            self.assertFalse(thread.is_alive())

        return self.poll(lambda: len(wire) == len(packets)).addCallback(check)

    def test_acquireInReactorThread(self):
        """
        A packet for a flow with no SA yet gives an acquire, delivered in
        the reactor's thread; the drop is counted.
        """
        import threading

        a, tun = self.kernel([])
        threads = []

        class Events(RecordingEvents):
            def acquire(self, reqid, source, destination):
                threads.append(threading.current_thread())
                RecordingEvents.acquire(self, reqid, source, destination)

        a.setEventReceiver(Events())
        self.successResultOf(a.addFlow(flows()[0]))
        tun.host.send(udp("10.1.0.1", "10.2.0.1"))

        def check(_):
            self.assertEqual(threads, [threading.main_thread()])
            self.assertEqual(a.dropCounts(), {NO_SA: 1})

        return self.poll(lambda: threads).addCallback(check)

    def test_survivesErrors(self):
        """
        An unexpected error in the thread (here the device's read) is
        logged in the reactor's thread and the thread carries the packets
        that come after it.
        """
        wire = []
        a, tun = self.kernel(wire)
        (inA, outA), _ = childSAs()
        self.successResultOf(a.addSA(outA))
        self.successResultOf(a.addFlow(flows()[0]))
        read = tun.read
        failures = [RuntimeError("device bug")]

        def failingOnce():
            if failures:
                raise failures.pop()
            return read()

        tun.read = failingOnce
        tun.host.send(udp("10.1.0.1", "10.2.0.1"))

        logged = []

        def again(_):
            self.assertEqual(len(logged), 1)
            tun.host.send(udp("10.1.0.1", "10.2.0.1", b"second"))
            return self.poll(lambda: len(wire) == 2)

        # The error reaches the log through the reactor's thread, maybe
        # after the packet has left.
        return self.poll(lambda: not failures and wire and logged.extend(self.flushLoggedErrors(RuntimeError))
                         or logged).addCallback(again)


class InboundThreadTests(TestCase):
    """
    The inbound thread with the real reactor: ESP in UDP that arrives on a
    socket given to C{receiveEspOn} is opened in that thread and written to
    the device; bad ESP is dropped and counted there; what it tells the
    core arrives in the reactor's thread.
    """

    poll = OutboundThreadTests.poll

    def kernel(self):
        import socket

        from twisted.internet import reactor

        tun = SocketTun()
        tun.host.settimeout(5)
        kernel = UserspaceKernel(None, reactor, tun, FakeRoutes(), rawEsp=False, inboundThread=True)
        self.addCleanup(tun.close)
        self.addCleanup(kernel.close)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        self.addCleanup(peer.close)
        return kernel, tun, sock, peer

    def test_opensInItsThread(self):
        """
        Sealed packets sent to the socket reach the device, in order, and
        are counted on the SA; the reactor's thread never reads the
        socket; stopReceivingEsp ends the thread.
        """
        a, tun, sock, peer = self.kernel()
        (inA, _), (_, outB) = childSAs()
        self.successResultOf(a.addSA(inA))
        self.assertTrue(a.receiveEspOn(sock))
        sealer = esp.EspSA.fromKernelSA(outB)
        packets = [udp("10.2.0.1", "10.1.0.1", bytes([n]) * 300) for n in range(40)]
        for packet in packets:
            peer.sendto(sealer.seal(packet, esp.NEXT_HEADER_IPV4), sock.getsockname())
        received = [tun.host.recv(65535) for _ in packets]
        self.assertEqual(received, packets)
        usage = self.successResultOf(a.querySA(inA))
        self.assertEqual((usage.packets, usage.bytes), (40, sum(len(p) for p in packets)))
        thread = a._inThread
        self.assertEqual(thread.name, "ikedtx-esp-in")
        a.stopReceivingEsp()
        self.assertFalse(thread.is_alive())

    def test_dropsCounted(self):
        """
        A replayed, a corrupted, a truncated packet, one for an unknown SPI
        and an IKE message (the zero marker) are dropped in the thread and
        counted (IKE goes uncounted: it is not ESP); the good packet after
        them goes through; a debug line for each drop is logged in the
        reactor's thread.
        """
        import threading

        from twisted.logger import globalLogPublisher

        threads = []

        def observer(event):
            if "dropped a packet" in event.get("log_format", ""):
                threads.append(threading.current_thread())

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        a, tun, sock, peer = self.kernel()
        (inA, _), (_, outB) = childSAs()
        self.successResultOf(a.addSA(inA))
        a.receiveEspOn(sock)
        sealer = esp.EspSA.fromKernelSA(outB)
        first = sealer.seal(udp("10.2.0.1", "10.1.0.1", b"first"), esp.NEXT_HEADER_IPV4)
        corrupted = bytearray(sealer.seal(udp("10.2.0.1", "10.1.0.1", b"x"), esp.NEXT_HEADER_IPV4))
        corrupted[-1] ^= 1
        last = udp("10.2.0.1", "10.1.0.1", b"last")
        for data in (first, first, bytes(corrupted), first[:20], b"\0\0\0\x99" + first[4:], bytes(4) + b"ike" * 10,
                     sealer.seal(last, esp.NEXT_HEADER_IPV4)):
            peer.sendto(data, sock.getsockname())
        self.assertEqual([tun.host.recv(65535) for _ in range(2)], [udp("10.2.0.1", "10.1.0.1", b"first"), last])
        expected = {esp.REPLAYED: 1, esp.BAD_ICV: 1, esp.TRUNCATED: 1, esp.UNKNOWN_SPI: 1}

        def check(_):
            self.assertEqual(a.dropCounts(), expected)
            self.assertEqual(set(threads), {threading.main_thread()})

        return self.poll(lambda: len(threads) == 4).addCallback(check)

    def test_lifetimeInReactorThread(self):
        """
        The byte lifetime reached by what the thread opens expires the SA
        in the reactor's thread; the packet that reached it is delivered,
        the one after it is not, even before the reactor's thread has
        removed the SA.
        """
        import threading

        a, tun, sock, peer = self.kernel()
        threads = []

        class Events(RecordingEvents):
            def expired(self, protocol, spi, destination, hard):
                threads.append(threading.current_thread())
                RecordingEvents.expired(self, protocol, spi, destination, hard)

        a.setEventReceiver(Events())
        (inA, _), (_, outB) = childSAs()
        self.successResultOf(a.addSA(replace(inA, lifetimeBytes=100)))
        a.receiveEspOn(sock)
        sealer = esp.EspSA.fromKernelSA(outB)
        first = udp("10.2.0.1", "10.1.0.1", b"y" * 200)
        for packet in (first, udp("10.2.0.1", "10.1.0.1", b"z")):
            peer.sendto(sealer.seal(packet, esp.NEXT_HEADER_IPV4), sock.getsockname())

        def check(_):
            self.assertEqual(threads, [threading.main_thread()])
            self.failureResultOf(a.querySA(inA), KernelError)
            self.assertEqual(tun.host.recv(65535), first)
            tun.host.setblocking(False)
            self.assertRaises(BlockingIOError, tun.host.recv, 65535)

        return self.poll(lambda: threads and a.dropCounts()[esp.UNKNOWN_SPI] == 1).addCallback(check)

    def test_withoutThread(self):
        """
        A provider made without an inbound thread leaves the socket to its
        caller.
        """
        import socket

        kernel = UserspaceKernel(None, task.Clock(), FakeTun(), FakeRoutes(), rawEsp=False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        self.assertFalse(kernel.receiveEspOn(sock))
        self.assertIsNone(kernel._inThread)

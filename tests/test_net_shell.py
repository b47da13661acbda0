"""
Tests for L{ikedtx.net.shell} and L{ikedtx.net.udp}: the Twisted shell
carries out the core's actions, frames NAT-T datagrams, and never lets a
datagram's failure escape.
"""

import socket
import struct

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.core.actions import (
    CancelTimer, QuerySAUsage, RequestDone, SendDatagram, SendNatKeepalive, SetTimer, UpdateChildSA)
from ikedtx.core.errors import NegotiationFailed
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.kernel.interfaces import KernelSAUsage
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol, isNewInitRequest
from ikedtx.net.udp import listenUDPWithPacketInfo


class FakePort:
    def __init__(self, port, family=socket.AF_INET):
        self.addressFamily = family
        self._port = port
        self.sent = []

    def getHost(self):
        return type("Host", (), {"port": self._port})()

    def writeFrom(self, data, remote, source):
        self.sent.append((data, remote, source))

    def writeSegments(self, buffers, size, remote, source):
        self.sent.append((list(buffers), size, remote, source))


class FakeCore:
    def __init__(self):
        self.received = []
        self.fail = False
        self.answer = []

    def cookieAnswer(self, data, local, remote):
        return None

    def cookieAnswers(self, items):
        return [], items

    def datagramReceived(self, data, local, remote):
        self.received.append((data, local, remote))
        if self.fail:
            raise RuntimeError("core bug")
        return self.answer

    def timerExpired(self, key):
        self.received.append(("timer", key))
        return []

    def initiate(self, name):
        return 7, []

    def usageReported(self, token, usages):
        self.received.append(("usage", token, usages))
        return []


class ProtocolTests(SynchronousTestCase):
    def setUp(self):
        self.core = FakeCore()
        self.runner = CoreRunner(self.core, DecoupledKernel(), task.Clock())
        self.esp = []
        self.runner.espHandler = lambda data, remote, local: self.esp.append(data)

    def test_ikePort(self):
        """
        On the IKE port a datagram goes to the core as it is.
        """
        IKEDatagramProtocol(self.runner, natt=False).packetReceived(b"ike", ("192.0.2.2", 500), ("192.0.2.1", 500))
        self.assertEqual(self.core.received, [(b"ike", ("192.0.2.1", 500), ("192.0.2.2", 500))])

    def test_nattFraming(self):
        """
        RFC 3948 2.2/2.3: on the NAT-T port IKE comes after four zero bytes,
        a single 0xFF is a keepalive, and anything else is ESP.
        """
        protocol = IKEDatagramProtocol(self.runner, natt=True)
        protocol.packetReceived(b"\x00\x00\x00\x00ike", ("192.0.2.2", 4500), ("192.0.2.1", 4500))
        protocol.packetReceived(b"\xff", ("192.0.2.2", 4500), ("192.0.2.1", 4500))
        protocol.packetReceived(b"\x00\x01", ("192.0.2.2", 4500), ("192.0.2.1", 4500))
        protocol.packetReceived(b"\x12\x34\x56\x78esp", ("192.0.2.2", 4500), ("192.0.2.1", 4500))
        self.assertEqual([r[0] for r in self.core.received], [b"ike"])
        self.assertEqual(self.esp, [b"\x12\x34\x56\x78esp"])

    def test_nothingEscapes(self):
        """
        An exception while handling a datagram is logged, never raised.
        """
        self.core.fail = True
        IKEDatagramProtocol(self.runner, natt=False).packetReceived(b"x", ("192.0.2.2", 500), ("192.0.2.1", 500))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


def ikeMessage(spiI, spiR=bytes(8), exchange=34, flags=0x08, first=33, body=b"\0" * 40):
    """
    An IKE header (RFC 7296 3.1) and one payload of type C{first}.
    """
    payload = struct.pack("!BBH", 0, 0, 4 + len(body)) + body
    return spiI + spiR + struct.pack("!BBBBII", first, 0x20, exchange, flags, 0, 28 + len(payload)) + payload


NEW_INIT_1 = ikeMessage(b"\1" * 8)
NEW_INIT_2 = ikeMessage(b"\2" * 8)
#: An IKE_SA_INIT retried with the COOKIE (a Notify, first, of type 16390).
COOKIE_RETRY = ikeMessage(b"\3" * 8, first=41, body=struct.pack("!BBH", 0, 0, 16390) + b"c" * 32)
KNOWN_SA = ikeMessage(b"\4" * 8, spiR=b"\5" * 8, exchange=35, first=46)


class BatchTests(SynchronousTestCase):
    """
    A read's batch of datagrams is handled known peers first, new
    IKE_SA_INIT requests (a flood's) last (issue 11: a legitimate peer's
    datagram does not wait behind the flood read with it).
    """

    def setUp(self):
        self.core = FakeCore()
        self.clock = task.Clock()
        self.runner = CoreRunner(self.core, DecoupledKernel(), self.clock)

    def test_newInitRequest(self):
        """
        Only an IKE_SA_INIT request without responder SPI and without a
        COOKIE first counts as new; responses, other exchanges, short and
        cookie-carrying datagrams do not.
        """
        self.assertTrue(isNewInitRequest(NEW_INIT_1))
        self.assertTrue(isNewInitRequest(b"\0" * 4 + NEW_INIT_1, 4))
        for data in (COOKIE_RETRY, KNOWN_SA, NEW_INIT_1[:35], ikeMessage(b"\1" * 8, flags=0x28),
                     ikeMessage(b"\1" * 8, flags=0x00), ikeMessage(b"\1" * 8, exchange=37),
                     ikeMessage(b"\1" * 8, spiR=b"\9" * 8)):
            self.assertFalse(isNewInitRequest(data), data)

    def test_knownPeersFirst(self):
        """
        On the IKE port: the known SA's message, the COOKIE retry and
        garbage go to the core before the new requests, each class in the
        order read.
        """
        local, remote = ("192.0.2.1", 500), ("198.51.100.1", 500)
        batch = [(d, remote, local) for d in (NEW_INIT_1, KNOWN_SA, NEW_INIT_2, COOKIE_RETRY, b"junk")]
        IKEDatagramProtocol(self.runner, natt=False).packetsReceived(batch)
        self.assertEqual([d for d, _, _ in self.core.received], [KNOWN_SA, COOKIE_RETRY, b"junk"])
        self.clock.advance(0)
        self.assertEqual([d for d, _, _ in self.core.received],
                         [KNOWN_SA, COOKIE_RETRY, b"junk", NEW_INIT_1, NEW_INIT_2])

    def test_knownPeersFirstNatt(self):
        """
        The same past the non-ESP marker on the NAT-T port (ESP goes first
        too).
        """
        local, remote = ("192.0.2.1", 4500), ("198.51.100.1", 4500)
        marked = [b"\0" * 4 + d for d in (NEW_INIT_1, KNOWN_SA, COOKIE_RETRY)]
        esp = []
        self.runner.espHandler = lambda data, remote, local: esp.append(data) or self.core.received.append(
            ("esp", data))
        IKEDatagramProtocol(self.runner, natt=True).packetsReceived(
            [(marked[0], remote, local), (b"\x12\x34\x56\x78" + b"e" * 40, remote, local),
             (marked[1], remote, local), (marked[2], remote, local)])
        self.clock.advance(0)
        self.assertEqual([d for d, *_ in self.core.received],
                         ["esp", KNOWN_SA, COOKIE_RETRY, NEW_INIT_1])

    def test_otherPortsFirst(self):
        """
        New requests wait for the reactor's next turn: what another port
        read in the same wakeup (IKE_AUTH on the NAT-T port) goes before
        them; the flood's requests of both ports follow in the order read.
        """
        ike, natt = IKEDatagramProtocol(self.runner, natt=False), IKEDatagramProtocol(self.runner, natt=True)
        remote = ("198.51.100.1", 500)
        ike.packetsReceived([(NEW_INIT_1, remote, ("192.0.2.1", 500))])
        natt.packetsReceived([(b"\0" * 4 + NEW_INIT_2, remote, ("192.0.2.1", 4500)),
                              (b"\0" * 4 + KNOWN_SA, remote, ("192.0.2.1", 4500))])
        self.assertEqual([d for d, _, _ in self.core.received], [KNOWN_SA])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual([d for d, _, _ in self.core.received], [KNOWN_SA, NEW_INIT_1, NEW_INIT_2])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cookieAnswersSentAtOnce(self):
        """
        At the next turn the core's COOKIE answers for the new requests
        leave at once from the port and address each came to (with the
        non-ESP marker on the NAT-T port); what the core leaves to the
        full path reaches it as read (marker and all), in order; the
        monitor's counters count both.
        """
        from ikedtx.control.events import EventHub

        ike, natt = FakePort(500), FakePort(4500)
        self.runner.addPort(ike, natt=False)
        self.runner.addPort(natt, natt=True)
        self.runner.events = EventHub()
        asked = []

        def cookieAnswers(items):
            asked.append(items)
            answers = [(b"cookie:" + data[:1], remote, local) for data, remote, local in items if data == NEW_INIT_1]
            return answers, [item for item in items if item[0] != NEW_INIT_1]

        self.core.cookieAnswers = cookieAnswers
        remote = ("198.51.100.1", 500)
        IKEDatagramProtocol(self.runner, natt=False).packetsReceived(
            [(NEW_INIT_1, remote, ("192.0.2.1", 500)), (NEW_INIT_2, remote, ("192.0.2.1", 500))])
        IKEDatagramProtocol(self.runner, natt=True).packetsReceived(
            [(b"\0" * 4 + NEW_INIT_1, remote, ("192.0.2.1", 4500)),
             (b"\0" * 4 + NEW_INIT_2, remote, ("192.0.2.1", 4500))])
        self.assertEqual((ike.sent, natt.sent, self.core.received), ([], [], []))
        self.clock.advance(0)
        self.assertEqual([[d for d, _, _ in items] for items in asked], [[NEW_INIT_1, NEW_INIT_2]] * 2)
        self.assertEqual(ike.sent, [(b"cookie:\x01", remote, "192.0.2.1")])
        self.assertEqual(natt.sent, [(b"\0" * 4 + b"cookie:\x01", remote, "192.0.2.1")])
        self.assertEqual(self.core.received, [(NEW_INIT_2, ("192.0.2.1", 500), remote),
                                              (NEW_INIT_2, ("192.0.2.1", 4500), remote)])
        stats = dict(self.runner.events.stats.items())
        self.assertEqual((stats["ikes_msg_rcvd"], stats["ikes_msg_sent"]), (4, 2))

    def test_cookieAnswersNattWithoutMarker(self):
        """
        On the NAT-T port a batch with a datagram that does not carry the
        non-ESP marker goes the one by one way (ESP is never a COOKIE's
        request).
        """
        self.core.cookieAnswers = lambda items: self.fail("asked the core")
        items = [(b"\x12\x34\x56\x78" + NEW_INIT_1[4:], ("198.51.100.1", 4500), ("192.0.2.1", 4500))]
        self.assertEqual(self.runner.cookieAnswers(items, natt=True), items)

    def test_stopDropsWaiting(self):
        """
        A runner stopped before its next turn answers none of the waiting
        requests.
        """
        IKEDatagramProtocol(self.runner, natt=False).packetsReceived([(NEW_INIT_1, ("198.51.100.1", 500),
                                                                        ("192.0.2.1", 500))])
        self.runner.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.core.received, [])


class RunnerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.core = FakeCore()
        self.kernel = DecoupledKernel()
        self.runner = CoreRunner(self.core, self.kernel, self.clock)
        self.ike, self.natt = FakePort(500), FakePort(4500)
        self.runner.addPort(self.ike, natt=False)
        self.runner.addPort(self.natt, natt=True)

    def test_sendChoosesPortAndMarker(self):
        """
        A datagram leaves from the port of its local endpoint, with the
        non-ESP marker on the NAT-T port, from the local address given.
        """
        self.runner.execute([SendDatagram(b"a", ("192.0.2.1", 500), ("192.0.2.2", 500)),
                             SendDatagram(b"b", ("192.0.2.1", 4500), ("192.0.2.2", 4500)),
                             SendNatKeepalive(("192.0.2.1", 4500), ("192.0.2.2", 4500))])
        self.assertEqual(self.ike.sent, [(b"a", ("192.0.2.2", 500), "192.0.2.1")])
        self.assertEqual(self.natt.sent, [(b"\x00\x00\x00\x00b", ("192.0.2.2", 4500), "192.0.2.1"),
                                          (b"\xff", ("192.0.2.2", 4500), "192.0.2.1")])

    def test_sendEsp(self):
        """
        ESP in UDP leaves from the NAT-T port of its local endpoint without
        the non-ESP marker (RFC 3948 2.1); with no such port it is dropped.
        """
        self.runner.sendEsp(b"\x12\x34\x56\x78esp", ("192.0.2.1", 4500), ("192.0.2.2", 4500))
        self.runner.sendEsp(b"esp", ("192.0.2.1", 4501), ("192.0.2.2", 4500))
        self.assertEqual(self.natt.sent, [(b"\x12\x34\x56\x78esp", ("192.0.2.2", 4500), "192.0.2.1")])
        self.assertEqual(self.ike.sent, [])

    def test_sendEspSegments(self):
        """
        A GSO run of ESP packets leaves from the NAT-T port of its local
        endpoint in one send; with no such port it is dropped.
        """
        self.runner.sendEspSegments([b"abcd", b"ef"], 4, ("192.0.2.1", 4500), ("192.0.2.2", 4500))
        self.runner.sendEspSegments([b"abcd"], 4, ("192.0.2.1", 4501), ("192.0.2.2", 4500))
        self.assertEqual(self.natt.sent, [([b"abcd", b"ef"], 4, ("192.0.2.2", 4500), "192.0.2.1")])

    def test_timers(self):
        """
        SetTimer arms (or re-arms) a callLater, CancelTimer cancels it.
        """
        self.runner.execute([SetTimer("k", 5), SetTimer("k", 10), SetTimer("j", 1), CancelTimer("j")])
        self.clock.advance(5)
        self.assertEqual(self.core.received, [])
        self.clock.advance(5)
        self.assertEqual(self.core.received, [("timer", "k")])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_requests(self):
        """
        initiate returns a Deferred that RequestDone fires or fails.
        """
        d = self.runner.initiate("x")
        self.assertNoResult(d)
        self.runner.execute([RequestDone(7, result="sa")])
        self.assertEqual(self.successResultOf(d), "sa")
        d = self.runner.initiate("x")
        self.runner.execute([RequestDone(7, error=NegotiationFailed("no"))])
        self.failureResultOf(d, NegotiationFailed)

    def test_querySAUsage(self):
        """
        QuerySAUsage asks the datapath for each SA's counters and answers
        the core with them, L{None} for an SA the datapath does not know.
        """
        from tests.test_kernel_decoupled import sa

        known, unknown = sa(0x1000), sa(0x2000)
        self.kernel.addSA(known)
        self.runner.execute([QuerySAUsage(3, (known, unknown))])
        self.assertEqual(self.core.received, [("usage", 3, [KernelSAUsage(), None])])

    def test_removeChildSACountsForAccounting(self):
        """
        With RADIUS accounting for its IKE SA, a removed Child SA's IPsec
        SAs are queried for their counters (inbound as input) before they
        go, and the counters reach the accounting session; without it they
        just go.
        """
        from ikedtx.core.actions import RemoveChildSA

        from tests.test_kernel_decoupled import sa

        class Wiring:
            usages = []

            def accounts(self, spiI, spiR):
                return (spiI, spiR) == (b"i" * 8, b"r" * 8)

            def childUsage(self, spiI, spiR, inbound, usage):
                usage.addCallback(lambda u: self.usages.append((inbound, u)) or u)

        self.runner.radius = wiring = Wiring()
        inbound, outbound = sa(0x1000), sa(0x2000, inbound=False)
        self.kernel.addSA(inbound)
        self.kernel.addSA(outbound)
        self.kernel.log.clear()
        self.runner.execute([RemoveChildSA(1, (inbound, outbound), (), (b"i" * 8, b"r" * 8))])
        # Queried while the SAs were there (the recording datapath fails a
        # query of an SA it no longer has), then deleted.
        self.assertEqual(wiring.usages, [(True, KernelSAUsage()), (False, KernelSAUsage())])
        self.assertEqual(self.kernel.sas, {})
        other = sa(0x3000)
        self.kernel.addSA(other)
        self.kernel.log.clear()
        self.runner.execute([RemoveChildSA(2, (other,), (), (b"x" * 8, b"r" * 8))])
        self.assertEqual(len(wiring.usages), 2)
        self.assertEqual(self.kernel.sas, {})

    def test_updateChildSA(self):
        """
        UpdateChildSA (MOBIKE) moves each installed SA to its new form in
        the datapath; decoupled, the datapath is left alone.
        """
        from dataclasses import replace
        from ipaddress import ip_address

        from tests.test_kernel_decoupled import sa

        old = sa(0x1000, inbound=False)
        new = replace(old, destination=ip_address("192.0.2.99"), encapsulation=(4500, 4500))
        self.kernel.addSA(old)
        self.runner.execute([UpdateChildSA(1, (old,), (new,))])
        self.assertEqual(list(self.kernel.sas.values()), [new])
        self.runner.coupled = False
        self.runner.execute([UpdateChildSA(1, (new,), (old,))])
        self.assertEqual(list(self.kernel.sas.values()), [new])

    def test_releaseSpi(self):
        """
        ReleaseSpi gives an allocated SPI back to the datapath (its larval
        SA deleted), coupled or not: SPIs are allocated either way.
        """
        from ikedtx.core.actions import ReleaseSpi
        from ikedtx.wire.constants import ProtocolId

        spis = [self.successResultOf(self.kernel.allocateSpi(ProtocolId.ESP, "192.0.2.2", "192.0.2.1"))
                for _ in range(2)]
        self.runner.execute([ReleaseSpi(ProtocolId.ESP, spis[0], "192.0.2.2", "192.0.2.1")])
        self.assertEqual(self.kernel._reserved, {(ProtocolId.ESP, spis[1])})
        self.runner.coupled = False
        self.runner.execute([ReleaseSpi(ProtocolId.ESP, spis[1], "192.0.2.2", "192.0.2.1")])
        self.assertEqual(self.kernel._reserved, set())
        self.assertEqual([(entry[0], entry[1].spi, entry[1].inbound) for entry in self.kernel.log if entry[0] == "deleteSA"],
                         [("deleteSA", spis[0], True), ("deleteSA", spis[1], True)])

    def test_updateChildSAFlows(self):
        """
        UpdateChildSA's flows: the new one goes in before the old one goes
        (the selector is never without a policy).
        """
        from dataclasses import replace
        from ipaddress import ip_address

        from tests.test_kernel_xfrm import flow

        old = flow("out")
        new = replace(old, peerAddress=ip_address("192.0.2.99"))
        self.kernel.addFlow(old)
        self.kernel.log.clear()
        self.runner.execute([UpdateChildSA(1, (), (), (old,), (new,))])
        self.assertEqual(list(self.kernel.log), [("addFlow", new), ("deleteFlow", old)])
        self.assertEqual(self.kernel.flows, [new])

    def test_stop(self):
        """
        A stopped runner cancels its timers and arms no new one.
        """
        self.runner.execute([SetTimer("k", 5)])
        self.runner.stop()
        self.runner.execute([SetTimer("j", 5)])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PacketInfoTests(TestCase):
    def test_localAddress(self):
        """
        A wildcard port learns the address each datagram came to and
        answers from it (IP_PKTINFO).
        """
        from twisted.internet import defer, reactor

        received = defer.Deferred()

        class Echo:
            transport = None

            def makeConnection(self, transport):
                self.transport = transport

            def doStart(self):
                pass

            def doStop(self):
                pass

            def packetReceived(self, data, remote, local):
                if data == b"ping":
                    self.transport.writeFrom(b"pong", remote, local[0])
                else:
                    received.callback((data, remote, local))

        server = listenUDPWithPacketInfo(reactor, 0, Echo(), "0.0.0.0")
        client = listenUDPWithPacketInfo(reactor, 0, Echo(), "127.0.0.2")
        self.addCleanup(server.stopListening)
        self.addCleanup(client.stopListening)
        client.writeFrom(b"ping", ("127.0.0.3", server.getHost().port))

        def check(result):
            data, remote, local = result
            self.assertEqual(data, b"pong")
            self.assertEqual(remote, ("127.0.0.3", server.getHost().port))
            self.assertEqual(local, ("127.0.0.2", client.getHost().port))

        return received.addCallback(check)


class Sink:
    """
    A protocol for a L{PacketInfoPort} that records what it receives and
    fires C{done} at the C{expected}th datagram.
    """

    transport = None

    def __init__(self, expected=0):
        from twisted.internet import defer

        self.received = []
        self.expected = expected
        self.done = defer.Deferred()

    def makeConnection(self, transport):
        self.transport = transport

    def doStart(self):
        pass

    def doStop(self):
        pass

    def packetReceived(self, data, remote, local):
        self.received.append((data, remote[0]))
        if len(self.received) == self.expected:
            self.done.callback(None)


class SegmentTests(TestCase):
    def test_writeSegments(self):
        """
        C{writeSegments} sends its buffers as that many datagrams in one
        C{sendmsg} (UDP GSO), from the source address chosen; the receiver
        sees each datagram whole and in order.
        """
        from twisted.internet import reactor

        sink = Sink(4)
        server = listenUDPWithPacketInfo(reactor, 0, sink, "127.0.0.1")
        client = listenUDPWithPacketInfo(reactor, 0, Sink(), "0.0.0.0")
        self.addCleanup(server.stopListening)
        self.addCleanup(client.stopListening)
        buffers = [bytes([n]) * 1000 for n in range(1, 4)] + [b"tail"]
        client.writeSegments(buffers, 1000, ("127.0.0.1", server.getHost().port), "127.0.0.5")

        def check(_):
            self.assertEqual(sink.received, [(b, "127.0.0.5") for b in buffers])

        return sink.done.addCallback(check)

    def test_writeSegmentsRefused(self):
        """
        A run the kernel cannot send in one (more segments than UDP GSO
        takes) raises C{OSError}, for the caller to send one by one.
        """
        from twisted.internet import reactor

        port = listenUDPWithPacketInfo(reactor, 0, Sink(), "127.0.0.1")
        self.addCleanup(port.stopListening)
        self.assertRaises(OSError, port.writeSegments, [bytes(100)] * 300, 100, ("127.0.0.1", 9), None)


class MemoryUDP:
    """
    An in-memory UDP network: ports by C{(host, port)}, each datagram
    delivered one millisecond later through the clock (or dropped).

    @ivar sent: every C{(data, source, destination)} written, in order.
    @ivar dropNext: how many of the next datagrams are lost.
    """

    def __init__(self, clock):
        self.clock = clock
        self.protocols = {}
        self.sent = []
        self.dropNext = 0

    def port(self, host, number, protocol):
        self.protocols[(host, number)] = protocol
        return MemoryPort(self, host, number)

    def send(self, data, source, destination):
        self.sent.append((data, source, destination))
        if self.dropNext:
            self.dropNext -= 1
            return
        protocol = self.protocols.get(destination)
        if protocol is not None:
            self.clock.callLater(0.001, protocol.packetReceived, data, source, destination)


class MemoryPort:
    """
    The L{PacketInfoPort} side the runner uses: C{addressFamily},
    C{getHost().port} and C{writeFrom}.
    """

    def __init__(self, network, host, number):
        self.network = network
        self.host = host
        self.number = number
        self.addressFamily = socket.AF_INET

    def getHost(self):
        return type("Host", (), {"port": self.number})()

    def writeFrom(self, data, remote, source):
        self.network.send(bytes(data), (source or self.host, self.number), tuple(remote))


class CoreRunnerPairTests(SynchronousTestCase):
    """
    Two real L{CoreRunner}s with real cores over L{MemoryUDP}, their timers
    on one L{task.Clock}.
    """

    def setUp(self):
        from ikedtx.core.engine import IKECore
        from tests.corehelpers import DeterministicRandom
        from tests.test_core_exchanges import A_ADDR, B_ADDR, initiatorConfig, responderConfig

        self.clock = task.Clock()
        self.udp = MemoryUDP(self.clock)
        self.runners = {}
        for address, config in ((A_ADDR, initiatorConfig()), (B_ADDR, responderConfig())):
            kernel = DecoupledKernel(randomBytes=DeterministicRandom(address.encode() + b"kernel"))
            core = IKECore(config, now=self.clock.seconds, randomBytes=DeterministicRandom(address.encode()),
                           localAddressFor=lambda peer, address=address: address)
            runner = CoreRunner(core, kernel, self.clock)
            for number, natt in ((500, False), (4500, True)):
                runner.addPort(self.udp.port(address, number, IKEDatagramProtocol(runner, natt)), natt)
            self.runners[address] = runner
        self.a, self.b = self.runners[A_ADDR], self.runners[B_ADDR]

    def advance(self, seconds):
        for _ in range(int(seconds * 1000)):
            self.clock.advance(0.001)

    def test_negotiation(self):
        """
        initiate's Deferred fires with the IKE SA once the Child SA is in
        both kernels; IKE moved to the NAT-T port with the non-ESP marker
        (RFC 3948 2.2), as MOBIKE-capable initiators do.
        """
        d = self.a.initiate("ab")
        self.assertNoResult(d)
        self.advance(0.1)
        ikeSA = self.successResultOf(d)
        self.assertTrue(ikeSA.isEstablished)
        self.assertEqual((len(self.a.kernel.sas), len(self.b.kernel.sas)), (2, 2))
        (child,) = ikeSA.children
        self.assertIn((child.protocol, child.spiIn, child.kernelRecords[0][0].destination), self.a.kernel.sas)
        ports = [(source[1], data[:4] == b"\x00" * 4) for data, source, _ in self.udp.sent]
        self.assertEqual(ports[:2], [(500, False), (500, False)])
        self.assertTrue(all(marked for port, marked in ports[2:] if port == 4500))

    def test_cookieFastPath(self):
        """
        A responder that demands cookies answers a first IKE_SA_INIT with a
        COOKIE straight from the shell (L{IKECore.cookieAnswer}), counted
        by the core; the initiator comes back with it and gets in.
        """
        import dataclasses

        from ikedtx.wire.constants import NotifyType
        from ikedtx.wire.message import Message

        core = self.b.core
        core.settings = dataclasses.replace(core.settings, cookieThreshold=0)
        d = self.a.initiate("ab")
        self.advance(0.1)
        self.assertTrue(self.successResultOf(d).isEstablished)
        first = Message.decode(self.udp.sent[1][0])
        self.assertEqual([p.notifyType for p in first.payloads], [NotifyType.COOKIE])
        self.assertEqual(self.udp.sent[1][1], (self.b.core.localAddressFor(None), 500))
        self.assertEqual(core.counters["ikedtx_cookie_sent"], 1)

    def test_retransmitThroughCallLater(self):
        """
        A lost request is sent again when the retransmission timer, armed
        with callLater on the clock, fires (RFC 7296 2.1).
        """
        self.udp.dropNext = 1
        d = self.a.initiate("ab")
        self.advance(1.0)
        self.assertNoResult(d)
        self.assertEqual(len(self.udp.sent), 1)
        self.advance(1.1)
        self.assertTrue(self.successResultOf(d).isEstablished)
        self.assertEqual(self.udp.sent[0], self.udp.sent[1])

    def test_datapathEvents(self):
        """
        The runner is the kernel's event receiver: a hard expire reaching
        it deletes the Child SA in both daemons.
        """
        d = self.a.initiate("ab")
        self.advance(0.1)
        ikeSA = self.successResultOf(d)
        self.assertIs(self.a.kernel.events, self.a)
        (child,) = ikeSA.children
        self.a.kernel.events.expired(child.protocol, child.spiIn, child.kernelRecords[0][0].destination, True)
        self.advance(0.1)
        self.assertEqual((self.a.kernel.sas, self.b.kernel.sas), ({}, {}))
        self.assertEqual(ikeSA.children, [])

    def test_installFailure(self):
        """
        A kernel that refuses the install: the initiate Deferred fails and
        the Child SA is deleted with the peer.
        """
        from twisted.internet.defer import fail

        from ikedtx.kernel.interfaces import KernelError

        self.a.kernel.addSA = lambda sa: fail(KernelError("EINVAL"))
        d = self.a.initiate("ab")
        self.advance(0.1)
        self.failureResultOf(d, NegotiationFailed)
        self.assertEqual(self.b.kernel.sas, {})
        self.assertEqual([sa.children for sa in self.b.core.ikeSAs.values()], [[]])


class ReceiveBufferTests(SynchronousTestCase):
    def test_floodRoom(self):
        """
        An IKE port's receive buffer is raised to L{PacketInfoPort.
        receiveBuffer} (as root; else as far as net.core.rmem_max allows),
        past the kernel's default, for the bursts of a flood.
        """
        import os

        from twisted.internet import reactor

        from ikedtx.net.udp import PacketInfoPort

        port = listenUDPWithPacketInfo(reactor, 0, IKEDatagramProtocol(None, False), "127.0.0.1")
        self.addCleanup(port.stopListening)
        size = port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if os.geteuid() == 0:
            expected = PacketInfoPort.receiveBuffer
        else:
            with open("/proc/sys/net/core/rmem_max") as f:
                expected = min(int(f.read()), PacketInfoPort.receiveBuffer)
        # Linux reports twice what was set (room for its bookkeeping).
        self.assertGreaterEqual(size, expected)
        with open("/proc/sys/net/core/rmem_default") as f:
            self.assertGreater(size, int(f.read()) * 2 if os.geteuid() == 0 else 0)


class BatchReadTests(TestCase):
    """
    L{PacketInfoPort.doRead} reads what the socket holds (up to
    C{readBatch}) before handing it over, in one batch to a protocol
    with C{packetsReceived}, one by one to others.
    """

    def listen(self, protocol, batch=None):
        from twisted.internet import reactor

        port = listenUDPWithPacketInfo(reactor, 0, protocol, "127.0.0.1")
        self.addCleanup(port.stopListening)
        # Read here, not by the reactor.
        port.stopReading()
        if batch is not None:
            port.readBatch = batch
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        sender.bind(("127.0.0.1", 0))
        for n in range(10):
            sender.sendto(b"d%d" % (n,), ("127.0.0.1", port.getHost().port))
        return port, sender.getsockname()

    def batchProtocol(self):
        class Batches:
            transport = None

            def __init__(self):
                self.batches = []

            def makeConnection(self, transport):
                self.transport = transport

            def doStart(self):
                pass

            def doStop(self):
                pass

            def packetsReceived(self, batch):
                self.batches.append(batch)

        return Batches()

    def test_oneBatch(self):
        """
        Ten datagrams waiting: one read hands over all ten, in order, with
        the sender and the bound local address.
        """
        protocol = self.batchProtocol()
        port, source = self.listen(protocol)
        port.doRead()
        local = ("127.0.0.1", port.getHost().port)
        self.assertEqual(protocol.batches, [[(b"d%d" % (n,), source, local) for n in range(10)]])
        port.doRead()
        self.assertEqual(len(protocol.batches), 1)

    def test_batchBounded(self):
        """
        At most C{readBatch} datagrams a read; the rest wait for the next.
        """
        protocol = self.batchProtocol()
        port, source = self.listen(protocol, batch=4)
        for _ in range(3):
            port.doRead()
        self.assertEqual([[d for d, _, _ in b] for b in protocol.batches],
                         [[b"d0", b"d1", b"d2", b"d3"], [b"d4", b"d5", b"d6", b"d7"], [b"d8", b"d9"]])

    def test_boundPortReadsBytes(self):
        """
        A port bound to one address reads each datagram into a buffer it
        reuses and hands over a copy of its octets (C{bytes}, unchanged by
        the next read).
        """
        protocol = self.batchProtocol()
        port, source = self.listen(protocol)
        port.doRead()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        sender.sendto(b"x" * 100, ("127.0.0.1", port.getHost().port))
        port.doRead()
        first, second = protocol.batches
        self.assertEqual([type(d) for d, _, _ in first], [bytes] * 10)
        self.assertEqual(first[0][0], b"d0")
        self.assertEqual(second[0][0], b"x" * 100)

    def test_boundPortSendsWithoutAncillary(self):
        """
        A port bound to one address sends from it without IP_PKTINFO
        (C{sendto}, the kernel takes the bound address); to choose another
        source it sends the ancillary data, as a wildcard port does.
        """
        protocol = self.batchProtocol()
        port, source = self.listen(protocol)
        calls = []
        real = port.socket

        class Spy:
            def sendto(self, data, address):
                calls.append(("sendto", data, address))
                return real.sendto(data, address)

            def sendmsg(self, buffers, ancillary, flags, address):
                calls.append(("sendmsg", bytes(buffers[0]), address, len(ancillary)))
                return real.sendmsg(buffers, ancillary, flags, address)

        port.socket = Spy()
        self.addCleanup(setattr, port, "socket", real)
        port.writeFrom(b"a", source, "127.0.0.1")
        port.writeFrom(b"b", source, None)
        port.writeFrom(b"c", source, "127.0.0.2")
        self.assertEqual(calls, [("sendto", b"a", source), ("sendto", b"b", source),
                                 ("sendmsg", b"c", source, 1)])

    def test_octetsBounded(self):
        """
        At about C{readOctets} octets a read ends too (large datagrams).
        """
        protocol = self.batchProtocol()
        port, source = self.listen(protocol)
        port.readOctets = 5
        port.doRead()
        port.doRead()
        self.assertEqual([[d for d, _, _ in b] for b in protocol.batches], [[b"d0", b"d1", b"d2"], [b"d3", b"d4", b"d5"]])

    def test_oneByOne(self):
        """
        A protocol with only C{packetReceived} gets each datagram.
        """
        got = []
        protocol = self.batchProtocol()
        del type(protocol).packetsReceived
        type(protocol).packetReceived = lambda self, data, remote, local: got.append(data)
        port, source = self.listen(protocol)
        port.doRead()
        self.assertEqual(got, [b"d%d" % (n,) for n in range(10)])

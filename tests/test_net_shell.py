"""
Tests for L{ikedtx.net.shell} and L{ikedtx.net.udp}: the Twisted shell
carries out the core's actions, frames NAT-T datagrams, and never lets a
datagram's failure escape.
"""

import socket

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.core.actions import (
    CancelTimer, QuerySAUsage, RequestDone, SendDatagram, SendNatKeepalive, SetTimer, UpdateChildSA)
from ikedtx.core.errors import NegotiationFailed
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.kernel.interfaces import KernelSAUsage
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol
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


class FakeCore:
    def __init__(self):
        self.received = []
        self.fail = False
        self.answer = []

    def cookieAnswer(self, data, local, remote):
        return None

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

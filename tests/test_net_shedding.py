"""
Tests for L{ikedtx.net.shedding}: the socket filter drops only new
IKE_SA_INIT requests (a COOKIE retry, a known SA's message, ESP and
keepalives always pass), and L{Shedder} raises and lowers the share it
drops from how full the receive buffer is.
"""

import socket
import time

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.net import shedding
from ikedtx.net.shell import IKEDatagramProtocol
from ikedtx.net.udp import listenUDPWithPacketInfo

from tests.test_net_shell import COOKIE_RETRY, KNOWN_SA, NEW_INIT_1

KINDS = (("new", NEW_INIT_1), ("cookie", COOKIE_RETRY), ("known", KNOWN_SA))


class FilterTests(SynchronousTestCase):
    def setUp(self):
        self.receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.receiver.close)
        self.receiver.bind(("127.0.0.1", 0))
        self.receiver.setblocking(False)
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.sender.close)

    def received(self, natt, count=50):
        """
        How many of C{count} datagrams of each kind get through.
        """
        marker = b"\0" * 4 if natt else b""
        datagrams = [(name, marker + data) for name, data in KINDS]
        datagrams += [("keepalive", b"\xff"), ("esp", b"\x12\x34\x56\x78" + NEW_INIT_1)]
        counts = {}
        for name, data in datagrams:
            for _ in range(count):
                self.sender.sendto(data, self.receiver.getsockname())
            n = 0
            deadline = time.monotonic() + 2
            while n < count and time.monotonic() < deadline:
                try:
                    self.receiver.recv(65535)
                    n += 1
                except BlockingIOError:
                    time.sleep(0.01)
            counts[name] = n
        return counts

    def test_dropsOnlyNewRequests(self):
        """
        Dropping (nearly) all: every new IKE_SA_INIT request is dropped,
        nothing else, on the IKE port and past the NAT-T marker.
        """
        for natt in (False, True):
            shedding.attach(self.receiver, shedding.program(natt, 0xFFFFFFFF))
            self.assertEqual(self.received(natt), {"new": 0, "cookie": 50, "known": 50, "keepalive": 50, "esp": 50})

    def test_dropsNoneAtZero(self):
        """
        A share of 0 drops nothing; a detached filter neither.
        """
        shedding.attach(self.receiver, shedding.program(False, 0))
        self.assertEqual(self.received(False)["new"], 50)
        shedding.detach(self.receiver)
        self.assertEqual(self.received(False)["new"], 50)
        # Detaching without a filter is harmless.
        shedding.detach(self.receiver)

    def test_bufferFill(self):
        """
        The fill is what the kernel holds over the buffer's size.
        """
        self.assertEqual(shedding.bufferFill(self.receiver), 0.0)
        self.sender.sendto(b"x" * 300, self.receiver.getsockname())
        deadline = time.monotonic() + 2
        while shedding.bufferFill(self.receiver) == 0.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertGreater(shedding.bufferFill(self.receiver), 0.0)
        self.assertLess(shedding.bufferFill(self.receiver), 0.1)


class ShedderTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.fill = 0.0
        self.calls = []
        self.patch(shedding, "bufferFill", lambda skt: self.fill)
        self.patch(shedding, "attach", lambda skt, code: self.calls.append(("attach", code)))
        self.patch(shedding, "detach", lambda skt: self.calls.append(("detach",)))
        self.shedder = shedding.Shedder(False, self.clock)

    def read(self, fill, advance=0.06):
        self.fill = fill
        self.clock.advance(advance)
        self.shedder.beforeRead(None)
        return round(self.shedder.fraction, 4)

    def test_upWhileBehindDownWhenDrained(self):
        """
        More than half full at each read: the share goes up by a fifth of
        what is left, at most every 50 ms, to 95%; nearly empty, it comes
        down by 0.05 a step and the filter goes at 0; in between it holds.
        """
        self.assertEqual(self.read(0.3), 0.0)
        self.assertEqual(self.calls, [])
        self.assertEqual(self.read(0.8), 0.2)
        self.assertEqual(self.calls, [("attach", shedding.program(False, int(0.2 * 0xFFFFFFFF)))])
        self.assertEqual(self.read(0.8, advance=0.01), 0.2)
        self.assertEqual(self.read(0.8), 0.36)
        self.assertEqual(self.read(0.3), 0.36)
        for _ in range(30):
            self.read(0.9)
        self.assertEqual(self.shedder.fraction, 0.95)
        self.calls.clear()
        fractions = [self.read(0.05) for _ in range(20)]
        self.assertEqual(fractions[:3], [0.9, 0.85, 0.8])
        self.assertEqual(fractions[-1], 0.0)
        self.assertEqual(self.calls[-1], ("detach",))
        self.assertEqual(len(self.calls), fractions.index(0.0) + 1)

    def test_errorStopsIt(self):
        """
        A kernel that refuses the option: logged once, no more tries.
        """
        def refuse(skt):
            raise OSError(92, "Protocol not available")

        self.patch(shedding, "bufferFill", refuse)
        self.shedder.beforeRead(None)
        self.shedder.beforeRead(None)
        self.assertEqual(self.shedder.fraction, 0.0)
        self.assertTrue(self.shedder._failed)


class PortTests(TestCase):
    def test_ikePortsShed(self):
        """
        A port of the IKE protocol gets a L{Shedder} (NAT-T or not), which
        each read consults.
        """
        from twisted.internet import reactor

        for natt in (False, True):
            port = listenUDPWithPacketInfo(reactor, 0, IKEDatagramProtocol(None, natt), "127.0.0.1")
            self.addCleanup(port.stopListening)
            self.assertIsInstance(port.shedder, shedding.Shedder)
            self.assertEqual(port.shedder.natt, natt)
            seen = []
            port.shedder.beforeRead = seen.append
            port.doRead()
            self.assertEqual(seen, [port.socket])

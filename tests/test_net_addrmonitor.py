"""
Tests for L{ikedtx.net.addrmonitor}: rtnetlink address events for MOBIKE.
"""

import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.net.addrmonitor import AddressMonitor, addressEvents


def message(event, **attrs):
    return {"event": event, "attrs": list(attrs.items())}


class AddressEventsTests(SynchronousTestCase):
    def test_events(self):
        """
        RTM_NEWADDR adds, RTM_DELADDR removes, IFA_LOCAL wins over
        IFA_ADDRESS (a point-to-point peer), other messages are skipped.
        """
        self.assertEqual(addressEvents([
            message("RTM_NEWADDR", IFA_ADDRESS="192.0.2.3"),
            message("RTM_DELADDR", IFA_ADDRESS="10.0.0.2", IFA_LOCAL="10.0.0.1"),
            message("RTM_NEWLINK", IFA_ADDRESS="192.0.2.9"),
            message("RTM_NEWADDR"),
            message("RTM_DELADDR", IFA_ADDRESS="2001:db8::1"),
        ]), [("192.0.2.3", True), ("10.0.0.1", False), ("2001:db8::1", False)])


class FakeSocket:
    def __init__(self, batches):
        self.batches = batches
        self.closed = False
        self.pipe = os.pipe()

    def fileno(self):
        return self.pipe[0]

    def get(self):
        batch = self.batches.pop(0)
        if isinstance(batch, Exception):
            raise batch
        return batch

    def close(self):
        self.closed = True
        for fd in self.pipe:
            os.close(fd)


class Receiver:
    def __init__(self, fail=False):
        self.events = []
        self.fail = fail

    def addressChanged(self, address, added):
        self.events.append((address, added))
        if self.fail:
            raise RuntimeError("boom")


class FakeReactor:
    def __init__(self):
        self.readers = []

    def addReader(self, reader):
        self.readers.append(reader)

    def removeReader(self, reader):
        self.readers.remove(reader)


class AddressMonitorTests(SynchronousTestCase):
    def test_deliversAndSurvives(self):
        """
        Each readable batch goes to the receiver; a read error or a
        receiver's exception is logged and the monitor keeps going; stop
        removes the reader and closes the socket.
        """
        sock = FakeSocket([[message("RTM_NEWADDR", IFA_ADDRESS="192.0.2.3")], OSError("ENOBUFS"),
                           [message("RTM_DELADDR", IFA_ADDRESS="192.0.2.2")]])
        receiver, fakeReactor = Receiver(fail=True), FakeReactor()
        monitor = AddressMonitor(receiver, fakeReactor, socketFactory=lambda: sock)
        monitor.start()
        self.assertEqual(fakeReactor.readers, [monitor])
        for _ in range(3):
            monitor.doRead()
        self.assertEqual(receiver.events, [("192.0.2.3", True), ("192.0.2.2", False)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        monitor.stop()
        self.assertEqual((fakeReactor.readers, sock.closed), ([], True))


class RealMonitorTests(TestCase):
    def test_loopbackAddress(self):
        """
        In a network namespace of its own (the lab), adding an address to
        C{lo} is reported by the real rtnetlink socket.
        """
        from ikedtx.testing.lab.netns import Network, _setns

        ns = Network(self).namespace("mon")

        received = Deferred()

        class Got:
            def addressChanged(self, address, added):
                if address == "198.18.0.1" and not received.called:
                    received.callback(added)

        original = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/" + ns.netns, os.O_RDONLY)
        try:
            _setns(target)
            monitor = AddressMonitor(Got(), reactor)
            monitor.start()
        finally:
            _setns(original)
            os.close(target)
            os.close(original)
        self.addCleanup(monitor.stop)
        ns.ip("addr", "add", "198.18.0.1/32", "dev", "lo")
        received.addCallback(self.assertTrue)
        return received

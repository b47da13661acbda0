"""
Tests for L{ikedtx.net.addrmonitor}: rtnetlink address events for MOBIKE.
"""

import os
import socket
import struct

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.net.addrmonitor import RTM_DELADDR, RTM_NEWADDR, AddressMonitor, addressEvents, addressMessages


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


def netlink(kind, family=socket.AF_INET, attrs=(), cut=0):
    """
    One rtnetlink message: an ifaddrmsg with C{attrs} C{(type, value)} as
    rtattrs (padded to 4 octets), C{cut} octets short of its length.
    """
    body = struct.pack("=BBBBI", family, 24, 0, 0, 1)
    for attrType, value in attrs:
        attr = struct.pack("=HH", 4 + len(value), attrType) + value
        body += attr + bytes(-len(attr) % 4)
    message = struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body
    return message[:len(message) - cut] if cut else message


class AddressMessagesTests(SynchronousTestCase):
    def test_parsed(self):
        """
        RTM_NEWADDR and RTM_DELADDR of both families become the dicts
        addressEvents reads, in order; IFA_ADDRESS and IFA_LOCAL are read,
        other attributes and other messages (RTM_NEWLINK, 16) skipped.
        """
        v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
        data = (netlink(RTM_NEWADDR, attrs=[(1, bytes([10, 0, 0, 2])), (2, bytes([10, 0, 0, 1])), (3, b"eth0\0")])
                + netlink(16, attrs=[(1, bytes([192, 0, 2, 9]))])
                + netlink(RTM_DELADDR, socket.AF_INET6, attrs=[(1, v6)]))
        messages = addressMessages(data)
        self.assertEqual(messages, [
            {"event": "RTM_NEWADDR", "attrs": [("IFA_ADDRESS", "10.0.0.2"), ("IFA_LOCAL", "10.0.0.1")]},
            {"event": "RTM_DELADDR", "attrs": [("IFA_ADDRESS", "2001:db8::1")]},
        ])
        self.assertEqual(addressEvents(messages), [("10.0.0.1", True), ("2001:db8::1", False)])

    def test_malformed(self):
        """
        An address of the wrong size is skipped; a message or attribute
        whose length runs past the data ends what is read, without an
        exception.
        """
        self.assertEqual(addressMessages(netlink(RTM_NEWADDR, attrs=[(1, b"\x01\x02")])),
                         [{"event": "RTM_NEWADDR", "attrs": []}])
        good = netlink(RTM_NEWADDR, attrs=[(1, bytes([192, 0, 2, 1]))])
        self.assertEqual(addressMessages(good + netlink(RTM_DELADDR, attrs=[(1, bytes(4))], cut=2)),
                         [{"event": "RTM_NEWADDR", "attrs": [("IFA_ADDRESS", "192.0.2.1")]}])
        broken = bytearray(netlink(RTM_NEWADDR, attrs=[(1, bytes(4))]))
        broken[24:26] = struct.pack("=H", 200)
        self.assertEqual(addressMessages(bytes(broken)), [{"event": "RTM_NEWADDR", "attrs": []}])
        self.assertEqual(addressMessages(b"\x00" * 10), [])


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

# -*- test-case-name: tests.test_wire_natt -*-
"""
Tests for L{ikedtx.wire.natt}: framing on the NAT-T port (RFC 3948 2).
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire.errors import ShortDatagram
from ikedtx.wire.message import Message
from ikedtx.wire.natt import (
    NattKind,
    addNonEspMarker,
    classifyNattDatagram,
    isEspInUdp,
    isNatKeepalive,
    stripNonEspMarker,
)

from .test_wire_message import SPI_I, SPI_R


class NattTests(SynchronousTestCase):
    def test_ike(self):
        """
        RFC 3948 2.2: IKE follows four zero octets.
        """
        ike = Message(SPI_I, SPI_R, 37, 0, 0).encode()
        datagram = addNonEspMarker(ike)
        self.assertEqual(datagram, b"\x00\x00\x00\x00" + ike)
        kind, payload = classifyNattDatagram(datagram)
        self.assertIs(kind, NattKind.IKE)
        self.assertIsInstance(payload, memoryview)
        self.assertEqual(bytes(payload), ike)
        self.assertEqual(Message.decode(payload).encode(), ike)
        self.assertEqual(bytes(stripNonEspMarker(datagram)), ike)
        self.assertFalse(isEspInUdp(datagram))

    def test_esp(self):
        """
        RFC 3948 2.1: a non-zero SPI in the first four octets is ESP.
        """
        esp = b"\x00\x00\x10\x01" + b"\x00\x00\x00\x01" + b"payload"
        kind, payload = classifyNattDatagram(esp)
        self.assertIs(kind, NattKind.ESP)
        self.assertEqual(bytes(payload), esp)
        self.assertTrue(isEspInUdp(esp))
        self.assertRaises(ShortDatagram, stripNonEspMarker, esp)

    def test_keepalive(self):
        """
        RFC 3948 2.3: the one octet 0xFF is a NAT keepalive.
        """
        self.assertEqual(classifyNattDatagram(b"\xff"), (NattKind.KEEPALIVE, None))
        self.assertTrue(isNatKeepalive(b"\xff"))
        self.assertFalse(isNatKeepalive(b"\xfe"))
        self.assertFalse(isNatKeepalive(b"\xff\xff"))
        self.assertFalse(isEspInUdp(b"\xff"))

    def test_short(self):
        """
        Anything else shorter than four octets is dropped.
        """
        for data in (b"", b"\xfe", b"\x00\x00", b"\xff\xff\xff"):
            e = self.assertRaises(ShortDatagram, classifyNattDatagram, data)
            self.assertIsNone(e.notify)
        self.assertRaises(ShortDatagram, stripNonEspMarker, b"\x00\x00")

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


class NatDetectionHashTests(SynchronousTestCase):
    def test_layout(self):
        """
        RFC 7296 2.23: SHA-1(SPIi | SPIr | IP address | port).
        """
        import hashlib

        from ikedtx.wire.natt import natDetectionHash

        self.assertEqual(
            natDetectionHash(SPI_I, SPI_R, "192.0.2.1", 4500),
            hashlib.sha1(SPI_I + SPI_R + b"\xc0\x00\x02\x01" + b"\x11\x94").digest(),
        )
        self.assertEqual(
            natDetectionHash(SPI_I, bytes(8), "2001:db8::1", 500),
            hashlib.sha1(SPI_I + bytes(8) + bytes.fromhex("20010db8" + "00" * 11 + "01") + b"\x01\xf4").digest(),
        )

    def test_addressForms(self):
        """
        The address as text, as an ipaddress object, or as IPv6 text with
        a zone (which the hash does not carry) gives the same hash; text
        that is no address is refused.
        """
        import ipaddress

        from ikedtx.wire.natt import natDetectionHash

        for text in ("192.0.2.1", "2001:db8::1", "fe80::1"):
            self.assertEqual(natDetectionHash(SPI_I, SPI_R, text, 500),
                             natDetectionHash(SPI_I, SPI_R, ipaddress.ip_address(text), 500))
        self.assertEqual(natDetectionHash(SPI_I, SPI_R, "fe80::1%eth0", 500),
                         natDetectionHash(SPI_I, SPI_R, "fe80::1", 500))
        for bad in ("192.0.2", "host", "01.2.3.4"):
            self.assertRaises(ValueError, natDetectionHash, SPI_I, SPI_R, bad, 500)

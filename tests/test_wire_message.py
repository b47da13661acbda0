# -*- test-case-name: tests.test_wire_message -*-
"""
Tests for L{ikedtx.wire.message} and L{ikedtx.wire.header}: whole messages,
the IKE header (RFC 7296 3.1) and SK protection (RFC 7296 3.14) against the
ISKCipher contract.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire import payloads as P
from ikedtx.wire.constants import (
    AuthMethod,
    ExchangeType,
    HeaderFlag,
    NotifyType,
    PayloadType,
    ProtocolId,
)
from ikedtx.wire.errors import (
    InvalidMajorVersion,
    InvalidSyntax,
    LengthMismatch,
    ShortDatagram,
    WireEncodeError,
)
from ikedtx.wire.header import Header
from ikedtx.wire.message import Message

from .test_wire_payloads import h
from .wirehelpers import CbcHmacCipher, IntegrityError, NullCipher

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes.fromhex("1112131415161718")


def authMessage(**kwargs):
    """
    An IKE_AUTH request with encrypted payloads.
    """
    values = dict(
        spiI=SPI_I,
        spiR=SPI_R,
        exchangeType=ExchangeType.IKE_AUTH,
        flags=HeaderFlag.INITIATOR,
        messageId=1,
        encrypted=[
            P.IDi.fromFQDN("a.example"),
            P.Authentication(AuthMethod.SHARED_KEY_MIC, b"\xa5" * 32),
            P.Notify.initialContact(),
        ],
    )
    values.update(kwargs)
    return Message(**values)


class HeaderTests(SynchronousTestCase):
    """
    RFC 7296 3.1.
    """

    def test_vector(self):
        """
        SPIs, Next Payload, version 2.0, exchange type, flags, Message ID,
        Length.
        """
        header = Header(SPI_I, SPI_R, 33, 2, 0, 34, 0x08, 0, 28)
        vector = SPI_I + SPI_R + h("21 20 22 08 00000000 0000001c")
        self.assertEqual(header.encode(), vector)
        self.assertEqual(Header.decode(vector), header)
        self.assertTrue(header.isInitiator)
        self.assertFalse(header.isResponse)

    def test_short(self):
        """
        Fewer than 28 octets is L{ShortDatagram}, dropped.
        """
        error = self.assertRaises(ShortDatagram, Header.decode, b"\x00" * 27)
        self.assertIsNone(error.notify)

    def test_majorVersionHigher(self):
        """
        RFC 7296 2.5: a higher major version is answered with
        INVALID_MAJOR_VERSION; the error carries the header.
        """
        data = SPI_I + SPI_R + h("21 30 22 08 00000000 0000001c")
        error = self.assertRaises(InvalidMajorVersion, Header.decode, data)
        self.assertEqual(error.notify, NotifyType.INVALID_MAJOR_VERSION)
        self.assertEqual(error.majorVersion, 3)
        self.assertEqual(error.header.spiI, SPI_I)

    def test_majorVersionLower(self):
        """
        IKEv1 (major 1) is another protocol: dropped.
        """
        data = SPI_I + SPI_R + h("01 10 02 00 00000000 0000001c")
        error = self.assertRaises(InvalidMajorVersion, Message.decode, data)
        self.assertIsNone(error.notify)


class PlainMessageTests(SynchronousTestCase):
    """
    Unprotected messages (IKE_SA_INIT).
    """

    def test_ikeSaInitVector(self):
        """
        A hand-assembled IKE_SA_INIT request: header, SA, KE, Ni,
        N(NAT_DETECTION_SOURCE_IP).
        """
        message = Message(
            SPI_I,
            b"\x00" * 8,
            ExchangeType.IKE_SA_INIT,
            HeaderFlag.INITIATOR,
            0,
            [
                P.SecurityAssociation(
                    [P.Proposal(1, ProtocolId.IKE, [P.Transform(4, 31)])]
                ),
                P.KeyExchange(31, b"\x09" * 32),
                P.Nonce(b"\x07" * 16),
                P.Notify.natDetectionSourceIP(b"\x03" * 20),
            ],
        )
        vector = (
            SPI_I
            + b"\x00" * 8
            + h("21 20 22 08 00000000 00000088")
            + h("22 00 0014 00 00 0010 01 01 00 01 00 00 0008 04 00 001f")
            + h("28 00 0028 001f 0000")
            + b"\x09" * 32
            + h("29 00 0014")
            + b"\x07" * 16
            + h("00 00 001c 00 00 4004")
            + b"\x03" * 20
        )
        self.assertEqual(message.encode(), vector)
        decoded = Message.decode(vector)
        self.assertEqual(decoded, message)
        self.assertIsNone(decoded.aad)
        self.assertIsNone(decoded.sealedPayload)
        self.assertEqual(decoded.receivedHeader.length, len(vector))
        self.assertTrue(decoded.isInitiator)
        self.assertFalse(decoded.isResponse)
        self.assertEqual(
            [p.notifyType for p in decoded.payloadsOfType(PayloadType.NOTIFY)],
            [NotifyType.NAT_DETECTION_SOURCE_IP],
        )

    def test_flagsKept(self):
        """
        Header flag bits RFC 7296 reserves survive a round trip, as does
        the minor version.
        """
        message = Message(SPI_I, SPI_R, 37, 0x20 | 0x01, 7, minorVersion=1)
        decoded = Message.decode(message.encode())
        self.assertEqual((decoded.flags, decoded.minorVersion), (0x21, 1))
        self.assertTrue(decoded.isResponse)

    def test_empty(self):
        """
        A message without payloads is just the header.
        """
        self.assertEqual(len(Message(SPI_I, SPI_R, 37, 0, 0).encode()), 28)

    def test_spiLength(self):
        """
        SPIs are 8 octets.
        """
        self.assertRaises(WireEncodeError, Message, b"\x01", SPI_R, 34, 0, 0)

    def test_headerLengthLarger(self):
        """
        A Length larger than the datagram is dropped.
        """
        data = Message(SPI_I, SPI_R, 37, 0, 0, [P.VendorID(b"v")]).encode()
        error = self.assertRaises(LengthMismatch, Message.decode, data[:-1])
        self.assertIsNone(error.notify)
        self.assertEqual(error.header.messageId, 0)

    def test_trailingDatagram(self):
        """
        Octets after the message's Length are dropped.
        """
        data = Message(SPI_I, SPI_R, 37, 0, 0, [P.VendorID(b"v")]).encode()
        self.assertRaises(LengthMismatch, Message.decode, data + b"\x00")

    def test_payloadErrorCarriesHeader(self):
        """
        A malformed payload raises L{InvalidSyntax} carrying the header.
        """
        data = bytearray(Message(SPI_I, SPI_R, 37, 0, 9, [P.Nonce(b"n" * 16)]).encode())
        data[30:32] = b"\x00\x03"
        error = self.assertRaises(InvalidSyntax, Message.decode, bytes(data))
        self.assertEqual(error.header.messageId, 9)
        self.assertEqual(error.notify, NotifyType.INVALID_SYNTAX)

    def test_memoryview(self):
        """
        Decoding accepts a memoryview (e.g. after the non-ESP marker).
        """
        data = Message(SPI_I, SPI_R, 37, 0, 0, [P.VendorID(b"v")]).encode()
        self.assertEqual(Message.decode(memoryview(b"\x00" * 4 + data)[4:]).encode(), data)


class EncryptedMessageTests(SynchronousTestCase):
    """
    SK payload protection through the ISKCipher contract.
    """

    def test_aadIsEverythingBeforeTheIv(self):
        """
        C{seal} gets the IKE header and SK generic header with their final
        lengths and the inner chain; the datagram is aad + sealed.
        """
        cipher = NullCipher()
        message = authMessage()
        data = message.encode(cipher)
        inner = P.encodePayloads(message.encrypted)[1]
        self.assertEqual(len(data), 28 + 4 + cipher.sealedLength(len(inner)))
        [(method, aad)] = cipher.calls
        self.assertEqual(method, "seal")
        self.assertEqual(aad, data[:32])
        self.assertEqual(
            aad,
            SPI_I + SPI_R + h("2e 20 23 08 00000001") + len(data).to_bytes(4, "big")
            + h("23 00") + (len(data) - 28).to_bytes(2, "big"),
        )
        self.assertEqual(data[32 + 8 : 32 + 8 + len(inner)], inner)

    def test_decodeKeepsSealed(self):
        """
        Decoding keeps the SK payload sealed and remembers the aad.
        """
        cipher = CbcHmacCipher(b"k" * 32, b"i" * 32)
        data = authMessage().encode(cipher)
        decoded = Message.decode(data)
        sealed = decoded.sealedPayload
        self.assertIsInstance(sealed, P.Encrypted)
        self.assertEqual(sealed.innerType, PayloadType.IDi)
        self.assertEqual(decoded.aad, data[:32])
        self.assertIsNone(decoded.encrypted)
        self.assertFalse(decoded.isFragment)

    def test_decrypt(self):
        """
        L{Message.decrypt} opens with the remembered aad and decodes the
        inner chain.
        """
        cipher = CbcHmacCipher(b"k" * 32, b"i" * 32)
        message = authMessage()
        data = message.encode(cipher)
        decoded = Message.decode(data)
        self.assertEqual(decoded.decrypt(cipher), message.encrypted)
        self.assertEqual(cipher.calls[-1], ("open", data[:32]))

    def test_reencodeVerbatim(self):
        """
        A decoded protected message re-encodes to the same octets without
        a cipher.
        """
        data = authMessage().encode(CbcHmacCipher(b"k" * 32, b"i" * 32))
        self.assertEqual(Message.decode(data).encode(), data)

    def test_integrityError(self):
        """
        A flipped ciphertext bit fails in the cipher; nothing is decoded.
        """
        cipher = CbcHmacCipher(b"k" * 32, b"i" * 32)
        data = bytearray(authMessage().encode(cipher))
        data[50] ^= 1
        self.assertRaises(IntegrityError, Message.decode(bytes(data)).decrypt, cipher)

    def test_tamperedHeader(self):
        """
        The ICV covers the header: changing the Message ID fails.
        """
        cipher = CbcHmacCipher(b"k" * 32, b"i" * 32)
        data = bytearray(authMessage().encode(cipher))
        data[23] = 2
        self.assertRaises(IntegrityError, Message.decode(bytes(data)).decrypt, cipher)

    def test_outerPayloadsBeforeSk(self):
        """
        Unencrypted payloads precede the SK payload, whose type the last
        of them names; they are part of the aad.
        """
        cipher = NullCipher()
        message = authMessage(payloads=[P.VendorID(b"v")])
        data = message.encode(cipher)
        self.assertEqual(data[16], PayloadType.VENDOR_ID)
        self.assertEqual(data[28], PayloadType.SK)
        decoded = Message.decode(data)
        self.assertEqual(decoded.payloads[0], P.VendorID(b"v"))
        self.assertEqual(decoded.aad, data[: 28 + 5 + 4])
        self.assertEqual(decoded.decrypt(cipher), message.encrypted)

    def test_emptySk(self):
        """
        An empty encrypted list makes an SK payload with Next Payload 0
        (an INFORMATIONAL liveness check).
        """
        cipher = NullCipher()
        data = authMessage(exchangeType=37, encrypted=[]).encode(cipher)
        decoded = Message.decode(data)
        self.assertEqual(decoded.sealedPayload.innerType, 0)
        self.assertEqual(decoded.decrypt(cipher), [])

    def test_decryptUnsealed(self):
        """
        A message without an SK payload cannot be decrypted.
        """
        self.assertRaises(ValueError, Message(SPI_I, SPI_R, 37, 0, 0).decrypt, NullCipher())

    def test_decryptConstructed(self):
        """
        A message built with a sealed payload computes its aad.
        """
        cipher = NullCipher()
        data = authMessage().encode(cipher)
        decoded = Message.decode(data)
        rebuilt = Message(SPI_I, SPI_R, 35, 8, 1, decoded.payloads)
        self.assertEqual(rebuilt.decrypt(cipher), authMessage().encrypted)

    def test_innerErrorCarriesHeader(self):
        """
        A malformed inner chain raises L{InvalidSyntax} with the outer
        header.
        """
        cipher = NullCipher()
        bad = P.Nonce(b"x")
        data = authMessage(encrypted=[bad]).encode(cipher)
        error = self.assertRaises(InvalidSyntax, Message.decode(data).decrypt, cipher)
        self.assertEqual(error.header.messageId, 1)

    def test_nestedSk(self):
        """
        An SK payload inside an SK payload is malformed.
        """
        cipher = NullCipher()
        data = authMessage(encrypted=[P.Encrypted(0, b"abc")]).encode(cipher)
        self.assertRaises(InvalidSyntax, Message.decode(data).decrypt, cipher)

    def test_noCipher(self):
        """
        Encrypted payloads need a cipher.
        """
        self.assertRaises(WireEncodeError, authMessage().encode)

    def test_bothSealedAndEncrypted(self):
        """
        A message cannot carry a sealed payload and payloads to encrypt.
        """
        message = authMessage(payloads=[P.Encrypted(0, b"")])
        self.assertRaises(WireEncodeError, message.encode, NullCipher())

    def test_lyingCipher(self):
        """
        A cipher that seals a different length than it announced is caught.
        """

        class Lying(NullCipher):
            def sealedLength(self, n):
                return NullCipher.sealedLength(self, n) + 1

        self.assertRaises(WireEncodeError, authMessage().encode, Lying())

    def test_equality(self):
        """
        Messages compare by fields.
        """
        self.assertEqual(authMessage(), authMessage())
        self.assertNotEqual(authMessage(), authMessage(messageId=2))

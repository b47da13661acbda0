# -*- test-case-name: tests.test_wire_malformed -*-
"""
Malformed input: every length and count check of the decoder, and the
Notify each error says to answer with (RFC 7296 2.5, 3.10.1).
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire import payloads as P
from ikedtx.wire.constants import NotifyType, PayloadType
from ikedtx.wire.errors import (
    InvalidSyntax,
    LengthMismatch,
    MalformedMessage,
    ShortDatagram,
    UnsupportedCriticalPayload,
)
from ikedtx.wire.message import Message

from .test_wire_message import SPI_I, SPI_R
from .test_wire_payloads import h
from .wirehelpers import NullCipher


def wrap(firstType, chain, messageId=5):
    """
    An IKE header (INFORMATIONAL) in front of a raw payload chain.
    """
    return (
        SPI_I
        + SPI_R
        + bytes([firstType, 0x20, 37, 0x08])
        + messageId.to_bytes(4, "big")
        + (28 + len(chain)).to_bytes(4, "big")
        + chain
    )


class MalformedMixin:
    def assertMalformed(self, firstType, chain, fragment=None, error=InvalidSyntax):
        """
        Decoding C{chain} in a message raises C{error}; the exception says
        why, carries the header and, for L{InvalidSyntax}, INVALID_SYNTAX.
        """
        e = self.assertRaises(error, Message.decode, wrap(firstType, chain))
        self.assertIsInstance(e, MalformedMessage)
        self.assertEqual(e.header.messageId, 5)
        self.assertTrue(str(e))
        if fragment is not None:
            self.assertIn(fragment, str(e))
        if error is InvalidSyntax:
            self.assertEqual(e.notify, NotifyType.INVALID_SYNTAX)
        return e


class ChainTests(MalformedMixin, SynchronousTestCase):
    """
    The generic payload header (RFC 7296 3.2).
    """

    def test_zeroLength(self):
        """
        A Payload Length of zero (which would loop forever) is rejected.
        """
        self.assertMalformed(PayloadType.VENDOR_ID, h("00 00 0000"), fragment="length 0")

    def test_belowGenericHeader(self):
        """
        A Payload Length below 4 is rejected.
        """
        self.assertMalformed(PayloadType.VENDOR_ID, h("00 00 0003 00"))

    def test_overrunsMessage(self):
        """
        A payload claiming more octets than the message holds.
        """
        self.assertMalformed(PayloadType.VENDOR_ID, h("00 00 0009 0102"), fragment="overruns")

    def test_truncatedHeader(self):
        """
        The chain announces another payload but the message ends.
        """
        self.assertMalformed(PayloadType.VENDOR_ID, h("2b 00 0005 01 2b 00"), fragment="truncated")
        self.assertMalformed(PayloadType.VENDOR_ID, h("2b 00 0005 01"))

    def test_trailingData(self):
        """
        Octets after the last payload (Next Payload 0).
        """
        self.assertMalformed(PayloadType.VENDOR_ID, h("00 00 0005 01 00"), fragment="trail")

    def test_belowFixedSize(self):
        """
        Bodies shorter than the payload's fixed fields: KE, ID, CERT, AUTH,
        Notify, Delete, TS, CP, EAP, SKF.
        """
        for payloadType in (34, 35, 36, 37, 38, 39, 41, 42, 44, 45, 47, 48, 53):
            self.assertMalformed(payloadType, h("00 00 0004"), fragment="shorter")
        self.assertMalformed(PayloadType.KE, h("00 00 0007 001f00"))

    def test_unknownCritical(self):
        """
        RFC 7296 2.5: an unknown payload with the critical bit set rejects
        the message with UNSUPPORTED_CRITICAL_PAYLOAD naming the type.
        """
        e = self.assertMalformed(200, h("00 80 0006 0102"), error=UnsupportedCriticalPayload)
        self.assertEqual(e.notify, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)
        self.assertEqual(e.notifyData, b"\xc8")
        self.assertEqual(e.payloadType, 200)

    def test_unknownCriticalAfterKnown(self):
        """
        The check applies anywhere in the chain.
        """
        self.assertMalformed(
            PayloadType.VENDOR_ID, h("31 00 0005 01 00 80 0004"), error=UnsupportedCriticalPayload
        )

    def test_skNotLast(self):
        """
        RFC 7296 3.14: the SK payload must be the last payload.
        """
        self.assertMalformed(PayloadType.SK, h("00 00 0008 00000000 2b 00 0005 01"), fragment="not the last")

    def test_skfNotLast(self):
        """
        RFC 7383 2.5: so must SKF.
        """
        self.assertMalformed(PayloadType.SKF, h("00 00 000c 0001 0001 00000000 00"))

    def test_skfNumbers(self):
        """
        RFC 7383 2.6: Fragment Number 1..Total Fragments, Total at least 1.
        """
        self.assertMalformed(PayloadType.SKF, h("00 00 000c 0000 0001 00000000"), fragment="fragment 0 of 1")
        self.assertMalformed(PayloadType.SKF, h("00 00 000c 0003 0002 00000000"))
        self.assertMalformed(PayloadType.SKF, h("00 00 000c 0000 0000 00000000"))

    def test_innerUnknownCritical(self):
        """
        Inside SK, an unknown critical payload is reported the same way.
        """
        cipher = NullCipher()
        message = Message(SPI_I, SPI_R, 37, 8, 3, encrypted=[P.UnknownPayload(99, b"", critical=True)])
        e = self.assertRaises(UnsupportedCriticalPayload, Message.decode(message.encode(cipher)).decrypt, cipher)
        self.assertEqual(e.notifyData, b"\x63")
        self.assertEqual(e.header.messageId, 3)


class HeaderLengthTests(SynchronousTestCase):
    """
    Header-level lengths: dropped without an answer.
    """

    def test_lengthBelowHeader(self):
        data = wrap(0, b"")
        data = data[:24] + (27).to_bytes(4, "big")
        e = self.assertRaises(LengthMismatch, Message.decode, data)
        self.assertIsNone(e.notify)

    def test_shortDatagram(self):
        e = self.assertRaises(ShortDatagram, Message.decode, b"")
        self.assertIsNone(e.notify)
        self.assertIsNone(e.header)
        self.assertIn("ShortDatagram", repr(e))


class SecurityAssociationTests(MalformedMixin, SynchronousTestCase):
    """
    RFC 7296 3.3: "an implementation MUST check that the total Payload
    Length is consistent with the payload's internal lengths and counts".
    """

    def assertSA(self, body, fragment=None):
        self.assertMalformed(
            PayloadType.SA, (4 + len(body)).to_bytes(4, "big") + body, fragment=fragment
        )

    def test_proposalTruncated(self):
        self.assertSA(h("00 00 0008 01 01 00"), "truncated")

    def test_proposalZeroLength(self):
        self.assertSA(h("00 00 0000 01 01 00 00"), "below")

    def test_proposalBelowSpi(self):
        """
        A proposal shorter than 8 + SPI Size.
        """
        self.assertSA(h("00 00 000a 01 03 04 00 cafe"), "SPI size")

    def test_proposalOverrunsSa(self):
        self.assertSA(h("00 00 0010 01 01 00 00"), "overruns")

    def test_lastSubstrucOnLastProposal(self):
        """
        The last proposal's Last Substruc must be 0.
        """
        self.assertSA(h("02 00 0008 01 01 00 00"), "Last Substruc")

    def test_lastSubstrucOnFirstProposal(self):
        """
        A proposal followed by another must say 2.
        """
        self.assertSA(h("00 00 0008 01 01 00 00 00 00 0008 02 01 00 00"), "Last Substruc")

    def test_lastSubstrucValue(self):
        self.assertSA(h("03 00 0008 01 01 00 00 00 00 0008 02 01 00 00"))

    def test_transformCount(self):
        """
        Num Transforms must equal the transforms carried.
        """
        self.assertSA(h("00 00 0010 01 01 00 02 00 00 0008 04 00 0013"), "announces 2")

    def test_transformTruncated(self):
        self.assertSA(h("00 00 000c 01 01 00 01 00 00 0008"), "truncated")

    def test_transformZeroLength(self):
        self.assertSA(h("00 00 0010 01 01 00 01 00 00 0000 04 00 0013"), "below 8")

    def test_transformOverruns(self):
        self.assertSA(h("00 00 0010 01 01 00 01 00 00 000c 04 00 0013"), "overruns")

    def test_transformLastSubstruc(self):
        self.assertSA(h("00 00 0010 01 01 00 01 03 00 0008 04 00 0013"), "Last Substruc")
        self.assertSA(
            h("00 00 0018 01 01 00 02 00 00 0008 04 00 0013 00 00 0008 04 00 001f"), "Last Substruc"
        )

    def test_attributeTruncated(self):
        self.assertSA(h("00 00 0012 01 01 00 01 00 00 000a 01 00 000c 800e"), "attribute truncated")

    def test_tlvAttributeOverruns(self):
        self.assertSA(h("00 00 0014 01 01 00 01 00 00 000c 01 00 000c 0001 0005"), "overruns")


class PayloadFixedSizeTests(MalformedMixin, SynchronousTestCase):
    """
    Fixed sizes and internal counts of the other payloads.
    """

    def test_idIPv4(self):
        """
        ID_IPV4_ADDR must be 4 octets, ID_IPV6_ADDR 16.
        """
        self.assertMalformed(PayloadType.IDi, h("00 00 000b 01 000000 c00002"), "not 4")
        self.assertMalformed(PayloadType.IDr, h("00 00 000c 05 000000 c0000201"), "not 16")

    def test_certreqNotHashes(self):
        """
        An X.509 CERTREQ is a whole number of SHA-1 hashes.
        """
        self.assertMalformed(PayloadType.CERTREQ, h("00 00 0008 04 010203"))

    def test_digitalSignatureOverrun(self):
        """
        RFC 7427: the AlgorithmIdentifier length must fit.
        """
        self.assertMalformed(PayloadType.AUTH, h("00 00 000a 0e 000000 05 3000"))
        self.assertMalformed(PayloadType.AUTH, h("00 00 0008 0e 000000"))

    def test_nonceSize(self):
        """
        RFC 7296 3.9: 16 to 256 octets.
        """
        self.assertMalformed(PayloadType.NONCE, h("00 00 0013") + b"n" * 15, "nonce of 15")
        self.assertMalformed(PayloadType.NONCE, h("00 00 0105") + b"n" * 257, "nonce of 257")

    def test_notifySpiOverrun(self):
        """
        A Notify SPI Size larger than the payload.
        """
        self.assertMalformed(PayloadType.NOTIFY, h("00 00 000a 03 04 4009 0102"), "SPI size 4")

    def test_notifyTypedSizes(self):
        """
        The typed notifies' data sizes.
        """
        for notifyType, data in [
            (NotifyType.NAT_DETECTION_SOURCE_IP, b"\x00" * 19),
            (NotifyType.NAT_DETECTION_DESTINATION_IP, b"\x00" * 21),
            (NotifyType.COOKIE, b""),
            (NotifyType.COOKIE, b"\x00" * 65),
            (NotifyType.INVALID_KE_PAYLOAD, b"\x00"),
            (NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, b""),
            (NotifyType.SET_WINDOW_SIZE, b"\x00\x01"),
            (NotifyType.IPCOMP_SUPPORTED, b"\x00\x01"),
            (NotifyType.SIGNATURE_HASH_ALGORITHMS, b"\x00\x02\x00"),
        ]:
            body = h("00 00") + notifyType.to_bytes(2, "big") + data
            self.assertMalformed(
                PayloadType.NOTIFY, (4 + len(body)).to_bytes(4, "big") + body, notifyType.name
            )

    def test_rekeySaSpi(self):
        """
        REKEY_SA names an AH/ESP SA by a 4-octet SPI.
        """
        self.assertMalformed(PayloadType.NOTIFY, h("00 00 0008 03 00 4009"), "REKEY_SA")
        self.assertMalformed(PayloadType.NOTIFY, h("00 00 000c 01 04 4009 01020304"), "REKEY_SA")

    def test_deleteSizes(self):
        """
        RFC 7296 3.11: SPI Size 0 for IKE, 4 for AH/ESP, and the body holds
        exactly Num of SPIs SPIs.
        """
        self.assertMalformed(PayloadType.DELETE, h("00 00 000c 01 04 0001 01020304"), "IKE")
        self.assertMalformed(PayloadType.DELETE, h("00 00 0010 03 08 0001 0102030405060708"), "AH/ESP")
        self.assertMalformed(PayloadType.DELETE, h("00 00 000c 03 04 0002 01020304"), "2 SPIs")
        self.assertMalformed(PayloadType.DELETE, h("00 00 0010 03 04 0001 01020304 01020304"))
        self.assertMalformed(PayloadType.DELETE, h("00 00 0008 01 00 0001"), "size zero")

    def test_tsIPv4Size(self):
        """
        A TS_IPV4_ADDR_RANGE selector that is not 16 octets.
        """
        self.assertMalformed(
            PayloadType.TSi, h("00 00 001c 01 000000 07 00 0014 0000 ffff 0a000001 0a000002 00000000"), "not 16"
        )

    def test_tsIPv6Size(self):
        self.assertMalformed(
            PayloadType.TSr, h("00 00 0018 01 000000 08 00 0010 0000 ffff 0a000001 0a000002"), "not 40"
        )

    def test_tsCount(self):
        self.assertMalformed(
            PayloadType.TSi, h("00 00 0018 02 000000 07 00 0010 0000 ffff 0a000001 0a000002"), "announces 2"
        )

    def test_tsZeroLength(self):
        self.assertMalformed(PayloadType.TSi, h("00 00 000c 01 000000 c8 00 0000"), "below 4")

    def test_tsOverrun(self):
        self.assertMalformed(PayloadType.TSi, h("00 00 000c 01 000000 c8 00 0008"), "overruns")

    def test_tsTruncated(self):
        self.assertMalformed(PayloadType.TSi, h("00 00 000a 01 000000 07 00"), "truncated")

    def test_cpAttributeOverrun(self):
        self.assertMalformed(PayloadType.CP, h("00 00 000e 01 000000 0001 0004 0a00"), "overruns")
        self.assertMalformed(PayloadType.CP, h("00 00 000a 01 000000 0001"), "truncated")

    def test_cpAttributeSizes(self):
        """
        Address attributes have fixed sizes (RFC 7296 3.15.1).
        """
        self.assertMalformed(PayloadType.CP, h("00 00 000e 02 000000 0001 0002 0a00"), "INTERNAL_IP4_ADDRESS")
        self.assertMalformed(
            PayloadType.CP, h("00 00 001c 02 000000 0008 0010 20010db8000000000000000000000001"), "INTERNAL_IP6_ADDRESS"
        )
        self.assertMalformed(PayloadType.CP, h("00 00 000f 02 000000 000e 0003 000100"), "odd")

    def test_eap(self):
        """
        The EAP Length must equal the payload body; Request/Response need a
        Type; Success/Failure have no data.
        """
        self.assertMalformed(PayloadType.EAP, h("00 00 000a 01 01 0005 01 00"), "EAP Length")
        self.assertMalformed(PayloadType.EAP, h("00 00 0008 01 01 0004"), "without a Type")
        self.assertMalformed(PayloadType.EAP, h("00 00 0009 03 01 0005 00"), "success")

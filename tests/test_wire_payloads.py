# -*- test-case-name: tests.test_wire_payloads -*-
"""
Byte-exact vectors and round trips for every payload of RFC 7296 section 3
(and SKF, RFC 7383 2.5).  The vectors are assembled by hand, field by field,
from the RFC figures; each test checks both directions.
"""

import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire import payloads as P
from ikedtx.wire.constants import (
    AuthMethod,
    CertEncoding,
    ConfigurationAttribute as CA,
    ConfigurationType,
    DhId,
    EapCode,
    EapType,
    EncrId,
    EsnId,
    HashAlgorithm,
    IdType,
    IntegId,
    IpcompTransform,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformType,
)
from ikedtx.wire.errors import InvalidSyntax, WireEncodeError


def h(text):
    """
    Hex with spaces, newlines and # comments allowed.
    """
    lines = [line.split("#")[0] for line in text.splitlines()]
    return bytes.fromhex("".join(lines))


class VectorMixin:
    """
    Check that a payload encodes to C{vector} (generic header included,
    as the last payload of a chain) and that C{vector} decodes back.
    """

    def assertVector(self, payload, vector):
        first, encoded = P.encodePayloads([payload])
        self.assertEqual(first, payload.payloadType)
        self.assertEqual(encoded.hex(), vector.hex())
        decoded = P.decodePayloads(vector, payload.payloadType)
        self.assertEqual(decoded, [payload])
        return decoded[0]


class SecurityAssociationTests(VectorMixin, SynchronousTestCase):
    """
    RFC 7296 3.3: SA payload, proposals, transforms and attributes.
    """

    def test_ikeProposal(self):
        """
        An IKE proposal (no SPI) with ENCR_AES_CBC/256 (TV attribute),
        PRF_HMAC_SHA2_256, AUTH_HMAC_SHA2_256_128 and group 31; the Last
        Substruc fields are 0 for the last transform and 3 otherwise
        (RFC 7296 3.3.1, 3.3.2, 3.3.5).
        """
        sa = P.SecurityAssociation(
            [
                P.Proposal(
                    1,
                    ProtocolId.IKE,
                    [
                        P.Transform(TransformType.ENCR, EncrId.AES_CBC, keyLength=256),
                        P.Transform(TransformType.PRF, PrfId.HMAC_SHA2_256),
                        P.Transform(TransformType.INTEG, IntegId.HMAC_SHA2_256_128),
                        P.Transform(TransformType.DH, DhId.CURVE25519),
                    ],
                )
            ]
        )
        vector = h(
            """
            00 00 0030           # generic: next 0, not critical, length 48
            00 00 002c 01 01 00 04   # proposal: last, len 44, #1, IKE, SPI size 0, 4 transforms
            03 00 000c 01 00 000c 800e 0100  # ENCR AES_CBC, KEY_LENGTH (TV) 256
            03 00 0008 02 00 0005            # PRF HMAC_SHA2_256
            03 00 0008 03 00 000c            # INTEG HMAC_SHA2_256_128
            00 00 0008 04 00 001f            # DH 31, last transform
            """
        )
        decoded = self.assertVector(sa, vector)
        self.assertEqual(decoded.proposals[0].transforms[0].keyLength, 256)
        self.assertIsNone(decoded.proposals[0].transforms[1].keyLength)

    def test_twoEspProposalsWithSpi(self):
        """
        Two ESP proposals with 4-octet SPIs: the first proposal's Last
        Substruc is 2 (more follow), the second's 0.
        """
        sa = P.SecurityAssociation(
            [
                P.Proposal(
                    1,
                    ProtocolId.ESP,
                    [
                        P.Transform(TransformType.ENCR, EncrId.AES_GCM_16, keyLength=128),
                        P.Transform(TransformType.ESN, EsnId.NO_ESN),
                    ],
                    spi=b"\xca\xfe\x00\x01",
                ),
                P.Proposal(
                    2,
                    ProtocolId.ESP,
                    [P.Transform(TransformType.ENCR, EncrId.NULL)],
                    spi=b"\xca\xfe\x00\x01",
                ),
            ]
        )
        vector = h(
            """
            00 00 0038
            02 00 0020 01 03 04 02 cafe0001   # more proposals, len 32, #1 ESP, SPI 4, 2 transforms
            03 00 000c 01 00 0014 800e 0080
            00 00 0008 05 00 0000
            00 00 0014 02 03 04 01 cafe0001   # last proposal, len 20, #2
            00 00 0008 01 00 000b
            """
        )
        self.assertVector(sa, vector)

    def test_tlvAttribute(self):
        """
        Attributes without the AF bit are TLV: type, length, value.
        """
        transform = P.Transform(
            TransformType.ENCR, 1024, [P.Attribute(0x1234, b"\x01\x02\x03"), P.Attribute(17, 5)]
        )
        sa = P.SecurityAssociation([P.Proposal(1, ProtocolId.IKE, [transform])])
        vector = h(
            """
            00 00 001f
            00 00 001b 01 01 00 01
            00 00 0013 01 00 0400 1234 0003 010203 8011 0005
            """
        )
        decoded = self.assertVector(sa, vector)
        attributes = decoded.proposals[0].transforms[0].attributes
        self.assertFalse(attributes[0].isTV)
        self.assertTrue(attributes[1].isTV)

    def test_ikeRekeySpi(self):
        """
        Rekeying the IKE SA puts an 8-octet SPI in the proposal.
        """
        sa = P.SecurityAssociation(
            [P.Proposal(1, ProtocolId.IKE, [P.Transform(TransformType.DH, 19)], spi=b"S" * 8)]
        )
        self.assertEqual(P.decodePayloads(P.encodePayloads([sa])[1], PayloadType.SA), [sa])

    def test_transformsOfType(self):
        """
        L{P.Proposal.transformsOfType} filters by transform type.
        """
        proposal = P.Proposal(
            1,
            ProtocolId.IKE,
            [P.Transform(TransformType.DH, 19), P.Transform(TransformType.PRF, 5), P.Transform(TransformType.DH, 31)],
        )
        self.assertEqual(
            [t.transformId for t in proposal.transformsOfType(TransformType.DH)], [19, 31]
        )

    def test_encodeTooLarge(self):
        """
        A TV value over 16 bits is our mistake: L{WireEncodeError}.
        """
        sa = P.SecurityAssociation(
            [P.Proposal(1, 1, [P.Transform(1, 12, [P.Attribute(14, 70000)])])]
        )
        self.assertRaises(WireEncodeError, P.encodePayloads, [sa])


class SimplePayloadTests(VectorMixin, SynchronousTestCase):
    """
    KE, ID, CERT, CERTREQ, AUTH, Nonce, Vendor ID (RFC 7296 3.4-3.9, 3.12).
    """

    def test_keyExchange(self):
        """
        KE: group number, two reserved octets, key exchange data.
        """
        self.assertVector(
            P.KeyExchange(DhId.CURVE25519, b"\xaa" * 4),
            h("00 00 000c 001f 0000 aaaaaaaa"),
        )

    def test_identificationIPv4(self):
        """
        IDi ID_IPV4_ADDR: type 1, three reserved octets, the address.
        """
        payload = self.assertVector(
            P.IDi.fromAddress("192.0.2.1"), h("00 00 000c 01 000000 c0000201")
        )
        self.assertEqual(payload.address, ipaddress.ip_address("192.0.2.1"))
        self.assertIsNone(payload.text)

    def test_identificationIPv6(self):
        """
        IDr ID_IPV6_ADDR carries 16 octets.
        """
        payload = P.IDr.fromAddress("2001:db8::1")
        self.assertEqual(payload.payloadType, PayloadType.IDr)
        self.assertVector(
            payload, h("00 00 0018 05 000000 20010db8000000000000000000000001")
        )

    def test_identificationText(self):
        """
        ID_FQDN and ID_RFC822_ADDR are text; the other types are octets.
        """
        fqdn = self.assertVector(P.IDi.fromFQDN("a.example"), h("00 00 0011 02 000000") + b"a.example")
        self.assertEqual(fqdn.text, "a.example")
        self.assertIsNone(fqdn.address)
        mail = self.assertVector(P.IDr.fromRFC822("u@a.example"), h("00 00 0013 03 000000") + b"u@a.example")
        self.assertEqual(mail.text, "u@a.example")
        for idType in (IdType.DER_ASN1_DN, IdType.DER_ASN1_GN, IdType.KEY_ID, IdType.FC_NAME):
            self.assertVector(P.IDi(idType, b"\x30\x00"), h("00 00 000a") + bytes([idType]) + h("000000 3000"))
        self.assertVector(P.IDi(IdType.NULL, b""), h("00 00 0008 0d 000000"))

    def test_certificate(self):
        """
        CERT: encoding octet then data.
        """
        self.assertVector(
            P.Certificate(CertEncoding.X509_CERT_SIGNATURE, b"\x30\x03\x02\x01\x01"),
            h("00 00 000a 04 3003020101"),
        )

    def test_certificateRequest(self):
        """
        CERTREQ for X.509 lists 20-octet SHA-1 key hashes.
        """
        hashes = [b"\x11" * 20, b"\x22" * 20]
        payload = self.assertVector(
            P.CertificateRequest.fromAuthorities(hashes),
            h("00 00 002d 04") + hashes[0] + hashes[1],
        )
        self.assertEqual(payload.authorities, hashes)

    def test_authentication(self):
        """
        AUTH: method, three reserved octets, data.
        """
        self.assertVector(
            P.Authentication(AuthMethod.SHARED_KEY_MIC, b"\x01" * 4),
            h("00 00 000c 02 000000 01010101"),
        )

    def test_digitalSignature(self):
        """
        RFC 7427 3: DIGITAL_SIGNATURE data is a length octet, an
        AlgorithmIdentifier and the signature.
        """
        algorithm = h("300d06092a864886f70d01010b0500")
        payload = self.assertVector(
            P.Authentication.digitalSignature(algorithm, b"SIG"),
            h("00 00 001b 0e 000000 0f") + algorithm + b"SIG",
        )
        self.assertEqual(payload.signatureAlgorithm, algorithm)
        self.assertEqual(payload.signature, b"SIG")
        self.assertEqual(P.Authentication(AuthMethod.RSA_SIG, b"S").signature, b"S")
        self.assertRaises(ValueError, lambda: P.Authentication(1, b"S").signatureAlgorithm)

    def test_nonce(self):
        """
        Nonce: the data alone.
        """
        self.assertVector(P.Nonce(b"\x5a" * 16), h("00 00 0014") + b"\x5a" * 16)

    def test_vendorId(self):
        """
        Vendor ID: the data alone.
        """
        self.assertVector(P.VendorID(b"ikedtx"), h("00 00 000a") + b"ikedtx")

    def test_critical(self):
        """
        The critical bit of a known payload is kept (RFC 7296 3.2).
        """
        self.assertVector(P.Nonce(b"\x01" * 16, critical=True), h("00 80 0014") + b"\x01" * 16)


class NotifyTests(VectorMixin, SynchronousTestCase):
    """
    RFC 7296 3.10 and the typed notifies.
    """

    def test_generic(self):
        """
        Protocol ID, SPI Size, Notify Message Type, SPI, data.
        """
        self.assertVector(
            P.Notify(NotifyType.CHILD_SA_NOT_FOUND, b"", ProtocolId.ESP, b"\x01\x02\x03\x04"),
            h("00 00 000c 03 04 002c 01020304"),
        )

    def test_natDetection(self):
        """
        NAT_DETECTION_SOURCE_IP/DESTINATION_IP carry a SHA-1 digest.
        """
        digest = bytes(range(20))
        source = self.assertVector(
            P.Notify.natDetectionSourceIP(digest), h("00 00 001c 00 00 4004") + digest
        )
        self.assertEqual(source.natDetectionHash, digest)
        self.assertVector(P.Notify.natDetectionDestinationIP(digest), h("00 00 001c 00 00 4005") + digest)

    def test_cookie(self):
        """
        COOKIE carries 1 to 64 octets.
        """
        self.assertVector(P.Notify.cookie(b"\xc0" * 8), h("00 00 0010 00 00 4006 c0c0c0c0c0c0c0c0"))

    def test_invalidKePayload(self):
        """
        INVALID_KE_PAYLOAD carries the accepted group in two octets.
        """
        payload = self.assertVector(P.Notify.invalidKePayload(19), h("00 00 000a 00 00 0011 0013"))
        self.assertEqual(payload.group, 19)
        self.assertTrue(payload.isError)

    def test_rekeySa(self):
        """
        REKEY_SA names the Child SA by protocol and 4-octet SPI.
        """
        payload = self.assertVector(
            P.Notify.rekeySa(ProtocolId.ESP, b"\xde\xad\xbe\xef"), h("00 00 000c 03 04 4009 deadbeef")
        )
        self.assertEqual((payload.protocolId, payload.spi), (ProtocolId.ESP, b"\xde\xad\xbe\xef"))

    def test_flags(self):
        """
        The notifies without data.
        """
        for payload, number in [
            (P.Notify.fragmentationSupported(), 16430),
            (P.Notify.mobikeSupported(), 16396),
            (P.Notify.updateSaAddresses(), 16400),
            (P.Notify.useTransportMode(), 16391),
            (P.Notify.espTfcPaddingNotSupported(), 16394),
            (P.Notify.initialContact(), 16384),
        ]:
            self.assertVector(payload, h("00 00 0008 00 00") + number.to_bytes(2, "big"))
            self.assertFalse(payload.isError)

    def test_signatureHashAlgorithms(self):
        """
        RFC 7427 4: a list of two-octet hash algorithm ids.
        """
        payload = self.assertVector(
            P.Notify.signatureHashAlgorithms(
                [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.IDENTITY]
            ),
            h("00 00 000e 00 00 402f 0002 0003 0005"),
        )
        self.assertEqual(payload.hashAlgorithms, [2, 3, 5])

    def test_ipcompSupported(self):
        """
        IPCOMP_SUPPORTED: two-octet CPI, transform id, optional attributes.
        """
        payload = self.assertVector(
            P.Notify.ipcompSupported(0x1234, IpcompTransform.DEFLATE),
            h("00 00 000b 00 00 4003 1234 02"),
        )
        self.assertEqual((payload.cpi, payload.ipcompTransform, payload.ipcompAttributes), (0x1234, 2, b""))

    def test_setWindowSize(self):
        """
        SET_WINDOW_SIZE: a four-octet window.
        """
        payload = self.assertVector(P.Notify.setWindowSize(5), h("00 00 000c 00 00 4001 00000005"))
        self.assertEqual(payload.windowSize, 5)

    def test_additionalKeyExchange(self):
        """
        RFC 9370: ADDITIONAL_KEY_EXCHANGE carries an opaque link.
        """
        payload = self.assertVector(
            P.Notify.additionalKeyExchange(b"link"), h("00 00 000c 00 00 4039") + b"link"
        )
        self.assertEqual(payload.data, b"link")

    def test_unsupportedCriticalPayload(self):
        """
        UNSUPPORTED_CRITICAL_PAYLOAD carries the one-octet payload type.
        """
        payload = self.assertVector(
            P.Notify.unsupportedCriticalPayload(200), h("00 00 0009 00 00 0001 c8")
        )
        self.assertEqual(payload.unsupportedPayloadType, 200)

    def test_wrongAccessor(self):
        """
        A typed accessor of another notify type is our mistake.
        """
        self.assertRaises(ValueError, lambda: P.Notify.cookie(b"x").group)

    def test_unknownType(self):
        """
        Unregistered notify types keep their data.
        """
        self.assertVector(P.Notify(50000, b"?"), h("00 00 0009 00 00 c350 3f"))
        self.assertIn("Notify(NotifyType(50000)", repr(P.Notify(50000)))


class DeleteTests(VectorMixin, SynchronousTestCase):
    """
    RFC 7296 3.11.
    """

    def test_ike(self):
        """
        Deleting the IKE SA: protocol 1, SPI size 0, no SPIs.
        """
        self.assertVector(P.Delete(ProtocolId.IKE), h("00 00 0008 01 00 0000"))

    def test_esp(self):
        """
        Deleting Child SAs: protocol 3, SPI size 4, the count, the SPIs.
        """
        self.assertVector(
            P.Delete(ProtocolId.ESP, [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"]),
            h("00 00 0010 03 04 0002 00000001 00000002"),
        )

    def test_wrongSpiSize(self):
        """
        Encoding an SPI whose length differs from the SPI size fails.
        """
        self.assertRaises(WireEncodeError, P.encodePayloads, [P.Delete(ProtocolId.ESP, [b"\x01"])])


class TrafficSelectorTests(VectorMixin, SynchronousTestCase):
    """
    RFC 7296 3.13.
    """

    def test_ipv4(self):
        """
        TS_IPV4_ADDR_RANGE: 16 octets.
        """
        ts = P.TSi([P.TrafficSelector("10.1.0.0", "10.1.0.255", 6, 80, 443)])
        self.assertVector(
            ts, h("00 00 0018 01 000000 07 06 0010 0050 01bb 0a010000 0a0100ff")
        )

    def test_ipv6AndNetwork(self):
        """
        TS_IPV6_ADDR_RANGE: 40 octets; L{P.TrafficSelector.fromNetwork}
        spans a prefix.
        """
        selector = P.TrafficSelector.fromNetwork("2001:db8::/126")
        self.assertEqual(selector.endAddress, ipaddress.ip_address("2001:db8::3"))
        self.assertVector(
            P.TSr([selector]),
            h(
                """
                00 00 0030 01 000000
                08 00 0028 0000 ffff
                20010db8000000000000000000000000
                20010db8000000000000000000000003
                """
            ),
        )

    def test_seclabelAndUnknown(self):
        """
        TS_SECLABEL (RFC 9478) keeps its label; other types are opaque.
        """
        ts = P.TSi(
            [
                P.SecurityLabelSelector(b"system_u:object_r"),
                P.UnknownTrafficSelector(200, b"\x01\x02", secondOctet=9),
                P.TrafficSelector("0.0.0.0", "255.255.255.255"),
            ]
        )
        vector = h("00 00 0033 03 000000 0a 00 0015") + b"system_u:object_r" + h(
            "c8 09 0006 0102 07 00 0010 0000 ffff 00000000 ffffffff"
        )
        self.assertVector(ts, vector)

    def test_mixedFamilies(self):
        """
        A selector mixing IPv4 and IPv6 is refused.
        """
        self.assertRaises(WireEncodeError, P.TrafficSelector, "10.0.0.1", "::1")


class ConfigurationTests(VectorMixin, SynchronousTestCase):
    """
    RFC 7296 3.15.
    """

    def test_request(self):
        """
        CFG_REQUEST with empty attributes asks for them.
        """
        cp = P.Configuration(
            ConfigurationType.CFG_REQUEST,
            [P.ConfigurationAttribute(CA.INTERNAL_IP4_ADDRESS), P.ConfigurationAttribute(CA.INTERNAL_IP6_ADDRESS)],
        )
        self.assertVector(cp, h("00 00 0010 01 000000 0001 0000 0008 0000"))

    def test_reply(self):
        """
        CFG_REPLY with an IPv4 address, an IPv6 address and prefix, an
        IPv4 subnet (address and netmask) and a DNS server.
        """
        attributes = [
            P.ConfigurationAttribute.fromAddress(CA.INTERNAL_IP4_ADDRESS, "10.3.0.1"),
            P.ConfigurationAttribute.fromAddress(CA.INTERNAL_IP6_ADDRESS, "2001:db8:3::1", 64),
            P.ConfigurationAttribute.fromAddress(CA.INTERNAL_IP4_SUBNET, "10.2.0.0", 16),
            P.ConfigurationAttribute.fromAddress(CA.INTERNAL_IP4_DNS, "10.2.0.53"),
            P.ConfigurationAttribute(CA.APPLICATION_VERSION, b"ikedtx"),
        ]
        cp = P.Configuration(ConfigurationType.CFG_REPLY, attributes)
        vector = h(
            """
            00 00 0043 02 000000
            0001 0004 0a030001
            0008 0011 20010db8000300000000000000000001 40
            000d 0008 0a020000 ffff0000
            0003 0004 0a020035
            0007 0006
            """
        ) + b"ikedtx"
        decoded = self.assertVector(cp, vector)
        self.assertEqual(decoded.attributes[0].address, ipaddress.ip_address("10.3.0.1"))
        self.assertEqual(decoded.attributes[1].prefixLength, 64)
        self.assertEqual(decoded.attributes[2].prefixLength, 16)
        self.assertIsNone(decoded.attributes[4].address)
        self.assertIsNone(decoded.attributes[0].prefixLength)

    def test_reservedBitIgnored(self):
        """
        The R bit of an attribute type is ignored on receipt.
        """
        decoded = P.decodePayloads(h("00 00 000c 01 000000 8001 0000"), PayloadType.CP)
        self.assertEqual(decoded[0].attributes[0].attributeType, CA.INTERNAL_IP4_ADDRESS)


class EapTests(VectorMixin, SynchronousTestCase):
    """
    RFC 7296 3.16 with RFC 3748 4 messages.
    """

    def test_identityRequest(self):
        """
        A Request has Code, Identifier, Length, Type and type data.
        """
        payload = self.assertVector(
            P.EAP(EapCode.RESPONSE, 7, EapType.IDENTITY, b"alice"),
            h("00 00 000e 02 07 000a 01") + b"alice",
        )
        self.assertEqual(payload.message, h("02 07 000a 01") + b"alice")

    def test_success(self):
        """
        Success and Failure have no Type.
        """
        self.assertVector(P.EAP(EapCode.SUCCESS, 8), h("00 00 0008 03 08 0004"))

    def test_unknownCode(self):
        """
        Other codes keep their octets after the header.
        """
        self.assertVector(P.EAP(5, 1, None, b"\x01\x02"), h("00 00 000a 05 01 0006 0102"))


class EncryptedTests(VectorMixin, SynchronousTestCase):
    """
    SK (RFC 7296 3.14) and SKF (RFC 7383 2.5) as sealed octets.
    """

    def test_sk(self):
        """
        SK: Next Payload is the first inner payload's type; the body is
        IV, ciphertext and ICV, kept as octets.
        """
        payload = P.Encrypted(PayloadType.IDi, b"\x01" * 8)
        self.assertEqual(P.encodePayloads([payload])[1], h("23 00 000c 0101010101010101"))
        self.assertEqual(P.decodeChain(h("23 00 000c 0101010101010101"), 46, 0, 12, True), ([payload], 4))

    def test_skf(self):
        """
        SKF: Fragment Number and Total Fragments precede the sealed data.
        """
        payload = P.EncryptedFragment(0, 2, 3, b"\x02" * 4)
        self.assertEqual(P.encodePayloads([payload])[1], h("00 00 000c 0002 0003 02020202"))
        self.assertEqual(
            P.decodeChain(h("00 00 000c 0002 0003 02020202"), 53, 0, 12, True), ([payload], 8)
        )

    def test_skMustBeLast(self):
        """
        Encoding an SK payload that is not last fails.
        """
        self.assertRaises(
            WireEncodeError, P.encodePayloads, [P.Encrypted(0, b""), P.Nonce(b"x" * 16)]
        )


class ChainTests(SynchronousTestCase):
    """
    The generic payload header and chains (RFC 7296 3.2).
    """

    def test_chain(self):
        """
        Each Next Payload field names the following payload, the last 0.
        """
        first, data = P.encodePayloads([P.Nonce(b"\x01" * 16), P.VendorID(b"v")])
        self.assertEqual(first, PayloadType.NONCE)
        self.assertEqual(data, h("2b 00 0014") + b"\x01" * 16 + h("00 00 0005 76"))

    def test_unknownNonCritical(self):
        """
        RFC 7296 2.5: an unknown payload without the critical bit is kept
        and re-encodes as it came.
        """
        data = h("28 00 0007 010203") + h("00 00 0014") + b"\x01" * 16
        payloads = P.decodePayloads(data, 49)
        self.assertEqual(payloads[0], P.UnknownPayload(49, b"\x01\x02\x03"))
        self.assertEqual(P.encodePayloads(payloads), (49, data))

    def test_unknownAsStrings(self):
        """
        The repr of a payload names its fields.
        """
        self.assertEqual(
            repr(P.UnknownPayload(49, b"x")),
            "UnknownPayload(payloadType=49, data=b'x', critical=False)",
        )

    def test_registry(self):
        """
        Every payload type of RFC 7296 and SKF has a class.
        """
        for payloadType in list(range(33, 49)) + [53]:
            self.assertIsNotNone(P.payloadClass(payloadType), payloadType)
        self.assertIsNone(P.payloadClass(49))

    def test_decodeEmpty(self):
        """
        An empty chain is no payloads.
        """
        self.assertEqual(P.decodePayloads(b"", 0), [])

    def test_typeErrors(self):
        """
        Octet fields must be bytes.
        """
        self.assertRaises(TypeError, P.Nonce, "text")
        self.assertRaises(InvalidSyntax, P.decodePayloads, b"\x00\x00\x00", PayloadType.NONCE)

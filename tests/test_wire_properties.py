# -*- test-case-name: tests.test_wire_properties -*-
"""
Property tests (hypothesis) for the wire codec: valid messages round-trip
byte for byte, and no byte string - random, or a valid message with bits
flipped, octets overwritten, truncated or extended - makes the decoder raise
anything but L{MalformedMessage} or take long.
"""

import ipaddress

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire import payloads as P
from ikedtx.wire.constants import PayloadType
from ikedtx.wire.errors import MalformedMessage
from ikedtx.wire.fragments import Reassembler, fragmentMessage
from ikedtx.wire.message import Message
from ikedtx.wire.natt import classifyNattDatagram

from .wirehelpers import IntegrityError, NullCipher

FAST = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MANY = settings(FAST, max_examples=1000)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
octets = st.binary(max_size=40)

attributes = st.one_of(
    st.builds(P.Attribute, st.integers(0, 0x7FFF), u16),
    st.builds(P.Attribute, st.integers(0, 0x7FFF), octets),
)
transforms = st.builds(P.Transform, u8, u16, st.lists(attributes, max_size=3))
proposals = st.builds(
    P.Proposal,
    u8,
    u8,
    st.lists(transforms, max_size=4),
    st.sampled_from([b"", b"\x01\x02\x03\x04", b"12345678"]),
)
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big"))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: n.to_bytes(16, "big"))


@st.composite
def selectors(draw):
    kind = draw(st.sampled_from(["v4", "v6", "label", "unknown"]))
    if kind == "label":
        return P.SecurityLabelSelector(draw(octets))
    if kind == "unknown":
        return P.UnknownTrafficSelector(draw(st.integers(11, 255)), draw(octets), draw(u8))
    address = ipv4 if kind == "v4" else ipv6
    return P.TrafficSelector(
        ipaddress.ip_address(draw(address)),
        ipaddress.ip_address(draw(address)),
        draw(u8),
        draw(u16),
        draw(u16),
    )


@st.composite
def notifies(draw):
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return P.Notify.natDetectionSourceIP(draw(st.binary(min_size=20, max_size=20)))
    if kind == 1:
        return P.Notify.invalidKePayload(draw(u16))
    if kind == 2:
        return P.Notify.rekeySa(3, draw(st.binary(min_size=4, max_size=4)))
    if kind == 3:
        return P.Notify.signatureHashAlgorithms(draw(st.lists(u16, max_size=5)))
    if kind == 4:
        return P.Notify.cookie(draw(st.binary(min_size=1, max_size=64)))
    return P.Notify(draw(st.integers(16440, 65535)), draw(octets), 0, b"")


cpAttributes = st.one_of(
    st.builds(P.ConfigurationAttribute, st.just(1), st.sampled_from([b"", b"\x0a\x00\x00\x01"])),
    st.builds(P.ConfigurationAttribute, st.integers(27, 0x7FFF), octets),
)

payloadStrategies = st.one_of(
    st.builds(P.SecurityAssociation, st.lists(proposals, max_size=3), st.booleans()),
    st.builds(P.KeyExchange, u16, octets),
    st.builds(P.IDi, st.sampled_from([2, 3, 9, 11, 13]), octets),
    st.builds(P.IDr, st.just(1), st.binary(min_size=4, max_size=4)),
    st.builds(P.Certificate, u8, octets),
    st.builds(P.CertificateRequest, st.just(4), st.binary(min_size=20, max_size=20)),
    st.builds(P.Authentication, st.sampled_from([1, 2, 9]), octets),
    st.builds(P.Nonce, st.binary(min_size=16, max_size=64)),
    notifies(),
    st.builds(P.Delete, st.just(3), st.lists(st.binary(min_size=4, max_size=4), max_size=4)),
    st.builds(P.Delete, st.just(1)),
    st.builds(P.VendorID, octets),
    st.builds(P.TSi, st.lists(selectors(), max_size=3)),
    st.builds(P.TSr, st.lists(selectors(), max_size=3)),
    st.builds(P.Configuration, st.integers(1, 4), st.lists(cpAttributes, max_size=4)),
    st.builds(P.EAP, st.just(1), u8, u8, octets),
    st.builds(P.EAP, st.just(3), u8),
    st.builds(P.UnknownPayload, st.integers(49, 52) | st.integers(54, 255), octets),
)


@st.composite
def messages(draw, sealed=True):
    payloads = draw(st.lists(payloadStrategies, max_size=6))
    if sealed and draw(st.booleans()):
        payloads.append(
            draw(
                st.one_of(
                    st.builds(P.Encrypted, u8, octets),
                    st.builds(P.EncryptedFragment, u8, st.just(1), st.integers(1, 9), octets),
                )
            )
        )
    return Message(
        draw(st.binary(min_size=8, max_size=8)),
        draw(st.binary(min_size=8, max_size=8)),
        draw(u8),
        draw(u8),
        draw(u32),
        payloads,
        minorVersion=draw(st.integers(0, 15)),
    )


def decodeOrMalformed(data):
    """
    Decode C{data}; a L{MalformedMessage} is the only acceptable failure.
    When it decodes, re-encoding keeps the length (only RESERVED fields
    may differ) and is a fixed point.
    """
    try:
        message = Message.decode(data)
    except MalformedMessage as e:
        assert str(e)
        return None
    again = message.encode()
    assert len(again) == len(data), (len(again), len(data))
    assert Message.decode(again) == message
    assert Message.decode(again).encode() == again
    return message


@st.composite
def mangled(draw):
    """
    A valid encoded message mangled by flips, overwrites, truncation or
    extension.
    """
    data = bytearray(draw(messages()).encode())
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "write", "truncate", "extend", "length"]))
        if operation == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif operation == "write" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(u8)
        elif operation == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif operation == "extend":
            data += draw(st.binary(min_size=1, max_size=8))
        elif operation == "length" and len(data) >= 28:
            # Keep the header's Length consistent so the payloads are reached.
            data[24:28] = len(data).to_bytes(4, "big")
    return bytes(data)


class RoundTripProperties(SynchronousTestCase):
    """
    Encoding and decoding are byte-exact inverses on valid messages.
    """

    @FAST
    @given(messages())
    def test_roundTrip(self, message):
        data = message.encode()
        decoded = Message.decode(data)
        self.assertEqual(decoded, message)
        self.assertEqual(decoded.encode(), data)

    @FAST
    @given(st.lists(payloadStrategies, max_size=6))
    def test_encryptedRoundTrip(self, inner):
        cipher = NullCipher()
        message = Message(b"I" * 8, b"R" * 8, 35, 8, 1, encrypted=inner)
        self.assertEqual(Message.decode(message.encode(cipher)).decrypt(cipher), inner)

    @FAST
    @given(st.lists(payloadStrategies, max_size=8), st.integers(80, 600))
    def test_fragmentRoundTrip(self, inner, size):
        cipher = NullCipher()
        message = Message(b"I" * 8, b"R" * 8, 35, 8, 1, encrypted=inner)
        reassembler = Reassembler(maxFragments=1000, maxBytes=1 << 20)
        results = [reassembler.add(Message.decode(d), cipher) for d in fragmentMessage(message, cipher, size)]
        self.assertEqual(results[-1].encrypted, inner)


class MalformedProperties(SynchronousTestCase):
    """
    Only L{MalformedMessage} escapes the decoder.
    """

    @MANY
    @given(st.binary(max_size=300))
    def test_randomBytes(self, data):
        decodeOrMalformed(data)

    @MANY
    @given(st.binary(min_size=28, max_size=300))
    def test_randomAfterHeader(self, data):
        """
        A sound header (version 2, consistent Length) in front of random
        payload octets.
        """
        data = data[:17] + b"\x20" + data[18:24] + len(data).to_bytes(4, "big") + data[28:]
        decodeOrMalformed(data)

    @MANY
    @given(mangled())
    def test_mangledMessages(self, data):
        decodeOrMalformed(data)

    @FAST
    @given(st.binary(max_size=300), u8)
    def test_innerChain(self, plaintext, firstType):
        """
        Any plaintext inside a valid SK payload decrypts to payloads or
        raises L{MalformedMessage}.
        """
        cipher = NullCipher()
        sealedLength = cipher.sealedLength(len(plaintext))
        aad = (
            b"I" * 8
            + b"R" * 8
            + bytes([PayloadType.SK, 0x20, 35, 8])
            + (1).to_bytes(4, "big")
            + (32 + sealedLength).to_bytes(4, "big")
            + bytes([firstType, 0])
            + (4 + sealedLength).to_bytes(2, "big")
        )
        data = aad + cipher.seal(aad, plaintext)
        try:
            inner = Message.decode(data).decrypt(cipher)
        except MalformedMessage:
            return
        self.assertEqual(P.encodePayloads(inner)[1].__len__(), len(plaintext))

    @FAST
    @given(st.lists(mangled(), max_size=4))
    def test_reassembler(self, datagrams):
        """
        Mangled SKF messages make the reassembler drop or fail with the
        codec's or the cipher's error only.
        """
        cipher = NullCipher()
        reassembler = Reassembler()
        for data in datagrams:
            try:
                message = Message.decode(data)
                if message.isFragment:
                    reassembler.add(message, cipher)
            except (MalformedMessage, IntegrityError):
                pass

    @FAST
    @given(st.binary(max_size=40))
    def test_natt(self, data):
        try:
            classifyNattDatagram(data)
        except MalformedMessage:
            pass


class CostTests(SynchronousTestCase):
    """
    The worst cases of the codec: the largest message of the smallest
    payloads or substructures decodes and re-encodes (how long that takes,
    and that it grows linearly, is measured by bench/wirecost.py, not
    asserted here).
    """

    def assertDecodes(self, data):
        self.assertIsNotNone(decodeOrMalformed(data))

    def test_manyPayloads(self):
        """
        16000 empty Vendor ID payloads.
        """
        chain = (b"\x2b\x00\x00\x04") * 16000
        chain = chain[:-4] + b"\x00\x00\x00\x04"
        header = b"I" * 8 + b"R" * 8 + bytes([43, 0x20, 37, 0]) + bytes(4) + (28 + len(chain)).to_bytes(4, "big")
        self.assertDecodes(header + chain)

    def test_manyAttributes(self):
        """
        One SA payload holding 16000 TV attributes.
        """
        attributes = b"\x80\x0e\x00\x80" * 16000
        transform = b"\x00\x00" + (8 + len(attributes)).to_bytes(2, "big") + b"\x01\x00\x00\x0c" + attributes
        proposal = b"\x00\x00" + (8 + len(transform)).to_bytes(2, "big") + b"\x01\x01\x00\x01" + transform
        sa = b"\x00\x00" + (4 + len(proposal)).to_bytes(2, "big") + proposal
        header = b"I" * 8 + b"R" * 8 + bytes([33, 0x20, 34, 8]) + bytes(4) + (28 + len(sa)).to_bytes(4, "big")
        self.assertDecodes(header + sa)
        self.assertEqual(
            len(Message.decode(header + sa).payloads[0].proposals[0].transforms[0].attributes), 16000
        )

    def test_manySelectors(self):
        """
        A TS payload of 255 selectors (the count is one octet).
        """
        selector = bytes.fromhex("c8000004")
        ts = b"\x00\x00" + (8 + 255 * 4).to_bytes(2, "big") + b"\xff\x00\x00\x00" + selector * 255
        header = b"I" * 8 + b"R" * 8 + bytes([PayloadType.TSi, 0x20, 37, 0]) + bytes(4) + (28 + len(ts)).to_bytes(4, "big")
        self.assertDecodes(header + ts)

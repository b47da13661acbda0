# -*- test-case-name: tests.test_wire_message -*-
"""
Whole IKE messages: the header, the outer payload chain and the SK payload
(RFC 7296 3.1, 3.14).

SK protection is delegated to an object providing
C{ikedtx.crypto.interfaces.ISKCipher}; this module only needs its three
methods:

  - C{sealedLength(n)}: octets of IV + ciphertext (with padding and the
    pad length octet) + ICV for C{n} octets of inner payloads;
  - C{seal(aad, plaintext)}: returns those octets;
  - C{open(aad, sealed)}: verifies the ICV, decrypts, strips padding, or
    raises C{ikedtx.crypto.errors.IntegrityError}.

C{aad} is every octet of the message before the IV, with all length fields
final: the IKE header, any unencrypted payloads, and the SK generic header
(RFC 5282 5.1 for AEAD; for cipher+integrity the ICV covers C{aad}, the IV
and the ciphertext, RFC 7296 3.14).
"""

from ikedtx.wire.constants import IKE_HEADER_LENGTH, PayloadType
from ikedtx.wire.errors import LengthMismatch, MalformedMessage, WireEncodeError
from ikedtx.wire.header import _INITIATOR, _RESPONSE, Header, packHeader
from ikedtx.wire.payloads import (
    _ENCRYPTED,
    _GENERIC,
    _Fields,
    decodeChain,
    decodePayloads,
    encodePayloads,
)

_MAX_LENGTH = 0xFFFFFFFF


def _spi(value, name):
    if value.__class__ is bytes and len(value) == 8:
        return value
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) != 8:
        raise WireEncodeError("%s must be 8 octets, not %r" % (name, value))
    return bytes(value)


class Message(_Fields):
    """
    An IKE message.

    @ivar spiI: the IKE SA initiator's SPI, 8 octets.
    @ivar spiR: the IKE SA responder's SPI, 8 octets (zero in the first
        IKE_SA_INIT request).
    @ivar exchangeType: an L{ikedtx.wire.constants.ExchangeType}.
    @ivar flags: the header flags as an L{int} (L{HeaderFlag} bits; other
        bits are kept as received).
    @ivar messageId: the Message ID.
    @ivar payloads: the unencrypted payloads in order.  A decoded message
        that was protected ends with its L{Encrypted} (SK) or
        L{EncryptedFragment} (SKF) payload, kept sealed.
    @ivar encrypted: for a message to send, the payloads to put inside an
        SK payload (an empty list makes an empty SK payload), or C{None}
        for an unprotected message.  Decoding leaves it C{None}; see
        L{decrypt}.
    @ivar minorVersion: the header's minor version (0; kept as received).
    @ivar aad: for a decoded protected message, the octets before the IV
        (what the cipher authenticates), else C{None}.
    @ivar receivedHeader: the L{Header} a decoded message arrived with,
        else C{None}.
    @ivar plaintext: once L{decrypt}ed (or reassembled), the octets of the
        inner payload chain as the sender encrypted them, else C{None}
        (RFC 9242 3.3.2 authenticates them).
    @ivar innerType: the type of the first inner payload, with
        L{plaintext}.
    """

    compareAttributes = (
        "spiI",
        "spiR",
        "exchangeType",
        "flags",
        "messageId",
        "payloads",
        "encrypted",
        "minorVersion",
    )

    aad = None
    receivedHeader = None
    plaintext = None
    innerType = None

    def __init__(
        self,
        spiI,
        spiR,
        exchangeType,
        flags,
        messageId,
        payloads=(),
        encrypted=None,
        minorVersion=0,
    ):
        self.spiI = _spi(spiI, "spiI")
        self.spiR = _spi(spiR, "spiR")
        self.exchangeType = exchangeType
        self.flags = int(flags)
        self.messageId = messageId
        self.payloads = list(payloads)
        self.encrypted = None if encrypted is None else list(encrypted)
        self.minorVersion = minorVersion

    @property
    def isInitiator(self):
        """
        The I flag: sent by the original initiator of the IKE SA.
        """
        return bool(self.flags & _INITIATOR)

    @property
    def isResponse(self):
        """
        The R flag.
        """
        return bool(self.flags & _RESPONSE)

    @property
    def sealedPayload(self):
        """
        The L{Encrypted} or L{EncryptedFragment} payload ending
        L{payloads}, or C{None}.
        """
        if self.payloads and self.payloads[-1].payloadType in _ENCRYPTED:
            return self.payloads[-1]
        return None

    @property
    def isFragment(self):
        """
        Whether this message carries an SKF payload (RFC 7383).
        """
        sealed = self.sealedPayload
        return sealed is not None and sealed.payloadType == PayloadType.SKF

    def payloadsOfType(self, payloadType, encrypted=False):
        """
        The payloads of one type, from L{payloads} or from L{encrypted}.
        """
        source = self.encrypted if encrypted else self.payloads
        return [p for p in source or () if p.payloadType == payloadType]

    def header(self, length=0, nextPayload=0):
        """
        A L{Header} with this message's fields.
        """
        return Header(
            self.spiI,
            self.spiR,
            nextPayload,
            2,
            self.minorVersion,
            self.exchangeType,
            self.flags,
            self.messageId,
            length,
        )

    # -- decoding -------------------------------------------------------------

    @classmethod
    def decode(cls, data):
        """
        Decode an IKE message (without a NAT-T non-ESP marker).

        The outer payloads are decoded; an SK or SKF payload stays sealed
        and L{aad} remembers the octets before its IV.

        @param data: L{bytes} or a L{memoryview} of the UDP payload.
        @raise MalformedMessage: see L{ikedtx.wire.errors}.
        """
        header = Header.decode(data)
        size = len(data)
        if header.length < IKE_HEADER_LENGTH or header.length > size:
            raise LengthMismatch(
                "IKE header Length %d in a datagram of %d octets" % (header.length, size),
                header,
            )
        if header.length < size:
            raise LengthMismatch(
                "%d octets follow the %d-octet IKE message"
                % (size - header.length, header.length),
                header,
            )
        try:
            payloads, sealedStart = decodeChain(
                data, header.nextPayload, IKE_HEADER_LENGTH, size, True
            )
        except MalformedMessage as e:
            e.header = header
            raise
        message = cls(
            header.spiI,
            header.spiR,
            header.exchangeType,
            header.flags,
            header.messageId,
            payloads,
            minorVersion=header.minorVersion,
        )
        message.receivedHeader = header
        if sealedStart is not None:
            message.aad = bytes(data[:sealedStart])
        return message

    def decrypt(self, cipher):
        """
        Open the SK payload and decode the inner payload chain.

        @param cipher: an C{ISKCipher} for the sender's direction.
        @return: the inner payloads, a L{list}.
        @raise ikedtx.crypto.errors.IntegrityError: from C{cipher.open}.
        @raise MalformedMessage: the inner chain is malformed (its errors
            carry this message's header).
        @raise ValueError: there is no SK payload (SKF fragments go to a
            L{ikedtx.wire.fragments.Reassembler}).
        """
        sealed = self.sealedPayload
        if sealed is None or sealed.payloadType != PayloadType.SK:
            raise ValueError("message has no SK payload to decrypt")
        aad = self.aad
        if aad is None:
            aad = self.encode()[: -len(sealed.body) or None]
        plaintext = cipher.open(aad, sealed.body)
        self.plaintext = bytes(plaintext)
        self.innerType = sealed.innerType
        try:
            return decodePayloads(plaintext, sealed.innerType)
        except MalformedMessage as e:
            e.header = self.receivedHeader
            raise

    # -- encoding -------------------------------------------------------------

    def encode(self, cipher=None):
        """
        Encode the message.

        With L{encrypted} set, the inner chain is encoded, the SK payload
        sized with C{cipher.sealedLength}, the header and SK generic header
        written with their final lengths, and C{cipher.seal} called with
        those octets as C{aad}.  Without, the payloads are written as they
        are (a decoded message's sealed SK payload re-encodes verbatim).

        @raise WireEncodeError: fields do not fit, no cipher for
            L{encrypted}, or the cipher's output length is not the one it
            announced.
        """
        if self.encrypted is None:
            first, body = encodePayloads(self.payloads)
            length = IKE_HEADER_LENGTH + len(body)
            if length > _MAX_LENGTH:
                raise WireEncodeError("message of %d octets" % (length,))
            return (
                packHeader(
                    self.spiI,
                    self.spiR,
                    first,
                    self.minorVersion,
                    self.exchangeType,
                    self.flags,
                    self.messageId,
                    length,
                )
                + body
            )
        if cipher is None:
            raise WireEncodeError("encrypted payloads need a cipher")
        if self.sealedPayload is not None:
            raise WireEncodeError("a message with encrypted payloads has a sealed payload too")
        first, outer = encodePayloads(self.payloads, PayloadType.SK)
        innerFirst, inner = encodePayloads(self.encrypted)
        sealedLength = cipher.sealedLength(len(inner))
        skLength = 4 + sealedLength
        if skLength > 0xFFFF:
            raise WireEncodeError("SK payload of %d octets" % (skLength,))
        aad = (
            packHeader(
                self.spiI,
                self.spiR,
                first,
                self.minorVersion,
                self.exchangeType,
                self.flags,
                self.messageId,
                IKE_HEADER_LENGTH + len(outer) + skLength,
            )
            + outer
            + _GENERIC.pack(innerFirst, 0, skLength)
        )
        sealed = cipher.seal(aad, inner)
        if len(sealed) != sealedLength:
            raise WireEncodeError(
                "cipher sealed %d octets, announced %d" % (len(sealed), sealedLength)
            )
        return aad + sealed

# -*- test-case-name: tests.test_wire_payloads -*-
"""
IKEv2 payloads (RFC 7296 section 3, RFC 7383 2.5): one class per payload
type, each with a symmetric C{encodeBody}/C{decodeBody}, registered by type
like the record types of L{twisted.names.dns}.

Every payload starts with the generic payload header (RFC 7296 3.2):

                         1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | Next Payload  |C|  RESERVED   |         Payload Length        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

which belongs to the chain, not to the payload: L{encodePayloads} and
L{decodePayloads} write and read it, and the classes here see only the body.

Decoding checks every length before it slices and raises only
L{ikedtx.wire.errors.MalformedMessage} subclasses.  Fields RFC 7296 marks
RESERVED are sent as zero and ignored on receipt; everything else (the
critical bit, counts, SPI sizes, attribute formats, unknown types) is kept,
so that a conformant message re-encodes to the same octets.
"""

import ipaddress
import struct

from twisted.python.util import FancyEqMixin

from ikedtx.wire.constants import (
    CRITICAL_FLAG,
    AuthMethod,
    CertEncoding,
    ConfigurationAttribute as CfgAttr,
    EapCode,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
    TrafficSelectorType,
    TransformAttribute as TfAttr,
    isErrorNotify,
    nameOf,
)
from ikedtx.wire.errors import (
    InvalidSyntax,
    UnsupportedCriticalPayload,
    WireEncodeError,
)

_GENERIC = struct.Struct("!BBH")
_B = struct.Struct("!B")
_H = struct.Struct("!H")
_BBH = struct.Struct("!BBH")
_HH = struct.Struct("!HH")
_B3X = struct.Struct("!B3x")

_payloadClasses = {}


def registerPayload(cls):
    """
    Class decorator: make C{cls} the decoder of its C{payloadType}.
    """
    _payloadClasses[cls.payloadType] = cls
    return cls


def payloadClass(payloadType):
    """
    The class registered for C{payloadType}, or C{None}.
    """
    return _payloadClasses.get(payloadType)


def _bytes(value, what):
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("%s must be bytes, not %r" % (what, type(value).__name__))
    return bytes(value)


def _check(value, bits, what):
    if not 0 <= value < (1 << bits):
        raise WireEncodeError("%s %r does not fit %d bits" % (what, value, bits))
    return value


class _Fields(FancyEqMixin):
    """
    Equality and repr from C{compareAttributes}.
    """

    def __repr__(self):
        return "%s(%s)" % (
            type(self).__name__,
            ", ".join(
                "%s=%r" % (name, getattr(self, name))
                for name in self.compareAttributes
            ),
        )


class Payload(_Fields):
    """
    Base of the payload classes.

    @cvar payloadType: the IANA payload type this class encodes.
    @cvar minimumBodyLength: octets of fixed fields after the generic
        header; the chain decoder rejects shorter bodies before calling
        L{decodeBody}.
    @ivar critical: the critical bit of this payload's generic header
        (ignored on receipt for known types, RFC 7296 3.2, but kept).
    """

    payloadType = None
    minimumBodyLength = 0
    critical = False

    def encodeBody(self):
        """
        @return: the octets after the generic payload header.
        """
        raise NotImplementedError()

    @classmethod
    def decodeBody(cls, body):
        """
        @param body: a L{memoryview} of exactly the payload's body, at
            least C{minimumBodyLength} long.
        @raise InvalidSyntax: the body is malformed.
        """
        raise NotImplementedError()


@registerPayload
class UnknownPayload(Payload):
    """
    A payload of a type this module does not decode, kept as octets
    (RFC 7296 2.5: skipped when its critical bit is clear).
    """

    payloadType = None
    compareAttributes = ("payloadType", "data", "critical")

    def __init__(self, payloadType, data=b"", critical=False):
        self.payloadType = payloadType
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return self.data


del _payloadClasses[None]


# -- SA ---------------------------------------------------------------------

_PROPOSAL = struct.Struct("!BxHBBBB")
_TRANSFORM = struct.Struct("!BxHBxH")
_LAST = 0
_MORE_PROPOSALS = 2
_MORE_TRANSFORMS = 3
_ATTRIBUTE_TV = 0x8000


class Attribute(_Fields):
    """
    A transform attribute (RFC 7296 3.3.5) in TV form (C{value} an L{int}
    below 65536, format bit set) or TLV form (C{value} L{bytes}).
    """

    compareAttributes = ("attributeType", "value")

    def __init__(self, attributeType, value):
        self.attributeType = attributeType
        if not isinstance(value, int):
            value = _bytes(value, "value")
        self.value = value

    @property
    def isTV(self):
        return isinstance(self.value, int)

    def encode(self):
        _check(self.attributeType, 15, "attribute type")
        if self.isTV:
            return _HH.pack(_ATTRIBUTE_TV | self.attributeType, _check(self.value, 16, "TV value"))
        _check(len(self.value), 16, "TLV length")
        return _HH.pack(self.attributeType, len(self.value)) + self.value


class Transform(_Fields):
    """
    A transform substructure (RFC 7296 3.3.2).

    @ivar transformType: a L{ikedtx.wire.constants.TransformType}.
    @ivar transformId: the algorithm id within that type.
    @ivar attributes: L{list} of L{Attribute}.
    """

    compareAttributes = ("transformType", "transformId", "attributes")

    def __init__(self, transformType, transformId, attributes=(), keyLength=None):
        """
        @param keyLength: shorthand for a leading KEY_LENGTH attribute.
        """
        self.transformType = transformType
        self.transformId = transformId
        self.attributes = list(attributes)
        if keyLength is not None:
            self.attributes.insert(0, Attribute(TfAttr.KEY_LENGTH, keyLength))

    @property
    def keyLength(self):
        """
        The value of the KEY_LENGTH attribute, or C{None}.
        """
        for attribute in self.attributes:
            if attribute.attributeType == TfAttr.KEY_LENGTH and attribute.isTV:
                return attribute.value
        return None

    def encode(self, last):
        attributes = b"".join(a.encode() for a in self.attributes)
        length = _check(8 + len(attributes), 16, "transform length")
        return (
            _TRANSFORM.pack(
                _LAST if last else _MORE_TRANSFORMS,
                length,
                _check(self.transformType, 8, "transform type"),
                _check(self.transformId, 16, "transform id"),
            )
            + attributes
        )


def _decodeAttributes(view, start, end):
    attributes = []
    offset = start
    while offset < end:
        if end - offset < 4:
            raise InvalidSyntax("transform attribute truncated")
        kind, value = _HH.unpack_from(view, offset)
        offset += 4
        if kind & _ATTRIBUTE_TV:
            attributes.append(Attribute(kind & 0x7FFF, value))
        else:
            if value > end - offset:
                raise InvalidSyntax(
                    "transform attribute %d of %d octets overruns its transform"
                    % (kind, value)
                )
            attributes.append(Attribute(kind, bytes(view[offset : offset + value])))
            offset += value
    return attributes


def _decodeTransforms(view, start, end, count):
    transforms = []
    offset = start
    while offset < end:
        if end - offset < 8:
            raise InvalidSyntax("transform substructure truncated")
        last, length, transformType, transformId = _TRANSFORM.unpack_from(view, offset)
        if length < 8:
            raise InvalidSyntax("transform length %d below 8" % (length,))
        if length > end - offset:
            raise InvalidSyntax("transform of %d octets overruns its proposal" % (length,))
        isLast = offset + length == end
        if last not in (_LAST, _MORE_TRANSFORMS) or (last == _LAST) != isLast:
            raise InvalidSyntax(
                "transform Last Substruc %d where %s" % (last, "last" if isLast else "more follow")
            )
        transforms.append(
            Transform(
                transformType,
                transformId,
                _decodeAttributes(view, offset + 8, offset + length),
            )
        )
        offset += length
    if len(transforms) != count:
        raise InvalidSyntax(
            "proposal announces %d transforms, carries %d" % (count, len(transforms))
        )
    return transforms


class Proposal(_Fields):
    """
    A proposal substructure (RFC 7296 3.3.1).

    @ivar number: the Proposal Num.
    @ivar protocolId: a L{ProtocolId}.
    @ivar spi: the SPI octets (empty in IKE_SA_INIT, 8 octets when
        rekeying the IKE SA, 4 for AH/ESP).
    @ivar transforms: L{list} of L{Transform}.
    """

    compareAttributes = ("number", "protocolId", "spi", "transforms")

    def __init__(self, number, protocolId, transforms=(), spi=b""):
        self.number = number
        self.protocolId = protocolId
        self.transforms = list(transforms)
        self.spi = _bytes(spi, "spi")

    def transformsOfType(self, transformType):
        return [t for t in self.transforms if t.transformType == transformType]

    def encode(self, last):
        n = len(self.transforms)
        transforms = b"".join(
            t.encode(i == n - 1) for i, t in enumerate(self.transforms)
        )
        length = _check(8 + len(self.spi) + len(transforms), 16, "proposal length")
        return (
            _PROPOSAL.pack(
                _LAST if last else _MORE_PROPOSALS,
                length,
                _check(self.number, 8, "proposal number"),
                _check(self.protocolId, 8, "protocol id"),
                _check(len(self.spi), 8, "SPI size"),
                _check(n, 8, "transform count"),
            )
            + self.spi
            + transforms
        )


@registerPayload
class SecurityAssociation(Payload):
    """
    SA payload (RFC 7296 3.3).

    @ivar proposals: L{list} of L{Proposal}, most preferred first.
    """

    payloadType = PayloadType.SA
    compareAttributes = ("proposals", "critical")

    def __init__(self, proposals=(), critical=False):
        self.proposals = list(proposals)
        self.critical = critical

    def encodeBody(self):
        n = len(self.proposals)
        return b"".join(p.encode(i == n - 1) for i, p in enumerate(self.proposals))

    @classmethod
    def decodeBody(cls, body):
        proposals = []
        offset = 0
        end = len(body)
        while offset < end:
            if end - offset < 8:
                raise InvalidSyntax("proposal substructure truncated")
            last, length, number, protocolId, spiSize, count = _PROPOSAL.unpack_from(
                body, offset
            )
            if length < 8 + spiSize:
                raise InvalidSyntax(
                    "proposal length %d below 8 + SPI size %d" % (length, spiSize)
                )
            if length > end - offset:
                raise InvalidSyntax("proposal of %d octets overruns its SA" % (length,))
            isLast = offset + length == end
            if last not in (_LAST, _MORE_PROPOSALS) or (last == _LAST) != isLast:
                raise InvalidSyntax(
                    "proposal Last Substruc %d where %s"
                    % (last, "last" if isLast else "more follow")
                )
            spiStart = offset + 8
            proposals.append(
                Proposal(
                    number,
                    protocolId,
                    _decodeTransforms(body, spiStart + spiSize, offset + length, count),
                    bytes(body[spiStart : spiStart + spiSize]),
                )
            )
            offset += length
        return cls(proposals)


# -- KE, ID, CERT, CERTREQ, AUTH, Nonce, V ------------------------------------


@registerPayload
class KeyExchange(Payload):
    """
    KE payload (RFC 7296 3.4): the key exchange method (DH group) number
    and the public value.
    """

    payloadType = PayloadType.KE
    minimumBodyLength = 4
    compareAttributes = ("group", "data", "critical")

    def __init__(self, group, data, critical=False):
        self.group = group
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return _HH.pack(_check(self.group, 16, "group"), 0) + self.data

    @classmethod
    def decodeBody(cls, body):
        (group,) = _H.unpack_from(body)
        return cls(group, bytes(body[4:]))


_ID_SIZES = {IdType.IPV4_ADDR: 4, IdType.IPV6_ADDR: 16}


class _Identification(Payload):
    """
    IDi/IDr payload (RFC 7296 3.5).

    @ivar idType: an L{IdType}.
    @ivar data: the Identification Data.
    """

    minimumBodyLength = 4
    compareAttributes = ("idType", "data", "critical")

    def __init__(self, idType, data, critical=False):
        self.idType = idType
        self.data = _bytes(data, "data")
        self.critical = critical

    @classmethod
    def fromAddress(cls, address):
        """
        An ID_IPV4_ADDR or ID_IPV6_ADDR identity.
        """
        address = ipaddress.ip_address(address)
        kind = IdType.IPV4_ADDR if address.version == 4 else IdType.IPV6_ADDR
        return cls(kind, address.packed)

    @classmethod
    def fromFQDN(cls, name):
        return cls(IdType.FQDN, name.encode("ascii"))

    @classmethod
    def fromRFC822(cls, address):
        return cls(IdType.RFC822_ADDR, address.encode("utf-8"))

    @property
    def address(self):
        """
        The L{ipaddress} address of an IPv4/IPv6 identity, else C{None}.
        """
        if self.idType in _ID_SIZES:
            return ipaddress.ip_address(self.data)
        return None

    @property
    def text(self):
        """
        The FQDN or RFC 822 address as text, else C{None}.
        """
        if self.idType in (IdType.FQDN, IdType.RFC822_ADDR):
            return self.data.decode("utf-8", "replace")
        return None

    def encodeBody(self):
        return _B3X.pack(_check(self.idType, 8, "ID type")) + self.data

    @classmethod
    def decodeBody(cls, body):
        (idType,) = _B.unpack_from(body)
        size = _ID_SIZES.get(idType)
        if size is not None and len(body) - 4 != size:
            raise InvalidSyntax(
                "%s identity of %d octets, not %d"
                % (nameOf(IdType, idType), len(body) - 4, size)
            )
        return cls(idType, bytes(body[4:]))


@registerPayload
class IdentificationInitiator(_Identification):
    payloadType = PayloadType.IDi


@registerPayload
class IdentificationResponder(_Identification):
    payloadType = PayloadType.IDr


IDi = IdentificationInitiator
IDr = IdentificationResponder


@registerPayload
class Certificate(Payload):
    """
    CERT payload (RFC 7296 3.6).
    """

    payloadType = PayloadType.CERT
    minimumBodyLength = 1
    compareAttributes = ("encoding", "data", "critical")

    def __init__(self, encoding, data, critical=False):
        self.encoding = encoding
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return _B.pack(_check(self.encoding, 8, "certificate encoding")) + self.data

    @classmethod
    def decodeBody(cls, body):
        return cls(body[0], bytes(body[1:]))


_SHA1_LENGTH = 20


@registerPayload
class CertificateRequest(Payload):
    """
    CERTREQ payload (RFC 7296 3.7).  For X.509 signature certificates the
    Certification Authority field is a concatenation of SHA-1 hashes of
    trusted CAs' public keys, exposed as L{authorities}.
    """

    payloadType = PayloadType.CERTREQ
    minimumBodyLength = 1
    compareAttributes = ("encoding", "data", "critical")

    def __init__(self, encoding, data=b"", critical=False):
        self.encoding = encoding
        self.data = _bytes(data, "data")
        self.critical = critical

    @classmethod
    def fromAuthorities(cls, hashes, encoding=CertEncoding.X509_CERT_SIGNATURE):
        return cls(encoding, b"".join(hashes))

    @property
    def authorities(self):
        """
        The 20-octet SHA-1 hashes, for X.509 signature requests.
        """
        return [
            self.data[i : i + _SHA1_LENGTH]
            for i in range(0, len(self.data), _SHA1_LENGTH)
        ]

    def encodeBody(self):
        return _B.pack(_check(self.encoding, 8, "certificate encoding")) + self.data

    @classmethod
    def decodeBody(cls, body):
        encoding = body[0]
        if encoding == CertEncoding.X509_CERT_SIGNATURE and (len(body) - 1) % _SHA1_LENGTH:
            raise InvalidSyntax(
                "X.509 CERTREQ of %d octets is not a list of SHA-1 hashes"
                % (len(body) - 1,)
            )
        return cls(encoding, bytes(body[1:]))


@registerPayload
class Authentication(Payload):
    """
    AUTH payload (RFC 7296 3.8).  For DIGITAL_SIGNATURE (RFC 7427 3) the
    data is a one-octet length, an ASN.1 AlgorithmIdentifier and the
    signature: see L{digitalSignature}, L{signatureAlgorithm},
    L{signature}.
    """

    payloadType = PayloadType.AUTH
    minimumBodyLength = 4
    compareAttributes = ("method", "data", "critical")

    def __init__(self, method, data, critical=False):
        self.method = method
        self.data = _bytes(data, "data")
        self.critical = critical

    @classmethod
    def digitalSignature(cls, algorithmIdentifier, signature):
        algorithmIdentifier = _bytes(algorithmIdentifier, "algorithmIdentifier")
        _check(len(algorithmIdentifier), 8, "AlgorithmIdentifier length")
        return cls(
            AuthMethod.DIGITAL_SIGNATURE,
            bytes([len(algorithmIdentifier)]) + algorithmIdentifier + signature,
        )

    @property
    def signatureAlgorithm(self):
        """
        The DER AlgorithmIdentifier of a DIGITAL_SIGNATURE AUTH.
        """
        self._requireDigitalSignature()
        return self.data[1 : 1 + self.data[0]]

    @property
    def signature(self):
        """
        The signature octets: after the AlgorithmIdentifier for
        DIGITAL_SIGNATURE, the whole data otherwise.
        """
        if self.method == AuthMethod.DIGITAL_SIGNATURE:
            return self.data[1 + self.data[0] :]
        return self.data

    def _requireDigitalSignature(self):
        if self.method != AuthMethod.DIGITAL_SIGNATURE:
            raise ValueError("AUTH method %s has no AlgorithmIdentifier" % (self.method,))

    def encodeBody(self):
        return _B3X.pack(_check(self.method, 8, "auth method")) + self.data

    @classmethod
    def decodeBody(cls, body):
        method = body[0]
        if method == AuthMethod.DIGITAL_SIGNATURE and (
            len(body) < 5 or 5 + body[4] > len(body)
        ):
            raise InvalidSyntax("DIGITAL_SIGNATURE AUTH: AlgorithmIdentifier overruns")
        return cls(method, bytes(body[4:]))


NONCE_MIN = 16
NONCE_MAX = 256


@registerPayload
class Nonce(Payload):
    """
    Nonce payload (RFC 7296 3.9): 16 to 256 octets on receipt.
    """

    payloadType = PayloadType.NONCE
    compareAttributes = ("data", "critical")

    def __init__(self, data, critical=False):
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return self.data

    @classmethod
    def decodeBody(cls, body):
        if not NONCE_MIN <= len(body) <= NONCE_MAX:
            raise InvalidSyntax("nonce of %d octets" % (len(body),))
        return cls(bytes(body))


@registerPayload
class VendorID(Payload):
    """
    Vendor ID payload (RFC 7296 3.12).
    """

    payloadType = PayloadType.VENDOR_ID
    compareAttributes = ("data", "critical")

    def __init__(self, data, critical=False):
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return self.data

    @classmethod
    def decodeBody(cls, body):
        return cls(bytes(body))


# -- Notify -------------------------------------------------------------------

NAT_DETECTION_HASH_LENGTH = 20
COOKIE_MAX = 64

_CHILD_PROTOCOLS = (ProtocolId.AH, ProtocolId.ESP)


def _checkLength(exact=None, minimum=0, maximum=None, multiple=1):
    def check(notify):
        n = len(notify.data)
        if (
            (exact is not None and n != exact)
            or n < minimum
            or (maximum is not None and n > maximum)
            or n % multiple
        ):
            raise InvalidSyntax(
                "%s with %d octets of data" % (nameOf(NotifyType, notify.notifyType), n)
            )

    return check


def _checkChildSpi(notify):
    if notify.protocolId not in _CHILD_PROTOCOLS or len(notify.spi) != 4:
        raise InvalidSyntax(
            "%s for protocol %d with a %d-octet SPI"
            % (nameOf(NotifyType, notify.notifyType), notify.protocolId, len(notify.spi))
        )


_notifyChecks = {
    NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD: _checkLength(exact=1),
    NotifyType.INVALID_KE_PAYLOAD: _checkLength(exact=2),
    NotifyType.NAT_DETECTION_SOURCE_IP: _checkLength(exact=NAT_DETECTION_HASH_LENGTH),
    NotifyType.NAT_DETECTION_DESTINATION_IP: _checkLength(exact=NAT_DETECTION_HASH_LENGTH),
    NotifyType.COOKIE: _checkLength(minimum=1, maximum=COOKIE_MAX),
    NotifyType.SET_WINDOW_SIZE: _checkLength(exact=4),
    NotifyType.IPCOMP_SUPPORTED: _checkLength(minimum=3),
    NotifyType.SIGNATURE_HASH_ALGORITHMS: _checkLength(multiple=2),
    NotifyType.REKEY_SA: _checkChildSpi,
}


@registerPayload
class Notify(Payload):
    """
    Notify payload (RFC 7296 3.10).

    The data of the types the daemon uses is checked on receipt (sizes
    from RFC 7296 3.10.1, RFC 7427 4, RFC 7383 2.3) and has typed
    constructors and accessors; any other type keeps its data as octets.

    @ivar notifyType: a L{NotifyType} (or any 16-bit number).
    @ivar protocolId: the protocol of the SA the SPI names, 0 when none.
    @ivar spi: the SPI octets (the SPI Size is their length).
    @ivar data: the Notification Data.
    """

    payloadType = PayloadType.NOTIFY
    minimumBodyLength = 4
    compareAttributes = ("notifyType", "protocolId", "spi", "data", "critical")

    def __init__(self, notifyType, data=b"", protocolId=0, spi=b"", critical=False):
        self.notifyType = notifyType
        self.data = _bytes(data, "data")
        self.protocolId = protocolId
        self.spi = _bytes(spi, "spi")
        self.critical = critical

    def __repr__(self):
        return "Notify(%s, data=%r, protocolId=%r, spi=%r)" % (
            nameOf(NotifyType, self.notifyType),
            self.data,
            self.protocolId,
            self.spi,
        )

    @property
    def isError(self):
        return isErrorNotify(self.notifyType)

    def encodeBody(self):
        return (
            _BBH.pack(
                _check(self.protocolId, 8, "protocol id"),
                _check(len(self.spi), 8, "SPI size"),
                _check(self.notifyType, 16, "notify type"),
            )
            + self.spi
            + self.data
        )

    @classmethod
    def decodeBody(cls, body):
        protocolId, spiSize, notifyType = _BBH.unpack_from(body)
        if spiSize > len(body) - 4:
            raise InvalidSyntax(
                "notify %s: SPI size %d overruns a %d-octet payload"
                % (nameOf(NotifyType, notifyType), spiSize, len(body) + 4)
            )
        notify = cls(
            notifyType,
            bytes(body[4 + spiSize :]),
            protocolId,
            bytes(body[4 : 4 + spiSize]),
        )
        check = _notifyChecks.get(notifyType)
        if check is not None:
            check(notify)
        return notify

    # Typed constructors and accessors.  An accessor used on another type
    # is our own mistake and raises ValueError.

    def _require(self, *types):
        if self.notifyType not in types:
            raise ValueError(
                "%s has no such field" % (nameOf(NotifyType, self.notifyType),)
            )

    @classmethod
    def natDetectionSourceIP(cls, digest):
        return cls(NotifyType.NAT_DETECTION_SOURCE_IP, digest)

    @classmethod
    def natDetectionDestinationIP(cls, digest):
        return cls(NotifyType.NAT_DETECTION_DESTINATION_IP, digest)

    @property
    def natDetectionHash(self):
        self._require(
            NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP
        )
        return self.data

    @classmethod
    def cookie(cls, cookie):
        return cls(NotifyType.COOKIE, cookie)

    @classmethod
    def invalidKePayload(cls, group):
        return cls(NotifyType.INVALID_KE_PAYLOAD, _H.pack(_check(group, 16, "group")))

    @property
    def group(self):
        """
        The accepted key exchange method of INVALID_KE_PAYLOAD.
        """
        self._require(NotifyType.INVALID_KE_PAYLOAD)
        return _H.unpack(self.data)[0]

    @classmethod
    def rekeySa(cls, protocolId, spi):
        return cls(NotifyType.REKEY_SA, b"", protocolId, spi)

    @classmethod
    def fragmentationSupported(cls):
        return cls(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)

    @classmethod
    def signatureHashAlgorithms(cls, algorithms):
        return cls(
            NotifyType.SIGNATURE_HASH_ALGORITHMS,
            b"".join(_H.pack(_check(a, 16, "hash algorithm")) for a in algorithms),
        )

    @property
    def hashAlgorithms(self):
        """
        The 2-octet hash algorithm ids of SIGNATURE_HASH_ALGORITHMS.
        """
        self._require(NotifyType.SIGNATURE_HASH_ALGORITHMS)
        return [v for (v,) in _H.iter_unpack(self.data)]

    @classmethod
    def mobikeSupported(cls):
        return cls(NotifyType.MOBIKE_SUPPORTED)

    @classmethod
    def updateSaAddresses(cls):
        return cls(NotifyType.UPDATE_SA_ADDRESSES)

    @classmethod
    def useTransportMode(cls):
        return cls(NotifyType.USE_TRANSPORT_MODE)

    @classmethod
    def espTfcPaddingNotSupported(cls):
        return cls(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED)

    @classmethod
    def initialContact(cls):
        return cls(NotifyType.INITIAL_CONTACT)

    @classmethod
    def ipcompSupported(cls, cpi, transformId, attributes=b""):
        return cls(
            NotifyType.IPCOMP_SUPPORTED,
            _H.pack(_check(cpi, 16, "CPI"))
            + _B.pack(_check(transformId, 8, "IPComp transform"))
            + attributes,
        )

    @property
    def cpi(self):
        self._require(NotifyType.IPCOMP_SUPPORTED)
        return _H.unpack_from(self.data)[0]

    @property
    def ipcompTransform(self):
        self._require(NotifyType.IPCOMP_SUPPORTED)
        return self.data[2]

    @property
    def ipcompAttributes(self):
        self._require(NotifyType.IPCOMP_SUPPORTED)
        return self.data[3:]

    @classmethod
    def setWindowSize(cls, size):
        return cls(NotifyType.SET_WINDOW_SIZE, struct.pack("!I", _check(size, 32, "window")))

    @property
    def windowSize(self):
        self._require(NotifyType.SET_WINDOW_SIZE)
        return struct.unpack("!I", self.data)[0]

    @classmethod
    def additionalKeyExchange(cls, link):
        return cls(NotifyType.ADDITIONAL_KEY_EXCHANGE, link)

    @classmethod
    def unsupportedCriticalPayload(cls, payloadType):
        return cls(
            NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
            _B.pack(_check(payloadType, 8, "payload type")),
        )

    @property
    def unsupportedPayloadType(self):
        self._require(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)
        return self.data[0]


# -- Delete -------------------------------------------------------------------


@registerPayload
class Delete(Payload):
    """
    Delete payload (RFC 7296 3.11): no SPI for the IKE SA, 4-octet SPIs
    for AH and ESP.

    @ivar protocolId: a L{ProtocolId}.
    @ivar spis: L{list} of SPI octets.
    @ivar spiSize: the SPI Size (0 for IKE, 4 for AH/ESP by default).
    """

    payloadType = PayloadType.DELETE
    minimumBodyLength = 4
    compareAttributes = ("protocolId", "spiSize", "spis", "critical")

    def __init__(self, protocolId, spis=(), spiSize=None, critical=False):
        self.protocolId = protocolId
        self.spis = [_bytes(spi, "spi") for spi in spis]
        if spiSize is None:
            if protocolId == ProtocolId.IKE:
                spiSize = 0
            elif protocolId in _CHILD_PROTOCOLS:
                spiSize = 4
            else:
                spiSize = len(self.spis[0]) if self.spis else 0
        self.spiSize = spiSize
        self.critical = critical

    def encodeBody(self):
        for spi in self.spis:
            if len(spi) != self.spiSize:
                raise WireEncodeError(
                    "Delete SPI of %d octets with SPI size %d" % (len(spi), self.spiSize)
                )
        return (
            _BBH.pack(
                _check(self.protocolId, 8, "protocol id"),
                _check(self.spiSize, 8, "SPI size"),
                _check(len(self.spis), 16, "SPI count"),
            )
            + b"".join(self.spis)
        )

    @classmethod
    def decodeBody(cls, body):
        protocolId, spiSize, count = _BBH.unpack_from(body)
        if protocolId == ProtocolId.IKE and spiSize != 0:
            raise InvalidSyntax("Delete for IKE with SPI size %d" % (spiSize,))
        if protocolId in _CHILD_PROTOCOLS and spiSize != 4:
            raise InvalidSyntax("Delete for AH/ESP with SPI size %d" % (spiSize,))
        if spiSize == 0 and count:
            raise InvalidSyntax("Delete of %d SPIs of size zero" % (count,))
        if 4 + spiSize * count != len(body):
            raise InvalidSyntax(
                "Delete of %d SPIs of %d octets in a %d-octet body"
                % (count, spiSize, len(body))
            )
        return cls(
            protocolId,
            [bytes(body[i : i + spiSize]) for i in range(4, len(body), spiSize or 1)]
            if spiSize
            else [],
            spiSize,
        )


# -- TS -----------------------------------------------------------------------

_TS_IPV4 = struct.Struct("!BBHHH4s4s")
_TS_IPV6 = struct.Struct("!BBHHH16s16s")
_TS_HEADER = struct.Struct("!BBH")


class TrafficSelector(_Fields):
    """
    An address-range traffic selector (RFC 7296 3.13.1), TS_IPV4_ADDR_RANGE
    or TS_IPV6_ADDR_RANGE according to the addresses.
    """

    compareAttributes = ("startAddress", "endAddress", "ipProtocol", "startPort", "endPort")

    def __init__(self, startAddress, endAddress, ipProtocol=0, startPort=0, endPort=65535):
        self.startAddress = ipaddress.ip_address(startAddress)
        self.endAddress = ipaddress.ip_address(endAddress)
        if self.startAddress.version != self.endAddress.version:
            raise WireEncodeError("traffic selector mixes IPv4 and IPv6")
        self.ipProtocol = ipProtocol
        self.startPort = startPort
        self.endPort = endPort

    @classmethod
    def fromNetwork(cls, network, ipProtocol=0, startPort=0, endPort=65535):
        network = ipaddress.ip_network(network)
        return cls(
            network.network_address, network.broadcast_address, ipProtocol, startPort, endPort
        )

    @property
    def tsType(self):
        if self.startAddress.version == 4:
            return TrafficSelectorType.TS_IPV4_ADDR_RANGE
        return TrafficSelectorType.TS_IPV6_ADDR_RANGE

    def encode(self):
        layout = _TS_IPV4 if self.startAddress.version == 4 else _TS_IPV6
        return layout.pack(
            self.tsType,
            _check(self.ipProtocol, 8, "IP protocol"),
            layout.size,
            _check(self.startPort, 16, "port"),
            _check(self.endPort, 16, "port"),
            self.startAddress.packed,
            self.endAddress.packed,
        )


class SecurityLabelSelector(_Fields):
    """
    A TS_SECLABEL traffic selector (RFC 9478 3).
    """

    compareAttributes = ("label",)
    tsType = TrafficSelectorType.TS_SECLABEL

    def __init__(self, label):
        self.label = _bytes(label, "label")

    def encode(self):
        length = _check(4 + len(self.label), 16, "selector length")
        return _TS_HEADER.pack(self.tsType, 0, length) + self.label


class UnknownTrafficSelector(_Fields):
    """
    A traffic selector of a type not decoded here, kept as octets.

    @ivar secondOctet: the octet after the TS Type (IP Protocol ID in the
        address ranges; its meaning depends on the type).
    @ivar data: the octets after the Selector Length.
    """

    compareAttributes = ("tsType", "secondOctet", "data")

    def __init__(self, tsType, data, secondOctet=0):
        self.tsType = tsType
        self.data = _bytes(data, "data")
        self.secondOctet = secondOctet

    def encode(self):
        length = _check(4 + len(self.data), 16, "selector length")
        return (
            _TS_HEADER.pack(
                _check(self.tsType, 8, "TS type"), _check(self.secondOctet, 8, "octet"), length
            )
            + self.data
        )


def _decodeSelector(view, offset, end):
    if end - offset < 4:
        raise InvalidSyntax("traffic selector truncated")
    tsType, second, length = _TS_HEADER.unpack_from(view, offset)
    if length < 4:
        raise InvalidSyntax("traffic selector length %d below 4" % (length,))
    if length > end - offset:
        raise InvalidSyntax("traffic selector of %d octets overruns its payload" % (length,))
    if tsType == TrafficSelectorType.TS_IPV4_ADDR_RANGE:
        layout, factory = _TS_IPV4, ipaddress.IPv4Address
    elif tsType == TrafficSelectorType.TS_IPV6_ADDR_RANGE:
        layout, factory = _TS_IPV6, ipaddress.IPv6Address
    elif tsType == TrafficSelectorType.TS_SECLABEL:
        return SecurityLabelSelector(bytes(view[offset + 4 : offset + length])), length
    else:
        return (
            UnknownTrafficSelector(tsType, bytes(view[offset + 4 : offset + length]), second),
            length,
        )
    if length != layout.size:
        raise InvalidSyntax(
            "%s selector of %d octets, not %d"
            % (nameOf(TrafficSelectorType, tsType), length, layout.size)
        )
    _, protocol, _, startPort, endPort, start, stop = layout.unpack_from(view, offset)
    selector = TrafficSelector.__new__(TrafficSelector)
    selector.startAddress = factory(start)
    selector.endAddress = factory(stop)
    selector.ipProtocol = protocol
    selector.startPort = startPort
    selector.endPort = endPort
    return selector, length


class _TrafficSelectors(Payload):
    """
    TSi/TSr payload (RFC 7296 3.13).

    @ivar selectors: L{list} of L{TrafficSelector},
        L{SecurityLabelSelector} or L{UnknownTrafficSelector}.
    """

    minimumBodyLength = 4
    compareAttributes = ("selectors", "critical")

    def __init__(self, selectors=(), critical=False):
        self.selectors = list(selectors)
        self.critical = critical

    def encodeBody(self):
        return _B3X.pack(_check(len(self.selectors), 8, "TS count")) + b"".join(
            s.encode() for s in self.selectors
        )

    @classmethod
    def decodeBody(cls, body):
        count = body[0]
        selectors = []
        offset = 4
        end = len(body)
        while offset < end:
            selector, length = _decodeSelector(body, offset, end)
            selectors.append(selector)
            offset += length
        if len(selectors) != count:
            raise InvalidSyntax(
                "TS payload announces %d selectors, carries %d" % (count, len(selectors))
            )
        return cls(selectors)


@registerPayload
class TrafficSelectorsInitiator(_TrafficSelectors):
    payloadType = PayloadType.TSi


@registerPayload
class TrafficSelectorsResponder(_TrafficSelectors):
    payloadType = PayloadType.TSr


TSi = TrafficSelectorsInitiator
TSr = TrafficSelectorsResponder


# -- CP -----------------------------------------------------------------------

_CP_SIZES = {
    CfgAttr.INTERNAL_IP4_ADDRESS: (0, 4),
    CfgAttr.INTERNAL_IP4_NETMASK: (0, 4),
    CfgAttr.INTERNAL_IP4_DNS: (0, 4),
    CfgAttr.INTERNAL_IP4_NBNS: (0, 4),
    CfgAttr.INTERNAL_IP4_DHCP: (0, 4),
    CfgAttr.INTERNAL_IP6_ADDRESS: (0, 17),
    CfgAttr.INTERNAL_IP6_DNS: (0, 16),
    CfgAttr.INTERNAL_IP6_DHCP: (0, 16),
    CfgAttr.INTERNAL_IP4_SUBNET: (0, 8),
    CfgAttr.INTERNAL_IP6_SUBNET: (0, 17),
    CfgAttr.INTERNAL_IP6_PREFIX: (0, 17),
    CfgAttr.P_CSCF_IP4_ADDRESS: (0, 4),
    CfgAttr.P_CSCF_IP6_ADDRESS: (0, 16),
}
_CP_RESERVED_BIT = 0x8000


class ConfigurationAttribute(_Fields):
    """
    A configuration attribute (RFC 7296 3.15.1).  An empty value is a
    request for that attribute.
    """

    compareAttributes = ("attributeType", "value")

    def __init__(self, attributeType, value=b""):
        self.attributeType = attributeType
        self.value = _bytes(value, "value")

    @classmethod
    def fromAddress(cls, attributeType, address, prefixLength=None):
        """
        An attribute holding an address; IPv6 address and subnet attributes
        take a prefix length octet, INTERNAL_IP4_SUBNET a netmask.
        """
        address = ipaddress.ip_address(address)
        value = address.packed
        if prefixLength is not None:
            if address.version == 4:
                value += ipaddress.IPv4Network("0.0.0.0/%d" % (prefixLength,)).netmask.packed
            else:
                value += _B.pack(prefixLength)
        return cls(attributeType, value)

    @property
    def address(self):
        """
        The address at the head of an address attribute, or C{None} when
        empty or not an address.
        """
        if len(self.value) >= 16 and self.attributeType in (
            CfgAttr.INTERNAL_IP6_ADDRESS,
            CfgAttr.INTERNAL_IP6_DNS,
            CfgAttr.INTERNAL_IP6_DHCP,
            CfgAttr.INTERNAL_IP6_SUBNET,
            CfgAttr.INTERNAL_IP6_PREFIX,
            CfgAttr.P_CSCF_IP6_ADDRESS,
            CfgAttr.INTERNAL_IP6_SERVER,
        ):
            return ipaddress.IPv6Address(self.value[:16])
        if len(self.value) >= 4 and self.attributeType in (
            CfgAttr.INTERNAL_IP4_ADDRESS,
            CfgAttr.INTERNAL_IP4_NETMASK,
            CfgAttr.INTERNAL_IP4_DNS,
            CfgAttr.INTERNAL_IP4_NBNS,
            CfgAttr.INTERNAL_IP4_DHCP,
            CfgAttr.INTERNAL_IP4_SUBNET,
            CfgAttr.P_CSCF_IP4_ADDRESS,
            CfgAttr.INTERNAL_IP4_SERVER,
        ):
            return ipaddress.IPv4Address(self.value[:4])
        return None

    @property
    def prefixLength(self):
        """
        The prefix length of an INTERNAL_IP6_ADDRESS/SUBNET/PREFIX or
        INTERNAL_IP4_SUBNET, or C{None}.
        """
        if len(self.value) == 17:
            return self.value[16]
        if len(self.value) == 8 and self.attributeType == CfgAttr.INTERNAL_IP4_SUBNET:
            mask = int.from_bytes(self.value[4:], "big")
            return bin(mask).count("1")
        return None

    def encode(self):
        _check(self.attributeType, 15, "attribute type")
        _check(len(self.value), 16, "attribute length")
        return _HH.pack(self.attributeType, len(self.value)) + self.value


@registerPayload
class Configuration(Payload):
    """
    CP payload (RFC 7296 3.15).

    @ivar cfgType: a L{ikedtx.wire.constants.ConfigurationType}.
    @ivar attributes: L{list} of L{ConfigurationAttribute}.
    """

    payloadType = PayloadType.CP
    minimumBodyLength = 4
    compareAttributes = ("cfgType", "attributes", "critical")

    def __init__(self, cfgType, attributes=(), critical=False):
        self.cfgType = cfgType
        self.attributes = list(attributes)
        self.critical = critical

    def encodeBody(self):
        return _B3X.pack(_check(self.cfgType, 8, "CFG type")) + b"".join(
            a.encode() for a in self.attributes
        )

    @classmethod
    def decodeBody(cls, body):
        attributes = []
        offset = 4
        end = len(body)
        while offset < end:
            if end - offset < 4:
                raise InvalidSyntax("configuration attribute truncated")
            kind, length = _HH.unpack_from(body, offset)
            kind &= ~_CP_RESERVED_BIT
            offset += 4
            if length > end - offset:
                raise InvalidSyntax(
                    "configuration attribute %d of %d octets overruns its payload"
                    % (kind, length)
                )
            sizes = _CP_SIZES.get(kind)
            if sizes is not None and length not in sizes:
                raise InvalidSyntax(
                    "%s of %d octets" % (nameOf(CfgAttr, kind), length)
                )
            if kind == CfgAttr.SUPPORTED_ATTRIBUTES and length % 2:
                raise InvalidSyntax("SUPPORTED_ATTRIBUTES of odd length %d" % (length,))
            attributes.append(ConfigurationAttribute(kind, bytes(body[offset : offset + length])))
            offset += length
        return cls(body[0], attributes)


# -- EAP ----------------------------------------------------------------------

_EAP_HEADER = struct.Struct("!BBH")


@registerPayload
class EAP(Payload):
    """
    EAP payload (RFC 7296 3.16) holding one EAP message (RFC 3748 4):
    Code, Identifier, Length, and for Request/Response a Type and its
    data.  Other codes keep their octets after the header in C{typeData}
    with C{eapType} C{None}.
    """

    payloadType = PayloadType.EAP
    minimumBodyLength = 4
    compareAttributes = ("code", "identifier", "eapType", "typeData", "critical")

    def __init__(self, code, identifier, eapType=None, typeData=b"", critical=False):
        self.code = code
        self.identifier = identifier
        self.eapType = eapType
        self.typeData = _bytes(typeData, "typeData")
        self.critical = critical

    @property
    def message(self):
        """
        The whole EAP message octets (what EAP methods authenticate).
        """
        return self.encodeBody()

    def encodeBody(self):
        if self.eapType is None:
            rest = self.typeData
        else:
            rest = _B.pack(_check(self.eapType, 8, "EAP type")) + self.typeData
        length = _check(4 + len(rest), 16, "EAP length")
        return (
            _EAP_HEADER.pack(
                _check(self.code, 8, "EAP code"), _check(self.identifier, 8, "identifier"), length
            )
            + rest
        )

    @classmethod
    def decodeBody(cls, body):
        code, identifier, length = _EAP_HEADER.unpack_from(body)
        if length != len(body):
            raise InvalidSyntax(
                "EAP Length %d in a %d-octet EAP payload body" % (length, len(body))
            )
        if code in (EapCode.REQUEST, EapCode.RESPONSE):
            if length < 5:
                raise InvalidSyntax("EAP request/response without a Type")
            return cls(code, identifier, body[4], bytes(body[5:]))
        if code in (EapCode.SUCCESS, EapCode.FAILURE) and length != 4:
            raise InvalidSyntax("EAP success/failure of length %d" % (length,))
        return cls(code, identifier, None, bytes(body[4:]))


# -- SK and SKF ---------------------------------------------------------------


@registerPayload
class Encrypted(Payload):
    """
    SK payload (RFC 7296 3.14) as received or to be re-sent: the type of
    the first inner payload (the SK payload's Next Payload field) and the
    sealed octets (IV, ciphertext with padding and pad length, ICV).
    L{ikedtx.wire.message.Message.decrypt} opens it.
    """

    payloadType = PayloadType.SK
    compareAttributes = ("innerType", "body", "critical")

    def __init__(self, innerType, body, critical=False):
        self.innerType = innerType
        self.body = _bytes(body, "body")
        self.critical = critical

    def encodeBody(self):
        return self.body

    @classmethod
    def decodeBody(cls, body, innerType=0):
        return cls(innerType, bytes(body))

    @property
    def sealed(self):
        return self.body


SKF_HEADER = struct.Struct("!HH")


@registerPayload
class EncryptedFragment(Payload):
    """
    SKF payload (RFC 7383 2.5): one fragment of an encrypted message.

    @ivar innerType: the first inner payload type in fragment 1, else 0.
    @ivar fragmentNumber: 1 to C{totalFragments}.
    @ivar sealed: IV, ciphertext and ICV of this fragment.
    """

    payloadType = PayloadType.SKF
    minimumBodyLength = 4
    compareAttributes = ("innerType", "fragmentNumber", "totalFragments", "sealed", "critical")

    def __init__(self, innerType, fragmentNumber, totalFragments, sealed, critical=False):
        self.innerType = innerType
        self.fragmentNumber = fragmentNumber
        self.totalFragments = totalFragments
        self.sealed = _bytes(sealed, "sealed")
        self.critical = critical

    def encodeBody(self):
        return (
            SKF_HEADER.pack(
                _check(self.fragmentNumber, 16, "fragment number"),
                _check(self.totalFragments, 16, "total fragments"),
            )
            + self.sealed
        )

    @classmethod
    def decodeBody(cls, body, innerType=0):
        number, total = SKF_HEADER.unpack_from(body)
        if not 1 <= number <= total:
            raise InvalidSyntax("fragment %d of %d" % (number, total))
        return cls(innerType, number, total, bytes(body[4:]))


_ENCRYPTED = (PayloadType.SK, PayloadType.SKF)


# -- chains -------------------------------------------------------------------


def encodePayloads(payloads, followingType=PayloadType.NONE):
    """
    Encode a payload chain.

    @param payloads: payload instances; an L{Encrypted} or
        L{EncryptedFragment} may only come last (its Next Payload field is
        its C{innerType}).
    @param followingType: the Next Payload of the last payload (the type
        of a payload the caller appends, e.g. SK).
    @return: C{(firstType, octets)}; C{firstType} is C{followingType} for
        an empty chain.
    @raise WireEncodeError: a payload does not fit its fields.
    """
    parts = []
    n = len(payloads)
    for i, payload in enumerate(payloads):
        if payload.payloadType in _ENCRYPTED:
            if i != n - 1:
                raise WireEncodeError("an SK/SKF payload must be the last payload")
            following = payload.innerType
        else:
            following = payloads[i + 1].payloadType if i + 1 < n else followingType
        body = payload.encodeBody()
        length = 4 + len(body)
        if length > 0xFFFF:
            raise WireEncodeError(
                "%s payload of %d octets" % (type(payload).__name__, length)
            )
        parts.append(
            _GENERIC.pack(following, CRITICAL_FLAG if payload.critical else 0, length)
        )
        parts.append(body)
    return (payloads[0].payloadType if payloads else followingType), b"".join(parts)


def decodeChain(data, firstType, start, end, allowEncrypted):
    """
    Decode the payloads in C{data[start:end]}, the first of type
    C{firstType}.

    @param allowEncrypted: whether an SK/SKF payload may end the chain
        (only in the outer chain of a message).
    @return: C{(payloads, sealedStart)}: the payloads in order and, when
        the chain ends in SK/SKF, the offset of the first octet after its
        fixed fields (where the IV starts), else C{None}.
    @raise InvalidSyntax: lengths or counts do not agree.
    @raise UnsupportedCriticalPayload: an unknown payload is critical.
    """
    view = memoryview(data)
    payloads = []
    nextType = firstType
    offset = start
    while nextType != PayloadType.NONE:
        if end - offset < 4:
            raise InvalidSyntax(
                "%s payload header truncated at offset %d"
                % (nameOf(PayloadType, nextType), offset)
            )
        following, flags, length = _GENERIC.unpack_from(view, offset)
        if length < 4:
            raise InvalidSyntax(
                "%s payload length %d at offset %d"
                % (nameOf(PayloadType, nextType), length, offset)
            )
        if length > end - offset:
            raise InvalidSyntax(
                "%s payload of %d octets at offset %d overruns its parent (%d left)"
                % (nameOf(PayloadType, nextType), length, offset, end - offset)
            )
        critical = bool(flags & CRITICAL_FLAG)
        cls = _payloadClasses.get(nextType)
        if cls is None:
            if critical:
                raise UnsupportedCriticalPayload(
                    "unsupported critical payload type %d" % (nextType,), nextType
                )
            payloads.append(
                UnknownPayload(nextType, bytes(view[offset + 4 : offset + length]))
            )
        else:
            if length - 4 < cls.minimumBodyLength:
                raise InvalidSyntax(
                    "%s payload of %d octets is shorter than its fixed fields"
                    % (nameOf(PayloadType, nextType), length)
                )
            body = view[offset + 4 : offset + length]
            if nextType in _ENCRYPTED:
                if not allowEncrypted:
                    raise InvalidSyntax(
                        "%s payload inside an encrypted payload" % (nameOf(PayloadType, nextType),)
                    )
                if offset + length != end:
                    raise InvalidSyntax(
                        "%s payload is not the last payload" % (nameOf(PayloadType, nextType),)
                    )
                payload = cls.decodeBody(body, following)
                payload.critical = critical
                payloads.append(payload)
                return payloads, offset + 4 + cls.minimumBodyLength
            payload = cls.decodeBody(body)
            if critical:
                payload.critical = True
            payloads.append(payload)
        offset += length
        nextType = following
    if offset != end:
        raise InvalidSyntax(
            "%d octets trail the payload chain at offset %d" % (end - offset, offset)
        )
    return payloads, None


def decodePayloads(data, firstType):
    """
    Decode a whole payload chain that contains no SK/SKF payload (the
    plaintext of an SK payload).

    @raise MalformedMessage: see L{decodeChain}.
    """
    return decodeChain(data, firstType, 0, len(data), False)[0]

# -*- test-case-name: tests.test_wire_payloads -*-
"""
The payloads of who a peer is and how it proves it: IDi/IDr (RFC 7296
3.5), CERT (3.6), CERTREQ (3.7) and AUTH (3.8, RFC 7427 3).
"""

import ipaddress

from ikedtx.wire.constants import AuthMethod, CertEncoding, IdType, PayloadType, nameOf
from ikedtx.wire.errors import InvalidSyntax
from ikedtx.wire.payloads.base import _B, _B3X, Payload, _bytes, _check, registerPayload


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

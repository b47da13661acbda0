# -*- test-case-name: tests.test_wire_payloads -*-
"""
The Notify payload (RFC 7296 3.10) with its typed constructors and
accessors for the types the daemon uses.
"""

import struct

from ikedtx.wire.constants import NotifyType, PayloadType, isErrorNotify, nameOf
from ikedtx.wire.errors import InvalidSyntax
from ikedtx.wire.payloads.base import (
    _B,
    _BBH,
    _CHILD_PROTOCOLS,
    _H,
    Payload,
    _bytes,
    _check,
    registerPayload,
)


NAT_DETECTION_HASH_LENGTH = 20
COOKIE_MAX = 64


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
        try:
            return _BBH.pack(self.protocolId, len(self.spi), self.notifyType) + self.spi + self.data
        except struct.error:
            # Say which field does not fit.
            pass
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

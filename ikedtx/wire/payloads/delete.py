# -*- test-case-name: tests.test_wire_payloads -*-
"""
The Delete payload (RFC 7296 3.11).
"""

from ikedtx.wire.constants import PayloadType, ProtocolId
from ikedtx.wire.errors import InvalidSyntax, WireEncodeError
from ikedtx.wire.payloads.base import (
    _BBH,
    _CHILD_PROTOCOLS,
    Payload,
    _bytes,
    _check,
    registerPayload,
)


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

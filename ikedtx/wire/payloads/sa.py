# -*- test-case-name: tests.test_wire_payloads -*-
"""
The SA payload with its Proposals, Transforms and transform Attributes
(RFC 7296 3.3).
"""

import struct

from ikedtx.wire.constants import PayloadType, TransformAttribute as TfAttr
from ikedtx.wire.errors import InvalidSyntax
from ikedtx.wire.payloads.base import (
    _HH,
    Payload,
    _Fields,
    _bytes,
    _check,
    registerPayload,
)


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
        attributeType, value = self.attributeType, self.value
        if 0 <= attributeType < 0x8000:
            # The common case without a call per field: struct refuses
            # what does not fit, and the checks below then say why.
            try:
                if isinstance(value, int):
                    return _HH.pack(_ATTRIBUTE_TV | attributeType, value)
                return _HH.pack(attributeType, len(value)) + value
            except struct.error:
                pass
        _check(attributeType, 15, "attribute type")
        if self.isTV:
            return _HH.pack(_ATTRIBUTE_TV | attributeType, _check(value, 16, "TV value"))
        _check(len(value), 16, "TLV length")
        return _HH.pack(attributeType, len(value)) + value


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
        attributes = b"".join([a.encode() for a in self.attributes]) if self.attributes else b""
        try:
            return _TRANSFORM.pack(
                _LAST if last else _MORE_TRANSFORMS, 8 + len(attributes), self.transformType, self.transformId
            ) + attributes
        except struct.error:
            pass
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
    unpack = _TRANSFORM.unpack_from
    while offset < end:
        if end - offset < 8:
            raise InvalidSyntax("transform substructure truncated")
        last, length, transformType, transformId = unpack(view, offset)
        if length < 8:
            raise InvalidSyntax("transform length %d below 8" % (length,))
        if length > end - offset:
            raise InvalidSyntax("transform of %d octets overruns its proposal" % (length,))
        following = offset + length
        isLast = following == end
        if last not in (_LAST, _MORE_TRANSFORMS) or (last == _LAST) != isLast:
            raise InvalidSyntax(
                "transform Last Substruc %d where %s" % (last, "last" if isLast else "more follow")
            )
        transforms.append(
            Transform(
                transformType,
                transformId,
                _decodeAttributes(view, offset + 8, following) if length > 8 else (),
            )
        )
        offset = following
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
        transforms = b"".join([t.encode(i == n - 1) for i, t in enumerate(self.transforms)])
        try:
            return _PROPOSAL.pack(
                _LAST if last else _MORE_PROPOSALS, 8 + len(self.spi) + len(transforms), self.number,
                self.protocolId, len(self.spi), n,
            ) + self.spi + transforms
        except struct.error:
            pass
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

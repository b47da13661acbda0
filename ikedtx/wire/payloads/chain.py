# -*- test-case-name: tests.test_wire_payloads -*-
"""
Payload chains: the generic header of every payload, written and read
in order (RFC 7296 3.2).
"""

from ikedtx.wire.constants import CRITICAL_FLAG, PayloadType, nameOf
from ikedtx.wire.errors import (
    InvalidSyntax,
    UnsupportedCriticalPayload,
    WireEncodeError,
)
from ikedtx.wire.payloads.base import _GENERIC, _payloadClasses
from ikedtx.wire.payloads.sk import _ENCRYPTED
from ikedtx.wire.payloads.unknown import UnknownPayload


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
    append = parts.append
    pack = _GENERIC.pack
    last = len(payloads) - 1
    for i, payload in enumerate(payloads):
        if payload.payloadType in _ENCRYPTED:
            if i != last:
                raise WireEncodeError("an SK/SKF payload must be the last payload")
            following = payload.innerType
        else:
            following = payloads[i + 1].payloadType if i < last else followingType
        body = payload.encodeBody()
        length = 4 + len(body)
        if length > 0xFFFF:
            raise WireEncodeError(
                "%s payload of %d octets" % (type(payload).__name__, length)
            )
        append(pack(following, CRITICAL_FLAG if payload.critical else 0, length))
        append(body)
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
    unpack = _GENERIC.unpack_from
    classOf = _payloadClasses.get
    while nextType:  # PayloadType.NONE is 0
        if end - offset < 4:
            raise InvalidSyntax(
                "%s payload header truncated at offset %d"
                % (nameOf(PayloadType, nextType), offset)
            )
        following, flags, length = unpack(view, offset)
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
        cls = classOf(nextType)
        if cls is not None and nextType not in _ENCRYPTED and length - 4 >= cls.minimumBodyLength:
            # The common case: a known payload type in the middle of a chain.
            payload = cls.decodeBody(view[offset + 4 : offset + length])
            if flags & CRITICAL_FLAG:
                payload.critical = True
            payloads.append(payload)
            offset += length
            nextType = following
            continue
        critical = bool(flags & CRITICAL_FLAG)
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

# -*- test-case-name: tests.test_wire_payloads -*-
"""
The generic payload header (RFC 7296 3.2), the registry of payload classes
by type, and the base class every payload derives from.
"""

import struct

from twisted.python.util import FancyEqMixin

from ikedtx.wire.constants import ProtocolId
from ikedtx.wire.errors import WireEncodeError


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
    if value.__class__ is bytes:
        return value
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


# the protocols of a Child SA, whose SPIs are 4 octets (Notify, Delete)
_CHILD_PROTOCOLS = (ProtocolId.AH, ProtocolId.ESP)

# -*- test-case-name: tests.test_wire_malformed -*-
"""
The one exception family of the wire layer.

Everything the decoder raises for bytes a peer sent is a L{MalformedMessage}.
Each instance says what was wrong (C{str(error)}) and which Notify RFC 7296
tells the receiver to answer with (C{error.notify}, C{None} when the message
is to be dropped without an answer).  Whether an answer is actually sent is
the core's decision: RFC 7296 3.10.1 allows INVALID_SYNTAX only in an
encrypted response to a message whose ICV was valid, so for an unprotected
message (or the unprotected part of one) the core drops it.

Mistakes of our own (encoding a payload whose fields do not fit their wire
sizes) raise L{WireEncodeError}, a L{ValueError}, never a
L{MalformedMessage}.
"""

from ikedtx.wire.constants import NotifyType


class MalformedMessage(Exception):
    """
    A datagram or a payload chain could not be decoded.

    @ivar reason: what was wrong, for a log line.
    @ivar notify: the L{NotifyType} to answer with, or C{None} to drop.
    @ivar notifyData: the Notification Data of that Notify (C{b""} unless
        the type defines some).
    @ivar header: the decoded L{ikedtx.wire.header.Header} when the IKE
        header itself was sound (the core needs its SPIs, message ID and
        flags to answer), else C{None}.
    """

    notify = None
    notifyData = b""

    def __init__(self, reason, header=None):
        Exception.__init__(self, reason)
        self.reason = reason
        self.header = header

    def __str__(self):
        return self.reason

    def __repr__(self):
        return "<%s %r notify=%s>" % (
            type(self).__name__,
            self.reason,
            None if self.notify is None else NotifyType(self.notify).name,
        )


class ShortDatagram(MalformedMessage):
    """
    The datagram is too short to hold an IKE header (or, on port 4500, a
    non-ESP marker); nothing can be answered.
    """


class LengthMismatch(MalformedMessage):
    """
    The IKE header's Length field disagrees with the datagram: either it
    claims more bytes than arrived or bytes follow the message.  The datagram
    cannot be trusted, so it is dropped.
    """


class InvalidMajorVersion(MalformedMessage):
    """
    The header's major version is not 2.

    RFC 7296 2.5: a higher major version is answered with
    INVALID_MAJOR_VERSION (with our version in the reply header); a lower
    one is another protocol (IKEv1) and is dropped.

    @ivar majorVersion: the major version received.
    """

    def __init__(self, reason, majorVersion, header=None):
        MalformedMessage.__init__(self, reason, header)
        self.majorVersion = majorVersion
        if majorVersion > 2:
            self.notify = NotifyType.INVALID_MAJOR_VERSION


class InvalidSyntax(MalformedMessage):
    """
    A type, length or value inside the message is out of range: a payload
    overruns its parent, a length is zero or below the fixed size, a fixed
    size is wrong, counts disagree with contents, data trails a chain, or
    an encrypted payload is not last.
    """

    notify = NotifyType.INVALID_SYNTAX


class UnsupportedCriticalPayload(MalformedMessage):
    """
    A payload of a type we do not know has its critical bit set
    (RFC 7296 2.5, 3.2): the message is rejected and answered with
    UNSUPPORTED_CRITICAL_PAYLOAD carrying the one-octet type.

    @ivar payloadType: the unsupported payload type.
    """

    notify = NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD

    def __init__(self, reason, payloadType, header=None):
        MalformedMessage.__init__(self, reason, header)
        self.payloadType = payloadType
        self.notifyData = bytes([payloadType])


class FragmentDropped(MalformedMessage):
    """
    A fragment (RFC 7383) was discarded by the L{ikedtx.wire.fragments.
    Reassembler}: a duplicate, a Total Fragments smaller than earlier
    fragments', an inconsistent exchange, or a resource limit.  Dropped
    silently (RFC 7383 2.6.2).
    """


class WireEncodeError(ValueError):
    """
    A payload or message built locally cannot be encoded: a field does not
    fit its wire size, or the message is inconsistent (an SK payload that
    is not last, encrypted payloads without a cipher, a cipher whose output
    does not match its announced length).
    """

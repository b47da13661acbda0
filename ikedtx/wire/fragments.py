# -*- test-case-name: tests.test_wire_fragments -*-
"""
IKE message fragmentation (RFC 7383).

L{fragmentMessage} turns a message with encrypted payloads into SKF
messages; a L{Reassembler} (one per IKE SA) verifies and decrypts the SKF
messages it is given and returns the whole message once every fragment has
arrived.
"""

from ikedtx.wire.constants import IKE_HEADER_LENGTH, PayloadType
from ikedtx.wire.errors import FragmentDropped, MalformedMessage, WireEncodeError
from ikedtx.wire.header import packHeader
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import _GENERIC, SKF_HEADER, decodePayloads, encodePayloads

# IKE header, SKF generic header, Fragment Number and Total Fragments.
FRAGMENT_OVERHEAD = IKE_HEADER_LENGTH + 4 + SKF_HEADER.size
MAX_FRAGMENTS = 0xFFFF


def ikeMessageRoom(datagramSize, ipVersion, nonEspMarker):
    """
    The largest IKE message that fits an IP datagram of C{datagramSize}
    octets (RFC 7383 2.5.1 suggests 1280 for IPv6 and 576 for IPv4): minus
    the IP header (20 or 40), the UDP header (8) and, on port 4500, the
    non-ESP marker (4).  Pass the result to L{fragmentMessage}.
    """
    return datagramSize - (20 if ipVersion == 4 else 40) - 8 - (4 if nonEspMarker else 0)


# RFC 7383 2.5.1: IP datagrams every path carries, as iked sizes fragments.
PATH_DATAGRAM = {4: 576, 6: 1280}


def fragmentSizeFor(settings, ikeSA):
    """
    The largest IKE message of C{ikeSA} sent whole: C{settings.fragmentSize}
    when set, else what fits a datagram of L{PATH_DATAGRAM} octets on the
    SA's path (its address family, and the non-ESP marker on the NAT-T
    port).
    """
    if settings.fragmentSize:
        return settings.fragmentSize
    version = 6 if ":" in ikeSA.remote[0] else 4
    marker = ikeSA.nattEnabled or bool(ikeSA.local and ikeSA.local[1] == settings.nattPort)
    return ikeMessageRoom(PATH_DATAGRAM[version], version, marker)


def _largestPiece(cipher, room):
    """
    The largest plaintext length whose sealed form fits C{room} octets.
    """
    if room < 0 or cipher.sealedLength(0) > room:
        return 0
    low, high = 0, room
    while low < high:
        middle = (low + high + 1) // 2
        if cipher.sealedLength(middle) <= room:
            low = middle
        else:
            high = middle - 1
    return low


def fragmentMessage(message, cipher, maxFragmentSize):
    """
    Encode C{message} as SKF messages (RFC 7383 2.5).

    @param message: a L{Message} with C{encrypted} payloads and no
        unencrypted ones.
    @param cipher: the C{ISKCipher} of our direction.
    @param maxFragmentSize: the largest IKE message (UDP payload, not
        counting a non-ESP marker) a fragment may be; see
        L{ikeMessageRoom}.
    @return: L{list} of L{bytes}, fragments 1..N; fragment 1's Next Payload
        is the first inner payload's type, the others' 0.
    @raise WireEncodeError: no encrypted payloads, unencrypted payloads,
        a size too small for one octet of payload, or more than 65535
        fragments.
    """
    if message.encrypted is None:
        raise WireEncodeError("only messages with encrypted payloads are fragmented")
    if message.payloads:
        raise WireEncodeError("cannot fragment a message with unencrypted payloads")
    innerFirst, inner = encodePayloads(message.encrypted)
    piece = _largestPiece(cipher, maxFragmentSize - FRAGMENT_OVERHEAD)
    if piece < 1:
        raise WireEncodeError("fragment size %d leaves no room for data" % (maxFragmentSize,))
    total = max(1, -(-len(inner) // piece))
    if total > MAX_FRAGMENTS:
        raise WireEncodeError("%d fragments" % (total,))
    fragments = []
    for index in range(total):
        plaintext = inner[index * piece : (index + 1) * piece]
        sealedLength = cipher.sealedLength(len(plaintext))
        skfLength = 4 + SKF_HEADER.size + sealedLength
        aad = b"".join(
            (
                packHeader(
                    message.spiI,
                    message.spiR,
                    PayloadType.SKF,
                    message.minorVersion,
                    message.exchangeType,
                    message.flags,
                    message.messageId,
                    IKE_HEADER_LENGTH + skfLength,
                ),
                _GENERIC.pack(innerFirst if index == 0 else 0, 0, skfLength),
                SKF_HEADER.pack(index + 1, total),
            )
        )
        sealed = cipher.seal(aad, plaintext)
        if len(sealed) != sealedLength:
            raise WireEncodeError(
                "cipher sealed %d octets, announced %d" % (len(sealed), sealedLength)
            )
        fragments.append(aad + sealed)
    return fragments


class _Pending:
    """
    Fragments of one message received so far.

    @ivar total: its Total Fragments.
    @ivar pieces: fragment number -> plaintext.
    @ivar first: the decoded fragment 1 (for its inner type and outer
        payloads), once it arrived.
    @ivar size: plaintext octets held.
    @ivar started: when its first fragment was kept (L{None} without a
        clock).
    """

    def __init__(self, message, total, started):
        self.started = started
        self.exchangeType = message.exchangeType
        self.spis = (message.spiI, message.spiR)
        self.total = total
        self.pieces = {}
        self.first = None
        self.size = 0


class Reassembler:
    """
    Collects the SKF messages of one IKE SA and reassembles them
    (RFC 7383 2.6).

    Each fragment is verified and decrypted before it is kept.  Fragments
    are grouped by (Message ID, response flag).  A fragment announcing more
    fragments than earlier ones of the same message restarts the
    reassembly (the sender re-fragmented with a smaller size); fewer, a
    duplicate, a different exchange type or SPIs, or exceeding a limit
    drops the fragment with L{FragmentDropped}.

    Nothing is held for ever: IKEv2 peers use a window of one (ikedtx
    announces no SET_WINDOW_SIZE), so a fragment of a later request (or
    response) frees what is held of earlier ones, and a message not
    complete C{maxAge} seconds after its first fragment was kept is
    forgotten when the next fragment comes.

    @ivar maxFragments: the largest Total Fragments accepted.
    @ivar maxBytes: plaintext octets held over all pending messages.
    @ivar maxMessages: messages being reassembled at once.
    @ivar maxAge: seconds a message may take to arrive in full.
    """

    def __init__(self, maxFragments=64, maxBytes=64 * 1024, maxMessages=4, maxAge=30.0):
        self.maxFragments = maxFragments
        self.maxBytes = maxBytes
        self.maxMessages = maxMessages
        self.maxAge = maxAge
        self._pending = {}
        self._held = 0

    @property
    def bytesHeld(self):
        return self._held

    @property
    def pendingMessages(self):
        return len(self._pending)

    def discard(self, messageId, isResponse):
        """
        Forget the fragments of one message.
        """
        pending = self._pending.pop((messageId, isResponse), None)
        if pending is not None:
            self._held -= pending.size

    def clear(self):
        self._pending.clear()
        self._held = 0

    def _expire(self, key, now):
        """
        Forget the messages that C{key} (Message ID, response flag)
        supersedes, and those older than C{maxAge} at C{now}.
        """
        for other in list(self._pending):
            pending = self._pending[other]
            if other[1] == key[1] and other[0] < key[0]:
                self.discard(*other)
            elif now is not None and pending.started is not None and now - pending.started > self.maxAge:
                self.discard(*other)

    def add(self, message, cipher, now=None):
        """
        Add a decoded SKF message.

        @param message: a L{Message} from L{Message.decode} whose
            C{isFragment} is true.
        @param cipher: the C{ISKCipher} of the sender's direction.
        @param now: the time in seconds, for C{maxAge}; L{None} keeps
            messages until superseded.
        @return: C{None} while fragments are missing; then a L{Message}
            with the header fields of the fragments, the unencrypted
            payloads of fragment 1 (without its SKF payload), and the
            inner payloads as C{encrypted}; its C{plaintext} and
            C{innerType} (also set on C{message}, the last fragment) are
            those of the whole inner chain.
        @raise FragmentDropped: the fragment was discarded (see above).
        @raise ikedtx.crypto.errors.IntegrityError: from C{cipher.open};
            nothing was kept.
        @raise MalformedMessage: the reassembled inner chain is malformed.
        """
        fragment = message.sealedPayload
        if fragment is None or fragment.payloadType != PayloadType.SKF:
            raise ValueError("not an SKF message")
        key = (message.messageId, message.isResponse)
        number, total = fragment.fragmentNumber, fragment.totalFragments
        if total > self.maxFragments:
            raise FragmentDropped(
                "fragment %d of %d: more than %d fragments" % (number, total, self.maxFragments)
            )
        # The engine passes only fragments of the Message ID it expects, so
        # what this one supersedes is stale whether or not it is authentic.
        self._expire(key, now)
        pending = self._pending.get(key)
        restart = False
        if pending is not None:
            if (message.exchangeType, (message.spiI, message.spiR)) != (
                pending.exchangeType,
                pending.spis,
            ):
                raise FragmentDropped(
                    "fragment %d of message %d differs in exchange or SPIs" % (number, key[0])
                )
            if total < pending.total:
                raise FragmentDropped(
                    "fragment %d of %d after fragments of %d" % (number, total, pending.total)
                )
            if total > pending.total:
                restart = True
            elif number in pending.pieces:
                raise FragmentDropped("duplicate fragment %d of %d" % (number, total))
        elif len(self._pending) >= self.maxMessages:
            raise FragmentDropped(
                "fragment %d of message %d: %d messages already pending"
                % (number, key[0], len(self._pending))
            )
        held = self._held - (pending.size if restart else 0)
        if held + len(fragment.sealed) > self.maxBytes:
            raise FragmentDropped(
                "fragment %d of %d: would hold more than %d octets" % (number, total, self.maxBytes)
            )

        plaintext = cipher.open(message.aad, fragment.sealed)

        if pending is None or restart:
            if restart:
                self.discard(*key)
            pending = self._pending[key] = _Pending(message, total, now)
        pending.pieces[number] = plaintext
        pending.size += len(plaintext)
        self._held += len(plaintext)
        if number == 1:
            pending.first = message
        if len(pending.pieces) < total:
            return None

        self.discard(*key)
        first = pending.first
        inner = b"".join(pending.pieces[n] for n in range(1, total + 1))
        try:
            payloads = decodePayloads(inner, first.sealedPayload.innerType)
        except MalformedMessage as e:
            e.header = first.receivedHeader
            raise
        whole = Message(
            first.spiI,
            first.spiR,
            first.exchangeType,
            first.flags,
            first.messageId,
            first.payloads[:-1],
            payloads,
            first.minorVersion,
        )
        whole.plaintext = message.plaintext = bytes(inner)
        whole.innerType = message.innerType = first.sealedPayload.innerType
        return whole

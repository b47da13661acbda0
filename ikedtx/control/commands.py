# -*- test-case-name: tests.test_control -*-
"""
The AMP commands of the control socket: every ikectl(8) request, declared
once with its typed arguments, response and errors.

The daemon answers them (L{ikedtx.control.server}); the Deferred client
(L{ikedtx.control.client}) and the blocking one (L{ikedtx.control.sync})
send them; C{ikectl} speaks them (L{ikedtx.control.ikectl}).

Lists that can grow without bound (IKE SAs) are paged: an AMP value holds
at most 65,535 bytes.  C{monitor} is a subscription: once the daemon has
answered L{Monitor}, it sends the connection one L{Event} per event until
the connection closes.
"""

import json

from twisted.protocols.amp import AmpList, Argument, Boolean, Command, Float, Integer, ListOf, Unicode


class CommandFailed(Exception):
    """
    A control command could not be carried out; the message says why.
    """


class NoSuchSA(CommandFailed):
    """
    No IKE SA or Child SA matches what the command named.
    """


class BadArgument(CommandFailed):
    """
    An argument is out of range or malformed (an SPI that is not hex, a
    negative offset, an unknown reset target); the message says which.
    """


class ConfigRejected(CommandFailed):
    """
    C{load}/C{reload}: the file is broken; the message holds its
    C{FILE: LINE: ...} errors, one a line.  The daemon goes on with the
    configuration it had.
    """


class NotPermitted(CommandFailed):
    """
    The connection may not run this command.
    """


#: Every error a command may answer with, by its AMP error code; anything
#: else reaches the client as AMP's generic error, which the responders
#: never let happen (L{ikedtx.control.server} turns it into L{CommandFailed}).
# (The subclasses come first: AMP answers with the first class that
# matches.)
ERRORS = {
    NoSuchSA: b"NO_SUCH_SA",
    BadArgument: b"BAD_ARGUMENT",
    ConfigRejected: b"CONFIG_REJECTED",
    NotPermitted: b"NOT_PERMITTED",
    CommandFailed: b"COMMAND_FAILED",
}
_ERRORS = ERRORS

#: The error codes, back to their exceptions (for the blocking client).
ERROR_CODES = {code: error for error, code in ERRORS.items()}

_FLOW = [
    (b"direction", Unicode()),
    (b"source", Unicode()),
    (b"destination", Unicode()),
    (b"protocol", Integer()),
    (b"loaded", Boolean()),
]

_CHILD = [
    (b"protocol", Unicode()),
    (b"spiIn", Unicode()),
    (b"spiOut", Unicode()),
    (b"reqid", Integer(optional=True)),
    (b"mode", Unicode()),
    (b"state", Unicode()),
    (b"local", ListOf(Unicode())),
    (b"remote", ListOf(Unicode())),
    (b"proposal", Unicode()),
    (b"encryption", Unicode(optional=True)),
    (b"integrity", Unicode(optional=True)),
    (b"esn", Boolean(optional=True)),
    (b"pfsGroup", Unicode(optional=True)),
    (b"udpencap", Boolean(optional=True)),
    (b"loaded", Boolean(optional=True)),
    (b"age", Float(optional=True)),
    (b"lifetime", Integer(optional=True)),
    (b"lifetimeRemaining", Float(optional=True)),
    (b"lifetimeBytes", Integer(optional=True)),
    (b"bytesIn", Integer(optional=True)),
    (b"packetsIn", Integer(optional=True)),
    (b"bytesOut", Integer(optional=True)),
    (b"packetsOut", Integer(optional=True)),
    (b"flows", AmpList(_FLOW, optional=True)),
]

_IKESA = [
    (b"spiI", Unicode()),
    (b"spiR", Unicode()),
    (b"initiator", Integer()),
    (b"state", Unicode()),
    (b"policy", Unicode()),
    (b"local", Unicode()),
    (b"remote", Unicode()),
    (b"localId", Unicode()),
    (b"peerId", Unicode()),
    (b"vips", Unicode(optional=True)),
    (b"eapId", Unicode(optional=True)),
    (b"proposal", Unicode()),
    (b"encryption", Unicode(optional=True)),
    (b"integrity", Unicode(optional=True)),
    (b"prf", Unicode(optional=True)),
    (b"group", Unicode(optional=True)),
    (b"natt", Integer()),
    (b"udpencap", Integer()),
    (b"natLocal", Boolean(optional=True)),
    (b"natRemote", Boolean(optional=True)),
    (b"age", Float(optional=True)),
    (b"established", Float(optional=True)),
    (b"lifetime", Integer(optional=True)),
    (b"lifetimeRemaining", Float(optional=True)),
    (b"children", AmpList(_CHILD)),
]


# An AMP value holds at most 65,535 bytes: SAs are listed a page at a time.
SHOW_SA_PAGE = 50

#: SAs per page of a C{packed} L{ShowSA}: a page's SAs are described while
#: IKE waits (about 20 microseconds an IKE SA without Child SAs), so a page
#: is a few tens of milliseconds at most.
SHOW_SA_PACKED_PAGE = 1000

#: The largest AMP value (its length is two bytes).
_AMP_VALUE_MAX = 0xFFFF


class PackedJSON(Argument):
    """
    A JSON value of any size, as UTF-8 over as many AMP keys as it needs:
    C{name}, C{name.1}, C{name.2}...  Lists of dicts decode much faster
    from one JSON text than from nested L{AmpList}s, and are not held to
    one AMP value's 64 KiB.
    """

    def toBox(self, name, strings, objects, proto):
        value = self.retrieve(objects, name.decode("ascii"), proto)
        if value is None:
            return
        data = json.dumps(value, separators=(",", ":")).encode("utf-8")
        strings[name] = data[:_AMP_VALUE_MAX]
        for n, start in enumerate(range(_AMP_VALUE_MAX, len(data), _AMP_VALUE_MAX), 1):
            strings[b"%s.%d" % (name, n)] = data[start:start + _AMP_VALUE_MAX]

    def fromBox(self, name, strings, objects, proto):
        first = self.retrieve(strings, name, proto)
        if first is None:
            objects[name.decode("ascii")] = None
            return
        parts = [first]
        n = 1
        while True:
            part = strings.pop(b"%s.%d" % (name, n), None)
            if part is None:
                break
            parts.append(part)
            n += 1
        objects[name.decode("ascii")] = json.loads(b"".join(parts))


def _withNones(entry, schema):
    """
    An entry decoded from JSON with the optional keys it lacks as L{None}
    (as AMP decodes them), its nested lists too.
    """
    for name, argument in schema:
        key = name.decode("ascii")
        value = entry.get(key)
        if value is None:
            entry[key] = None
        elif isinstance(argument, AmpList):
            for item in value:
                _withNones(item, argument.subargs)
    return entry

#: The largest offset a page may start at (more SAs than this would not
#: fit a daemon's memory anyway).
MAX_OFFSET = 2 ** 31


def showSAPages(pageSize=SHOW_SA_PAGE, key="sas", packed=False):
    """
    The paging of C{show sa}, for any client: a generator that yields the
    arguments of each L{ShowSA} request, is sent each response, and returns
    every SA once the daemon has listed them all.  With C{key="entries"} it
    pages L{ShowCertstore} the same way.

    The daemon answers the first page of C{show sa} with a C{cursor} (the
    listing it keeps for this walk) and where the C{next} page starts in
    it; each later request hands both back, so that a page costs the
    daemon only its own SAs and the pages together hold every SA that
    lived through the walk exactly once.  The walk ends when an answer
    has no C{next}.  An answer without a C{cursor} (the certificate store)
    pages by C{offset} and ends after C{total} entries or an empty page.

    With C{packed}, each request asks for the SAs as one L{PackedJSON}
    value (C{packed}) in pages of up to C{pageSize}; a daemon that does
    not know it answers with C{sas} (at most L{SHOW_SA_PAGE} of them) and
    the loop goes on all the same.

    A client drives it::

        pages = showSAPages()
        request = next(pages)
        while True:
            response = callRemote(ShowSA, **request)
            try:
                request = pages.send(response)
            except StopIteration as done:
                return done.value
    """
    sas = []
    extra = {"packed": True} if packed else {}
    response = yield dict({"offset": 0, "limit": pageSize}, **extra)
    while True:
        page = response[key]
        if response.get("packed") is not None:
            page = [_withNones(entry, _IKESA) for entry in response["packed"]]
        sas.extend(page)
        cursor = response.get("cursor")
        if cursor is not None:
            if response.get("next") is None:
                return sas
            response = yield dict({"cursor": cursor, "offset": response["next"], "limit": pageSize}, **extra)
            continue
        if not page or len(sas) >= response["total"]:
            return sas
        response = yield dict({"offset": len(sas), "limit": pageSize}, **extra)


class ShowSA(Command):
    """
    ikectl show sa: the IKE SAs with their Child SAs and flows, C{limit} of
    them at a time, and how many there are in all (C{total}).  Counters
    come from the datapath.

    The first request (no C{cursor}) starts a walk: the daemon notes which
    SAs there are and answers a C{cursor} for the walk and the C{offset}
    its C{next} page starts at; the following requests send both back.  SAs
    deleted meanwhile are left out, SAs added meanwhile wait for the next
    walk; the last page has no C{next}.  A request with an C{offset} but no
    C{cursor} lists from that position of the SA table as it is now.

    A request with C{packed} true is answered with its SAs in C{packed} (a
    L{PackedJSON} list of the same dicts, without the keys of optional
    values it does not have) and an empty C{sas}, up to
    L{SHOW_SA_PACKED_PAGE} of them a page instead of L{SHOW_SA_PAGE}: 100,000
    IKE SAs are 100 pages, not 2,000.
    """

    arguments = [(b"offset", Integer(optional=True)), (b"limit", Integer(optional=True)),
                 (b"cursor", Integer(optional=True)), (b"packed", Boolean(optional=True))]
    response = [(b"sas", AmpList(_IKESA)), (b"total", Integer()),
                (b"cursor", Integer(optional=True)), (b"next", Integer(optional=True)),
                (b"packed", PackedJSON(optional=True))]
    errors = _ERRORS


class ShowStats(Command):
    """
    ikectl show stats: iked's counters (C{ikes_sa_created}, ...), as
    C{(name, value)} pairs in iked's order, plus the daemon's modes.
    """

    arguments = []
    response = [
        (b"counters", AmpList([(b"name", Unicode()), (b"value", Integer())])),
        (b"passive", Boolean()),
        (b"coupled", Boolean()),
        (b"verbose", Boolean()),
    ]
    errors = _ERRORS


#: Certificate store entries per page of L{ShowCertstore}.
SHOW_CERTSTORE_PAGE = 40


class ShowCertstore(Command):
    """
    ikectl show certstore: the certificates, CRLs and keys the daemon
    loaded from its iked tree, C{limit} entries from C{offset} on, and how
    many there are.
    """

    arguments = [(b"offset", Integer(optional=True)), (b"limit", Integer(optional=True))]
    response = [
        (b"root", Unicode()),
        (b"total", Integer()),
        (b"entries", AmpList([
            (b"kind", Unicode()),
            (b"subject", Unicode()),
            (b"issuer", Unicode(optional=True)),
            (b"serial", Unicode(optional=True)),
            (b"notBefore", Unicode(optional=True)),
            (b"notAfter", Unicode(optional=True)),
            (b"altNames", ListOf(Unicode(), optional=True)),
        ])),
        (b"errors", ListOf(Unicode())),
    ]
    errors = _ERRORS


class Reload(Command):
    """
    ikectl reload: read the configuration file again.  Established SAs
    whose policy still exists are kept.
    """

    arguments = []
    response = [(b"policies", Integer(optional=True))]
    errors = _ERRORS


class Load(Command):
    """
    ikectl load FILE: read the configuration from C{file} (which becomes
    the file C{reload} reads); a broken file is L{ConfigRejected}.
    """

    arguments = [(b"file", Unicode())]
    response = [(b"policies", Integer())]
    errors = _ERRORS


#: What C{reset} flushes (ikectl(8)).
RESET_TARGETS = ("all", "ca", "policy", "sa", "user", "id")


class Reset(Command):
    """
    ikectl reset all|ca|policy|sa|user|id IKEID.  C{sa} and C{id} delete
    the IKE SAs with a Delete to each peer; C{count} is how many IKE SAs
    were deleted.
    """

    arguments = [(b"what", Unicode()), (b"ikeId", Unicode(optional=True))]
    response = [(b"count", Integer())]
    errors = _ERRORS


class SetMode(Command):
    """
    ikectl active, passive, couple, decouple: C{mode} is one of them.
    """

    arguments = [(b"mode", Unicode())]
    response = []
    errors = _ERRORS


MODES = ("active", "passive", "couple", "decouple")


class SetLog(Command):
    """
    ikectl log brief|verbose.
    """

    arguments = [(b"level", Unicode())]
    response = []
    errors = _ERRORS


class Monitor(Command):
    """
    ikectl monitor: from the answer on, the daemon sends this connection an
    L{Event} for each event, until the connection closes.
    """

    arguments = []
    response = []
    errors = _ERRORS


#: The kinds of L{Event}.
EVENT_KINDS = ("ike-up", "ike-down", "child-up", "child-down", "auth-failed", "retransmit-limit", "acquire",
               "expire", "reload", "mode", "ike-rekeyed", "child-rekeyed")


class Event(Command):
    """
    One monitor event, daemon to client (no answer asked): C{time} is the
    wall-clock time (seconds since the epoch); the other fields are there
    as far as the kind has them.
    """

    arguments = [
        (b"time", Float()),
        (b"kind", Unicode()),
        (b"spiI", Unicode(optional=True)),
        (b"spiR", Unicode(optional=True)),
        (b"spi", Unicode(optional=True)),
        # ike-rekeyed and child-rekeyed: the SPIs of the SA replaced.
        (b"oldSpiI", Unicode(optional=True)),
        (b"oldSpiR", Unicode(optional=True)),
        (b"oldSpi", Unicode(optional=True)),
        (b"policy", Unicode(optional=True)),
        (b"local", Unicode(optional=True)),
        (b"remote", Unicode(optional=True)),
        (b"peerId", Unicode(optional=True)),
        (b"reason", Unicode(optional=True)),
        (b"detail", Unicode(optional=True)),
    ]
    response = []
    requiresAnswer = False


class Initiate(Command):
    """
    Start the IKE SA of a policy now and wait until it is up (an ikedtx
    extension; iked initiates active policies on its own).
    """

    arguments = [(b"policy", Unicode())]
    response = [(b"spiI", Unicode()), (b"spiR", Unicode())]
    errors = _ERRORS


class CreateChildSA(Command):
    """
    Negotiate one more Child SA on the IKE SA whose initiator SPI is
    C{spiI} (hex) with CREATE_CHILD_SA (an ikedtx extension).
    """

    arguments = [(b"spiI", Unicode())]
    response = [(b"spiIn", Unicode()), (b"spiOut", Unicode())]
    errors = _ERRORS


class DeleteChildSA(Command):
    """
    Delete the Child SA whose inbound SPI is C{spiIn} (hex) with an
    INFORMATIONAL exchange (an ikedtx extension).
    """

    arguments = [(b"spiIn", Unicode())]
    response = []
    errors = _ERRORS


class DeleteIkeSA(Command):
    """
    Delete the IKE SA whose initiator SPI is C{spiI} (hex) and its Child SAs
    (an ikedtx extension).
    """

    arguments = [(b"spiI", Unicode())]
    response = []
    errors = _ERRORS


def parseSpi(text, size):
    """
    An SPI of C{size} bytes written in hex (with or without C{0x}).

    @raise BadArgument: it is not that.
    """
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not digits or len(digits) > 2 * size or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise BadArgument("not a %d-byte hex SPI: %r" % (size, text[:40]))
    return int(digits, 16)

# -*- test-case-name: tests.test_control -*-
"""
The control socket: AMP responders for L{ikedtx.control.commands}.

A connection is served only if its peer is root or the daemon's own user
(C{SO_PEERCRED}); a box larger than L{MAX_BOX_BYTES} (or with more than
L{MAX_BOX_KEYS} keys) closes the connection; arguments that do not parse
and any unexpected failure are answered with a typed AMP error, never
with AMP's C{Unknown Error}.
"""

import os
import socket
import struct
from itertools import islice

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from ikedtx.control import commands as C
from ikedtx.control.bounded import BoundedBoxes
from ikedtx.control.walks import UnknownWalk, Walks
from ikedtx.core.errors import LocalProtocolError, NegotiationFailed

#: The most bytes one incoming box may hold (keys and values): far more
#: than any ikectl request needs.
MAX_BOX_BYTES = 64 * 1024
#: The most keys one incoming box may hold.
MAX_BOX_KEYS = 64
#: How many events a monitor that does not read may miss before it is
#: disconnected (while its socket buffer is full, events are dropped).
MAX_MISSED_EVENTS = 1000


def _name(enum, value):
    from ikedtx.wire.constants import nameOf

    return nameOf(enum, value)


def describeTransform(enum, transform):
    if transform is None:
        return ""
    name = _name(enum, transform.id)
    if transform.keyLength:
        name += "-%d" % (transform.keyLength,)
    return name


def describeProposal(chosen):
    if chosen is None:
        return ""
    from ikedtx.wire.constants import TransformType, nameOf, EncrId, PrfId, IntegId, DhId, EsnId

    enums = {TransformType.ENCR: EncrId, TransformType.PRF: PrfId, TransformType.INTEG: IntegId,
             TransformType.DH: DhId, TransformType.ESN: EsnId}
    parts = []
    for t in sorted(chosen.transforms.values()):
        if TransformType.ADDKE1 <= t.type <= TransformType.ADDKE7:
            # RFC 9370 additional key exchanges: "ADDKE1=ML_KEM_768".
            if t.id != DhId.NONE:
                parts.append("%s=%s" % (nameOf(TransformType, t.type), nameOf(DhId, t.id)))
            continue
        name = nameOf(enums.get(t.type, TransformType), t.id)
        if t.keyLength:
            name += "-%d" % (t.keyLength,)
        parts.append(name)
    return " ".join(parts)


def _algorithms(chosen, ike):
    from ikedtx.wire.constants import DhId, EncrId, IntegId, PrfId

    if chosen is None:
        return {}
    out = {"encryption": describeTransform(EncrId, chosen.encryption),
           "integrity": describeTransform(IntegId, chosen.integrity)}
    if ike:
        out["prf"] = describeTransform(PrfId, chosen.prf)
        out["group"] = _name(DhId, chosen.dhGroup)
    else:
        out["esn"] = bool(chosen.esn)
    return out


def _remaining(lifetime, since, now):
    if not lifetime or since is None:
        return None
    return float(lifetime - (now - since))


def describeChild(ikesa, child, now, coupled=True):
    from ikedtx.wire.constants import DhId

    loaded = child.kernelRecords is not None and coupled
    flows = []
    if child.kernelRecords is not None:
        for flow in child.kernelRecords[1]:
            flows.append({"direction": flow.direction, "source": _selectorText(flow.source),
                          "destination": _selectorText(flow.destination), "protocol": flow.source.ipProtocol,
                          "loaded": loaded})
    lifetime = ikesa.policy.lifetime if ikesa.policy is not None else 0
    described = {
        "protocol": "esp" if child.protocol == 3 else "ah",
        "spiIn": "%08x" % child.spiIn,
        "spiOut": "%08x" % (child.spiOut or 0),
        "reqid": child.reqid,
        "mode": child.mode,
        "state": child.state.name,
        "local": [str(ts) for ts in child.localTS],
        "remote": [str(ts) for ts in child.remoteTS],
        "proposal": describeProposal(child.proposal),
        "pfsGroup": _name(DhId, child.pfsGroup) if child.pfsGroup else "",
        "udpencap": bool(ikesa.encapsulateEsp),
        "loaded": loaded,
        "age": float(now - child.created),
        "lifetime": int(lifetime or 0),
        "lifetimeBytes": int(ikesa.policy.lifetimeBytes or 0) if ikesa.policy is not None else 0,
        "flows": flows,
    }
    remaining = _remaining(lifetime, child.created, now)
    if remaining is not None:
        described["lifetimeRemaining"] = remaining
    described.update(_algorithms(child.proposal, ike=False))
    return described


def _selectorText(selector):
    start, end = selector.startAddress, selector.endAddress
    if start == end:
        return "%s/%d" % (start, start.max_prefixlen)
    from ipaddress import summarize_address_range

    nets = list(summarize_address_range(start, end))
    if len(nets) == 1:
        return str(nets[0])
    return "%s-%s" % (start, end)


def describeIkeSA(ikesa, now=None, coupled=True):
    now = ikesa.created if now is None else now
    lifetime = getattr(ikesa.policy, "ikeLifetime", 0) if ikesa.policy is not None else 0
    described = {
        "spiI": ikesa.spiI.hex(),
        "spiR": ikesa.spiR.hex(),
        "initiator": int(ikesa.initiator),
        "state": ikesa.state.name,
        "policy": ikesa.policy.name if ikesa.policy else "",
        "local": "%s:%d" % tuple(ikesa.local),
        "remote": "%s:%d" % tuple(ikesa.remote),
        "localId": str(ikesa.localId or ""),
        "peerId": str(ikesa.peerId or ""),
        # The addresses of configuration payloads: lent to the peer, or to us.
        "vips": ",".join(map(str, ikesa.peerVirtualIPs or ikesa.localVirtualIPs)),
        # The user the peer proved with EAP (RFC 7296 2.16), if it did.
        "eapId": getattr(ikesa, "eapIdentity", None) or "",
        "proposal": describeProposal(ikesa.proposal),
        "natt": int(ikesa.nattEnabled),
        "udpencap": int(ikesa.encapsulateEsp),
        "natLocal": bool(ikesa.natLocal),
        "natRemote": bool(ikesa.natRemote),
        "age": float(now - ikesa.created),
        "lifetime": int(lifetime or 0),
        "children": [describeChild(ikesa, child, now, coupled) for child in ikesa.children],
    }
    if ikesa.established is not None:
        described["established"] = float(now - ikesa.established)
        remaining = _remaining(lifetime, ikesa.established, now)
        if remaining is not None:
            described["lifetimeRemaining"] = remaining
    described.update(_algorithms(ikesa.proposal, ike=True))
    return described


def _withoutNones(entry):
    """
    C{entry} without its L{None} values (AMP leaves optional ones out; the
    clients put them back as L{None}); its Child SAs too, once the
    datapath's counters are in.
    """
    for key in [key for key, value in entry.items() if value is None]:
        del entry[key]
    for child in entry.get("children") or ():
        for key in [key for key, value in child.items() if value is None]:
            del child[key]
    return entry


def addCounters(kernel, ikesa, described):
    """
    Fill C{described}'s Child SAs with the datapath's byte and packet
    counters; a Deferred that fires when all have answered (an SA the
    datapath does not know keeps no counters).
    """
    ds = []
    for child, entry in zip(ikesa.children, described["children"]):
        if child.kernelRecords is None or not entry.get("loaded"):
            continue
        for sa in child.kernelRecords[0]:
            direction = "In" if sa.inbound else "Out"

            def counted(usage, entry=entry, direction=direction):
                entry["bytes" + direction] = int(usage.bytes)
                entry["packets" + direction] = int(usage.packets)

            d = defer.maybeDeferred(kernel.querySA, sa)
            d.addCallbacks(counted, lambda _: None)
            ds.append(d)
    return defer.gatherResults(ds).addCallback(lambda _: described)


def peerCredentials(transport):
    """
    C{(pid, uid, gid)} of the process at the other end of a UNIX socket
    connection, or L{None} when the transport is not one.
    """
    getHandle = getattr(transport, "getHandle", None)
    if getHandle is None:
        return None
    handle = getHandle()
    if not isinstance(handle, socket.socket) or handle.family != socket.AF_UNIX:
        return None
    raw = handle.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


class ControlProtocol(BoundedBoxes, amp.AMP):
    """
    One ikectl connection.

    @ivar service: the L{ikedtx.service.IkedService} (or what has its
        attributes) commands act on.
    @ivar monitoring: whether this connection receives monitor events.
    @ivar missedEvents: how many events in a row this monitor missed while
        its transport's buffer was full.
    @ivar peer: C{(pid, uid, gid)} of the client, or L{None}.
    @ivar readOnly: whether only the commands of L{READ_ONLY} are served.
    @ivar walks: the L{Walks} of paged C{show sa}, shared by the
        connections of one socket (its factory sets them).
    """

    _log = Logger()

    def __init__(self, service, allowedUids=None, requireCredentials=False, readOnly=False):
        amp.AMP.__init__(self)
        self.service = service
        self.walks = Walks()
        self.allowedUids = allowedUids
        self.requireCredentials = requireCredentials
        self.readOnly = readOnly
        self.monitoring = False
        self.peer = None

    @property
    def operations(self):
        from ikedtx.control.operations import Operations

        return Operations(self.service)

    # Who may talk to us

    def connectionMade(self):
        try:
            self.peer = peerCredentials(self.transport)
        except OSError as e:
            self._log.warn("control connection: no peer credentials: {error}", error=e)
            self.peer = None
        if self.allowedUids is not None:
            if self.peer is None and self.requireCredentials:
                self._log.warn("control connection refused: the peer's credentials are unknown")
                self.transport.abortConnection()
                return
            if self.peer is not None and self.peer[1] not in self.allowedUids:
                self._log.warn("control connection refused: pid {pid} uid {uid} is neither root nor the daemon's user",
                               pid=self.peer[0], uid=self.peer[1])
                self.transport.abortConnection()
                return
        amp.AMP.connectionMade(self)

    def connectionLost(self, reason):
        self._stopMonitoring()
        amp.AMP.connectionLost(self, reason)

    # Bounded boxes

    maxBoxBytes = MAX_BOX_BYTES
    maxBoxKeys = MAX_BOX_KEYS

    def boxTooBig(self):
        self._log.warn("control connection closed: a request box over {n} bytes or {k} keys", n=MAX_BOX_BYTES,
                       k=MAX_BOX_KEYS)

    # Typed errors for everything

    def unhandledError(self, failure):
        """
        An error no command could answer (AMP's last resort): one line, the
        traceback at debug level only, and the connection is closed (AMP's
        own would log a traceback).
        """
        self._log.warn("control connection closed: unhandled error: {kind}: {error}",
                       kind=type(failure.value).__name__, error=_brief(failure.value))
        self._log.debug("control connection: unhandled error:\n{traceback}", traceback=failure.getTraceback())
        if self.transport is not None:
            self.transport.loseConnection()

    def dispatchCommand(self, box):
        name = box.get(amp.COMMAND, b"")
        command = _COMMANDS.get(name)
        if self.readOnly and command is not None and command not in READ_ONLY:
            description = "%s: not on the read-only socket" % (name.decode("ascii", "replace"),)
            self._log.info("control: {description}", description=description)
            return defer.fail(amp.RemoteAmpError(C.ERRORS[C.NotPermitted], description))
        if command is not None:
            try:
                command.parseArguments(box, self)
            except Exception as e:
                description = "%s: bad argument%s: %s" % (name.decode("ascii", "replace"),
                                                          _whichArgument(command, box, self), _brief(e))
                self._log.info("control: {description}", description=description)
                return defer.fail(amp.RemoteAmpError(C.ERRORS[C.BadArgument], description))

        def typed(failure):
            if failure.check(amp.RemoteAmpError):
                return failure
            description = "%s failed: internal error: %s" % (name.decode("ascii", "replace"), _brief(failure.value))
            # One line for the operator; the traceback is for debugging.
            self._log.error("control command {description}", description=description)
            self._log.debug("control command {description}:\n{traceback}", description=description,
                            traceback=failure.getTraceback())
            return Failure(amp.RemoteAmpError(C.ERRORS[C.CommandFailed], description))

        return amp.AMP.dispatchCommand(self, box).addErrback(typed)

    # Commands

    @staticmethod
    def _page(offset, limit, pageSize):
        if offset < 0 or offset > C.MAX_OFFSET:
            raise C.BadArgument("offset %d is out of range (0 to %d)" % (offset, C.MAX_OFFSET))
        if limit < 1:
            raise C.BadArgument("limit %d is out of range (at least 1)" % (limit,))
        return min(limit, pageSize)

    @C.ShowSA.responder
    def showSA(self, offset=0, limit=C.SHOW_SA_PAGE, cursor=None, packed=None):
        limit = self._page(offset, limit, C.SHOW_SA_PACKED_PAGE if packed else C.SHOW_SA_PAGE)
        service = self.service
        core = service.core
        table = core.ikeSAs
        answer = {"total": len(table)}
        if cursor is None and offset:
            # By position in the table as it is now (no walk).
            page = list(islice(table.values(), offset, offset + limit))
        else:
            if cursor is None:
                cursor = self.walks.start(table)
            try:
                page, following = self.walks.page(cursor, table, offset, limit)
            except UnknownWalk:
                raise C.BadArgument("cursor %d is not a walk in progress (it ended or was dropped):"
                                    " list again" % (cursor,))
            answer["cursor"] = cursor
            if following is not None:
                answer["next"] = following
        now = core.now() if hasattr(core, "now") else 0.0
        runner = service.runner
        coupled = runner is None or runner.coupled
        described = [describeIkeSA(sa, now, coupled) for sa in page]
        if packed:
            answer["sas"] = []
            answer["packed"] = [_withoutNones(entry) for entry in described]
        else:
            answer["sas"] = described
        kernel = service.kernel
        if kernel is None:
            return answer
        ds = [addCounters(kernel, sa, entry) for sa, entry in zip(page, described)]
        return defer.gatherResults(ds).addCallback(lambda _: answer)

    @C.ShowStats.responder
    def showStats(self):
        return self.operations.stats()

    @C.ShowCertstore.responder
    def showCertstore(self, offset=0, limit=C.SHOW_CERTSTORE_PAGE):
        limit = self._page(offset, limit, C.SHOW_CERTSTORE_PAGE)
        store = self.operations.certstore()
        entries = store["entries"]
        return dict(store, entries=entries[offset:offset + limit], total=len(entries))

    @C.Reload.responder
    def reload(self):
        return self.operations.load(None)

    @C.Load.responder
    def load(self, file):
        if not file or "\0" in file or len(file) > 4096:
            raise C.BadArgument("not a file name: %r" % (file[:80],))
        return self.operations.load(file)

    @C.Reset.responder
    def reset(self, what, ikeId=None):
        return self.operations.reset(what, ikeId)

    @C.SetMode.responder
    def setMode(self, mode):
        return self.operations.setMode(mode)

    @C.SetLog.responder
    def setLog(self, level):
        return self.operations.setLog(level)

    @C.Monitor.responder
    def monitor(self):
        events = self.service.events
        if not self.monitoring:
            self.monitoring = True
            self.missedEvents = 0
            self._paused = False
            # The transport says when its buffer is full: a monitor that
            # stops reading must not grow the daemon's memory.
            self.transport.registerProducer(self, True)
            events.subscribe(self._sendEvent)
            self._log.info("control: a monitor subscribed{who}",
                           who=" (pid %d uid %d)" % self.peer[:2] if self.peer else "")
        return {}

    def _sendEvent(self, event):
        if self.transport is None or getattr(self.transport, "disconnecting", False):
            self._stopMonitoring()
            return
        if self._paused:
            self.missedEvents += 1
            if self.missedEvents > MAX_MISSED_EVENTS:
                self._log.warn("control: a monitor that does not read missed {n} events: disconnected",
                               n=self.missedEvents)
                self._stopMonitoring()
                self.transport.abortConnection()
            return
        fields = {k: v for k, v in event.items() if k in _EVENT_FIELDS}
        self.callRemote(C.Event, **fields)

    # IPushProducer, for the monitor's transport

    _paused = False
    missedEvents = 0

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self.missedEvents = 0

    def stopProducing(self):
        self._stopMonitoring()

    def _stopMonitoring(self):
        if self.monitoring:
            self.monitoring = False
            self.service.events.unsubscribe(self._sendEvent)

    @C.Initiate.responder
    def initiate(self, policy):
        d = self.service.initiate(policy)

        def done(ikesa):
            return {"spiI": ikesa.spiI.hex(), "spiR": ikesa.spiR.hex()}

        def failed(reason):
            reason.trap(NegotiationFailed)
            raise C.CommandFailed(reason.getErrorMessage())

        return d.addCallbacks(done, failed)

    def _ikesa(self, spiI):
        spi = C.parseSpi(spiI, 8)
        for ikesa in self.service.core.ikeSAs.values():
            if int.from_bytes(ikesa.spiI, "big") == spi:
                return ikesa
        raise C.NoSuchSA("no IKE SA with initiator SPI %s" % (spiI,))

    def _failed(self, reason):
        reason.trap(NegotiationFailed, LocalProtocolError)
        raise C.CommandFailed(reason.getErrorMessage())

    @C.CreateChildSA.responder
    def createChildSA(self, spiI):
        ikesa = self._ikesa(spiI)
        d = self.service.runner.command(self.service.core.createChildSA, ikesa)
        return d.addCallbacks(lambda child: {"spiIn": "%08x" % child.spiIn, "spiOut": "%08x" % child.spiOut},
                              self._failed)

    @C.DeleteChildSA.responder
    def deleteChildSA(self, spiIn):
        ikesa, child = self.service.core.findChild(C.parseSpi(spiIn, 4))
        if child is None:
            raise C.NoSuchSA("no Child SA with inbound SPI %s" % (spiIn,))
        d = self.service.runner.command(self.service.core.deleteChildSA, ikesa, child)
        return d.addCallbacks(lambda _: {}, self._failed)

    @C.DeleteIkeSA.responder
    def deleteIkeSA(self, spiI):
        d = self.service.runner.command(self.service.core.deleteIKESA, self._ikesa(spiI))
        return d.addCallbacks(lambda _: {}, self._failed)


#: What the read-only socket serves.
READ_ONLY = frozenset([C.ShowSA, C.ShowStats, C.ShowCertstore, C.Monitor])

_COMMANDS = {command.commandName: command for command in vars(C).values()
             if isinstance(command, type) and issubclass(command, amp.Command) and command is not amp.Command}
_EVENT_FIELDS = {name.decode() for name, _ in C.Event.arguments}


def _whichArgument(command, box, protocol):
    """
    " NAME" of the first argument of C{box} that does not parse, or "s".
    """
    for name, argument in command.arguments:
        if name in box:
            try:
                argument.fromBox(name, dict(box), {}, protocol)
            except Exception:
                return " " + name.decode("ascii", "replace")
    return "s"


def _brief(error):
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


class ControlFactory(Factory):
    """
    Makes a L{ControlProtocol} per connection.

    @ivar allowedUids: the user ids that may connect (root and the daemon's
        user on the real socket), or L{None} for anyone (in-memory tests).
    @ivar requireCredentials: whether a connection whose peer credentials
        cannot be read is refused.
    @ivar readOnly: whether its connections serve only L{READ_ONLY}.
    @ivar walks: the L{Walks} of C{show sa} its connections share (a
        blocking client opens a connection per page).
    """

    def __init__(self, service, allowedUids=None, requireCredentials=False, readOnly=False):
        self.service = service
        self.walks = Walks()
        self.allowedUids = allowedUids
        self.requireCredentials = requireCredentials
        self.readOnly = readOnly

    @classmethod
    def forSocket(cls, service):
        """
        The factory of the daemon's UNIX socket: root and our own user only.
        """
        return cls(service, allowedUids={0, os.geteuid()}, requireCredentials=True)

    @classmethod
    def forReadOnlySocket(cls, service):
        """
        The factory of the read-only socket: any user, show commands and
        monitor only.
        """
        return cls(service, readOnly=True)

    def buildProtocol(self, addr):
        protocol = ControlProtocol(self.service, self.allowedUids, self.requireCredentials, self.readOnly)
        protocol.walks = self.walks
        return protocol


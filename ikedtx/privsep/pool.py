# -*- test-case-name: tests.test_privsep_pool -*-
"""
Several IKE workers under one privileged parent (C{--ike-workers N}).

The parent binds N sockets on every IKE and NAT-T address, one per worker,
in one C{SO_REUSEPORT} group whose kernel program gives each datagram to
the worker that owns its IKE SA (L{ikedtx.privsep.steering}: each worker
allocates its IKE SPIs from its own residue class; an IKE_SA_INIT goes by
the peer's initiator SPI). On the NAT-T port of the user-space datapath the
parent's ESP socket is the group's last. Each worker is the single worker
of L{ikedtx.privsep.parent} with its own sockets, AMP and signing channels.

What differs from one worker:

- The parent serves the control sockets itself (L{FanOutControl}, the same
  credential checks and read-only set as the worker's) and asks every ready
  worker through a control connection of its own to each: C{show sa}
  lists every worker's SAs (one walk per worker, merged, paged by the
  parent), C{show stats} adds up the counters; reset, reload, load,
  couple/decouple, active/passive and log levels go to all; initiate to
  the first worker; a command naming an SA to the worker that has it;
  monitor relays every worker's events.
- Only the first worker initiates the active policies and installs the
  trap flows (the datapath's acquires go to it), so that a policy is not
  negotiated N times.
- The datapath remembers what each worker installed (L{SlotKernel}): a
  worker's C{flush} and its death remove its own SAs and flows only, and a
  datapath expire goes to the worker that installed the SA.

- INITIAL_CONTACT (RFC 7296 2.4) reaches the worker the new IKE SA's
  IKE_SA_INIT went to (by the peer's random SPI); that worker deletes the
  peer's old IKE SAs it holds and tells the parent (C{InitialContact}),
  which has the others forget theirs (C{ForgetPeer}). (So a worker taken
  over by an attacker can have the others drop the IKE SAs of an identity:
  a power one worker did not have over another's SAs before.)

The daemon-wide budgets are shared out (L{workerOptions}): each worker gets
1/N of C{--half-open-max}, C{--cookie-threshold} and
C{--response-cache-max}. Limits per worker, not per daemon:
C{--half-open-per-peer} and C{--ike-sas-per-id} (N workers may hold up to N
times as many of one address or identity). Each C{config address} pool is
split: worker k of N lends the addresses at offsets k, k+N, ... of it
(L{ikedtx.core.pools.AddressPools.setShare}), so no two workers lend the
same address; an identity finds its last address again only on the worker
that lent it.
"""

import os
import socket
import sys

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.protocols import amp

from ikedtx.control import commands as C
from ikedtx.control.events import EventHub
from ikedtx.control.server import _COMMANDS, ControlFactory, ControlProtocol, _withoutNones
from ikedtx.privsep import commands as P
from ikedtx.privsep import steering
from ikedtx.privsep.addresses import AddressGuard, datapathInterface
from ikedtx.privsep.parent import (PrivsepService, Supervisor, WorkerCommands, WorkerProcess, bindEspSocket,
                                   bindPortSocket, describeEnd, workerUser)
from ikedtx.privsep.signer import SigningServer, socketpair


#: The daemon-wide budgets each of N workers gets a share of (the defaults
#: are ikedtx.tap's, as ikedtx.service._settings reads them).
SHARED_BUDGETS = {"cookie-threshold": 64, "half-open-max": 4096, "response-cache-max": 256 << 20}


def workerOptions(options, count):
    """
    C{options} for one of C{count} workers: the half-open maximum, the
    cookie threshold and the response cache budget divided among them
    (rounded up), so that the daemon as a whole keeps the limits it was
    given; the per-peer and per-identity limits stay per worker.
    """
    options = dict(options)
    for name, default in SHARED_BUDGETS.items():
        value = options.get(name)
        value = default if value is None else int(value)
        options[name] = -(-value // count)
    return options


def _saKey(sa):
    return (sa.spi, sa.protocol, str(sa.destination))


class SlotKernel:
    """
    The parent's datapath as one worker of several uses it: what the worker
    installs is remembered, so that its L{flush} (and its death) remove its
    own SAs and flows and nothing of the other workers'.

    @ivar sas: C{{(spi, protocol, destination): sa}}, the worker's SAs.
    @ivar spis: C{{spi: count}}, the SPIs of L{sas}: L{owns}, which routes
        each datapath expire, looks one up instead of walking every SA of
        the worker (at 100,000 SAs and hourly rekeys, some 50 expires a
        second, each a walk of 10 ms).
    """

    _log = Logger()

    def __init__(self, kernel):
        self.kernel = kernel
        self.sas = {}
        self.spis = {}
        self.flows = set()

    def __getattr__(self, name):
        return getattr(self.kernel, name)

    def owns(self, spi):
        return spi in self.spis

    def _remember(self, sa):
        key = _saKey(sa)
        if key not in self.sas:
            self.spis[sa.spi] = self.spis.get(sa.spi, 0) + 1
        self.sas[key] = sa

    def _forget(self, sa):
        if self.sas.pop(_saKey(sa), None) is not None:
            left = self.spis[sa.spi] - 1
            if left:
                self.spis[sa.spi] = left
            else:
                del self.spis[sa.spi]

    def addSA(self, sa):
        self._remember(sa)
        return self.kernel.addSA(sa)

    def updateSA(self, old, new):
        self._forget(old)
        self._remember(new)
        return self.kernel.updateSA(old, new)

    def deleteSA(self, sa):
        self._forget(sa)
        return self.kernel.deleteSA(sa)

    def detachSA(self, sa):
        self._forget(sa)
        return self.kernel.detachSA(sa)

    def addFlow(self, flow):
        self.flows.add(flow)
        return self.kernel.addFlow(flow)

    def deleteFlow(self, flow):
        self.flows.discard(flow)
        return self.kernel.deleteFlow(flow)

    def flush(self):
        flows, sas = list(self.flows), list(self.sas.values())
        self.flows, self.sas, self.spis = set(), {}, {}

        def gone(f, what):
            self._log.debug("flushing a worker's {what}: {error}", what=what, error=f.value)

        ds = [defer.maybeDeferred(self.kernel.deleteFlow, flow).addErrback(gone, "flow") for flow in flows]
        ds += [defer.maybeDeferred(self.kernel.deleteSA, sa).addErrback(gone, "SA") for sa in sas]
        return defer.gatherResults(ds).addCallback(lambda _: None)


class WorkerSlot:
    """
    One worker of the pool, and what L{WorkerCommands} and L{WorkerProcess}
    ask of their service: its datapath view, its virtual addresses, its
    process.

    @ivar control: the parent's control connection to the worker
        (L{WorkerControlClient}), or L{None}.
    @ivar sockets: C{[(socket, address, port, natt)]}: its IKE sockets.
    """

    def __init__(self, pool, index):
        self.pool = pool
        self.index = index
        self.kernel = SlotKernel(pool.kernel)
        self.addresses = AddressGuard(pool.kernel, pool.config)
        self.installed = set()
        self.sockets = []
        self.worker = None
        self.workerPid = None
        self.amp = None
        self.control = None
        self.ready = False
        self.monitoring = False
        self.started = None
        self.pending = None
        self.supervisor = Supervisor()

    @property
    def pendingStates(self):
        return self.pool.pendingStates

    def workerReady(self, pid):
        self.pool.slotReady(self, pid)

    def workerEnded(self, process, error):
        self.pool.slotEnded(self, process, error)

    def prepareReload(self, path):
        return self.pool.prepareReload(path)

    def initialContact(self, peerId, localId):
        self.pool.initialContact(self, peerId, localId)

    def _notify(self, state):
        self.pool._notify(state)


class PoolEvents(EventHub):
    """
    The parent's monitor events: what every worker sends; the workers are
    asked for them once the first monitor subscribes.
    """

    def __init__(self, pool):
        EventHub.__init__(self)
        self.pool = pool

    def subscribe(self, subscriber):
        EventHub.subscribe(self, subscriber)
        self.pool.monitorWorkers()

    def relay(self, event):
        for subscriber in list(self.subscribers):
            try:
                subscriber(event)
            except Exception:
                self._log.failure("monitor subscriber {s!r}", s=subscriber)
                self.unsubscribe(subscriber)


class WorkerControlClient(amp.AMP):
    """
    The parent's control connection to one worker: it asks the commands
    L{FanOutControl} fans out, and passes the worker's monitor events on.
    """

    def __init__(self, slot):
        amp.AMP.__init__(self)
        self.slot = slot

    @C.Event.responder
    def event(self, **fields):
        self.slot.pool.events.relay({k: v for k, v in fields.items() if v is not None})
        return {}

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if self.slot.control is self:
            self.slot.control = None


def _unwrap(failure):
    failure.trap(defer.FirstError)
    return failure.value.subFailure


def _walk(control):
    """
    Every SA of one worker: a whole C{show sa} walk (L{C.showSAPages}).
    """
    pages = C.showSAPages(C.SHOW_SA_PACKED_PAGE, packed=True)

    def step(response):
        try:
            request = pages.send(response)
        except StopIteration as done:
            return done.value
        return control.callRemote(C.ShowSA, **request).addCallback(step)

    return control.callRemote(C.ShowSA, **next(pages)).addCallback(step)


def _packedIf(packed, answer):
    """
    A C{show sa} page asked for C{packed}: its SAs in C{packed} (one JSON
    value, as a worker answers it), C{sas} empty.
    """
    if packed:
        answer["packed"], answer["sas"] = [_withoutNones(entry) for entry in answer["sas"]], []
    return answer


class FanOutControl(ControlProtocol):
    """
    A control connection the parent of several workers serves: the checks
    of L{ControlProtocol} (credentials, read-only set, bounded boxes, typed
    errors), and each command asked of the workers and their answers
    merged (the C{fan_} methods).
    """

    _log = Logger()

    def locateResponder(self, name):
        command = _COMMANDS.get(name)
        handler = getattr(self, "fan_" + command.__name__, None) if command is not None else None
        if handler is None:
            return None
        return self._wrapWithSerialization(handler, command)

    @property
    def pool(self):
        return self.service

    def _controls(self):
        controls = [slot.control for slot in self.pool.slots if slot.ready and slot.control is not None]
        if not controls:
            raise C.CommandFailed("no worker serves commands yet (starting or restarting); try again in a moment")
        return controls

    def _all(self, command, **arguments):
        ds = [control.callRemote(command, **arguments) for control in self._controls()]
        return defer.gatherResults(ds, consumeErrors=True).addErrback(_unwrap)

    def _owner(self, command, **arguments):
        """
        Ask the workers in turn until one has the SA (the others answer
        L{C.NoSuchSA}).
        """
        controls = self._controls()

        def ask(i, failure=None):
            if i >= len(controls):
                return failure
            d = controls[i].callRemote(command, **arguments)

            def next_(f):
                f.trap(C.NoSuchSA)
                return ask(i + 1, f)

            return d.addErrback(next_)

        return ask(0)

    def fan_ShowSA(self, offset=0, limit=C.SHOW_SA_PAGE, cursor=None, packed=None):
        # (AMP gives an optional argument left out as None.)
        offset = offset or 0
        pageSize = C.SHOW_SA_PACKED_PAGE if packed else C.SHOW_SA_PAGE
        limit = self._page(offset, pageSize if limit is None else limit, pageSize)
        if cursor is not None:
            return self._pageOf(cursor, offset, limit, packed)
        ds = [_walk(control) for control in self._controls()]
        d = defer.gatherResults(ds, consumeErrors=True).addErrback(_unwrap)

        def merged(lists):
            sas = [sa for sas in lists for sa in sas]
            if offset:
                return _packedIf(packed, {"sas": sas[offset:offset + limit], "total": len(sas)})
            return self._pageOf(self.pool.startWalk(sas), 0, limit, packed)

        return d.addCallback(merged)

    def _pageOf(self, cursor, offset, limit, packed=None):
        sas = self.pool.walks.get(cursor)
        if sas is None:
            raise C.BadArgument("cursor %d is not a walk in progress (it ended or was dropped): list again" % (cursor,))
        answer = {"sas": sas[offset:offset + limit], "total": len(sas), "cursor": cursor}
        if offset + limit < len(sas):
            answer["next"] = offset + limit
        else:
            self.pool.walks.pop(cursor, None)
        return _packedIf(packed, answer)

    def fan_ShowStats(self):
        def merged(answers):
            totals, names = {}, []
            for answer in answers:
                for counter in answer["counters"]:
                    if counter["name"] not in totals:
                        names.append(counter["name"])
                    totals[counter["name"]] = totals.get(counter["name"], 0) + counter["value"]
            first = answers[0]
            return {"counters": [{"name": name, "value": totals[name]} for name in names],
                    "passive": first["passive"], "coupled": first["coupled"], "verbose": first["verbose"]}

        return self._all(C.ShowStats).addCallback(merged)

    def fan_ShowCertstore(self, offset=0, limit=C.SHOW_CERTSTORE_PAGE):
        arguments = {k: v for k, v in (("offset", offset), ("limit", limit)) if v is not None}
        return self._controls()[0].callRemote(C.ShowCertstore, **arguments)

    def fan_Reload(self):
        return self._all(C.Reload).addCallback(lambda answers: answers[0])

    def fan_Load(self, file):
        return self._all(C.Load, file=file).addCallback(lambda answers: answers[0])

    def fan_Reset(self, what, ikeId=None):
        arguments = {"what": what} if ikeId is None else {"what": what, "ikeId": ikeId}
        return self._all(C.Reset, **arguments).addCallback(
            lambda answers: {"count": sum(answer.get("count") or 0 for answer in answers)})

    def fan_SetMode(self, mode):
        return self._all(C.SetMode, mode=mode).addCallback(lambda _: {})

    def fan_SetLog(self, level):
        return self._all(C.SetLog, level=level).addCallback(lambda _: {})

    def fan_Monitor(self):
        return ControlProtocol.monitor(self)

    def fan_Initiate(self, policy):
        # The first worker initiates (the active policies are its); while
        # it is not ready another does as well: the answers come back to
        # whichever by its SPIs.
        controls = self._controls()
        first = self.pool.slots[0]
        control = first.control if first.ready and first.control is not None else controls[0]
        return control.callRemote(C.Initiate, policy=policy)

    def fan_CreateChildSA(self, spiI):
        return self._owner(C.CreateChildSA, spiI=spiI)

    def fan_DeleteChildSA(self, spiIn):
        return self._owner(C.DeleteChildSA, spiIn=spiIn)

    def fan_DeleteIkeSA(self, spiI):
        return self._owner(C.DeleteIkeSA, spiI=spiI)


class FanOutFactory(ControlFactory):
    def buildProtocol(self, addr):
        return FanOutControl(self.service, self.allowedUids, self.requireCredentials, self.readOnly)


#: The most C{show sa} walks the parent keeps at once.
MAX_WALKS = 16


class WorkerPoolService(PrivsepService):
    """
    The privileged parent of C{count} workers (L{ikedtx.privsep.pool}).

    @ivar slots: the L{WorkerSlot}s, in the order of their sockets in each
        reuseport group.
    @ivar walks: C{{cursor: [SA]}}: the merged C{show sa} walks.
    """

    _log = Logger()

    def __init__(self, config, options, reactor=None, credentials=None):
        PrivsepService.__init__(self, config, options, reactor, credentials)
        self.count = int(options.get("ike-workers") or 2)
        if not 2 <= self.count <= steering.MAX_WORKERS:
            raise ValueError("from 2 to %d workers" % (steering.MAX_WORKERS,))
        self.slots = []
        self.events = PoolEvents(self)
        self.walks = {}
        self._nextWalk = 1
        self._listening = []

    def startWalk(self, sas):
        cursor, self._nextWalk = self._nextWalk, self._nextWalk + 1
        self.walks[cursor] = sas
        while len(self.walks) > MAX_WALKS:
            del self.walks[next(iter(self.walks))]
        return cursor

    def startService(self):
        from ikedtx.service import IKEPortService, StartupError

        if self.config.radius.daeListen:
            # A Disconnect-Request names a session any worker may hold, and
            # the workers cannot share one DAE socket yet.
            self._startFailed(StartupError("radius dae listen needs --ike-workers 1 (it has %d)" % (self.count,)))
        kernelName = self._openDatapath("%d IKE workers" % (self.count,))
        self.slots = [WorkerSlot(self, i) for i in range(self.count)]
        for service in self.template:
            if isinstance(service, IKEPortService):
                espIndex = self.count if service.natt and kernelName == "userspace" else 0
                program = steering.steeringProgram(self.count, service.natt, espIndex)
                try:
                    for slot in self.slots:
                        if slot.index == 0:
                            join = lambda skt: steering.attachProgram(skt, program)  # noqa: E731
                        else:
                            join = lambda skt: skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # noqa: E731
                        skt = bindPortSocket(service.address, service.portNumber, service.natt, kernelName, join)
                        entry = (skt, service.address, service.portNumber, service.natt)
                        slot.sockets.append(entry)
                        self._sockets.append(entry)
                    if espIndex:
                        self._listenEsp(bindEspSocket(service.address, service.portNumber), service.address)
                except OSError as e:
                    self._closeSockets()
                    self._startFailed(StartupError("cannot bind %s:%d: %s" % (
                        service.address, service.portNumber, e.strerror or e)))
            else:
                self._bindService(service)
        self._connectDatapath(kernelName)
        self._serveControl()
        from twisted.application.service import MultiService

        MultiService.startService(self)
        for slot in self.slots:
            self._spawn(slot)

    def _serveControl(self):
        from ikedtx.privsep.workerservice import _AdoptedUnixPort

        for skt, path, readOnly in self._control:
            factory = FanOutFactory.forReadOnlySocket(self) if readOnly else FanOutFactory.forSocket(self)
            port = _AdoptedUnixPort._fromListeningDescriptor(self.reactor, skt.fileno(), factory)
            port.startListening()
            self._listening.append(port)

    def _closeSockets(self):
        listening, self._listening = self._listening, []
        for port in listening:
            # The path is unlinked below, with the parent's socket.
            port.port = b"\0"
            port.stopListening()
        PrivsepService._closeSockets(self)

    def _keepState(self, token, stateBytes):
        # Every worker fetches one at a reload: keep the last of each.
        self.pendingStates[token] = stateBytes
        while len(self.pendingStates) > self.count:
            del self.pendingStates[next(iter(self.pendingStates))]

    # The datapath's events

    def acquire(self, reqid, source, destination):
        # The first worker installed the traps.
        slot = self.slots[0] if self.slots else None
        if slot is not None and slot.worker is not None and slot.amp is not None:
            slot.amp.acquire(reqid, source, destination)

    def expired(self, protocol, spi, destination, hard):
        for slot in self.slots:
            if slot.kernel.owns(spi) and slot.amp is not None:
                slot.amp.expired(protocol, spi, destination, hard)
                return

    # The workers

    def _spawn(self, slot):
        import pickle

        slot.amp = WorkerCommands(slot)
        ampParent, ampChild = socketpair()
        signParent, signChild = socketpair()
        controlParent, controlChild = socketpair()
        stateBytes, options = self._state()
        options = workerOptions(options, self.count)
        options["kernel"] = self.kernel.name
        uid, gid, home = workerUser(self.user)
        chroot = self.options.get("privsep-chroot") or home
        childFDs = {0: "w", 1: "r", 2: "r", 3: ampChild.fileno(), 4: signChild.fileno()}
        ports = []
        fd = 5
        for skt, address, port, natt in slot.sockets:
            childFDs[fd] = skt.fileno()
            ports.append([fd, address, port, natt, skt.family])
            fd += 1
        childFDs[fd] = controlChild.fileno()
        controlChannel = fd
        fd += 1
        metrics = None
        if self._metrics is not None and slot.index == 0:
            childFDs[fd] = self._metrics.fileno()
            metrics = [fd, self._metrics.family]
            fd += 1
        layout = {"ports": ports, "control": [], "controlChannel": controlChannel, "worker": [slot.index, self.count],
                  "uid": uid, "gid": gid, "chroot": chroot, "kernel": self.kernel.name, "metrics": metrics,
                  "addressInterface": datapathInterface(self.kernel),
                  "spiBlocks": bool(getattr(self.kernel, "spiBlocks", False))}
        payload = pickle.dumps((layout, stateBytes, options), protocol=pickle.HIGHEST_PROTOCOL)
        process = WorkerProcess(slot, payload)
        slot.worker = process
        slot.started = self.reactor.seconds()
        self.reactor.spawnProcess(process, sys.executable, [sys.executable, "-m", "ikedtx.privsep.worker"],
                                  env=dict(os.environ), childFDs=childFDs)
        ampChild.close()
        signChild.close()
        controlChild.close()
        commands = slot.amp
        self.reactor.adoptStreamConnection(ampParent.detach(), socket.AF_UNIX,
                                           protocol.Factory.forProtocol(lambda: commands))
        signing = protocol.Factory.forProtocol(lambda: SigningServer(lambda: self.credentials.privateKey))
        self.reactor.adoptStreamConnection(signParent.detach(), socket.AF_UNIX, signing)
        control = WorkerControlClient(slot)
        slot.control = control
        self.reactor.adoptStreamConnection(controlParent.detach(), socket.AF_UNIX,
                                           protocol.Factory.forProtocol(lambda: control))
        self._log.info("worker started: pid {pid} ({i} of {n})", pid=process.pid, i=slot.index + 1, n=self.count)

    def slotReady(self, slot, pid):
        slot.workerPid = pid
        slot.ready = True
        self._log.info("worker {pid} serves peers as uid {uid} ({i} of {n})", pid=pid, uid=workerUser(self.user)[0],
                       i=slot.index + 1, n=self.count)
        if self.events.subscribers:
            self._monitor(slot)
        if all(s.ready for s in self.slots):
            self._notify("READY=1")

    def initialContact(self, origin, peerId, localId):
        """
        Worker C{origin} received INITIAL_CONTACT from C{peerId} to
        C{localId}: the others forget their IKE SAs between the two.
        """
        self._log.info("INITIAL_CONTACT from {peer} reached worker {i} of {n}: the others forget its old IKE SAs",
                       peer=peerId, i=origin.index + 1, n=self.count)
        for slot in self.slots:
            if slot is not origin and slot.amp is not None and slot.worker is not None:
                slot.amp.callRemote(P.ForgetPeer, peerId=peerId, localId=localId)

    def monitorWorkers(self):
        for slot in self.slots:
            self._monitor(slot)

    def _monitor(self, slot):
        if slot.ready and slot.control is not None and not slot.monitoring:
            slot.monitoring = True
            slot.control.callRemote(C.Monitor).addErrback(lambda f: None)

    def slotEnded(self, slot, process, error):
        if process is not slot.worker:
            return
        lifetime = self.reactor.seconds() - (slot.started or 0)
        slot.worker = None
        slot.workerPid = None
        slot.ready = False
        slot.monitoring = False
        for channel in (slot.amp, slot.control):
            if channel is not None and channel.transport is not None:
                channel.transport.loseConnection()
        slot.amp, slot.control = None, None
        if not self.running:
            self._log.info("worker {pid} ended: {how}", pid=process.pid, how=describeEnd(error))
            return
        sas = len(slot.kernel.sas)
        slot.addresses.flush()
        delay = slot.supervisor.nextDelay(lifetime)
        self._log.error("worker {pid} ({i} of {n}) died ({how}); removing the {sas} SAs it installed and starting "
                        "another in {delay:.1f} s", pid=process.pid, i=slot.index + 1, n=self.count,
                        how=describeEnd(error), sas=sas, delay=delay)
        d = slot.kernel.flush()
        d.addErrback(lambda f: self._log.error("flushing after the worker died: {error}", error=f.value))

        def restart(_):
            if self.running and slot.worker is None:
                self.restarts += 1
                slot.pending = self.reactor.callLater(delay, self._restart, slot)

        d.addCallback(restart)

    def _restart(self, slot=None):
        slot.pending = None
        if self.running and slot.worker is None:
            self._spawn(slot)

    def prepareReload(self, path):
        d = PrivsepService.prepareReload(self, path)

        def configured(answer):
            for slot in self.slots:
                slot.addresses.config = self.config
            return answer

        return d.addCallback(configured)

    def reloadOnSignal(self):
        for slot in self.slots:
            if slot.worker is not None:
                self._passReload(slot.worker.pid)

    def stopService(self):
        from twisted.application.service import MultiService

        MultiService.stopService(self)
        self._notify("STOPPING=1")
        ds = []
        for slot in self.slots:
            if slot.pending is not None and slot.pending.active():
                slot.pending.cancel()
            worker = slot.worker
            if worker is None:
                continue
            done = defer.Deferred()

            def ended(process, error, slot=slot, done=done):
                self.slotEnded(slot, process, error)
                if not done.called:
                    done.callback(None)

            slot.workerEnded = ended
            try:
                worker.transport.signalProcess("TERM")
            except Exception:
                done.callback(None)
            timeout = self.reactor.callLater(10, lambda w=worker, d=done: d.called or w.transport.signalProcess("KILL"))
            done.addBoth(lambda r, t=timeout: t.active() and t.cancel())
            ds.append(done)

        def flush(_):
            self._closeSockets()
            for slot in self.slots:
                slot.addresses.flush()
            if self.kernel is not None and self.kernel.name != "decoupled":
                return self.kernel.flush()

        return defer.gatherResults(ds, consumeErrors=True).addCallback(flush)

# -*- test-case-name: tests.test_privsep_daemon -*-
"""
The privileged parent of a privilege-separated daemon.

It keeps what needs root: the configuration file and the iked tree (private
key included), the bound IKE and NAT-T sockets (with the XFRM bypass and
ESP-in-UDP options set), the control sockets (bound and listening), the
C{--metrics} socket, the datapath provider (the user-space one with its TUN
device and its end of the NAT-T ports) and the virtual addresses on the
interfaces (L{ikedtx.privsep.addresses}). It spawns the worker (C{python -m
ikedtx.privsep.worker}) with the sockets, the AMP socketpair and the
signing socketpair among its file descriptors and the state
(L{ikedtx.privsep.state}) on its standard input; the worker drops its
privileges and runs the core, the shell and the control protocol.

When the worker dies the parent logs how, flushes what it had put in the
datapath and starts another, after a delay that doubles while the workers
die young (L{Supervisor}).
"""

import ctypes
import os
import pwd
import signal
import socket
import struct
import sys

from twisted.application.service import MultiService
from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.protocols import amp

from ikedtx.config.hosts import resolvePolicyNames
from ikedtx.control.bounded import BoundedBoxes
from ikedtx.kernel.interfaces import KernelError
from ikedtx.privsep import commands as C
from ikedtx.privsep import records as R
from ikedtx.privsep.addresses import AddressGuard, datapathInterface
from ikedtx.privsep.gate import ControlGate
from ikedtx.privsep.signer import SigningServer, socketpair
from ikedtx.privsep.state import dumpState
from ikedtx.privsep.worker import EXIT_NO_FILTER
from ikedtx.wire.errors import ShortDatagram
from ikedtx.wire.natt import NattKind, classifyNattDatagram

DEFAULT_USER = "_iked"
#: The most bytes and keys of one box from the worker (an UpdateSA carries
#: two records of at most MAX_RECORD_BYTES).
MAX_BOX_BYTES = 3 * R.MAX_RECORD_BYTES
MAX_BOX_KEYS = 16
#: The longest line of the worker's log the parent takes.
MAX_LOG_LINE = 8192
_LEVELS = ("debug", "info", "warn", "error", "critical")


class WorkerCommands(BoundedBoxes, amp.AMP):
    """
    The parent's end of the AMP channel: the datapath operations and the
    reloads the worker asks for, each record checked before the datapath
    sees it.
    """

    _log = Logger()

    def __init__(self, service):
        amp.AMP.__init__(self)
        self.service = service
        # (protocol, spi) lent to the worker by AllocateSpis, neither
        # installed by an inbound SA nor given back yet.
        self.lent = set()

    # Bounded boxes: a worker that sends more is ended (and replaced).

    maxBoxBytes = MAX_BOX_BYTES
    maxBoxKeys = MAX_BOX_KEYS

    def boxTooBig(self):
        self._log.error("the worker sent a box over {n} bytes or {k} keys: ending it", n=MAX_BOX_BYTES,
                        k=MAX_BOX_KEYS)
        worker = getattr(self.service, "worker", None)
        if worker is not None and worker.transport is not None:
            worker.transport.signalProcess("KILL")

    @property
    def kernel(self):
        return self.service.kernel

    def _record(self, data, decode):
        try:
            return decode(data)
        except R.RecordError as e:
            self._log.warn("worker sent a bad record: {error}", error=e)
            raise

    @C.AllocateSpi.responder
    def allocateSpi(self, protocol, source, destination):
        # ProtocolId AH, ESP, or NONE for an IPcomp CPI.
        if protocol not in (0, 2, 3):
            raise R.RecordError("protocol must be AH (2), ESP (3) or none (0, an IPcomp CPI)")
        source = R._address(source, "source")
        destination = R._address(destination, "destination")
        return self.kernel.allocateSpi(protocol, source, destination).addCallback(lambda spi: {"spi": spi})

    @C.AllocateSpis.responder
    def allocateSpis(self, protocol, count):
        if not getattr(self.kernel, "spiBlocks", False):
            raise R.RecordError("datapath %s allocates an SPI for its addresses: AllocateSpi" % (self.kernel.name,))
        if protocol not in (2, 3):
            raise R.RecordError("protocol must be AH (2) or ESP (3)")
        if not 1 <= count <= C.MAX_SPI_BLOCK:
            raise R.RecordError("count must be 1 to %d" % (C.MAX_SPI_BLOCK,))
        if len(self.lent) + count > C.MAX_LENT_SPIS:
            raise KernelError("the worker holds %d SPIs not installed (at most %d)" % (len(self.lent),
                                                                                      C.MAX_LENT_SPIS))
        # Such a datapath answers at once; its SPIs need no addresses.
        d = defer.gatherResults([self.kernel.allocateSpi(protocol, None, None) for _ in range(count)],
                                consumeErrors=True)

        def allocated(spis):
            self.lent.update((protocol, spi) for spi in spis)
            return {"spis": spis}

        return d.addCallbacks(allocated, lambda f: f.value.subFailure)

    def releaseLent(self):
        """
        Give back to the datapath the SPIs lent to the worker that no SA
        installed (its channel ended, or it flushed).
        """
        lent, self.lent = self.lent, set()
        for protocolId, spi in lent:
            self.kernel.releaseSpi(protocolId, spi)

    def connectionLost(self, reason):
        if self.lent and getattr(self.service, "kernel", None) is not None:
            self.releaseLent()
        amp.AMP.connectionLost(self, reason)

    def _done(self, d):
        return d.addCallback(lambda _: {})

    # The batched operations: each the datapath's Deferred (L{batch}), or
    # an answer through _done (its own command).

    def _addSA(self, sa):
        sa = self._record(sa, R.decodeSA)
        if sa.inbound:
            self.lent.discard((sa.protocol, sa.spi))
        self.service.installed.add(sa.spi)
        self.service.addresses.installed(sa)
        return self.kernel.addSA(sa)

    def _deleteSA(self, sa):
        sa = self._record(sa, R.decodeSA)
        self.lent.discard((sa.protocol, sa.spi))
        self.service.installed.discard(sa.spi)
        self.service.addresses.removed(sa)
        return self.kernel.deleteSA(sa)

    def _detachSA(self, sa):
        sa = self._record(sa, R.decodeSA)
        self.service.addresses.removed(sa)
        return self.kernel.detachSA(sa)

    def _addFlow(self, flow):
        return self.kernel.addFlow(self._record(flow, R.decodeFlow))

    def _deleteFlow(self, flow):
        return self.kernel.deleteFlow(self._record(flow, R.decodeFlow))

    #: records.BATCH_OPS names: the method that does each.
    _BATCHED = {"addSA": _addSA, "deleteSA": _deleteSA, "detachSA": _detachSA, "addFlow": _addFlow,
                "deleteFlow": _deleteFlow}

    @C.AddSA.responder
    def addSA(self, sa):
        return self._done(self._addSA(sa))

    @C.UpdateSA.responder
    def updateSA(self, old, new):
        old, new = self._record(old, R.decodeSA), self._record(new, R.decodeSA)
        self.service.addresses.removed(old)
        self.service.addresses.installed(new)
        return self._done(self.kernel.updateSA(old, new))

    @C.DeleteSA.responder
    def deleteSA(self, sa):
        return self._done(self._deleteSA(sa))

    @C.DetachSA.responder
    def detachSA(self, sa):
        return self._done(self._detachSA(sa))

    @C.AddAddress.responder
    def addAddress(self, address, interface):
        try:
            self.service.addresses.add(address, interface)
        except (R.RecordError, R.AddressRefused) as e:
            self._log.warn("the worker asked for virtual address {address} on {interface}: refused: {error}",
                           address=address[:45], interface=interface[:16], error=e)
            raise
        return {}

    @C.RemoveAddress.responder
    def removeAddress(self, address, interface):
        try:
            self.service.addresses.remove(address, interface)
        except R.RecordError as e:
            self._log.warn("the worker asked to remove a virtual address: refused: {error}", error=e)
            raise
        return {}

    @C.QuerySA.responder
    def querySA(self, sa):
        d = self.kernel.querySA(self._record(sa, R.decodeSA))
        return d.addCallback(lambda usage: {"usage": R.encode(R.usageToPlain(usage))})

    @C.AddFlow.responder
    def addFlow(self, flow):
        return self._done(self._addFlow(flow))

    @C.DeleteFlow.responder
    def deleteFlow(self, flow):
        return self._done(self._deleteFlow(flow))

    @C.Batch.responder
    def batch(self, ops):
        try:
            operations = R.decodeBatch(ops)
        except R.RecordError as e:
            self._log.warn("worker sent a bad batch: {error}", error=e)
            raise
        errors, waiting = [], []
        for name, record in operations:
            # name is one of records.BATCH_OPS.
            try:
                d = self._BATCHED[name](self, record)
            except Exception:
                d = defer.fail()
            if d.called and not d.paused and not isinstance(d.result, defer.Deferred):
                # Done at once (the datapaths answer at once): no chain.
                result = d.result
                if isinstance(result, Failure):
                    d.addErrback(lambda _: None)
                    errors.append(self._batchError(result))
                else:
                    errors.append("")
                continue
            index = len(errors)
            errors.append(None)
            waiting.append(d.addCallbacks(lambda _: "", self._batchError).addCallback(
                lambda error, index=index: errors.__setitem__(index, error)))
        if not waiting:
            return {"errors": errors}
        return defer.gatherResults(waiting).addCallback(lambda _: {"errors": errors})

    def _batchError(self, failure):
        if failure.check(R.RecordError):
            return "BAD_RECORD\t%s" % (failure.value,)
        if failure.check(KernelError):
            return "KERNEL_ERROR\t%s" % (failure.value,)
        self._log.failure("a batched datapath operation of the worker", failure)
        return "UNKNOWN\t"

    @C.BlockIPv6.responder
    def blockIPv6(self):
        return self._done(self.kernel.blockIPv6())

    @C.UnblockIPv6.responder
    def unblockIPv6(self):
        return self._done(self.kernel.unblockIPv6())

    @C.Flush.responder
    def flush(self):
        self.releaseLent()
        return self._done(self.kernel.flush())

    @C.Ready.responder
    def ready(self, pid):
        self.service.workerReady(pid)
        return {}

    @C.InitialContact.responder
    def initialContact(self, peerId, localId):
        # Only several workers have others to tell (ikedtx.privsep.pool).
        tell = getattr(self.service, "initialContact", None)
        if tell is not None and len(peerId) <= C.MAX_IDENTITY and len(localId) <= C.MAX_IDENTITY:
            tell(peerId, localId)
        return {}

    @C.SetVerbose.responder
    def setVerbose(self, verbose):
        from ikedtx import tap

        tap.setVerbose(verbose)
        return {}

    @C.Reload.responder
    def reload(self, path):
        return self.service.prepareReload(path or None)

    @C.FetchState.responder
    def fetchState(self, token, offset):
        data = self.service.pendingStates[token]
        if not 0 <= offset <= len(data):
            raise KeyError(offset)
        chunk = data[offset:offset + C.CHUNK]
        if offset + len(chunk) >= len(data):
            self.service.pendingStates.pop(token, None)
            self.service._notify("READY=1")
        return {"data": chunk}

    # The datapath's events, to the worker

    def acquire(self, reqid, source, destination):
        self.callRemote(C.Acquire, reqid=reqid, source=R.encode(R.selectorToPlain(source)),
                        destination=R.encode(R.selectorToPlain(destination)))

    def expired(self, protocol, spi, destination, hard):
        self.callRemote(C.Expired, protocol=protocol, spi=spi, destination=str(destination), hard=hard)

    def addressChanged(self, address, added):
        # The worker watches the addresses itself.
        pass


class WorkerProcess(protocol.ProcessProtocol):
    """
    One worker process: its log lines (standard output and error) go to
    the parent's log; its end goes to the L{PrivsepService}.
    """

    _log = Logger(namespace="ikedtx.worker")

    def __init__(self, service, state):
        self.service = service
        self.state = state
        self._buffers = {1: b"", 2: b""}
        self.pid = None

    def connectionMade(self):
        self.pid = self.transport.pid
        self.transport.write(self.state)
        self.transport.closeStdin()

    def childDataReceived(self, fd, data):
        buffer = self._buffers.get(fd, b"") + data
        *lines, rest = buffer.split(b"\n")
        if len(rest) > MAX_LOG_LINE:
            lines.append(rest[:MAX_LOG_LINE])
            rest = b""
        self._buffers[fd] = rest
        for line in lines:
            self._logLine(fd, line[:MAX_LOG_LINE].decode("utf-8", "replace"))

    def _logLine(self, fd, line):
        level, sep, text = line.partition("\t")
        if fd != 1 or not sep or level not in _LEVELS:
            level, text = ("error" if fd == 2 else "info"), line
        getattr(self._log, level)("worker[{pid}]: {text}", pid=self.pid, text=text)

    def processEnded(self, reason):
        self.service.workerEnded(self, reason.value)


class Supervisor:
    """
    How long to wait before the next worker: C{initial} seconds after a
    worker that lived less than C{stable} seconds, doubling up to
    C{maximum}; at once after one that lived longer.
    """

    def __init__(self, initial=0.5, maximum=30.0, stable=60.0):
        self.initial, self.maximum, self.stable = initial, maximum, stable
        self.delay = 0.0

    def nextDelay(self, lifetime):
        if lifetime >= self.stable:
            self.delay = 0.0
        else:
            self.delay = min(self.maximum, max(self.initial, self.delay * 2))
        return self.delay


def describeEnd(error):
    """
    How a process ended, from the C{ProcessDone}/C{ProcessTerminated} of
    its end: C{"exit status 1"}, C{"signal KILL"}.
    """
    sig = getattr(error, "signal", None)
    if sig is not None:
        try:
            return "signal %s" % (signal.Signals(sig).name[3:],)
        except ValueError:
            return "signal %d" % (sig,)
    return "exit status %s" % (getattr(error, "exitCode", None),)


#: SO_ATTACH_REUSEPORT_CBPF (linux/asm-generic/socket.h).
SO_ATTACH_REUSEPORT_CBPF = 51


def _markerProgram():
    """
    The classic BPF program of a NAT-T port's reuseport group: the first
    four bytes of the UDP payload zero (the non-ESP marker: IKE), or a
    datagram shorter than that (a NAT keepalive), go to the group's first
    socket (the worker's); anything else (ESP in UDP, RFC 3948 2.2) to
    the second (the parent's).
    """
    instructions = [
        (0x20, 0, 0, 0),  # ld [0]: the payload's first word (a short one ends the program: 0)
        (0x15, 0, 1, 0),  # jeq #0
        (0x06, 0, 0, 0),  # ret #0: the worker's socket
        (0x06, 0, 0, 1),  # ret #1: the parent's socket
    ]
    return b"".join(struct.pack("HBBI", *i) for i in instructions)


def steerByMarker(skt):
    """
    Make C{skt}, not bound yet, the first socket of a reuseport group that
    a kernel program splits by the non-ESP marker (L{_markerProgram}): the
    demultiplexing of RFC 3948 2.2 happens in the kernel, as it does for
    the XFRM datapath (UDP_ENCAP_ESPINUDP), and neither process sees the
    other's datagrams.

    @raise OSError: the kernel has no SO_ATTACH_REUSEPORT_CBPF (Linux 4.5).
    """
    code = _markerProgram()
    buffer = ctypes.create_string_buffer(code)
    program = struct.pack("HL", len(code) // 8, ctypes.addressof(buffer))
    skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    skt.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, program)


def bindPortSocket(address, port, natt, kernelName, join=None):
    """
    A bound UDP socket for the worker's L{ikedtx.net.udp.PacketInfoPort},
    with what only root may set: the XFRM bypass and, on the NAT-T port of
    the XFRM datapath, ESP in UDP (RFC 3948). On the NAT-T port of the
    user-space datapath, the first socket of a group whose second is the
    parent's (L{bindEspSocket}, L{steerByMarker}).

    @param join: C{join(skt)}, before the bind, puts it in a reuseport group
        instead (several workers, L{ikedtx.privsep.pool}).
    """
    from ikedtx.net.udp import PacketInfoPort

    probe = PacketInfoPort(port, None, address)
    skt = probe.createInternetSocket()
    if join is not None:
        join(skt)
    elif natt and kernelName == "userspace":
        steerByMarker(skt)
    skt.bind((address, port))
    if kernelName == "xfrm":
        from ikedtx.kernel.xfrm import bypassSocket, enableEspInUdp

        bypassSocket(skt)
        if natt:
            enableEspInUdp(skt)
    elif kernelName == "userspace":
        from ikedtx.kernel.xfrm import bypassSocket

        try:
            bypassSocket(skt)
        except OSError:
            pass
    skt.setblocking(False)
    return skt


#: The receive buffer of the parent's ESP sockets (SO_RCVBUFFORCE).
ESP_RECEIVE_BUFFER = 4 << 20


def bindEspSocket(address, port):
    """
    The parent's socket on the NAT-T port C{address}, C{port} of the
    user-space datapath, bound after the worker's (L{bindPortSocket}):
    the kernel hands it ESP in UDP only.
    """
    from ikedtx.kernel.xfrm import bypassSocket
    from ikedtx.net.udp import PacketInfoPort, _setReceiveBuffer

    skt = PacketInfoPort(port, None, address).createInternetSocket()
    # Room for the bursts of a bulk transfer while the inbound thread
    # writes to the TUN device (it reads one datagram at a time, where
    # the reactor read up to 4 MB into memory first).
    _setReceiveBuffer(skt, ESP_RECEIVE_BUFFER)
    skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    skt.bind((address, port))
    try:
        bypassSocket(skt)
    except OSError:
        pass
    skt.setblocking(False)
    return skt


class EspPortProtocol:
    """
    The parent's end of a user-space datapath's NAT-T port: ESP in UDP to
    the datapath. The kernel steers nothing else here; anything else is
    dropped all the same.
    """

    _log = Logger()
    transport = None

    def __init__(self, kernel):
        self.kernel = kernel

    def makeConnection(self, transport):
        self.transport = transport

    def doStart(self):
        pass

    def doStop(self):
        pass

    def packetReceived(self, data, remote, local):
        try:
            kind, _payload = classifyNattDatagram(data)
        except ShortDatagram:
            return
        if kind == NattKind.ESP:
            self.kernel.espReceived(data, remote, local)


def bindMetricsSocket(host, port):
    """
    A listening TCP socket for C{--metrics} (the worker serves it; a port
    below 1024 needs root to bind).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    skt = socket.socket(family, socket.SOCK_STREAM)
    try:
        skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        skt.bind((host or "0.0.0.0", port))
        skt.listen(50)
    except OSError:
        skt.close()
        raise
    skt.setblocking(False)
    return skt


def bindDaeSocket(address, port):
    """
    A bound, non-blocking UDP socket for C{radius dae listen on ADDRESS
    port PORT} (the worker serves it; a port below 1024 needs root).
    """
    skt = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        skt.bind((address, port))
    except OSError:
        skt.close()
        raise
    skt.setblocking(False)
    return skt


def bindControlSocket(path, mode):
    """
    A listening AF_UNIX socket at C{path} with C{mode} (after
    L{ikedtx.service.prepareSocketPath}). It is bound under a temporary
    name and renamed to C{path} once it listens: a client that sees the
    path can connect (never ECONNREFUSED from a socket not listening yet).
    """
    skt = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = path + "~"
    if len(os.fsencode(temporary)) >= 108:
        # (sun_path's size on Linux: a longest path is bound in place.)
        temporary = path
    umask = os.umask(0o177)
    try:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        skt.bind(temporary)
        os.chmod(temporary, mode)
        skt.listen(64)
        if temporary != path:
            os.rename(temporary, path)
    except BaseException:
        skt.close()
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    finally:
        os.umask(umask)
    skt.setblocking(False)
    return skt


def workerUser(name):
    """
    C{(uid, gid, home)} of the worker's user C{name}.

    @raise KeyError: there is no such user.
    """
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid, entry.pw_dir


class PrivsepService(MultiService):
    """
    The privileged parent: an L{ikedtx.service.IkedService} (never started,
    for its checks and its settings) tells what to bind; this service binds
    it and runs workers.

    @ivar kernel: the L{IKernel} provider.
    @ivar worker: the running L{WorkerProcess}, or L{None}.
    @ivar workerPid: the pid of the worker that said it is ready.
    @ivar installed: SPIs of the SAs the current worker installed.
    @ivar addresses: the L{AddressGuard} of the worker's virtual addresses.
    @ivar espPorts: C{{(family, port): PacketInfoPort}}: the parent's ends
        of the user-space datapath's NAT-T ports.
    @ivar restarts: how many workers were started after the first.
    """

    _log = Logger()
    exitOnStartupError = False
    notifySystemd = False

    #: Whether the C library's free memory goes back to the kernel once the
    #: worker is ready (L{ikedtx.lean.trimHeap}; set by
    #: L{ikedtx.tap.makeService}).
    trimWhenStarted = False

    def __init__(self, config, options, reactor=None, credentials=None):
        MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        from ikedtx.service import IkedService, ReloadOnHangup, StopOnTerm

        self.reactor = reactor
        self.config = config
        self.options = options
        self.template = IkedService(config, dict(options, sighup=False), reactor, credentials)
        self.kernel = None
        self.addresses = None
        self.espPorts = {}
        self._metrics = None
        self._dae = {}
        self.worker = None
        self.workerPid = None
        self.installed = set()
        self.restarts = 0
        self.pendingStates = {}
        self._nextToken = 1
        self._sockets = []
        self._control = []
        self._gates = []
        self._started = None
        self._pending = None
        self.supervisor = Supervisor()
        self.user = options.get("privsep-user") or DEFAULT_USER
        if options.get("sighup", True):
            ReloadOnHangup(reactor).setServiceParent(self)
            StopOnTerm(reactor).setServiceParent(self)

    @property
    def credentials(self):
        return self.template.credentials

    def check(self):
        """
        Before start-up, beside the checks of L{IkedService.check}: the
        worker's user exists, and the worker's system call filter can be
        built in the C{enforce} mode (libseccomp loads and takes every
        rule; the kernel's refusal shows when the worker loads it).

        @raise StartupError: one of them cannot.
        """
        from ikedtx.privsep import seccomp
        from ikedtx.service import StartupError

        self.template.check()
        mode = self.options.get("privsep-seccomp") or "enforce"
        if mode == "enforce":
            try:
                seccomp.prepare(mode).release()
            except seccomp.SeccompUnavailable as e:
                raise StartupError("privilege separation: the worker's system call filter cannot be built: %s "
                                   "(--privsep-seccomp log or off runs the worker without one)" % (e,))
        try:
            workerUser(self.user)
        except KeyError:
            raise StartupError("privilege separation: no user %s (--privsep-user, or --no-privsep)" % (self.user,))

    def _openDatapath(self, workers):
        """
        Start-up, before any socket: the datapath provider, its log line
        (C{workers} says who runs the IKE core), the credentials and the
        address guard.

        @return: the provider's name.
        """
        from ikedtx.service import makeKernel

        options = self.options
        kernelName = options.get("kernel") or "decoupled"
        self.kernel = makeKernel(kernelName)
        if kernelName == "xfrm" and self.kernel.routes is not None and options.get("route-table") is not None:
            self.kernel.routes.table = int(options["route-table"])
            self.kernel.removeLeftoverRoutes()
        self._log.info("datapath: {kernel} ({why}); privilege separation: {workers} as {user}", kernel=kernelName,
                       why=options.get("kernelReason") or "--kernel %s" % (kernelName,), workers=workers,
                       user=self.user)
        if self.template.credentials is None:
            self.template.credentials = self.template._makeCredentials()
        self.addresses = AddressGuard(self.kernel, self.config)
        return kernelName

    def _bindService(self, service):
        """
        Bind what the parent holds for C{service} of the template besides
        the IKE ports: a control socket, or the metrics port.
        """
        from ikedtx.service import ControlSocketService, StartupError, prepareSocketPath

        if isinstance(service, ControlSocketService):
            try:
                prepareSocketPath(service.path)
                skt = bindControlSocket(service.path, 0o666 if service.readOnly else 0o600)
            except (StartupError, OSError) as e:
                self._closeSockets()
                self._startFailed(e if isinstance(e, StartupError) else StartupError(
                    "control socket %s: %s" % (service.path, e.strerror or e)))
            self._control.append((skt, service.path, service.readOnly))
        elif service.name == "metrics":
            host, port = service.address
            try:
                self._metrics = bindMetricsSocket(host, port)
            except OSError as e:
                self._closeSockets()
                self._startFailed(StartupError("metrics on %s:%d: %s" % (host or "*", port, e.strerror or e)))

    def _connectDatapath(self, kernelName):
        """
        Start-up, once the sockets are bound: the user-space datapath sends
        ESP through the parent's sockets, and the datapath's events come
        to the parent.
        """
        if kernelName == "userspace":
            self.kernel.sendUdp = self._sendEsp
            self.kernel.sendUdpSegments = self._sendEspSegments
            if self.options.get("keylog"):
                self.kernel.startDump(self.options["keylog"] + ".esp.json")
        self.kernel.setEventReceiver(self)

    def startService(self):
        from ikedtx.service import IKEPortService, StartupError

        kernelName = self._openDatapath("worker")
        for service in self.template:
            if isinstance(service, IKEPortService):
                try:
                    skt = bindPortSocket(service.address, service.portNumber, service.natt, kernelName)
                    if service.natt and kernelName == "userspace":
                        self._listenEsp(bindEspSocket(service.address, service.portNumber), service.address)
                except OSError as e:
                    self._closeSockets()
                    self._startFailed(StartupError("cannot bind %s:%d: %s" % (
                        service.address, service.portNumber, e.strerror or e)))
                self._sockets.append((skt, service.address, service.portNumber, service.natt))
            else:
                self._bindService(service)
        self._bindDae(self.config)
        self._connectDatapath(kernelName)
        # Until a worker is ready the parent holds the control connections.
        self._gates = [ControlGate(self.reactor, skt, path, readOnly) for skt, path, readOnly in self._control]
        for gate in self._gates:
            gate.open("the daemon is starting")
        MultiService.startService(self)
        self._spawn()

    def _bindDae(self, config):
        """
        Bind the sockets of C{config}'s C{radius dae listen} lines that are
        not bound yet (a port below 1024 needs root; the worker serves
        them). One that cannot be bound is left to the worker, which
        tries and logs why it cannot.

        @return: the C{(address, port)} of those bound now.
        """
        bound = []
        for address, port in config.radius.daeListen:
            key = (str(address), port)
            if key in self._dae:
                continue
            try:
                self._dae[key] = bindDaeSocket(*key)
            except OSError as e:
                self._log.debug("radius dae listen on {address} port {port}: {error}", address=address, port=port,
                                error=e)
                continue
            bound.append(key)
        return bound

    def _notHanded(self, failure, key):
        self._log.error("radius dae listen on {address} port {port}: the worker did not take the socket: {error}",
                        address=key[0], port=key[1], error=failure.value)

    def _startFailed(self, error):
        from ikedtx.service import IkedService

        IkedService._startFailed(self, error)

    def _listenEsp(self, skt, address):
        from ikedtx.net.udp import PacketInfoPort

        port = PacketInfoPort._fromListeningDescriptor(self.reactor, skt.fileno(), skt.family,
                                                       EspPortProtocol(self.kernel), 65535)
        port.interface = address
        port.startListening()
        skt.close()
        receive = getattr(self.kernel, "receiveEspOn", None)
        if receive is not None and receive(port.socket):
            # The datapath's inbound thread reads it; the port only sends.
            port.stopReading()
        self.espPorts[(port.addressFamily, port.getHost().port)] = port

    def _sendEsp(self, data, local, remote):
        """
        The user-space datapath's ESP in UDP (RFC 3948: no marker), from
        the parent's NAT-T socket of C{local} (C{(host, port)}).
        """
        port = self._espPort(local, remote)
        if port is not None:
            port.writeFrom(data, remote, local[0])

    def _sendEspSegments(self, buffers, size, local, remote):
        """
        C{buffers}, ESP packets of C{size} octets (the last at most), in one
        UDP GSO send from the parent's NAT-T socket of C{local}.

        @raise OSError: the host cannot send them so (the datapath then
            sends them one by one).
        """
        port = self._espPort(local, remote)
        if port is not None:
            port.writeSegments(buffers, size, remote, local[0])

    def _espPort(self, local, remote):
        """
        The parent's NAT-T port of C{local} (C{(host, port)}), or L{None}
        (logged: what was to go to C{remote} is dropped).
        """
        host, number = local
        port = self.espPorts.get((socket.AF_INET6 if ":" in str(host) else socket.AF_INET, number))
        if port is None:
            self._log.debug("no NAT-T socket for {local}; ESP to {remote} dropped", local=local, remote=remote)
        return port

    def _closeSockets(self):
        for gate in self._gates:
            gate.stop()
        self._gates = []
        for skt, *_rest in self._sockets:
            skt.close()
        stopReceiving = getattr(self.kernel, "stopReceivingEsp", None)
        if stopReceiving is not None and self.espPorts:
            stopReceiving()
        for port in self.espPorts.values():
            port.stopListening()
        self.espPorts = {}
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        for skt in self._dae.values():
            skt.close()
        self._dae = {}
        for skt, path, _ro in self._control:
            skt.close()
            try:
                os.unlink(path)
            except OSError:
                pass
        self._sockets, self._control = [], []

    # The datapath's events go to the worker's AMP channel.

    def acquire(self, reqid, source, destination):
        if self.worker is not None and self._amp is not None:
            self._amp.acquire(reqid, source, destination)

    def expired(self, protocol, spi, destination, hard):
        if self.worker is not None and self._amp is not None:
            self._amp.expired(protocol, spi, destination, hard)

    def addressChanged(self, address, added):
        pass

    _amp = None

    def _state(self, config=None, credentials=None):
        config = config or self.config
        options = {k: v for k, v in self.options.items() if k not in ("parsedConfig",)}
        resolved = resolvePolicyNames(config)
        return dumpState(config, resolved, credentials or self.credentials), options

    def _spawn(self):
        import pickle

        self._amp = WorkerCommands(self)
        ampParent, ampChild = socketpair()
        signParent, signChild = socketpair()
        stateBytes, options = self._state()
        options["kernel"] = self.kernel.name
        uid, gid, home = workerUser(self.user)
        chroot = self.options.get("privsep-chroot") or home
        childFDs = {0: "w", 1: "r", 2: "r", 3: ampChild.fileno(), 4: signChild.fileno()}
        ports, control = [], []
        fd = 5
        for skt, address, port, natt in self._sockets:
            childFDs[fd] = skt.fileno()
            ports.append([fd, address, port, natt, skt.family])
            fd += 1
        for skt, path, readOnly in self._control:
            childFDs[fd] = skt.fileno()
            control.append([fd, path, readOnly])
            fd += 1
        metrics = None
        if self._metrics is not None:
            childFDs[fd] = self._metrics.fileno()
            metrics = [fd, self._metrics.family]
            fd += 1
        dae = []
        for (address, port), skt in self._dae.items():
            childFDs[fd] = skt.fileno()
            dae.append([fd, address, port])
            fd += 1
        layout = {"dae": dae, "ports": ports, "control": control, "uid": uid, "gid": gid, "chroot": chroot,
                  "kernel": self.kernel.name, "metrics": metrics, "addressInterface": datapathInterface(self.kernel),
                  "spiBlocks": bool(getattr(self.kernel, "spiBlocks", False))}
        payload = pickle.dumps((layout, stateBytes, options), protocol=pickle.HIGHEST_PROTOCOL)
        process = WorkerProcess(self, payload)
        env = dict(os.environ)
        self.worker = process
        self._started = self.reactor.seconds()
        self.reactor.spawnProcess(process, sys.executable, [sys.executable, "-m", "ikedtx.privsep.worker"],
                                  env=env, childFDs=childFDs)
        ampChild.close()
        signChild.close()
        factory = protocol.Factory.forProtocol(lambda: self._amp)
        self.reactor.adoptStreamConnection(ampParent.detach(), socket.AF_UNIX, factory)
        signing = protocol.Factory.forProtocol(lambda: SigningServer(lambda: self.credentials.privateKey))
        self.reactor.adoptStreamConnection(signParent.detach(), socket.AF_UNIX, signing)
        self._log.info("worker started: pid {pid}", pid=process.pid)

    def workerReady(self, pid):
        self.workerPid = pid
        self._log.info("worker {pid} serves peers as uid {uid}", pid=pid, uid=workerUser(self.user)[0])
        self._notify("READY=1")
        if self.trimWhenStarted:
            from ikedtx.lean import trimHeap

            trimHeap()
        for gate in self._gates:
            gate.handOff(self._adoptControl)

    def _adoptControl(self, skt, readOnly):
        """
        Hand the held control connection C{skt} to the ready worker.
        """
        if self._amp is None:
            return defer.fail(ValueError("no worker"))
        return self._amp.callRemote(C.AdoptControl, descriptor=skt.fileno(), readOnly=readOnly)

    def _notify(self, state):
        # systemd hears the main process only (NotifyAccess=main).
        if self.notifySystemd:
            from ikedtx.sdnotify import notify

            notify(state)

    def workerEnded(self, process, error):
        if process is not self.worker:
            return
        lifetime = self.reactor.seconds() - (self._started or 0)
        self.worker = None
        self.workerPid = None
        amp, self._amp = self._amp, None
        if amp is not None and amp.transport is not None:
            amp.transport.loseConnection()
        if not self.running:
            self._log.info("worker {pid} ended: {how}", pid=process.pid, how=describeEnd(error))
            return
        if getattr(error, "exitCode", None) == EXIT_NO_FILTER:
            self._refuseUnfiltered(process)
            return
        for gate in self._gates:
            gate.open("the worker is restarting")
        sas = len(self.installed)
        self.installed = set()
        self.addresses.flush()
        delay = self.supervisor.nextDelay(lifetime)
        self._log.error("worker {pid} died ({how}); flushing the datapath ({sas} SAs it installed) and starting "
                        "another in {delay:.1f} s", pid=process.pid, how=describeEnd(error), sas=sas, delay=delay)
        d = self.kernel.flush()
        d.addErrback(lambda f: self._log.error("flushing after the worker died: {error}", error=f.value))

        def restart(_):
            if self.running and self.worker is None:
                self.restarts += 1
                self._pending = self.reactor.callLater(delay, self._restart)

        d.addCallback(restart)

    def _refuseUnfiltered(self, process):
        """
        The worker could not install its system call filter in the
        C{enforce} mode (it said why, before it ended): another worker
        would fail alike, and one without the filter must not serve; the
        daemon stops with status 1.
        """
        from ikedtx import service

        self._log.critical("worker {pid} could not install its system call filter: the daemon stops "
                           "(--privsep-seccomp log or off runs the worker without one)", pid=process.pid)
        service.exitStatus = 1
        self.reactor.stop()

    def _restart(self):
        self._pending = None
        if self.running and self.worker is None:
            self._spawn()

    def prepareReload(self, path):
        """
        Read the configuration and the iked tree again (in a thread), and
        keep the state for the worker to fetch.
        """
        from ikedtx.config import loadConfig
        from ikedtx.config.errors import ConfigError
        from ikedtx.service import localKeyProblem

        path = path or self.options.get("config")
        self._notify("RELOADING=1")
        d = self.template.runInThread(loadConfig, path, list(self.options.get("defines") or ()))

        def loaded(config):
            self.config = config
            if self.addresses is not None:
                self.addresses.config = config
            self.options["config"] = path
            previous = self.credentials.privateKey
            self.credentials.reload()
            problem = localKeyProblem(self.credentials, config)
            if problem is not None and previous is not None:
                self._log.error("{problem}; keeping the key loaded before", problem=problem)
                self.credentials.privateKey = previous
            stateBytes, _ = self._state(config)
            token, self._nextToken = self._nextToken, self._nextToken + 1
            self._keepState(token, stateBytes)
            # New DAE sockets reach the worker before the state that names them.
            handed = [self._amp.callRemote(C.AdoptDAE, descriptor=self._dae[key].fileno(), address=key[0],
                                           port=key[1]).addErrback(self._notHanded, key)
                      for key in self._bindDae(config) if self._amp is not None]
            answer = {"token": token, "size": len(stateBytes)}
            return defer.gatherResults(handed, consumeErrors=True).addBoth(lambda _: answer)

        def failed(f):
            self._notify("READY=1")
            f.trap(ConfigError)
            raise ValueError(str(f.value))

        return d.addCallbacks(loaded, failed)

    def _keepState(self, token, stateBytes):
        # One worker fetches one state at a time.
        self.pendingStates = {token: stateBytes}

    def reloadOnSignal(self):
        """
        SIGHUP: the worker reloads (through the parent's L{prepareReload}).
        """
        if self.worker is not None:
            self._passReload(self.worker.pid)

    def _passReload(self, pid):
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as e:
            # E.g. a service manager's bounding set without CAP_KILL: the
            # worker runs as another user.
            self._log.error("SIGHUP: cannot pass the reload on to worker {pid}: {error}; nothing reloaded",
                            pid=pid, error=e)

    def stopService(self):
        MultiService.stopService(self)
        self._notify("STOPPING=1")
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        ds = []
        worker = self.worker
        if worker is not None:
            # The worker says goodbye to its peers (SIGTERM), then the
            # datapath is flushed.
            done = defer.Deferred()
            original = self.workerEnded

            def ended(process, error):
                original(process, error)
                if not done.called:
                    done.callback(None)

            self.workerEnded = ended
            try:
                worker.transport.signalProcess("TERM")
            except Exception:
                done.callback(None)
            timeout = self.reactor.callLater(10, lambda: done.called or worker.transport.signalProcess("KILL"))
            done.addBoth(lambda r: timeout.active() and timeout.cancel())
            ds.append(done)

        def flush(_):
            self._closeSockets()
            if self.addresses is not None:
                self.addresses.flush()
            if self.kernel is not None and self.kernel.name != "decoupled":
                return self.kernel.flush()

        return defer.gatherResults(ds, consumeErrors=True).addCallback(flush)

# -*- test-case-name: tests.test_privsep_commands -*-
"""
The worker's side of privilege separation: the daemon's service on the
sockets the parent bound, with the parent's datapath behind
L{RemoteKernel}.
"""

import os
import socket
from collections import Counter

from twisted.application.service import Service
from twisted.internet import defer, protocol, unix
from twisted.logger import Logger
from twisted.protocols import amp
from zope.interface import implementer

from ikedtx.kernel.interfaces import IKernel, KernelError
from ikedtx.net.shell import IKEDatagramProtocol
from ikedtx.net.udp import PacketInfoPort
from ikedtx.privsep import commands as C
from ikedtx.privsep import records as R
from ikedtx.privsep.addresses import RemoteAddresses, hostSelector
from ikedtx.service import IkedService


class ParentChannel(amp.AMP):
    """
    The worker's end of the AMP channel: datapath events from the parent go
    to the kernel's event receiver; losing the parent ends the worker.
    """

    _log = Logger()

    def __init__(self, kernel, reactor):
        amp.AMP.__init__(self)
        self.kernel = kernel
        self.reactor = reactor

    @C.Acquire.responder
    def acquire(self, reqid, source, destination):
        receiver = self.kernel.events
        if receiver is not None:
            receiver.acquire(reqid, R.decode(source, R.selectorFromPlain), R.decode(destination, R.selectorFromPlain))
        return {}

    @C.Expired.responder
    def expired(self, protocol, spi, destination, hard):
        receiver = self.kernel.events
        if receiver is not None:
            receiver.expired(protocol, spi, R._address(destination, "destination"), hard)
        return {}

    #: C{forget(peerId, localId)}: the worker service's L{WorkerService.forgetPeer}.
    forget = None

    @C.ForgetPeer.responder
    def forgetPeer(self, peerId, localId):
        if self.forget is not None:
            self.forget(peerId, localId)
        return {}

    #: C{adopt(fd, readOnly)}: the worker service's L{WorkerService.adoptControl}.
    adopt = None

    #: C{adoptDAE(fd, address, port)}: the worker service's L{WorkerService.adoptDAE}.
    adoptDAE = None

    @C.AdoptDAE.responder
    def adoptDAESocket(self, descriptor, address, port):
        if self.adoptDAE is None:
            os.close(descriptor)
            raise ValueError("no DAE")
        self.adoptDAE(descriptor, address, port)
        return {}

    @C.AdoptControl.responder
    def adoptControl(self, descriptor, readOnly):
        if self.adopt is None:
            os.close(descriptor)
            raise ValueError("no control socket")
        self.adopt(descriptor, readOnly)
        return {}

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        self._log.info("the privileged process is gone: stopping")
        if self.reactor.running:
            self.reactor.stop()


#: Where the parent's datapath allows it (C{spiBlocks}), the worker holds
#: inbound SPIs lent ahead of need (L{C.AllocateSpis}): it asks for
#: SPI_BLOCK more when its stock of a protocol falls to SPI_LOW.
SPI_BLOCK = 32
SPI_LOW = 8


@implementer(IKernel)
class RemoteKernel:
    """
    An L{IKernel} whose operations are AMP commands to the parent, which
    holds the real provider (its C{name}).

    @ivar channel: the L{ParentChannel}.
    @ivar events: the L{IDatapathEvents} receiver of the parent's events.
    """

    routes = None

    def __init__(self, name, channel=None, addressInterface="lo", reactor=None, spiBlocks=False):
        self.name = name
        self.channel = channel
        self.events = None
        self.addressInterface = addressInterface
        self.localAddresses = Counter()
        self.addressesWaiting = None
        # With a reactor, the SAs and flows of one turn go in one Batch
        # (sent at the end of the turn, or before any other command).
        self.reactor = reactor
        self._batch = []
        self._batchBytes = 0
        self._batchCall = None
        # Inbound SPIs lent by the parent, by protocol (AH, ESP); the
        # allocations waiting for the next block; the protocols asked for.
        self.spiBlocks = spiBlocks
        self._spis = {}
        self._spisWaiting = {}
        self._refilling = set()
        self._spiEpoch = 0

    def setEventReceiver(self, receiver):
        self.events = receiver

    def virtualAddressInterface(self):
        """
        Where the parent's datapath puts a virtual address no C{iface}
        places (L{ikedtx.kernel.vips.interfaceFor}).
        """
        return self.addressInterface

    def _call(self, command, **arguments):
        self.sendBatch()
        return self.channel.callRemote(command, **arguments)

    def _queue(self, command, name, record):
        """
        Send C{record} for C{name} (one of L{R.BATCH_OPS}) now as
        C{command}, or (with a reactor) in the batch of this turn.
        """
        if self.reactor is None:
            return self.channel.callRemote(command, **{command.arguments[0][0].decode("ascii"): record})
        if (len(self._batch) == R.MAX_BATCH_OPS
                or self._batchBytes + 3 + len(record) > R.MAX_BATCH_BYTES):
            self.sendBatch()
        d = defer.Deferred()
        self._batch.append((name, record, d))
        self._batchBytes += 3 + len(record)
        if self._batchCall is None:
            self._batchCall = self.reactor.callLater(0, self.sendBatch)
        return d

    def sendBatch(self):
        """
        Send the operations waiting for the end of this turn, if any.
        """
        if self._batchCall is not None:
            if self._batchCall.active():
                self._batchCall.cancel()
            self._batchCall = None
        batch, self._batch, self._batchBytes = self._batch, [], 0
        if not batch:
            return
        waiting = [d for _name, _record, d in batch]
        sent = self.channel.callRemote(C.Batch, ops=R.encodeBatch([(name, record) for name, record, _d in batch]))

        def answered(answer):
            errors = answer["errors"]
            if len(errors) != len(waiting):
                raise KernelError("the parent answered %d of %d operations" % (len(errors), len(waiting)))
            for d, error in zip(waiting, errors):
                if not error:
                    d.callback(None)
                    continue
                code, _tab, text = error.partition("\t")
                kind = {"BAD_RECORD": R.RecordError, "KERNEL_ERROR": KernelError}.get(code)
                d.errback(kind(text) if kind is not None else amp.UnknownRemoteError(text or code))

        def failed(reason):
            for d in waiting:
                d.errback(reason)

        sent.addCallbacks(answered, failed).addErrback(failed)

    def _locals(self, sa):
        return {address for address in (hostSelector(ours) for ours, _theirs in sa.selectors) if address is not None}

    def _forget(self, sa):
        for address in self._locals(sa):
            self.localAddresses[address] -= 1
            if self.localAddresses[address] <= 0:
                del self.localAddresses[address]

    def allocateSpi(self, protocol, source, destination):
        if self.spiBlocks and protocol in (2, 3):
            stock = self._spis.setdefault(protocol, [])
            if stock:
                spi = stock.pop()
                if len(stock) <= SPI_LOW:
                    self._refill(protocol)
                return defer.succeed(spi)
            d = defer.Deferred()
            self._spisWaiting.setdefault(protocol, []).append(d)
            self._refill(protocol)
            return d
        d = self._call(C.AllocateSpi, protocol=protocol, source=str(source), destination=str(destination))
        return d.addCallback(lambda answer: answer["spi"])

    def _refill(self, protocol):
        """
        Ask the parent for a block of SPIs of C{protocol}, unless a request
        is under way.
        """
        if protocol in self._refilling:
            return
        self._refilling.add(protocol)
        epoch = self._spiEpoch

        def lent(answer):
            self._refilling.discard(protocol)
            stock = self._spis.setdefault(protocol, [])
            if epoch == self._spiEpoch:
                # Else a flush came between: the parent took them back.
                stock.extend(answer["spis"])
            waiting = self._spisWaiting.pop(protocol, [])
            while waiting and stock:
                waiting.pop(0).callback(stock.pop())
            if waiting:
                self._spisWaiting[protocol] = waiting
            if len(stock) <= SPI_LOW:
                self._refill(protocol)

        def refused(reason):
            self._refilling.discard(protocol)
            for d in self._spisWaiting.pop(protocol, []):
                d.errback(reason)

        d = self._call(C.AllocateSpis, protocol=protocol, count=SPI_BLOCK)
        d.addCallbacks(lent, refused)

    def addSA(self, sa):
        d = self._queue(C.AddSA, "addSA", R.encodeSA(sa))
        addresses = self._locals(sa)
        self.localAddresses.update(addresses)
        if addresses and self.addressesWaiting is not None:
            # After the SA, before its flows (L{RemoteAddresses}).
            self.addressesWaiting.localSent(addresses)
        return d

    def updateSA(self, old, new):
        self._forget(old)
        self.localAddresses.update(self._locals(new))
        return self._call(C.UpdateSA, old=R.encodeSA(old), new=R.encodeSA(new))

    def deleteSA(self, sa):
        self._forget(sa)
        return self._queue(C.DeleteSA, "deleteSA", R.encodeSA(sa))

    def detachSA(self, sa):
        self._forget(sa)
        return self._queue(C.DetachSA, "detachSA", R.encodeSA(sa))

    def querySA(self, sa):
        d = self._call(C.QuerySA, sa=R.encodeSA(sa))
        return d.addCallback(lambda answer: R.decode(answer["usage"], R.usageFromPlain))

    def addFlow(self, flow):
        return self._queue(C.AddFlow, "addFlow", R.encodeFlow(flow))

    def deleteFlow(self, flow):
        return self._queue(C.DeleteFlow, "deleteFlow", R.encodeFlow(flow))

    def blockIPv6(self):
        return self._call(C.BlockIPv6)

    def unblockIPv6(self):
        return self._call(C.UnblockIPv6)

    def flush(self):
        self.localAddresses.clear()
        # The parent gives back what it lent (WorkerCommands.flush).
        self._spis.clear()
        self._spiEpoch += 1
        return self._call(C.Flush)


class AdoptedPortService(Service):
    """
    One UDP port the parent bound (file descriptor C{fd}), feeding the
    worker's runner.
    """

    _log = Logger()

    def __init__(self, fd, address, portNumber, natt, family, reactor):
        self.fd, self.address, self.portNumber, self.natt, self.family = fd, address, portNumber, natt, family
        self.reactor = reactor
        self.port = None
        self.setName("%s port %s:%d" % ("NAT-T" if natt else "IKE", address, portNumber))

    def startService(self):
        runner = self.parent.runner
        port = PacketInfoPort._fromListeningDescriptor(self.reactor, self.fd, self.family,
                                                       IKEDatagramProtocol(runner, self.natt), 65535)
        port.interface = self.address
        port.startListening()
        os.close(self.fd)
        self.port = port
        Service.startService(self)
        runner.addPort(port, self.natt)
        self._log.info("listening on {address} port {port}{natt}", address=self.address, port=self.portNumber,
                       natt=" (NAT-T)" if self.natt else "")

    def stopService(self):
        Service.stopService(self)
        port, self.port = self.port, None
        if port is not None:
            return defer.maybeDeferred(port.stopListening)


class _AdoptedUnixPort(unix.Port):
    """
    A listening UNIX port on a socket bound elsewhere, whose path this
    process may not see (Twisted's own adoption sets the path's mode).
    """

    def startListening(self):
        self.factory.doStart()
        skt, self._preexistingSocket = self._preexistingSocket, None
        skt.setblocking(False)
        self.connected = True
        self.socket = skt
        self.fileno = skt.fileno
        self.numberAccepts = 100
        self.startReading()


class AdoptedControlService(Service):
    """
    A control socket the parent bound and listens on (file descriptor
    C{fd}); the worker accepts its connections and checks each peer's
    credentials (C{SO_PEERCRED}: root or the daemon's user).
    """

    _log = Logger()

    def __init__(self, fd, path, readOnly, reactor):
        self.fd, self.path, self.readOnly, self.reactor = fd, path, readOnly, reactor
        self.listening = None
        self.factory = None
        self.setName("read-only control socket" if readOnly else "control socket")

    def startService(self):
        from ikedtx.control.server import ControlFactory

        if self.readOnly:
            factory = ControlFactory.forReadOnlySocket(self.parent)
        else:
            factory = ControlFactory.forSocket(self.parent)
        self.factory = factory
        self.listening = _AdoptedUnixPort._fromListeningDescriptor(self.reactor, self.fd, factory)
        self.listening.startListening()
        os.close(self.fd)
        Service.startService(self)
        self._log.info("{name} {path}", name=self.name, path=self.path)

    def stopService(self):
        Service.stopService(self)
        listening, self.listening = self.listening, None
        if listening is not None:
            # The path stays: the parent owns it (and the worker, in its
            # empty root, does not see it).
            listening.port = b"\0"
            return defer.maybeDeferred(listening.stopListening)


class WorkerService(IkedService):
    """
    L{IkedService} as the worker runs it: no binding, no file reading; its
    kernel is a L{RemoteKernel}, its ports and control sockets are the
    parent's, a reload asks the parent for the new state.
    """

    _log = Logger()

    def __init__(self, config, options, reactor, credentials, layout, resolved, signer=None):
        self._signer = signer
        options = dict(options, socket=None, **{"ro-socket": None})
        self._layout = layout
        self._resolved = resolved
        IkedService.__init__(self, config, options, reactor, credentials)
        adopted = [AdoptedPortService(fd, address, port, natt, family, reactor)
                   for fd, address, port, natt, family in layout["ports"]]
        adopted += [AdoptedControlService(fd, path, readOnly, reactor) for fd, path, readOnly in layout["control"]]
        for service in adopted:
            service.parent = self
            if service.name:
                self.namedServices[service.name] = service
        self.services = adopted + self.services
        # Bound by the parent (a port below 1024 needs root); more come with
        # a reload (C{AdoptDAE}).
        self.daeSockets.update({(address, port): fd for fd, address, port in layout.get("dae") or ()})
        metrics = layout.get("metrics")
        if metrics is not None:
            # Bound and listening in the parent (a port below 1024 needs root).
            self.getServiceNamed("metrics").descriptor = tuple(metrics)
        self.channel = None
        self._keyLogFile = None
        if options.get("keylog"):
            # Test-only; opened now, while the file system is there.
            fd = os.open(options["keylog"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._keyLogFile = os.fdopen(fd, "a")

    def _keyLog(self):
        if self._keyLogFile is None:
            return None
        from ikedtx.service import keyLogger

        return keyLogger(self.options["keylog"], self._log, opener=lambda: self._keyLogFile)

    def _listenAddresses(self):
        # The parent bound them.
        return []

    def _makeKernel(self, name):
        kernel = RemoteKernel(name, addressInterface=self._layout.get("addressInterface") or "lo",
                              reactor=self.reactor, spiBlocks=self._layout.get("spiBlocks", False))
        self.channel = ParentChannel(kernel, self.reactor)
        self.channel.adopt = self.adoptControl
        self.channel.adoptDAE = self.adoptDAE
        kernel.channel = self.channel
        factory = protocol.Factory.forProtocol(lambda: self.channel)
        self.reactor.adoptStreamConnection(3, socket.AF_UNIX, factory)
        os.close(3)
        return kernel

    def _resolve(self, config):
        return self._resolved

    def _wireDatapath(self):
        # The parent's NAT-T sockets take the ESP in UDP (the kernel steers
        # it there, parent.steerByMarker) and send it.
        pass

    @property
    def workerIndex(self):
        """
        C{(index, count)} of this worker among the parent's (C{--ike-workers}).
        """
        index, count = self._layout.get("worker") or (0, 1)
        return index, count

    def startService(self):
        IkedService.startService(self)
        index, count = self.workerIndex
        if count > 1:
            from ikedtx.privsep.steering import ownSpi

            # The parent's reuseport program steers by these SPIs.
            self.core.spiFilter = lambda spi: ownSpi(spi, index, count)
            # The first worker initiates the active policies and traps.
            self.core.initiatesActive = index == 0
            # INITIAL_CONTACT reached this worker: the others forget the
            # peer's old IKE SAs (through the parent).
            self.core.initialContactHook = self._initialContact
            self.channel.forget = self.forgetPeer
            # Each worker lends its own share of each address pool.
            self.core.pools.setShare(index, count)
        if self.kernel.name != "decoupled":
            self.runner.virtualAddresses = RemoteAddresses(self.kernel)
        channel = self._layout.get("controlChannel")
        if channel is not None:
            # The parent's own control connection (it serves the control
            # sockets for several workers, ikedtx.privsep.pool).
            from ikedtx.control.server import ControlFactory

            self.reactor.adoptStreamConnection(channel, socket.AF_UNIX, ControlFactory.forSocket(self))
            os.close(channel)
        self.channel.callRemote(C.Ready, pid=os.getpid()).addErrback(lambda f: None)

    def _startup(self):
        if self.workerIndex[0] == 0:
            return IkedService._startup(self)
        if self.running:
            # Not the first of several: no trap flows (the first's).
            self.runner.execute(self.core.startup())

    def _initialContact(self, ikeSA):
        # Out of the core's processing: the message goes when it is done.
        self.reactor.callLater(0, self.channel.callRemote, C.InitialContact, peerId=str(ikeSA.peerId),
                               localId=str(ikeSA.localId))

    def forgetPeer(self, peerId, localId):
        """
        Another worker received INITIAL_CONTACT from C{peerId} (to our
        C{localId}): the IKE SAs between them here are stale (RFC 7296 2.4),
        deleted without a word to the peer as the core does.
        """
        from ikedtx.core.sa import IKEState

        core = self.core
        stale = [sa for sa in core.ikeSAs.values()
                 if sa.state != IKEState.CLOSED and sa.peerId is not None and sa.isEstablished
                 and str(sa.peerId) == peerId and str(sa.localId) == localId]
        for sa in stale:
            self._log.info("{ikeSA}: INITIAL_CONTACT from {peer} reached another worker: deleting this old one",
                           ikeSA=sa, peer=peerId)
            core.destroy(sa, "replaced: the peer sent INITIAL_CONTACT (to another worker)")
        if stale:
            self.runner.execute(core._drain())

    def adoptControl(self, fd, readOnly):
        """
        Serve the control connection C{fd} the parent held for us (as one
        of the control socket's, or the read-only one's if C{readOnly}).
        """
        try:
            for service in self.services:
                if isinstance(service, AdoptedControlService) and service.readOnly == readOnly and service.factory:
                    self.reactor.adoptStreamConnection(fd, socket.AF_UNIX, service.factory)
                    return
            raise ValueError("no such control socket")
        finally:
            os.close(fd)

    def adoptDAE(self, fd, address, port):
        """
        The parent bound the C{radius dae listen} socket C{fd} of C{address}
        and C{port} for a reloaded configuration: serve it from now on
        (L{ikedtx.auth.radiuswire.RadiusWiring}), instead of an earlier one.
        """
        old = self.daeSockets.get((address, port))
        self.daeSockets[(address, port)] = fd
        if old is not None:
            os.close(old)

    def logLevelChanged(self, verbose):
        self.channel.callRemote(C.SetVerbose, verbose=verbose).addErrback(
            lambda f: self._log.warn("the parent's log level stays: {error}", error=f.value))

    def _reload(self, path=None):
        d = self.channel.callRemote(C.Reload, path=path or "")

        def fetch(answer, chunks=None, offset=0):
            chunks = chunks if chunks is not None else []
            if offset >= answer["size"]:
                return b"".join(chunks)
            more = self.channel.callRemote(C.FetchState, token=answer["token"], offset=offset)

            def got(result):
                chunks.append(result["data"])
                if not result["data"]:
                    raise ValueError("the privileged process sent a short state")
                return fetch(answer, chunks, offset + len(result["data"]))

            return more.addCallback(got)

        def apply(data):
            from ikedtx.privsep.state import loadState

            config, resolved, credentials = loadState(data, self._signer)
            self.config = config
            if path:
                self.options["config"] = path
            # The core holds this store: it takes the new one's contents.
            self.credentials.__dict__.update(credentials.__dict__)
            self.runner.reload(config, resolved)
            self._logConfigWarnings(config)
            self._log.info("reloaded {path}: loaded {n} policies", path=self.options.get("config"),
                           n=len(config.policies))
            return config

        def failed(f):
            from ikedtx.config.errors import ConfigError

            f.trap(C.amp.RemoteAmpError, ValueError)
            raise ConfigError([f.getErrorMessage()])

        return d.addCallback(fetch).addCallbacks(apply, failed)

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

from ikedtx.kernel.interfaces import IKernel
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


@implementer(IKernel)
class RemoteKernel:
    """
    An L{IKernel} whose operations are AMP commands to the parent, which
    holds the real provider (its C{name}).

    @ivar channel: the L{ParentChannel}.
    @ivar events: the L{IDatapathEvents} receiver of the parent's events.
    """

    routes = None

    def __init__(self, name, channel=None, addressInterface="lo"):
        self.name = name
        self.channel = channel
        self.events = None
        self.addressInterface = addressInterface
        self.localAddresses = Counter()
        self.addressesWaiting = None

    def setEventReceiver(self, receiver):
        self.events = receiver

    def virtualAddressInterface(self):
        """
        Where the parent's datapath puts a virtual address no C{iface}
        places (L{ikedtx.kernel.vips.interfaceFor}).
        """
        return self.addressInterface

    def _call(self, command, **arguments):
        return self.channel.callRemote(command, **arguments)

    def _locals(self, sa):
        return {address for address in (hostSelector(ours) for ours, _theirs in sa.selectors) if address is not None}

    def _forget(self, sa):
        for address in self._locals(sa):
            self.localAddresses[address] -= 1
            if self.localAddresses[address] <= 0:
                del self.localAddresses[address]

    def allocateSpi(self, protocol, source, destination):
        d = self._call(C.AllocateSpi, protocol=protocol, source=str(source), destination=str(destination))
        return d.addCallback(lambda answer: answer["spi"])

    def addSA(self, sa):
        d = self._call(C.AddSA, sa=R.encode(R.saToPlain(sa)))
        addresses = self._locals(sa)
        self.localAddresses.update(addresses)
        if addresses and self.addressesWaiting is not None:
            # After the SA, before its flows (L{RemoteAddresses}).
            self.addressesWaiting.localSent(addresses)
        return d

    def updateSA(self, old, new):
        self._forget(old)
        self.localAddresses.update(self._locals(new))
        return self._call(C.UpdateSA, old=R.encode(R.saToPlain(old)), new=R.encode(R.saToPlain(new)))

    def deleteSA(self, sa):
        self._forget(sa)
        return self._call(C.DeleteSA, sa=R.encode(R.saToPlain(sa)))

    def detachSA(self, sa):
        self._forget(sa)
        return self._call(C.DetachSA, sa=R.encode(R.saToPlain(sa)))

    def querySA(self, sa):
        d = self._call(C.QuerySA, sa=R.encode(R.saToPlain(sa)))
        return d.addCallback(lambda answer: R.decode(answer["usage"], R.usageFromPlain))

    def addFlow(self, flow):
        return self._call(C.AddFlow, flow=R.encode(R.flowToPlain(flow)))

    def deleteFlow(self, flow):
        return self._call(C.DeleteFlow, flow=R.encode(R.flowToPlain(flow)))

    def blockIPv6(self):
        return self._call(C.BlockIPv6)

    def unblockIPv6(self):
        return self._call(C.UnblockIPv6)

    def flush(self):
        self.localAddresses.clear()
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
        kernel = RemoteKernel(name, addressInterface=self._layout.get("addressInterface") or "lo")
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

    def startService(self):
        IkedService.startService(self)
        if self.kernel.name != "decoupled":
            self.runner.virtualAddresses = RemoteAddresses(self.kernel)
        self.channel.callRemote(C.Ready, pid=os.getpid()).addErrback(lambda f: None)

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

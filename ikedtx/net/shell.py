# -*- test-case-name: tests.test_net_shell -*-
"""
The Twisted shell around the sans-IO core: datagrams in, actions out.

L{IKEDatagramProtocol} sits on each UDP port (IKE on 500, NAT-T on 4500 with
the RFC 3948 non-ESP marker); L{CoreRunner} feeds the core and carries out
what it returns - sending datagrams, arming timers with C{callLater},
installing Child SAs through an L{IKernel}, and firing the Deferreds of
commands such as C{initiate}.
"""

import socket

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from zope.interface import implementer

from ikedtx.kernel.interfaces import IDatapathEvents
from ikedtx.wire.constants import NAT_KEEPALIVE
from ikedtx.wire.errors import ShortDatagram
from ikedtx.wire.natt import NattKind, addNonEspMarker, classifyNattDatagram


class IKEDatagramProtocol:
    """
    The protocol of one UDP port.

    @ivar natt: whether this is a NAT-T port, where IKE messages carry the
        four-byte non-ESP marker and other datagrams are ESP in UDP or
        keepalives (RFC 3948 2.2, 2.3).
    """

    _log = Logger()
    transport = None

    def __init__(self, runner, natt):
        self.runner = runner
        self.natt = natt

    def makeConnection(self, transport):
        self.transport = transport

    def doStart(self):
        pass

    def doStop(self):
        pass

    def packetReceived(self, data, remote, local):
        try:
            if self.natt:
                try:
                    kind, payload = classifyNattDatagram(data)
                except ShortDatagram:
                    self._log.debug("dropped a {size}-byte datagram from {remote} on the NAT-T port", size=len(data), remote=remote)
                    return
                if kind == NattKind.KEEPALIVE:
                    return
                if kind == NattKind.ESP:
                    self.runner.espReceived(data, remote, local)
                    return
                data = bytes(payload)
            self.runner.datagramReceived(data, local, remote)
        except Exception:
            # Whatever a peer sends, no exception leaves datagramReceived.
            self._log.failure("error handling a datagram from {remote}", remote=remote)


@implementer(IDatapathEvents)
class CoreRunner:
    """
    Runs an L{ikedtx.core.engine.IKECore} in a reactor, and receives the
    datapath's events for it (it is the kernel's event receiver).

    @ivar core: the sans-IO core.
    @ivar kernel: the L{IKernel} Child SAs are installed into.
    @ivar ports: C{{(family, localPort): PacketInfoPort}}.
    @ivar nattPorts: the local port numbers that are NAT-T ports.
    """

    _log = Logger()

    def __init__(self, core, kernel, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.core = core
        self.kernel = kernel
        self.reactor = reactor
        self.ports = {}
        self.nattPorts = set()
        self._timers = {}
        self._requests = {}
        self.espHandler = None
        self.stopped = False
        kernel.setEventReceiver(self)

    def addPort(self, port, natt):
        family = port.addressFamily
        self.ports[(family, port.getHost().port)] = port
        if natt:
            self.nattPorts.add(port.getHost().port)

    # Input

    def datagramReceived(self, data, local, remote):
        self.execute(self.core.datagramReceived(data, local, remote))

    def espReceived(self, data, remote, local):
        if self.espHandler is not None:
            self.espHandler(data, remote, local)

    def initiate(self, policyName):
        """
        Start an IKE SA for C{policyName}; the Deferred fires with the IKE SA
        once it and its first Child SA are up, or fails with a
        L{ikedtx.core.errors.NegotiationFailed}.
        """
        requestId, actions = self.core.initiate(policyName)
        d = Deferred()
        self._requests[requestId] = d
        self.execute(actions)
        return d

    def command(self, method, *args, **kwargs):
        """
        Run a core command that returns C{(requestId, actions)} and return a
        Deferred for its outcome.
        """
        requestId, actions = method(*args, **kwargs)
        d = Deferred()
        self._requests[requestId] = d
        self.execute(actions)
        return d

    # Datapath events (IDatapathEvents)

    def acquire(self, reqid, source, destination):
        self.execute(self.core.acquire(reqid, source, destination))

    def expired(self, protocol, spi, destination, hard):
        self.execute(self.core.expired(protocol, spi, destination, hard))

    def addressChanged(self, address, added):
        self.execute(self.core.addressChanged(address, added))

    def _timerExpired(self, key):
        self._timers.pop(key, None)
        self.execute(self.core.timerExpired(key))

    # Output

    def execute(self, actions):
        for action in actions:
            handler = getattr(self, "action_" + type(action).__name__, None)
            if handler is None:
                self._log.error("no handler for core action {action!r}", action=action)
                continue
            try:
                handler(action)
            except Exception:
                self._log.failure("carrying out {action!r} failed", action=action)

    def _portFor(self, local):
        host, port = local
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return self.ports.get((family, port))

    def action_SendDatagram(self, action):
        port = self._portFor(action.local)
        if port is None:
            self._log.warn("no socket for local endpoint {local}; datagram to {remote} dropped", local=action.local, remote=action.remote)
            return
        data = action.data
        if action.local[1] in self.nattPorts:
            data = addNonEspMarker(data)
        port.writeFrom(data, action.remote, action.local[0])

    def sendEsp(self, data, local, remote):
        """
        Send an ESP-in-UDP datagram (RFC 3948: no marker) from the NAT-T
        socket of C{local} (C{(host, port)}) to C{remote}.
        """
        port = self._portFor(local)
        if port is None:
            self._log.debug("no socket for local endpoint {local}; ESP to {remote} dropped", local=local, remote=remote)
            return
        port.writeFrom(data, remote, local[0])

    def action_SendNatKeepalive(self, action):
        port = self._portFor(action.local)
        if port is not None:
            port.writeFrom(NAT_KEEPALIVE, action.remote, action.local[0])

    def action_SetTimer(self, action):
        if self.stopped:
            return
        old = self._timers.pop(action.key, None)
        if old is not None and old.active():
            old.cancel()
        self._timers[action.key] = self.reactor.callLater(action.delay, self._timerExpired, action.key)

    def action_CancelTimer(self, action):
        call = self._timers.pop(action.key, None)
        if call is not None and call.active():
            call.cancel()

    def action_AllocateSpi(self, action):
        token = action.token
        d = self.kernel.allocateSpi(action.protocol, action.source, action.destination)
        d.addCallbacks(lambda spi: self.execute(self.core.spiAllocated(token, spi)),
                       lambda reason: self.execute(self.core.spiAllocationFailed(token, reason.value)))
        d.addErrback(lambda f: self._log.failure("after allocating an SPI", f))

    def action_InstallChildSA(self, action):
        reqid = action.reqid
        ds = [self.kernel.addSA(sa) for sa in action.sas] + [self.kernel.addFlow(flow) for flow in action.flows]
        d = gatherResults(ds, consumeErrors=True)

        def installed(_):
            self.execute(self.core.childInstalled(reqid))

        def failed(reason):
            error = reason.value.subFailure.value if hasattr(reason.value, "subFailure") else reason.value
            self._log.error("installing Child SA {reqid} failed: {error}", reqid=reqid, error=error)
            self.execute(self.core.installFailed(reqid, error))

        d.addCallbacks(installed, failed)
        d.addErrback(lambda f: self._log.failure("after installing Child SA {reqid}", f, reqid=reqid))

    def action_RemoveChildSA(self, action):
        for sa in action.sas:
            self.kernel.deleteSA(sa).addErrback(lambda f: self._log.failure("removing SA", f))
        for flow in action.flows:
            self.kernel.deleteFlow(flow).addErrback(lambda f: self._log.failure("removing flow", f))

    def action_QuerySAUsage(self, action):
        token = action.token
        ds = [self.kernel.querySA(sa).addErrback(lambda f: None) for sa in action.sas]
        d = gatherResults(ds)
        d.addCallback(lambda usages: self.execute(self.core.usageReported(token, usages)))
        d.addErrback(lambda f: self._log.failure("after querying SA usage", f))

    def action_IKESAUp(self, action):
        # The core logs the state change; this is the hook for monitoring.
        pass

    def action_IKESADown(self, action):
        pass

    def action_RequestDone(self, action):
        d = self._requests.pop(action.requestId, None)
        if d is None:
            return
        if action.error is not None:
            d.errback(action.error)
        else:
            d.callback(action.result)

    def stop(self):
        """
        Cancel every timer and arm no new one (the service is stopping).
        """
        self.stopped = True
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()

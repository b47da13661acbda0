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
import struct

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from zope.interface import implementer

from ikedtx.auth import eapbackend
from ikedtx.kernel import vips
from ikedtx.kernel.interfaces import IDatapathEvents, KernelError
from ikedtx.net.timers import KeyedTimers
from ikedtx.wire.constants import NAT_KEEPALIVE, NON_ESP_MARKER, NotifyType
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

    def packetsReceived(self, batch):
        """
        The datagrams one read of the port found (C{(data, remote, local)}
        each): those of peers we know (a known SPI, an IKE_SA_INIT with a
        COOKIE, ESP) first, then new IKE_SA_INIT requests without a COOKIE,
        what a flood of spoofed requests is made of, each class in the
        order it came. The new requests wait for the reactor's next turn
        (L{CoreRunner.answerLater}): the other ports' datagrams read in the
        same wakeup (IKE_AUTH on the NAT-T port) go first too.
        """
        later = []
        isNew = isNewInitRequest
        offset = 4 if self.natt else 0
        for item in batch:
            if isNew(item[0], offset):
                later.append(item)
            else:
                self.packetReceived(*item)
        if later:
            self.runner.answerLater(self.newRequestsReceived, later)

    def newRequestsReceived(self, items):
        """
        The new IKE_SA_INIT requests of a read (L{packetsReceived}), at the
        reactor's next turn: COOKIEs for those the core answers from its
        quick look, in one go (L{CoreRunner.cookieAnswers}); the others one
        by one, in order.
        """
        try:
            rest = self.runner.cookieAnswers(items, self.natt)
        except Exception:
            self._log.failure("error answering a batch of {n} IKE_SA_INIT requests", n=len(items))
            rest = items
        for item in rest:
            self.packetReceived(*item)

    def packetReceived(self, data, remote, local):
        try:
            if self.natt:
                if len(data) >= 4 and data[:4] != NON_ESP_MARKER:
                    # ESP in UDP, by far the most datagrams a datapath
                    # port sees (RFC 3948 2.2: the SPI is never zero).
                    self.runner.espReceived(data, remote, local)
                    return
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


_ZERO_SPI = bytes(8)
#: The COOKIE Notify's type, as it is on the wire.
_COOKIE_TYPE = struct.pack("!H", NotifyType.COOKIE)


def isNewInitRequest(data, offset=0):
    """
    Whether C{data} (past C{offset} bytes: the NAT-T port's non-ESP marker)
    looks like the first IKE_SA_INIT request of a new peer: exchange
    IKE_SA_INIT, no responder SPI, and no COOKIE Notify as its first
    payload. A cheap look at fixed offsets, for ordering only (whatever it
    says, the datagram is handled in full later).
    """
    if len(data) < offset + 36 or data[offset + 18] != 34 or data[offset + 19] & 0x28 != 0x08:
        return False
    if data[offset + 8:offset + 16] != _ZERO_SPI:
        return False
    return not (data[offset + 16] == 41 and data[offset + 34:offset + 36] == _COOKIE_TYPE)


@implementer(IDatapathEvents)
class CoreRunner:
    """
    Runs an L{ikedtx.core.engine.IKECore} in a reactor, and receives the
    datapath's events for it (it is the kernel's event receiver).

    @ivar core: the sans-IO core.
    @ivar kernel: the L{IKernel} Child SAs are installed into.
    @ivar ports: C{{(family, localPort): PacketInfoPort}}.
    @ivar nattPorts: the local port numbers that are NAT-T ports.
    @ivar events: the L{ikedtx.control.events.EventHub} told what happens
        (monitor events, iked's counters), or L{None}.
    @ivar coupled: whether Child SAs go into the datapath (C{ikectl
        couple}); decoupled, they are negotiated and recorded only.
    @ivar trapping: whether the policies' trap flows are kept in the
        datapath (L{startTraps}).
    @ivar traps: the trap flows of the policies in force
        (L{ikedtx.core.trap.trapFlows}); in the datapath while coupled.
    @ivar ipv6Blocked: whether IPv6 is blocked (L{blockIPv6}) while
        coupled.
    @ivar virtualAddresses: the keeper of the virtual addresses on the
        host's interfaces (L{ikedtx.kernel.vips}).
    @ivar wantedAddresses: C{{(address, interface): None}}: the virtual
        addresses the core holds, on their interfaces while coupled.
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
        self._timers = KeyedTimers(reactor, self._timerExpired)
        self._requests = {}
        self.espHandler = None
        self.stopped = False
        self.events = None
        self.coupled = True
        self.virtualAddresses = vips.addressesFor(kernel, True)
        self.wantedAddresses = {}
        self.trapping = False
        self.traps = []
        self.ipv6Blocked = False
        # The L{ikedtx.pki.ocsp.OCSPClient}, made when first needed, and
        # a callable giving the certificates of iked's ocsp/responder.crt it
        # trusts (set by the service, from the credential store).
        self.ocsp = None
        self.ocspResponders = None
        # The L{ikedtx.auth.radiuswire.RadiusWiring} of the configuration
        # (L{configureRadius}), or None.
        self.radius = None
        # C{{(address, port): fd}}: the C{radius dae listen} sockets bound
        # by a privileged parent (L{ikedtx.privsep}), served instead of
        # binding.
        self.daeSockets = {}
        # New IKE_SA_INIT requests read in this turn of the reactor
        # (answerLater) and the call that answers them.
        self._later = []
        self._laterCall = None
        kernel.setEventReceiver(self)

    def answerLater(self, handler, items):
        """
        Call C{handler(items)} (new IKE_SA_INIT requests a read found) at
        the reactor's next turn, after what every port read in this one.
        """
        self._later.append((handler, items))
        if self._laterCall is None and not self.stopped:
            self._laterCall = self.reactor.callLater(0, self._answerLater)

    def _answerLater(self):
        self._laterCall = None
        waiting, self._later = self._later, []
        for handler, items in waiting:
            handler(items)

    def cookieAnswers(self, items, natt):
        """
        Send the COOKIE answers the core gives a batch of C{(data, remote,
        local)} from its quick look (L{IKECore.cookieAnswers}), each from
        the port and address it came to (past the non-ESP marker on a NAT-T
        port, with one on the answer).

        @return: the items the core must handle in full, in order.
        """
        if natt:
            # Only IKE (behind the marker) can be a COOKIE's request.
            marked = [(data[4:], remote, local) for data, remote, local in items if data[:4] == NON_ESP_MARKER]
            if len(marked) != len(items):
                return items
            answers, rest = self.core.cookieAnswers(marked)
            if rest:
                # Back to the datagrams as read, for the full path.
                rest = [(NON_ESP_MARKER + data, remote, local) for data, remote, local in rest]
        else:
            answers, rest = self.core.cookieAnswers(items)
        if answers:
            self._count("ikes_msg_rcvd", len(answers))
            sent = 0
            ports = self.ports
            for cookie, remote, local in answers:
                host = local[0]
                port = ports.get((socket.AF_INET6 if ":" in host else socket.AF_INET, local[1]))
                if port is not None:
                    port.writeFrom(addNonEspMarker(cookie) if natt else cookie, remote, host)
                    sent += 1
            self._count("ikes_msg_sent", sent)
        return rest

    def addPort(self, port, natt):
        family = port.addressFamily
        self.ports[(family, port.getHost().port)] = port
        if natt:
            self.nattPorts.add(port.getHost().port)

    # Input

    def datagramReceived(self, data, local, remote):
        self._count("ikes_msg_rcvd")
        # Under a flood of IKE_SA_INIT, most datagrams are answered here,
        # without an action object or a dispatch each.
        cookie = self.core.cookieAnswer(data, local, remote)
        if cookie is not None:
            port = self._portFor(local)
            if port is not None:
                port.writeFrom(addNonEspMarker(cookie) if local[1] in self.nattPorts else cookie, remote, local[0])
                self._count("ikes_msg_sent")
            return
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
        self._count("ikedtx_acquires")
        self._publish("acquire", detail="reqid %d %s -> %s" % (reqid, _selector(source), _selector(destination)))
        self.execute(self.core.acquire(reqid, source, destination))

    def expired(self, protocol, spi, destination, hard):
        self._count("ikedtx_expires")
        self._publish("expire", spi="%08x" % (spi,), remote=destination, reason="hard" if hard else "soft")
        self.execute(self.core.expired(protocol, spi, destination, hard))

    def addressChanged(self, address, added):
        self.execute(self.core.addressChanged(address, added))
        self.refreshTraps(keepUnreachable=True)

    def _timerExpired(self, key):
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
        self._count("ikes_msg_sent")

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

    def sendEspSegments(self, buffers, size, local, remote):
        """
        Send C{buffers}, ESP packets of C{size} octets (the last at most),
        as that many ESP-in-UDP datagrams in one UDP GSO send from the
        NAT-T socket of C{local} to C{remote}.

        @raise OSError: the host cannot send them so (the caller sends them
            one by one).
        """
        port = self._portFor(local)
        if port is None:
            self._log.debug("no socket for local endpoint {local}; ESP to {remote} dropped", local=local, remote=remote)
            return
        port.writeSegments(buffers, size, remote, local[0])

    def action_SendNatKeepalive(self, action):
        port = self._portFor(action.local)
        if port is not None:
            port.writeFrom(NAT_KEEPALIVE, action.remote, action.local[0])
            self._count("ikes_keepalive_sent")

    def action_SetTimer(self, action):
        if self.stopped:
            return
        self._timers.set(action.key, action.delay)

    def action_CancelTimer(self, action):
        self._timers.cancel(action.key)

    def action_AllocateSpi(self, action):
        token = action.token
        d = self.kernel.allocateSpi(action.protocol, action.source, action.destination)
        d.addCallbacks(lambda spi: self.execute(self.core.spiAllocated(token, spi)),
                       lambda reason: self.execute(self.core.spiAllocationFailed(token, reason.value)))
        d.addErrback(lambda f: self._log.failure("after allocating an SPI", f))

    def action_ReleaseSpi(self, action):
        # Allocated from the datapath coupled or not (action_AllocateSpi).
        self.kernel.deleteSA(action.kernelSA()).addErrback(
            lambda f: self._log.failure("releasing SPI {spi:08x}", f, spi=action.spi))

    def action_CheckCertificateStatus(self, action):
        from ikedtx.pki import ocsp

        if self.ocsp is None:
            self.ocsp = ocsp.OCSPClient(self.reactor, responders=self.ocspResponders)
        token = action.token
        url = ocsp.responderUrl(action.certificate, action.issuer, action.url)
        d = self.ocsp.check(action.certificate, action.issuer, url, action.tolerate, action.maxAge)

        def answered(verdict):
            subject = action.certificate.subject.rfc4514_string()
            if verdict.good:
                self._log.info("OCSP {url}: {subject} is good", url=url, subject=subject)
            else:
                self._log.warn("OCSP {url}: {subject} refused: {status}: {reason}", url=url, subject=subject,
                               status=verdict.status, reason=verdict.reason)
            self.execute(self.core.certificateStatus(token, verdict.good, verdict.reason))

        d.addCallback(answered)
        d.addErrback(lambda f: self._log.failure("after the OCSP status of a certificate", f))

    def action_RunEAP(self, action):
        d = eapbackend.runEAP(action, lambda token, step: self.execute(self.core.eapAnswered(token, step)))
        if d is not None:
            d.addErrback(lambda f: self._log.failure("after an EAP step", f))

    def action_AbortEAP(self, action):
        action.session.abort()

    def action_InstallChildSA(self, action):
        reqid = action.reqid
        if self.coupled:
            ds = [self.kernel.addSA(sa) for sa in action.sas] + [self.kernel.addFlow(flow) for flow in action.flows]
        else:
            ds = []
        d = gatherResults(ds, consumeErrors=True)

        def installed(_):
            self._count("ikes_csa_created")
            self._publish("child-up", **_childFields(action))
            self.execute(self.core.childInstalled(reqid))

        def failed(reason):
            error = reason.value.subFailure.value if hasattr(reason.value, "subFailure") else reason.value
            self._log.error("installing Child SA {reqid} failed: {error}", reqid=reqid, error=error)
            self.execute(self.core.installFailed(reqid, error))

        d.addCallbacks(installed, failed)
        d.addErrback(lambda f: self._log.failure("after installing Child SA {reqid}", f, reqid=reqid))

    def action_RemoveChildSA(self, action):
        self._count("ikes_csa_removed")
        self._publish("child-down", **_childFields(action))
        if not self.coupled:
            return
        counted = (self.radius is not None and action.ikeSPIs is not None and self.radius.accounts(*action.ikeSPIs))
        for sa in action.sas:
            if counted:
                # RADIUS accounting's Stop carries the datapath's counters:
                # read them before the SA goes.
                usage = self.kernel.querySA(sa)
                self.radius.childUsage(*action.ikeSPIs, sa.inbound, usage)
                usage.addBoth(lambda _, sa=sa: self.kernel.deleteSA(sa))
                usage.addErrback(lambda f: self._log.failure("removing SA", f))
                continue
            self.kernel.deleteSA(sa).addErrback(lambda f: self._log.failure("removing SA", f))
        for flow in action.flows:
            self.kernel.deleteFlow(flow).addErrback(lambda f: self._log.failure("removing flow", f))

    def action_AddVirtualAddress(self, action):
        interface = vips.interfaceFor(self.kernel, action.interface)
        self.wantedAddresses[(action.address, interface)] = None
        if not self.coupled:
            self._log.info("virtual address {address} not put on {interface}: decoupled", address=action.address,
                           interface=interface)
            return
        self._addVirtualAddress(action.address, interface)

    def _addVirtualAddress(self, address, interface):
        try:
            self.virtualAddresses.add(address, interface)
        except KernelError as e:
            self._log.error("{error}", error=e)
            return
        self._log.info("virtual address {address} on {interface}", address=address, interface=interface)

    def action_RemoveVirtualAddress(self, action):
        interface = vips.interfaceFor(self.kernel, action.interface)
        self.wantedAddresses.pop((action.address, interface), None)
        try:
            self.virtualAddresses.remove(action.address, interface)
        except KernelError as e:
            self._log.error("{error}", error=e)

    def action_UpdateChildSA(self, action):
        if not self.coupled:
            return
        for old, new in zip(action.old, action.new):
            self.kernel.updateSA(old, new).addErrback(
                lambda f, reqid=action.reqid: self._log.failure("moving Child SA {reqid}", f, reqid=reqid))
        for old, new in zip(action.oldFlows, action.newFlows):
            if old == new:
                continue
            # The new flow first: the selector is never without a policy.
            self.kernel.addFlow(new).addErrback(self._movingFailed, action.reqid)
            self.kernel.deleteFlow(old).addErrback(self._movingFailed, action.reqid)

    def action_IKESAMoved(self, action):
        """
        The policy's trap flows follow its IKE SA to the new endpoints
        (after its Child SAs' flows moved): each new one goes in before
        the old one goes, and the route follows the tunnel the datapath
        uses. A policy with no trap now keeps the one it had.
        """
        if not self.trapping:
            return
        from ikedtx.core.trap import trapFlows

        moved = trapFlows(self.core, action.policy)
        if not moved:
            return
        reqids = {flow.reqid for flow in moved}
        old = [flow for flow in self.traps if flow.reqid in reqids]
        self.traps = [flow for flow in self.traps if flow.reqid not in reqids] + moved
        if not self.coupled:
            return
        for flow in moved:
            if flow not in old:
                self._logged(self.kernel.addFlow(flow), "no trap flow", flow)
        for flow in old:
            if flow not in moved:
                self._logged(self.kernel.deleteFlow(flow), "removing the trap flow failed:", flow)

    def _movingFailed(self, failure, reqid):
        self._log.error("moving the flows of Child SA {reqid}: {error}", reqid=reqid, error=failure.value)

    def action_QuerySAUsage(self, action):
        token = action.token
        ds = [self.kernel.querySA(sa).addErrback(lambda f: None) for sa in action.sas]
        d = gatherResults(ds)
        d.addCallback(lambda usages: self.execute(self.core.usageReported(token, usages)))
        d.addErrback(lambda f: self._log.failure("after querying SA usage", f))

    def action_IKESAUp(self, action):
        self._count("ikes_sa_established_total")
        if self.radius is not None:
            ikeSA = self.core.ikeSAs.get(action.spiR) or self.core.ikeSAs.get(action.spiI)
            if ikeSA is not None:
                self.radius.up(action.spiI, action.spiR, ikeSA)
        self._publish("ike-up", spiI=action.spiI.hex(), spiR=action.spiR.hex(), policy=action.policy,
                      local="%s:%d" % tuple(action.local), remote="%s:%d" % tuple(action.remote), peerId=action.peerId)

    def action_IKESADown(self, action):
        fields = dict(spiI=action.spiI.hex(), spiR=action.spiR.hex(), policy=action.policy,
                      remote="%s:%d" % tuple(action.remote), reason=action.reason)
        self._count("ikes_sa_removed")
        if self.radius is not None:
            from ikedtx.auth import radius

            cause = radius.TERMINATE_ADMIN_RESET if action.reason == self.DAE_REASON else radius.TERMINATE_USER_REQUEST
            self.radius.down(action.spiI, action.spiR, cause)
        if not action.established:
            self._count("ikes_sa_established_failures")
            if self.events is not None:
                self.events.stats.failed(action.cause)
        if action.cause == "auth":
            self._count("ikedtx_auth_failures")
            self._publish("auth-failed", **fields)
        elif action.cause == "timeout":
            self._count("ikes_retransmit_limit")
            self._publish("retransmit-limit", **fields)
        self._publish("ike-down", detail=action.cause, **fields)

    def action_IKESARekeyed(self, action):
        if self.radius is not None:
            self.radius.rekeyed(action.oldSpiI, action.oldSpiR, action.spiI, action.spiR)
        self._publish("ike-rekeyed", spiI=action.spiI.hex(), spiR=action.spiR.hex(), oldSpiI=action.oldSpiI.hex(),
                      oldSpiR=action.oldSpiR.hex(), policy=action.policy, remote="%s:%d" % tuple(action.remote))

    def action_ChildSARekeyed(self, action):
        self._publish("child-rekeyed", spi="%08x" % (action.spiIn,), oldSpi="%08x" % (action.oldSpiIn,),
                      policy=action.policy, remote="%s:%d" % tuple(action.remote),
                      detail="reqid %d spi out %08x, was %08x" % (action.reqid, action.spiOut or 0,
                                                                  action.oldSpiOut or 0))

    # Monitoring (ikectl monitor, show stats)

    def _count(self, name, n=1):
        if self.events is not None:
            self.events.stats.count(name, n)

    def _publish(self, kind, **fields):
        if self.events is not None:
            self.events.publish(kind, **fields)

    # ikectl couple / decouple

    def installedChildren(self):
        """
        The Child SAs the core has handed to the datapath: C{(ikeSA,
        child)} pairs.
        """
        return [(ikeSA, child) for ikeSA in list(self.core.ikeSAs.values()) for child in ikeSA.children
                if child.kernelRecords is not None]

    def couple(self):
        """
        Put every Child SA's SAs and flows into the datapath, and the
        future ones as they come, with the IPv6 block, the trap flows and
        the virtual addresses decouple took out (or the core received
        meanwhile); a Deferred that fires when the datapath has
        them.
        """
        if self.coupled:
            return gatherResults([])
        self.coupled = True
        # The addresses first: a flow's route may take one as its source
        # (decouple takes them out last).
        for address, interface in self.wantedAddresses:
            self._addVirtualAddress(address, interface)
        ds = [self.kernel.blockIPv6()] if self.ipv6Blocked else []
        for ikeSA, child in self.installedChildren():
            sas, flows = child.kernelRecords
            ds += [self.kernel.addSA(sa) for sa in sas] + [self.kernel.addFlow(flow) for flow in flows]
        ds += [self.kernel.addFlow(flow) for flow in self.traps]
        return gatherResults(ds, consumeErrors=True)

    def decouple(self):
        """
        Take every Child SA's SAs and flows out of the datapath, and the
        trap flows, their routes, the IPv6 block and the virtual addresses
        with them; from now on
        Child SAs are negotiated and recorded only (iked's C{set
        decouple}).
        """
        if not self.coupled:
            return gatherResults([])
        self.coupled = False
        ds = []
        for ikeSA, child in self.installedChildren():
            sas, flows = child.kernelRecords
            # Detached, not deleted: couple puts them back with their
            # sequence numbers, which the peer's replay window expects.
            ds += [self.kernel.detachSA(sa) for sa in sas] + [self.kernel.deleteFlow(flow) for flow in flows]
        ds += [self.kernel.deleteFlow(flow) for flow in self.traps]
        if self.ipv6Blocked:
            ds.append(self.kernel.unblockIPv6())
        for address, interface in self.wantedAddresses:
            try:
                self.virtualAddresses.remove(address, interface)
            except KernelError as e:
                self._log.error("{error}", error=e)
        return gatherResults(ds, consumeErrors=True)

    # The datapath's standing state: the IPv6 block and the trap flows

    def blockIPv6(self):
        """
        Block IPv6 no flow covers (iked's default unless C{-6}), now if
        coupled and whenever coupled again; a Deferred.
        """
        self.ipv6Blocked = True
        if not self.coupled:
            return gatherResults([])
        return self.kernel.blockIPv6()

    def startTraps(self):
        """
        Keep the trap flows of the core's policies (L{ikedtx.core.trap}) in
        the datapath from now on; a Deferred.
        """
        self.trapping = True
        return self.refreshTraps()

    def reload(self, config, resolved=None):
        """
        Put C{config} in force in the core (L{IKECore.reload}) and its trap
        flows in the datapath; a Deferred for the traps.
        """
        self.execute(self.core.reload(config, resolved))
        self.configureRadius(config)
        return self.refreshTraps()

    def configureRadius(self, config):
        """
        Make (or keep, if its C{radius} lines did not change) the RADIUS
        clients of C{config}, give the core their EAP backend and log the
        C{eap "radius"} policies without a server.  The RADIUS modules are
        imported only for a configuration that has RADIUS.
        """
        settings = config.radius
        if self.radius is None and not (settings.servers or settings.accountingServers or settings.daeListen or
                                        any(p.auth.eapRadius for p in config.policies)):
            self.core.radiusBackend = None
            return
        from ikedtx.auth import radiuswire

        for problem in radiuswire.configProblems(config):
            self._log.error("{problem}", problem=problem)
        if self.radius is None:
            if config.radius.servers or config.radius.accountingServers or config.radius.daeListen:
                self.radius = radiuswire.RadiusWiring(config.radius, self.reactor,
                                                      dae=(self._daeSessions, self._daeDisconnect),
                                                      daeSockets=self.daeSockets)
        else:
            self.radius = self.radius.replaced(config.radius)
        self.core.radiusBackend = self.radius.backend if self.radius is not None else None

    #: The IKE SA deletion reason of a RADIUS Disconnect-Request (its
    #: accounting Stop says Admin-Reset).
    DAE_REASON = "disconnect requested"

    def _daeSessions(self):
        """
        The IKE SAs up, as a RADIUS Disconnect-Request can name them
        (L{ikedtx.auth.dae}).
        """
        from ikedtx.auth.dae import DAESession

        return [DAESession(ikeSA.spiI, ikeSA.spiR, ikeSA.eapIdentity, ikeSA.peerVirtualIPs, ikeSA)
                for ikeSA in list(self.core.ikeSAs.values()) if ikeSA.isEstablished]

    def _daeDisconnect(self, ikeSA):
        if self.core.ikeSAs.get(ikeSA.localSPI) is not ikeSA:
            return
        _, actions = self.core.deleteIKESA(ikeSA, self.DAE_REASON)
        self.execute(actions)

    def refreshTraps(self, keepUnreachable=False):
        """
        Bring the trap flows in line with the core's policies: a new
        policy's trap goes in before a removed one's leaves (a policy whose
        selectors changed is never without one). A trap the datapath
        refuses is logged; the Deferred fires when all are done.

        @param keepUnreachable: after a change of the host's addresses, a
            policy with no local address to reach its peer from now keeps
            the trap it had (the others follow the host's new address).
        """
        if not self.trapping:
            return gatherResults([])
        from ikedtx.core.trap import trapFlows

        old, self.traps = self.traps, trapFlows(self.core)
        if keepUnreachable:
            reqids = {flow.reqid for flow in self.traps}
            self.traps += [flow for flow in old if flow.reqid not in reqids]
        if not self.coupled:
            return gatherResults([])
        ds = [self._logged(self.kernel.addFlow(flow), "no trap flow", flow) for flow in self.traps if flow not in old]
        ds += [self._logged(self.kernel.deleteFlow(flow), "removing the trap flow failed:", flow)
               for flow in old if flow not in self.traps]
        return gatherResults(ds)

    def _logged(self, d, what, flow):
        return d.addErrback(lambda f: self._log.warn("{what} {source} -> {destination}: {error}", what=what,
                                                     source=_selector(flow.source),
                                                     destination=_selector(flow.destination), error=f.value))

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
        if self._laterCall is not None and self._laterCall.active():
            self._laterCall.cancel()
        self._laterCall = None
        self._later = []
        if self.radius is not None:
            self.radius.stop()
        self._timers.stop()


def _selector(selector):
    start, end = getattr(selector, "startAddress", selector), getattr(selector, "endAddress", None)
    if end is None or end == start:
        return str(start)
    return "%s-%s" % (start, end)


def _childFields(action):
    """
    A Child SA's monitor fields from the records of an install or removal.
    """
    inbound = [sa for sa in action.sas if sa.inbound]
    outbound = [sa for sa in action.sas if not sa.inbound]
    fields = {"detail": "reqid %d" % (action.reqid,)}
    if inbound:
        fields["spi"] = "%08x" % (inbound[0].spi,)
        fields["local"] = str(inbound[0].destination)
        fields["remote"] = str(inbound[0].source)
    if outbound:
        fields["detail"] += " spi out %08x" % (outbound[0].spi,)
    return fields

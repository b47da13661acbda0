# -*- test-case-name: tests.test_auth_radiuswire -*-
"""
The RADIUS of one configuration, for the shell (L{ikedtx.net.shell}).

L{RadiusWiring} makes the clients of the configuration's C{radius server}
and C{radius accounting server} lines once (at start and at each reload
that changes them, never per IKE SA), listens for their answers, gives the
core the L{RadiusEAPBackend} of C{eap "radius"} policies and sends
Accounting Start when an IKE SA authenticated through RADIUS comes up,
Stop when it goes (a rekeyed IKE SA keeps its accounting session), and
serves the C{radius dae} lines' Dynamic Authorization
(L{ikedtx.auth.dae}).

L{configProblems} names the C{eap "radius"} policies without a RADIUS
server, for the log at start and reload (their peers are refused with
AUTHENTICATION_FAILED, L{ikedtx.core.tasks.eap.startR}).
"""

import ipaddress
import socket

from twisted.internet import defer
from twisted.logger import Logger

from ikedtx.auth import radius

_log = Logger()


def configProblems(config):
    """
    @return: a list of messages, one per C{eap "radius"} policy of C{config}
        without a C{radius server} line.
    """
    if config.radius.servers:
        return []
    return ['policy %s uses eap "radius" and no radius server is configured: its peers will be refused' % (p.name,)
            for p in config.policies if p.auth.eapRadius]


def _listen(reactor, client):
    interface = "::" if any(":" in server.host for server in client.servers) else ""
    return reactor.listenUDP(0, client, interface=interface)


class RadiusWiring:
    """
    The RADIUS clients, EAP backend and accounting of one configuration.

    @ivar settings: the L{ikedtx.config.model.RadiusSettings} in force.
    @ivar backend: the L{radius.RadiusEAPBackend}, or L{None} without
        C{radius server}.
    @ivar accounting: the L{radius.RadiusAccounting}, or L{None} without
        C{radius accounting server}.
    @ivar sessions: C{{(spiI, spiR): AccountingSession}} of the IKE SAs up
        whose Start was sent.
    """

    def __init__(self, settings, reactor, nasIdentifier="ikedtx", dae=None, daeSockets=None):
        """
        @param dae: C{(sessions, disconnect)} for the C{radius dae}
            servers (L{ikedtx.auth.dae.DynamicAuthorizationServer}), or
            L{None}: no DAE.
        @param daeSockets: C{{(address, port): fd}}, bound UDP sockets of
            C{radius dae listen} lines (a privilege-separated worker's,
            bound by the parent: a port below 1024 needs root); each is
            served through a duplicate (the reactor dups it), the descriptor
            stays open. The other lines are bound here.
        """
        self.settings = settings
        self.reactor = reactor
        self.nasIdentifier = nasIdentifier
        self.backend = None
        self.accounting = None
        self.daeServers = []
        self._dae = dae
        self._daeSockets = daeSockets if daeSockets is not None else {}
        self.sessions = {}
        # (spiI, spiR) -> Deferreds of the Child SAs' counters still asked.
        self._usage = {}
        self._ports = []
        authClient, acctClient = radius.clientsFor(settings, reactor)
        if authClient is not None:
            self._ports.append(_listen(reactor, authClient))
            self.backend = radius.RadiusEAPBackend(authClient, nasIdentifier, configMaps=settings.configMaps)
        if acctClient is not None:
            self._ports.append(_listen(reactor, acctClient))
            self.accounting = radius.RadiusAccounting(acctClient, nasIdentifier)
        if dae is not None:
            self._serveDAE(*dae)

    def _serveDAE(self, sessions, disconnect):
        """
        Listen on each C{radius dae listen on} address for the C{radius dae
        client}s' Disconnect-Requests. A socket that cannot be bound is
        logged; the others serve.
        """
        from twisted.internet.error import CannotListenError

        from ikedtx.auth import dae

        clients = {client.address: client.secret for client in self.settings.daeClients}
        if self.settings.daeListen and not clients:
            _log.warn("radius dae listen without a radius dae client line: every request will be dropped")
        for address, port in self.settings.daeListen:
            server = dae.DynamicAuthorizationServer(clients, sessions, disconnect, radius.radiusDictionary(),
                                                    self.nasIdentifier)
            fd = self._daeSockets.get((str(address), port))
            try:
                if fd is not None:
                    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
                    self._ports.append(self.reactor.adoptDatagramPort(fd, family, server))
                else:
                    self._ports.append(self.reactor.listenUDP(port, server, interface=str(address)))
            except CannotListenError as e:
                _log.error("radius dae listen on {address} port {port}: {error}", address=address, port=port,
                           error=e)
                continue
            _log.info("RADIUS DAE listening on {address} port {port}", address=address, port=port)
            self.daeServers.append(server)

    def __repr__(self):
        return "<RadiusWiring backend=%s accounting=%s %d sessions>" % (
            self.backend is not None, self.accounting is not None, len(self.sessions))

    def replaced(self, settings):
        """
        The wiring for a reloaded configuration's C{settings}: this one if
        they did not change, else a new one (this one stops listening; the
        accounting sessions of the IKE SAs up move over).
        """
        if settings == self.settings:
            return self
        # The sockets go first: the new wiring may listen on the same DAE
        # address and port.
        self.stop()
        new = RadiusWiring(settings, self.reactor, self.nasIdentifier, self._dae, self._daeSockets)
        new.sessions = self.sessions
        new._usage = self._usage
        return new

    def stop(self):
        for port in self._ports:
            port.stopListening()
        self._ports = []

    def up(self, spiI, spiR, ikeSA):
        """
        An IKE SA came up: Accounting Start if it authenticated through
        RADIUS and accounting servers are configured.

        @return: the Deferred of the Start, or L{None}.
        """
        state = getattr(ikeSA, "eap", None)
        session = getattr(state, "session", None)
        if self.accounting is None or not isinstance(session, radius.RadiusEAPSession):
            return None
        framed = None
        for address in getattr(ikeSA, "peerVirtualIPs", None) or ():
            try:
                if ipaddress.ip_address(str(address)).version == 4:
                    framed = str(address)
                    break
            except ValueError:
                continue
        nasAddress = None
        try:
            local = ipaddress.ip_address(str(ikeSA.local[0]))
            if local.version == 4:
                nasAddress = str(local)
        except (AttributeError, TypeError, ValueError):
            pass
        record = radius.AccountingSession(
            radius.sessionIdFor(spiI, spiR), session.userName or str(ikeSA.peerId), framedAddress=framed,
            callingStationId=str(ikeSA.remote[0]), classAttributes=session.classAttributes, nasAddress=nasAddress)
        self.sessions[(spiI, spiR)] = record
        self._usage[(spiI, spiR)] = []
        return self._logged(self.accounting.start(record), "Start", record)

    def rekeyed(self, oldSpiI, oldSpiR, spiI, spiR):
        """
        An IKE SA was rekeyed: its accounting session (same Acct-Session-Id)
        now belongs to the new SPIs, so the old SA's going sends no Stop
        and the new one's does.
        """
        record = self.sessions.pop((oldSpiI, oldSpiR), None)
        if record is not None:
            self.sessions[(spiI, spiR)] = record
            self._usage[(spiI, spiR)] = self._usage.pop((oldSpiI, oldSpiR), [])

    def accounts(self, spiI, spiR):
        """
        Whether the IKE SA of these SPIs has an accounting session (the
        shell then asks the datapath for its Child SAs' counters before
        removing them, L{childUsage}).
        """
        return self.accounting is not None and (spiI, spiR) in self.sessions

    def childUsage(self, spiI, spiR, inbound, usage):
        """
        The datapath's counters of an IPsec SA of the IKE SA's Child SA
        being removed: C{usage}, a Deferred of a L{KernelSAUsage}, counted
        as input (C{inbound}) or output; the Stop waits for it. A query that
        fails is logged and leaves the counters out.
        """
        record = self.sessions.get((spiI, spiR))
        if record is None:
            return

        def counted(result):
            if result is not None:
                record.addUsage(inbound, result.bytes, result.packets)

        def failed(failure):
            _log.info("RADIUS accounting {sid}: no counters for an SA: {why}", sid=record.sessionId,
                      why=failure.getErrorMessage())

        done = usage.addCallbacks(counted, failed)
        self._usage.setdefault((spiI, spiR), []).append(done)

    def down(self, spiI, spiR, cause=radius.TERMINATE_USER_REQUEST):
        """
        An IKE SA went: Accounting Stop if its Start was sent.

        @return: the Deferred of the Stop, or L{None}.
        """
        record = self.sessions.pop((spiI, spiR), None)
        pending = self._usage.pop((spiI, spiR), [])
        if record is None or self.accounting is None:
            return None
        # The counters of the Child SAs removed with it come first.
        d = defer.DeferredList(pending, consumeErrors=True) if pending else defer.succeed(None)
        d.addCallback(lambda _: self.accounting.stop(record, cause=cause))
        return self._logged(d, "Stop", record)

    def _logged(self, d, what, record):
        d.addErrback(lambda f: _log.failure("RADIUS accounting {what} for {sid}", f, what=what, sid=record.sessionId))
        return d

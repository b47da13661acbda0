# -*- test-case-name: tests.test_service -*-
"""
The daemon as a Twisted service: the UDP ports, the control socket, the
configuration, the kernel provider and the core, started and stopped
together.

L{IkedService} is a L{MultiService}: it builds the core when it starts,
then starts its children in order - one L{IKEPortService} per address and
port, the L{ControlSocketService}, then L{ReloadOnHangup} (SIGHUP reloads
the configuration) - and stops them in reverse order after the core has
said goodbye to its peers.  A child that cannot start
raises L{StartupError}, whose message is the one line the user sees.
"""

import errno
import json
import os
import socket
import stat
import sys
from ipaddress import ip_address

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from ikedtx.control.events import EventHub
from ikedtx.config.hosts import resolvePolicyNames, resolvePolicyNamesLater
from ikedtx.core.engine import IKECore
from ikedtx.core.retransmit import RetransmitSchedule
from ikedtx.core.settings import NATT_DISABLED, NATT_NORMAL, NATT_ONLY, CoreSettings
from ikedtx.net.gcpolicy import FreezePolicy
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol
from ikedtx.net.udp import checkUDPPort, listenUDPWithPacketInfo
from ikedtx.wire.constants import EncrId, IntegId, nameOf


def sourceAddressFor(peer, port=500):
    """
    The local address the kernel would send from to reach C{peer}: a UDP
    socket connected there (no packet is sent) knows it.
    """
    family = socket.AF_INET6 if ip_address(peer).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((str(peer), port))
        return s.getsockname()[0]


def keyLogger(path, log, opener=None):
    """
    A core C{keyLog} callback that appends one JSON object per IKE SA to
    C{path}: its SPIs, transforms and SK_e/SK_a keys, for tshark's IKEv2
    decryption table. For tests only; the keys are secrets.
    """

    def record(ikesa):
        encr, integ = ikesa.proposal.encryption, ikesa.proposal.integrity
        keys = ikesa.keys
        entry = {
            "spiI": ikesa.spiI.hex(), "spiR": ikesa.spiR.hex(),
            "encryption": nameOf(EncrId, encr.id), "keyLength": encr.keyLength,
            "integrity": nameOf(IntegId, integ.id) if integ is not None else None,
            "sk_ei": bytes(keys.skEi).hex(), "sk_er": bytes(keys.skEr).hex(),
            "sk_ai": bytes(keys.skAi).hex(), "sk_ar": bytes(keys.skAr).hex(),
        }
        if opener is not None:
            f = opener()
            f.write(json.dumps(entry) + "\n")
            f.flush()
        else:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(json.dumps(entry) + "\n")
        log.debug("IKE SA {spiI}/{spiR}: keys written to the key log {path}", spiI=entry["spiI"], spiR=entry["spiR"],
                  path=path)

    return record


def _decoupled():
    from ikedtx.kernel.decoupled import DecoupledKernel

    return DecoupledKernel()


def _xfrm():
    from ikedtx.kernel.xfrm import XfrmKernel

    return XfrmKernel()


def _userspace():
    from ikedtx.kernel.userspace import UserspaceKernel

    return UserspaceKernel(outboundThread=True, inboundThread=True)


#: The L{IKernel} providers this ikedtx has, by C{--kernel} name.
KERNEL_PROVIDERS = {"decoupled": _decoupled, "xfrm": _xfrm, "userspace": _userspace}


def makeKernel(name):
    """
    The L{IKernel} provider called C{name}.
    """
    return KERNEL_PROVIDERS[name]()


def localKeyProblem(credentials, config):
    """
    Why the daemon cannot start with the local key of C{credentials}, or
    L{None}: private/local.key is there but unusable (its mode, its content,
    a weak key) while a policy of C{config} authenticates with it.
    """
    from ikedtx.auth.keys import SIGNATURE_METHODS

    needing = [p.name for p in config.policies if p.auth.method in SIGNATURE_METHODS or p.auth.method == "eap"]
    if not needing:
        return None
    path = os.path.join(credentials.root, "private", "local.key")
    for errorPath, reason in credentials.loadErrors:
        if errorPath == path:
            return "%s: %s; policy %s needs it" % (path, reason, needing[0])
    return None


def _checkXfrm():
    from ikedtx.kernel.probe import probeXfrmEsp

    probeXfrmEsp()


def _checkUserspace():
    from ikedtx.kernel.probe import probeTun

    probeTun()


#: What is tried before start-up to know that a provider will work here (a
#: provider without an entry is made once instead).
KERNEL_CHECKS = {"xfrm": _checkXfrm, "userspace": _checkUserspace}


def checkKernel(name):
    """
    Check that the L{IKernel} provider C{name} can run on this host.

    @raise StartupError: it cannot; one line that says why (the kernel's
        own reason).
    """
    from ikedtx.kernel.probe import DatapathUnusable

    try:
        check = KERNEL_CHECKS.get(name)
        if check is not None:
            check()
        else:
            makeKernel(name)
    except DatapathUnusable as e:
        raise StartupError("the %s kernel provider cannot be used: %s" % (name, e))
    except Exception as e:
        raise StartupError("the %s kernel provider cannot be used: %s" % (name, getattr(e, "strerror", None) or e))


#: The daemon's exit status once its reactor stopped: 1 when an error
#: ended a running daemon (a privilege-separated worker that cannot install
#: its system call filter), else 0.
exitStatus = 0


class StartupError(Exception):
    """
    The daemon cannot start; the message is one line for the user
    (C{cannot bind 127.0.0.1:500: Address already in use}).
    """


def _cannotBind(address, port, error):
    reason = getattr(error, "socketError", error)
    reason = getattr(reason, "strerror", None) or str(reason)
    return StartupError("cannot bind %s:%d: %s" % (address, port, reason))


class IKEPortService(Service):
    """
    One UDP port, IKE or NAT-T, on one local address, feeding the parent
    L{IkedService}'s runner.

    @ivar address: the local address (C{"0.0.0.0"}, C{"::"} or one address).
    @ivar portNumber: the UDP port number.
    @ivar natt: whether this is the NAT-T port (non-ESP marker, ESP in UDP).
    @ivar port: the listening L{PacketInfoPort} while running, else L{None}.
    """

    _log = Logger()

    def __init__(self, address, portNumber, natt, reactor):
        self.address = address
        self.portNumber = portNumber
        self.natt = natt
        self.reactor = reactor
        self.port = None
        self.setName("%s port %s:%d" % ("NAT-T" if natt else "IKE", address, portNumber))

    def check(self):
        """
        Before start-up (before twistd forks): fail now with
        L{StartupError} if the port cannot be bound.
        """
        try:
            checkUDPPort(self.reactor, self.portNumber, self.address)
        except CannotListenError as e:
            raise _cannotBind(self.address, self.portNumber, e)

    def startService(self):
        runner = self.parent.runner
        try:
            self.port = listenUDPWithPacketInfo(self.reactor, self.portNumber, IKEDatagramProtocol(runner, self.natt),
                                                self.address)
        except CannotListenError as e:
            raise _cannotBind(self.address, self.portNumber, e)
        Service.startService(self)
        if self.parent.kernel.name == "xfrm":
            # IKE itself must pass the kernel's policies unprotected, and
            # the NAT-T port takes ESP in UDP for the kernel (RFC 3948).
            from ikedtx.kernel.xfrm import bypassSocket, enableEspInUdp

            bypassSocket(self.port.socket)
            if self.natt:
                enableEspInUdp(self.port.socket)
        elif self.parent.kernel.name == "userspace":
            # The IPv6 block of the user-space datapath is made of XFRM
            # policies too (where the kernel has XFRM).
            from ikedtx.kernel.xfrm import bypassSocket

            try:
                bypassSocket(self.port.socket)
            except OSError as e:
                self._log.debug("no XFRM bypass for {address} port {port}: {error}", address=self.address,
                                port=self.portNumber, error=e)
        runner.addPort(self.port, self.natt)
        self._log.info("listening on {address} port {port}{natt}", address=self.address, port=self.port.getHost().port,
                       natt=" (NAT-T)" if self.natt else "")

    def stopService(self):
        Service.stopService(self)
        port, self.port = self.port, None
        if port is not None:
            return defer.maybeDeferred(port.stopListening)


# The longest path a sockaddr_un holds (108 bytes with the final NUL).
_MAX_UNIX_PATH = 107


def prepareSocketPath(path):
    """
    Make C{path} ready for a control socket to be bound there: a stale
    socket (nobody accepts on it) is removed; a live one, a path that is
    not a socket, a missing directory or a path too long for a socket is a
    L{StartupError}.  A live socket is never removed.
    """
    if len(os.fsencode(path)) > _MAX_UNIX_PATH:
        raise StartupError("control socket %s: path too long (at most %d bytes)" % (path, _MAX_UNIX_PATH))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StartupError("control socket %s: no directory %s" % (path, directory))
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise StartupError("control socket %s: %s" % (path, e.strerror))
    if not stat.S_ISSOCK(mode):
        raise StartupError("control socket %s: exists and is not a socket" % (path,))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        # Nobody accepts there: what a daemon that died left behind.
        os.unlink(path)
        return
    except OSError as e:
        if e.errno == errno.EAGAIN:
            # Its backlog is full: somebody is listening.
            raise StartupError("control socket %s is in use by another iked" % (path,))
        raise StartupError("control socket %s: %s" % (path, e.strerror or e))
    finally:
        probe.close()
    raise StartupError("control socket %s is in use by another iked" % (path,))


class ControlSocketService(Service):
    """
    The AMP control socket (C{/var/run/iked.sock}, C{-s}), mode 0600, for
    the parent L{IkedService}; or, with C{readOnly}, the socket of the show
    commands and monitor (C{--ro-socket}), mode 0666.

    @ivar path: the socket's path.
    @ivar readOnly: whether it serves only what reads.
    @ivar listening: the listening port while running, else L{None}.
    """

    _log = Logger()

    def __init__(self, path, reactor, readOnly=False):
        self.path = path
        self.reactor = reactor
        self.readOnly = readOnly
        self.listening = None
        self.setName("read-only control socket" if readOnly else "control socket")

    def check(self):
        """
        Before start-up: fail now with L{StartupError} if the socket cannot
        be bound at L{path} (a stale socket is removed).
        """
        prepareSocketPath(self.path)

    def startService(self):
        from ikedtx.control.server import ControlFactory

        prepareSocketPath(self.path)
        # Bind with a umask that leaves nobody else a moment to connect
        # before listenUNIX's chmod.
        umask = os.umask(0o177)
        if self.readOnly:
            factory, mode = ControlFactory.forReadOnlySocket(self.parent), 0o666
        else:
            factory, mode = ControlFactory.forSocket(self.parent), 0o600
        try:
            self.listening = self.reactor.listenUNIX(self.path, factory, mode=mode)
        except CannotListenError as e:
            raise StartupError("control socket %s: %s" % (self.path, getattr(e.socketError, "strerror", None)
                                                          or e.socketError))
        finally:
            os.umask(umask)
        Service.startService(self)
        self._log.info("{name} {path}", name=self.name, path=self.path)

    def stopService(self):
        Service.stopService(self)
        listening, self.listening = self.listening, None
        if listening is not None:
            return defer.maybeDeferred(listening.stopListening)


class ReloadOnHangup(Service):
    """
    While running, SIGHUP makes the parent L{IkedService} reload its
    configuration (as iked does).  The handler only hands the work to the
    reactor, which reloads between events.

    @ivar previous: the SIGHUP handler to put back when stopped.
    """

    def __init__(self, reactor):
        self.reactor = reactor
        self.previous = None
        self.setName("SIGHUP")

    def _hangup(self, signum, frame):
        self.reactor.callFromThread(self.parent.reloadOnSignal)

    def startService(self):
        import signal

        self.previous = signal.signal(signal.SIGHUP, self._hangup)
        Service.startService(self)

    def stopService(self):
        import signal

        Service.stopService(self)
        if self.previous is not None:
            signal.signal(signal.SIGHUP, self.previous)
            self.previous = None


class StopOnTerm(Service):
    """
    While running, SIGTERM stops the daemon cleanly: the parent
    L{IkedService} deletes its SAs with the peers as it stops, and the
    process exits 0, as iked does (twistd's own handler would end it with
    the signal, status 143).  The handler is installed once the reactor
    runs, after the reactor's own.

    @ivar previous: the SIGTERM handler to put back when stopped.
    """

    _log = Logger()

    def __init__(self, reactor):
        self.reactor = reactor
        self.previous = None
        self.setName("SIGTERM")

    def _terminate(self, signum, frame):
        self.reactor.callFromThread(self._stop)

    def _stop(self):
        self._log.info("SIGTERM: deleting the SAs and stopping")
        if self.reactor.running:
            self.reactor.stop()

    def _install(self):
        import signal

        if self.running:
            self.previous = signal.signal(signal.SIGTERM, self._terminate)

    def startService(self):
        Service.startService(self)
        self.reactor.callWhenRunning(self._install)

    def stopService(self):
        import signal

        Service.stopService(self)
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None


class IkedService(MultiService):
    """
    One ikedtx daemon.

    @ivar config: the L{ikedtx.config.model.Config} in force.
    @ivar core: the L{IKECore} (after start).
    @ivar runner: the L{CoreRunner} (after start).
    @ivar kernel: the L{IKernel} provider.
    @ivar options: the L{ikedtx.tap.Options} (or a dict with its keys; a
        false C{"sighup"} leaves SIGHUP and SIGTERM alone).
    @ivar events: the L{EventHub} of ikectl monitor and show stats.
    """

    _log = Logger()

    #: Whether a L{StartupError} in L{startService} ends the process (status
    #: 1, one line on standard error) rather than raise: twistd would print
    #: a traceback.  L{ikedtx.tap.makeService} sets it; its own checks
    #: catch these errors before twistd forks, this covers a port taken in
    #: between.
    exitOnStartupError = False

    #: Whether systemd hears of start-up, reloads and stop (sd_notify, for
    #: C{Type=notify}; L{ikedtx.tap.makeService} sets it).
    notifySystemd = False

    #: Whether the C library's free memory goes back to the kernel once
    #: started (L{ikedtx.lean.trimHeap}; L{ikedtx.tap.makeService} sets it).
    trimWhenStarted = False

    def __init__(self, config, options, reactor=None, credentials=None):
        MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.options = options
        self.credentials = credentials
        self.core = None
        self.runner = None
        self.kernel = None
        self.gcPolicy = None
        self.events = EventHub()
        # C{radius dae listen} sockets bound by someone else (a privileged
        # parent): C{{(address, port): fd}}.
        self.daeSockets = {}
        for address in self._listenAddresses():
            for number, natt in self._portNumbers():
                IKEPortService(address, number, natt, self.reactor).setServiceParent(self)
        if options.get("socket"):
            ControlSocketService(options["socket"], self.reactor).setServiceParent(self)
        if options.get("ro-socket"):
            ControlSocketService(options["ro-socket"], self.reactor, readOnly=True).setServiceParent(self)
        if options.get("address-events"):
            from ikedtx.net.addrmonitor import AddressMonitorService

            AddressMonitorService(self.reactor).setServiceParent(self)
        if options.get("metrics"):
            from ikedtx.metrics import MetricsService

            MetricsService(options["metrics"], self.reactor).setServiceParent(self)
        if options.get("sighup", True):
            ReloadOnHangup(self.reactor).setServiceParent(self)
            StopOnTerm(self.reactor).setServiceParent(self)
        self._reloadLock = defer.DeferredLock()

    @property
    def _ports(self):
        """
        The UDP ports listening now.
        """
        return [s.port for s in self if isinstance(s, IKEPortService) and s.port is not None]

    def check(self):
        """
        Check, before start-up, what can be checked without starting: that
        the kernel provider can be made, the ports bound and the control
        socket's path used.

        @raise StartupError: one of them cannot.
        """
        name = self.options.get("kernel") or "decoupled"
        checkKernel(name)
        for service in self:
            check = getattr(service, "check", None)
            if check is not None:
                check()
        if self.credentials is None:
            self.credentials = self._makeCredentials()
        problem = localKeyProblem(self.credentials, self.config)
        if problem is not None:
            raise StartupError(problem)

    def _makeCredentials(self):
        from ikedtx.auth.store import CredentialStore

        return CredentialStore(self.options.get("etc-dir") or "/etc/iked",
                               certPartialChain=self.config.settings.certPartialChain)

    def _settings(self):
        o = self.options
        if o.get("no-natt"):
            mode = NATT_DISABLED
        elif o.get("natt-only") or o.get("udpencap-port"):
            mode = NATT_ONLY
        else:
            mode = NATT_NORMAL
        ikePort = int(o.get("ike-port") or 500)
        nattPort = int(o.get("udpencap-port") or o.get("natt-port") or 4500)
        schedule = RetransmitSchedule(initial=float(o.get("retransmit-timeout") or 2.0),
                                      tries=int(o.get("retransmit-tries") or 5))
        return CoreSettings(
            ikePort=ikePort, nattPort=nattPort, peerIkePort=ikePort, peerNattPort=nattPort, nattMode=mode,
            retransmit=schedule, childless=o.get("childless") or "never",
            cookieThreshold=_option(o, "cookie-threshold", 64), halfOpenPerPeer=_option(o, "half-open-per-peer", 32),
            halfOpenMax=_option(o, "half-open-max", 4096),
            ikeSAsPerIdentity=_option(o, "ike-sas-per-id", 100),
            responseCacheBytesMax=_option(o, "response-cache-max", 256 << 20),
            passive=bool(o.get("passive")) or self.config.settings.passive,
            vendorId=b"ikedtx" if self.config.settings.vendorId else b"")

    def _portNumbers(self):
        """
        The UDP ports to listen on, as C{(number, natt)}: IKE unless -t or
        -p, NAT-T unless -T (what L{_settings} tells the core).
        """
        o = self.options
        ports = []
        if not (o.get("natt-only") or o.get("udpencap-port")):
            ports.append((int(o.get("ike-port") or 500), False))
        if not o.get("no-natt"):
            ports.append((int(o.get("udpencap-port") or o.get("natt-port") or 4500), True))
        return ports

    def _listenAddresses(self):
        listen = self.options.get("listen") or []
        return list(listen) if listen else ["0.0.0.0", "::"]

    def startService(self):
        settings = self._settings()
        kernelName = self.options.get("kernel") or "decoupled"
        try:
            self.kernel = self._makeKernel(kernelName)
        except Exception as e:
            self._startFailed(StartupError("the %s kernel provider cannot be used: %s" % (
                kernelName, getattr(e, "strerror", None) or e)))
        if kernelName == "xfrm" and self.kernel.routes is not None and self.options.get("route-table") is not None:
            # The routes of tunnel flows (strongSwan's table 220 by default).
            self.kernel.routes.table = int(self.options["route-table"])
            self.kernel.removeLeftoverRoutes()
        self._log.info("datapath: {kernel} ({why})", kernel=kernelName,
                       why=self.options.get("kernelReason") or "--kernel %s" % (kernelName,))
        if self.credentials is None:
            self.credentials = self._makeCredentials()
        self.core = IKECore(
            self.config, self.credentials, settings, now=self.reactor.seconds,
            localAddressFor=sourceAddressFor,
            resolved=self._resolve(self.config),
            keyLog=self._keyLog())
        self.runner = CoreRunner(self.core, self.kernel, self.reactor)
        self.runner.events = self.events
        self.runner.daeSockets = self.daeSockets
        self.runner.configureRadius(self.config)
        self.runner.ocspResponders = lambda: getattr(self.credentials, "ocspResponders", ())
        self._wireDatapath()
        try:
            MultiService.startService(self)
        except BaseException:
            # What did start stops again, so that a failed start leaves no
            # port or socket behind.
            self.running = 0
            self.runner.stop()
            for service in reversed(list(self)):
                if service.running:
                    service.stopService()
            error = sys.exc_info()[1]
            if isinstance(error, StartupError):
                self._startFailed(error)
            raise
        if not self.options.get("ipv6"):
            # iked's default: no IPv6 leaves unprotected unless -6.
            self.runner.blockIPv6().addErrback(
                lambda f: self._log.error("IPv6 is NOT blocked: {error}", error=f.value))
        for policy in self.config.policies:
            self._log.debug("policy {name}", name=policy.name)
        self._logConfigWarnings(self.config)
        self._log.info("loaded {n} policies; kernel: {kernel}", n=len(self.config.policies), kernel=self.kernel.name)
        # What start-up loaded (modules, configuration, certificates) lives
        # as long as the daemon: keep it out of every later collection, and
        # the state of the SAs too once it survived a while (a full
        # collection walks every object: seconds at 100,000 IKE SAs).
        self.gcPolicy = FreezePolicy(self.reactor)
        self.gcPolicy.start()
        self.reactor.callWhenRunning(self._startup)

    def _wireDatapath(self):
        if self.kernel.name == "userspace":
            # ESP in UDP shares the NAT-T sockets (RFC 3948).
            self.runner.espHandler = self.kernel.espReceived
            self.kernel.sendUdp = self.runner.sendEsp
            self.kernel.sendUdpSegments = self.runner.sendEspSegments
            if self.options.get("keylog"):
                self.kernel.startDump(self.options["keylog"] + ".esp.json")

    def _keyLog(self):
        return keyLogger(self.options["keylog"], self._log) if self.options.get("keylog") else None

    def _makeKernel(self, name):
        return makeKernel(name)

    def _resolve(self, config):
        return resolvePolicyNames(config)

    def _startFailed(self, error):
        """
        The L{StartupError} C{error} ends the start: one line and status 1
        when L{exitOnStartupError}, else it is raised.
        """
        if not self.exitOnStartupError:
            raise error
        self._log.critical("{error}", error=error)
        sys.stderr.write("iked: %s\n" % (error,))
        sys.stderr.flush()
        raise SystemExit(1)

    def _logConfigWarnings(self, config):
        for problem in config.warnings:
            self._log.warn("{problem}", problem=str(problem))

    def _startup(self):
        if self.running:
            if self.kernel.name != "decoupled":
                # The policies' trap flows: their first packet starts the
                # negotiation, and none leaves in clear before.
                self.runner.startTraps()
            self.runner.execute(self.core.startup())
            self._notify("READY=1")
            if self.trimWhenStarted:
                from ikedtx.lean import trimHeap

                trimHeap()

    def _notify(self, state):
        if self.notifySystemd:
            from ikedtx.sdnotify import notify

            notify(state)

    def initiate(self, policyName):
        return self.runner.initiate(policyName)

    def runInThread(self, f, *args):
        """
        Run the blocking C{f(*args)} in the reactor's thread pool; a
        Deferred of its result.
        """
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args)

    def reload(self, path=None):
        """
        ikectl reload and SIGHUP: read the configuration file and the iked
        tree again; ikectl load: read C{path}, the file from then on.  The
        file is parsed in a thread and the policies' host names resolved
        through the reactor's resolver, so the daemon goes on answering
        meanwhile; reloads run one at a time.  IKE SAs whose policy is still
        there are kept.

        @return: a Deferred that fires once the new configuration is in
            force, or fails with the L{ConfigError} of a broken file, which
            changes nothing.
        """
        self._notify("RELOADING=1")
        d = self._reloadLock.run(self._reload, path)

        def ready(result):
            self._notify("READY=1")
            return result

        return d.addBoth(ready)

    def _reload(self, path=None):
        from ikedtx.config import loadConfig

        path = path or self.options.get("config")
        d = self.runInThread(loadConfig, path, list(self.options.get("defines") or ()))

        def loaded(config):
            resolving = resolvePolicyNamesLater(config, self.reactor.nameResolver)
            return resolving.addCallback(lambda resolved: (config, resolved))

        def apply(result):
            config, resolved = result
            self.config = config
            self.options["config"] = path
            if self.credentials is not None and hasattr(self.credentials, "reload"):
                self._reloadCredentials(config)
            self.runner.reload(config, resolved)
            self._logConfigWarnings(config)
            self._log.info("reloaded {path}: loaded {n} policies", path=path, n=len(config.policies))
            return config

        return d.addCallback(loaded).addCallback(apply)

    def _reloadCredentials(self, config):
        """
        Read the iked tree again; a private/local.key that became unusable
        while policies sign with it is one error line, and the key loaded
        before stays in use.
        """
        previous = self.credentials.privateKey
        self.credentials.reload()
        problem = localKeyProblem(self.credentials, config)
        if problem is not None and previous is not None:
            self._log.error("{problem}; keeping the key loaded before", problem=problem)
            self.credentials.privateKey = previous

    def reloadOnSignal(self):
        """
        SIGHUP: reload; a broken file is logged, line by line, and the
        daemon goes on with the configuration it has.
        """
        if not self.running:
            return None
        self._log.info("SIGHUP: reloading {path}", path=self.options.get("config"))

        def failed(reason):
            for line in str(reason.value).splitlines():
                self._log.error("{line}", line=line)
            self._log.error("reload failed: keeping the configuration in force")

        return self.reload().addErrback(failed)

    def stopService(self):
        Service.stopService(self)
        self._notify("STOPPING=1")
        # The core says goodbye to its peers while the ports are still open.
        if self.runner is not None:
            self.runner.execute(self.core.shutdown())
            self.runner.stop()
        if self.gcPolicy is not None:
            self.gcPolicy.stop()
        ds = [MultiService.stopService(self)]
        if self.kernel is not None and self.kernel.name != "decoupled":
            ds.append(self.kernel.flush())
        return defer.gatherResults(ds, consumeErrors=True)


def _option(options, name, default):
    """
    The integer option C{name}, or C{default} when not given (options
    built by hand, as tests do, may lack it).
    """
    value = options.get(name)
    return default if value is None else int(value)

# -*- test-case-name: tests.test_tap -*-
"""
twistd's view of ikedtx: the command line options (iked(8)'s own, plus the
ones tests and unprivileged users need) and L{makeService}.

    twistd -n iked -f conf/iked.conf --listen 127.0.0.1 --ike-port 5000
"""

import ipaddress
import sys

from twisted.python import usage

import ikedtx
from ikedtx.config import ConfigError, loadConfig, renderConfig, splitDefine

# How twistd's log observer is made for this process (see logObserver).
_logSettings = {}

DEFAULT_CONFIG = "/etc/iked.conf"
DEFAULT_SOCKET = "/var/run/iked.sock"
DEFAULT_ETC_DIR = "/etc/iked"
KERNELS = ("decoupled", "xfrm", "userspace")


def _port(value, what):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise usage.UsageError("%s is not a port number: %s" % (what, value))
    if not 1 <= port <= 65535:
        raise usage.UsageError("%s is out of range 1-65535: %s" % (what, value))
    return port


class ConfigurationError(usage.UsageError):
    """
    The configuration file cannot be used: the message is iked's, one
    C{FILE: LINE: message} line per error.
    """


class Options(usage.Options):
    """
    iked(8)'s options: C{[-dnSTtVv6] [-D macro=value] [-f file]
    [-p udpencap_port] [-s socket]}, and ikedtx's own.

    After L{postOptions}: C{defines} is a list of C{"macro=value"};
    C{verbose} a count; C{udpencap-port}, C{ike-port} and C{natt-port} are
    ints; C{listen} a list of addresses (empty: all addresses of both
    families); C{kernel} is L{None} until L{makeService} picks one.
    """

    synopsis = "[-dnSTtVv6] [-D macro=value] [-f file] [-p udpencap_port] [-s socket] [ikedtx options]"

    optFlags = [
        ["debug", "d", "Do not daemonize; log to stderr."],
        ["configtest", "n", "Configtest mode: only check the configuration file."],
        ["passive", "S", "Start in passive mode (as 'set passive')."],
        ["no-natt", "T", "Disable NAT-Traversal; do not propose it to peers."],
        ["natt-only", "t", "Enforce NAT-Traversal: only listen for NAT-T (UDP encapsulated) messages."],
        ["ipv6", "6", "Do not block IPv6 traffic (by default it is blocked unless a flow for it is negotiated)."],
        ["no-privsep", None, "Run everything in one process, as root (by default, started as root, peers are "
         "parsed and answered by an unprivileged worker)."],
    ]

    optParameters = [
        ["config", "c", DEFAULT_CONFIG, "Read FILE as the configuration file (also -f FILE)."],
        ["udpencap-port", "p", None, "Listen for NAT-T on this port, and use it in SAs (implies -t)."],
        ["socket", "s", DEFAULT_SOCKET, "Path of the control socket."],
        ["retransmit-timeout", None, "2", "Seconds before a request is first sent again (doubling up to 32; "
         "RFC 7296 2.1)."],
        ["retransmit-tries", None, "5", "Transmissions of a request before the peer is declared dead."],
        ["cookie-threshold", None, "64", "Half-open IKE SAs from which an IKE_SA_INIT must carry a COOKIE "
         "(RFC 7296 2.6; 0: always)."],
        ["half-open-per-peer", None, "32", "Half-open IKE SAs kept from one address (past it, its oldest is "
         "given up)."],
        ["half-open-max", None, "4096", "Half-open IKE SAs kept in all (more are dropped)."],
        ["ike-sas-per-id", None, "100", "Established IKE SAs of one peer identity; past it a new one is refused "
         "with AUTHENTICATION_FAILED (set enforcesingleikesa replaces instead; 0: no cap)."],
        ["response-cache-max", None, str(256 << 20), "Octets of responses kept for retransmitted requests over "
         "all IKE SAs; past it no new half-open IKE SA is made (each IKE SA keeps its last: about 0.2 KB with a "
         "PSK, 1.4 KB with an RSA-2048 certificate)."],
        ["childless", None, "never", "As initiator, IKE_AUTH without a Child SA (RFC 6023): never (as iked), "
         "prefer (when the responder supports it) or force (an ikedtx extension, as strongSwan's childless)."],
        ["privsep-user", None, "_iked", "The unprivileged worker's user (privilege separation)."],
        ["privsep-chroot", None, None, "The empty directory the worker chroots into (default: the home "
         "directory of --privsep-user)."],
        ["privsep-seccomp", None, "enforce", "The worker's system call filter: enforce (calls outside its "
         "allow-list fail with EPERM, exec, ptrace, mount and the like kill it), log (calls outside the list are "
         "allowed and logged by the kernel, to build the list) or off. With enforce a worker that cannot install the "
         "filter does not serve: the daemon refuses to start or stops; log and off run it unfiltered."],
        ["ike-workers", None, "1", "IKE worker processes under the privileged parent (privilege separation; "
         "2 to 16 spread the IKE SAs over cores, steered by SPI in the kernel: ikedtx.privsep.pool)."],
        ["ike-port", None, "500", "UDP port for IKE."],
        ["natt-port", None, "4500", "UDP port for NAT-T (UDP encapsulated IKE and ESP)."],
        ["route-table", None, "220", "Routing table of the routes to remote networks of tunnels (xfrm, as "
         "strongSwan's; 0: install none)."],
        ["etc-dir", None, DEFAULT_ETC_DIR, "Root of the iked tree (ca/, certs/, private/, pubkeys/...)."],
        ["ro-socket", None, None, "Path of a read-only control socket (show commands and monitor only, "
         "open to every user), for monitoring tools."],
        ["metrics", None, None, "Serve Prometheus metrics over HTTP on ADDR:PORT ([ADDR]:PORT for IPv6; "
         "needs prometheus_client, the metrics extra)."],
        ["keylog", None, None, "Testing only: append every IKE SA's SK_e/SK_a keys to this file (mode 0600), "
         "for tshark's IKEv2 decryption."],
        [
            "kernel",
            None,
            None,
            "Where SAs go: decoupled, xfrm or userspace (default: decoupled with "
            "'set decouple', else xfrm where the kernel has ESP, else userspace).",
        ],
    ]

    #: Whether L{postOptions} loads the configuration file (into
    #: C{options["parsedConfig"]}); off for callers that only want the
    #: options checked (C{iked} before it hands over to twistd).
    loadConfiguration = True

    #: Whether L{makeService} checks, before twistd forks, that the ports
    #: can be bound and the control socket path used.
    checkStartup = True

    def __init__(self):
        usage.Options.__init__(self)
        self["defines"] = []
        self["verbose"] = 0
        self["listen"] = []
        self["version"] = False

    def opt_file(self, path):
        """
        Use FILE as the configuration file (as -c/--config).
        """
        self["config"] = path

    opt_f = opt_file

    def opt_define(self, definition):
        """
        Define a macro: -D macro=value (repeatable); it overrides the file's.
        """
        try:
            splitDefine(definition)
        except ValueError as e:
            raise usage.UsageError(str(e))
        self["defines"].append(definition)

    opt_D = opt_define

    def opt_verbose(self):
        """
        More verbose output (repeatable).
        """
        self["verbose"] += 1

    opt_v = opt_verbose

    def opt_listen(self, address):
        """
        Listen on this address (repeatable; default: all addresses of both
        families).
        """
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise usage.UsageError("--listen needs an IPv4 or IPv6 address, not %r" % (address,))
        self["listen"].append(address)

    def opt_version(self):
        """
        Show the version and exit.
        """
        self["version"] = True

    opt_V = opt_version

    def parseArgs(self, *args):
        if args:
            raise usage.UsageError("unexpected arguments: %s" % (" ".join(args),))

    def postOptions(self):
        if self["no-natt"] and self["natt-only"]:
            raise usage.UsageError("-T and -t are mutually exclusive")
        if self["no-natt"] and self["udpencap-port"] is not None:
            raise usage.UsageError("-T and -p are mutually exclusive")
        try:
            self["retransmit-timeout"] = float(self["retransmit-timeout"])
            self["retransmit-tries"] = int(self["retransmit-tries"])
        except ValueError as e:
            raise usage.UsageError("--retransmit-timeout and --retransmit-tries take numbers: %s" % (e,))
        if not 0 < self["retransmit-timeout"] <= 3600 or not 1 <= self["retransmit-tries"] <= 100:
            raise usage.UsageError("--retransmit-timeout must be in (0, 3600] and --retransmit-tries in [1, 100]")
        for name, lowest, highest in (("cookie-threshold", 0, 10 ** 6), ("half-open-per-peer", 1, 10 ** 6),
                                      ("half-open-max", 1, 10 ** 6), ("ike-sas-per-id", 0, 10 ** 6),
                                      ("response-cache-max", 1 << 16, 1 << 34)):
            try:
                self[name] = int(self[name])
                if not lowest <= self[name] <= highest:
                    raise ValueError()
            except ValueError:
                raise usage.UsageError("--%s takes a number from %d to %d, not %r" % (name, lowest, highest, self[name]))
        if self["childless"] not in ("never", "prefer", "force"):
            raise usage.UsageError("--childless must be never, prefer or force")
        if self["privsep-seccomp"] not in ("enforce", "log", "off"):
            raise usage.UsageError("--privsep-seccomp must be enforce, log or off")
        given = self["ike-workers"]
        try:
            self["ike-workers"] = int(given)
            if not 1 <= self["ike-workers"] <= 16:
                raise ValueError()
        except ValueError:
            raise usage.UsageError("--ike-workers takes a number from 1 to 16, not %r" % (given,))
        self["ike-port"] = _port(self["ike-port"], "--ike-port")
        self["natt-port"] = _port(self["natt-port"], "--natt-port")
        if self["udpencap-port"] is not None:
            self["udpencap-port"] = _port(self["udpencap-port"], "-p")
            self["natt-only"] = True
            self["natt-port"] = self["udpencap-port"]
        try:
            self["route-table"] = int(self["route-table"])
            if not 0 <= self["route-table"] < 2 ** 32 or self["route-table"] in (253, 254, 255):
                raise ValueError()
        except ValueError:
            raise usage.UsageError("--route-table needs a table number other than 253-255 (main, default, "
                                   "local), not %r" % (self["route-table"],))
        if self["kernel"] is not None and self["kernel"] not in KERNELS:
            raise usage.UsageError("--kernel must be one of %s, not %r" % (", ".join(KERNELS), self["kernel"]))
        if not self["config"]:
            raise usage.UsageError("-f needs a file name")
        if not self["socket"]:
            raise usage.UsageError("-s needs a socket path")
        if self["metrics"] is not None:
            from ikedtx.metrics import parseAddress

            try:
                self["metrics"] = parseAddress(self["metrics"])
            except ValueError as e:
                raise usage.UsageError(str(e))
        self._chooseLogger()
        self["parsedConfig"] = None
        if self.loadConfiguration and not self["version"]:
            try:
                self["parsedConfig"] = loadConfig(self["config"], self["defines"])
            except ConfigError as e:
                raise ConfigurationError(str(e))

    def _chooseLogger(self):
        """
        Under twistd, log as iked does: to standard error with C{-d}, else
        where twistd's options say (the C{iked} script says syslog); at
        info level, or debug with C{-v}.  A C{--logger} given to twistd is
        left alone.
        """
        parent = getattr(self, "parent", None)
        if parent is None or not isinstance(parent, usage.Options) or parent.get("logger"):
            return
        from twisted.logger import LogLevel

        _logSettings.clear()
        _logSettings["level"] = LogLevel.debug if self["verbose"] else LogLevel.info
        if self["debug"]:
            _logSettings["to"] = "stderr"
        elif parent.get("syslog"):
            _logSettings["to"] = "syslog"
            _logSettings["prefix"] = parent.get("prefix") or "iked"
        else:
            _logSettings["to"] = "twistd"
            _logSettings["twistdOptions"] = parent
        # twistd imports the factory by name once every option is parsed.
        parent["logger"] = "ikedtx.tap.logObserver"

    def parseOptions(self, options=None):
        """
        Parse and check the options and load the configuration.

        Under twistd (as its C{iked} subcommand), a broken configuration
        is printed on standard error as iked prints it, one C{FILE: LINE:
        message} per error, and the process exits with status 1: twistd
        would print its whole usage first, on standard output.
        """
        try:
            usage.Options.parseOptions(self, options)
        except ConfigurationError as e:
            if getattr(self, "parent", None) is None:
                raise
            sys.stderr.write("%s\n" % (e,))
            sys.stderr.flush()
            raise SystemExit(1)


def _startupError(message):
    sys.stderr.write("iked: %s\n" % (message,))
    sys.stderr.flush()
    raise SystemExit(1)


def makeService(options):
    """
    Build the daemon's service from the configuration L{Options.postOptions}
    loaded (or load it now, for options parsed without loading it), and
    check what can be checked before twistd forks: the kernel provider,
    the UDP ports and the control socket.

    A configuration or start-up error is printed (every configuration
    error, one per line; a start-up error as one line) and ends the
    process with status 1, without a traceback.  With C{-V}, or C{-n}
    (C{twistd iked -n}), it prints what C{iked} prints and exits.
    """
    if options["version"]:
        sys.stderr.write("%s\n" % (versionString(),))
        raise SystemExit(0)
    config = options.get("parsedConfig")
    if config is None:
        try:
            config = loadConfig(options["config"], options["defines"])
        except ConfigError as e:
            sys.stderr.write("%s\n" % (e,))
            raise SystemExit(1)
    if options["configtest"]:
        for warning in config.warnings:
            sys.stderr.write("%s\n" % (warning,))
        if options["verbose"]:
            sys.stderr.write(renderConfig(config))
        sys.stderr.write("configuration OK\n")
        raise SystemExit(0)
    from ikedtx.service import IkedService, StartupError

    if options["kernel"] is None:
        # iked installs into the kernel unless "set decouple"; ikedtx picks
        # the datapath this host can run (and says which at start-up).
        from ikedtx.kernel.probe import chooseKernel

        options["kernel"], options["kernelReason"] = chooseKernel(config.settings.decouple)
    else:
        options["kernelReason"] = "--kernel %s" % (options["kernel"],)

    # MOBIKE (RFC 4555 3.8) follows the host's address changes.
    options["address-events"] = True
    if usePrivsep(options, config) and (options.get("ike-workers") or 1) > 1:
        from ikedtx.privsep.pool import WorkerPoolService

        service = WorkerPoolService(config, options)
    elif usePrivsep(options, config):
        from ikedtx.privsep.parent import PrivsepService

        service = PrivsepService(config, options)
    elif (options.get("ike-workers") or 1) > 1:
        _startupError(StartupError("--ike-workers needs privilege separation (started as root, without "
                                   "--no-privsep)"))
    else:
        service = IkedService(config, options)
    service.exitOnStartupError = True
    service.notifySystemd = True
    service.trimWhenStarted = True
    if getattr(options, "checkStartup", True):
        try:
            service.check()
        except StartupError as e:
            _startupError(e)
    return service


def usePrivsep(options, config=None):
    """
    Whether the daemon separates privileges: started as root, without
    C{--no-privsep}. Every datapath and configuration runs so (the
    parent holds the datapath, the TUN device, the sockets and the
    interfaces' virtual addresses; L{ikedtx.privsep}).
    """
    import os

    return os.geteuid() == 0 and not options.get("no-privsep")


# The level filters of the daemon's log observers, which ikectl log
# brief|verbose move between info and debug.
_levelPredicates = []


def levelFiltered(observer, level):
    """
    C{observer}, given only the events at C{level} or above (until
    L{setVerbose} changes it).
    """
    from ikedtx.logtext import LevelFiltered, levelPredicate, registerLevelFilter

    predicate = levelPredicate(level)
    _levelPredicates.append(predicate)
    filtered = LevelFiltered(observer, predicate)
    registerLevelFilter(filtered, predicate)
    return filtered


def setVerbose(verbose):
    """
    ikectl log verbose (debug level) or brief (info level), on every log
    observer made by L{levelFiltered}.
    """
    from twisted.logger import LogLevel

    level = LogLevel.debug if verbose else LogLevel.info
    for predicate in _levelPredicates:
        predicate.defaultLogLevel = level
        predicate.setLogLevelForNamespace("", level)


def isVerbose():
    from twisted.logger import LogLevel

    return any(p.logLevelForNamespace("") == LogLevel.debug for p in _levelPredicates)


def logObserver():
    """
    twistd's C{--logger} for ikedtx, as L{Options} chose it: standard
    error (C{-d}), syslog (facility daemon, C{iked}'s default) or what
    twistd's own options say (a file, or stdout with C{-n}); at info level,
    or debug with C{-v}, so that debug lines never reach syslog without
    C{-v}.
    """
    from twisted.logger import LegacyLogObserverWrapper, LogLevel

    from ikedtx.logtext import textObserver

    level = _logSettings.get("level", LogLevel.info)
    to = _logSettings.get("to", "stderr")
    if to == "syslog":
        import syslog as _syslog

        from twisted.python.syslog import SyslogObserver

        observer = LegacyLogObserverWrapper(
            SyslogObserver(_logSettings.get("prefix", "iked"), facility=_syslog.LOG_DAEMON).emit)
    elif to == "twistd":
        from twisted.scripts._twistd_unix import UnixAppLogger

        # twistd's own choice (a log file with rotation on SIGUSR1, or
        # stdout with -n), made the way twistd makes it.
        observer = UnixAppLogger(_logSettings["twistdOptions"])._getLogObserver()
    else:
        observer = textObserver(sys.stderr)
    return levelFiltered(observer, level)


def versionString():
    return "ikedtx %s" % (ikedtx.__version__,)

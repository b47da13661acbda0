# -*- test-case-name: tests.test_tap -*-
"""
Tests for L{ikedtx.tap}: the twistd options and L{makeService}.
"""

import io
import os
import sys

from twisted.application.service import MultiService
from twisted.python import usage
from twisted.internet import reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx import tap


def parse(*argv):
    options = tap.Options()
    # These tests are about the options and makeService's own handling of
    # the file; loading in postOptions and the start-up checks (which bind
    # ports 500 and 4500 by default) have their own tests.
    options.loadConfiguration = False
    options.checkStartup = False
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self):
        o = parse()
        self.assertEqual(
            (o["config"], o["socket"], o["defines"], o["verbose"], o["listen"], o["ike-port"], o["natt-port"]),
            ("/etc/iked.conf", "/var/run/iked.sock", [], 0, [], 500, 4500),
        )
        self.assertEqual((o["etc-dir"], o["kernel"], o["udpencap-port"]), ("/etc/iked", None, None))
        self.assertFalse(o["debug"] or o["configtest"] or o["passive"] or o["no-natt"] or o["natt-only"])

    def test_ikedFlags(self):
        o = parse("-d", "-n", "-S", "-t", "-6", "-v", "-v", "-D", "a=1", "-D", "b=2=3", "-f", "x.conf", "-s", "/tmp/s")
        self.assertEqual(
            (o["debug"], o["configtest"], o["passive"], o["natt-only"], o["ipv6"], o["verbose"]),
            (True, True, True, True, True, 2),
        )
        self.assertEqual((o["defines"], o["config"], o["socket"]), (["a=1", "b=2=3"], "x.conf", "/tmp/s"))

    def test_configSynonyms(self):
        self.assertEqual(parse("-c", "a.conf")["config"], "a.conf")
        self.assertEqual(parse("--config", "a.conf")["config"], "a.conf")
        self.assertEqual(parse("--file", "a.conf")["config"], "a.conf")

    def test_udpencapPort(self):
        """
        -p sets the NAT-T port and implies -t.
        """
        o = parse("-p", "4501")
        self.assertEqual((o["udpencap-port"], o["natt-port"], o["natt-only"]), (4501, 4501, True))

    def test_retransmitOptions(self):
        o = parse("--retransmit-timeout", "0.5", "--retransmit-tries", "3")
        self.assertEqual((o["retransmit-timeout"], o["retransmit-tries"]), (0.5, 3))
        o = parse()
        self.assertEqual((o["retransmit-timeout"], o["retransmit-tries"]), (2.0, 5))

    def test_ikedtxOptions(self):
        o = parse("--listen", "127.0.0.1", "--listen", "::1", "--ike-port", "5000", "--natt-port", "5001", "--etc-dir", "/tmp/e", "--kernel", "userspace")
        self.assertEqual(
            (o["listen"], o["ike-port"], o["natt-port"], o["etc-dir"], o["kernel"]),
            (["127.0.0.1", "::1"], 5000, 5001, "/tmp/e", "userspace"),
        )

    def test_limitOptions(self):
        """
        --ike-sas-per-id and --response-cache-max are numbers (0: no cap
        for the first) and have defaults.
        """
        o = parse()
        self.assertEqual((o["ike-sas-per-id"], o["response-cache-max"]), (100, 256 << 20))
        o = parse("--ike-sas-per-id", "0", "--response-cache-max", "1048576")
        self.assertEqual((o["ike-sas-per-id"], o["response-cache-max"]), (0, 1 << 20))
        e = self.assertRaises(usage.UsageError, parse, "--response-cache-max", "10")
        self.assertEqual(str(e), "--response-cache-max takes a number from 65536 to 17179869184, not 10")
        e = self.assertRaises(usage.UsageError, parse, "--ike-sas-per-id", "-1")
        self.assertEqual(str(e), "--ike-sas-per-id takes a number from 0 to 1000000, not -1")

    def test_usageErrors(self):
        """
        Each invalid option or combination is a UsageError that says why.
        """
        for argv, message in [
            (["-T", "-t"], "-T and -t are mutually exclusive"),
            (["-T", "-p", "4500"], "-T and -p are mutually exclusive"),
            (["-p", "0"], "-p is out of range 1-65535: 0"),
            (["-p", "65536"], "-p is out of range 1-65535: 65536"),
            (["-p", "x"], "-p is not a port number: x"),
            (["--ike-port", "0"], "--ike-port is out of range 1-65535: 0"),
            (["--natt-port", "abc"], "--natt-port is not a port number: abc"),
            (["-D", "novalue"], "could not parse macro definition novalue (expected macro=value)"),
            (["-D", "a b=c"], "could not parse macro definition a b=c (invalid macro name 'a b')"),
            (["--listen", "localhost"], "--listen needs an IPv4 or IPv6 address, not 'localhost'"),
            (["--kernel", "pfkey"], "--kernel must be one of decoupled, xfrm, userspace, not 'pfkey'"),
            (["--route-table", "main"], "--route-table needs a table number other than 253-255 (main, default, "
                                        "local), not 'main'"),
            (["--route-table", "254"], "--route-table needs a table number other than 253-255 (main, default, "
                                       "local), not 254"),
            (["-f", ""], "-f needs a file name"),
            (["-s", ""], "-s needs a socket path"),
            (["extra"], "unexpected arguments: extra"),
            (["--retransmit-tries", "x"], "--retransmit-timeout and --retransmit-tries take numbers: "
                                           "invalid literal for int() with base 10: 'x'"),
            (["--retransmit-timeout", "0"], "--retransmit-timeout must be in (0, 3600] and --retransmit-tries in [1, 100]"),
            (["--retransmit-tries", "0"], "--retransmit-timeout must be in (0, 3600] and --retransmit-tries in [1, 100]"),
            (["--privsep-seccomp", "audit"], "--privsep-seccomp must be enforce, log or off"),
            (["--ike-workers", "0"], "--ike-workers takes a number from 1 to 16, not '0'"),
            (["--ike-workers", "17"], "--ike-workers takes a number from 1 to 16, not '17'"),
            (["--ike-workers", "two"], "--ike-workers takes a number from 1 to 16, not 'two'"),
        ]:
            e = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertEqual(str(e), message, argv)

    def test_version(self):
        self.assertTrue(parse("-V")["version"])
        self.assertEqual(tap.versionString(), "ikedtx 0.1.0")


class MakeServiceTests(SynchronousTestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "iked.conf")
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)
        os.chmod(self.path, 0o600)

    def test_service(self):
        """
        makeService loads the configuration and gives a MultiService; the
        kernel follows 'set decouple' unless chosen.
        """
        self.write("set decouple\nikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        options = parse("-f", self.path)
        service = tap.makeService(options)
        self.assertIsInstance(service, MultiService)
        self.assertEqual(len(service.config.policies), 1)
        self.assertEqual(options["kernel"], "decoupled")
        self.assertIn("set decouple", options["kernelReason"])

    def test_defaultKernel(self):
        """
        Without 'set decouple' and --kernel, the datapath is xfrm where the
        kernel has ESP and userspace where it has not (issue 8); the reason
        goes with it for the start-up log line. An explicit --kernel wins.
        """
        from ikedtx.kernel import probe

        self.write("ikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        self.patch(probe, "probeXfrmEsp", lambda: None)
        options = parse("-f", self.path)
        tap.makeService(options)
        self.assertEqual((options["kernel"], options["kernelReason"]), ("xfrm", "the kernel has ESP"))

        def noEsp():
            raise probe.DatapathUnusable("the kernel cannot install an ESP SA: Protocol not supported (EPROTONOSUPPORT)")

        self.patch(probe, "probeXfrmEsp", noEsp)
        options = parse("-f", self.path)
        tap.makeService(options)
        self.assertEqual((options["kernel"], options["kernelReason"]), (
            "userspace", "the kernel has no usable ESP: the kernel cannot install an ESP SA: Protocol not supported "
            "(EPROTONOSUPPORT)"))
        options = parse("-f", self.path, "--kernel", "decoupled")
        tap.makeService(options)
        self.assertEqual((options["kernel"], options["kernelReason"]), ("decoupled", "--kernel decoupled"))

    def test_configError(self):
        """
        A configuration error is printed, without a traceback, and exits 1.
        """
        self.write("bogus\n")
        e = self.assertRaises(SystemExit, tap.makeService, parse("-f", self.path))
        self.assertEqual(e.code, 1)
        self.assertEqual(self.stderr.getvalue(), "%s: 1: syntax error at end of line\n" % (self.path,))

    def test_versionAndConfigtest(self):
        """
        C{twistd iked -V} and C{twistd iked -n -v} print and exit, as iked.
        """
        e = self.assertRaises(SystemExit, tap.makeService, parse("-V"))
        self.assertEqual(e.code, 0)
        self.write("ikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        e = self.assertRaises(SystemExit, tap.makeService, parse("-n", "-v", "-f", self.path))
        self.assertEqual(e.code, 0)
        lines = self.stderr.getvalue().splitlines()
        self.assertEqual(lines[0], "ikedtx 0.1.0")
        self.assertTrue(lines[1].startswith('ikev2 "policy1" '))
        self.assertEqual(lines[2:], ["configuration OK"])

    def test_privsepDefault(self):
        """
        Started as root, the daemon separates privileges (issue 11) unless
        --no-privsep, the user-space datapath included; not as root, it
        runs in one process.
        """
        from ikedtx.privsep.parent import PrivsepService
        from ikedtx.service import IkedService

        self.write("set decouple\nikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        self.patch(os, "geteuid", lambda: 0)
        self.assertIsInstance(tap.makeService(parse("-f", self.path)), PrivsepService)
        self.assertIsInstance(tap.makeService(parse("-f", self.path, "--no-privsep")), IkedService)
        options = parse("-f", self.path, "--kernel", "userspace")
        self.assertTrue(tap.usePrivsep(options))
        self.assertNotIn("privsepOff", options)
        self.patch(os, "geteuid", lambda: 1000)
        self.assertIsInstance(tap.makeService(parse("-f", self.path)), IkedService)

    def test_ikeWorkers(self):
        """
        --ike-workers N above 1 makes the parent of several workers
        (ikedtx.privsep.pool); 1, the default, the parent of one; without
        privilege separation it is a start-up error.
        """
        from ikedtx.privsep.parent import PrivsepService
        from ikedtx.privsep.pool import WorkerPoolService

        self.write("set decouple\nikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        self.patch(os, "geteuid", lambda: 0)
        service = tap.makeService(parse("-f", self.path, "--ike-workers", "3"))
        self.assertIsInstance(service, WorkerPoolService)
        self.assertEqual(service.count, 3)
        service = tap.makeService(parse("-f", self.path))
        self.assertIsInstance(service, PrivsepService)
        self.assertNotIsInstance(service, WorkerPoolService)
        self.patch(sys, "stderr", self.stderr)
        self.assertRaises(SystemExit, tap.makeService, parse("-f", self.path, "--no-privsep", "--ike-workers", "2"))
        self.assertIn("--ike-workers needs privilege separation", self.stderr.getvalue())

    def test_daemonService(self):
        """
        makeService builds the daemon with the loaded configuration; the
        kernel provider follows C{set decouple} unless --kernel says.
        """
        from ikedtx.service import IkedService

        from ikedtx.kernel import probe

        self.patch(probe, "probeXfrmEsp", lambda: None)
        self.write("ikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        service = tap.makeService(parse("-f", self.path, "--no-privsep"))
        self.assertIsInstance(service, IkedService)
        self.assertEqual(len(service.config.policies), 1)
        self.assertEqual(service.options["kernel"], "xfrm")
        self.write("set decouple\nikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        self.assertEqual(tap.makeService(parse("-f", self.path)).options["kernel"], "decoupled")


class PostOptionsConfigTests(SynchronousTestCase):
    """
    L{tap.Options.postOptions} loads and checks the configuration, so that
    twistd reports a broken file before it starts anything, and
    L{tap.makeService} builds the daemon from what it loaded.
    """

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "iked.conf")

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)
        os.chmod(self.path, 0o600)

    def options(self, *argv):
        options = tap.Options()
        options.checkStartup = False
        options.parseOptions(list(argv))
        return options

    def test_loaded(self):
        """
        The parsed L{Config} is in C{options["parsedConfig"]}, and
        makeService uses it rather than reading the file again.
        """
        from ikedtx.config.model import Config

        self.write('ikev2 "one" esp from 10.0.0.1 to 10.0.0.2\n')
        options = self.options("-f", self.path, "-D", "x=1")
        self.assertIsInstance(options["parsedConfig"], Config)
        self.assertEqual([p.name for p in options["parsedConfig"].policies], ["one"])
        self.write('ikev2 "two" esp from 10.0.0.1 to 10.0.0.2\n')
        service = tap.makeService(options)
        self.assertIs(service.config, options["parsedConfig"])

    def test_errors(self):
        """
        A broken file is a L{usage.UsageError} (a L{tap.ConfigurationError})
        whose message is iked's, every error on its own line.
        """
        self.write("bogus\n\nikev2 esp from 10.0.0.1 to $peer\n")
        e = self.assertRaises(tap.ConfigurationError, self.options, "-f", self.path)
        self.assertIsInstance(e, usage.UsageError)
        self.assertEqual(str(e).splitlines(), ["%s: 1: syntax error at end of line" % (self.path,),
                                               "%s: 3: macro 'peer' not defined" % (self.path,),
                                               "%s: 3: syntax error" % (self.path,)])
        self.assertEqual(self.options("-f", self.path, "-D", "peer=10.0.0.2", "-V")["parsedConfig"], None)

    def test_underTwistd(self):
        """
        As twistd's C{iked} subcommand, the errors go to standard error and
        the process exits 1 (twistd would print its usage on stdout first).
        """
        from twisted.scripts.twistd import ServerOptions

        self.write("bogus\n")
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        e = self.assertRaises(SystemExit, ServerOptions().parseOptions, ["-n", "iked", "-f", self.path])
        self.assertEqual(e.code, 1)
        self.assertEqual(stderr.getvalue(), "%s: 1: syntax error at end of line\n" % (self.path,))


class LoggerTests(SynchronousTestCase):
    """
    Under twistd, L{tap.Options} picks the log observer iked would use:
    syslog (facility daemon) or twistd's choice at info level, debug with
    -v; standard error with -d.
    """

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "iked.conf")
        with open(self.path, "w") as f:
            f.write("ikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        os.chmod(self.path, 0o600)
        self.patch(tap, "_logSettings", {})

    def twistd(self, *argv):
        from twisted.scripts.twistd import ServerOptions

        options = ServerOptions()
        options.parseOptions(list(argv[:-1]) + ["iked", "-f", self.path] + argv[-1])
        return options

    def syslogLines(self, *flags):
        from twisted.logger import Logger
        from twisted.python.syslog import SyslogObserver

        opened, lines = [], []
        self.patch(SyslogObserver, "openlog",
                   staticmethod(lambda prefix, options, facility: opened.append((prefix, facility))))
        self.patch(SyslogObserver, "syslog", staticmethod(lambda priority, line: lines.append(line)))
        options = self.twistd("--syslog", "--prefix=iked", list(flags))
        self.assertIs(options["logger"], tap.logObserver)
        log = Logger(observer=options["logger"]())
        log.debug("a debug line")
        log.info("an info line")
        return opened, [line.split("] ")[-1] for line in lines]

    def test_syslog(self):
        """
        iked without -d logs to syslog, facility daemon, prefix iked, info
        level: debug lines never reach syslog without -v.
        """
        import syslog

        opened, lines = self.syslogLines()
        self.assertEqual((opened, lines), ([("iked", syslog.LOG_DAEMON)], ["an info line"]))
        opened, lines = self.syslogLines("-v")
        self.assertEqual(lines, ["a debug line", "an info line"])

    def test_debugToStderr(self):
        """
        -d: standard error, whatever twistd would have chosen.
        """
        from twisted.logger import Logger

        options = self.twistd("-n", ["-d"])
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        log = Logger(observer=options["logger"]())
        log.debug("a debug line")
        log.info("an info line")
        self.assertEqual([line.split("] ")[-1] for line in stderr.getvalue().splitlines()], ["an info line"])

    def test_explicitLogger(self):
        """
        A --logger given to twistd is left alone.
        """
        from ikedtx import cli

        options = self.twistd("-n", "--logger=ikedtx.cli.stderrObserver", [])
        self.assertIs(options["logger"], cli.stderrObserver)


class StartupRaceTests(TestCase):
    def test_portTakenAfterCheck(self):
        """
        A port taken between makeService's check and twistd's start of the
        service still ends the process with one line and status 1, not a
        traceback; nothing stays bound.
        """
        import socket

        from tests.test_service import freePorts

        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "iked.conf")
        with open(path, "w") as f:
            f.write("set decouple\nikev2 esp from 10.0.0.1 to 10.0.0.2\n")
        os.chmod(path, 0o600)
        ike, natt = freePorts(2)
        options = tap.Options()
        options.parseOptions(["-f", path, "--listen", "127.0.0.1", "--ike-port", str(ike), "--natt-port", str(natt),
                              "-s", os.path.join(directory, "s"), "--etc-dir", directory, "--no-privsep"])
        service = tap.makeService(options)
        busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        busy.bind(("127.0.0.1", natt))
        self.addCleanup(busy.close)
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        e = self.assertRaises(SystemExit, service.startService)
        self.assertEqual(e.code, 1)
        self.assertEqual(stderr.getvalue(), "iked: cannot bind 127.0.0.1:%d: Address already in use\n" % (natt,))
        self.assertEqual((service.running, service._ports), (0, []))
        # The IKE port that had started closes its socket on the reactor's
        # next turn.
        return task.deferLater(reactor, 0.01, lambda: None)


class PrivsepVirtualAddressTests(SynchronousTestCase):
    def test_requestedAddressSeparated(self):
        """
        A policy that asks the peer for a virtual address keeps privileges
        separated on every datapath: the parent puts the address on the
        interface for the worker (L{ikedtx.privsep.addresses}).
        """
        from ikedtx.config import parseConfig

        self.patch(os, "geteuid", lambda: 0)
        client = parseConfig('ikev2 "rw" active esp from dynamic to 10.2.0.0/16 peer 192.0.2.1 '
                             'psk "x" request address any\n')
        for kernel in ("xfrm", "userspace", "decoupled"):
            options = {"kernel": kernel}
            self.assertTrue(tap.usePrivsep(options, client))
            self.assertNotIn("privsepOff", options)

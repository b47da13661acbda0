# -*- test-case-name: tests.test_cli -*-
"""
Tests for L{ikedtx.cli}: the C{iked} and C{ikectl} entry points, run in
this process.
"""

import io
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from ikedtx import cli


class IkedTests(SynchronousTestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "iked.conf")
        self.write('user "u" "p"\nikev2 "a" esp from 10.0.0.1 to $peer\n')

    def write(self, text, mode=0o600):
        with open(self.path, "w") as f:
            f.write(text)
        os.chmod(self.path, mode)

    def iked(self, *argv, **kw):
        out, err = io.StringIO(), io.StringIO()
        status = cli.runIked(list(argv), out, err, **kw)
        return status, out.getvalue(), err.getvalue()

    def test_configtest(self):
        """
        C{iked -n} prints C{configuration OK} on stderr, like iked, and
        exits 0.
        """
        self.assertEqual(self.iked("-n", "-D", "peer=10.0.0.2", "-f", self.path), (0, "", "configuration OK\n"))

    def test_configtestVerbose(self):
        """
        C{iked -n -v} prints the configuration first.
        """
        status, out, err = self.iked("-n", "-v", "-D", "peer=10.0.0.2", "-f", self.path)
        self.assertEqual((status, out), (0, ""))
        lines = err.splitlines()
        self.assertEqual(lines[0], 'user "u" "p"')
        self.assertTrue(lines[1].startswith('ikev2 "a" passive tunnel esp inet from 10.0.0.1 to 10.0.0.2 '))
        self.assertEqual(lines[2:], ["configuration OK"])

    def test_errors(self):
        """
        Every error is printed, C{FILE: LINE: message}, and the status is 1.
        """
        self.write("bogus\n\nikev2 esp from 10.0.0.1 to $peer\n")
        self.assertEqual(
            self.iked("-n", "-f", self.path),
            (1, "", "%s: 1: syntax error at end of line\n%s: 3: macro 'peer' not defined\n%s: 3: syntax error\n" % ((self.path,) * 3)),
        )

    def test_unsafe(self):
        self.write("set passive\n", mode=0o644)
        self.assertEqual(self.iked("-n", "-f", self.path), (1, "", "%s: group writable or world read/writable\n" % (self.path,)))

    def test_warning(self):
        self.write("set passive\n")
        self.assertEqual(
            self.iked("-n", "-f", self.path),
            (0, "", "%s: no valid configuration rules found\nconfiguration OK\n" % (self.path,)),
        )

    def test_usage(self):
        status, out, err = self.iked("-T", "-t")
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err.splitlines()[0], "iked: -T and -t are mutually exclusive")
        self.assertTrue(err.splitlines()[1].startswith("usage: iked [-dnSTtVv6]"))

    def test_version(self):
        self.assertEqual(self.iked("-V"), (0, "", "ikedtx 0.1.0\n"))

    def test_daemon(self):
        """
        Without -n, iked runs twistd with the iked plugin: in the foreground
        logging to stderr with -d, else daemonized with syslog.
        """
        calls = []

        def runDaemon(args):
            calls.append(args)
            return 0

        self.assertEqual(self.iked("-d", "-f", self.path, runDaemon=runDaemon)[0], 0)
        self.assertEqual(self.iked("-f", self.path, runDaemon=runDaemon)[0], 0)
        self.assertEqual(
            calls,
            [
                ["twistd", "--pidfile=", "--nodaemon", "--logger=ikedtx.cli.stderrObserver", "iked", "-d", "-f", self.path],
                ["twistd", "--pidfile=/var/run/iked.pid", "--syslog", "--prefix=iked", "iked", "-f", self.path],
            ],
        )

    def test_stderrObserver(self):
        """
        C{iked -d} logs to standard error at info level, or debug with -v.
        """
        from twisted.logger import Logger, LogLevel

        for verbose, expected in ((False, ["info"]), (True, ["debug", "info"])):
            self.patch(cli, "_stderrLevel", LogLevel.debug if verbose else LogLevel.info)
            self.patch(sys, "stderr", io.StringIO())
            observer = cli.stderrObserver()
            log = Logger(observer=observer)
            log.debug("debug")
            log.info("info")
            self.assertEqual([line.split("] ")[-1] for line in sys.stderr.getvalue().splitlines() if line], expected)

    def test_consoleScript(self):
        """
        The C{iked} console script exits with runIked's status.
        """
        self.patch(sys, "argv", ["iked", "-n", "-D", "peer=10.0.0.2", "-f", self.path])
        self.patch(sys, "stderr", io.StringIO())
        e = self.assertRaises(SystemExit, cli.iked)
        self.assertEqual(e.code, 0)
        self.assertEqual(sys.stderr.getvalue(), "configuration OK\n")


class IkectlTests(SynchronousTestCase):
    def ikectl(self, *argv, **kw):
        out, err = io.StringIO(), io.StringIO()
        status = cli.runIkectl(list(argv), out, err, **kw)
        return status, out.getvalue(), err.getvalue()

    def test_noDaemon(self):
        """
        A command for a daemon that does not run fails with one line naming
        the socket, and status 1.
        """
        path = os.path.join(self.mktemp(), "iked.sock")
        self.assertEqual(self.ikectl("-s", path, "show", "sa"),
                         (1, "", "ikectl: control socket %s: No such file or directory\n" % (path,)))

    def test_noCommand(self):
        status, out, err = self.ikectl()
        self.assertEqual(status, 1)
        self.assertIn("ikectl ca NAME create", err)

    def test_caCommands(self):
        """
        C{ikectl ca NAME create} and C{show ca NAME certificates} reach the
        certificate authority.
        """
        ssl = self.mktemp()
        os.makedirs(ssl)
        status, out, err = self.ikectl("ca", "vpn", "create", sslDir=ssl)
        self.assertEqual((status, err), (0, ""))
        self.assertTrue(os.path.exists(os.path.join(ssl, "vpn", "ca.crt")))
        status, out, err = self.ikectl("ca", "vpn", "certificate", "gw.example", "create", sslDir=ssl)
        self.assertEqual((status, err), (0, ""))
        status, out, err = self.ikectl("show", "ca", "vpn", "certificates", sslDir=ssl)
        self.assertEqual((status, err), (0, ""))
        self.assertIn("gw.example", out)

    def test_caError(self):
        ssl = self.mktemp()
        os.makedirs(ssl)
        status, out, err = self.ikectl("ca", "nosuch", "delete", sslDir=ssl)
        self.assertEqual(status, 1)
        self.assertTrue(err.startswith("ikectl: "), err)
        self.assertEqual(err.count("\n"), 1)

    def test_consoleScript(self):
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        path = os.path.join(self.mktemp(), "iked.sock")
        self.patch(sys, "argv", ["ikectl", "-s", path, "reload"])
        e = self.assertRaises(SystemExit, cli.ikectl)
        self.assertEqual(e.code, 1)
        self.assertEqual(err.getvalue(), "ikectl: control socket %s: No such file or directory\n" % (path,))

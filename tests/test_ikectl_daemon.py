"""
ikectl against a running daemon (C{iked -d}, the console entry point, in a
process of its own) on a real UNIX socket: the ikectl console script's
commands, another user refused, a broken file on reload, monitor, and
SIGTERM ending the daemon with status 0.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from twisted.trial.unittest import TestCase

from ikedtx import cli
from ikedtx.control import commands as C
from ikedtx.control import sync
from ikedtx.testing.lab import poll
from tests.test_service import ROOT, freePorts

CONF = 'ikev2 "one" passive esp from 10.0.0.1 to 10.0.0.2 peer 127.0.0.2 psk "x"\n'


class RunningDaemon:
    """
    One C{iked -d} on 127.0.0.1 with its socket and log in a temporary
    directory.
    """

    def __init__(self, testCase, config=CONF, extraArgs=(), env=None):
        self.directory = tempfile.mkdtemp(prefix="ikx-ikectl-")
        testCase.addCleanup(shutil.rmtree, self.directory, True)
        self.config = os.path.join(self.directory, "iked.conf")
        self.socket = os.path.join(self.directory, "iked.sock")
        self.log = os.path.join(self.directory, "log")
        self.etc = os.path.join(self.directory, "etc")
        os.makedirs(self.etc)
        self.write(config)
        ike, natt = freePorts(2)
        environ = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        environ["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
        environ.update(env or {})
        with open(self.log, "w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from ikedtx.cli import iked; iked()", "-d", "-f", self.config,
                 "--listen", "127.0.0.1", "--ike-port", str(ike), "--natt-port", str(natt), "-s", self.socket,
                 "--etc-dir", self.etc, "--kernel", "decoupled"] + list(extraArgs),
                cwd=ROOT, env=environ, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        testCase.addCleanup(self.stop)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("iked exited with %s:\n%s" % (self.process.returncode, self.output()))
            try:
                sync.showStats(self.socket)
                return
            except sync.ControlError:
                time.sleep(0.05)
        raise AssertionError("iked did not answer on %s:\n%s" % (self.socket, self.output()))

    def write(self, text, path=None):
        path = path or self.config
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def output(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def ikectl(self, *words):
        out, err = io.StringIO(), io.StringIO()
        status = cli.runIkectl(["-s", self.socket] + list(words), out, err)
        return status, out.getvalue(), err.getvalue()


class IkectlDaemonTests(TestCase):
    def setUp(self):
        self.daemon = RunningDaemon(self)

    def test_commands(self):
        """
        The console script's daemon commands answer over the real socket.
        """
        d = self.daemon
        self.assertEqual(d.ikectl("show", "sa"), (0, "", ""))
        status, out, err = d.ikectl("--json", "show", "stats")
        self.assertEqual((status, err), (0, ""))
        stats = json.loads(out)
        self.assertEqual((stats["passive"], stats["coupled"]), (False, True))
        self.assertEqual(d.ikectl("passive"), (0, "passive request sent.\n", ""))
        self.assertTrue(sync.showStats(d.socket)["passive"])
        self.assertEqual(d.ikectl("-q", "active"), (0, "", ""))
        self.assertEqual(d.ikectl("decouple"), (0, "decouple request sent.\n", ""))
        self.assertFalse(sync.showStats(d.socket)["coupled"])
        self.assertEqual(d.ikectl("couple"), (0, "couple request sent.\n", ""))
        self.assertEqual(d.ikectl("log", "verbose"), (0, "logging request sent.\n", ""))
        self.assertTrue(sync.showStats(d.socket)["verbose"])
        self.assertEqual(d.ikectl("log", "brief")[0], 0)
        self.assertEqual(d.ikectl("reset", "sa"), (0, "reset request sent. (0 IKE SAs)\n", ""))
        status, out, err = d.ikectl("--json", "show", "certstore")
        self.assertEqual((status, json.loads(out)["root"]), (0, d.etc))
        self.assertEqual(d.ikectl("reset", "id", "nobody.example")[0], 0)
        self.assertEqual(d.ikectl("reload"), (0, "reload request sent.\n", ""))

    def test_brokenReload(self):
        """
        reload and load of a broken file: ikectl prints the FILE: LINE
        errors and fails; the daemon goes on with its configuration.
        """
        d = self.daemon
        d.write(CONF + "bogus\n")
        status, out, err = d.ikectl("reload")
        self.assertEqual(status, 1)
        self.assertEqual(err, "ikectl: %s: 2: syntax error at end of line\n" % (d.config,))
        other = d.write('ikev2 "two" esp from 10.0.0.3 to 10.0.0.4\nikev2 bad\n', os.path.join(d.directory, "o.conf"))
        status, out, err = d.ikectl("load", other)
        self.assertEqual((status, err), (1, "ikectl: %s: 2: syntax error at end of line\n" % (other,)))
        self.assertIsNone(d.process.poll())
        # The privilege-separated worker's lines reach the parent's log
        # after ikectl has its answer.
        poll(lambda: "ikectl load failed: keeping the configuration in force" in d.output(), 10.0, interval=0.05,
             what=lambda: "the worker's line in\n" + d.output())
        self.assertIn("ikectl reload failed: keeping the configuration in force", d.output())
        self.assertEqual(sync.showStats(d.socket)["counters"][0]["name"], "ikes_sa_created")
        d.write(CONF + 'ikev2 "two" passive esp from 10.0.0.3 to 10.0.0.4 peer 127.0.0.3 psk "y"\n')
        self.assertEqual(sync.reload(d.socket)["policies"], 2)

    def test_badArguments(self):
        """
        Bad arguments over the real socket: typed errors, no traceback in
        the daemon's log, and the daemon still answers.
        """
        d = self.daemon
        for command, arguments, code in ((C.ShowSA, {"offset": 2 ** 40}, b"BAD_ARGUMENT"),
                                         (C.DeleteChildSA, {"spiIn": "xyz"}, b"BAD_ARGUMENT"),
                                         (C.DeleteIkeSA, {"spiI": "0102"}, b"NO_SUCH_SA"),
                                         (C.Reset, {"what": "world"}, b"BAD_ARGUMENT")):
            e = self.assertRaises(sync.ControlError, sync.callRemote, d.socket, command, **arguments)
            self.assertEqual(e.code, code, str(e))
        # An Integer that is not one, sent by hand.
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(d.socket)
            s.sendall(b"\x00\x08_command\x00\x06ShowSA\x00\x04_ask\x00\x011\x00\x06offset\x00\x03abc\x00\x00")
            answer = sync._readBox(s)
        self.assertEqual(answer[b"_error_code"], b"BAD_ARGUMENT")
        self.assertEqual(sync.showSA(d.socket), [])
        self.assertNotIn("Traceback", d.output())

    def test_endlessBox(self):
        """
        A client that sends a box without end is disconnected; the daemon
        goes on.
        """
        d = self.daemon
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(d.socket)
            closed = False
            try:
                for i in range(64):
                    s.sendall(b"\x00\x01k\xff\xff" + b"v" * 0xffff)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            if not closed:
                try:
                    closed = s.recv(100) == b""
                except ConnectionResetError:
                    closed = True
        self.assertTrue(closed)
        self.assertEqual(sync.showSA(d.socket), [])
        # The privilege-separated worker's log line reaches the parent's
        # output a moment later.
        deadline = time.monotonic() + 10
        while "request box over" not in d.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("request box over", d.output())

    def _asUser(self, uid, action):
        """
        Run C{action()} in a forked child that became C{uid}; its outcome
        as text.
        """
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                try:
                    result = "ok %r" % (action(),)
                except Exception as e:
                    result = "%s %s" % (type(e).__name__, e)
                os.write(write, result.encode()[:4000])
            finally:
                os._exit(0)
        os.close(write)
        chunks = []
        while True:
            chunk = os.read(read, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read)
        os.waitpid(pid, 0)
        return b"".join(chunks).decode()

    def test_otherUserRefused(self):
        """
        Another user cannot connect: the socket's mode (0600) stops it;
        and were the mode wider, SO_PEERCRED does.
        """
        if os.geteuid() != 0:
            self.fail("needs root to become another user")
        d = self.daemon
        self.assertEqual(os.stat(d.socket).st_mode & 0o777, 0o600)
        os.chmod(self.daemon.directory, 0o755)
        outcome = self._asUser(65534, lambda: sync.showSA(d.socket))
        self.assertIn("Permission denied", outcome)
        os.chmod(d.socket, 0o666)
        outcome = self._asUser(65534, lambda: sync.showSA(d.socket))
        self.assertEqual(outcome, "ControlError control socket %s: the daemon closed the connection without "
                                  "answering (it serves only root and its own user)" % (d.socket,))
        self.assertIn("uid 65534 is neither root nor the daemon's user", d.output())
        # root still gets in.
        self.assertEqual(sync.showSA(d.socket), [])
        self.assertNotIn("Traceback", d.output())

    def test_monitor(self):
        """
        monitor streams events as they happen: a reload and a mode change
        made by another connection arrive, each with a time.
        """
        d = self.daemon
        events = sync.monitor(d.socket, timeout=30)
        before = time.time()
        # The subscription is made when the generator first runs; run it
        # in a thread and make the events once it is subscribed.
        received = []

        def read():
            for event in events:
                received.append(event)
                if len(received) == 2:
                    return

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.time() + 30
        while time.time() < deadline and not _monitors(d):
            time.sleep(0.05)
        self.assertEqual(d.ikectl("reload")[0], 0)
        self.assertEqual(d.ikectl("passive")[0], 0)
        reader.join(30)
        self.assertEqual([e["kind"] for e in received], ["reload", "mode"])
        self.assertEqual(received[1]["detail"], "passive")
        self.assertTrue(before - 1 <= received[0]["time"] <= time.time() + 1)


def _monitors(daemon):
    return "control: a monitor subscribed" in daemon.output()


class NotifyTests(TestCase):
    def test_sdNotify(self):
        """
        Under systemd (C{$NOTIFY_SOCKET}), the daemon says READY=1 once it
        answers on its socket, RELOADING=1 then READY=1 around a SIGHUP
        reload, and STOPPING=1 on SIGTERM (the unit is Type=notify).
        """
        directory = tempfile.mkdtemp(prefix="ikx-notify-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "notify")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.settimeout(30)
        d = RunningDaemon(self, env={"NOTIFY_SOCKET": path})
        self.assertEqual(listener.recv(100), b"READY=1")
        d.process.send_signal(signal.SIGHUP)
        self.assertEqual((listener.recv(100), listener.recv(100)), (b"RELOADING=1", b"READY=1"))
        d.process.send_signal(signal.SIGTERM)
        self.assertEqual(listener.recv(100), b"STOPPING=1")
        self.assertEqual(d.process.wait(30), 0)


class ReadOnlySocketTests(TestCase):
    def test_readOnly(self):
        """
        --ro-socket: a second socket, open to every user, that serves the
        show commands and monitor and refuses the rest.
        """
        if os.geteuid() != 0:
            self.fail("needs root to become another user")
        directory = tempfile.mkdtemp(prefix="ikx-ro-")
        self.addCleanup(shutil.rmtree, directory, True)
        os.chmod(directory, 0o755)
        ro = os.path.join(directory, "ro.sock")
        d = RunningDaemon(self, extraArgs=["--ro-socket", ro])
        self.assertEqual(os.stat(ro).st_mode & 0o777, 0o666)
        asNobody = IkectlDaemonTests._asUser
        self.assertEqual(asNobody(self, 65534, lambda: sync.showSA(ro)), "ok []")
        outcome = asNobody(self, 65534, lambda: sync.reset(ro, "sa"))
        self.assertEqual(outcome, "ControlError Reset: not on the read-only socket")
        e = self.assertRaises(sync.ControlError, sync.setMode, ro, "passive")
        self.assertEqual(e.kind, C.NotPermitted)
        self.assertFalse(sync.showStats(ro)["passive"])
        self.assertIn("read-only control socket %s" % (ro,), d.output())


class SigtermTests(TestCase):
    def test_exitZero(self):
        """
        SIGTERM stops the daemon cleanly, status 0 (not 143); a monitor
        connected meanwhile ends with one line.
        """
        d = RunningDaemon(self)
        out, err = io.StringIO(), io.StringIO()
        monitor = threading.Thread(target=lambda: statuses.append(
            cli.runIkectl(["-s", d.socket, "monitor"], out, err)))
        statuses = []
        monitor.start()
        deadline = time.time() + 30
        while time.time() < deadline and not _monitors(d):
            time.sleep(0.05)
        d.process.send_signal(signal.SIGTERM)
        self.assertEqual(d.process.wait(30), 0, d.output())
        # A monitor sees the daemon go: one line, status 1.
        monitor.join(30)
        self.assertEqual((statuses, err.getvalue()),
                         ([1], "ikectl: control socket %s: the daemon closed the connection\n" % (d.socket,)))
        self.assertIn("SIGTERM: deleting the SAs and stopping", d.output())
        self.assertIn("Server Shut Down.", d.output())
        self.assertFalse(os.path.exists(d.socket))

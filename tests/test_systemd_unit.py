"""
The systemd unit in conf/ikedtx.service: checked by C{systemd-analyze
verify} (with ExecStart pointed at this installation's C{iked}), shipped
with the package data, and holding the hardening a VPN daemon can take.
"""

import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.testing.support import requireExecutable, requireRoot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "conf", "ikedtx.service")


def readUnit(path=UNIT):
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str
    with open(path) as f:
        parser.read_file(f)
    return parser


#: A line systemd-analyze prints about some unit file: its path first.
OTHER_UNIT = re.compile(r"/\S+\.(service|socket|target|timer|mount|path|slice):\d*:? ")


class UnitTests(SynchronousTestCase):
    def verify(self, text):
        """
        C{systemd-analyze verify} of a unit file with C{text}: its status
        and output.
        """
        analyze = requireExecutable("systemd-analyze", "apt-get install systemd")
        directory = tempfile.mkdtemp(prefix="ikx-unit-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "ikedtx.service")
        with open(path, "w") as f:
            f.write(text)
        result = subprocess.run([analyze, "verify", "--man=no", path], capture_output=True, text=True, timeout=120)
        # verify also loads the units that share our targets and warns about
        # theirs (Debian 12's freeradius.service: MemoryLimit=); only what it
        # says of ours counts.
        output = "".join(line for line in (result.stdout + result.stderr).splitlines(True)
                         if not OTHER_UNIT.match(line) or line.startswith(path + ":"))
        return result.returncode, output

    def installedUnit(self):
        """
        The unit with ExecStart's C{/usr/local/bin/iked} replaced by the
        C{iked} console script of this installation.
        """
        iked = os.path.join(os.path.dirname(sys.executable), "iked")
        if not os.access(iked, os.X_OK):
            iked = requireExecutable("iked", "pip install ikedtx")
        with open(UNIT) as f:
            return f.read().replace("/usr/local/bin/iked", iked)

    def test_verifies(self):
        """
        systemd-analyze verify accepts the unit without a warning.
        """
        status, output = self.verify(self.installedUnit())
        self.assertEqual((status, output), (0, ""))

    def test_verifyCatchesMistakes(self):
        """
        The check can fail: a misspelt directive is reported.
        """
        status, output = self.verify(self.installedUnit().replace("ProtectSystem=", "ProtectSystm="))
        self.assertIn("Unknown key 'ProtectSystm'", output)

    def test_hardening(self):
        """
        The service runs iked in the foreground, reloads with SIGHUP, stops
        with SIGTERM, and is confined to what a VPN daemon needs.
        """
        service = readUnit()["Service"]
        self.assertEqual((service["Type"], service["NotifyAccess"]), ("notify", "main"))
        self.assertIn(" -d ", service["ExecStart"] + " ")
        self.assertEqual(service["ExecReload"], "/bin/kill -HUP $MAINPID")
        self.assertEqual(service["KillSignal"], "SIGTERM")
        self.assertEqual(set(service["CapabilityBoundingSet"].split()),
                         {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
                          # Privilege separation: the worker becomes _iked in
                          # an empty root, with an empty bounding set.
                          "CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT", "CAP_SETPCAP",
                          # ... and the parent signals it (SIGHUP passes a
                          # reload on), though it runs as another user.
                          "CAP_KILL"})
        self.assertEqual(set(service["RestrictAddressFamilies"].split()),
                         {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"})
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                           ("ProtectHome", "read-only"),
                           ("PrivateTmp", "yes"), ("ProtectKernelModules", "yes"), ("DevicePolicy", "closed"),
                           ("DeviceAllow", "/dev/net/tun rw"), ("SystemCallFilter", "@system-service chroot seccomp"),
                           ("UMask", "0077")):
            self.assertEqual(service[key], value, key)

    def test_notify(self):
        """
        sd_notify: a datagram to $NOTIFY_SOCKET (a path or an abstract
        name); nothing without it.
        """
        import socket

        from ikedtx.sdnotify import notify

        directory = tempfile.mkdtemp(prefix="ikx-notify-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(path)
            listener.settimeout(5)
            self.assertTrue(notify("READY=1", {"NOTIFY_SOCKET": path}))
            self.assertEqual(listener.recv(100), b"READY=1")
        abstract = "@ikx-notify-%d" % (os.getpid(),)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind("\0" + abstract[1:])
            listener.settimeout(5)
            self.assertTrue(notify("STOPPING=1", {"NOTIFY_SOCKET": abstract}))
            self.assertEqual(listener.recv(100), b"STOPPING=1")
        self.assertFalse(notify("READY=1", {}))
        self.assertFalse(notify("READY=1", {"NOTIFY_SOCKET": "relative"}))
        self.assertFalse(notify("READY=1", {"NOTIFY_SOCKET": os.path.join(directory, "gone")}))

    def test_packageData(self):
        """
        The unit is installed with the package's data files.
        """
        setup = configparser.ConfigParser(interpolation=None)
        setup.read(os.path.join(ROOT, "setup.cfg"))
        self.assertIn("conf/ikedtx.service", setup["options.data_files"]["share/ikedtx/systemd"].split())


_CHECK_UNIT = """\
[Unit]
Description=start, reload and stop ikedtx.service, then end the container
Wants=ikedtx.service
After=ikedtx.service
DefaultDependencies=no
SuccessAction=exit-force
FailureAction=exit-force

[Service]
Type=oneshot
ExecStart=/bin/sh /results/check.sh
"""

_CHECK = """\
exec > /results/out 2>&1
show() { systemctl show ikedtx -p ActiveState -p SubState -p Result -p ExecMainStatus -p MainPID | sort | tr '\\n' ' '; echo; }
echo "started: $(show)"
PYTHONPATH=%(root)s %(ikectl)s -s /run/iked.sock show stats | head -2 | tail -1 | sed 's/^/stats: /'
stat -c 'socket: %%a %%U' /run/iked.sock
systemctl reload ikedtx
# The privilege-separated worker reloads and logs it; its line reaches
# the journal through the parent, a moment later (under load, more than
# a second).
for i in $(seq 100); do journalctl -u ikedtx --no-pager | grep -q 'SIGHUP: reloading' && break; sleep 0.2; done
echo "reloaded: $(show)"
systemctl stop ikedtx
echo "stopped: $(show)"
journalctl -u ikedtx --no-pager | grep -c 'SIGHUP: reloading' | sed 's/^/reloads: /'
journalctl -u ikedtx --no-pager | grep -c 'seccomp filter loaded (enforce' | sed 's/^/filters: /'
journalctl -u ikedtx --no-pager | grep -c 'Traceback' | sed 's/^/tracebacks: /'
"""


class UnderSystemdTests(SynchronousTestCase):
    def test_startReloadStop(self):
        """
        The unit as shipped (only the paths of this installation changed in
        a drop-in) runs under a real systemd as PID 1 of a throw-away
        container (L{ikedtx/testing/sdcontainer.sh}): Type=notify reaches
        active/running, the control socket answers with mode 0600, reload
        sends SIGHUP and the daemon reloads, stop ends it with status 0.
        """
        requireRoot()
        requireExecutable("unshare", "apt-get install util-linux")
        if not os.path.exists("/lib/systemd/systemd"):
            requireExecutable("systemd", "apt-get install systemd")
        iked = UnitTests.installedUnit(self)
        bindir = os.path.dirname(sys.executable)
        directory = tempfile.mkdtemp(prefix="ikx-sd-")
        self.addCleanup(shutil.rmtree, directory, True)
        for sub in ("units/ikedtx.service.d", "etc", "results"):
            os.makedirs(os.path.join(directory, sub))
        with open(os.path.join(directory, "units", "ikedtx.service"), "w") as f:
            f.write(iked)
        real = os.path.realpath(sys.executable)
        dropIn = "[Service]\nEnvironment=PYTHONPATH=%s\n" % (ROOT,)
        # A python under /root or /home (pyenv, as on the project's machine)
        # runs with the unit's own ProtectHome=read-only: no drop-in for it.
        # The virtualenv whole (sys.prefix), the interpreter's own prefix
        # and the checkout.
        shares = (os.path.realpath(sys.prefix), os.path.dirname(os.path.dirname(real)), os.path.realpath(ROOT))
        temporary = sorted({path for path in shares if path.startswith(("/tmp/", "/var/tmp/"))})
        if temporary:
            # A checkout or virtualenv under /tmp (a CI clone): the container
            # and PrivateTmp=yes would each hide it.
            dropIn += "PrivateTmp=no\n"
        with open(os.path.join(directory, "units", "ikedtx.service.d", "here.conf"), "w") as f:
            f.write(dropIn)
        with open(os.path.join(directory, "units", "check.service"), "w") as f:
            f.write(_CHECK_UNIT)
        with open(os.path.join(directory, "results", "check.sh"), "w") as f:
            f.write(_CHECK % {"root": ROOT, "ikectl": os.path.join(bindir, "ikectl")})
        conf = os.path.join(directory, "etc", "iked.conf")
        with open(conf, "w") as f:
            f.write('ikev2 "one" passive esp from 10.0.0.1 to 10.0.0.2 peer 192.0.2.9 psk "x"\n')
        os.chmod(conf, 0o600)
        script = os.path.join(ROOT, "ikedtx", "testing", "sdcontainer.sh")
        env = dict(os.environ, SDCONTAINER_SHARE=":".join(temporary))
        result = subprocess.run([script, directory, "120"], capture_output=True, text=True, timeout=180, env=env)
        with open(os.path.join(directory, "results", "out")) as f:
            lines = dict(line.split(": ", 1) for line in f.read().splitlines() if ": " in line)
        report = "%r\n%s%s" % (lines, result.stdout, result.stderr)
        self.assertEqual(result.returncode, 0, report)
        self.assertRunning(lines.get("started", ""), report)
        self.assertEqual(lines.get("stats"), "\t0 IKE SAs created", report)
        self.assertEqual(lines.get("socket"), "600 root", report)
        self.assertRunning(lines.get("reloaded", ""), report)
        self.assertEqual(lines.get("reloads"), "1", report)
        # The unit's own system call filter leaves the worker room for its
        # narrower one; nothing went wrong loudly.
        self.assertEqual(lines.get("filters"), "1", report)
        self.assertEqual(lines.get("tracebacks"), "0", report)
        stopped = lines.get("stopped", "").split()
        for expected in ("ActiveState=inactive", "ExecMainStatus=0", "Result=success"):
            self.assertIn(expected, stopped, report)
        self.assertEqual(lines["started"].split()[2], lines["reloaded"].split()[2], "MainPID changed on reload")

    def assertRunning(self, line, report):
        for expected in ("ActiveState=active", "SubState=running", "Result=success"):
            self.assertIn(expected, line.split(), report)

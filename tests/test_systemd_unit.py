"""
The systemd unit in conf/ikedtx.service: checked by C{systemd-analyze
verify} (with ExecStart pointed at this installation's C{iked}), shipped
with the package data, and holding the hardening a VPN daemon can take.
"""

import configparser
import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.testing.support import requireExecutable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "conf", "ikedtx.service")


def readUnit(path=UNIT):
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str
    with open(path) as f:
        parser.read_file(f)
    return parser


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
        return result.returncode, result.stdout + result.stderr

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
                         {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"})
        self.assertEqual(set(service["RestrictAddressFamilies"].split()),
                         {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"})
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                           ("PrivateTmp", "yes"), ("ProtectKernelModules", "yes"), ("DevicePolicy", "closed"),
                           ("DeviceAllow", "/dev/net/tun rw"), ("SystemCallFilter", "@system-service"),
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

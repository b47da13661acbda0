"""
The worker's system call filter (issue 11), L{ikedtx.privsep.seccomp}: a
process that loads it the way the worker does (L{worker.prepareSyscallFilter},
L{worker.dropPrivileges}, L{worker.loadSyscallFilter}) is killed by SIGSYS
when it tries execve, ptrace or mount, gets EPERM for a socket outside its
families (AF_PACKET, XFRM netlink) and for other calls outside the list,
and still does what the worker does (UDP and NETLINK_ROUTE sockets,
threads). Each refusal is checked against the same call without the filter,
as root, where it works. The live worker's /proc status is checked in
L{tests.test_privsep_daemon}.
"""

import os
import pwd
import signal
import subprocess
import sys

from twisted.trial.unittest import TestCase

import ikedtx
from ikedtx.privsep import seccomp
from ikedtx.testing.support import requireRoot

PROBE = r"""
import ctypes, errno, os, socket, sys, threading
from ikedtx.privsep import worker

mode, call, drop, path = sys.argv[1:5]
libc = ctypes.CDLL(None, use_errno=True)
# Opened before the chroot, read (generated) after the load.
status = open("/proc/self/status")


def check(result):
    if result != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


CALLS = {
    "execve": lambda: os.execv("/bin/true", ["true"]),
    "ptrace": lambda: check(libc.ptrace(0, 0, None, None)),
    "mount": lambda: check(libc.mount(b"none", path.encode(), b"tmpfs", 0, None)),
    "packet": lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close(),
    "xfrm": lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6).close(),
    "route": lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close(),
    "udp": lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close(),
    "chmod": lambda: os.chmod(path, 0o700),
    "thread": thread,
    "status": lambda: print([line.split()[1] for line in status
                             if line.startswith(("Seccomp:", "NoNewPrivs:", "Uid:"))]),
}
syscalls = worker.prepareSyscallFilter(mode) if mode != "none" else None
if drop != "-":
    uid, gid = (int(x) for x in drop.split(":"))
    worker.dropPrivileges(uid, gid, path)
if syscalls is not None:
    worker.loadSyscallFilter(syscalls)
sys.stdout.write("loaded\n")
sys.stdout.flush()
try:
    CALLS[call]()
except OSError as e:
    print(errno.errorcode[e.errno])
else:
    print("ok")
"""


class SeccompFilterTests(TestCase):
    def setUp(self):
        requireRoot()
        self.path = self.mktemp()
        os.mkdir(self.path)

    def probe(self, mode, call, drop="-"):
        """
        Run C{call} in a new process after loading the filter in C{mode}
        (C{none}: no filter): its return code and output lines.
        """
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ikedtx.__file__)))
        done = subprocess.run([sys.executable, "-c", PROBE, mode, call, drop, self.path], capture_output=True,
                              text=True, timeout=60, env=env)
        return done.returncode, done.stdout.split()

    def assertKilled(self, call):
        """
        Without a filter C{call} gets past the kernel (as root); under the
        filter the process dies of SIGSYS at it.
        """
        code, out = self.probe("enforce", call)
        self.assertEqual((code, out), (-signal.SIGSYS, ["loaded"]))

    def test_execveKills(self):
        """
        execve kills the worker; without the filter /bin/true runs.
        """
        self.assertEqual(self.probe("none", "execve"), (0, ["loaded"]))
        self.assertKilled("execve")

    def test_ptraceKills(self):
        """
        ptrace (PTRACE_TRACEME here) kills; without the filter it works.
        """
        self.assertEqual(self.probe("none", "ptrace"), (0, ["loaded", "ok"]))
        self.assertKilled("ptrace")

    def test_mountKills(self):
        """
        mount kills before the kernel looks at its arguments (a failing
        mount without the filter is an errno, not a signal).
        """
        self.assertKilled("mount")

    def test_otherSocketFamiliesRefused(self):
        """
        AF_PACKET and XFRM netlink sockets get EPERM (root opens both
        without the filter); UDP and NETLINK_ROUTE, which the worker uses,
        stay open to it.
        """
        for call in ("packet", "xfrm"):
            self.assertEqual(self.probe("none", call), (0, ["loaded", "ok"]))
            self.assertEqual(self.probe("enforce", call), (0, ["loaded", "EPERM"]))
        for call in ("udp", "route", "thread"):
            self.assertEqual(self.probe("enforce", call), (0, ["loaded", "ok"]))

    def test_callOutsideListFailsOrIsLogged(self):
        """
        A call outside the list and not fatal (chmod) fails with EPERM in
        the enforce mode, and goes through in the log mode (the kernel logs
        it: how the list is built).
        """
        self.assertEqual(self.probe("enforce", "chmod"), (0, ["loaded", "EPERM"]))
        self.assertEqual(self.probe("log", "chmod"), (0, ["loaded", "ok"]))
        self.assertEqual(self.probe("off", "chmod"), (0, ["loaded", "ok"]))
        self.assertKilled("execve")
        code, out = self.probe("log", "execve")
        self.assertEqual(code, -signal.SIGSYS)

    def test_afterDroppingPrivileges(self):
        """
        As the worker does it: the filter is built, the privileges dropped
        (the worker's user, an empty root), then the filter loaded: mode 2
        (filter, 0 without it) with NoNewPrivs, and execve still kills.
        """
        user = pwd.getpwnam("_iked")
        drop = "%d:%d" % (user.pw_uid, user.pw_gid)
        uid = "'%d'," % (user.pw_uid,)
        self.assertEqual(self.probe("enforce", "status", drop), (0, ["loaded", "[" + uid, "'1',", "'2']", "ok"]))
        self.assertEqual(self.probe("none", "status", drop), (0, ["loaded", "[" + uid, "'1',", "'0']", "ok"]))
        code, out = self.probe("enforce", "execve", drop)
        self.assertEqual((code, out), (-signal.SIGSYS, ["loaded"]))


class PrepareTests(TestCase):
    def test_unknownMode(self):
        """
        A mode outside enforce, log and off is a ValueError.
        """
        self.assertRaises(ValueError, seccomp.prepare, "audit")

    def test_offIsNone(self):
        """
        C{off} builds nothing.
        """
        self.assertIsNone(seccomp.prepare("off"))

    def test_listsDisjoint(self):
        """
        No call is both allowed and fatal (libseccomp would take the last
        rule, silently).
        """
        self.assertEqual(set(seccomp.ALLOWED) & set(seccomp.FATAL), set())
        self.assertNotIn("socket", seccomp.ALLOWED)

    def test_missingLibrary(self):
        """
        Without libseccomp the worker goes on without a filter, and says
        so (L{SeccompUnavailable} from L{seccomp.prepare}).
        """
        from ikedtx.privsep import worker

        def missing():
            raise seccomp.SeccompUnavailable("no libseccomp")

        self.patch(seccomp, "_library", missing)
        self.assertRaises(seccomp.SeccompUnavailable, seccomp.prepare, "enforce")
        self.assertIsNone(worker.prepareSyscallFilter("enforce"))

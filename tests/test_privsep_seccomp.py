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
        Without libseccomp the default mode (C{enforce}) does not go on
        without a filter: L{worker.NoFilter}, which ends the worker with
        L{worker.EXIT_NO_FILTER}. The C{log} mode, chosen for debugging,
        logs it and runs without one (L{None}).
        """
        from twisted.logger import LogLevel, globalLogPublisher

        from ikedtx.privsep import worker

        def missing():
            raise seccomp.SeccompUnavailable("no libseccomp")

        self.patch(seccomp, "_library", missing)
        self.assertRaises(seccomp.SeccompUnavailable, seccomp.prepare, "enforce")
        error = self.assertRaises(worker.NoFilter, worker.prepareSyscallFilter, "enforce")
        self.assertEqual(str(error), "no libseccomp")
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.assertIsNone(worker.prepareSyscallFilter("log"))
        self.assertEqual([(e["log_level"], e["error"].args) for e in events if "error" in e],
                         [(LogLevel.error, ("no libseccomp",))])
        self.assertIsNone(worker.prepareSyscallFilter("off"))

    def test_release(self):
        """
        A filter built and released (the parent's start-up check) can be
        released again and was never loaded.
        """
        requireRoot()
        syscalls = seccomp.prepare("enforce")
        syscalls.release()
        syscalls.release()
        with open("/proc/self/status") as f:
            self.assertIn("Seccomp:\t0", f.read())


# Loads a filter that makes seccomp(SECCOMP_SET_MODE_FILTER, ...) fail with
# EFAULT (the answer libseccomp's probe for the filter flags expects, so
# that it builds a filter) and runs the rest of its arguments with Python:
# a kernel, or a service manager's filter, that refuses the worker's filter
# when it is loaded.
REFUSING = r"""
import errno, os, sys
from ikedtx.privsep import seccomp as S
lib = S._library()
context = lib.seccomp_init(S.SCMP_ACT_ALLOW)
S._add(lib, context, S.SCMP_ACT_ERRNO(errno.EFAULT), S._number(lib, "seccomp"), [(0, 1)])
if lib.seccomp_load(context) != 0:
    raise SystemExit("cannot load the refusing filter")
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""


class UnfilteredDaemonTests(TestCase):
    """
    A privilege-separated daemon whose worker cannot have its system call
    filter: with the default C{--privsep-seccomp} (C{enforce}) it does not
    serve, and says so in one line; with C{log} or C{off}, chosen
    explicitly, it serves without the filter.
    """

    def setUp(self):
        requireRoot()
        from tests import hostile

        self.hostile = hostile
        # A libseccomp.so.2 that is no library: dlopen fails as for a
        # missing or broken libseccomp2.
        self.libdir = os.path.abspath(self.mktemp())
        os.mkdir(self.libdir)
        with open(os.path.join(self.libdir, "libseccomp.so.2"), "wb") as f:
            f.write(b"not a shared object\n")
        self.brokenLibrary = {"LD_LIBRARY_PATH": self.libdir}

    def test_enforceRefusesToStart(self):
        """
        The default mode and no usable libseccomp: the daemon exits with
        status 1 before it binds anything, one line naming the filter and
        the options that run without it, no traceback.
        """
        daemon = self.hostile.LiveDaemon(self, start=False, env=self.brokenLibrary)
        code, out = daemon.run()
        self.assertEqual(code, 1, out)
        lines = [line for line in out.splitlines() if "system call filter" in line]
        self.assertEqual(len(lines), 1, out)
        self.assertIn("privilege separation: the worker's system call filter cannot be built: libseccomp", lines[0])
        self.assertIn("--privsep-seccomp log or off", lines[0])
        self.assertNotIn("Traceback", out)
        self.assertFalse(os.path.exists(daemon.socketPath))

    def test_explicitModesServeUnfiltered(self):
        """
        C{--privsep-seccomp log} with no usable libseccomp: the worker logs
        that it has no filter and serves (a peer establishes an IKE SA);
        C{off} serves without trying.
        """
        for mode, line in (("log", "no system call filter for the worker (log): libseccomp"),
                           ("off", "worker: no system call filter")):
            daemon = self.hostile.LiveDaemon(self, extraArgs=["--privsep-seccomp", mode], env=self.brokenLibrary)
            peer = self.hostile.HostilePeer(self, daemon)
            ikeSA = peer.establish()
            self.assertIsNotNone(ikeSA.established)
            self.assertIn(line, daemon.logWith(line))
            daemon.assertCleanLog(self)
            daemon.stop()

    def test_kernelRefusalStopsDaemon(self):
        """
        The filter is built (the start-up check passes) but the kernel
        refuses it when the worker loads it: the worker ends before it
        serves, the parent does not start another one and stops, status 1,
        with the reason and one critical line.
        """
        wrapper = os.path.abspath(self.mktemp())
        with open(wrapper, "w") as f:
            f.write(REFUSING)

        class Refused(self.hostile.LiveDaemon):
            def argv(self):
                return [sys.executable, wrapper] + super().argv()[1:]

        daemon = Refused(self, start=False)
        code, out = daemon.run()
        self.assertEqual(code, 1, out)
        self.assertIn("worker: cannot install the system call filter (--privsep-seccomp enforce): the kernel "
                      "refused the seccomp filter", out)
        critical = [line for line in out.splitlines() if "could not install its system call filter" in line]
        self.assertEqual(len(critical), 1, out)
        self.assertIn("the daemon stops (--privsep-seccomp log or off runs the worker without one)", critical[0])
        self.assertEqual(out.count("worker started: pid"), 1, out)
        self.assertNotIn("serves peers", out)
        self.assertNotIn("Traceback", out)

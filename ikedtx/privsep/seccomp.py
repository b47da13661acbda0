# -*- test-case-name: tests.test_privsep_seccomp -*-
"""
The worker's system call filter (seccomp, through Debian's libseccomp2
with ctypes), loaded after the worker dropped its privileges.

An allow-list: what CPython, Twisted's epoll reactor, its thread pool and
the worker's sockets (the adopted UDP and control sockets, the AMP and
signing socketpairs, RADIUS over UDP, OCSP over TCP, the address monitor's
NETLINK_ROUTE socket) call. Two actions for the rest:

  - the calls an attacker who runs code in the worker wants first
    (L{FATAL}: execve, ptrace, mount, setns, bpf, module loading...) kill
    the worker (SIGSYS): no Python path of the worker makes them, and the
    parent starts another and flushes what the dead one installed;
  - any other call outside the list fails with EPERM: a rarely taken path
    that the list missed (a library calling something new) raises an
    C{OSError} the worker logs and survives, instead of a dead worker and
    every IKE SA lost with it. C{socket()} is allowed for AF_UNIX, AF_INET,
    AF_INET6 and AF_NETLINK with NETLINK_ROUTE only: AF_PACKET, raw XFRM
    netlink and the rest get EPERM.

Modes (C{--privsep-seccomp}): C{enforce} (the above), C{log} (calls
outside the list are allowed and the kernel logs each, C{audit: type=1326}
in the kernel log: how the list is built and checked; the fatal ones still
kill), C{off}.

libseccomp is opened (C{dlopen}) and the filter built by L{prepare} while
the file system is still there; L{Filter.load} runs after the chroot and
the drop of the ids.
"""

import ctypes
import ctypes.util
import errno
import socket

MODES = ("enforce", "log", "off")

# libseccomp's actions and attributes (seccomp.h).
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_CTL_LOG = 6
SCMP_CMP_EQ = 4
_NR_SCMP_ERROR = -1

NETLINK_ROUTE = 0


def SCMP_ACT_ERRNO(code):
    return 0x00050000 | (code & 0xFFFF)


#: Killing calls: never made by the worker's own code paths; the first
#: steps of an attacker who got code running in it (exec a shell, attach to
#: or read another process, change namespaces or mounts, load BPF or a
#: module, change ids, reach the kernel's keyring).
FATAL = (
    "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
    "pidfd_getfd", "kcmp", "mount", "umount2", "pivot_root", "chroot", "setns", "unshare",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "userfaultfd", "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "syslog",
    "add_key", "request_key", "keyctl", "setuid", "setgid", "setreuid", "setregid",
    "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid", "capset", "personality",
    "iopl", "ioperm", "open_by_handle_at", "name_to_handle_at", "quotactl", "lookup_dcookie",
    "seccomp", "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "io_uring_setup", "io_uring_enter", "io_uring_register",
)

#: What the worker calls, found with the C{log} mode over the privsep
#: daemon's tests (charon and openiked interop, restart, reload, control).
ALLOWED = (
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "membarrier",
    # files and descriptors (what is already open, and the empty root)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "lseek",
    "close", "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl", "pipe", "pipe2",
    "openat", "open", "stat", "fstat", "lstat", "newfstatat", "statx", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd", "fsync", "fdatasync",
    "ftruncate", "eventfd2", "umask", "unlink", "unlinkat",
    # polling and time
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll",
    "select", "pselect6", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres",
    "gettimeofday", "time", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    # processes, threads, signals
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
    "getresuid", "getresgid", "getpgrp", "getpgid", "getsid", "getrlimit", "prlimit64",
    "getrusage", "times", "uname", "sysinfo", "getrandom", "sched_yield", "sched_getaffinity",
    "clone", "clone3", "futex", "set_robust_list", "get_robust_list", "set_tid_address", "rseq",
    "exit", "exit_group", "wait4", "waitid", "kill", "tgkill", "tkill", "rt_sigaction",
    "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "sigaltstack",
    "restart_syscall", "arch_prctl", "prctl",
    # sockets (C{socket()} itself: see L{_socketRules})
    "socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname",
    "getpeername", "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "shutdown",
)


class SeccompUnavailable(Exception):
    """
    libseccomp could not be opened or refused the filter.
    """


class _ArgCompare(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _library():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise SeccompUnavailable("libseccomp (Debian's libseccomp2) cannot be opened: %s" % (e,))
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCompare)]
    return lib


def _socketRules():
    """
    The C{socket()} calls the worker makes, as argument comparisons.
    """
    rules = [[(0, socket.AF_UNIX)], [(0, socket.AF_INET)], [(0, socket.AF_INET6)],
             [(0, socket.AF_NETLINK), (2, NETLINK_ROUTE)]]
    return rules


class Filter:
    """
    A filter built by libseccomp, not yet loaded.

    @ivar mode: one of L{MODES} but C{off}.
    @ivar allowed: how many calls the list allows.
    """

    def __init__(self, lib, context, mode, allowed):
        self._lib, self._context, self.mode, self.allowed = lib, context, mode, allowed

    def release(self):
        """
        Free the filter without loading it (a check that it can be built).
        """
        if self._context is not None:
            self._lib.seccomp_release(self._context)
            self._context = None

    def load(self):
        """
        Load the filter into the kernel for every thread of the process.

        @raise SeccompUnavailable: the kernel refused it.
        """
        result = self._lib.seccomp_load(self._context)
        self._lib.seccomp_release(self._context)
        self._context = None
        if result != 0:
            raise SeccompUnavailable("the kernel refused the seccomp filter: %s" % (errno.errorcode.get(-result,
                                                                                                         result),))


def _number(lib, name):
    number = lib.seccomp_syscall_resolve_name(name.encode("ascii"))
    return None if number == _NR_SCMP_ERROR else number


def _add(lib, context, action, number, compares=()):
    array = (_ArgCompare * max(len(compares), 1))(*[_ArgCompare(arg, SCMP_CMP_EQ, value, 0)
                                                    for arg, value in compares])
    result = lib.seccomp_rule_add_array(context, action, number, len(compares), array)
    if result != 0:
        raise SeccompUnavailable("libseccomp refused a rule for syscall %d: %s" % (
            number, errno.errorcode.get(-result, result)))


def prepare(mode, allowed=ALLOWED, fatal=FATAL):
    """
    Build the worker's filter (L{None} for C{off}).

    @raise SeccompUnavailable: no libseccomp, or it refused a rule.
    @raise ValueError: an unknown mode.
    """
    if mode not in MODES:
        raise ValueError("seccomp mode %r: one of %s" % (mode, ", ".join(MODES)))
    if mode == "off":
        return None
    lib = _library()
    default = SCMP_ACT_LOG if mode == "log" else SCMP_ACT_ERRNO(errno.EPERM)
    context = lib.seccomp_init(default)
    if not context:
        raise SeccompUnavailable("seccomp_init failed")
    try:
        # Threads started before the load get the filter too; the kernel
        # logs what the filter refuses or kills, not only the log mode.
        for attribute in (SCMP_FLTATR_CTL_TSYNC, SCMP_FLTATR_CTL_LOG):
            if lib.seccomp_attr_set(context, attribute, 1) != 0:
                raise SeccompUnavailable("libseccomp refused attribute %d" % (attribute,))
        count = 0
        for name in allowed:
            number = _number(lib, name)
            if number is not None:
                _add(lib, context, SCMP_ACT_ALLOW, number)
                count += 1
        socketCall = _number(lib, "socket")
        for compares in _socketRules():
            _add(lib, context, SCMP_ACT_ALLOW, socketCall, compares)
        for name in fatal:
            number = _number(lib, name)
            if number is not None:
                _add(lib, context, SCMP_ACT_KILL_PROCESS, number)
    except BaseException:
        lib.seccomp_release(context)
        raise
    return Filter(lib, context, mode, count + 1)

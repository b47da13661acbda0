# -*- test-case-name: tests.test_privsep_daemon -*-
"""
The unprivileged worker of a privilege-separated daemon (C{python -m
ikedtx.privsep.worker}, spawned by L{ikedtx.privsep.parent}).

It reads its layout and state from standard input, imports every module it
will need, then drops its privileges (L{dropPrivileges}: an empty root
directory, the worker user's uid and gid, no capabilities, no new
privileges) before it touches a peer's datagram. It runs the core, the
shell and the control protocol on the sockets the parent bound; the
datapath is the parent's (L{RemoteKernel}), and so is the private key
(L{ikedtx.privsep.signer}). Its log goes to standard output, one
C{LEVEL<TAB>text} line per event, for the parent to log.

File descriptors: 0 the state, 1 the log, 2 errors, 3 the AMP socketpair,
4 the signing socketpair, then the UDP sockets and the control sockets.
"""

import ctypes
import os
import pickle
import socket
import sys

AMP_FD, SIGN_FD = 3, 4

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_SET_DUMPABLE = 4


def _prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _lastCapability():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 63


def dropPrivileges(uid, gid, root):
    """
    Give up everything root had: the capability bounding set, the file
    system (chroot into the empty C{root}), the groups, the ids (real,
    effective and saved), then set no-new-privileges. Checked: setuid(0)
    must fail afterwards.

    @raise OSError: a step failed (the worker must not go on).
    """
    last = _lastCapability()
    os.chroot(root)
    os.chdir("/")
    for capability in range(last + 1):
        try:
            _prctl(_PR_CAPBSET_DROP, capability)
        except OSError:
            pass
    os.setgroups([gid])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise OSError("privileges could not be dropped: setuid(0) worked")


def prepareSyscallFilter(mode):
    """
    Build the worker's seccomp filter (L{ikedtx.privsep.seccomp}) while
    libseccomp can still be opened; L{None} for C{off}, or where libseccomp
    is missing (logged: the worker then runs without one).
    """
    from twisted.logger import Logger

    from ikedtx.privsep import seccomp

    try:
        return seccomp.prepare(mode)
    except seccomp.SeccompUnavailable as e:
        Logger(namespace="ikedtx.privsep").error("no system call filter for the worker: {error}", error=e)
        return None


def loadSyscallFilter(syscalls):
    """
    Load C{syscalls} (from L{prepareSyscallFilter}), after the drop of the
    privileges; a filter the kernel refuses ends the worker.
    """
    from twisted.logger import Logger

    log = Logger(namespace="ikedtx.privsep")
    if syscalls is None:
        log.info("worker: no system call filter")
        return
    syscalls.load()
    log.info("worker: seccomp filter loaded ({mode}: {n} system calls allowed)", mode=syscalls.mode,
             n=syscalls.allowed)


def importEverything():
    """
    Import what the worker may import lazily later, while the file system
    is still there: every ikedtx module but the lab, and the standard and
    Twisted modules imported inside functions.
    """
    import pkgutil

    import cryptography

    import ikedtx

    for package in (ikedtx, cryptography):
        prefix = package.__name__ + "."
        for info in pkgutil.walk_packages(package.__path__, prefix):
            if info.name.startswith(("ikedtx.testing", "ikedtx.demo", "ikedtx.privsep.worker")):
                continue
            try:
                __import__(info.name)
            except Exception:
                pass
    from twisted.internet import tcp

    # The descriptor kept for accept()'s EMFILE handling opens /dev/null
    # on first use: open it now.
    tcp._reservedFD.reserve()
    for name in ("encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_8",
                 # EAP-MSCHAPv2's password hash (utf-16-le), identities' BMP and universal strings.
                 "encodings.utf_16_le", "encodings.utf_16_be", "encodings.utf_32_be", "twisted.internet.threads",
                 "twisted.python.threadpool", "twisted.internet.unix", "twisted.internet.udp",
                 "twisted.internet._threadedselect", "twisted.names.client", "twisted.python.syslog", "syslog",
                 "json", "hmac", "zlib", "hashlib", "secrets", "uuid", "traceback", "linecache",
                 "cryptography.hazmat.primitives.asymmetric.padding", "cryptography.x509.verification",
                 # --metrics (its optional dependency, imported when served)
                 "prometheus_client", "prometheus_client.core", "prometheus_client.exposition",
                 "twisted.web.server", "twisted.web.util", "twisted.web.error"):
        try:
            __import__(name)
        except Exception:
            pass


def _logObserver(level):
    from ikedtx.logtext import messageText
    from ikedtx.tap import levelFiltered

    def emit(event):
        text = messageText(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        name = event.get("log_level").name if event.get("log_level") is not None else "info"
        out = "".join("%s\t%s\n" % (name, line) for line in text.splitlines() or [""])
        try:
            sys.stdout.write(out)
            sys.stdout.flush()
        except OSError:
            pass

    return levelFiltered(emit, level)


def main():
    data = sys.stdin.buffer.read()
    layout, stateBytes, options = pickle.loads(data)
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.logger import LogLevel, globalLogBeginner

    globalLogBeginner.beginLoggingTo([_logObserver(LogLevel.debug if options.get("verbose") else LogLevel.info)],
                                     redirectStandardIO=False)
    from ikedtx.privsep.signer import RemoteSigner
    from ikedtx.privsep.state import loadState

    signer = RemoteSigner(socket.socket(fileno=SIGN_FD))
    config, resolved, credentials = loadState(stateBytes, signer)
    importEverything()
    from ikedtx.privsep.workerservice import WorkerService

    service = WorkerService(config, options, reactor, credentials, layout, resolved, signer)
    syscalls = prepareSyscallFilter(options.get("privsep-seccomp") or "enforce")
    dropPrivileges(layout["uid"], layout["gid"], layout["chroot"])
    loadSyscallFilter(syscalls)
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()


if __name__ == "__main__":
    main()

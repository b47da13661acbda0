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
C{LEVEL<TAB>text} line per event, the lines of a reactor turn in one write,
for the parent to log.

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


#: The worker's exit status when its system call filter cannot be built or
#: loaded in the C{enforce} mode (EX_CONFIG): the parent then stops the
#: daemon instead of starting another worker that would fail alike.
EXIT_NO_FILTER = 78


class NoFilter(Exception):
    """
    The C{enforce} mode's filter cannot be built or loaded: the worker must
    not serve (L{EXIT_NO_FILTER}).
    """


def prepareSyscallFilter(mode):
    """
    Build the worker's seccomp filter (L{ikedtx.privsep.seccomp}) while
    libseccomp can still be opened; L{None} for C{off}.

    @raise NoFilter: libseccomp cannot be opened or refused a rule in the
        C{enforce} mode (the default). In the C{log} mode, which the user
        chose for debugging, that is logged and the worker runs without a
        filter.
    """
    from twisted.logger import Logger

    from ikedtx.privsep import seccomp

    try:
        return seccomp.prepare(mode)
    except seccomp.SeccompUnavailable as e:
        if mode == "enforce":
            raise NoFilter(str(e))
        Logger(namespace="ikedtx.privsep").error("no system call filter for the worker ({mode}): {error}",
                                                 mode=mode, error=e)
        return None


def loadSyscallFilter(syscalls):
    """
    Load C{syscalls} (from L{prepareSyscallFilter}), after the drop of the
    privileges.

    @raise NoFilter: the kernel refused the C{enforce} mode's filter (in
        the C{log} mode that is logged and the worker runs without one).
    """
    from twisted.logger import Logger

    from ikedtx.privsep import seccomp

    log = Logger(namespace="ikedtx.privsep")
    if syscalls is None:
        log.info("worker: no system call filter")
        return
    try:
        syscalls.load()
    except seccomp.SeccompUnavailable as e:
        if syscalls.mode == "enforce":
            raise NoFilter(str(e))
        log.error("no system call filter for the worker ({mode}): {error}", mode=syscalls.mode, error=e)
        return
    log.info("worker: seccomp filter loaded ({mode}: {n} system calls allowed)", mode=syscalls.mode,
             n=syscalls.allowed)


#: ikedtx modules the worker never imports: the lab, the demo, the worker's
#: own module, the parent (of one worker or of a pool) and its datapath
#: providers (the worker's kernel is a L{RemoteKernel}, its ports are
#: adopted: the XFRM provider alone pulls pyroute2, about 7 MB of RSS), and the commands that run in other
#: processes (C{iked} and C{ikectl}'s clients, the certificate authority of
#: C{ikectl ca}).
NEVER_IN_WORKER = ("ikedtx.testing", "ikedtx.demo", "ikedtx.privsep.worker", "ikedtx.privsep.parent",
                   "ikedtx.privsep.pool", "ikedtx.cli",
                   "ikedtx.kernel.xfrm", "ikedtx.kernel.userspace", "ikedtx.kernel.esp", "ikedtx.kernel.routes",
                   "ikedtx.kernel.probe", "ikedtx.control.client", "ikedtx.control.sync", "ikedtx.control.ikectl",
                   "ikedtx.pki.ca", "ikedtx.pki.command")

#: Imported only with --metrics (a command line option: a reload cannot
#: add it); Twisted's web modules are imported in any case (OCSP's client
#: needs what they import, down to the charmap codec).
METRICS_MODULES = ("ikedtx.metrics", "prometheus_client", "prometheus_client.core", "prometheus_client.exposition")


def importEverything(metrics=True):
    """
    Import what the worker may import lazily later, while the file system
    is still there: every ikedtx module but L{NEVER_IN_WORKER} (and
    L{METRICS_MODULES} unless C{metrics}), and the standard and Twisted
    modules imported inside functions.
    """
    import pkgutil

    import cryptography

    import ikedtx
    from ikedtx import lean

    # OCSP's client speaks plain HTTP only (ikedtx.pki.ocsp): Twisted's web
    # client and endpoints without TLS, as ikedtx.lean imports the reactor
    # (about 2 MB: twisted.internet.ssl, service_identity).
    lean.importWithout(("twisted.internet.endpoints", "twisted.web.client"), "OpenSSL")
    for package in (ikedtx, cryptography):
        prefix = package.__name__ + "."
        for info in pkgutil.walk_packages(package.__path__, prefix):
            if info.name.startswith(NEVER_IN_WORKER) or (not metrics and info.name in METRICS_MODULES):
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
                 # imported when first used in a process with a file system
                 # (ikedtx.lean): certificate chains, sntrup761x25519
                 "OpenSSL.crypto", "pqcrypto.kem.sntrup_761",
                 "twisted.web.server", "twisted.web.util", "twisted.web.error", "encodings.charmap") + (
                 # --metrics (its optional dependency, imported when served)
                 METRICS_MODULES if metrics else ()):
        try:
            __import__(name)
        except Exception:
            pass


def _logObserver(level, reactor=None, out=None):
    """
    The worker's log observer: each event as C{LEVEL<TAB>text} lines on
    standard output (C{out}), for the parent to log.

    With a C{reactor}, the lines of one reactor turn go to the parent in
    one write at its end (it wakes once for them, not once a line: under
    load a turn answers several datagrams); a warning or worse, a line
    logged off the reactor's thread or while the reactor is not running
    goes at once, with the lines waiting before it, and so do the lines
    waiting when the worker exits. (Waiting longer than the turn would
    save more writes, but the lines would reach the log later than the
    datagrams they tell of.)
    """
    import atexit
    import threading

    from ikedtx.logtext import messageText
    from ikedtx.tap import levelFiltered
    from twisted.logger import LogLevel

    out = out if out is not None else sys.stdout
    reactorThread = threading.get_ident()
    lines, call, lock = [], [], threading.Lock()

    def flush():
        with lock:
            data = "".join(lines)
            if threading.get_ident() == reactorThread:
                # (Off its thread, the reactor's call finds nothing.)
                for delayed in call:
                    if delayed.active():
                        delayed.cancel()
                call[:] = []
            lines[:] = []
        try:
            out.write(data)
            out.flush()
        except OSError:
            pass

    def emit(event):
        text = messageText(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        logLevel = event.get("log_level")
        name = logLevel.name if logLevel is not None else "info"
        text = "".join("%s\t%s\n" % (name, line) for line in text.splitlines() or [""])
        with lock:
            lines.append(text)
        if (reactor is None or not reactor.running or (logLevel is not None and logLevel >= LogLevel.warn)
                or threading.get_ident() != reactorThread):
            flush()
        elif not call:
            call.append(reactor.callLater(0, flush))

    # What the last turn logged, when the worker exits before its end.
    atexit.register(lambda: lines and flush())
    return levelFiltered(emit, level)


def main():
    from ikedtx import lean

    # Before Twisted is imported (ikedtx.lean).
    lean.prepare()
    data = sys.stdin.buffer.read()
    layout, stateBytes, options = pickle.loads(data)
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.logger import LogLevel, globalLogBeginner

    globalLogBeginner.beginLoggingTo([_logObserver(LogLevel.debug if options.get("verbose") else LogLevel.info,
                                                   reactor)], redirectStandardIO=False)
    from ikedtx.privsep.signer import RemoteSigner
    from ikedtx.privsep.state import loadState

    signer = RemoteSigner(socket.socket(fileno=SIGN_FD))
    config, resolved, credentials = loadState(stateBytes, signer)
    importEverything(metrics=bool(options.get("metrics")))
    from ikedtx.privsep.workerservice import WorkerService

    service = WorkerService(config, options, reactor, credentials, layout, resolved, signer)
    try:
        syscalls = prepareSyscallFilter(options.get("privsep-seccomp") or "enforce")
        dropPrivileges(layout["uid"], layout["gid"], layout["chroot"])
        loadSyscallFilter(syscalls)
    except NoFilter as e:
        # Nothing was served yet; one line for the parent's log.
        from twisted.logger import Logger

        Logger(namespace="ikedtx.privsep").error(
            "worker: cannot install the system call filter (--privsep-seccomp enforce): {error}", error=e)
        sys.exit(EXIT_NO_FILTER)
    service.startService()
    # what importing every module left free in the C library's heap
    lean.trimHeap()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()


if __name__ == "__main__":
    main()

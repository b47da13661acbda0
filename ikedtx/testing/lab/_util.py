# -*- test-case-name: tests.test_lab_harness -*-
"""
Small helpers shared by the lab harness: polling, running commands, and
stopping processes that the harness itself started.
"""

import atexit
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time

from twisted.internet import defer, task, threads


#: the directory that holds the ikedtx package (a checkout's root): the
#: PYTHONPATH and working directory of the daemons and helpers the lab starts
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class LabError(AssertionError):
    """
    Something in the lab (a namespace, a peer daemon, a capture) did not
    behave; the message carries the command and its output, or the daemon's
    log, so that a failing test says why.
    """


def run(argv, check=True, timeout=30, input=None, env=None):
    """
    Run C{argv} synchronously (test set-up) and return its
    L{subprocess.CompletedProcess} with text C{stdout} and C{stderr}.

    @raise LabError: if C{check} and the command exits non-zero or times out.
    """
    try:
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        raise LabError("timed out after %ss: %s\n%s%s" % (timeout, " ".join(argv), e.stdout or "", e.stderr or ""))
    if check and result.returncode != 0:
        raise LabError(
            "exit %d: %s\nstdout:\n%s\nstderr:\n%s" % (result.returncode, " ".join(argv), result.stdout, result.stderr)
        )
    return result


def poll(predicate, timeout=10.0, interval=0.02, what=None):
    """
    Call C{predicate} until it returns something true, and return that.

    @param what: a description for the error, or a callable returning one
        (called only on failure, e.g. to include a daemon's log).
    @raise LabError: when C{timeout} seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            if callable(what):
                what = what()
            raise LabError("timed out after %.1fs waiting for %s" % (timeout, what or predicate))
        time.sleep(interval)


def waitFor(predicate, timeout=10.0, interval=0.05, what=None, reactor=None):
    """
    Like L{poll} but without blocking the reactor: return a L{Deferred} that
    fires with the first true result of C{predicate} (called in the reactor
    thread every C{interval} seconds) or fails with L{LabError}.
    """
    if reactor is None:
        from twisted.internet import reactor
    deadline = reactor.seconds() + timeout

    @defer.inlineCallbacks
    def loop():
        while True:
            result = predicate()
            if result:
                return result
            if reactor.seconds() >= deadline:
                description = what() if callable(what) else what
                raise LabError("timed out after %.1fs waiting for %s" % (timeout, description or predicate))
            yield task.deferLater(reactor, interval, lambda: None)

    return loop()


class InThread:
    """
    Wrap a blocking lab object so that its methods return L{Deferred}s, run in
    the reactor's thread pool: a test whose own daemon runs in the test's
    reactor must not block that reactor while a peer negotiates with it.

        d = InThread(charon).initiate(child="net")

    @ivar wrapped: the blocking object.
    """

    def __init__(self, wrapped):
        self.wrapped = wrapped

    def __getattr__(self, name):
        method = getattr(self.wrapped, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            return threads.deferToThread(method, *args, **kwargs)

        return call


def inThread(obj):
    """
    Return L{InThread}C{(obj)}.
    """
    return InThread(obj)


def alive(pid):
    """
    Is process C{pid} still there (and not a zombie of ours)?
    """
    try:
        pid_, status = os.waitpid(pid, os.WNOHANG)
        if pid_ == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def stopProcess(process, timeout=3.0):
    """
    Stop a L{subprocess.Popen} that the harness started: SIGTERM, wait up to
    C{timeout} seconds, then SIGKILL. Return its exit status.
    """
    if process.poll() is not None:
        return process.returncode
    try:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(5)


def readText(path):
    """
    The text of C{path}, or a note that it is missing.
    """
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return "(%s does not exist)" % (path,)


def writeFile(path, content, mode=0o644):
    """
    Write C{content} (str or bytes) to C{path} with C{mode}, creating parent
    directories.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)
    return path


_socketDir = None
_socketCounter = itertools.count(1)
#: sun_path holds 108 bytes; trial's temporary directories are longer
MAX_SOCKET_PATH = 100


IKED_TREE = ("ca", "certs", "crls", "private", "pubkeys/ipv4", "pubkeys/ipv6", "pubkeys/fqdn", "pubkeys/ufqdn")


def makeIkedTree(etc):
    """
    An empty /etc/iked layout under C{etc} (private/ mode 0700), as both
    iked and ikedtx read it.
    """
    for d in IKED_TREE:
        os.makedirs(os.path.join(etc, d), exist_ok=True)
    os.chmod(os.path.join(etc, "private"), 0o700)
    return etc


def socketPath(directory, name):
    """
    A path for UNIX socket C{name}: inside C{directory} if that is short
    enough for C{sun_path}, else a unique name in a per-process directory
    under the system's temporary directory (removed at exit).
    """
    global _socketDir
    path = os.path.join(directory, name)
    if len(path) <= MAX_SOCKET_PATH:
        return path
    if _socketDir is None:
        _socketDir = tempfile.mkdtemp(prefix="ikx%d-" % (os.getpid(),))
        atexit.register(shutil.rmtree, _socketDir, True)
    return os.path.join(_socketDir, "%d-%s" % (next(_socketCounter), name))

# -*- test-case-name: tests.test_control -*-
"""
A blocking client of the control socket, for command-line tools and test
harnesses that run no reactor: one AMP request, one answer (or, for
C{monitor}, a stream of events).
"""

import socket
import struct

from twisted.protocols import amp

from ikedtx.control import commands as C
from ikedtx.control.commands import CommandFailed


class ControlError(Exception):
    """
    The daemon refused a command, or the socket broke.

    @ivar code: the AMP error code (C{b"NO_SUCH_SA"}, ...) or L{None}.
    """

    def __init__(self, message, code=None):
        Exception.__init__(self, message)
        self.code = code

    @property
    def kind(self):
        """
        The typed error of L{C.ERRORS} this is, or L{None}.
        """
        return C.ERROR_CODES.get(self.code)


#: A connection the daemon dropped (before or after the request went).
_DROPS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)

#: What a connection the daemon drops unanswered most likely means.
_DROPPED = "the daemon closed the connection without answering (it serves only root and its own user)"

#: The same, for a command that changes something: the privilege-separated
#: daemon's worker may have died while it served it (the parent restarts
#: it; the connections it held are gone).
_DROPPED_UNSAFE = ("the daemon closed the connection without answering: the command may not have run (its worker "
                   "may have restarted: see the daemon's log and ikectl show sa), or it serves only root and its "
                   "own user")

#: The commands that only read: sent once more on a new connection when
#: the first is dropped unanswered (a worker that died while it served
#: it: the parent holds the new connection until the next worker serves
#: it).
REPEATABLE = frozenset([C.ShowSA, C.ShowStats, C.ShowCertstore])


class _BoxReader:
    """
    Reads AMP boxes from a blocking socket.
    """

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError(_DROPPED)
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def box(self):
        box = {}
        while True:
            (keyLength,) = struct.unpack("!H", self.read(2))
            if keyLength == 0:
                return amp.AmpBox(box)
            key = self.read(keyLength)
            (valueLength,) = struct.unpack("!H", self.read(2))
            box[key] = self.read(valueLength)


def _readBox(sock):
    return _BoxReader(sock).box()


def _request(command, arguments, tag=b"1"):
    box = command.makeArguments(arguments, None)
    box[b"_command"] = command.commandName
    box[b"_ask"] = tag
    return box


def _answer(command, answer):
    if b"_error" in answer:
        message = answer.get(b"_error_description", b"").decode("utf-8", "replace")
        code = answer.get(b"_error_code")
        if code in C.ERROR_CODES:
            raise ControlError(message, code)
        raise ControlError("%s failed: %s" % (command.commandName.decode(), message), code)
    return command.parseResponse(answer, None)


def _connect(path, timeout):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def callRemote(path, command, timeout=30.0, **arguments):
    """
    Send C{command} (an L{amp.Command}) with C{arguments} to the control
    socket at C{path} and return its response dict.

    @raise ControlError: the command failed (with the daemon's message and
        error code) or the socket could not be used.
    """
    box = _request(command, arguments)
    try:
        try:
            answer = _exchange(path, box, timeout)
        except _DROPS:
            if command not in REPEATABLE:
                raise ControlError("control socket %s: %s" % (path, _DROPPED_UNSAFE))
            answer = _exchange(path, box, timeout)
    except _DROPS:
        raise ControlError("control socket %s: %s" % (path, _DROPPED))
    except OSError as e:
        raise ControlError("control socket %s: %s" % (path, e.strerror or e))
    return _answer(command, answer)


def _exchange(path, box, timeout):
    """
    Send C{box} on a new connection to C{path}; the answer box.
    """
    with _connect(path, timeout) as sock:
        sock.sendall(box.serialize())
        return _readBox(sock)


def showSA(path, timeout=30.0):
    """
    Every IKE SA of the daemon at C{path}, asked for a page at a time.
    """
    pages = C.showSAPages()
    request = next(pages)
    while True:
        response = callRemote(path, C.ShowSA, timeout=timeout, **request)
        try:
            request = pages.send(response)
        except StopIteration as done:
            return done.value


def showStats(path, timeout=30.0):
    return callRemote(path, C.ShowStats, timeout=timeout)


def showCertstore(path, timeout=30.0):
    """
    The daemon's certificate store (C{root}, C{entries}, C{errors}), asked
    for a page at a time.
    """
    pages = C.showSAPages(C.SHOW_CERTSTORE_PAGE, key="entries")
    request = next(pages)
    while True:
        response = callRemote(path, C.ShowCertstore, timeout=timeout, **request)
        try:
            request = pages.send(response)
        except StopIteration as done:
            return {"root": response["root"], "errors": response["errors"], "entries": done.value}


def reload(path, timeout=60.0):
    return callRemote(path, C.Reload, timeout=timeout)


def load(path, filename, timeout=60.0):
    return callRemote(path, C.Load, timeout=timeout, file=filename)


def reset(path, what, ikeId=None, timeout=30.0):
    """
    ikectl reset; how many IKE SAs were deleted.
    """
    arguments = {"what": what}
    if ikeId is not None:
        arguments["ikeId"] = ikeId
    return callRemote(path, C.Reset, timeout=timeout, **arguments)["count"]


def setMode(path, mode, timeout=30.0):
    return callRemote(path, C.SetMode, timeout=timeout, mode=mode)


def setLog(path, level, timeout=30.0):
    return callRemote(path, C.SetLog, timeout=timeout, level=level)


def monitor(path, timeout=None):
    """
    Subscribe to the daemon's events; a generator of event dicts, as they
    come, until the socket closes (L{ControlError}) or the caller stops.

    @param timeout: how long to wait for one event (L{None}: forever); a
        wait that long raises L{socket.timeout}.
    """
    try:
        sock = _connect(path, 30.0)
    except OSError as e:
        raise ControlError("control socket %s: %s" % (path, e.strerror or e))
    try:
        reader = _BoxReader(sock)
        try:
            sock.sendall(_request(C.Monitor, {}).serialize())
            _answer(C.Monitor, reader.box())
        except _DROPS:
            raise ControlError("control socket %s: %s" % (path, _DROPPED))
        sock.settimeout(timeout)
        while True:
            try:
                box = reader.box()
            except socket.timeout:
                raise
            except OSError:
                raise ControlError("control socket %s: the daemon closed the connection" % (path,))
            if box.get(b"_command") != C.Event.commandName:
                continue
            event = C.Event.parseArguments(box, None)
            yield {k: v for k, v in event.items() if v is not None}
    finally:
        sock.close()


__all__ = ["ControlError", "callRemote", "showSA", "showStats", "showCertstore", "reload", "load", "reset",
           "setMode", "setLog", "monitor", "CommandFailed"]

# -*- test-case-name: tests.test_control -*-
"""
A blocking client of the control socket, for command-line tools and test
harnesses that run no reactor: one AMP request, one answer.
"""

import socket
import struct

from twisted.protocols import amp

from ikedtx.control.commands import CommandFailed


class ControlError(Exception):
    """
    The daemon refused a command, or the socket broke.
    """


def _readBox(sock):
    box = {}
    buffer = b""

    def read(n):
        nonlocal buffer
        while len(buffer) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ControlError("the control socket closed")
            buffer += chunk
        data, buffer = buffer[:n], buffer[n:]
        return data

    while True:
        (keyLength,) = struct.unpack("!H", read(2))
        if keyLength == 0:
            return amp.AmpBox(box)
        key = read(keyLength)
        (valueLength,) = struct.unpack("!H", read(2))
        box[key] = read(valueLength)


def callRemote(path, command, timeout=30.0, **arguments):
    """
    Send C{command} (an L{amp.Command}) with C{arguments} to the control
    socket at C{path} and return its response dict.

    @raise ControlError: the command failed (with the daemon's message) or
        the socket could not be used.
    """
    box = command.makeArguments(arguments, None)
    box[b"_command"] = command.commandName
    box[b"_ask"] = b"1"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(box.serialize())
            answer = _readBox(sock)
    except OSError as e:
        raise ControlError("control socket %s: %s" % (path, e))
    if b"_error" in answer:
        message = answer.get(b"_error_description", b"").decode("utf-8", "replace")
        if answer.get(b"_error_code") == b"COMMAND_FAILED":
            raise ControlError(message)
        raise ControlError("%s failed: %s" % (command.commandName.decode(), message))
    return command.parseResponse(answer, None)


def showSA(path, timeout=30.0):
    """
    Every IKE SA of the daemon at C{path}, asked for a page at a time.
    """
    from ikedtx.control.commands import ShowSA, showSAPages

    pages = showSAPages()
    request = next(pages)
    while True:
        response = callRemote(path, ShowSA, timeout=timeout, **request)
        try:
            request = pages.send(response)
        except StopIteration as done:
            return done.value


__all__ = ["ControlError", "callRemote", "showSA", "CommandFailed"]

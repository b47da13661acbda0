# -*- test-case-name: tests.test_systemd_unit -*-
"""
systemd's readiness protocol (sd_notify(3)), without libsystemd: a
datagram of C{KEY=VALUE} lines to the socket named by C{$NOTIFY_SOCKET}.

The daemon says C{READY=1} once its ports and control socket are up,
C{RELOADING=1} then C{READY=1} around a reload, and C{STOPPING=1} as it
stops, so that the unit can be C{Type=notify}.  Without C{$NOTIFY_SOCKET}
(not started by systemd) nothing is sent.
"""

import os
import socket

from twisted.logger import Logger

_log = Logger()


def notify(state, environ=None):
    """
    Send C{state} (C{"READY=1"}, ...) to systemd.

    @return: whether it was sent.
    """
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        # An abstract socket.
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        _log.warn("NOTIFY_SOCKET {address!r} is neither a path nor abstract: not notifying", address=address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(state.encode("utf-8"))
    except OSError as e:
        _log.warn("cannot notify systemd ({state}): {error}", state=state, error=e)
        return False
    return True

# -*- test-case-name: tests.test_core_exchanges -*-
"""
What the sans-IO core asks its shell to do.

Every call into L{ikedtx.core.engine.IKECore} returns a list of these; the
shell carries them out in order (the Twisted shell in L{ikedtx.net.shell},
the in-memory pump in the tests).
"""

from dataclasses import dataclass, field
from typing import Any, Hashable, Optional, Tuple


@dataclass(frozen=True)
class SendDatagram:
    """
    Send C{data} (an IKE message, without the non-ESP marker) from C{local}
    to C{remote}, both C{(host, port)}; the shell adds the marker when the
    local port is the NAT-T port.
    """

    data: bytes = field(repr=False)
    local: Tuple[str, int]
    remote: Tuple[str, int]


@dataclass(frozen=True)
class SetTimer:
    """
    Call C{IKECore.timerExpired(key)} after C{delay} seconds, replacing any
    timer with the same key.
    """

    key: Hashable
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    key: Hashable


@dataclass(frozen=True)
class InstallChildSA:
    """
    Install both directions and the flows of C{child} (a L{ChildSA}) of
    C{ikeSA}; the shell reports failure with C{IKECore.installFailed}.
    """

    ikeSA: Any
    child: Any


@dataclass(frozen=True)
class RemoveChildSA:
    ikeSA: Any
    child: Any


@dataclass(frozen=True)
class SendNatKeepalive:
    """
    RFC 3948 4: one 0xFF byte from C{local} to C{remote} on the NAT-T port.
    """

    local: Tuple[str, int]
    remote: Tuple[str, int]


@dataclass(frozen=True)
class IKESAUp:
    """
    C{ikeSA} is established (both AUTHs verified).
    """

    ikeSA: Any


@dataclass(frozen=True)
class IKESADown:
    """
    C{ikeSA} is gone; C{reason} says why.
    """

    ikeSA: Any
    reason: str


@dataclass(frozen=True)
class RequestDone:
    """
    The command C{requestId} (see C{IKECore.initiate}) finished: C{result}
    on success, or C{error} (an exception) on failure.
    """

    requestId: int
    result: Any = None
    error: Optional[BaseException] = None

# -*- test-case-name: tests.test_core_rekey -*-
"""
The lifetimes of SAs (RFC 7296 2.8): when a Child SA or an IKE SA is
rekeyed, and when a Child SA must go.

A Child SA's hard lifetime is the policy's C{lifetime} (seconds) and
C{lifetime ... bytes}; it is rekeyed at a soft lifetime drawn between
L{SOFT_LOW} and L{SOFT_HIGH} of it, so that two peers with the same
configuration rarely start rekeying the same SA at once (the jitter of
RFC 7296 2.8.1 and of iked). Seconds are counted by the core's own
C{childsoft} and C{childhard} timers, which is all a decoupled datapath
has; the same soft and hard limits go to the datapath with the SAs, whose
expire events (L{ikedtx.core.engine.IKECore.expired}) arrive as the same
timers, and the byte limits can only come from there. An IKE SA is rekeyed
at a jittered C{ikelifetime} (C{ikerekey} timer); iked has no hard IKE SA
lifetime.
"""

import struct

from ikedtx.core.actions import CancelTimer, SetTimer
from ikedtx.core.timers import TimerKey

SOFT_LOW = 0.85
SOFT_HIGH = 0.95


def _fraction(core):
    (value,) = struct.unpack("!I", core.randomBytes(4))
    return SOFT_LOW + (SOFT_HIGH - SOFT_LOW) * value / 2.0 ** 32


def soft(core, limit):
    """
    A jittered soft limit below C{limit} (seconds or bytes), or L{None}.
    """
    if not limit:
        return None
    return max(1, int(limit * _fraction(core)))


def plan(core, ikeSA, child):
    """
    Draw C{child}'s soft limits before its SAs go to the datapath.
    """
    policy = ikeSA.policy
    child.softLifetime = soft(core, policy.lifetime)
    child.softBytes = soft(core, policy.lifetimeBytes)


def arm(core, ikeSA, child):
    """
    C{child} is installed: arm its soft and hard timers.
    """
    now = core.now()
    hard = ikeSA.policy.lifetime or None
    child.deadlines = (None if child.softLifetime is None else now + child.softLifetime,
                       None if hard is None else now + hard)
    _set(core, ikeSA, child)


def move(core, old, new, child):
    """
    C{child} moved from the IKE SA C{old} to C{new} (an IKE SA rekey): its
    timers follow it, with the time they had left.
    """
    core.emit(CancelTimer(TimerKey.childSoft(old.localSPI, child.reqid)))
    core.emit(CancelTimer(TimerKey.childHard(old.localSPI, child.reqid)))
    _set(core, new, child)


def rearm(core, ikeSA, child):
    """
    Arm C{child}'s timers again with the time they have left (another Child
    SA of its reqid, whose timers had the same keys, went).
    """
    _set(core, ikeSA, child)


def _set(core, ikeSA, child):
    now = core.now()
    softAt, hardAt = child.deadlines
    if softAt is not None and child.rekeyedBy is None:
        core.emit(SetTimer(TimerKey.childSoft(ikeSA.localSPI, child.reqid), max(0.0, softAt - now)))
    if hardAt is not None:
        core.emit(SetTimer(TimerKey.childHard(ikeSA.localSPI, child.reqid), max(0.0, hardAt - now)))


def retrySoft(core, ikeSA, child, delay):
    """
    Try rekeying C{child} again after C{delay} seconds (the peer answered
    TEMPORARY_FAILURE, RFC 7296 2.25).
    """
    core.emit(SetTimer(TimerKey.childSoft(ikeSA.localSPI, child.reqid), delay))


def armIKE(core, ikeSA, delay=None):
    """
    Arm C{ikeSA}'s rekey timer at its jittered C{ikelifetime} (or after
    C{delay}).
    """
    if delay is None:
        delay = soft(core, ikeSA.policy.ikeLifetime)
    if delay is not None:
        core.emit(SetTimer(TimerKey.ikeRekey(ikeSA.localSPI), delay))


def retryDelay(core, low=2.0, high=10.0):
    """
    A random delay before a rekey refused with TEMPORARY_FAILURE is tried
    again (RFC 7296 2.25: "retry after a short random delay").
    """
    (value,) = struct.unpack("!I", core.randomBytes(4))
    return low + (high - low) * value / 2.0 ** 32

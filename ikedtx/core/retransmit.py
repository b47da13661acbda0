# -*- test-case-name: tests.test_core_exchanges -*-
"""
The retransmission schedule of requests (RFC 7296 2.1) as a pure function
of the attempt number.
"""

import hashlib
import struct
from dataclasses import dataclass


def jitterOf(datagram, attempt):
    """
    A number in [0, 1) that varies from request to request and attempt to
    attempt (from the request's bytes, whose IV is random), so that peers
    that lost the same path do not retransmit in step.
    """
    (value,) = struct.unpack("!I", hashlib.sha256(bytes(datagram) + struct.pack("!I", attempt)).digest()[:4])
    return value / 2.0 ** 32


@dataclass(frozen=True)
class RetransmitSchedule:
    """
    Exponential backoff (RFC 7296 2.1): attempt C{n} (0 for the first
    transmission) waits C{min(initial * base ** n, cap)} seconds for an
    answer, less up to C{jitter} of it (as strongSwan's
    C{retransmit_jitter}); after C{tries} transmissions (the configurable
    limit) the peer is considered dead.
    """

    initial: float = 2.0
    base: float = 2.0
    cap: float = 32.0
    tries: int = 5
    jitter: float = 0.1

    def timeout(self, attempt, random=0.0):
        """
        How long to wait after transmission C{attempt}, or L{None} when
        that was the last one and the peer should be given up.

        @param random: a number in [0, 1) that picks the jitter.
        """
        if attempt >= self.tries:
            return None
        base = min(self.initial * self.base ** attempt, self.cap)
        return base - base * self.jitter * random

    def total(self):
        """
        The time from the first transmission until the peer is given up.
        """
        return sum(self.timeout(n) for n in range(self.tries))

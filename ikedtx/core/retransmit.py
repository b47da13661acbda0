# -*- test-case-name: tests.test_core_exchanges -*-
"""
The retransmission schedule of requests (RFC 7296 2.1) as a pure function
of the attempt number.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class RetransmitSchedule:
    """
    Exponential backoff: attempt C{n} (0 for the first transmission) waits
    C{min(initial * base ** n, cap)} seconds for an answer; after C{tries}
    transmissions the peer is considered dead.
    """

    initial: float = 2.0
    base: float = 2.0
    cap: float = 32.0
    tries: int = 5

    def timeout(self, attempt):
        """
        How long to wait after transmission C{attempt}, or L{None} when
        that was the last one and the peer should be given up.
        """
        if attempt >= self.tries:
            return None
        return min(self.initial * self.base ** attempt, self.cap)

    def total(self):
        """
        The time from the first transmission until the peer is given up.
        """
        return sum(self.timeout(n) for n in range(self.tries))

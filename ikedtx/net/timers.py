# -*- test-case-name: tests.test_net_timers -*-
"""
The core's timers (L{ikedtx.core.actions.SetTimer}, C{CancelTimer}) on one
reactor call.

A gateway holding many IKE SAs has a few timers armed per SA (the IKE SA's
rekey, its Child SA's soft and hard lifetimes, DPD): one Twisted
L{DelayedCall} each costs about 460 bytes and a place in the reactor's own
heap. L{KeyedTimers} keeps them in a heap of small lists instead and asks
the reactor for one call, at the earliest deadline.
"""

import heapq
import itertools

from twisted.logger import Logger


#: What a cancelled entry's key becomes; it is skipped when it comes up.
_CANCELLED = object()


class KeyedTimers:
    """
    Timers named by keys: at most one armed per key.

    @ivar _heap: C{[when, sequence, key]} entries; the sequence keeps
        timers due at the same time in the order they were armed.
    @ivar _entries: C{{key: entry}} of the armed timers.
    @ivar _stale: cancelled entries still in the heap.
    @ivar _call: the reactor's L{DelayedCall} for the earliest entry, or
        L{None}.
    """

    _log = Logger()

    def __init__(self, reactor, expired):
        """
        @param expired: called with the key of each timer that runs out.
        """
        self._reactor = reactor
        self._expired = expired
        self._heap = []
        self._entries = {}
        self._sequence = itertools.count()
        self._stale = 0
        self._call = None

    def __len__(self):
        return len(self._entries)

    def __contains__(self, key):
        return key in self._entries

    def set(self, key, delay):
        """
        Arm the timer C{key} to run out in C{delay} seconds (again, if it
        was armed).
        """
        self._drop(key)
        entry = [self._reactor.seconds() + delay, next(self._sequence), key]
        heapq.heappush(self._heap, entry)
        self._entries[key] = entry
        if self._call is None or entry[0] < self._call.getTime():
            self._arm()

    def cancel(self, key):
        """
        Disarm the timer C{key}, if it is armed.
        """
        self._drop(key)

    def stop(self):
        """
        Disarm every timer.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._heap = []
        self._entries.clear()
        self._stale = 0

    def _drop(self, key):
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        entry[2] = _CANCELLED
        self._stale += 1
        if self._stale > 64 and self._stale > len(self._entries):
            self._heap = [e for e in self._heap if e[2] is not _CANCELLED]
            heapq.heapify(self._heap)
            self._stale = 0

    def _arm(self):
        heap = self._heap
        while heap and heap[0][2] is _CANCELLED:
            heapq.heappop(heap)
            self._stale -= 1
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if heap:
            self._call = self._reactor.callLater(max(0.0, heap[0][0] - self._reactor.seconds()), self._run)

    def _run(self):
        self._call = None
        now = self._reactor.seconds()
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if entry[2] is _CANCELLED:
                self._stale -= 1
            else:
                due.append(entry)
        try:
            for entry in due:
                key = entry[2]
                if key is _CANCELLED:
                    # An earlier expiry cancelled or re-armed it.
                    self._stale -= 1
                    continue
                del self._entries[key]
                try:
                    self._expired(key)
                except Exception:
                    # As the reactor does for each of its calls: logged,
                    # and the other timers still run.
                    self._log.failure("timer {key!r}", key=key)
        finally:
            if self._call is None or not self._call.active():
                self._call = None
                self._arm()

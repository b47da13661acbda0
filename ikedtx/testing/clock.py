# -*- test-case-name: tests.test_testing_clock -*-
"""
A fake clock for long simulated runs: L{HeapClock} behaves as
L{twisted.internet.task.Clock} (calls run in order of time, then of
scheduling; C{reset}, C{delay} and C{cancel} of the L{DelayedCall}s work),
but keeps its calls in a heap instead of a list sorted again on every
C{callLater} and C{advance}, so that thousands of pending timers cost
O(log n) each, not O(n log n).

Cancelled and rescheduled calls leave stale heap entries behind; they are
skipped when they come up, and the heap is rebuilt when they outnumber the
live calls, so it stays within a constant factor of them.
"""

import heapq
import itertools

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer


@implementer(IReactorTime)
class HeapClock:
    """
    L{IReactorTime} on a heap, advanced by hand.

    @ivar rightNow: the current time, in seconds.
    """

    rightNow = 0.0

    def __init__(self):
        # (time, sequence, call), the sequence from _live.
        self._heap = []
        self._sequence = itertools.count()
        # The calls not yet run nor cancelled: {call: sequence}.
        self._live = {}

    def seconds(self):
        return self.rightNow

    def callLater(self, delay, callable, *args, **kw):
        call = DelayedCall(self.seconds() + delay, callable, args, kw, self._cancelled, self._movedEarlier,
                           self.seconds)
        # Its place among calls due at the same time: scheduling order,
        # kept through delay() and reset() (as task.Clock's stable sort).
        self._live[call] = next(self._sequence)
        self._push(call)
        return call

    def getDelayedCalls(self):
        return list(self._live)

    def advance(self, amount):
        """
        Move time on by C{amount} seconds and run every call then due, in
        order (those scheduled meanwhile included).
        """
        self.rightNow += amount
        heap = self._heap
        while heap and heap[0][0] <= self.rightNow:
            when, _, call = heapq.heappop(heap)
            if call.cancelled or call.called or when != call.time:
                continue
            if call.delayed_time:
                # Pushed back by delay() or reset(): its place is later.
                call.activate_delay()
                self._push(call)
                continue
            del self._live[call]
            call.called = 1
            call.func(*call.args, **call.kw)

    def pump(self, timings):
        """
        Advance by each of C{timings} in turn.
        """
        for amount in timings:
            self.advance(amount)

    def _push(self, call):
        heapq.heappush(self._heap, (call.time, self._live[call], call))
        if len(self._heap) > 2 * len(self._live) + 64:
            self.compact()

    def compact(self):
        """
        Drop the stale entries (of calls cancelled or moved) now, and with
        them the last references to cancelled calls: before measuring the
        memory of what the clock drives.
        """
        self._heap = [entry for entry in self._heap if entry[2] in self._live and entry[0] == entry[2].time]
        heapq.heapify(self._heap)

    def _cancelled(self, call):
        self._live.pop(call, None)

    def _movedEarlier(self, call):
        # reset() to an earlier time: its old entry is now stale.
        self._push(call)

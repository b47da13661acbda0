"""
Tests for L{ikedtx.net.timers}: the core's keyed timers on one reactor call.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.net.timers import KeyedTimers


class KeyedTimersTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.expired = []
        self.timers = KeyedTimers(self.clock, self.expired.append)

    def test_oneReactorCall(self):
        """
        Many armed timers take one reactor call, at the earliest deadline;
        each runs out at its own time, in order.
        """
        for n, delay in enumerate([30, 10, 20, 10]):
            self.timers.set(n, delay)
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [10])
        self.clock.advance(9.5)
        self.assertEqual(self.expired, [])
        self.clock.advance(0.5)
        self.assertEqual(self.expired, [1, 3])
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [20])
        self.clock.advance(20)
        self.assertEqual(self.expired, [1, 3, 2, 0])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.timers), 0)

    def test_rearmAndCancel(self):
        """
        Arming a key again replaces its deadline; a cancelled timer never
        runs, and cancelling an unknown key does nothing.
        """
        self.timers.set("k", 5)
        self.timers.set("k", 10)
        self.timers.set("j", 1)
        self.timers.cancel("j")
        self.timers.cancel("unknown")
        self.clock.advance(5)
        self.assertEqual(self.expired, [])
        self.clock.advance(5)
        self.assertEqual(self.expired, ["k"])
        self.assertNotIn("k", self.timers)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_earlierTimerMovesTheCall(self):
        """
        A timer armed earlier than the reactor call brings the call forward.
        """
        self.timers.set("late", 100)
        self.timers.set("early", 3)
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [3])
        self.clock.advance(3)
        self.assertEqual(self.expired, ["early"])
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [100])

    def test_expiryChangesTimers(self):
        """
        What runs out may arm, re-arm or cancel other timers, those due at
        the same moment included: a cancelled one does not run, a new one
        runs at its own time.
        """
        def expired(key):
            self.expired.append(key)
            if key == "a":
                self.timers.cancel("b")
                self.timers.set("c", 0)
                self.timers.set("d", 7)

        self.timers = KeyedTimers(self.clock, expired)
        self.timers.set("a", 5)
        self.timers.set("b", 5)
        self.clock.advance(5)
        self.assertEqual(self.expired, ["a", "c"])
        self.clock.advance(7)
        self.assertEqual(self.expired, ["a", "c", "d"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.timers._stale, 0)

    def test_cancelledEntriesAreCompacted(self):
        """
        Cancelled timers do not pile up in the heap: it is rebuilt when they
        outnumber the armed ones.
        """
        for n in range(1000):
            self.timers.set(n, 1000 + n)
        for n in range(1000):
            self.timers.cancel(n)
        self.timers.set("kept", 5)
        self.assertLess(len(self.timers._heap), 100)
        self.clock.advance(5)
        self.assertEqual(self.expired, ["kept"])

    def test_failingExpiryKeepsTheRest(self):
        """
        An exception from the expiry callback is logged, and the other
        timers, those due at the same moment included, still run.
        """
        def expired(key):
            self.expired.append(key)
            if key == "a":
                raise RuntimeError("boom")

        self.timers = KeyedTimers(self.clock, expired)
        self.timers.set("a", 1)
        self.timers.set("b", 1)
        self.timers.set("c", 2)
        self.clock.advance(1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.expired, ["a", "b"])
        self.clock.advance(1)
        self.assertEqual(self.expired, ["a", "b", "c"])

    def test_stop(self):
        """
        stop() disarms every timer and the reactor call.
        """
        self.timers.set("a", 1)
        self.timers.set("b", 2)
        self.timers.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(5)
        self.assertEqual(self.expired, [])
        self.assertEqual(len(self.timers), 0)

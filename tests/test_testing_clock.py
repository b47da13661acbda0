"""
L{ikedtx.testing.clock.HeapClock} against L{twisted.internet.task.Clock}:
the same schedule of calls, cancels, resets and delays runs the same calls
at the same times on both, in order of time. (Among calls due at the same
instant after a reset or delay, task.Clock's order follows its list's
history; HeapClock's is scheduling order.)
"""

import random
import zlib

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ikedtx.testing.clock import HeapClock


def _script(clock, seed):
    """
    Drive C{clock} through a random schedule; return what ran, when.
    """
    rng = random.Random(seed)
    ran = []
    calls = []

    def fire(name):
        ran.append((clock.seconds(), name))
        # Calls scheduled by calls, some due at once.
        # (Chosen by name, so that the order of same-time calls does not
        # change what follows.)
        if zlib.crc32(name.encode()) % 10 < 3:
            calls.append(clock.callLater([0, 1, 2.5, 7][len(name) % 4], fire, name + "+"))

    for i in range(400):
        action = rng.random()
        live = sorted((c for c in calls if c.active()), key=lambda c: c.args[0])
        if action < 0.5 or not live:
            calls.append(clock.callLater(rng.choice([0, 1, 3, 3, 10, 60, 600]), fire, "c%d" % (i,)))
        elif action < 0.65:
            rng.choice(live).cancel()
        elif action < 0.8:
            rng.choice(live).reset(rng.choice([0, 2, 5, 100]))
        elif action < 0.9:
            rng.choice(live).delay(rng.choice([1, 4, 50]))
        else:
            clock.advance(rng.choice([0, 1, 2, 5, 30]))
    clock.pump([10] * 100)
    return ran, sorted(c.getTime() for c in clock.getDelayedCalls())


class HeapClockTests(SynchronousTestCase):
    def test_interface(self):
        """
        HeapClock provides IReactorTime.
        """
        self.assertTrue(verifyObject(IReactorTime, HeapClock()))

    def test_sameAsClock(self):
        """
        Over random schedules, HeapClock runs the same calls in the same
        order at the same times as task.Clock, and leaves the same calls
        pending.
        """
        for seed in range(20):
            expected, expectedPending = _script(task.Clock(), seed)
            self.assertGreater(len(expected), 100)
            ran, pending = _script(HeapClock(), seed)
            self.assertEqual([when for when, _ in ran], sorted(when for when, _ in ran))
            self.assertEqual(sorted(ran), sorted(expected), "seed %d" % (seed,))
            self.assertEqual([when for when, _ in ran], [when for when, _ in expected])
            self.assertEqual(pending, expectedPending)

    def test_sameTimeInOrder(self):
        """
        Calls due at the same time run in the order they were scheduled.
        """
        clock = HeapClock()
        ran = []
        for i in range(50):
            clock.callLater(3 if i % 2 else 1 + 2, ran.append, i)
        clock.advance(3)
        self.assertEqual(ran, list(range(50)))

    def test_cancelledNotRun(self):
        """
        A cancelled call does not run and is no longer listed; the heap of
        stale entries left by many cancels stays bounded.
        """
        clock = HeapClock()
        ran = []
        keep = clock.callLater(5, ran.append, "kept")
        for _ in range(10000):
            clock.callLater(100, ran.append, "cancelled").cancel()
        self.assertEqual(clock.getDelayedCalls(), [keep])
        self.assertLessEqual(len(clock._heap), 2 * 1 + 65)
        clock.advance(200)
        self.assertEqual(ran, ["kept"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_compact(self):
        """
        compact() leaves only the live calls' entries, which still run.
        """
        clock = HeapClock()
        ran = []
        calls = [clock.callLater(i, ran.append, i) for i in range(40)]
        for call in calls[::2]:
            call.cancel()
        calls[1].reset(100)
        clock.compact()
        self.assertEqual(len(clock._heap), 20)
        clock.advance(100)
        self.assertEqual(ran, list(range(3, 40, 2)) + [1])

# -*- test-case-name: tests.test_net_gcpolicy -*-
"""
Python's cyclic garbage collector at 100,000 IKE SAs.

CPython collects its oldest generation when it grew by a quarter since the
last full collection, and such a collection walks every tracked object: an
IKE SA is about 95 of them (its keys, ciphers, proposal, selectors, task
manager), so at 100,000 IKE SAs a full collection walks some 10 million
objects, a pause of seconds that stalls every negotiation in flight.

L{FreezePolicy} keeps the oldest generation small instead: after every
few collections of the middle generation (that is, once a batch of new
objects survived two collections) it collects, which walks only what was
not frozen yet, and freezes what survived (C{gc.freeze()}): the state of
established SAs, which lives for hours, is then never walked again.

Frozen objects are still freed by their reference counts; only objects in
reference cycles that die while frozen are kept. ikedtx's SAs hold no
cycles (a L{TaskManager} refers to its IKE SA weakly, a refused request's
error is kept without its traceback; tests.test_net_gcpolicy creates,
rekeys and deletes SAs and finds no cyclic garbage), and as a safety valve
a thaw (C{gc.unfreeze()} and a full collection, the long pause) runs at
most once every C{thawInterval} seconds, and only if the frozen objects
grew by a quarter since the last one.
"""

import gc as _gc
import time

from twisted.logger import Logger


class FreezePolicy:
    """
    Freeze what survives, step by step (see the module docstring).

    @ivar steps: the freeze steps run.
    @ivar thaws: the thaws run.
    @ivar seconds: CPU seconds spent in the steps and thaws.
    @ivar _young: middle-generation collections since the last step.
    @ivar _frozenAtThaw: C{gc.get_freeze_count()} after the last thaw.
    """

    _log = Logger()

    def __init__(self, reactor, every=10, thawInterval=3600.0, gc=_gc, clock=time.process_time):
        """
        @param every: a step after this many collections of generation 1 or
            2 (CPython's own threshold for generation 2 is 10).
        @param thawInterval: seconds between two thaws at least; 0 never
            thaws.
        @param gc: the C{gc} module (a fake in tests).
        """
        self._reactor = reactor
        self.every = every
        self.thawInterval = thawInterval
        self._gc = gc
        self._clock = clock
        self._young = 0
        self._call = None
        self._lastThaw = None
        self._frozenAtThaw = 0
        self.steps = 0
        self.thaws = 0
        self.seconds = 0.0

    def start(self):
        """
        Freeze what is alive now (what start-up loaded) and watch the
        collector.
        """
        gc = self._gc
        gc.collect()
        gc.freeze()
        self._lastThaw = self._reactor.seconds()
        self._frozenAtThaw = gc.get_freeze_count()
        gc.callbacks.append(self._collected)

    def stop(self):
        if self._collected in self._gc.callbacks:
            self._gc.callbacks.remove(self._collected)
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _collected(self, phase, info):
        # Inside the collector: nothing may be collected from here, the
        # step runs from the reactor.
        if phase != "stop" or info["generation"] == 0:
            return
        self._young += 1
        if self._young >= self.every and self._call is None:
            self._call = self._reactor.callLater(0, self.step)

    def step(self):
        """
        Collect what is not frozen yet and freeze what survived; thaw
        first if it is time.
        """
        self._call = None
        gc = self._gc
        started = self._clock()
        now = self._reactor.seconds()
        thawed = False
        if self.thawInterval > 0 and now - self._lastThaw >= self.thawInterval:
            # Counting the frozen objects walks them all: only when a thaw
            # may be due.
            frozen = gc.get_freeze_count()
            self._lastThaw = now
            if frozen > self._frozenAtThaw * 1.25:
                self._thaw(frozen, started)
                thawed = True
        if not thawed:
            gc.collect()
        gc.freeze()
        self._young = 0
        self.steps += 1
        self.seconds += self._clock() - started

    def _thaw(self, frozen, started):
        gc = self._gc
        gc.unfreeze()
        found = gc.collect()
        self._frozenAtThaw = frozen - found
        self.thaws += 1
        self._log.info("garbage collector: thawed {frozen} objects, {found} unreachable; {seconds:.3f}s",
                       frozen=frozen, found=found, seconds=self._clock() - started)

# -*- test-case-name: tests.test_core_soak -*-
"""
A long run of two in-memory cores (L{tests.corehelpers}) with many IKE SAs
and short lifetimes on a fake clock: the soak of the SA lifecycle, shared by
the suite (L{tests.test_core_soak}, a shorter run) and the benchmark
(C{bench/soak.py}, the full week).

Both cores rekey on their own jittered timers (so some rekeys collide); the
clock moves in steps of C{step} seconds, each followed by the delivery of
every datagram in flight. What the harness itself keeps (events, delivered
datagrams) is counted and dropped at each step, so memory measures the
cores alone.
"""

import collections
import gc
import tracemalloc

from ikedtx.config import parseConfig
from ikedtx.core.actions import IKESAUp, InstallChildSA
from ikedtx.core.settings import CoreSettings

from ikedtx.testing.clock import HeapClock

from tests.corehelpers import Host, Network

A_ADDR, B_ADDR = "192.0.2.1", "192.0.2.2"
DAY = 86400


def _config(role, ikeLifetime, lifetime, dpd):
    if role == "a":
        mode, local, peer, flows, ids = "active", A_ADDR, B_ADDR, "from 10.1.0.0/24 to 10.2.0.0/24", ("a", "b")
    else:
        mode, local, peer, flows, ids = "passive", B_ADDR, A_ADDR, "from 10.2.0.0/24 to 10.1.0.0/24", ("b", "a")
    return parseConfig(
        'set dpd_check_interval %d\nikev2 "ab" %s esp %s local %s peer %s srcid %s.example dstid %s.example '
        'ikelifetime %d lifetime %d psk "secret"' % (dpd, mode, flows, local, peer, ids[0], ids[1], ikeLifetime,
                                                    lifetime))


class Soak:
    """
    Two cores, C{count} IKE SAs from A to B, run for a while.

    @ivar childRenewals: C{{reqid: n}} Child SA installs on A per reqid
        (a rekeyed Child SA keeps its reqid, so each counts one SA's
        renewals), the first install included.
    @ivar ikeUps: IKE SAs A reported up (first ones and rekeys).
    @ivar memory: C{{day: bytes}} traced by L{tracemalloc} at the days
        asked for, after a collection.
    """

    def __init__(self, count, ikeLifetime, lifetime, dpd=0, step=30):
        self.count = count
        self.step = step
        # Every allocation of the cores is traced, from before the first
        # IKE SA: tracing that starts later sees the state made before it
        # only as it is renewed, which reads as growth (until every SA was
        # rekeyed in both roles, day 4 here) of a flat memory.
        if not tracemalloc.is_tracing():
            tracemalloc.start()
        # task.Clock sorts all its calls on every callLater and advance:
        # with thousands of timers that is most of the run.
        self.network = Network(HeapClock())
        # All IKE SAs are between the same two identities.
        settings = CoreSettings(ikeSAsPerIdentity=max(count, CoreSettings().ikeSAsPerIdentity))
        self.a = Host(self.network, A_ADDR, _config("a", ikeLifetime, lifetime, dpd), settings=settings)
        self.b = Host(self.network, B_ADDR, _config("b", ikeLifetime, lifetime, dpd), settings=settings)
        self.childRenewals = collections.Counter()
        self.ikeUps = 0
        self.memory = {}
        self.snapshots = {}

    def establish(self):
        """
        Bring up C{count} IKE SAs (with their Child SA), one at a time;
        return the L{RequestDone} of each.
        """
        done = []
        for _ in range(self.count):
            requestId = self.a.initiate("ab")
            self.network.pump()
            done.append(self.a.results[requestId])
            self._account()
        return done

    def _account(self):
        for event in self.a.events:
            if isinstance(event, InstallChildSA) and any(sa.inbound for sa in event.sas):
                self.childRenewals[event.reqid] += 1
            elif isinstance(event, IKESAUp):
                self.ikeUps += 1
        for host in (self.a, self.b):
            del host.events[:]
            host.results.clear()
            # The decoupled kernel's record of calls (bounded, but only
            # full after days): not the cores' memory.
            host.kernel.log.clear()
        del self.network.delivered[:]

    def run(self, seconds, measureDays=()):
        """
        Advance the clock by C{seconds} in steps, delivering everything in
        flight after each; at each day of C{measureDays} (counted from the
        start of the clock), record the memory traced (tracemalloc, started
        with the soak, is stopped after the last).
        """
        clock = self.network.clock
        end = clock.seconds() + seconds
        pending = sorted(measureDays)
        while clock.seconds() < end:
            clock.advance(min(self.step, end - clock.seconds()))
            self.network.pump(limit=100 * self.count)
            self._account()
            while pending and clock.seconds() >= pending[0] * DAY:
                self._measure(pending.pop(0), last=not pending)

    def _measure(self, day, last):
        # The clock's heap keeps cancelled calls until they come up or it
        # is rebuilt (up to twice the live ones): slack of the harness,
        # not memory the cores hold.
        self.network.clock.compact()
        gc.collect()
        # What the cores and the test allocate (lines of ikedtx/ and
        # tests/), not what the test runner does meanwhile: under trial -j
        # each log line of the cores is formatted and sent to the manager as
        # an AMP call, answered only once the test returns to the reactor.
        # The core is sans-IO: it makes no Deferred and no AMP box itself.
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, "*/ikedtx/*"), tracemalloc.Filter(True, "*/tests/*")])
        self.memory[day] = sum(stat.size for stat in snapshot.statistics("filename"))
        self.snapshots[day] = snapshot
        if last:
            tracemalloc.stop()

    def growth(self, first, last, top=10):
        """
        The lines whose memory grew most between the snapshots of days
        C{first} and C{last}, for a failure message.
        """
        stats = self.snapshots[last].compare_to(self.snapshots[first], "lineno")
        return "\n".join(str(s) for s in stats[:top])

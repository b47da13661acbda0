"""
The soak of the SA lifecycle (issue 9), the suite's size: two in-memory
cores with 100 IKE SAs and lifetimes of hours through a simulated week on a
fake clock, both
rekeying on their own jittered timers (RFC 7296 1.3.2, 1.3.3; crossing
rekeys resolved by 2.8.1, 2.8.2). Every SA is rekeyed several times and
none is lost; nothing is left behind (timers, SAs, indexes); the memory the
cores hold is flat between day 2 and day 7 (tracemalloc). The same run with
1,000 IKE SAs is C{bench/soak.py} (minutes: too long for the suite).
"""

import tracemalloc

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core.states import ChildState, IKEState

from tests.soak import DAY, Soak

# Bytes the cores may hold on day 7 beyond what they held on day 2: the
# same SAs, renewed; dicts and free lists settle at slightly different
# sizes, a leak of one object per rekey would be megabytes.
GROWTH_BOUND = 256 * 1024


class SoakTests(SynchronousTestCase):
    count = 100
    ikeLifetime = 18 * 3600
    lifetime = 12 * 3600
    days = 7

    def test_week(self):
        """
        100 IKE SAs (C{ikelifetime} 18 hours, C{lifetime} 12 hours) through
        a week: each Child SA is installed at least 12 times (under the same
        reqid, which its rekeys keep), the IKE SAs are rekeyed about eight
        times each; at the end each side holds exactly the 100 IKE SAs,
        each VALID with one installed Child SA, their SAs in the datapath,
        only their timers, and empty indexes of pending work; and traced
        memory on day 7 is within L{GROWTH_BOUND} of day 2's.
        """
        soak = Soak(self.count, self.ikeLifetime, self.lifetime, step=120)
        # It traces from here; a failure before the last day must not
        # leave the rest of the suite traced.
        self.addCleanup(tracemalloc.stop)
        established = soak.establish()
        self.assertEqual([d.error for d in established], [None] * self.count)
        # The first IKE SAs, which lead through rekeyedBy to every later
        # one: not kept here.
        del established
        reqids = set(soak.childRenewals)
        self.assertEqual(len(reqids), self.count)
        first = {sa.localSPI for sa in soak.a.ikeSAs}
        soak.run(self.days * DAY, measureDays=(1, 2, self.days))

        self.assertEqual(set(soak.childRenewals), reqids)
        self.assertGreaterEqual(min(soak.childRenewals.values()), 12)
        self.assertGreaterEqual(soak.ikeUps, self.count + 7 * self.count)
        self.assertEqual({sa.localSPI for sa in soak.a.ikeSAs} & first, set())
        for host in (soak.a, soak.b):
            sas = host.ikeSAs
            self.assertEqual(len(sas), self.count)
            self.assertEqual({sa.state for sa in sas}, {IKEState.VALID})
            self.assertEqual({len(sa.children) for sa in sas}, {1})
            self.assertEqual({c.state for sa in sas for c in sa.children}, {ChildState.INSTALLED})
            self.assertEqual(len(host.kernel.sas), 2 * self.count)
            self.assertEqual(len(host.core._children), self.count)
            self.assertEqual(host.core._spiRequests, {})
            self.assertEqual(host.core.halfOpenCount(), 0)
            self._assertTimersOnlyFor(host)
        self.assertEqual({(sa.spiI, sa.spiR) for sa in soak.a.ikeSAs}, {(sa.spiI, sa.spiR) for sa in soak.b.ikeSAs})
        grown = soak.memory[self.days] - soak.memory[2]
        self.assertLess(grown, GROWTH_BOUND, "memory grew by %d bytes from day 2 to day %d:\n%s" % (
            grown, self.days, soak.growth(2, self.days)))

    def _assertTimersOnlyFor(self, host):
        spis = {sa.localSPI for sa in host.ikeSAs}
        reqids = {(sa.localSPI, c.reqid) for sa in host.ikeSAs for c in sa.children}
        active = [key for key, call in host.timers.items() if call.active()]
        for key in active:
            if key.kind in ("childsoft", "childhard"):
                self.assertIn(key.subject, reqids, key)
            elif key.kind not in ("cookiesecret", "reinitiate"):
                self.assertIn(key.subject, spis, key)
        # Per SA: its Child SA's soft and hard timers and its IKE SA rekey.
        self.assertLessEqual(len(active), 3 * self.count + 1)

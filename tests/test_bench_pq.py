# -*- test-case-name: tests.test_bench_pq -*-
"""
bench/pqcost.py (hybrid handshakes next to the classic one) run with one IKE
SA per suite: the wire figures it reports, not its timings.
"""

from twisted.trial.unittest import SynchronousTestCase

from bench import pqcost


class PqCostTests(SynchronousTestCase):
    def test_wireFigures(self):
        """
        The classic handshake is four datagrams; one ML-KEM-768 additional
        exchange adds an IKE_INTERMEDIATE round trip whose request exceeds
        the fragment size (1232) unless fragmentation is on, when it goes
        in SKF fragments no larger than that; two exchanges add two round
        trips.
        """
        classic = pqcost.measure(pqcost.BASE, False, 1)
        self.assertEqual((classic["datagrams"], classic["fragments"]), (4, 0))
        hybrid = pqcost.measure(pqcost.BASE + " addke1 mlkem768", False, 1)
        self.assertEqual((hybrid["datagrams"], hybrid["fragments"]), (6, 0))
        self.assertGreater(hybrid["largest"], 1232)
        self.assertGreater(hybrid["bytes"], classic["bytes"] + 1184 + 1088)
        fragmented = pqcost.measure(pqcost.BASE + " addke1 mlkem768", True, 1)
        self.assertGreaterEqual(fragmented["fragments"], 2)
        self.assertLessEqual(fragmented["largest"], 1232)
        two = pqcost.measure(pqcost.BASE + " addke1 mlkem768 addke2 mlkem1024", False, 1)
        self.assertEqual(two["datagrams"], 8)
        self.assertGreater(two["bytes"], hybrid["bytes"] + 1568 + 1568)

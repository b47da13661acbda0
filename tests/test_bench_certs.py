# -*- test-case-name: tests.test_bench_certs -*-
"""
bench/certcost.py (a responder's certificate authentication, in memory) run
with a handful of IKE SAs: it establishes them all, and what it counts
shows the verified chains reused, not its timings.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from bench import certcost


class CertCostTests(SynchronousTestCase):
    def test_smoke(self):
        """
        Every IKE SA is established (certcost exits otherwise); the counted
        IKE SAs whose certificates the responder verified before take fewer
        function calls than those with a certificate it has not seen.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        _, seen = certcost.run("p256", 2, 2, counted=2, directory=directory)
        _, new = certcost.run("p256", 2, 4, counted=2, directory=directory)
        self.assertGreater(seen, 1000)
        self.assertLess(seen, new)

"""
Tests for bench/espbench.py in memory: its table and its configuration of
ikedtx (the throughput runs themselves need root, iperf3 and charon, and
are not part of the suite).
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from bench import espbench
from ikedtx.config import parseConfig


class EspBenchTests(SynchronousTestCase):
    def test_table(self):
        """
        Rows become Mbit/s with one decimal and both daemons' CPU seconds;
        a failed row says why.
        """
        rows = [{"pair": "ikedtx-charon", "esp": "gcm", "forward": 193024440.9, "reverse": 256440614.1,
                 "parallel": 201000000.0, "streams": 4, "pps": 41234.6, "cpu": [8.57, 6.88], "seconds": 5},
                {"pair": "charon-charon", "esp": "cbc", "error": "RuntimeError: iperf3 failed\nmore"}]
        self.assertEqual(espbench.table(rows).splitlines()[2:],
                         ["| ikedtx-charon | gcm | 193.0 | 256.4 | 201.0 (4) | 41235 | 8.57 / 6.88 |",
                          "| charon-charon | cbc | failed: RuntimeError: iperf3 failed | | | | |"])

    def test_received(self):
        """
        iperf3's JSON gives received bits per second for TCP, and received
        (sent less lost) datagrams per second for UDP.
        """
        tcp = {"end": {"sum_received": {"bits_per_second": 1.5e8}}}
        udp = {"end": {"sum": {"packets": 1000, "lost_packets": 200, "seconds": 4.0}}}
        self.assertEqual(espbench.received(tcp, udp=False), 1.5e8)
        self.assertEqual(espbench.received(udp, udp=True), 200.0)

    def test_ikedtxConfig(self):
        """
        The ikedtx side forces ESP in UDP (natt), as libipsec does, and
        turns ESN off for every proposal.
        """
        for esp in espbench.ESP:
            text = espbench.ikedtxConfig(espbench.A, espbench.B, espbench.A_INNER, espbench.B_INNER, esp, True)
            (policy,) = parseConfig(text).policies
            self.assertTrue(policy.natt)
            self.assertIn("noesn", text)

    def test_cpuSeconds(self):
        """
        This process's own CPU time is read from /proc and is not negative.
        """
        self.assertGreaterEqual(espbench.cpuSeconds(os.getpid()), 0)

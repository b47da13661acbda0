"""
Tests for bench/espbench.py in memory: its table, medians and
configuration of ikedtx (the throughput runs themselves need root, iperf3
and charon, and are not part of the suite); and a smoke run of
bench/espmicro.py.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from bench import espbench, espmicro
from ikedtx.config import parseConfig


class EspBenchTests(SynchronousTestCase):
    def test_table(self):
        """
        Rows become Mbit/s with one decimal and both daemons' CPU seconds;
        a failed row says why.
        """
        rows = [{"pair": "ikedtx-charon", "esp": "gcm", "forward": 193024440.9, "reverse": 256440614.1,
                 "parallel": 201000000.0, "streams": 4, "pps": 41234.6, "cpu": [8.57, 6.88], "seconds": 5,
                 "cpuPerGB": 12.5, "cpuPerPacket": 9.25},
                {"pair": "charon-charon", "esp": "cbc", "error": "RuntimeError: iperf3 failed\nmore"}]
        self.assertEqual(espbench.table(rows).splitlines()[2:],
                         ["| ikedtx-charon | gcm | 193.0 | 256.4 | 201.0 (4) | 41235 | 8.57 / 6.88 | 12.5 | 9.25 |",
                          "| charon-charon | cbc | failed: RuntimeError: iperf3 failed | | | | | | |"])

    def test_medians(self):
        """
        Interleaved runs of one pair become one row of medians, in the
        order the pairs first ran; failed runs are left out, and a pair
        whose every run failed keeps its failure.
        """
        def run(pair, forward, cpu):
            return {"pair": pair, "esp": "gcm", "forward": forward, "reverse": 2 * forward, "parallel": forward,
                    "streams": 4, "pps": forward / 10, "cpu": [cpu, cpu], "seconds": 5, "cpuPerGB": cpu,
                    "cpuPerPacket": cpu}

        failed = {"pair": "charon-charon", "esp": "gcm", "error": "RuntimeError: no"}
        rows = espbench.medians([run("ikedtx-charon", 100, 1.0), failed, run("ikedtx-charon", 300, 3.0),
                                 {"pair": "ikedtx-charon", "esp": "gcm", "error": "x"},
                                 run("ikedtx-charon", 200, 9.0)])
        self.assertEqual([row["pair"] for row in rows], ["ikedtx-charon", "charon-charon"])
        self.assertEqual((rows[0]["forward"], rows[0]["reverse"], rows[0]["cpu"], rows[0]["cpuPerGB"],
                          rows[0]["runs"]), (200, 400, [3.0, 3.0], 3.0, 3))
        self.assertEqual(rows[1], failed)

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

    def test_espmicroSmoke(self):
        """
        bench/espmicro.py carries a few packets of each cipher through two
        providers back to back (it raises if one is lost or dropped) and
        reports two figures per run.
        """
        for kind in ("gcm", "chacha", "cbc"):
            outbound, inbound = espmicro.measure(kind, 200, 20)
            self.assertGreaterEqual(min(outbound, inbound), 0)

    def test_espmicroSocketSmoke(self):
        """
        bench/espmicro.py --socket drains sealed packets from a real UDP
        socket both ways (it raises if one is lost) and reports two
        figures.
        """
        port, thread = espmicro.measureSocket("gcm", 200, 20, rounds=1)
        self.assertGreater(min(port, thread), 0)

# -*- test-case-name: tests.test_bench -*-
"""
The benchmark of bench/ikebench.py: its profile summary and table in
memory, and a smoke run against an ikedtx responder in network namespaces
(no timing is asserted, only that every SA asked for is held).
"""

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from bench import profsummary, report, suites
from tests.support import requireExecutable, requireRoot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ProfileSummaryTests(SynchronousTestCase):
    STACKS = [
        (["main (bench/x.py)", "respondInit (ikedtx/core/exchanges.py)", "respond (ikedtx/crypto/kex.py)",
          "derive (cryptography/hazmat/x.py)"], 6),
        (["main (bench/x.py)", "respondInit (ikedtx/core/exchanges.py)", "info (twisted/logger/_logger.py)"], 3),
        (["main (bench/x.py)"], 1),
    ]

    def test_frameName(self):
        """
        Frames lose their line number and the interpreter's path prefix, so
        that one function is one entry.
        """
        self.assertEqual(
            profsummary.frameName("respond (/work/x/ikedtx/crypto/kex.py:42)"), "respond (x/ikedtx/crypto/kex.py)")
        self.assertEqual(
            profsummary.frameName("emit (/usr/lib/python3.11/site-packages/twisted/logger/_logger.py:7)"),
            "emit (twisted/logger/_logger.py)")

    def test_summarise(self):
        """
        Inclusive shares count a function once per sample; self shares go to
        the innermost frame.
        """
        total, inclusive, selfTime = profsummary.summarise(self.STACKS)
        self.assertEqual(total, 10)
        self.assertEqual(dict(inclusive)["main (bench/x.py)"], 10)
        self.assertEqual(dict(inclusive)["respondInit (ikedtx/core/exchanges.py)"], 9)
        self.assertEqual(selfTime[0], ("derive (cryptography/hazmat/x.py)", 6))

    def test_bucket(self):
        """
        A library frame that no area names counts for the ikedtx module that
        called it; unmatched stacks are "other".
        """
        areas = profsummary.bucket(self.STACKS, profsummary.AREAS)
        self.assertEqual(areas["key exchange (crypto/kex.py)"], 6)
        self.assertEqual(areas["logging (twisted.logger)"], 3)
        self.assertEqual(areas["other"], 1)


class TableTests(SynchronousTestCase):
    def test_missingValues(self):
        """
        A row without figures (a failed run) prints dashes, not an error.
        """
        text = report.table([{"suite": "psk-ecp256", "responder": "ikedtx", "held": 0}])
        self.assertIn("psk-ecp256", text)
        self.assertIn(" - ", text)

    def test_markdown(self):
        row = {"suite": "psk-ecp256", "responder": "charon", "generator": "ikedtx", "held": 10, "rate": 100.0, "cpuMsPerSa": 1.234,
               "respUtil": 0.5, "latencyMs": [10.0, 20.0, 30.0]}
        text = report.table([row], markdown=True)
        self.assertIn("| psk-ecp256 | charon | ikedtx | 10 | 100 | 1.23 |", text)
        self.assertIn("50%", text)
        self.assertIn("10/30", text)

    def test_generatorConfig(self):
        """
        The generator gets one policy per identity, each with its own srcid.
        """
        text = suites.generatorConfig(suites.SUITES["psk-x25519"], 3)
        self.assertEqual(text.count("ikev2 "), 3)
        self.assertIn("srcid gen2.bench.example dstid resp.bench.example", text)
        self.assertIn("group curve25519", text)


class NullKernelTests(SynchronousTestCase):
    def test_wholeInterface(self):
        """
        The load generator's datapath offers all of L{IKernel} (a missing
        querySA made every DPD check of a generator holding SAs log an
        AttributeError): a usage query answers an idle SA.
        """
        # In a process of its own: bench/loadgen.py installs the epoll
        # reactor when imported.
        script = (
            "from zope.interface.verify import verifyObject\n"
            "from bench.loadgen import NullKernel\n"
            "from ikedtx.kernel.interfaces import IKernel, KernelSAUsage\n"
            "kernel = NullKernel()\n"
            "verifyObject(IKernel, kernel)\n"
            "usage = []\n"
            "kernel.querySA(None).addCallback(usage.append)\n"
            "assert usage == [KernelSAUsage()], usage\n"
            "print('whole')\n")
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "whole"), result.stderr)


class SmokeTests(SynchronousTestCase):
    def test_ikedtxResponder(self):
        """
        Twenty IKE SAs (with their Child SAs) against an ikedtx responder:
        the generator holds them all and the responder reports all of them.
        """
        requireRoot()
        requireExecutable("ip", "apt-get install iproute2")
        output = os.path.abspath(self.mktemp())
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench", "ikebench.py"), "--sas", "20", "--suites", "psk-ecp256",
             "--responders", "ikedtx", "--window", "8", "--quiet-wait", "0", "--no-pin", "--json", output],
            capture_output=True, text=True, timeout=120, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with open(output) as f:
            rows = json.load(f)
        self.assertEqual(len(rows), 1, rows)
        row = rows[0]
        self.assertEqual((row["why"], row["held"], row["verified"], row["verifiedChildren"], row["controlShowSA"]),
                         ("done", 20, 20, 20, 20), result.stdout)
        self.assertIn("psk-ecp256", result.stdout)

    def test_charon6GeneratorHybrid(self):
        """
        charon 6.1 from the Debian 13 tree (chrooted) as the generator of
        the hybrid suite (X25519 + ML-KEM-768 in IKE_INTERMEDIATE, RFC
        9370), against ikedtx and against charon 6.1 itself: both hold all
        24 IKE SAs and Child SAs (charon proposes only the hybrid: no SA
        without ML-KEM).
        """
        from ikedtx.testing.lab.chroot import trixieRoot

        trixieRoot()
        rows = self._charonGenerated([], 24, suite="psk-x25519-mlkem768", charon="charon6")
        self.assertEqual({r["suite"] for r in rows}, {"psk-x25519-mlkem768"})
        self.assertIn("6.1", [r for r in rows if r["responder"] == "charon6"][0]["responderDescription"])

    def _charonGenerated(self, extra, children, suite="psk-x25519", charon="charon"):
        """
        Run ikebench with strongSwan's C{charon} (or C{charon6}) as the load
        generator against ikedtx and itself; return the rows, each checked
        to hold every SA on both sides with sane figures (no speed is
        asserted).
        """
        requireRoot()
        requireExecutable("ip", "apt-get install iproute2")
        requireExecutable("/usr/lib/ipsec/charon", "apt-get install strongswan-charon strongswan-swanctl")
        output = os.path.abspath(self.mktemp())
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench", "ikebench.py"), "--sas", "24", "--suites", suite,
             "--responders", "ikedtx," + charon, "--generators", charon, "--window", "6", "--quiet-wait", "0",
             "--no-pin", "--json", output] + extra,
            capture_output=True, text=True, timeout=240, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with open(output) as f:
            rows = json.load(f)
        self.assertEqual(sorted((r["responder"], r["generator"]) for r in rows),
                         [(charon, charon), ("ikedtx", charon)], result.stdout)
        for row in rows:
            self.assertEqual((row["why"], row["held"], row["verified"], row["verifiedChildren"]),
                             ("done", 24, 24, children), (row, result.stdout))
            self.assertGreater(row["cpuMsPerSa"], 0, row)
            self.assertGreater(row["genCpuMsPerSa"], 0, row)
            self.assertGreater(row["baseRssKb"], 1000, row)
            self.assertGreater(row["rssKb"], row["baseRssKb"], row)
            self.assertLessEqual(row["latencyMs"][0], row["latencyMs"][2], row)
        return rows

    def test_charonGeneratorWithChild(self):
        """
        charon as a neutral generator (over vici), each IKE SA with one
        Child SA: both responders hold all 24 IKE SAs and 24 Child SAs.
        """
        rows = self._charonGenerated([], 24)
        self.assertEqual({r["suite"] for r in rows}, {"psk-x25519"})

    def test_charonGeneratorChildless(self):
        """
        Childless IKE SAs (RFC 6023, charon's childless = force): both
        responders hold 24 IKE SAs and no Child SA.
        """
        rows = self._charonGenerated(["--childless"], 0)
        self.assertEqual({r["suite"] for r in rows}, {"psk-x25519-childless"})
        self.assertEqual([r["childless"] for r in rows], [24, 24])


class WorkerSplitSmokeTests(SynchronousTestCase):
    def test_twoWorkers(self):
        """
        bench/workersplit.py against ikedtx with two IKE workers, 20 IKE SAs
        from charon, the Python calls counted: a row for the parent and
        each worker, each with CPU and calls, every IKE_SA_INIT and IKE_AUTH
        request received once and none for an IKE SA the worker lacks.
        """
        requireRoot()
        requireExecutable("ip", "apt-get install iproute2")
        requireExecutable("/usr/lib/ipsec/charon", "apt-get install strongswan-charon strongswan-swanctl")
        output = os.path.abspath(self.mktemp())
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench", "workersplit.py"), "--sas", "20", "--window", "4",
             "--responders", "ikedtx-w2", "--cprofile", "--json", output],
            capture_output=True, text=True, timeout=300, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with open(output) as f:
            (row,) = json.load(f)
        self.assertEqual((row["why"], row["held"]), ("done", 20), result.stdout)
        self.assertEqual(len(row["processes"]), 3, row)
        for process in row["processes"]:
            self.assertGreater(process["cpuMsPerSa"], 0, row)
            self.assertGreater(process["callsPerSa"], 0, row)
        self.assertEqual(row["counters"].get("ikes_msg_rcvd"), 40, row)
        self.assertEqual(row["counters"].get("ikes_msg_rcvd_dropped", 0), 0, row)


class InMemoryBenchSmokeTests(SynchronousTestCase):
    """
    The in-memory benchmarks of issue 13 at a few SAs, so that they do not
    rot (no figure is asserted, only that they ran through).
    """

    def runBench(self, *arguments):
        result = subprocess.run([sys.executable] + list(arguments), cwd=ROOT, capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=ROOT), timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_gcscale(self):
        """
        bench/gcscale.py with the freeze policy: 20 IKE SAs, the
        collections and the freeze steps counted.
        """
        out = self.runBench("bench/gcscale.py", "--sas", "20", "--policy", "freeze")
        self.assertIn("policy freeze, 20 IKE SAs", out)
        self.assertIn("freeze steps", out)

    def test_scalecost(self):
        """
        bench/scalecost.py in two steps of 20 and 40 IKE SAs: a row each,
        every IKE SA and Child SA up (no PROBLEM), opcodes counted.
        """
        out = self.runBench("bench/scalecost.py", "--steps", "20,40", "--window", "10", "--opcodes", "5", "--ids", "4")
        rows = [line.split("|") for line in out.splitlines() if line.startswith("| 20 ") or line.startswith("| 40 ")]
        self.assertEqual([int(r[1]) for r in rows], [20, 40])
        self.assertNotIn("PROBLEM", out)
        self.assertTrue(all(int(r[4]) > 0 and int(r[5]) > 0 for r in rows), out)
        self.assertIn("freeze steps", out)

    def test_keepalive(self):
        """
        bench/keepalive.py: 5 IKE SAs for 10 simulated minutes, checked by
        DPD and none lost.
        """
        out = self.runBench("bench/keepalive.py", "--sas", "5", "--hours", "0.17")
        self.assertIn("INFORMATIONAL", out)
        self.assertIn("IKE SAs held at the end: 5 (lost 0)", out)

    def test_privcost(self):
        """
        bench/privcost.py: 10 IKE SAs through a worker's RemoteKernel and
        the parent's WorkerCommands, all up; with SPI blocks one command
        per SA and one block, without them two per SA.
        """
        out = self.runBench("bench/privcost.py", "--sas", "10", "--repeat", "1")
        self.assertNotIn("PROBLEM", out)
        self.assertIn("10 IKE SAs;", out)
        self.assertIn("per SA 1.10 commands to the parent", out)
        out = self.runBench("bench/privcost.py", "--sas", "10", "--repeat", "1", "--no-blocks")
        self.assertIn("per SA 2.00 commands to the parent", out)

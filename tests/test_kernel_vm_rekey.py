"""
Rekeying with the Linux XFRM provider in a real ESP kernel (the lab VM,
L{ikedtx.testing.lab.vm}): tests/vm/ikedtx_rekey.sh runs two ikedtx daemons
with C{--kernel xfrm} and 400 pings through their Child SA, whose soft byte
limit only the kernel counts (its soft expire starts the Child SA rekey,
RFC 7296 2.8) while ikedtx's own timer rekeys the IKE SA (C{ikelifetime
25}). One boot for the module.
"""

import os
import re
import sys

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.testing.lab.vm import runInVM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "vm", "ikedtx_rekey.sh")

_cache = {}


def rekeyReport():
    if "rekey" not in _cache:
        try:
            rc, output, seconds = runInVM(["env", "PYTHONPATH=" + ROOT, SCRIPT, sys.executable], timeout=500, cwd=ROOT)
            values = dict(re.findall(r"^(\w+)=(.*)$", output, re.M))
            for name in re.findall(r"^(\w+)_begin$", output, re.M):
                values[name] = output.split(name + "_begin\n", 1)[1].split(name + "_end", 1)[0]
            values["output"] = output
            _cache["rekey"] = values
        except BaseException as e:
            _cache["rekey"] = e
    if isinstance(_cache["rekey"], BaseException):
        raise _cache["rekey"]
    return _cache["rekey"]


class XfrmRekeyVMTests(SynchronousTestCase):
    def test_kernelSoftExpireRekeys(self):
        """
        The kernel's soft byte expire reaches the core and the Child SA is
        rekeyed before its hard limit; the kernel then holds the new SA
        pair only.
        """
        result = rekeyReport()
        tail = result["output"][-6000:]
        self.assertEqual(result.get("installed"), "1", tail)
        before, after = ([word for word in result[name].split() if word.startswith("0x")]
                         for name in ("spis_before", "spis_after"))
        # Namespace a holds its inbound and its outbound SA.
        self.assertEqual((len(before), len(after)), (2, 2), tail)
        self.assertEqual(set(before) & set(after), set(), tail)
        logs = result["log_a"] + result["log_b"]
        self.assertIn("xfrm: soft expire of ESP SA", logs)
        self.assertIn("reached its soft lifetime; rekeying it", logs)
        self.assertNotIn("hard expire", logs)

    def test_limitsInKernel(self):
        """
        The kernel holds the policy's hard limits (C{lifetime 120 bytes
        24K}: 120 s, 24576 bytes) and a soft limit between 85% and 95% of
        each (the jitter), the same for both SAs of the pair.
        """
        states = rekeyReport()["states_a"]
        sas = re.findall(r"^src .*\n(?:\t.*\n)+", states, re.M)
        self.assertEqual(len(sas), 2, states)
        limits = set()
        for sa in sas:
            (softBytes, hardBytes), = re.findall(r"limit: soft (\d+)\(bytes\), hard (\d+)\(bytes\)", sa)
            (softSeconds, hardSeconds), = re.findall(r"expire add: soft (\d+)\(sec\), hard (\d+)\(sec\)", sa)
            self.assertEqual((int(hardBytes), int(hardSeconds)), (24576, 120), sa)
            self.assertTrue(0.85 * 24576 <= int(softBytes) < 0.95 * 24576, sa)
            self.assertTrue(0.85 * 120 <= int(softSeconds) < 0.95 * 120, sa)
            limits.add((softBytes, softSeconds))
        self.assertEqual(len(limits), 1, states)

    def test_noPingLost(self):
        """
        Every one of the 400 pings crossing the rekeys is answered: the new
        Child SA keeps the reqid (the kernel's policies stay), and the
        responder hands its new outbound SA over only when the old Child SA
        goes.
        """
        result = rekeyReport()
        # Both daemons' SA events (a lost ping is one of the rekeys' windows).
        events = "\n".join(line for name in ("log_a", "log_b") for line in result.get(name, "").splitlines()
                           if re.search(r"Child SA|rekey|collision|expire|deleted|installing", line))
        self.assertEqual(result.get("received"), "400", events[-8000:])

    def test_ikeSARekeyed(self):
        """
        ikedtx's C{ikelifetime} timer rekeys the IKE SA in the VM too; the
        Child SA moves with it.
        """
        result = rekeyReport()
        self.assertIn("1 Child SA(s) moved", result["log_a"], result["output"][-6000:])

    def test_stopRemovesEverything(self):
        result = rekeyReport()
        self.assertEqual(result.get("after_stop", "missing").strip(), "", result["output"][-3000:])

"""
MOBIKE (RFC 4555) with the Linux XFRM provider's tunnel policies, in a real
ESP kernel (the lab VM, L{ikedtx.testing.lab.vm}): tests/vm/ikedtx_mobike.sh
runs two ikedtx daemons with C{--kernel xfrm}; the initiator's path to the
responder moves from one link to another (its route and address there go),
it sends UPDATE_SA_ADDRESSES from its new address, and both move their SAs,
the templates of their tunnel policies and their table-220 routes. Pings
cross the tunnel before and after. One boot for the module.
"""

import os
import re
import sys

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.testing.lab.vm import runInVM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "vm", "ikedtx_mobike.sh")

_cache = {}


def mobikeReport():
    if "mobike" not in _cache:
        try:
            rc, output, seconds = runInVM(["env", "PYTHONPATH=" + ROOT, SCRIPT, sys.executable], timeout=400, cwd=ROOT)
            values = dict(re.findall(r"^(\w+)=(.*)$", output, re.M))
            for name in re.findall(r"^(\w+)_begin$", output, re.M):
                values[name] = output.split(name + "_begin\n", 1)[1].split(name + "_end", 1)[0]
            values["output"] = output
            _cache["mobike"] = values
        except BaseException as e:
            _cache["mobike"] = e
    if isinstance(_cache["mobike"], BaseException):
        raise _cache["mobike"]
    return _cache["mobike"]


class XfrmMobikeVMTests(SynchronousTestCase):
    def value(self, key):
        result = mobikeReport()
        if key not in result:
            self.fail("no %s in the VM's output:\n%s" % (key, result["output"][-6000:]))
        return result[key]

    def test_pingBefore(self):
        """
        Before the move the tunnel carries the pings (the responder's
        inbound SA from 192.0.2.1 counts them).
        """
        self.assertEqual(self.value("installed"), "1", mobikeReport()["output"][-6000:])
        self.assertEqual(self.value("ping_before"), "3", mobikeReport()["output"][-6000:])
        self.assertGreaterEqual(int(self.value("packets_in_b_before") or 0), 3)

    def test_policiesFollow(self):
        """
        After the move, both sides' tunnel policies carry templates with the
        new outer addresses, and none with the old one is left.
        """
        tail = mobikeReport()["output"][-6000:]
        self.assertEqual(self.value("moved"), "1", tail)
        policiesA, policiesB = self.value("after_policies_a"), self.value("after_policies_b")
        self.assertIn("tmpl src 198.51.100.1 dst 10.9.0.2", policiesA)
        self.assertIn("tmpl src 10.9.0.2 dst 198.51.100.1", policiesA)
        self.assertIn("tmpl src 10.9.0.2 dst 198.51.100.1", policiesB)
        self.assertIn("tmpl src 198.51.100.1 dst 10.9.0.2", policiesB)
        self.assertNotIn("192.0.2.1", policiesA + policiesB)
        self.assertIn("tmpl src 192.0.2.1 dst 10.9.0.2", self.value("before_policies_a"))

    def test_responderRouteFollows(self):
        """
        The responder's table-220 route to the initiator's inner network
        goes out on the link its peer is now on.
        """
        self.assertRegex(self.value("before_table_b"), r"10\.1\.0\.0/16 dev vb .*src 10\.2\.0\.1")
        self.assertRegex(self.value("after_table_b"), r"10\.1\.0\.0/16 dev wb .*src 10\.2\.0\.1")

    def test_initiatorRouteFollows(self):
        """
        The initiator's route (flushed by the kernel with its address on
        va) comes back through its new next hop (the Child SA's flows and
        its policy's trap flow moved).
        """
        self.assertRegex(self.value("before_table_a"), r"10\.2\.0\.0/16 via 192\.0\.2\.2 dev va .*src 10\.1\.0\.1")
        self.assertRegex(self.value("after_table_a"), r"10\.2\.0\.0/16 via 198\.51\.100\.2 dev wa .*src 10\.1\.0\.1")

    def test_trapFollows(self):
        """
        Once the moved Child SA is deleted, the trap flow of the active
        policy is back in the kernel with the new endpoints in its template
        (an acquire negotiates from there), none with the old address, and
        the route stays through the new next hop.
        """
        tail = mobikeReport()["output"][-6000:]
        self.assertEqual(self.value("child_deleted"), "0", tail)
        policies = self.value("trap_policies_a")
        self.assertRegex(policies, r"src 10\.1\.0\.0/16 dst 10\.2\.0\.0/16\s+dir out[^\n]*\n\s+tmpl src 198\.51\.100\.1 "
                                   r"dst 10\.9\.0\.2", tail)
        self.assertNotIn("192.0.2.1", policies)
        self.assertRegex(self.value("trap_table_a"), r"10\.2\.0\.0/16 via 198\.51\.100\.2 dev wa .*src 10\.1\.0\.1")

    def test_pingAfter(self):
        """
        Every ping after the move is answered, through ESP from the new
        address (the moved SA counts them).
        """
        tail = mobikeReport()["output"][-6000:]
        self.assertEqual(self.value("ping_after"), "10", tail)
        self.assertGreaterEqual(int(self.value("packets_in_b_after") or 0), 10, tail)

    def test_stopRemovesEverything(self):
        self.assertEqual(self.value("after_stop").strip(), "", mobikeReport()["output"][-3000:])

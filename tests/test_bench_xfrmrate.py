"""
Tests for bench/xfrmrate.py in memory: its table, its addresses and the
plan it writes for the VM (the run itself boots the VM and is not part of
the suite).
"""

import json
import os
from ipaddress import ip_address, ip_network

from twisted.trial.unittest import SynchronousTestCase

from bench import xfrmrate
from ikedtx.config import parseConfig


class XfrmRateTests(SynchronousTestCase):
    def test_table(self):
        """
        A complete run gives Child SAs/s and both daemons' CPU milliseconds
        per Child SA; an incomplete one says how far it got; a failed one
        why.
        """
        results = [
            {"responder": "charon", "n": 200, "complete": True, "seconds": 10.0, "responderCpu": 2.36,
             "initiatorCpu": 2.74, "responderCounts": [400, 200]},
            {"responder": "ikedtx", "n": 200, "complete": False, "seconds": 300.0, "responderCpu": 30.0,
             "initiatorCpu": None, "responderCounts": [120, 60]},
            {"responder": "ikedtx", "error": "responder did not start"},
        ]
        self.assertEqual(xfrmrate.table(results).splitlines()[2:], [
            "| charon 5.9.8 kernel-netlink | 200 | yes | 10.00 | 20.0 | 11.8 | 13.7 |",
            "| ikedtx --kernel xfrm | 200 | no (120 SAs, 60 policies) | 300.00 | 0.7 | 150.0 | ? |",
            "| ikedtx --kernel xfrm | | error: responder did not start | | | | |",
        ])

    def test_inner(self):
        """
        Children get distinct host addresses in the /16, never .0 or .255.
        """
        addresses = [xfrmrate.inner("10.1", i) for i in range(1000)]
        self.assertEqual(addresses[:2] + addresses[249:251], ["10.1.0.1", "10.1.0.2", "10.1.0.250", "10.1.1.1"])
        self.assertEqual(len(set(addresses)), 1000)
        self.assertTrue(all(ip_address(a) in ip_network("10.1.0.0/16") for a in addresses))
        self.assertFalse([a for a in addresses if a.endswith((".0", ".255"))])

    def test_plan(self):
        """
        The initiator's connection has one child per address pair, started
        on load; ikedtx's one passive policy covers them all.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        plan = json.load(open(xfrmrate.writePlan(directory, 3, ["charon", "ikedtx"], 60)))
        self.assertEqual((plan["n"], plan["responders"]), (3, ["charon", "ikedtx"]))
        swanctl = open(os.path.join(plan["initiator"]["dir"], "swanctl.conf")).read()
        self.assertEqual(swanctl.count("start_action = start"), 3)
        for i in range(3):
            self.assertIn("local_ts = 10.1.0.%d/32" % (i + 1,), swanctl)
            self.assertIn("remote_ts = 10.2.0.%d/32" % (i + 1,), swanctl)
        strongswan = open(os.path.join(plan["initiator"]["dir"], "strongswan.conf")).read()
        self.assertIn("kernel-netlink", strongswan)
        self.assertNotIn("kernel-libipsec", strongswan)
        (policy,) = parseConfig(open(plan["ikedtx"]["conf"]).read()).policies
        self.assertFalse(policy.active)
        self.assertEqual(len(policy.flows), 1)
        self.assertEqual(oct(os.stat(plan["ikedtx"]["conf"]).st_mode & 0o777), "0o600")

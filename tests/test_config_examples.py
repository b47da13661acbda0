# -*- test-case-name: tests.test_config_examples -*-
"""
The example configurations under C{conf/} are valid, and the two gateways
of C{conf/iked.conf} and C{conf/iked-peer.conf} fit together.
"""

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import loadConfig

CONF = FilePath(__file__).parent().parent().child("conf")


def load(name):
    # A checkout does not keep the files' 0600 mode.
    return loadConfig(CONF.child(name).path, checkPermissions=False)


class ExampleTests(SynchronousTestCase):
    def test_allValid(self):
        names = sorted(c.basename() for c in CONF.children() if c.basename().endswith(".conf"))
        self.assertIn("iked.conf", names)
        for name in names:
            self.assertTrue(load(name).policies, name)

    def test_gatewaysMatch(self):
        """
        Each gateway's flows are the other's reversed, its IDs the other's
        swapped, and both offer the same proposals and key.
        """
        a = load("iked.conf").policies[0]
        b = load("iked-peer.conf").policies[0]
        self.assertEqual([(f.src.network, f.dst.network) for f in a.flows], [(f.dst.network, f.src.network) for f in b.flows])
        self.assertEqual((a.srcId, a.dstId), (b.dstId, b.srcId))
        self.assertEqual((a.local, a.peer), (b.peer, b.local))
        self.assertEqual((a.ikeProposals, a.childProposals, a.auth), (b.ikeProposals, b.childProposals, b.auth))
        self.assertTrue(a.active)
        self.assertFalse(b.active)

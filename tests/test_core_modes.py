"""
Tests for run-time passive and active modes in L{ikedtx.core} (C{ikectl
passive}, C{ikectl active}, which calls L{IKECore.startup} again): back to
active, the active policies without an IKE SA are initiated, the others
are left alone.
"""

from ikedtx.core.states import IKEState

from tests.test_core_exchanges import ExchangeTestCase


class ModeTests(ExchangeTestCase):
    def test_activeAgainKeepsEstablished(self):
        """
        An active policy whose IKE SA stayed up while passive is not
        initiated a second time when the daemon is active again.
        """
        a, b, ikeSA = self.establish()
        a.core.passive = True
        a.core.passive = False
        a.execute(a.core.startup())
        self.network.pump()
        self.assertEqual(a.ikeSAs, [ikeSA])
        self.assertEqual(len(b.ikeSAs), 1)

    def test_activeAgainInitiatesLost(self):
        """
        An active policy whose IKE SA went while passive (not initiated
        again then) is initiated when the daemon is active again.
        """
        a, b, ikeSA = self.establish()
        a.core.passive = True
        a.core.destroy(ikeSA, "gone while passive")
        a.execute(a.core._drain())
        self.network.inFlight.clear()
        self.assertEqual(a.ikeSAs, [])
        self.assertEqual([k for k in a.timers if k.kind == "reinitiate"], [])
        a.core.passive = False
        a.execute(a.core.startup())
        self.network.pump()
        (new,) = a.ikeSAs
        self.assertEqual(new.state, IKEState.VALID)

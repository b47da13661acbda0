"""
Tests for C{set enforcesingleikesa} (iked.conf(5)) in L{ikedtx.core}: a new
IKE SA of a dstid replaces the older ones; without it, both stay.
"""

from ikedtx.core.actions import IKESADown
from ikedtx.core.states import IKEState

from tests.test_core_exchanges import ExchangeTestCase, initiatorConfig, responderConfig


class EnforceSingleIKESATests(ExchangeTestCase):
    def _twice(self, settingsA="", settingsB=""):
        a, b = self.makePair(initiator=initiatorConfig(settings=settingsA), responder=responderConfig(settings=settingsB))
        requestId = a.initiate("ab")
        self.network.pump()
        first = self.assertSucceeded(a, requestId)
        requestId = a.initiate("ab")
        self.network.pump()
        second = self.assertSucceeded(a, requestId)
        return first, second

    def test_responderReplacesOld(self):
        """
        With C{set enforcesingleikesa} on the responder, the second IKE SA
        of the same dstid makes it delete the first with a Delete: both
        sides hold only the new one, with its Child SA.
        """
        first, second = self._twice(settingsB="set enforcesingleikesa")
        a, b = self.a, self.b
        self.assertEqual(a.ikeSAs, [second])
        self.assertEqual(first.state, IKEState.CLOSED)
        (ikeB,) = b.ikeSAs
        self.assertEqual((ikeB.spiI, ikeB.spiR), (second.spiI, second.spiR))
        self.assertEqual(len(ikeB.children), 1)
        self.assertEqual([d.reason for d in b.eventsOf(IKESADown)], ["replaced by a new IKE SA of the same dstid"])
        self.assertEqual(len(b.kernel.sas), 2)

    def test_initiatorReplacesOld(self):
        """
        The same on the initiator's side: its own new IKE SA replaces its
        old one of that dstid (and the policy is not initiated again).
        """
        first, second = self._twice(settingsA="set enforcesingleikesa")
        self.assertEqual(self.a.ikeSAs, [second])
        self.assertEqual(len(self.b.ikeSAs), 1)
        self.assertEqual(first.state, IKEState.CLOSED)
        self.assertEqual([k for k in self.a.timers if k.kind == "reinitiate"], [])

    def test_offByDefault(self):
        """
        Without it (C{noenforcesingleikesa}, the default) both IKE SAs stay.
        """
        first, second = self._twice()
        self.assertEqual(len(self.a.ikeSAs), 2)
        self.assertEqual(len(self.b.ikeSAs), 2)

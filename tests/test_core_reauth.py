"""
Tests for reauthentication (RFC 7296 2.8.3) in L{ikedtx.core}: a peer that
reauthenticates opens a new IKE SA with a full IKE_SA_INIT and IKE_AUTH
between the same identities and then deletes the old one (strongSwan's
C{reauth_time}, make-before-break), or deletes first and sends
INITIAL_CONTACT with the new one; two cores pumped in memory.
"""

from ikedtx.core.states import ChildState, IKEState

from tests.test_core_exchanges import A_ADDR, B_ADDR
from tests.test_core_rekey import RekeyTestCase


class ResponderReauthTests(RekeyTestCase):
    def _reauthByPeer(self):
        """
        A reauthenticates its IKE SA as charon does with
        C{make_before_break}: a second IKE SA for the same policy, then the
        old one deleted.  Returns the old and new IKE SAs of B.
        """
        a, b, old = self.establishWith()
        (oldB,) = b.ikeSAs
        (oldChildB,) = oldB.children
        requestId = a.initiate("ab")
        self.network.pump()
        new = self.assertSucceeded(a, requestId)
        self.assertEqual(len(b.ikeSAs), 2)
        (newB,) = [sa for sa in b.ikeSAs if sa is not oldB]
        a.command(a.core.deleteIKESA, old)
        self.network.pump()
        return oldB, oldChildB, newB, new

    def test_makeBeforeBreak(self):
        """
        After the peer's new IKE SA is up and its old one deleted, B holds
        only the new IKE SA with its Child SA; the datapath holds exactly
        that Child SA's SAs and its flows (the old Child SA's removal did
        not take the new one's flows with it), and only its timers remain.
        """
        oldB, oldChildB, newB, newA = self._reauthByPeer()
        a, b = self.a, self.b
        self.assertEqual(b.ikeSAs, [newB])
        self.assertEqual(a.ikeSAs, [newA])
        self.assertEqual(oldB.state, IKEState.CLOSED)
        self.assertEqual(oldChildB.state, ChildState.DELETED)
        childA, childB = self.assertOneChildPair()
        self.assertEqual({flow.reqid for flow in b.kernel.flows}, {childB.reqid})
        self.assertEqual(len(b.kernel.flows), len(childB.kernelRecords[1]))
        self.assertEqual({flow.reqid for flow in a.kernel.flows}, {childA.reqid})
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)
        self.assertEqual(len(b.core._children), 1)

    def test_initialContactAfterBreak(self):
        """
        A peer that deletes its old IKE SA first and then reauthenticates
        with INITIAL_CONTACT (break-before-make) ends with the new IKE SA
        alone on both sides; and a new IKE SA with INITIAL_CONTACT while the
        old one is still up (the old one's Delete lost) replaces the old
        one, never the new.
        """
        a, b, old = self.establishWith()
        (oldB,) = b.ikeSAs
        # The peer forgets its old IKE SA (a reboot, or its Delete lost).
        a.core.destroy(old, "forgotten")
        self.network.inFlight.clear()
        requestId = a.initiate("ab")
        self.network.pump()
        new = self.assertSucceeded(a, requestId)
        self.assertEqual(a.ikeSAs, [new])
        (newB,) = b.ikeSAs
        self.assertIsNot(newB, oldB)
        self.assertEqual(oldB.state, IKEState.CLOSED)
        childA, childB = self.assertOneChildPair()
        self.assertEqual({flow.reqid for flow in b.kernel.flows}, {childB.reqid})
        self.assertTimersOnlyFor(b)

"""
Tests for reauthentication (RFC 7296 2.8.3) in L{ikedtx.core}: a peer that
reauthenticates opens a new IKE SA with a full IKE_SA_INIT and IKE_AUTH
between the same identities and then deletes the old one (strongSwan's
C{reauth_time}, make-before-break), or deletes first and sends
INITIAL_CONTACT with the new one; two cores pumped in memory.
"""

from ikedtx.config import parseConfig, renderConfig
from ikedtx.core.actions import IKESADown, InstallChildSA, RemoveChildSA
from ikedtx.core.states import ChildState, IKEState
from ikedtx.core.timers import TimerKey
from ikedtx.wire.constants import ExchangeType

from tests.test_core_exchanges import initiatorConfig, responderConfig
from tests.test_core_rekey import RekeyTestCase, lifetimes


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


class InitiatorReauthTests(RekeyTestCase):
    def _pair(self, reauthA=True, reauthB=False):
        def extra(ids, reauth):
            return lifetimes(60, 0, ids) + (" reauth" if reauth else "")
        # "reauth" goes right after ikelifetime: lifetimes() ends with it
        # when there is no Child SA lifetime.
        return self.establish(
            initiator=initiatorConfig(ids=False, extra=extra(("a.example", "b.example"), reauthA),
                                      settings="set dpd_check_interval 0"),
            responder=responderConfig(ids=False, extra=extra(("b.example", "a.example"), reauthB),
                                      settings="set dpd_check_interval 0"))

    def test_policyKeyword(self):
        """
        C{ikelifetime TIME reauth} sets the policy's C{reauth}, and the
        printer writes it back.
        """
        config = parseConfig('ikev2 "x" active esp from 10.1.0.0/24 to 10.2.0.0/24 local 192.0.2.1 peer 192.0.2.2 '
                             'ikelifetime 600 reauth psk "s"')
        (policy,) = config.policies
        self.assertTrue(policy.reauth)
        self.assertIn("ikelifetime 600 reauth", renderConfig(config))
        self.assertTrue(parseConfig(renderConfig(config)).policies[0].reauth)
        plain = parseConfig('ikev2 "x" active esp from 10.1.0.0/24 to 10.2.0.0/24 local 192.0.2.1 peer 192.0.2.2 '
                            'ikelifetime 600 psk "s"')
        self.assertFalse(plain.policies[0].reauth)

    def test_makeBeforeBreak(self):
        """
        At its C{ikelifetime} an IKE SA whose policy says C{reauth} is
        replaced by a new IKE SA from a full IKE_SA_INIT and IKE_AUTH (no
        CREATE_CHILD_SA rekey, no INITIAL_CONTACT); the new Child SA is
        installed before the old one is removed (RFC 7296 2.8.3), then the
        old IKE SA is deleted with a Delete; both sides end with the new
        pair alone, their SAs, flows and timers.
        """
        a, b, old = self._pair()
        (oldChild,) = old.children
        self.network.delivered.clear()
        before = len(a.events)
        a.execute(a.core.timerExpired(TimerKey.ikeRekey(old.localSPI)))
        self.network.pump()
        (new,) = a.ikeSAs
        self.assertIsNot(new, old)
        self.assertEqual((old.state, oldChild.state), (IKEState.CLOSED, ChildState.DELETED))
        self.assertEqual(self.exchangeTypes(), [
            (ExchangeType.IKE_SA_INIT, False), (ExchangeType.IKE_SA_INIT, True),
            (ExchangeType.IKE_AUTH, False), (ExchangeType.IKE_AUTH, True),
            (ExchangeType.INFORMATIONAL, False), (ExchangeType.INFORMATIONAL, True)])
        # Not INITIAL_CONTACT: B deleted the old IKE SA on its Delete.
        self.assertEqual([d.reason for d in b.eventsOf(IKESADown)], ["deleted by peer"])
        kernel = [(type(e), e.reqid) for e in a.events[before:] if isinstance(e, (InstallChildSA, RemoveChildSA))]
        (newChild,) = new.children
        self.assertEqual(kernel, [(InstallChildSA, newChild.reqid), (RemoveChildSA, oldChild.reqid)])
        self.assertOneChildPair()
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)
        self.assertEqual(len(a.core._children), 1)
        self.assertEqual(len(b.core._children), 1)
        # Renewed again at the new IKE SA's own ikelifetime.
        self.assertIn(TimerKey.ikeRekey(new.localSPI), self.activeTimers(a))

    def test_successorFails(self):
        """
        When the new IKE SA cannot be made (the peer does not answer), the
        old one stays up with its Child SA and tries again later; the
        second attempt replaces it.
        """
        a, b, old = self._pair()
        (oldChild,) = old.children
        a.execute(a.core.timerExpired(TimerKey.ikeRekey(old.localSPI)))
        first = old.reauthBy
        self.assertIsNotNone(first)
        while first.state != IKEState.CLOSED:
            while self.network.inFlight:
                self.network.drop()
            a.clock.advance(1)
        self.assertEqual(a.ikeSAs, [old])
        self.assertEqual((old.state, oldChild.state), (IKEState.VALID, ChildState.INSTALLED))
        self.assertIn(TimerKey.ikeRekey(old.localSPI), self.activeTimers(a))
        while old.state == IKEState.VALID:
            a.clock.advance(1)
            self.network.pump()
        (new,) = a.ikeSAs
        self.assertIsNot(new, first)
        self.assertEqual(old.state, IKEState.CLOSED)
        self.assertOneChildPair()
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)


class ReauthRecreatesEveryChildTests(RekeyTestCase):
    _pair = InitiatorReauthTests._pair

    def test_everyChildRecreated(self):
        """
        RFC 7296 2.8.3: reauthentication recreates every Child SA of the old
        IKE SA: here the IKE_AUTH one, a second one A made with
        CREATE_CHILD_SA and a third one B (the responder) made. The new IKE
        SA carries three installed Child SAs on both sides, with matching
        keys, and each is installed before the old IKE SA (and its Child
        SAs) is deleted: make-before-break for all of them.
        """
        a, b, old = self._pair()
        requestId = a.command(a.core.createChildSA, old)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        requestId = b.command(b.core.createChildSA, b.ikeSAs[0])
        self.network.pump()
        self.assertSucceeded(b, requestId)
        self.assertEqual(len(old.children), 3)
        before = len(a.events)
        a.execute(a.core.timerExpired(TimerKey.ikeRekey(old.localSPI)))
        self.network.pump()
        (new,) = a.ikeSAs
        (newB,) = b.ikeSAs
        self.assertIsNot(new, old)
        self.assertEqual(old.state, IKEState.CLOSED)
        self.assertEqual(len(new.children), 3)
        self.assertEqual({c.state for c in new.children} | {c.state for c in newB.children}, {ChildState.INSTALLED})
        self.assertEqual(sorted(c.spiOut for c in new.children), sorted(c.spiIn for c in newB.children))
        for child in new.children:
            (peer,) = [c for c in newB.children if c.spiIn == child.spiOut]
            self.assertEqual((child.keyOut, child.keyIn), (peer.keyIn, peer.keyOut))
        kernel = [type(e) for e in a.events[before:] if isinstance(e, (InstallChildSA, RemoveChildSA))]
        self.assertEqual(kernel, [InstallChildSA] * 3 + [RemoveChildSA] * 3)
        self.assertEqual(len(a.kernel.sas), 6)
        self.assertEqual(len(b.kernel.sas), 6)
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)

    def test_recreateFailsStillBreaks(self):
        """
        A Child SA the peer refuses to recreate does not keep the old IKE
        SA forever: once every recreation has ended, the old one goes.
        """
        a, b, old = self._pair()
        requestId = a.command(a.core.createChildSA, old)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        a.execute(a.core.timerExpired(TimerKey.ikeRekey(old.localSPI)))
        # IKE_SA_INIT and IKE_AUTH go through; the CREATE_CHILD_SA that
        # recreates the second Child SA is answered NO_PROPOSAL_CHOSEN.
        for _ in range(4):
            self.network.deliverOne()
        # (Policies are frozen: the test alone changes one in place.)
        object.__setattr__(b.core.policies.byName("ba"), "childProposals", [])
        self.network.pump()
        self.assertEqual(old.state, IKEState.CLOSED)
        (new,) = a.ikeSAs
        self.assertEqual(len(new.children), 1)
        self.assertTimersOnlyFor(a)

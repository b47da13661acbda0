"""
Tests for rekeying in L{ikedtx.core}: Child SAs (RFC 7296 1.3.3, 2.8) and
IKE SAs (1.3.2, 2.18) in both roles, driven by the lifetime timers of
L{ikedtx.core.lifetimes} or by the datapath's expires, with lost messages,
refusals (2.25) and collisions (2.8.1, 2.8.2); two cores pumped in memory
with a fake clock.
"""

from ikedtx.core.actions import InstallChildSA, RemoveChildSA
from ikedtx.core.states import ChildState, IKEState
from ikedtx.core.timers import TimerKey
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType, PayloadType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify

from tests.corehelpers import Host, Network
from tests.test_core_async import SlowHost
from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, initiatorConfig, responderConfig

PFS = "childsa enc aes-128-gcm group ecp256"


def lifetimes(ike=0, child=0, ids=("a.example", "b.example")):
    text = "srcid %s dstid %s" % ids
    if ike:
        text += " ikelifetime %d" % (ike,)
    if child:
        text += " lifetime %d" % (child,)
    return text


class RekeyTestCase(ExchangeTestCase):
    def establishWith(self, ike=0, child=0, pfs=False):
        extra = PFS + " " if pfs else ""
        return self.establish(
            initiator=initiatorConfig(ids=False, extra=extra + lifetimes(ike, child),
                                      settings="set dpd_check_interval 0"),
            responder=responderConfig(ids=False, extra=extra + lifetimes(ike, child, ("b.example", "a.example")),
                                      settings="set dpd_check_interval 0"))

    def rekeyChild(self, host):
        """
        Start a rekey of C{host}'s only Child SA, as its soft timer does.
        """
        (ikeSA,) = host.ikeSAs
        (child,) = ikeSA.children
        host.execute(host.core.timerExpired(TimerKey.childSoft(ikeSA.localSPI, child.reqid)))
        return child

    def assertOneChildPair(self):
        """
        Each side has one IKE SA with one installed Child SA, the two halves
        of the same pair with the same keys, and exactly its SAs in the
        kernel.
        """
        a, b = self.a, self.b
        (ikeA,), (ikeB,) = a.ikeSAs, b.ikeSAs
        self.assertEqual((ikeA.state, ikeB.state), (IKEState.VALID, IKEState.VALID))
        self.assertEqual((ikeA.spiI, ikeA.spiR), (ikeB.spiI, ikeB.spiR))
        childA, childB = self.assertChildKeysMatch(a, b)
        self.assertEqual((childA.state, childB.state), (ChildState.INSTALLED, ChildState.INSTALLED))
        self.assertEqual(sorted(spi for (_, spi, _) in a.kernel.sas), sorted([childA.spiIn, childA.spiOut]))
        self.assertEqual(sorted(spi for (_, spi, _) in b.kernel.sas), sorted([childB.spiIn, childB.spiOut]))
        return childA, childB

    def childInstalls(self, host):
        """
        The installs of new Child SAs (not of the outbound SA a rekey's
        responder hands over later).
        """
        return [e for e in host.eventsOf(InstallChildSA) if any(sa.inbound for sa in e.sas)]

    def activeTimers(self, host):
        return sorted((key for key, call in host.timers.items() if call.active()), key=repr)

    def assertTimersOnlyFor(self, host):
        """
        Every timer left armed on C{host} belongs to an SA it still has.
        """
        spis = {sa.localSPI for sa in host.ikeSAs}
        reqids = {(sa.localSPI, c.reqid) for sa in host.ikeSAs for c in sa.children}
        for key in self.activeTimers(host):
            if key.kind in ("childsoft", "childhard"):
                self.assertIn(key.subject, reqids, key)
            elif key.kind == "childrekeyed":
                self.assertIn(key.subject, {(c.reqid, c.spiIn) for sa in host.ikeSAs for c in sa.children}, key)
            elif key.kind != "cookiesecret" and key.kind != "reinitiate":
                self.assertIn(key.subject, spis, key)


class ChildRekeyTests(RekeyTestCase):
    def _rekey(self, which, pfs=False):
        a, b, ikeSA = self.establishWith(child=300, pfs=pfs)
        rekeyer = a if which == "a" else b
        self.network.delivered.clear()
        old = self.rekeyChild(rekeyer)
        other = b if rekeyer is a else a
        (oldPeer,) = other.ikeSAs[0].children
        installsBefore = len(rekeyer.events)
        self.network.pump()
        childA, childB = self.assertOneChildPair()
        new = childA if rekeyer is a else childB
        self.assertNotIn(old.spiIn, (childA.spiIn, childA.spiOut, childB.spiIn, childB.spiOut))
        self.assertIs(new.rekeyOf, old)
        self.assertNotEqual(new.keyIn, old.keyIn)
        self.assertEqual((old.state, oldPeer.state), (ChildState.DELETED, ChildState.DELETED))
        # The rekeyer installs the new SAs before it removes the old ones.
        kernel = [e for e in rekeyer.events[installsBefore:] if isinstance(e, (InstallChildSA, RemoveChildSA))]
        self.assertEqual([(type(e), e.reqid) for e in kernel],
                         [(InstallChildSA, new.reqid), (RemoveChildSA, old.reqid)])
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)
        return new

    def test_reqidKeptAndOutboundHeld(self):
        """
        The new Child SA keeps the old one's reqid on both sides (the
        datapath's flows stay). The responder installs its new inbound SA
        before it answers but hands its new outbound SA over only when the
        old Child SA goes, right before removing it: it sends with the new
        SA only once the initiator has the matching inbound SA.
        """
        a, b, ikeSA = self.establishWith(child=300)
        (oldB,) = b.ikeSAs[0].children
        before = len(b.events)
        old = self.rekeyChild(a)
        self.network.deliverOne()  # the rekey request
        installs = [e for e in b.events[before:] if isinstance(e, InstallChildSA)]
        self.assertEqual(len(installs), 1)
        install = installs[0]
        self.assertEqual([sa.inbound for sa in install.sas], [True])
        self.assertEqual(install.reqid, oldB.reqid)
        self.network.pump()
        childA, childB = self.assertOneChildPair()
        self.assertEqual((childA.reqid, childB.reqid), (old.reqid, oldB.reqid))
        kernel = [(type(e).__name__, [sa.spi for sa in e.sas]) for e in b.events[before:]
                  if isinstance(e, (InstallChildSA, RemoveChildSA))]
        self.assertEqual(kernel, [
            ("InstallChildSA", [childB.spiIn]),
            ("InstallChildSA", [childB.spiOut]),
            ("RemoveChildSA", [oldB.spiIn, oldB.spiOut])])
        self.assertEqual(b.core._children[childB.reqid][1], childB)

    def test_oldSAHardExpireSparesTheNew(self):
        """
        A hard expire of the old Child SA's SA (the datapath's, with the
        reqid the new one shares) deletes the old Child SA only.
        """
        a, b, ikeSA = self.establishWith(child=300)
        old = self.rekeyChild(b)
        (oldA,) = ikeSA.children
        self.network.deliverOne()  # B's rekey request: A answers
        a.execute(a.core.expired(oldA.protocol, oldA.spiIn, A_ADDR, True))
        self.network.pump()
        childA, childB = self.assertOneChildPair()
        self.assertIs(childB.rekeyOf, old)
        self.assertTimersOnlyFor(a)
        self.assertIn(TimerKey.childSoft(ikeSA.localSPI, childA.reqid), self.activeTimers(a))

    def test_peerNeverDeletesOld(self):
        """
        A rekey initiator that never deletes the old Child SA: the responder
        deletes it itself when the new one is rekeyed in turn (its held
        outbound SA goes to the datapath then), so nothing piles up.
        """
        from ikedtx.core.tasks.childrekey import ChildRekeyTask

        a, b, ikeSA = self.establishWith(child=300)
        old = self.rekeyChild(a)
        (oldB,) = b.ikeSAs[0].children
        original = ChildRekeyTask._deleteChild
        self.patch(ChildRekeyTask, "_deleteChild", lambda task, core, ikeSA, child: None)
        self.network.pump()
        self.assertEqual(len(b.ikeSAs[0].children), 2)
        self.patch(ChildRekeyTask, "_deleteChild", original)
        newB = b.ikeSAs[0].children[-1]
        b.execute(b.core.timerExpired(TimerKey.childSoft(b.ikeSAs[0].localSPI, newB.reqid)))
        self.network.pump()
        self.assertEqual(oldB.state, ChildState.DELETED)
        self.assertEqual(old.state, ChildState.DELETED)
        childA, childB = self.assertOneChildPair()
        self.assertIs(childB.rekeyOf, newB)

    def test_peerNeverDeletesOldWithinRetransmissionTime(self):
        """
        A rekey initiator that never sends the Delete of the old Child SA:
        once the time the initiator takes to give up on a request has
        passed (as for an IKE SA rekey), the responder hands its held
        outbound SA to the datapath and then deletes the old Child SA itself
        with a Delete to the peer; nothing is left of it on either side.
        """
        from ikedtx.core.tasks.childrekey import ChildRekeyTask

        a, b, ikeSA = self.establishWith(child=300)
        old = self.rekeyChild(a)
        (oldB,) = b.ikeSAs[0].children
        self.patch(ChildRekeyTask, "_deleteChild", lambda task, core, ikeSA, child: None)
        self.network.pump()
        newB = b.ikeSAs[0].children[-1]
        self.assertEqual(len(b.ikeSAs[0].children), 2)
        self.assertNotIn(newB.spiOut, [spi for (_, spi, _) in b.kernel.sas])
        wait = b.core.settings.retransmit.total()
        b.clock.advance(wait - 1)
        self.assertEqual(self.network.inFlight, [])
        self.assertEqual(oldB.state, ChildState.INSTALLED)
        before = len(b.events)
        self.network.delivered.clear()
        b.clock.advance(1)
        self.network.pump()
        kernel = [(type(e).__name__, [sa.spi for sa in e.sas]) for e in b.events[before:]
                  if isinstance(e, (InstallChildSA, RemoveChildSA))]
        self.assertEqual(kernel, [
            ("InstallChildSA", [newB.spiOut]),
            ("RemoveChildSA", [oldB.spiIn, oldB.spiOut])])
        self.assertEqual(self.exchanges(), [(ExchangeType.INFORMATIONAL, False), (ExchangeType.INFORMATIONAL, True)])
        self.assertEqual((oldB.state, old.state), (ChildState.DELETED, ChildState.DELETED))
        childA, childB = self.assertOneChildPair()
        self.assertIs(childB, newB)
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)

    def exchanges(self):
        return [(Message.decode(d).exchangeType, Message.decode(d).isResponse) for d, _, _ in self.network.delivered]

    def test_initiatorOfIKESARekeysChild(self):
        """
        RFC 7296 1.3.3: the IKE SA's initiator rekeys its Child SA with
        CREATE_CHILD_SA and REKEY_SA; the new pair is installed on both
        sides, then the old one is deleted with an INFORMATIONAL exchange.
        """
        self._rekey("a")
        self.assertEqual(self.exchanges(), [
            (ExchangeType.CREATE_CHILD_SA, False), (ExchangeType.CREATE_CHILD_SA, True),
            (ExchangeType.INFORMATIONAL, False), (ExchangeType.INFORMATIONAL, True)])

    def test_responderOfIKESARekeysChild(self):
        """
        The IKE SA's responder rekeys too (RFC 7296 2.8: either end may).
        """
        self._rekey("b")

    def test_rekeyRequestCarriesRekeySa(self):
        """
        The request names the old Child SA by our inbound SPI in REKEY_SA
        (RFC 7296 1.3.3) and carries a fresh nonce.
        """
        a, b, ikeSA = self.establishWith(child=300)
        self.network.delivered.clear()
        old = self.rekeyChild(a)
        data = self.network.inFlight[0][0]
        inner = Message.decode(data).decrypt(b.ikeSAs[0].cipherIn)
        (rekey,) = [p for p in inner if isinstance(p, Notify) and p.notifyType == NotifyType.REKEY_SA]
        self.assertEqual(int.from_bytes(bytes(rekey.spi), "big"), old.spiIn)
        self.assertIn(PayloadType.NONCE, [p.payloadType for p in inner])
        self.assertNotIn(PayloadType.KE, [p.payloadType for p in inner])

    def test_pfs(self):
        """
        With a childsa group the rekey carries a KE of that group (RFC 7296
        1.3.3) and the new keys differ from the old.
        """
        new = self._rekey("b", pfs=True)
        self.assertEqual(new.pfsGroup, DhId.ECP_256)
        request = Message.decode(self.network.delivered[0][0])
        inner = request.decrypt(self.a.ikeSAs[0].cipherIn)
        (ke,) = [p for p in inner if p.payloadType == PayloadType.KE]
        self.assertEqual(ke.group, DhId.ECP_256)

    def test_lossOfEachMessage(self):
        """
        Whichever of the four messages of a rekey (CREATE_CHILD_SA request
        and response, the Delete and its answer) is lost, retransmission
        completes it, with one new Child SA on each side and nothing left
        behind.
        """
        for lost in range(4):
            a, b, ikeSA = self.establishWith(child=300)
            self.rekeyChild(a)
            for _ in range(lost):
                self.network.deliverOne()
            self.network.drop()
            a.clock.advance(2)
            self.network.pump()
            self.assertOneChildPair()
            self.assertEqual(len(self.childInstalls(b)), 2, lost)
            self.assertTimersOnlyFor(a)
            self.assertTimersOnlyFor(b)

    def test_softLifetimeTimers(self):
        """
        With C{lifetime 20} the Child SA is rekeyed by its soft timer
        (jittered between 85% and 95% of the lifetime) before the hard one
        fires, again and again: after ten minutes each side still has one
        Child SA pair, renewed many times, and only its timers.
        """
        a, b, ikeSA = self.establishWith(child=20)
        (first,) = ikeSA.children
        softA = a.timers[TimerKey.childSoft(ikeSA.localSPI, first.reqid)].getTime()
        self.assertTrue(17 <= softA <= 19, softA)
        seen = set()
        for _ in range(600):
            a.clock.advance(1)
            self.network.pump()
            seen.add(a.ikeSAs[0].children[0].spiIn)
            self.assertEqual(len(a.ikeSAs[0].children), 1)
        self.assertGreater(len(seen), 25)
        self.assertOneChildPair()
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)
        # No Child SA ever reached its hard lifetime.
        self.assertEqual(len(self.childInstalls(a)), len(a.eventsOf(RemoveChildSA)) + 1)

    def test_datapathLimitsJittered(self):
        """
        C{lifetime 3000 bytes 1M}: every SA handed to the datapath has the
        hard limits of the policy (3000 s, 1 MiB) and soft ones drawn anew
        for each Child SA between 85% and 95% of them (RFC 7296 2.8.1's
        jitter), the same for both SAs of a pair; the byte limits can only
        be enforced there. Over a few rekeys the soft limits differ.
        """
        a, b = self.establish(
            initiator=initiatorConfig(ids=False, extra=lifetimes(child=3000) + " bytes 1M"),
            responder=responderConfig(ids=False, extra=lifetimes(child=3000, ids=("b.example", "a.example")) + " bytes 1M"))[:2]
        for _ in range(4):
            self.rekeyChild(a)
            self.network.pump()
        softs = set()
        for host in (a, b):
            installs = self.childInstalls(host)
            self.assertEqual(len(installs), 5)
            for install in installs:
                sas = install.sas
                self.assertEqual({(sa.lifetimeSeconds, sa.lifetimeBytes) for sa in sas}, {(3000, 1 << 20)})
                (pair,) = {(sa.softLifetimeSeconds, sa.softLifetimeBytes) for sa in sas}
                self.assertTrue(0.85 * 3000 <= pair[0] < 0.95 * 3000, pair)
                self.assertTrue(0.85 * (1 << 20) <= pair[1] < 0.95 * (1 << 20), pair)
                softs.add(pair)
        self.assertGreater(len(softs), 5, softs)

    def test_datapathSoftExpire(self):
        """
        A soft expire from the datapath (IKECore.expired) starts the rekey,
        as the timer does; a second one for the other SA of the pair does
        not start another.
        """
        a, b, ikeSA = self.establishWith(child=300)
        (old,) = ikeSA.children
        a.execute(a.core.expired(old.protocol, old.spiIn, A_ADDR, False))
        a.execute(a.core.expired(old.protocol, old.spiOut, A_ADDR, False))
        self.assertEqual(len(self.network.inFlight), 1)
        self.network.pump()
        (new,) = self.assertOneChildPair()[:1]
        self.assertIs(new.rekeyOf, old)

    def test_hardLifetimeWhenRekeyFails(self):
        """
        When the peer refuses the rekey (here: no acceptable proposal) the
        Child SA lives until its hard lifetime and is deleted then.
        """
        a, b, ikeSA = self.establish(
            initiator=initiatorConfig(ids=False, extra=PFS + " " + lifetimes(child=20)),
            responder=responderConfig(ids=False, extra="childsa enc aes-128-gcm " + lifetimes(
                child=3000, ids=("b.example", "a.example"))))
        (child,) = ikeSA.children
        for _ in range(21):
            a.clock.advance(1)
            self.network.pump()
        self.assertEqual(child.state, ChildState.DELETED)
        self.assertEqual((ikeSA.children, b.ikeSAs[0].children), ([], []))
        self.assertEqual((a.kernel.sas, b.kernel.sas), ({}, {}))
        self.assertTimersOnlyFor(a)

    def test_childNotFound(self):
        """
        RFC 7296 2.25.1: a rekey of a Child SA the responder does not have
        is answered CHILD_SA_NOT_FOUND; the initiator drops it and creates
        a new Child SA instead.
        """
        a, b, ikeSA = self.establishWith(child=300)
        (old,) = ikeSA.children
        (peer,) = b.ikeSAs[0].children
        b.execute(b.core.removeChild(b.ikeSAs[0], peer) or [])
        self.rekeyChild(a)
        self.network.pump()
        answers = [Message.decode(d) for d, _, _ in self.network.delivered if Message.decode(d).isResponse]
        inner = answers[-2].decrypt(a.ikeSAs[0].cipherIn) if len(answers) >= 2 else []
        self.assertIn(NotifyType.CHILD_SA_NOT_FOUND,
                      [p.notifyType for p in inner if isinstance(p, Notify)])
        self.assertEqual(old.state, ChildState.DELETED)
        self.assertOneChildPair()

    def test_rekeyOfChildBeingDeleted(self):
        """
        RFC 7296 2.25.1: a rekey request for a Child SA the responder is
        deleting is answered TEMPORARY_FAILURE; the Delete wins and the
        initiator keeps nothing of it.
        """
        a, b, ikeSA = self.establishWith(child=300)
        (old,) = ikeSA.children
        self.rekeyChild(a)
        b.command(b.core.deleteChildSA, b.ikeSAs[0], b.ikeSAs[0].children[0])
        # The two requests cross.
        self.network.deliverOne()
        self.network.deliverOne()
        self.network.pump()
        responses = [Message.decode(d) for d, _, dst in self.network.delivered if Message.decode(d).isResponse
                     and dst[0] == A_ADDR and Message.decode(d).exchangeType == ExchangeType.CREATE_CHILD_SA]
        (response,) = responses
        self.assertEqual([p.notifyType for p in response.decrypt(a.ikeSAs[0].cipherIn) if isinstance(p, Notify)],
                         [NotifyType.TEMPORARY_FAILURE])
        self.assertEqual((ikeSA.children, b.ikeSAs[0].children), ([], []))
        self.assertEqual((a.kernel.sas, b.kernel.sas), ({}, {}))
        self.assertTimersOnlyFor(a)

    def test_collision(self):
        """
        RFC 7296 2.8.1: both peers rekey the same Child SA at once; each
        answers the other's request, the SA made with the lowest nonce is
        deleted by its maker, and exactly one new pair is left on both
        sides.
        """
        a, b, ikeSA = self.establishWith(child=300)
        self.rekeyChild(a)
        self.rekeyChild(b)
        self.assertEqual(len(self.network.inFlight), 2)
        self.network.deliverOne()  # A's request to B
        self.network.deliverOne()  # B's request to A
        self.network.pump()
        childA, childB = self.assertOneChildPair()
        self.assertEqual(len(self.childInstalls(a)), 3)
        self.assertEqual(len(self.childInstalls(b)), 3)
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)

    def test_collisionBothOrders(self):
        """
        The collision ends the same whichever response arrives first.
        """
        for order in (0, 1):
            a, b, ikeSA = self.establishWith(child=300)
            self.rekeyChild(a)
            self.rekeyChild(b)
            self.network.deliverOne()
            self.network.deliverOne()
            if order:
                self.network.inFlight.reverse()
            self.network.pump()
            self.assertOneChildPair()

    def collide(self, skip):
        """
        Both peers rekey their Child SA at once (as in L{test_collision});
        the Child SA deletes C{skip} names (C{"old"} or C{"new"}, of a
        L{ChildRekeyTask}) are never sent (all are, for C{None}). Returns the hosts, the winner
        first: the one whose exchange did not hold the lowest nonce.
        """
        from ikedtx.core.tasks.childrekey import ChildRekeyTask

        a, b, ikeSA = self.establishWith(child=300)
        original = ChildRekeyTask._deleteChild
        skipped = []

        def deleteChild(task, core, ikeSA, child):
            if skip is None:
                # Only noted: the maker of the redundant SA deletes it.
                if child is task.child:
                    skipped.append(core)
            elif (child is task.old) == (skip == "old"):
                skipped.append(core)
                return
            original(task, core, ikeSA, child)

        self.patch(ChildRekeyTask, "_deleteChild", deleteChild)
        self.made = {a: self.rekeyChild(a).rekeying, b: self.rekeyChild(b).rekeying}
        self.network.deliverOne()
        self.network.deliverOne()
        self.network.pump()
        (maker,) = skipped
        loser = a if a.core is maker else b
        if skip == "old":
            loser = b if loser is a else a
        winner = b if loser is a else a
        return winner, loser

    def holdTime(self, winner, loser):
        """
        Let the time a peer retransmits a request pass on both sides, one
        second short of it first: nothing happens until then.
        """
        wait = winner.core.settings.retransmit.total()
        self.assertEqual(wait, loser.core.settings.retransmit.total())
        self.network.clock.advance(wait - 1)
        self.assertEqual(self.network.inFlight, [])
        self.network.clock.advance(1)
        self.network.pump()

    def test_collisionLoserKeepsRedundant(self):
        """
        RFC 7296 2.8.1: after a rekey collision, the peer that made the
        redundant Child SA (the exchange with the lowest nonce) never
        deletes it (as a peer that does not detect collisions does): both
        sides have two new Child SAs until the time a request is
        retransmitted has passed; then the winner deletes the redundant
        one, and one pair is left on both sides, the winner's.
        """
        winner, loser = self.collide("new")
        (ikeW,), (ikeL,) = winner.ikeSAs, loser.ikeSAs
        self.assertEqual(len(ikeW.children), 2)
        self.assertEqual(len(ikeL.children), 2)
        ours = self.made[winner].child
        self.holdTime(winner, loser)
        childA, childB = self.assertOneChildPair()
        self.assertIs(childA if winner is self.a else childB, ours)
        self.assertRedundantOutboundHeld(winner, loser)
        self.assertTimersOnlyFor(winner)
        self.assertTimersOnlyFor(loser)

    def test_collisionRedundantNeverRekeyed(self):
        """
        The redundant Child SA the loser never deleted is not rekeyed by
        the winner at the soft lifetime it shares with the winner's own:
        until the hard lifetime of the winner's Child SA, one rekey of it,
        and one pair is left.
        """
        winner, loser = self.collide("new")
        ours = self.made[winner].child
        _, hardAt = ours.deadlines
        while self.network.clock.seconds() < hardAt - 10:
            self.network.clock.advance(10)
            self.network.pump()
        childA, childB = self.assertOneChildPair()
        self.assertIs((childA if winner is self.a else childB).rekeyOf, ours)
        self.assertTimersOnlyFor(winner)
        self.assertTimersOnlyFor(loser)

    def test_collisionRedundantOutboundHeld(self):
        """
        The winner of a collision never hands the outbound SA of the
        peer's redundant Child SA (held back since it answered the peer's
        rekey) to the datapath: its traffic goes from the old SA to its
        own new one, while the peer deletes the redundant one.
        """
        winner, loser = self.collide(None)
        self.assertEqual(self.made[loser].child.state, ChildState.DELETED)
        self.assertOneChildPair()
        self.assertRedundantOutboundHeld(winner, loser)

    def assertRedundantOutboundHeld(self, winner, loser):
        outbound = [sa.spi for e in winner.eventsOf(InstallChildSA) for sa in e.sas if not sa.inbound]
        self.assertNotIn(self.made[loser].child.spiIn, outbound)
        self.assertIn(self.made[winner].child.spiOut, outbound)

    def test_collisionWinnerKeepsOld(self):
        """
        After a rekey collision the winner never deletes the old Child SA:
        the loser deletes it itself once the time a request is retransmitted
        has passed, and one pair is left.
        """
        winner, loser = self.collide("old")
        self.assertEqual(len(loser.ikeSAs[0].children), 2)
        self.holdTime(winner, loser)
        self.assertOneChildPair()
        self.assertTimersOnlyFor(winner)
        self.assertTimersOnlyFor(loser)


class IKERekeyTests(RekeyTestCase):
    def rekeyIKE(self, host):
        (ikeSA,) = host.ikeSAs
        host.execute(host.core.timerExpired(TimerKey.ikeRekey(ikeSA.localSPI)))
        return ikeSA

    def _rekey(self, which):
        a, b, ikeSA = self.establishWith(child=300, ike=3000)
        rekeyer = a if which == "a" else b
        oldA, oldB = a.ikeSAs[0], b.ikeSAs[0]
        (childA,), (childB,) = oldA.children, oldB.children
        self.rekeyIKE(rekeyer)
        self.network.pump()
        (newA,), (newB,) = a.ikeSAs, b.ikeSAs
        self.assertNotIn(newA.spiI, (oldA.spiI, oldA.spiR))
        self.assertNotIn(newA.spiR, (oldA.spiI, oldA.spiR))
        self.assertEqual((oldA.state, oldB.state), (IKEState.CLOSED, IKEState.CLOSED))
        self.assertEqual(newA.initiator, rekeyer is a)
        self.assertEqual(bytes(newA.keys.skD), bytes(newB.keys.skD))
        self.assertNotEqual(bytes(newA.keys.skD), bytes(oldA.keys.skD) if oldA.keys.skD else b"")
        # The Child SAs moved, untouched.
        self.assertEqual((newA.children, newB.children), ([childA], [childB]))
        self.assertEqual(childA.state, ChildState.INSTALLED)
        self.assertEqual(a.eventsOf(RemoveChildSA), [])
        self.assertOneChildPair()
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)
        # The new IKE SA works: a Child SA is created and deleted over it.
        requestId = a.command(a.core.createChildSA, newA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        requestId = a.command(a.core.deleteChildSA, newA, child)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertOneChildPair()
        return newA, newB

    def test_initiatorRekeys(self):
        """
        RFC 7296 1.3.2: the IKE SA's initiator rekeys it: a new IKE SA with
        new SPIs and keys takes its Child SAs, the old one is deleted on
        both sides.
        """
        self._rekey("a")

    def test_responderRekeys(self):
        """
        The IKE SA's responder rekeys it and becomes the new IKE SA's
        original initiator (RFC 7296 2.18).
        """
        newA, newB = self._rekey("b")
        self.assertTrue(newB.initiator)

    def test_ikelifetimeTimer(self):
        """
        With C{ikelifetime 30} the IKE SA is rekeyed by its own timer, again
        and again; the Child SA (lifetime 20) is rekeyed too, and after ten
        minutes each side has one IKE SA and one Child SA pair.
        """
        a, b, ikeSA = self.establishWith(child=20, ike=30)
        ikeSPIs = set()
        for _ in range(600):
            a.clock.advance(1)
            self.network.pump()
            self.assertEqual(len(a.ikeSAs[0].children), 1)
            ikeSPIs.add(a.ikeSAs[0].localSPI)
        self.assertGreater(len(ikeSPIs), 15)
        self.assertOneChildPair()
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)

    def test_lossOfEachMessage(self):
        """
        Whichever message of the IKE SA rekey (CREATE_CHILD_SA request and
        response, the Delete of the old IKE SA and its answer) is lost,
        retransmission completes it.
        """
        for lost in range(4):
            a, b, ikeSA = self.establishWith(child=300)
            self.rekeyIKE(a)
            for _ in range(lost):
                self.network.deliverOne()
            self.network.drop()
            # A lost answer to the Delete leaves the old IKE SA to its
            # retransmissions, unanswered: it goes after the last one.
            for _ in range(70):
                a.clock.advance(1)
                self.network.pump()
            self.assertEqual((len(a.ikeSAs), len(b.ikeSAs)), (1, 1), lost)
            self.assertNotEqual(a.ikeSAs[0].localSPI, ikeSA.localSPI)
            self.assertOneChildPair()

    def test_lostDeleteNeverRetransmitted(self):
        """
        A responder whose peer never deletes the old IKE SA deletes it
        itself after a while; nothing is left of it.
        """
        a, b, ikeSA = self.establishWith(child=300)
        self.rekeyIKE(a)
        self.network.deliverOne()
        self.network.deliverOne()
        # A's Delete of the old IKE SA, and every retransmission, is lost.
        for _ in range(200):
            a.clock.advance(1)
            while self.network.inFlight:
                self.network.drop()
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID])
        self.assertTimersOnlyFor(b)

    def test_refusedWhenNotEstablished(self):
        """
        A rekey request on an IKE SA that is closing is answered
        TEMPORARY_FAILURE (RFC 7296 2.25.2); the initiator's rekey fails and
        its IKE SA goes with the Delete.
        """
        a, b, ikeSA = self.establishWith(child=300)
        self.rekeyIKE(a)
        b.command(b.core.deleteIKESA, b.ikeSAs[0])
        self.network.deliverOne()  # A's rekey request reaches B, which is closing
        self.network.pump()
        responses = [Message.decode(d) for d, _, dst in self.network.delivered if Message.decode(d).isResponse
                     and Message.decode(d).exchangeType == ExchangeType.CREATE_CHILD_SA]
        self.assertEqual(len(responses), 1)
        self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))

    def test_temporaryFailureRetried(self):
        """
        A rekey refused with TEMPORARY_FAILURE (the responder has a Child SA
        exchange in flight) is tried again after a short delay and then
        succeeds.
        """
        a, b, ikeSA = self.establishWith(child=300)
        b.command(b.core.createChildSA, b.ikeSAs[0])
        self.rekeyIKE(a)
        self.network.deliverOne()  # B's CREATE_CHILD_SA to A
        self.network.deliverOne()  # A's rekey to B: B waits for its answer
        self.network.pump()
        self.assertEqual(a.ikeSAs[0].localSPI, ikeSA.localSPI)
        a.clock.advance(11)
        self.network.pump()
        (newA,) = a.ikeSAs
        self.assertNotEqual(newA.localSPI, ikeSA.localSPI)
        self.assertEqual(len(newA.children), 2)

    def test_collision(self):
        """
        RFC 7296 2.8.2: both peers rekey the IKE SA at once; the new IKE SA
        with the lowest nonce is deleted, one IKE SA with the Child SA is
        left on both sides.
        """
        for order in (0, 1):
            a, b, ikeSA = self.establishWith(child=300)
            self.rekeyIKE(a)
            self.rekeyIKE(b)
            self.network.deliverOne()
            self.network.deliverOne()
            if order:
                self.network.inFlight.reverse()
            self.network.pump()
            self.assertEqual((len(a.ikeSAs), len(b.ikeSAs)), (1, 1), order)
            self.assertNotEqual(a.ikeSAs[0].localSPI, ikeSA.localSPI)
            self.assertOneChildPair()
            self.assertTimersOnlyFor(a)
            self.assertTimersOnlyFor(b)

    def test_childRekeyCrossesIKERekey(self):
        """
        RFC 7296 2.25.2: A rekeys its Child SA while B rekeys the IKE SA;
        A refuses the IKE SA rekey with TEMPORARY_FAILURE (its Child SA
        exchange is in flight), B answers the Child SA rekey; B tries the
        IKE SA rekey again later and it succeeds, the new Child SA moving
        with it.
        """
        a, b, ikeSA = self.establishWith(child=300)
        old = self.rekeyChild(a)
        self.rekeyIKE(b)
        self.network.deliverOne()  # A's Child SA rekey to B
        self.network.deliverOne()  # B's IKE SA rekey to A
        self.network.pump()
        responses = [Message.decode(d) for d, _, dst in self.network.delivered
                     if Message.decode(d).isResponse and dst[0] == "192.0.2.2"
                     and Message.decode(d).exchangeType == ExchangeType.CREATE_CHILD_SA]
        self.assertEqual([p.notifyType for p in responses[0].decrypt(b.ikeSAs[0].cipherIn) if isinstance(p, Notify)],
                         [NotifyType.TEMPORARY_FAILURE])
        self.assertEqual(a.ikeSAs[0].localSPI, ikeSA.localSPI)
        childA, childB = self.assertOneChildPair()
        self.assertIs(childA.rekeyOf, old)
        for _ in range(11):
            b.clock.advance(1)
            self.network.pump()
        self.assertNotEqual(a.ikeSAs[0].localSPI, ikeSA.localSPI)
        self.assertEqual(self.assertOneChildPair(), (childA, childB))
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)

    def test_childRekeyAfterIKERekey(self):
        """
        A Child SA moved to the new IKE SA is rekeyed over it.
        """
        a, b, ikeSA = self.establishWith(child=300)
        self.rekeyIKE(a)
        self.network.pump()
        old = self.rekeyChild(b)
        self.network.pump()
        childA, childB = self.assertOneChildPair()
        self.assertIs(childB.rekeyOf, old)

    def test_failedRekeyQueuedTasks(self):
        """
        An exchange queued on the old IKE SA while the rekey was in flight
        runs on the new one.
        """
        a, b, ikeSA = self.establishWith(child=300)
        self.rekeyIKE(a)
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        self.assertIn(child, a.ikeSAs[0].children)
        self.assertIsNot(a.ikeSAs[0], ikeSA)



class SlowDatapathRekeyTests(RekeyTestCase):
    def settle(self, host):
        """
        Pump, answering every SPI allocation and install of the slow
        C{host}, until nothing moves.
        """
        while True:
            self.network.pump()
            host.allocateAll()
            if not host.installs and not self.network.inFlight:
                return
            while host.installs:
                install = host.installs.pop(0)
                host.execute(host.core.childInstalled(install.reqid))

    def test_deleteWaitsForInstall(self):
        """
        RFC 7296 2.8: the rekeyer sends the Delete of the old Child SA only
        once the datapath confirmed the new one; until then both are in
        its kernel.
        """
        self.network = Network()
        a = self.a = SlowHost(self.network, A_ADDR, initiatorConfig())
        self.b = Host(self.network, B_ADDR, responderConfig())
        a.initiate("ab")
        self.settle(a)
        (old,) = a.ikeSAs[0].children
        self.rekeyChild(a)
        a.allocateAll()
        self.network.pump()
        (install,) = a.installs
        self.assertEqual(self.network.inFlight, [])
        self.assertEqual(old.state, ChildState.INSTALLED)
        self.assertEqual(a.eventsOf(RemoveChildSA), [])
        a.installs.clear()
        a.execute(a.core.childInstalled(install.reqid))
        (request,) = self.network.inFlight
        self.assertEqual(Message.decode(request[0]).exchangeType, ExchangeType.INFORMATIONAL)
        self.settle(a)
        self.assertEqual(old.state, ChildState.DELETED)
        childA, childB = self.assertChildKeysMatch(a, self.b)
        self.assertIs(childA.rekeyOf, old)
        self.assertEqual([e.reqid for e in a.eventsOf(RemoveChildSA)], [old.reqid])


class UnestablishedTests(RekeyTestCase):
    def test_ikeRekeyBeforeAuth(self):
        """
        An IKE SA rekey request on an IKE SA whose IKE_AUTH has not
        completed is dropped unanswered (L{ikedtx.core.screening}: answering
        it would spend the message ID that the real IKE_AUTH uses, the
        CVE-2019-12312 pattern) and changes nothing: no new IKE SA, the
        half-open one stays, and the IKE_AUTH retransmitted next completes.
        """
        from ikedtx.core.tasks.common import offersFromConfig, saPayload
        from ikedtx.wire.constants import HeaderFlag
        from ikedtx.wire.payloads import KeyExchange, Nonce

        a, b = self.makePair()
        a.initiate("ab")
        self.network.deliverOne()  # IKE_SA_INIT request
        self.network.deliverOne()  # IKE_SA_INIT response
        self.network.drop()  # IKE_AUTH request
        (ikeA,), (ikeB,) = a.ikeSAs, b.ikeSAs
        offers = offersFromConfig(ikeA.policy.ikeProposals, b"\x07" * 8)
        ke = b"\x09" * 32
        payloads = [saPayload(offers), Nonce(b"\x05" * 32), KeyExchange(ikeA.proposal.dhGroup, ke)]
        request = Message(ikeA.spiI, ikeA.spiR, ExchangeType.CREATE_CHILD_SA, HeaderFlag.INITIATOR, 1,
                          encrypted=payloads)
        b.receive(request.encode(ikeA.cipherOut), ("192.0.2.2", 500), ("192.0.2.1", 500))
        self.assertEqual(self.network.inFlight, [])
        self.assertEqual(b.ikeSAs, [ikeB])
        self.assertEqual(ikeB.state, IKEState.SA_INIT)
        self.network.clock.advance(10)  # a's IKE_AUTH retransmission
        self.network.pump()
        self.assertEqual((ikeA.state, ikeB.state), (IKEState.VALID, IKEState.VALID))


class SoakTests(RekeyTestCase):
    def test_manySAsForTwentyMinutes(self):
        """
        Ten IKE SAs with C{lifetime 20} and C{ikelifetime 30}, both peers
        rekeying on their own jittered timers (so some rekeys collide), run
        through twenty simulated minutes: every IKE SA and Child SA is
        renewed many times and none is lost; afterwards each side holds
        exactly ten IKE SAs with one Child SA each, their SAs in the
        kernel and their timers, and the core's indexes hold nothing else.
        """
        count = 10
        a, b = self.makePair(
            initiator=initiatorConfig(ids=False, extra=lifetimes(30, 20)),
            responder=responderConfig(ids=False, extra=lifetimes(30, 20, ("b.example", "a.example"))))
        for _ in range(count):
            requestId = a.initiate("ab")
            self.network.pump()
            self.assertSucceeded(a, requestId)
        self.assertEqual(len(a.ikeSAs), count)
        firstIKE = {sa.localSPI for sa in a.ikeSAs}
        firstChild = {c.spiIn for sa in a.ikeSAs for c in sa.children}
        installs = len(self.childInstalls(a))
        for _ in range(1200):
            a.clock.advance(1)
            self.network.pump(limit=1000)
        for host in (a, b):
            self.assertEqual(len(host.ikeSAs), count)
            self.assertEqual([len(sa.children) for sa in host.ikeSAs], [1] * count)
            self.assertEqual({sa.state for sa in host.ikeSAs}, {IKEState.VALID})
            self.assertEqual(len(host.kernel.sas), 2 * count)
            self.assertTimersOnlyFor(host)
            self.assertEqual(len(host.core._children), count)
            self.assertEqual(host.core._spiRequests, {})
            self.assertEqual(host.core.halfOpenCount(), 0)
        self.assertEqual({sa.localSPI for sa in a.ikeSAs} & firstIKE, set())
        self.assertEqual({c.spiIn for sa in a.ikeSAs for c in sa.children} & firstChild, set())
        # About 1200 / 18 rekeys of each Child SA, none lost.
        self.assertGreater(len(self.childInstalls(a)) - installs, count * 50)
        pairs = {(sa.spiI, sa.spiR) for sa in a.ikeSAs}
        self.assertEqual(pairs, {(sa.spiI, sa.spiR) for sa in b.ikeSAs})

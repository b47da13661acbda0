"""
RFC 9370 additional key exchanges in rekeys: a Child SA rekeyed (2.2.3,
2.2.4) and an IKE SA rekeyed (2.2.2, 2.2.4) with CREATE_CHILD_SA followed by
IKE_FOLLOWUP_KE exchanges, in both roles; two in-memory cores on a fake
clock, the key schedule recomputed here with hmac.
"""

import hashlib
import hmac

from ikedtx.core import cryptoglue
from ikedtx.core.actions import IKESARekeyed, InstallChildSA, RemoveChildSA
from ikedtx.core.states import ChildState, IKEState
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType, TransformType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify

from tests.test_core_rekey import RekeyTestCase, lifetimes
from tests.test_core_exchanges import initiatorConfig, responderConfig

IKE_ADDKE = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768"
IKE_ADDKE2 = IKE_ADDKE + " addke2 mlkem1024"
CHILD_ADDKE = "childsa enc aes-256-gcm group curve25519 addke1 mlkem768"
CREATE, FOLLOWUP = ExchangeType.CREATE_CHILD_SA, ExchangeType.IKE_FOLLOWUP_KE


class AddkeRekeyTestCase(RekeyTestCase):
    def establishAddke(self, proposals, ike=0, child=0):
        return self.establish(
            initiator=initiatorConfig(ids=False, extra=proposals + " " + lifetimes(ike, child),
                                      settings="set dpd_check_interval 0"),
            responder=responderConfig(ids=False, extra=proposals + " " + lifetimes(
                ike, child, ("b.example", "a.example")), settings="set dpd_check_interval 0"))

    def exchanges(self, start=0):
        out = []
        for d, _, _ in self.network.delivered[start:]:
            m = Message.decode(d)
            out.append((m.exchangeType, m.isResponse))
        return out

    def recordChildSecrets(self):
        """
        The shared secrets each side derives a Child SA's KEYMAT from:
        C{{initiator: [[bytes]]}}.
        """
        secrets = {True: [], False: []}
        real = cryptoglue.deriveChildKeys

        def record(ikeSA, child, shared, initiator, nonces=None):
            if isinstance(shared, list):
                secrets[initiator].append([bytes(s) for s in shared])
            return real(ikeSA, child, shared, initiator, nonces)

        self.patch(cryptoglue, "deriveChildKeys", record)
        return secrets


def prfPlus(key, seed, length):
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(key, t + seed + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


class ChildRekeyAddkeTests(AddkeRekeyTestCase):
    def _rekey(self, which):
        a, b, ikeSA = self.establishAddke(CHILD_ADDKE, child=300)
        secrets = self.recordChildSecrets()
        rekeyer = a if which == "a" else b
        other = b if rekeyer is a else a
        (old,) = rekeyer.ikeSAs[0].children
        (oldPeer,) = other.ikeSAs[0].children
        start = len(self.network.delivered)
        before = len(other.events)
        self.rekeyChild(rekeyer)
        self.network.pump()
        childA, childB = self.assertOneChildPair()
        new = childA if rekeyer is a else childB
        newPeer = childB if rekeyer is a else childA
        self.assertIs(new.rekeyOf, old)
        self.assertEqual((new.reqid, newPeer.reqid), (old.reqid, oldPeer.reqid))
        self.assertEqual((old.state, oldPeer.state), (ChildState.DELETED, ChildState.DELETED))
        self.assertEqual(new.proposal.additionalKeyExchanges, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertEqual(self.exchanges(start)[:4], [(CREATE, False), (CREATE, True), (FOLLOWUP, False),
                                                    (FOLLOWUP, True)])
        # RFC 9370 2.2.4 by hand: KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1)).
        ((sk0, sk1),) = secrets[True]
        self.assertEqual(secrets[False], [[sk0, sk1]])
        self.assertEqual((len(sk0), len(sk1)), (32, 32))
        ni, nr = new.nonces
        keymat = prfPlus(bytes(rekeyer.ikeSAs[0].keys.skD), sk0 + ni + nr + sk1, 72)
        initiatorOut = new.keyOut[0]
        self.assertEqual(bytes(initiatorOut), keymat[:36])
        self.assertEqual(bytes(newPeer.keyIn[0]), keymat[:36])
        self.assertEqual(bytes(new.keyIn[0]), keymat[36:])
        # The rekey's responder holds its new outbound SA back until the old
        # Child SA goes, as without additional key exchanges.
        kernel = [(type(e).__name__, [sa.spi for sa in e.sas]) for e in other.events[before:]
                  if isinstance(e, (InstallChildSA, RemoveChildSA))]
        self.assertEqual(kernel, [
            ("InstallChildSA", [newPeer.spiIn]),
            ("InstallChildSA", [newPeer.spiOut]),
            ("RemoveChildSA", [oldPeer.spiIn, oldPeer.spiOut])])
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)

    def test_initiatorRekeysChild(self):
        """
        The IKE SA's initiator rekeys a Child SA whose proposal has ADDKE1
        ML-KEM-768: CREATE_CHILD_SA then one IKE_FOLLOWUP_KE, the new Child
        SA's KEYMAT from SK(0) | Ni | Nr | SK(1), the old one deleted.
        """
        self._rekey("a")

    def test_responderRekeysChild(self):
        """
        The same rekey started by the IKE SA's responder.
        """
        self._rekey("b")

    def test_lossOfEachMessage(self):
        """
        Whichever of the six messages of the Child SA rekey (CREATE_CHILD_SA,
        IKE_FOLLOWUP_KE, the Delete; requests and responses) is lost,
        retransmission completes it: one new pair, installed once.
        """
        for lost in range(6):
            a, b, ikeSA = self.establishAddke(CHILD_ADDKE, child=300)
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

    def test_collision(self):
        """
        RFC 7296 2.8.1 with IKE_FOLLOWUP_KE rounds: both peers rekey the
        same Child SA at once; in either order of the responses exactly one
        new pair is left on both sides.
        """
        for order in (0, 1):
            a, b, ikeSA = self.establishAddke(CHILD_ADDKE, child=300)
            self.rekeyChild(a)
            self.rekeyChild(b)
            self.network.deliverOne()
            self.network.deliverOne()
            if order:
                self.network.inFlight.reverse()
            self.network.pump()
            self.assertOneChildPair()
            self.assertEqual((len(self.childInstalls(a)), len(self.childInstalls(b))), (3, 3))
            self.assertTimersOnlyFor(a)
            self.assertTimersOnlyFor(b)


class IKERekeyAddkeTests(AddkeRekeyTestCase):
    def rekeyIKE(self, host):
        from ikedtx.core.timers import TimerKey

        (ikeSA,) = host.ikeSAs
        host.execute(host.core.timerExpired(TimerKey.ikeRekey(ikeSA.localSPI)))
        return ikeSA

    def recordIKESecrets(self):
        """
        The secrets each side derives a rekeyed IKE SA's SKEYSEED from.
        """
        secrets = {True: [], False: []}
        real = cryptoglue.deriveRekeyedIKEKeys

        def record(core, old, new, shared):
            secrets[new.initiator].append([bytes(s) for s in shared] if isinstance(shared, list) else [bytes(shared)])
            return real(core, old, new, shared)

        self.patch(cryptoglue, "deriveRekeyedIKEKeys", record)
        return secrets

    def _rekey(self, which, proposals=IKE_ADDKE, rounds=1):
        a, b, ikeSA = self.establishAddke(proposals, ike=3000, child=300)
        secrets = self.recordIKESecrets()
        rekeyer = a if which == "a" else b
        oldA, oldB = a.ikeSAs[0], b.ikeSAs[0]
        oldRekeyer = oldA if rekeyer is a else oldB
        skDOld = bytes(oldRekeyer.keys.skD)
        (childA,), (childB,) = oldA.children, oldB.children
        start = len(self.network.delivered)
        self.rekeyIKE(rekeyer)
        self.network.pump()
        (newA,), (newB,) = a.ikeSAs, b.ikeSAs
        self.assertEqual((oldA.state, oldB.state), (IKEState.CLOSED, IKEState.CLOSED))
        self.assertEqual(newA.initiator, rekeyer is a)
        self.assertEqual(self.exchanges(start)[:2 + 2 * rounds],
                         [(CREATE, False), (CREATE, True)] + [(FOLLOWUP, False), (FOLLOWUP, True)] * rounds)
        # Each round's Message IDs follow on the old IKE SA.
        self.assertEqual(newA.proposal.additionalKeyExchanges, oldA.proposal.additionalKeyExchanges)
        # RFC 9370 2.2.4 by hand: SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr
        # | SK(1) | ...), then RFC 7296 2.14's prf+ with the new SPIs.
        (mine,), (theirs,) = secrets[True], secrets[False]
        self.assertEqual(mine, theirs)
        self.assertEqual([len(s) for s in mine], [32] * (rounds + 1))
        new = newA if rekeyer is a else newB
        seed = mine[0] + new.nonceI + new.nonceR + b"".join(mine[1:])
        skeyseed = hmac.new(skDOld, seed, hashlib.sha256).digest()
        stream = prfPlus(skeyseed, new.nonceI + new.nonceR + new.spiI + new.spiR, 32)
        self.assertEqual(bytes(newA.keys.skD), stream)
        self.assertEqual(bytes(newB.keys.skD), stream)
        # The Child SAs moved, untouched; the new IKE SA works.
        self.assertEqual((newA.children, newB.children), ([childA], [childB]))
        self.assertOneChildPair()
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)
        requestId = a.command(a.core.createChildSA, newA)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        return newA, newB

    def test_initiatorRekeys(self):
        """
        The IKE SA's initiator rekeys an IKE SA whose proposal has ADDKE1
        ML-KEM-768: CREATE_CHILD_SA and one IKE_FOLLOWUP_KE, the new SK_d
        from SKEYSEED = prf(SK_d, SK(0) | Ni | Nr | SK(1)).
        """
        self._rekey("a")

    def test_responderRekeys(self):
        """
        The IKE SA's responder rekeys it, as the new SA's initiator.
        """
        newA, newB = self._rekey("b")
        self.assertTrue(newB.initiator)

    def test_twoAdditional(self):
        """
        ADDKE1 ML-KEM-768 and ADDKE2 ML-KEM-1024: two IKE_FOLLOWUP_KE rounds,
        the link of the second from the first's response.
        """
        self._rekey("a", IKE_ADDKE2, rounds=2)

    def test_lossOfEachMessage(self):
        """
        Whichever message of the rekey (CREATE_CHILD_SA, IKE_FOLLOWUP_KE,
        the Delete; requests and responses) is lost, retransmission
        completes it with one IKE SA left on each side.
        """
        for lost in range(6):
            a, b, ikeSA = self.establishAddke(IKE_ADDKE, ike=3000, child=300)
            self.rekeyIKE(a)
            for _ in range(lost):
                self.network.deliverOne()
            self.network.drop()
            for _ in range(70):
                a.clock.advance(1)
                self.network.pump()
            self.assertEqual((len(a.ikeSAs), len(b.ikeSAs)), (1, 1), lost)
            self.assertNotEqual(a.ikeSAs[0].localSPI, ikeSA.localSPI, lost)
            self.assertEqual(bytes(a.ikeSAs[0].keys.skD), bytes(b.ikeSAs[0].keys.skD))
            self.assertOneChildPair()

    def test_collision(self):
        """
        Both peers rekey the IKE SA at once, each with its IKE_FOLLOWUP_KE
        round: whatever the order of delivery, exactly one new IKE SA is
        left, the same on both sides, with the Child SA.
        """
        for order in range(4):
            a, b, ikeSA = self.establishAddke(IKE_ADDKE, ike=3000, child=300)
            self.rekeyIKE(a)
            self.rekeyIKE(b)
            self.network.deliverOne()
            self.network.deliverOne()
            if order & 1:
                self.network.inFlight.reverse()
            if order & 2:
                self.network.deliverOne()
                self.network.deliverOne()
                self.network.inFlight.reverse()
            for _ in range(70):
                a.clock.advance(1)
                b.clock.advance(0)
                self.network.pump()
            (newA,), (newB,) = a.ikeSAs, b.ikeSAs
            self.assertEqual((newA.spiI, newA.spiR), (newB.spiI, newB.spiR), order)
            self.assertEqual((newA.state, newB.state), (IKEState.VALID, IKEState.VALID))
            self.assertNotEqual(newA.localSPI, ikeSA.localSPI)
            self.assertEqual(bytes(newA.keys.skD), bytes(newB.keys.skD))
            self.assertOneChildPair()
            self.assertTimersOnlyFor(a)
            self.assertTimersOnlyFor(b)

    def test_deletedMidway(self):
        """
        The responder deletes the old IKE SA between the CREATE_CHILD_SA and
        the IKE_FOLLOWUP_KE: its state for the rekey is gone, the round is
        answered STATE_NOT_FOUND (RFC 9370 2.2.3), no new IKE SA is made on
        either side and nothing is left behind.
        """
        a, b, ikeSA = self.establishAddke(IKE_ADDKE, ike=3000, child=300)
        self.rekeyIKE(a)
        self.network.deliverOne()  # CREATE_CHILD_SA request
        self.network.deliverOne()  # its response: A sends IKE_FOLLOWUP_KE
        b.command(b.core.deleteIKESA, b.ikeSAs[0])
        start = len(self.network.delivered)
        self.network.deliverOne()  # IKE_FOLLOWUP_KE request
        self.network.deliverOne()  # B's Delete
        self.network.pump()
        (data, _, _) = self.network.delivered[start + 2]
        response = Message.decode(data)
        self.assertEqual((response.exchangeType, response.isResponse), (FOLLOWUP, True))
        self.assertEqual([p.notifyType for p in response.decrypt(ikeSA.cipherIn) if isinstance(p, Notify)],
                         [NotifyType.STATE_NOT_FOUND])
        self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))
        self.assertEqual((a.eventsOf(IKESARekeyed), b.eventsOf(IKESARekeyed)), ([], []))
        self.assertEqual((a.kernel.sas, b.kernel.sas), ({}, {}))
        self.assertTimersOnlyFor(a)
        self.assertTimersOnlyFor(b)

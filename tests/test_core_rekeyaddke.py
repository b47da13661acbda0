"""
RFC 9370 additional key exchanges in rekeys: a Child SA rekeyed (2.2.3,
2.2.4) and an IKE SA rekeyed (2.2.2, 2.2.4) with CREATE_CHILD_SA followed by
IKE_FOLLOWUP_KE exchanges, in both roles; two in-memory cores on a fake
clock, the key schedule recomputed here with hmac.
"""

import hashlib
import hmac

from ikedtx.core import cryptoglue
from ikedtx.core.actions import InstallChildSA, RemoveChildSA
from ikedtx.core.states import ChildState, IKEState
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType, TransformType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import KeyExchange, Notify

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

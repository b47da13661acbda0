"""
ikedtx to ikedtx over real sockets, each daemon in a network namespace:
rekeys with RFC 9370 additional key exchanges (ML-KEM-768 as ADDKE1), the
IKE SA's (CREATE_CHILD_SA then IKE_FOLLOWUP_KE, 2.2.2) and a PFS Child SA's
(2.2.3), started by either daemon's own lifetime timers; tshark, an
independent decoder, reads the capture with the key log of host a.

With the old IKE SA's keys tshark must verify the CREATE_CHILD_SA and
IKE_FOLLOWUP_KE messages of the IKE SA rekey and find the ML-KEM-768 KE
payloads (group 36) in the IKE_FOLLOWUP_KE ones; with the new IKE SA's keys
(derived from SK(0) | Ni | Nr | SK(1), logged by the daemon) it must verify
a later exchange on the new IKE SA: both daemons computed the same
SKEYSEED, and tshark agrees with the key log.
"""

import time

from twisted.trial.unittest import TestCase

from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials, InteropMixin, ikedtxPolicy
from tests import test_interop_intermediate as _intermediate

FOLLOWUP = _intermediate.FOLLOWUP

IKE = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768"
CHILD = "childsa enc aes-256-gcm"
PFS = "childsa enc aes-256-gcm group curve25519 addke1 mlkem768"
CREATE, INFORMATIONAL = "36", "37"


def responderPolicy(ike, child, lifetimes=""):
    return ('ikev2 "peer" passive esp from %s to %s local %s peer %s %s %s srcid %s dstid %s %s psk "%s"\n' % (
        B_INNER, A_INNER, B, A, ike, child, B, A, lifetimes, PSK))


class RekeyAddkeTests(InteropMixin, TestCase):
    messages = _intermediate.IntermediateTests.messages
    icvByMessage = _intermediate.IntermediateTests.icvByMessage

    def start(self, child=CHILD, ours="", theirs=""):
        self.hosts()
        credentials = Credentials("psk")
        peer = self.ikedtx(self.b, responderPolicy(IKE, child, theirs),
                           extraArgs=["--kernel", "decoupled", "--listen", B])
        peer.start()
        mine = self.startIkedtx(ikedtxPolicy(credentials, ike=IKE, child=child, lifetimes=ours))
        mine.start()
        capture = self.capture(self.a, "to-b")
        spiI, _ = mine.initiate("peer")
        return mine, peer, capture, spiI

    def waitForNewIkeSa(self, ours, oldSpiI, timeout=40.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sas = [sa for sa in ours.showSa() if sa["state"] == "VALID"]
            if len(sas) == 1 and sas[0]["spiI"] != oldSpiI and sas[0]["children"]:
                return sas[0]
            time.sleep(0.2)
        self.fail("no rekeyed IKE SA on ikedtx after %d s:\n%s" % (timeout, ours.report()))

    def assertIkeRekeyed(self, ours, theirs, capture, spiI):
        new = self.waitForNewIkeSa(ours, spiI)
        theirSa = theirs.waitForIkeSa(child=True)
        self.labAssertEqual((new["spiI"], new["spiR"]), (theirSa["spiI"], theirSa["spiR"]))
        self.assertIn("ADDKE1=ML_KEM_768", new["proposal"])
        # An exchange on the new IKE SA, for the capture.
        ours.createChildSA(new["spiI"])
        capture.stop()
        # The key log: the IKE_SA_INIT keys, the keys after the
        # IKE_INTERMEDIATE's ML-KEM, then the rekeyed IKE SA's.
        keyRows = ours.ikeKeys()
        spis = [(row.spii, row.spir) for row in keyRows]
        index = spis.index((new["spiI"].lower(), new["spiR"].lower()))
        self.labAssertEqual(index, 2, "key log: %r" % (keyRows,))
        old, newKeys = keyRows[1:3]
        verdicts = self.icvByMessage(capture, old)
        correct = [(kind, mid) for kind, mid, v in verdicts if v == "correct"]
        # The rekey on the old IKE SA: CREATE_CHILD_SA, IKE_FOLLOWUP_KE with
        # the next Message ID, then the Delete of the old IKE SA.
        rekey = [(kind, mid) for kind, mid in correct if kind in (CREATE, FOLLOWUP)]
        self.assertEqual([kind for kind, _ in rekey], [CREATE, CREATE, FOLLOWUP, FOLLOWUP], verdicts)
        self.assertEqual(rekey[2][1], rekey[0][1] + 1, verdicts)
        decrypted = self.messages(capture, ikeKeys=[old])
        followup = [r for r in decrypted if r["isakmp.exchangetype"] == FOLLOWUP]
        self.assertEqual([r["isakmp.key_exchange.dh_group"] for r in followup], ["36", "36"])
        self.assertIn("16441", followup[0]["isakmp.notify.msgtype"].split(","))
        # The new IKE SA's keys (SKEYSEED from all shared secrets) verify
        # the Child SA exchange made on it, Message IDs from zero.
        verdicts = self.icvByMessage(capture, newKeys)
        self.assertIn((CREATE, 0), [(kind, mid) for kind, mid, v in verdicts if v == "correct"], verdicts)
        return new

    def test_ikedtxInitiatorRekeysIkeSA(self):
        """
        The IKE SA's initiator rekeys it at C{ikelifetime 15}: one
        CREATE_CHILD_SA, one IKE_FOLLOWUP_KE with ML-KEM-768, the new IKE SA
        keeps the Child SA and works.
        """
        ours, theirs, capture, spiI = self.start(ours="ikelifetime 15")
        self.assertIkeRekeyed(ours, theirs, capture, spiI)
        self.assertIn("rekeying the IKE SA", ours.log())
        # (By now the IKE SA may have been rekeyed again: its Child SAs move.)
        self.labAssertEqual(len(self.ourOnlySa(ours)["children"]), 2)

    def test_ikedtxResponderRekeysIkeSA(self):
        """
        The IKE SA's responder (host b, C{ikelifetime 15}) rekeys it and is
        the new IKE SA's initiator.
        """
        ours, theirs, capture, spiI = self.start(theirs="ikelifetime 15")
        self.assertIkeRekeyed(ours, theirs, capture, spiI)
        self.assertIn("rekeying the IKE SA", theirs.log())

    def test_pfsChildRekey(self):
        """
        A Child SA with C{group curve25519 addke1 mlkem768} rekeyed at
        C{lifetime 10}: CREATE_CHILD_SA with REKEY_SA then IKE_FOLLOWUP_KE,
        verified by tshark with the IKE SA's keys; both daemons end with one
        Child SA whose SPIs match.
        """
        ours, theirs, capture, spiI = self.start(child=PFS, ours="lifetime 10")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and "reached its soft lifetime; rekeying it" not in ours.log():
            time.sleep(0.2)
        time.sleep(2)
        capture.stop()
        mine = self.ourOnlySa(ours)
        theirSa = theirs.waitForIkeSa(child=True)
        self.labAssertEqual(len(mine["children"]), 1)
        self.labAssertEqual([c["spiOut"] for c in mine["children"]], [c["spiIn"] for c in theirSa["children"]])
        keys = ours.ikeKeys()[-1]
        verdicts = self.icvByMessage(capture, keys)
        correct = [(kind, mid) for kind, mid, v in verdicts if v == "correct"]
        self.assertEqual([k for k, _ in correct if k in (CREATE, FOLLOWUP)][:4], [CREATE, CREATE, FOLLOWUP, FOLLOWUP],
                         verdicts)
        decrypted = self.messages(capture, ikeKeys=[keys])
        followup = [r for r in decrypted if r["isakmp.exchangetype"] == FOLLOWUP]
        self.assertEqual([r["isakmp.key_exchange.dh_group"] for r in followup][:2], ["36", "36"])

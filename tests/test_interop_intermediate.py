"""
ikedtx to ikedtx over real sockets, each daemon in a network namespace,
with RFC 9370 additional key exchanges (ML-KEM) in IKE_INTERMEDIATE
exchanges (RFC 9242); tshark, an independent decoder, reads the capture.

The initiator's test-only key log (C{--keylog}) has one line per key
set: the IKE_SA_INIT keys, then the keys after each additional key
exchange (RFC 9370 2.2.2). With the keys of stage n tshark must find the
ICV of exactly the messages of stage n correct: the IKE_INTERMEDIATE
exchange of the (n+1)-th additional key exchange, or IKE_AUTH for the
last stage. It decrypts the IKE_INTERMEDIATE messages and shows their KE
payloads (ML-KEM-768 and ML-KEM-1024 by their IANA numbers).

strongSwan 6, the first peer to speak these, is not packaged for Debian
12, so there is no charon test here.
"""

from twisted.trial.unittest import TestCase

from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials, InteropMixin, ikedtxPolicy

ONE = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768"
TWO = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768 addke2 mlkem1024"
CHILD = "childsa enc aes-256-gcm"
PFS = "childsa enc aes-256-gcm group curve25519 addke1 mlkem768"

SA_INIT, AUTH, CREATE, INTERMEDIATE, FOLLOWUP = "34", "35", "36", "43", "44"


def responderPolicy(ike, child=CHILD, settings=""):
    return ('%s\nikev2 "peer" passive esp from %s to %s local %s peer %s %s %s srcid %s dstid %s psk "%s"\n' % (
        settings, B_INNER, A_INNER, B, A, ike, child, B, A, PSK))


class IntermediateTests(InteropMixin, TestCase):
    def start(self, ike, settings="", child=CHILD, then=None):
        self.hosts()
        credentials = Credentials("psk")
        theirs = self.ikedtx(self.b, responderPolicy(ike, child, settings=settings),
                             extraArgs=["--kernel", "decoupled", "--listen", B])
        theirs.start()
        ours = self.startIkedtx(settings + "\n" + ikedtxPolicy(credentials, ike=ike, child=child))
        ours.start()
        capture = self.capture(self.a, "to-b")
        spiI, _ = ours.initiate("peer")
        if then is not None:
            then(ours, spiI)
        capture.stop()
        mine = self.ourOnlySa(ours)
        theirSa = theirs.waitForIkeSa(child=True)
        self.labAssertEqual((mine["spiI"], mine["spiR"]), (theirSa["spiI"], theirSa["spiR"]))
        return ours, theirs, capture

    def messages(self, capture, **kwargs):
        return capture.fields(["frame.len", "isakmp.exchangetype", "isakmp.messageid", "isakmp.flags",
                               "isakmp.key_exchange.dh_group", "isakmp.payloadlength", "isakmp.notify.msgtype",
                               "isakmp.tf.type", "isakmp.tf.id.dh", "isakmp.frag.number"],
                              displayFilter="isakmp", **kwargs)

    def icvByMessage(self, capture, keys):
        """
        C{[(exchange type, message id, ICV verdict)]} for every protected
        message of the capture, decrypted with the key set C{keys}.
        """
        rows = capture.fields(["isakmp.exchangetype", "isakmp.messageid"], displayFilter="isakmp.enc.icd",
                              ikeKeys=[keys])
        verdicts = capture.icvResults([keys])
        self.labAssertEqual(len(rows), len(verdicts), capture.summary())
        return [(r["isakmp.exchangetype"], int(r["isakmp.messageid"], 16), v) for r, v in zip(rows, verdicts)]

    def assertStages(self, capture, keyRows, stages):
        """
        With each key set, exactly the messages of its stage verify.
        """
        self.labAssertEqual(len(keyRows), len(stages), "key log lines: %r" % (keyRows,))
        for keys, expected in zip(keyRows, stages):
            verdicts = self.icvByMessage(capture, keys)
            correct = sorted({(kind, mid) for kind, mid, v in verdicts if v == "correct"})
            self.assertEqual(correct, sorted(expected), verdicts)
            self.assertTrue(all(v in ("correct", "incorrect") for _, _, v in verdicts), verdicts)

    def test_oneAdditionalKeyExchange(self):
        """
        X25519 in IKE_SA_INIT (both sides announce
        INTERMEDIATE_EXCHANGE_SUPPORTED, 16438, and the proposal carries
        transform type 6 id 36), then one IKE_INTERMEDIATE with
        ML-KEM-768: a 1184-byte encapsulation key and a 1088-byte
        ciphertext, then IKE_AUTH under the updated keys.
        """
        ours, theirs, capture = self.start(ONE)
        self.assertIn("ADDKE1=ML_KEM_768", self.ourOnlySa(ours)["proposal"])
        rows = self.messages(capture)
        self.assertEqual([(r["isakmp.exchangetype"], int(r["isakmp.messageid"], 16)) for r in rows][:6], [
            (SA_INIT, 0), (SA_INIT, 0), (INTERMEDIATE, 1), (INTERMEDIATE, 1), (AUTH, 2), (AUTH, 2)])
        for row in rows[:2]:
            self.assertIn("16438", row["isakmp.notify.msgtype"].split(","), row)
            self.assertIn("6", row["isakmp.tf.type"].split(","), row)
        keyRows = ours.ikeKeys()
        self.assertStages(capture, keyRows, [[(INTERMEDIATE, 1)], [(AUTH, 2)]])
        decrypted = self.messages(capture, ikeKeys=[keyRows[0]])
        intermediate = [r for r in decrypted if r["isakmp.exchangetype"] == INTERMEDIATE]
        self.assertEqual([r["isakmp.key_exchange.dh_group"] for r in intermediate], ["36", "36"])
        self.assertIn(str(8 + 1184), intermediate[0]["isakmp.payloadlength"].split(","))
        self.assertIn(str(8 + 1088), intermediate[1]["isakmp.payloadlength"].split(","))

    def test_twoAdditionalKeyExchangesFragmented(self):
        """
        ML-KEM-768 then ML-KEM-1024, with C{set fragmentation}: the
        IKE_INTERMEDIATE messages travel as SKF fragments (RFC 7383; none
        above the link's MTU), each fragment verifies with the keys of its
        exchange, and the three key sets follow each other.
        """
        ours, theirs, capture = self.start(TWO, settings="set fragmentation")
        self.assertIn("ADDKE1=ML_KEM_768 ADDKE2=ML_KEM_1024", theirs.showSa()[0]["proposal"])
        rows = self.messages(capture)
        kinds = [(r["isakmp.exchangetype"], int(r["isakmp.messageid"], 16)) for r in rows]
        self.assertEqual(sorted(set(kinds)), sorted({(SA_INIT, 0), (INTERMEDIATE, 1), (INTERMEDIATE, 2), (AUTH, 3)}))
        fragmented = [r for r in rows if r["isakmp.exchangetype"] == INTERMEDIATE and r["isakmp.frag.number"]]
        self.assertTrue(fragmented, capture.summary())
        self.assertTrue(all(int(r["frame.len"]) <= 1514 for r in rows), rows)
        keyRows = ours.ikeKeys()
        self.assertStages(capture, keyRows, [[(INTERMEDIATE, 1)], [(INTERMEDIATE, 2)], [(AUTH, 3)]])

    def test_followupChildSA(self):
        """
        RFC 9370 2.2.3 over sockets: a second Child SA with C{childsa ...
        group curve25519 addke1 mlkem768} is one CREATE_CHILD_SA and one
        IKE_FOLLOWUP_KE (exchange 44) exchange; tshark verifies all four
        messages with the IKE SA's final keys and finds the ML-KEM-768 KE
        payloads in the IKE_FOLLOWUP_KE ones; both daemons hold two Child
        SAs with matching SPIs.
        """
        made = []
        ours, theirs, capture = self.start(ONE, child=PFS, then=lambda ours, spiI: made.append(
            ours.createChildSA(spiI)))
        self.assertEqual(len(made), 1)
        mine = self.ourOnlySa(ours)
        theirSa = theirs.waitForIkeSa(child=True)
        self.labAssertEqual(len(mine["children"]), 2)
        self.labAssertEqual(sorted(c["spiOut"] for c in mine["children"]),
                            sorted(c["spiIn"] for c in theirSa["children"]))
        final = ours.ikeKeys()[-1]
        verdicts = self.icvByMessage(capture, final)
        correct = [(kind, mid) for kind, mid, v in verdicts if v == "correct"]
        self.assertEqual(correct[-4:], [(CREATE, 3), (CREATE, 3), (FOLLOWUP, 4), (FOLLOWUP, 4)], verdicts)
        decrypted = self.messages(capture, ikeKeys=[final])
        followup = [r for r in decrypted if r["isakmp.exchangetype"] == FOLLOWUP]
        self.assertEqual([r["isakmp.key_exchange.dh_group"] for r in followup], ["36", "36"])
        self.assertTrue(all("16441" in r["isakmp.notify.msgtype"].split(",") for r in followup[:1]), followup)

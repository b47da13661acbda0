"""
ikedtx against strongSwan's charon 5.9.8, each in a network namespace, as
initiator and as responder: PSK, ECDSA and RSA certificates under one CA,
raw public keys, several IKE proposals, an INVALID_KE_PAYLOAD retry,
CREATE_CHILD_SA with PFS, Deletes from either side, NAT traversal, and the
failures (wrong PSK, wrong ID, untrusted certificate). Each test checks both
sides' view: charon's over vici, ikedtx's over its control socket.

charon runs with kernel-libipsec (ESP in user space), so it keeps its Child
SAs, and it always encapsulates ESP in UDP (it fakes a NAT: RFC 7296 2.23).
"""

from twisted.trial.unittest import TestCase

from ikedtx.control.sync import ControlError

from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials, InteropMixin, ikedtxPolicy
from ikedtx.testing.lab import Auth, Child, Connection, LabError, Secret, poll

CHARON_IKE = {
    "gcm-x25519": ("aes128gcm16-prfsha256-x25519", "ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519",
                   "AES_GCM_16", "CURVE_25519"),
    "cbc-modp2048": ("aes256-sha256-modp2048",
                     "ikesa enc aes-256 auth hmac-sha2-256 prf hmac-sha2-256 group modp2048", "AES_CBC", "MODP_2048"),
    "chacha-ecp384": ("chacha20poly1305-prfsha384-ecp384",
                      "ikesa enc chacha20-poly1305 prf hmac-sha2-384 group ecp384", "CHACHA20_POLY1305", "ECP_384"),
}
CHARON_ESP = "aes128gcm16"
IKEDTX_CHILD = "childsa enc aes-128-gcm"


class CharonMixin(InteropMixin):
    def startCharon(self, credentials, ike="aes128gcm16-prfsha256-x25519", esp=CHARON_ESP, psk=PSK, remoteId=None,
                    children=None, **options):
        charon = self.charon(self.b, libipsec=True)
        remoteId = remoteId or credentials.idA
        if credentials.kind == "psk":
            local, remote = Auth("psk", id=credentials.idB), Auth("psk", id=remoteId)
            charon.addSecret(Secret(psk, ids=[credentials.idA, credentials.idB]))
        elif credentials.kind == "raw":
            local = Auth("pubkey", id=credentials.idB, pubkeys=[credentials.keyB])
            remote = Auth("pubkey", id=remoteId, pubkeys=[credentials.keyA])
            charon.addPrivateKey(credentials.keyB)
        else:
            charon.addCA(credentials.ca.cert)
            local = Auth("pubkey", id=credentials.idB, certs=[credentials.certB])
            remote = Auth("pubkey", id=remoteId, cacerts=[credentials.ca.cert])
        children = children or [Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                                      esp_proposals=[esp])]
        charon.addConnection(Connection("peer", local_addrs=[B], remote_addrs=[A], proposals=[ike], local=local,
                                        remote=remote, children=children, **options))
        charon.start()
        return charon

    def charonOnlySa(self, charon, child=True):
        sas = [sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"]
        self.labAssertEqual(len(sas), 1, "charon should hold exactly one IKE SA: %r" % (sas,))
        if child:
            self.labAssert(sas[0]["child-sas"], "charon has no Child SA: %r" % (sas[0],))
        return sas[0]

    def assertSameSAs(self, ours, charon):
        """
        Both sides hold the same IKE SA and mirror-image Child SAs.
        """
        mine = self.ourOnlySa(ours)
        theirs = self.charonOnlySa(charon)
        self.labAssertEqual((mine["spiI"], mine["spiR"]), (theirs["initiator-spi"], theirs["responder-spi"]))
        self.labAssertEqual(sorted((c["spiIn"], c["spiOut"]) for c in mine["children"]),
                            sorted((c["spi-out"], c["spi-in"]) for c in theirs["child-sas"]))
        return mine, theirs


class CharonAuthTests(CharonMixin, TestCase):
    """
    Each authentication kind, with ikedtx initiating and responding.
    """

    def _initiator(self, kind):
        self.hosts()
        credentials = Credentials(kind)
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        credentials.installIkedtx(ours)
        ours.start()
        spis = ours.initiate("peer")
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(spis, (mine["spiI"], mine["spiR"]))
        self.assertEqual(theirs["remote-id"], credentials.idA)
        self.assertEqual(mine["peerId"].split("/", 1)[1], credentials.idB)
        self.assertEqual(mine["initiator"], 1)
        return ours, charon

    def _responder(self, kind):
        self.hosts()
        credentials = Credentials(kind)
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        credentials.installIkedtx(ours)
        ours.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(mine["initiator"], 0)
        self.assertEqual(theirs["initiator"], "yes")
        return ours, charon, output

    def test_pskInitiator(self):
        self._initiator("psk")

    def test_pskResponder(self):
        self._responder("psk")

    def test_ecdsaInitiator(self):
        ours, charon = self._initiator("ecdsa")
        self.labAssert("authentication of 'moon.example' with ECDSA" in charon.log(),
                       "charon did not verify our ECDSA signature")

    def test_ecdsaResponder(self):
        ours, charon, output = self._responder("ecdsa")
        self.labAssert("authentication of 'sun.example'" in output, output)

    def test_rsaInitiator(self):
        ours, charon = self._initiator("rsa")
        self.labAssert("authentication of 'moon.example' with RSA" in charon.log(),
                       "charon did not verify our RSA signature")

    def test_rsaResponder(self):
        self._responder("rsa")

    def test_rawKeysInitiator(self):
        self._initiator("raw")

    def test_rawKeysResponder(self):
        self._responder("raw")


class CharonProposalTests(CharonMixin, TestCase):
    def _proposal(self, name):
        self.hosts()
        credentials = Credentials("psk")
        charonIke, oursIke, encr, group = CHARON_IKE[name]
        charon = self.startCharon(credentials, ike=charonIke)
        ours = self.startIkedtx(ikedtxPolicy(credentials, ike=oursIke, child=IKEDTX_CHILD))
        ours.start()
        ours.initiate("peer")
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual((theirs["encr-alg"], theirs["dh-group"]), (encr, group))

    def test_gcmX25519(self):
        """
        AES-GCM-16 with X25519 (RFC 5282, RFC 8031).
        """
        self._proposal("gcm-x25519")

    def test_cbcModp2048(self):
        """
        AES-CBC-256 with HMAC-SHA2-256 and MODP-2048.
        """
        self._proposal("cbc-modp2048")

    def test_chachaEcp384(self):
        """
        ChaCha20-Poly1305 for IKE (RFC 7634) with ECP-384.
        """
        self._proposal("chacha-ecp384")

    def test_invalidKeFromCharon(self):
        """
        ikedtx offers X25519 first; charon only takes ECP-256, answers
        INVALID_KE_PAYLOAD, and ikedtx retries with ECP-256.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, ike="aes128gcm16-prfsha256-ecp256")
        ours = self.startIkedtx(ikedtxPolicy(
            credentials, ike="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 group ecp256", child=IKEDTX_CHILD))
        ours.start()
        ours.initiate("peer")
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(theirs["dh-group"], "ECP_256")
        self.labAssert("DH group CURVE_25519 unacceptable, requesting ECP_256" in charon.log(),
                       "charon did not send INVALID_KE_PAYLOAD")

    def test_invalidKeToCharon(self):
        """
        charon sends X25519 first; ikedtx only takes ECP-256 and asks for it.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, ike="aes128gcm16-prfsha256-x25519-ecp256")
        ours = self.startIkedtx(ikedtxPolicy(
            credentials, ike="ikesa enc aes-128-gcm prf hmac-sha2-256 group ecp256", child=IKEDTX_CHILD))
        ours.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, output)
        self.labAssert("peer didn't accept DH group CURVE_25519, it requested ECP_256" in output, output)
        self.assertEqual(self.assertSameSAs(ours, charon)[1]["dh-group"], "ECP_256")


class CharonLifecycleTests(CharonMixin, TestCase):
    PFS_CHARON = "aes128gcm16-ecp256"
    PFS_OURS = "childsa enc aes-128-gcm group ecp256"

    def _established(self, esp=PFS_CHARON, child=PFS_OURS, children=None):
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, esp=esp, children=children)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=child))
        ours.start()
        spiI, spiR = ours.initiate("peer")
        return ours, charon, spiI

    def test_createChildWithPfs(self):
        """
        RFC 7296 1.3.1: ikedtx adds a second Child SA with a new ECP-256
        exchange (PFS); charon holds both.
        """
        ours, charon, spiI = self._established()
        spiIn, spiOut = ours.createChildSA(spiI)
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(len(mine["children"]), 2)
        self.assertIn((spiOut, spiIn), [(c["spi-in"], c["spi-out"]) for c in theirs["child-sas"]])
        self.labAssert("CREATE_CHILD_SA request 2 [ N(ESP_TFC_PAD_N) SA No KE TSi TSr ]" in charon.log()
                       or "SA No KE TSi TSr" in charon.log(), "charon did not see a KE payload")

    def test_charonCreatesChildWithPfs(self):
        """
        charon adds a second Child SA with PFS; ikedtx answers with its KE.
        """
        # charon refuses a second Child SA with the same selectors as a
        # duplicate: the second one is narrowed to UDP.
        children = [Child(name, local_ts=[B_INNER + "/32" + proto], remote_ts=[A_INNER + "/32" + proto],
                          esp_proposals=[self.PFS_CHARON]) for name, proto in (("net", ""), ("net2", "[udp]"))]
        ours, charon, spiI = self._established(children=children)
        ok, output = charon.initiate(child="net2")
        self.labAssert(ok, output)
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(len(theirs["child-sas"]), 2)
        self.labAssert("SA No KE TSi TSr" in output, output)

    def test_deleteChildFromIkedtx(self):
        ours, charon, spiI = self._established()
        (child,) = self.ourOnlySa(ours)["children"]
        ours.deleteChildSA(child["spiIn"])
        self.assertEqual(self.ourOnlySa(ours, child=False)["children"], [])
        self.assertEqual(self.charonOnlySa(charon, child=False)["child-sas"], [])

    def test_deleteChildFromCharon(self):
        ours, charon, spiI = self._established()
        charon.terminate(child="net")
        self.assertEqual(self.charonOnlySa(charon, child=False)["child-sas"], [])
        self.assertEqual(self.ourOnlySa(ours, child=False)["children"], [])

    def test_deleteIkeSAFromIkedtx(self):
        ours, charon, spiI = self._established()
        ours.deleteIkeSA(spiI)
        self.assertEqual(ours.showSa(), [])
        self.assertEqual([sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"], [])

    def test_deleteIkeSAFromCharon(self):
        ours, charon, spiI = self._established()
        charon.terminate(ike="peer")
        # charon's terminate returns once its Delete was answered, so ikedtx
        # has processed it.
        self.assertEqual(ours.showSa(), [])
        self.assertEqual(charon.listSas(), [])


class CharonNatTests(CharonMixin, TestCase):
    def test_throughNat(self):
        """
        RFC 7296 2.23 / RFC 3948: ikedtx behind a real NAT (nft masquerade)
        initiates to charon; both detect it, move to 4500, and charon's
        ESP is UDP-encapsulated.
        """
        self.a, nat, self.b = self.network().natted(ports="20000-20099")
        charon = self.charon(self.b, libipsec=True)
        charon.addSecret(Secret(PSK, ids=[A, "198.51.100.2"]))
        charon.addConnection(Connection(
            "peer", local_addrs=["198.51.100.2"], remote_addrs=["%any"], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("psk", id="198.51.100.2"), remote=Auth("psk", id=A),
            children=[Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"], esp_proposals=[CHARON_ESP])]))
        charon.start()
        config = ('ikev2 "peer" passive esp from %s to %s local %s peer 198.51.100.2 %s srcid %s dstid 198.51.100.2 '
                  'psk "%s"\n' % (A_INNER, B_INNER, A, IKEDTX_CHILD, A, PSK))
        ours = self.ikedtx(self.a, config, extraArgs=["--kernel", "decoupled", "--listen", A])
        ours.start()
        ours.initiate("peer")
        mine = self.ourOnlySa(ours)
        theirs = self.charonOnlySa(charon)
        self.assertEqual(mine["natt"], 1)
        self.assertEqual(mine["remote"], "198.51.100.2:4500")
        self.assertEqual(theirs["nat-remote"], "yes")
        self.assertTrue(theirs["remote-port"] not in ("500", "4500"), theirs)
        self.assertEqual(theirs["child-sas"][0]["encap"], "yes")
        self.assertEqual((mine["spiI"], mine["spiR"]), (theirs["initiator-spi"], theirs["responder-spi"]))


class CharonFailureTests(CharonMixin, TestCase):
    def assertNoSAs(self, ours, charon):
        """
        Neither side keeps an IKE SA.  charon may have established its side
        before ikedtx refused it: the INFORMATIONAL that tells it so
        (AUTHENTICATION_FAILED, RFC 7296 2.21.2) can still be on its way when
        initiate returns, so charon is given a few seconds to act on it.
        """
        def charonEstablished():
            return [sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"]

        self.labAssertEqual(ours.showSa(), [], "ikedtx kept an IKE SA")
        try:
            poll(lambda: not charonEstablished(), 5.0, interval=0.1)
        except LabError:
            pass
        self.labAssertEqual(charonEstablished(), [], "charon kept an IKE SA")

    def test_wrongPskInitiator(self):
        """
        A wrong PSK: charon answers AUTHENTICATION_FAILED; initiate fails
        and neither side keeps an SA.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD, psk="not-the-psk"))
        ours.start()
        error = self.assertRaises(ControlError, ours.initiate, "peer")
        self.assertIn("refused our authentication", str(error))
        self.assertNoSAs(ours, charon)

    def test_wrongPskResponder(self):
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD, psk="not-the-psk"))
        ours.start()
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        self.labAssert("AUTHENTICATION_FAILED" in output, output)
        self.assertNoSAs(ours, charon)
        self.labAssert("pre-shared key AUTH does not verify" in ours.log(), "ikedtx did not log why")

    def test_wrongIdentity(self):
        """
        charon authenticates as an ID our policy does not accept (its dstid
        is another): ikedtx finds no policy for it and answers
        AUTHENTICATION_FAILED.
        """
        self.hosts()
        credentials = Credentials("ecdsa")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD, dstid="pluto.example"))
        credentials.installIkedtx(ours)
        ours.start()
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        self.labAssert("AUTHENTICATION_FAILED" in output, output)
        self.labAssert("no policy for peer FQDN/sun.example" in ours.log(), "ikedtx did not log why")
        self.assertNoSAs(ours, charon)

    def test_untrustedCertificate(self):
        """
        charon's certificate comes from a CA ikedtx does not trust.
        """
        self.hosts()
        credentials = Credentials("ecdsa", untrustedB=True)
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        credentials.installIkedtx(ours)
        ours.start()
        self.assertRaises(ControlError, ours.initiate, "peer")
        self.assertNoSAs(ours, charon)

    def test_ourCertificateUntrusted(self):
        """
        Our certificate comes from a CA charon does not trust: charon
        refuses it when it initiates to us.
        """
        self.hosts()
        credentials = Credentials("ecdsa", untrustedA=True)
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        credentials.installIkedtx(ours)
        ours.start()
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        self.assertNoSAs(ours, charon)


class CharonTsharkTests(CharonMixin, TestCase):
    """
    tshark decrypts the IKE_AUTH messages ikedtx sends with the keys from
    ikedtx's test-only key log (C{--keylog}) and finds every ICV correct:
    an independent check of our SK payload protection on the wire.
    """

    def _decrypt(self, ike):
        self.hosts()
        credentials = Credentials("psk")
        charonIke, oursIke, encr, group = CHARON_IKE[ike]
        self.startCharon(credentials, ike=charonIke)
        ours = self.startIkedtx(ikedtxPolicy(credentials, ike=oursIke, child=IKEDTX_CHILD))
        ours.start()
        capture = self.capture(self.a, "to-b")
        ours.initiate("peer")
        capture.stop()
        keys = ours.ikeKeys()
        self.assertEqual(len(keys), 1)
        results = capture.icvResults(keys)
        self.labAssertEqual(len(results), 2, "tshark's encrypted IKE_AUTH messages")
        self.labAssertEqual(set(results), {"correct"}, "tshark's ICV verdicts")
        rows = capture.fields(["isakmp.exchangetype"], displayFilter="isakmp", ikeKeys=keys)
        self.assertEqual([row["isakmp.exchangetype"] for row in rows], ["34", "34", "35", "35"])

    def test_cbc(self):
        """
        AES-CBC-256 with HMAC-SHA2-256-128.
        """
        self._decrypt("cbc-modp2048")

    def test_gcm(self):
        """
        AES-GCM-16 (the salt rides at the end of SK_e).
        """
        self._decrypt("gcm-x25519")

"""
RFC 7427 and RFC 8247 3.2: with an RSA key, ikedtx signs its AUTH with
RSASSA-PSS when the peer announced SIGNATURE_HASH_ALGORITHMS, so that a
charon 5.9.8 that requires PSS for IKE (C{auth = pubkey-ike:rsa/pss-sha256}) accepts
it, as initiator and as responder.
"""

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Auth, Child, Connection, KeyPair

from tests.interop import A, A_INNER, B, B_INNER, Credentials, ikedtxPolicy
from tests.test_interop_charon import CHARON_ESP, IKEDTX_CHILD, CharonMixin
from tests.test_interop_openiked import CHILDSA, IKESA, OpenIkedMixin, ikedPolicy


class CharonRequiresPSSTests(CharonMixin, TestCase):
    def start(self):
        self.hosts()
        credentials = Credentials("rsa")
        charon = self.charon(self.b, libipsec=True)
        charon.addCA(credentials.ca.cert)
        local = Auth("pubkey", id=credentials.idB, certs=[credentials.certB])
        remote = Auth("pubkey-ike:rsa/pss-sha256", id=credentials.idA, cacerts=[credentials.ca.cert])
        children = [Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"], esp_proposals=[CHARON_ESP])]
        charon.addConnection(Connection("peer", local_addrs=[B], remote_addrs=[A],
                                        proposals=["aes128gcm16-prfsha256-x25519"], local=local, remote=remote,
                                        children=children))
        charon.start()
        # No ikeauth keyword: iked's default, any signature method.
        policy = ikedtxPolicy(credentials, child=IKEDTX_CHILD).replace(" rsa\n", "\n")
        ours = self.startIkedtx(policy)
        credentials.installIkedtx(ours)
        ours.start()
        return ours, charon

    def test_initiator(self):
        ours, charon = self.start()
        ours.initiate("peer")
        self.assertSameSAs(ours, charon)
        self.labAssert("authentication of 'moon.example' with RSA_EMSA_PSS" in charon.log(),
                       "charon did not verify a PSS signature:\n" + charon.log()[-3000:])

    def test_responder(self):
        ours, charon = self.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        self.assertSameSAs(ours, charon)



class OpenIkedVerifiesPSSTests(OpenIkedMixin, TestCase):
    """
    openiked 7.2 with C{ikeauth rfc7427} verifies our RSASSA-PSS AUTH.
    """

    def test_initiator(self):
        self.hosts()
        credentials = Credentials("rsa")
        iked = self.openiked(self.b, ikedPolicy(credentials, ike=IKESA["gcm-x25519"]).replace(" rsa\n", " rfc7427\n"),
                             localKey=KeyPair.generate("ecdsa-p256"))
        iked.addCA(credentials.ca.cert)
        iked.addCertificate(credentials.certB)
        iked.start()
        policy = ikedtxPolicy(credentials, ike=IKESA["gcm-x25519"], child=CHILDSA).replace(" rsa\n", "\n")
        ours = self.startIkedtx(policy, extraArgs=["-v"])
        credentials.installIkedtx(ours)
        ours.start()
        ours.initiate("peer")
        self.assertSameSAs(ours, iked)
        self.labAssert("RSASSA-PSS" in ours.log(), "ikedtx did not sign with RSASSA-PSS:\n" + ours.report())

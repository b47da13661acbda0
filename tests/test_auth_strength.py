"""
Tests for L{ikedtx.auth.strength}: key strength (RFC 8247 3.3) and the key
usages of a peer's certificate (RFC 4945 5.1.3.2, 5.1.3.12).
"""

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth import strength

from tests import pki
from tests.hostile import SmallPKI


class KeyStrengthTests(SynchronousTestCase):
    def test_rsa(self):
        self.assertIn("1024 bits", strength.keyStrengthProblem(pki.key("s", "rsa1024")))
        self.assertIn("1024 bits", strength.keyStrengthProblem(pki.key("s", "rsa1024").public_key()))
        self.assertIsNone(strength.keyStrengthProblem(pki.key("s", "rsa2048")))
        self.assertIsNone(strength.keyStrengthProblem(pki.key("s", "rsa1024"), minRsaBits=1024))

    def test_curves(self):
        """
        P-256, P-384, P-521 and Ed25519; not P-192, P-224, secp256k1 or
        brainpool.
        """
        for curve in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()):
            self.assertIsNone(strength.keyStrengthProblem(ec.generate_private_key(curve)))
        self.assertIsNone(strength.keyStrengthProblem(ed25519.Ed25519PrivateKey.generate()))
        for curve in (ec.SECP224R1(), ec.SECP256K1(), ec.BrainpoolP256R1()):
            self.assertIn(curve.name, strength.keyStrengthProblem(ec.generate_private_key(curve).public_key()))

    def test_dsa(self):
        self.assertIn("DSA", strength.keyStrengthProblem(dsa.generate_private_key(1024).public_key()))


class UsageTests(SynchronousTestCase):
    def setUp(self):
        self.pki = SmallPKI()
        self.key = pki.key("u", "p256")

    def problem(self, **extensions):
        return strength.usageProblem(self.pki.issue("u.example", self.key, **extensions))

    def test_noExtensions(self):
        self.assertIsNone(self.problem())

    def test_keyUsage(self):
        self.assertIsNone(self.problem(keyUsage={"digital_signature": True}))
        self.assertIsNone(self.problem(keyUsage={"content_commitment": True}))
        self.assertIn("neither", self.problem(keyUsage={"key_encipherment": True, "key_agreement": True}))

    def test_extendedKeyUsage(self):
        for oids in ([strength.IPSEC_IKE], [strength.ANY_EXTENDED_KEY_USAGE], [strength.IKE_INTERMEDIATE],
                     [ExtendedKeyUsageOID.SERVER_AUTH], [ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.CLIENT_AUTH]):
            self.assertIsNone(self.problem(extendedKeyUsage=oids))
        self.assertIn("does not allow IKE", self.problem(extendedKeyUsage=[ExtendedKeyUsageOID.TIME_STAMPING]))

    def test_certificateKey(self):
        self.assertIn("1024", strength.certificateKeyProblem(self.pki.issue("w.example", pki.key("w", "rsa1024"))))
        self.assertIsNone(strength.certificateKeyProblem(self.pki.issue("g.example", rsa.generate_private_key(65537, 2048))))

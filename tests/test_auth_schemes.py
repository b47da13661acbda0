"""
Tests for L{ikedtx.auth.schemes} through L{ikedtx.core.cryptoglue.signAuth}:
RFC 7427 signatures with an RSA key are RSASSA-PSS (RFC 8247 3.2), and
verify; the other methods are unchanged. (tests.test_interop_pss checks
the same against a charon that requires PSS.)
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core import cryptoglue
from ikedtx.crypto import signature
from ikedtx.wire.constants import AuthMethod, HashAlgorithm

from tests import pki

OCTETS = b"signed octets" * 10
PEER_HASHES = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384)


class SchemeTests(SynchronousTestCase):
    def scheme(self, data):
        return signature.parseAlgorithmIdentifier(data[1:1 + data[0]])

    def test_rsaDigitalSignatureIsPSS(self):
        """
        The peer announced hashes: DIGITAL_SIGNATURE with RSASSA-PSS,
        SHA2-256, which our verifier accepts.
        """
        key = pki.key("pss", "rsa2048")
        for policyMethod in ("signature", "rfc7427"):
            method, data = cryptoglue.signAuth(key, policyMethod, OCTETS, PEER_HASHES)
            self.assertEqual(method, AuthMethod.DIGITAL_SIGNATURE)
            scheme = self.scheme(data)
            self.assertEqual((scheme.keyType, scheme.hashAlgorithm), ("rsa", HashAlgorithm.SHA2_256))
            self.assertIsNotNone(scheme.pss)
            signature.verify(key.public_key(), method, data, OCTETS)

    def test_rsaWithoutHashes(self):
        """
        Without SIGNATURE_HASH_ALGORITHMS, the default method and iked's
        "rsa" stay RSA_SIG (PKCS#1 v1.5, SHA-1).
        """
        key = pki.key("pss", "rsa2048")
        self.assertEqual(cryptoglue.signAuth(key, "signature", OCTETS, ())[0], AuthMethod.RSA_SIG)
        self.assertEqual(cryptoglue.signAuth(key, "rsa", OCTETS, ())[0], AuthMethod.RSA_SIG)

    def test_rsaPolicyWithHashes(self):
        """
        iked's "rsa" to a peer that announced its hashes is RFC 7427's
        DIGITAL_SIGNATURE (as iked sends it), and so RSASSA-PSS.
        """
        key = pki.key("pss", "rsa2048")
        method, data = cryptoglue.signAuth(key, "rsa", OCTETS, PEER_HASHES)
        self.assertEqual(method, AuthMethod.DIGITAL_SIGNATURE)
        self.assertIsNotNone(self.scheme(data).pss)

    def test_ecdsaUnchanged(self):
        key = pki.key("pss", "p256")
        method, data = cryptoglue.signAuth(key, "signature", OCTETS, PEER_HASHES)
        self.assertEqual(method, AuthMethod.DIGITAL_SIGNATURE)
        self.assertEqual(self.scheme(data).keyType, "ecdsa")
        self.assertIsNone(self.scheme(data).pss)

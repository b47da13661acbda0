"""
Tests for L{ikedtx.auth.keys}: key loading and dumping, descriptions, key
and AUTH method fit, raw public key CERT payloads.
"""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, x25519
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth import keys
from ikedtx.auth.errors import InvalidKey
from ikedtx.wire.constants import AuthMethod, CertEncoding
from tests import pki

KINDS = ["rsa2048", "p256", "p384", "p521", "ed25519"]


class LoadTests(SynchronousTestCase):
    """
    Private and public keys load from the formats iked and OpenSSL write.
    """

    def test_privateFormats(self):
        """
        PKCS#8 PEM and DER load for every supported type; PKCS#1 (RSA) and
        SEC1 (EC) "traditional" PEM too.
        """
        for kind in KINDS:
            k = pki.key("load", kind)
            for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
                data = k.private_bytes(encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                self.assertTrue(keys.samePublicKey(keys.loadPrivateKey(data), k), kind)
            if kind != "ed25519":
                data = k.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
                self.assertTrue(keys.samePublicKey(keys.loadPrivateKey(data), k), kind)

    def test_ecParametersBlock(self):
        """
        "openssl ecparam -genkey" writes an EC PARAMETERS block first.
        """
        k = pki.key("load", "p256")
        data = (
            b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
            + k.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        )
        self.assertTrue(keys.samePublicKey(keys.loadPrivateKey(data), k))

    def test_encryptedRefused(self):
        k = pki.key("load", "p256")
        data = k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
        )
        e = self.assertRaises(InvalidKey, keys.loadPrivateKey, data)
        self.assertIn("encrypted", str(e))

    def test_malformed(self):
        for data in [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", b"0\x00"]:
            self.assertRaises(InvalidKey, keys.loadPrivateKey, data)
            self.assertRaises(InvalidKey, keys.loadPublicKey, data)

    def test_unsupportedTypes(self):
        """
        DSA, X25519 and curves other than P-256/384/521 are refused.
        """
        for k in [
            dsa.generate_private_key(1024),
            x25519.X25519PrivateKey.generate(),
            ec.generate_private_key(ec.SECP256K1()),
        ]:
            self.assertRaises(InvalidKey, keys.loadPrivateKey, keys.dumpPrivateKey(k))
            self.assertRaises(InvalidKey, keys.loadPublicKey, keys.dumpPublicKey(k))

    def test_publicFormats(self):
        """
        Public keys: PEM and DER SubjectPublicKeyInfo, and PKCS#1 "RSA PUBLIC
        KEY" (both forms iked's ca_validate_pubkey reads).
        """
        for kind in KINDS:
            k = pki.key("load", kind)
            for encoding in ("PEM", "DER"):
                self.assertTrue(keys.samePublicKey(keys.loadPublicKey(keys.dumpPublicKey(k, encoding)), k))
        r = pki.key("load", "rsa2048").public_key()
        for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
            data = r.public_bytes(encoding, serialization.PublicFormat.PKCS1)
            self.assertTrue(keys.samePublicKey(keys.loadPublicKey(data), r))

    def test_dumpRoundTrip(self):
        for kind in KINDS:
            k = pki.key("load", kind)
            for encoding in ("PEM", "DER"):
                self.assertTrue(keys.samePublicKey(keys.loadPrivateKey(keys.dumpPrivateKey(k, encoding)), k))
        self.assertRaises(ValueError, keys.dumpPublicKey, pki.key("load", "p256"), "XML")


class DescriptionTests(SynchronousTestCase):
    def test_describe(self):
        self.assertEqual(keys.describeKey(pki.key("d", "rsa2048")), "RSA-2048")
        self.assertEqual(keys.describeKey(pki.key("d", "rsa1024").public_key()), "RSA-1024")
        self.assertEqual(keys.describeKey(pki.key("d", "p256")), "ECDSA P-256")
        self.assertEqual(keys.describeKey(pki.key("d", "p384")), "ECDSA P-384")
        self.assertEqual(keys.describeKey(pki.key("d", "p521")), "ECDSA P-521")
        self.assertEqual(keys.describeKey(pki.key("d", "ed25519")), "Ed25519")

    def test_legacyAuthMethod(self):
        """
        The method iked's ca_privkey_to_method picks for a key.
        """
        self.assertEqual(keys.legacyAuthMethod(pki.key("d", "rsa1024")), AuthMethod.RSA_SIG)
        self.assertEqual(keys.legacyAuthMethod(pki.key("d", "p256")), AuthMethod.ECDSA_SHA256_P256)
        self.assertEqual(keys.legacyAuthMethod(pki.key("d", "p384")), AuthMethod.ECDSA_SHA384_P384)
        self.assertEqual(keys.legacyAuthMethod(pki.key("d", "p521")), AuthMethod.ECDSA_SHA512_P521)
        self.assertEqual(keys.legacyAuthMethod(pki.key("d", "ed25519")), AuthMethod.DIGITAL_SIGNATURE)

    def test_keyFitsMethod(self):
        """
        iked.conf's ikeauth keywords against key types.
        """
        fits = {
            "rsa1024": {"rsa", "rfc7427", "signature"},
            "p256": {"ecdsa256", "rfc7427", "signature"},
            "p384": {"ecdsa384", "rfc7427", "signature"},
            "p521": {"ecdsa521", "rfc7427", "signature"},
            "ed25519": {"rfc7427", "signature"},
        }
        for kind, methods in fits.items():
            k = pki.key("d", kind)
            for method in keys.SIGNATURE_METHODS:
                self.assertEqual(keys.keyFitsMethod(k, method), method in methods, (kind, method))
        self.assertRaises(ValueError, keys.keyFitsMethod, pki.key("d", "p256"), "psk")


class RawKeyTests(SynchronousTestCase):
    """
    Raw public keys in CERT payloads: iked's RAW_RSA_KEY (PKCS#1) and 201
    (EC SPKI), and RFC 7670's RAW_PUBLIC_KEY (SPKI).
    """

    def test_ikedDefaults(self):
        r = pki.key("raw", "rsa1024")
        encoding, data = keys.encodeRawPublicKey(r)
        self.assertEqual(encoding, CertEncoding.RAW_RSA_KEY)
        self.assertEqual(data, r.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1))
        e = pki.key("raw", "p384")
        self.assertEqual(keys.encodeRawPublicKey(e), (keys.IKED_CERT_ECDSA, keys.subjectPublicKeyInfo(e)))
        ed = pki.key("raw", "ed25519")
        self.assertEqual(keys.encodeRawPublicKey(ed), (CertEncoding.RAW_PUBLIC_KEY, keys.subjectPublicKeyInfo(ed)))

    def test_roundTrip(self):
        for kind in KINDS:
            k = pki.key("raw", kind)
            for encoding in [None, CertEncoding.RAW_PUBLIC_KEY]:
                enc, data = keys.encodeRawPublicKey(k, encoding)
                self.assertTrue(keys.samePublicKey(keys.decodeRawPublicKey(enc, data), k))

    def test_wrongTypeForEncoding(self):
        self.assertRaises(ValueError, keys.encodeRawPublicKey, pki.key("raw", "p256"), CertEncoding.RAW_RSA_KEY)
        self.assertRaises(ValueError, keys.encodeRawPublicKey, pki.key("raw", "rsa1024"), keys.IKED_CERT_ECDSA)
        self.assertRaises(ValueError, keys.encodeRawPublicKey, pki.key("raw", "rsa1024"), CertEncoding.X509_CERT_SIGNATURE)

    def test_strictDecoding(self):
        """
        RAW_RSA_KEY must be PKCS#1, not SPKI; 201 must be an EC key; nothing
        may trail; unknown encodings are refused.
        """
        r = pki.key("raw", "rsa1024")
        spki = keys.subjectPublicKeyInfo(r)
        pkcs1 = keys.encodeRawPublicKey(r)[1]
        self.assertRaises(InvalidKey, keys.decodeRawPublicKey, CertEncoding.RAW_RSA_KEY, spki)
        self.assertRaises(InvalidKey, keys.decodeRawPublicKey, CertEncoding.RAW_RSA_KEY, pkcs1 + b"\x00")
        self.assertRaises(InvalidKey, keys.decodeRawPublicKey, CertEncoding.RAW_PUBLIC_KEY, spki + b"\x00")
        self.assertRaises(InvalidKey, keys.decodeRawPublicKey, CertEncoding.RAW_PUBLIC_KEY, pkcs1)
        self.assertRaises(InvalidKey, keys.decodeRawPublicKey, keys.IKED_CERT_ECDSA, spki)
        self.assertRaises(InvalidKey, keys.decodeRawPublicKey, CertEncoding.RAW_PUBLIC_KEY, b"")
        self.assertRaises(InvalidKey, keys.decodeRawPublicKey, CertEncoding.X509_CERT_SIGNATURE, spki)
        x = x25519.X25519PrivateKey.generate()
        self.assertRaises(InvalidKey, keys.decodeRawPublicKey, CertEncoding.RAW_PUBLIC_KEY, keys.subjectPublicKeyInfo(x))


class CompareTests(SynchronousTestCase):
    def test_samePublicKey(self):
        a = pki.key("cmp-a", "p256")
        b = pki.key("cmp-b", "p256")
        self.assertTrue(keys.samePublicKey(a, a.public_key()))
        self.assertFalse(keys.samePublicKey(a, b))
        self.assertFalse(keys.samePublicKey(a, None))

"""
Tests for L{ikedtx.auth.store}: loading iked's /etc/iked tree, choosing the
local credential, verifying peers (chains, validity, CRLs, partial chains,
ID/certificate matching, raw public keys), CERTREQ data.
"""

import datetime
import hashlib
import os
import subprocess

from cryptography.hazmat.primitives import serialization
from twisted.logger import LogLevel, Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth import keys
from ikedtx.auth import store as storeModule
from ikedtx.auth.errors import (
    AuthenticationFailed,
    KeyMethodMismatch,
    MalformedCertificateRequest,
    NoPrivateKey,
    UnsupportedCertificateEncoding,
)
from ikedtx.auth.ids import IKEIdentity
from ikedtx.auth.store import (
    CredentialStore,
    certificateMatchesIdentity,
    encodeCertificateRequest,
    parseCertificateRequest,
    subjectAltNameIdentities,
)
from ikedtx.wire.constants import AuthMethod, CertEncoding, IdType
from tests import pki
from tests.support import requireExecutable

X509 = CertEncoding.X509_CERT_SIGNATURE
NOW = pki.NOW
HOST = "gw.example.com"


class PKI:
    """
    One set of CAs, built once: an RSA-2048 root, an ECDSA P-256
    intermediate under it, a second (P-384) root, and an unrelated root.
    """

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self):
        self.root = pki.Authority.root(cn="Root A", keyName="rootA", kind="rsa2048")
        self.intermediate = self.root.intermediate(cn="Intermediate A", keyName="interA", kind="p256")
        self.root2 = pki.Authority.root(cn="Root B", keyName="rootB", kind="p384")
        self.stranger = pki.Authority.root(cn="Stranger", keyName="stranger", kind="p256")


def x509Payload(certificate):
    return (X509, pki.der(certificate))


class StoreTestMixin:
    """
    A fresh iked tree per test and a store on it; log events recorded.
    """

    def setUp(self):
        self.pki = PKI.get()
        self.tree = pki.IkedTree(self.mktemp())
        self.events = []
        self.patch(CredentialStore, "_log", Logger(observer=self.events.append))

    def makeStore(self, **kw):
        kw.setdefault("hostname", HOST)
        return CredentialStore(self.tree.root, **kw)

    def logged(self, level=LogLevel.error):
        return [formatEvent(e) for e in self.events if e["log_level"] == level]


class LoadingTests(StoreTestMixin, SynchronousTestCase):
    """
    reload() reads every part of the tree; bad files are logged and skipped
    (iked(8) FILES).
    """

    def test_empty(self):
        """
        An empty (or missing) tree is not an error: PSK still works.
        """
        s = CredentialStore(os.path.join(self.mktemp(), "missing"), hostname=HOST)
        self.assertEqual((s.trustedCertificates, s.certificates, s.crls, s.privateKey), ([], [], [], None))
        self.assertEqual(s.loadErrors, [])
        self.assertEqual(self.logged(), [])

    def test_loadsEverything(self):
        local = pki.key("local", "p256")
        self.tree.addCA(self.pki.root.certificate, "1root.crt")
        self.tree.addCA(self.pki.intermediate.certificate, "2intermediate.crt")
        cert = self.pki.intermediate.issue(pki.name(CN=HOST), local.public_key(), dns=[HOST])
        self.tree.addCert(cert)
        self.tree.addCRL(self.pki.root.crl(), "root.crl")
        self.tree.setLocalKey(local)
        peer = pki.key("peer", "p256")
        self.tree.addPubkey("ipv4", "192.0.2.2", peer.public_key())
        s = self.makeStore()
        self.assertEqual(s.trustedCertificates, [self.pki.root.certificate, self.pki.intermediate.certificate])
        self.assertEqual(s.certificates, [cert])
        self.assertEqual(len(s.crls), 1)
        self.assertTrue(keys.samePublicKey(s.privateKey, local))
        self.assertTrue(keys.samePublicKey(s.localPublicKey, local))
        self.assertTrue(keys.samePublicKey(s.trustedPublicKey(IKEIdentity.fromAddress("192.0.2.2")), peer))
        self.assertEqual(s.loadErrors, [])

    def test_severalCertificatesPerFileAndDER(self):
        """
        A PEM file may hold several certificates (X509_load_cert_file); DER
        files are accepted too.
        """
        self.tree.write("ca/bundle.pem", pki.pem(self.pki.root.certificate) + pki.pem(self.pki.root2.certificate))
        self.tree.write("ca/inter.der", pki.der(self.pki.intermediate.certificate))
        self.tree.write("crls/root.der", pki.der(self.pki.root.crl()))
        s = self.makeStore()
        self.assertEqual(
            s.trustedCertificates,
            [self.pki.root.certificate, self.pki.root2.certificate, self.pki.intermediate.certificate],
        )
        self.assertEqual(len(s.crls), 1)

    def test_duplicatesOnce(self):
        self.tree.addCA(self.pki.root.certificate, "a.crt")
        self.tree.addCA(self.pki.root.certificate, "b.crt")
        s = self.makeStore()
        self.assertEqual(s.trustedCertificates, [self.pki.root.certificate])
        self.assertEqual(len(s.certificateRequestAuthorities()), 1)

    def test_malformedFilesSkipped(self):
        """
        A malformed certificate, CRL or public key is logged with its path
        and skipped; the rest loads.
        """
        self.tree.write("ca/bad.crt", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        self.tree.write("ca/junk.der", b"\x30\x03\x02\x01\x00")
        self.tree.addCA(self.pki.root.certificate, "good.crt")
        self.tree.write("certs/garbage", b"hello")
        self.tree.write("crls/bad.crl", b"not a crl")
        self.tree.write("pubkeys/fqdn/peer.example.com", b"not a key")
        self.tree.write("pubkeys/ipv4/not-an-address", pki.pem(pki.key("peer", "p256").public_key()))
        s = self.makeStore()
        self.assertEqual(s.trustedCertificates, [self.pki.root.certificate])
        self.assertEqual(s.certificates, [])
        self.assertEqual(s.crls, [])
        self.assertEqual(s.trustedPublicKeys, {})
        skipped = sorted(os.path.relpath(path, self.tree.root) for path, _ in s.loadErrors)
        self.assertEqual(
            skipped,
            [
                "ca/bad.crt",
                "ca/junk.der",
                "certs/garbage",
                "crls/bad.crl",
                "pubkeys/fqdn/peer.example.com",
                "pubkeys/ipv4/not-an-address",
            ],
        )
        errors = self.logged()
        self.assertEqual(len(errors), 6)
        self.assertTrue(any("ca/bad.crt: malformed certificate" in e for e in errors), errors)
        self.assertTrue(any("not a valid ipv4 ID" in e for e in errors), errors)

    def test_unreadableFileSkipped(self):
        """
        A file that cannot be read is logged and skipped.
        """
        self.tree.addCA(self.pki.root.certificate, "a.crt")
        self.tree.addCA(self.pki.root2.certificate, "b.crt")

        def failingOpen(path, mode="r"):
            if path.endswith("a.crt"):
                raise PermissionError(13, "Permission denied", path)
            return open(path, mode)

        self.patch(storeModule, "_open", failingOpen)
        s = self.makeStore()
        self.assertEqual(s.trustedCertificates, [self.pki.root2.certificate])
        self.assertEqual(len(s.loadErrors), 1)
        self.assertIn("cannot read (Permission denied)", s.loadErrors[0][1])

    def test_danglingSymlink(self):
        os.symlink("/nonexistent", self.tree.path("ca", "dangling.crt"))
        s = self.makeStore()
        self.assertEqual(s.trustedCertificates, [])
        self.assertIn("symbolic link", s.loadErrors[0][1])

    def test_symlinkFollowed(self):
        """
        iked loads symbolic links in ca/ (DT_LNK).
        """
        target = self.tree.write("elsewhere.crt", pki.pem(self.pki.root.certificate))
        os.symlink(target, self.tree.path("ca", "link.crt"))
        self.assertEqual(self.makeStore().trustedCertificates, [self.pki.root.certificate])

    def test_privateKeyPermissions(self):
        """
        A private key readable or writable by group or others is refused with
        a clear message; public key authentication is then unavailable.
        """
        for mode in (0o640, 0o604, 0o620, 0o644):
            self.tree.setLocalKey(pki.key("local", "p256"), mode=mode)
            s = self.makeStore()
            self.assertIsNone(s.privateKey)
            self.assertIn("accessible by group or others (mode %04o)" % (mode,), s.loadErrors[0][1])
            self.assertRaises(NoPrivateKey, s.localCredential, None)
        self.tree.setLocalKey(pki.key("local", "p256"), mode=0o400)
        self.assertIsNotNone(self.makeStore().privateKey)

    def test_privateKeyOwner(self):
        """
        A private key owned by someone else (neither us nor root) is refused.
        """
        from tests.support import requireRoot

        requireRoot()
        self.tree.setLocalKey(pki.key("local", "p256"))
        os.chown(self.tree.path("private/local.key"), 4242, -1)
        s = self.makeStore()
        self.assertIsNone(s.privateKey)
        self.assertIn("owned by uid 4242", s.loadErrors[0][1])

    def test_privateKeyMalformedOrEncrypted(self):
        self.tree.setLocalKey(pki.key("local", "p256"), data=b"garbage")
        s = self.makeStore()
        self.assertIsNone(s.privateKey)
        self.assertIn("malformed private key", s.loadErrors[0][1])
        encrypted = pki.key("local", "p256").private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"x")
        )
        self.tree.setLocalKey(pki.key("local", "p256"), data=encrypted)
        s = self.makeStore()
        self.assertIsNone(s.privateKey)
        self.assertIn("encrypted", s.loadErrors[0][1])

    def test_privateKeyFormats(self):
        """
        local.key may be PKCS#8 or the traditional PKCS#1/SEC1 PEM that
        ikectl (openssl genrsa) writes.
        """
        for kind in ("rsa2048", "p384"):
            k = pki.key("local", kind)
            data = k.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
            self.tree.setLocalKey(k, data=data)
            self.assertTrue(keys.samePublicKey(self.makeStore().privateKey, k))

    def test_localPubMismatchWarned(self):
        self.tree.setLocalKey(pki.key("local", "p256"))
        self.tree.write("local.pub", pki.pem(pki.key("other", "p256").public_key()))
        self.makeStore()
        warnings = self.logged(LogLevel.warn)
        self.assertEqual(len(warnings), 1)
        self.assertIn("local.pub is not the public key of private/local.key", warnings[0])

    def test_noSecretsLogged(self):
        """
        Nothing logged while loading carries the private key.
        """
        k = pki.key("local", "p256")
        self.tree.setLocalKey(k)
        self.makeStore()
        secret = str(k.private_numbers().private_value)
        pemText = pki.pem(k).decode("ascii")
        for event in self.events:
            text = formatEvent(event) + repr(event)
            self.assertNotIn(secret, text)
            self.assertNotIn(pemText.splitlines()[1], text)

    def test_reload(self):
        """
        reload() rereads everything (ikectl reload): new CAs and keys appear,
        removed ones go.
        """
        s = self.makeStore()
        self.assertEqual(s.trustedCertificates, [])
        self.tree.addCA(self.pki.root.certificate, "root.crt")
        self.tree.setLocalKey(pki.key("local", "p256"))
        self.tree.addPubkey("fqdn", "peer.example.com", pki.key("peer", "p256").public_key())
        s.reload()
        self.assertEqual(s.trustedCertificates, [self.pki.root.certificate])
        self.assertIsNotNone(s.privateKey)
        self.assertEqual(len(s.trustedPublicKeys), 1)
        os.unlink(self.tree.path("ca/root.crt"))
        os.unlink(self.tree.path("private/local.key"))
        s.reload()
        self.assertEqual(s.trustedCertificates, [])
        self.assertIsNone(s.privateKey)

    def test_pubkeyNames(self):
        """
        pubkeys/ files are named by ID as iked prints it; IPv6 names may be
        written in any valid form, FQDN names in any case.
        """
        k = pki.key("peer", "p256").public_key()
        self.tree.addPubkey("ipv6", "2001:0db8::0001", k)
        self.tree.addPubkey("fqdn", "Peer.Example.com", k)
        self.tree.addPubkey("ufqdn", "user@example.com", k)
        rsaKey = pki.key("peer", "rsa2048").public_key()
        self.tree.addPubkey("ipv4", "192.0.2.9", rsaKey, data=rsaKey.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1))
        s = self.makeStore()
        self.assertIsNotNone(s.trustedPublicKey(IKEIdentity.fromAddress("2001:db8::1")))
        self.assertIsNotNone(s.trustedPublicKey(IKEIdentity.fromFQDN("peer.example.com")))
        self.assertIsNotNone(s.trustedPublicKey(IKEIdentity.fromUFQDN("user@example.com")))
        self.assertIsNotNone(s.trustedPublicKey(IKEIdentity.fromAddress("192.0.2.9")))
        self.assertIsNone(s.trustedPublicKey(IKEIdentity.fromFQDN("other.example.com")))

    def test_certstoreInfo(self):
        self.tree.addCA(self.pki.root.certificate)
        cert = self.pki.root.issue(pki.name(CN="x"), pki.key("x", "p256").public_key())
        self.tree.addCert(cert)
        self.assertEqual(
            self.makeStore().certstoreInfo(), ["CA: /C=DE/O=ikedtx test/CN=Root A", "CERT: /CN=x"]
        )


class CertificateRequestTests(StoreTestMixin, SynchronousTestCase):
    """
    CERTREQ: SHA-1 hashes of the trusted CAs' SubjectPublicKeyInfo (RFC 7296
    3.7).
    """

    def test_authorities(self):
        self.tree.addCA(self.pki.root.certificate, "1.crt")
        self.tree.addCA(self.pki.root2.certificate, "2.crt")
        s = self.makeStore()
        expected = [
            hashlib.sha1(
                c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            ).digest()
            for c in (self.pki.root.certificate, self.pki.root2.certificate)
        ]
        self.assertEqual(s.certificateRequestAuthorities(), expected)
        self.assertEqual(s.certificateRequestData(), b"".join(expected))
        self.assertEqual(parseCertificateRequest(s.certificateRequestData()), expected)

    def test_noCAs(self):
        self.assertEqual(self.makeStore().certificateRequestData(), b"")

    def test_parseStrict(self):
        self.assertEqual(parseCertificateRequest(b""), [])
        self.assertEqual(parseCertificateRequest(b"a" * 40), [b"a" * 20, b"a" * 20])
        for n in (1, 19, 21, 39):
            self.assertRaises(MalformedCertificateRequest, parseCertificateRequest, b"a" * n)

    def test_encodeStrict(self):
        self.assertEqual(encodeCertificateRequest([b"a" * 20, b"b" * 20]), b"a" * 20 + b"b" * 20)
        self.assertRaises(ValueError, encodeCertificateRequest, [b"a" * 19])


class LocalCredentialTests(StoreTestMixin, SynchronousTestCase):
    """
    localCredential: the key, the ID to send and the certificates to send
    (iked ca.c ca_getreq).
    """

    def setUp(self):
        StoreTestMixin.setUp(self)
        self.local = pki.key("local", "p256")
        self.tree.setLocalKey(self.local)
        self.tree.addCA(self.pki.root.certificate, "rootA.crt")
        self.tree.addCA(self.pki.root2.certificate, "rootB.crt")

    def test_defaultIdentityIsHostname(self):
        """
        Without srcid the ID is FQDN/<hostname>, and the certificate is the
        one with that dNSName.
        """
        cert = self.pki.root.issue(pki.name(C="DE", CN="gw"), self.local.public_key(), dns=[HOST])
        self.tree.addCert(cert)
        credential = self.makeStore().localCredential(None, now=NOW)
        self.assertEqual(credential.identity, IKEIdentity.fromFQDN(HOST))
        self.assertEqual(credential.certificates, [cert])
        self.assertEqual(credential.certificate, cert)
        self.assertEqual(credential.certificatePayloads(), [x509Payload(cert)])

    def test_byIdentityType(self):
        """
        A DN srcid selects by subject; IPV4, IPV6, UFQDN by subjectAltName.
        """
        byDN = self.pki.root.issue(pki.name(C="DE", CN="by-dn"), self.local.public_key())
        byIP = self.pki.root.issue(pki.name(CN="ip"), self.local.public_key(), ips=["192.0.2.1", "2001:db8::1"])
        byMail = self.pki.root.issue(pki.name(CN="mail"), self.local.public_key(), emails=["vpn@example.com"])
        for c in (byDN, byIP, byMail):
            self.tree.addCert(c)
        s = self.makeStore()
        for srcId, expected in [
            (IKEIdentity.fromDN("/C=DE/CN=by-dn"), byDN),
            (IKEIdentity.fromAddress("192.0.2.1"), byIP),
            (IKEIdentity.fromAddress("2001:db8::1"), byIP),
            (IKEIdentity.fromUFQDN("vpn@EXAMPLE.com"), byMail),
        ]:
            credential = s.localCredential(srcId, now=NOW)
            self.assertEqual(credential.identity, srcId)
            self.assertEqual(credential.certificates, [expected], srcId)

    def test_keyMustMatch(self):
        """
        A certificate for our ID with another public key is not ours (iked
        ca_cert_local); we fall back to the raw public key.
        """
        other = self.pki.root.issue(pki.name(CN="gw"), pki.key("other", "p256").public_key(), dns=[HOST])
        self.tree.addCert(other)
        credential = self.makeStore().localCredential(None, now=NOW)
        self.assertEqual(credential.certificates, [])
        self.assertTrue(any("not the local key" in e for e in self.logged(LogLevel.info)))

    def test_rawPublicKey(self):
        """
        Without a certificate we send the raw public key the way iked does
        (EC: encoding 201 with the SubjectPublicKeyInfo), or nothing.
        """
        credential = self.makeStore().localCredential(IKEIdentity.fromAddress("192.0.2.1"), now=NOW)
        self.assertIsNone(credential.certificate)
        self.assertEqual(
            credential.certificatePayloads(), [(keys.IKED_CERT_ECDSA, keys.subjectPublicKeyInfo(self.local))]
        )
        self.assertEqual(
            credential.certificatePayloads(CertEncoding.RAW_PUBLIC_KEY),
            [(CertEncoding.RAW_PUBLIC_KEY, keys.subjectPublicKeyInfo(self.local))],
        )
        self.assertEqual(credential.certificatePayloads(sendRawKey=False), [])

    def test_certreqPreference(self):
        """
        Of two certificates for our ID, the one issued by a CA the peer's
        CERTREQ names is sent, in the CERTREQ's order.
        """
        fromA = self.pki.root.issue(pki.name(CN="gw-a"), self.local.public_key(), dns=[HOST])
        fromB = self.pki.root2.issue(pki.name(CN="gw-b"), self.local.public_key(), dns=[HOST])
        self.tree.addCert(fromA, "1.crt")
        self.tree.addCert(fromB, "2.crt")
        s = self.makeStore()
        hashA = storeModule.spkiHash(self.pki.root.certificate)
        hashB = storeModule.spkiHash(self.pki.root2.certificate)
        self.assertEqual(s.localCredential(None, certreqAuthorities=[hashB], now=NOW).certificate, fromB)
        self.assertEqual(s.localCredential(None, certreqAuthorities=[hashA], now=NOW).certificate, fromA)
        self.assertEqual(s.localCredential(None, certreqAuthorities=[hashB, hashA], now=NOW).certificate, fromB)
        self.assertEqual(s.localCredential(None, certreqAuthorities=[b"x" * 20], now=NOW).certificate, fromA)
        self.assertEqual(s.localCredential(None, now=NOW).certificate, fromA)

    def test_prefersValidCertificate(self):
        expired = self.pki.root.issue(
            pki.name(CN="old"), self.local.public_key(), dns=[HOST], notBefore=NOW - 400 * pki.DAY,
            notAfter=NOW - pki.DAY,
        )
        valid = self.pki.root.issue(pki.name(CN="new"), self.local.public_key(), dns=[HOST])
        self.tree.addCert(expired, "1.crt")
        self.tree.addCert(valid, "2.crt")
        self.assertEqual(self.makeStore().localCredential(None, now=NOW).certificate, valid)

    def test_intermediatesSent(self):
        """
        The chain sent is the certificate and its intermediates (from ca/ or
        certs/), not the root; a CERTREQ naming the root or the intermediate
        selects it.
        """
        leaf = self.pki.intermediate.issue(pki.name(CN="gw"), self.local.public_key(), dns=[HOST])
        self.tree.addCert(leaf, "leaf.crt")
        for where in ("certs/inter.crt", "ca/inter.crt"):
            path = self.tree.write(where, pki.pem(self.pki.intermediate.certificate))
            s = self.makeStore()
            for requested in ([], [storeModule.spkiHash(self.pki.root.certificate)]):
                credential = s.localCredential(None, certreqAuthorities=requested, now=NOW)
                self.assertEqual(credential.certificates, [leaf, self.pki.intermediate.certificate])
                self.assertEqual(
                    credential.certificatePayloads(), [x509Payload(leaf), x509Payload(self.pki.intermediate.certificate)]
                )
            os.unlink(path)

    def test_methodMismatch(self):
        """
        The policy's ikeauth method must fit the key; otherwise a typed
        error names both.
        """
        table = {
            "p256": {"ecdsa256", "rfc7427", "signature", "eap", None},
            "p384": {"ecdsa384", "rfc7427", "signature"},
            "p521": {"ecdsa521", "rfc7427"},
            "rsa2048": {"rsa", "rfc7427", "signature"},
            "ed25519": {"rfc7427", "signature"},
        }
        methods = ["rsa", "ecdsa256", "ecdsa384", "ecdsa521", "rfc7427", "signature"]
        for kind, fits in table.items():
            self.tree.setLocalKey(pki.key("local", kind))
            s = self.makeStore()
            for method in methods:
                if method in fits:
                    s.localCredential(None, authMethod=method, now=NOW)
                elif method not in ("rfc7427", "signature"):
                    e = self.assertRaises(KeyMethodMismatch, s.localCredential, None, authMethod=method, now=NOW)
                    self.assertEqual(e.method, method)
                    self.assertEqual(e.keyDescription, keys.describeKey(pki.key("local", kind)))
        self.assertRaises(ValueError, s.localCredential, None, authMethod="psk")

    def test_authMethod(self):
        for kind, method in [
            ("p256", AuthMethod.ECDSA_SHA256_P256),
            ("rsa2048", AuthMethod.RSA_SIG),
            ("ed25519", AuthMethod.DIGITAL_SIGNATURE),
        ]:
            self.tree.setLocalKey(pki.key("local", kind))
            credential = self.makeStore().localCredential(None, now=NOW)
            self.assertEqual(credential.authMethod, method)
            self.assertEqual(credential.keyDescription, keys.describeKey(pki.key("local", kind)))

    def test_noPrivateKey(self):
        os.unlink(self.tree.path("private/local.key"))
        self.assertRaises(NoPrivateKey, self.makeStore().localCredential, None)

    def test_reprHasNoSecret(self):
        credential = self.makeStore().localCredential(None, now=NOW)
        text = repr(credential)
        self.assertIn("ECDSA P-256", text)
        self.assertIn("FQDN/" + HOST, text)
        self.assertNotIn(str(self.local.private_numbers().private_value), text)


class LocalChoiceCacheTests(StoreTestMixin, SynchronousTestCase):
    """
    The certificates that can stand for a local ID, and their paths to
    trust, are worked out once per reload (and local key); the choice
    among them (CERTREQ, validity) is made at each use.
    """

    def setUp(self):
        StoreTestMixin.setUp(self)
        self.local = pki.key("local", "p256")
        self.tree.setLocalKey(self.local)
        self.tree.addCA(self.pki.root.certificate, "rootA.crt")
        self.tree.addCA(self.pki.root2.certificate, "rootB.crt")
        self.paths = []
        real = CredentialStore._pathToTrust

        def counting(store, leaf):
            self.paths.append(leaf)
            return real(store, leaf)

        self.patch(CredentialStore, "_pathToTrust", counting)

    def test_workedOutOnce(self):
        """
        Two uses, with different CERTREQs and times, follow the paths once
        and still choose by CERTREQ and validity; the CERT payloads are the
        certificate's DER.
        """
        fromA = self.pki.root.issue(pki.name(CN="gw-a"), self.local.public_key(), dns=[HOST],
                                    notAfter=NOW + 10 * pki.DAY)
        fromB = self.pki.root2.issue(pki.name(CN="gw-b"), self.local.public_key(), dns=[HOST])
        self.tree.addCert(fromA, "1.crt")
        self.tree.addCert(fromB, "2.crt")
        s = self.makeStore()
        hashB = storeModule.spkiHash(self.pki.root2.certificate)
        self.assertEqual(s.localCredential(None, now=NOW).certificate, fromA)
        self.assertEqual(s.localCredential(None, certreqAuthorities=[hashB], now=NOW).certificate, fromB)
        credential = s.localCredential(None, now=NOW + 20 * pki.DAY)
        self.assertEqual(credential.certificate, fromB)
        self.assertEqual(credential.certificatePayloads(), [x509Payload(fromB)])
        self.assertEqual(len(self.paths), 2)

    def test_reloadAndKeyChange(self):
        """
        A reload brings the new certificates of certs/; a local key put
        back in place of another (as a failed reload does) is matched
        again.
        """
        s = self.makeStore()
        self.assertEqual(s.localCredential(None, now=NOW).certificates, [])
        cert = self.pki.root.issue(pki.name(CN="gw"), self.local.public_key(), dns=[HOST])
        self.tree.addCert(cert)
        self.assertEqual(s.localCredential(None, now=NOW).certificates, [])
        s.reload()
        self.assertEqual(s.localCredential(None, now=NOW).certificates, [cert])
        s.privateKey = pki.key("other", "p256")
        self.assertEqual(s.localCredential(None, now=NOW).certificates, [])
        s.privateKey = self.local
        self.assertEqual(s.localCredential(None, now=NOW).certificates, [cert])

    def test_otherKeyLoggedEachTime(self):
        """
        A certificate for the ID with another key is logged at each use, as
        before the choice was kept.
        """
        other = self.pki.root.issue(pki.name(CN="gw"), pki.key("other", "p256").public_key(), dns=[HOST])
        self.tree.addCert(other)
        s = self.makeStore()
        s.localCredential(None, now=NOW)
        s.localCredential(None, now=NOW)
        self.assertEqual(len([e for e in self.logged(LogLevel.info) if "not the local key" in e]), 2)
        self.assertEqual(len([e for e in self.logged(LogLevel.info) if "raw ECDSA P-256 public key" in e]), 2)


class PeerCertificateTests(StoreTestMixin, SynchronousTestCase):
    """
    verifyPeer with X.509 certificates (iked ca.c ca_validate_cert).
    """

    def setUp(self):
        StoreTestMixin.setUp(self)
        self.tree.addCA(self.pki.root.certificate, "rootA.crt")
        self.peerKey = pki.key("peer", "p256")
        self.peerId = IKEIdentity.fromFQDN("peer.example.com")
        self.leaf = self.pki.intermediate.issue(
            pki.name(C="DE", O="ikedtx test", CN="peer"),
            self.peerKey.public_key(),
            dns=["peer.example.com"],
            ips=["192.0.2.2", "2001:db8::2"],
            emails=["peer@example.com"],
        )
        self.payloads = [x509Payload(self.leaf), x509Payload(self.pki.intermediate.certificate)]

    def assertFails(self, reasonPart, peerId=None, payloads=None, store=None, **kw):
        store = store or self.makeStore()
        e = self.assertRaises(
            AuthenticationFailed,
            store.verifyPeer,
            peerId or self.peerId,
            self.payloads if payloads is None else payloads,
            now=kw.pop("now", NOW),
            **kw,
        )
        self.assertIn(reasonPart, e.reason)
        return e

    def test_valid(self):
        """
        A chain leaf - intermediate (sent by the peer) - root (in ca/)
        verifies; the credential holds the leaf's key and the chain.
        """
        credential = self.makeStore().verifyPeer(self.peerId, self.payloads, now=NOW)
        self.assertTrue(keys.samePublicKey(credential.publicKey, self.peerKey))
        self.assertEqual(credential.certificate, self.leaf)
        self.assertEqual(credential.chain, [self.leaf, self.pki.intermediate.certificate, self.pki.root.certificate])
        self.assertEqual(credential.source, "certificate")
        self.assertEqual(credential.identity, self.peerId)

    def test_identityInSubjectAltName(self):
        """
        IPV4, IPV6, FQDN (any case) and UFQDN IDs match subjectAltName
        entries; an ASN1_DN ID matches the subject.
        """
        s = self.makeStore()
        for peerId in [
            IKEIdentity.fromAddress("192.0.2.2"),
            IKEIdentity.fromAddress("2001:db8::2"),
            IKEIdentity.fromFQDN("PEER.example.com"),
            IKEIdentity.fromUFQDN("peer@example.com"),
            IKEIdentity.fromDN("/C=DE/O=ikedtx test/CN=peer"),
            IKEIdentity.fromDN("/C=DE/O=IKEDTX TEST/CN=peer"),
        ]:
            self.assertEqual(s.verifyPeer(peerId, self.payloads, now=NOW).certificate, self.leaf)

    def test_identityNotInCertificate(self):
        """
        The peer's ID must be in its certificate; a CN is not a
        subjectAltName, and a DN must be the whole subject.
        """
        self.assertFails("not in the subjectAltName", IKEIdentity.fromFQDN("other.example.com"))
        self.assertFails("not in the subjectAltName", IKEIdentity.fromAddress("192.0.2.3"))
        self.assertFails("not in the subjectAltName", IKEIdentity.fromFQDN("peer"))
        self.assertFails("not the subject", IKEIdentity.fromDN("/C=DE/CN=peer"))
        self.assertFails("not in the subjectAltName", IKEIdentity.fromKeyID(b"peer"))

    def test_expectedId(self):
        """
        With a dstid, the peer's ID must match it.
        """
        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, expectedId=IKEIdentity.fromFQDN("Peer.Example.COM"), now=NOW)
        e = self.assertFails("does not match the policy's dstid FQDN/else.example.com",
                             expectedId=IKEIdentity.fromFQDN("else.example.com"))
        self.assertIn("FQDN/peer.example.com", e.reason)

    def test_intermediateFromCertsDirectory(self):
        """
        Intermediates may come from certs/ instead of the peer.
        """
        self.assertFails("unable to get local issuer certificate", payloads=[x509Payload(self.leaf)])
        self.tree.addCert(self.pki.intermediate.certificate)
        self.makeStore().verifyPeer(self.peerId, [x509Payload(self.leaf)], now=NOW)

    def test_untrusted(self):
        leaf = self.pki.stranger.issue(pki.name(CN="x"), self.peerKey.public_key(), dns=["peer.example.com"])
        self.assertFails("unable to get local issuer certificate", payloads=[x509Payload(leaf)])

    def test_selfSignedPeer(self):
        self.assertFails("self-signed certificate", payloads=[x509Payload(self.pki.stranger.certificate)],
                         peerId=IKEIdentity.fromDN(self.pki.stranger.certificate.subject))

    def test_trustedSelfSignedPeer(self):
        """
        A self-signed certificate in ca/ is its own trust anchor.
        """
        self.tree.addCA(self.pki.stranger.certificate)
        peerId = IKEIdentity.fromDN(self.pki.stranger.certificate.subject)
        credential = self.makeStore().verifyPeer(peerId, [x509Payload(self.pki.stranger.certificate)], now=NOW)
        self.assertEqual(credential.chain, [self.pki.stranger.certificate])

    def test_validityTime(self):
        """
        Expired and not yet valid certificates fail, at the injected time.
        """
        self.assertFails("certificate has expired", now=NOW + 400 * pki.DAY)
        self.assertFails("certificate is not yet valid", now=NOW - 60 * pki.DAY)
        expired = self.pki.intermediate.issue(
            pki.name(CN="x"), self.peerKey.public_key(), dns=["peer.example.com"],
            notBefore=NOW - 10 * pki.DAY, notAfter=NOW - pki.DAY,
        )
        e = self.assertFails("certificate has expired",
                             payloads=[x509Payload(expired), x509Payload(self.pki.intermediate.certificate)])
        self.assertIn("/CN=x", e.reason)

    def test_validityTimeOfEachVerification(self):
        """
        One store checks each verification at its own time: a certificate
        that verified at start-up fails once expired, and a CRL past its
        nextUpdate fails, without a reload (OpenSSL keeps the first time
        set on a shared X509Store).
        """
        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, self.payloads, now=NOW + 400 * pki.DAY)
        self.assertIn("certificate has expired", e.reason)
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        self.tree.addCRL(self.pki.root.crl(), "root.crl")
        self.tree.addCRL(self.pki.intermediate.crl(nextUpdate=NOW + pki.DAY), "intermediate.crl")
        s.reload()
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, self.payloads, now=NOW + 2 * pki.DAY)
        self.assertIn("CRL has expired", e.reason)

    def test_naiveTimeIsUTC(self):
        self.makeStore().verifyPeer(self.peerId, self.payloads, now=NOW.replace(tzinfo=None))

    def test_crlRevoked(self):
        """
        A revoked certificate fails once CRLs are installed.
        """
        intermediate = self.pki.root.intermediate(cn="Revoking CA", keyName="revoker", kind="p256")
        leaf = intermediate.issue(pki.name(CN="r"), self.peerKey.public_key(), dns=["peer.example.com"])
        intermediate.revoke(leaf)
        payloads = [x509Payload(leaf), x509Payload(intermediate.certificate)]
        # Without CRLs, no revocation check (iked enables CRL_CHECK only
        # once a CRL is loaded).
        self.makeStore().verifyPeer(self.peerId, payloads, now=NOW)
        self.tree.addCRL(self.pki.root.crl(), "root.crl")
        self.tree.addCRL(intermediate.crl(), "intermediate.crl")
        self.assertFails("certificate revoked", payloads=payloads)
        # A certificate the CRL does not list passes.
        other = intermediate.issue(pki.name(CN="ok"), self.peerKey.public_key(), dns=["peer.example.com"])
        self.makeStore().verifyPeer(self.peerId, [x509Payload(other), x509Payload(intermediate.certificate)], now=NOW)

    def test_crlRevokedIntermediate(self):
        intermediate = self.pki.root.intermediate(cn="Revoked CA", keyName="revoked", kind="p256")
        leaf = intermediate.issue(pki.name(CN="r"), self.peerKey.public_key(), dns=["peer.example.com"])
        root = pki.Authority(self.pki.root.subject, self.pki.root.key, self.pki.root.certificate)
        root.revoke(intermediate.certificate)
        self.tree.addCRL(root.crl(), "root.crl")
        self.tree.addCRL(intermediate.crl(), "intermediate.crl")
        e = self.assertFails("certificate revoked", payloads=[x509Payload(leaf), x509Payload(intermediate.certificate)])
        self.assertIn("(at /C=DE/O=ikedtx test/CN=Revoked CA)", e.reason)

    def test_crlMissingForAnIssuer(self):
        """
        Once any CRL is loaded, every CA in a chain needs one (iked sets
        CRL_CHECK and CRL_CHECK_ALL): here the intermediate has none.
        """
        self.tree.addCRL(self.pki.root.crl(), "root.crl")
        self.assertFails("unable to get certificate CRL")
        self.tree.addCRL(self.pki.intermediate.crl(), "intermediate.crl")
        self.makeStore().verifyPeer(self.peerId, self.payloads, now=NOW)

    def test_crlExpired(self):
        self.tree.addCRL(self.pki.root.crl(), "root.crl")
        self.tree.addCRL(
            self.pki.intermediate.crl(lastUpdate=NOW - 30 * pki.DAY, nextUpdate=NOW - pki.DAY), "intermediate.crl"
        )
        self.assertFails("CRL has expired")

    def test_partialChain(self):
        """
        cert_partial_chain: an intermediate in ca/ ends the chain without its
        root; off, the root is required.
        """
        os.unlink(self.tree.path("ca/rootA.crt"))
        self.tree.addCA(self.pki.intermediate.certificate, "inter.crt")
        self.assertFails("unable to get issuer certificate", payloads=[x509Payload(self.leaf)])
        credential = self.makeStore(certPartialChain=True).verifyPeer(self.peerId, [x509Payload(self.leaf)], now=NOW)
        self.assertEqual(credential.chain, [self.leaf, self.pki.intermediate.certificate])

    def test_partialChainTrustedLeaf(self):
        """
        With cert_partial_chain a peer certificate in ca/ is trusted by
        itself; without, it is not.
        """
        os.unlink(self.tree.path("ca/rootA.crt"))
        self.tree.addCA(self.leaf, "leaf.crt")
        self.assertFails("unable to get", payloads=[x509Payload(self.leaf)])
        s = self.makeStore()
        s.certPartialChain = True
        self.assertEqual(s.verifyPeer(self.peerId, [x509Payload(self.leaf)], now=NOW).chain, [self.leaf])

    def test_partialChainStillChecksTime(self):
        os.unlink(self.tree.path("ca/rootA.crt"))
        self.tree.addCA(self.leaf, "leaf.crt")
        self.assertFails("certificate has expired", payloads=[x509Payload(self.leaf)],
                         store=self.makeStore(certPartialChain=True), now=NOW + 400 * pki.DAY)

    def test_keyTypes(self):
        """
        RSA-2048, ECDSA P-384 and Ed25519 end-entity certificates verify.
        """
        s = self.makeStore()
        for kind in ("rsa2048", "p384", "ed25519"):
            k = pki.key("peer", kind)
            leaf = self.pki.root.issue(pki.name(CN=kind), k.public_key(), dns=["peer.example.com"])
            credential = s.verifyPeer(self.peerId, [x509Payload(leaf)], now=NOW)
            self.assertEqual(credential.keyDescription, keys.describeKey(k))

    def test_malformed(self):
        self.assertFails("malformed certificate", payloads=[(X509, b"\x30\x03\x02\x01\x00")])
        self.assertFails("malformed certificate", payloads=[(X509, b"")])
        e = self.assertFails("malformed certificate", payloads=[x509Payload(self.leaf), (X509, b"junk")])
        self.assertIn("CERT payload 2", e.reason)

    def test_unsupportedEncodings(self):
        """
        HASH_URL lookups are refused clearly, anywhere; other unknown first
        encodings too.
        """
        s = self.makeStore()
        for encoding in (CertEncoding.HASH_URL_X509_CERT, CertEncoding.HASH_URL_X509_BUNDLE):
            e = self.assertRaises(
                UnsupportedCertificateEncoding, s.verifyPeer, self.peerId, [(encoding, b"x" * 20 + b"http://x")], now=NOW
            )
            self.assertIn("hash and URL is not supported", e.reason)
            self.assertEqual(e.encoding, encoding)
            self.assertRaises(
                UnsupportedCertificateEncoding, s.verifyPeer, self.peerId, self.payloads + [(encoding, b"x")], now=NOW
            )
        e = self.assertRaises(
            UnsupportedCertificateEncoding, s.verifyPeer, self.peerId, [(CertEncoding.PKCS7_X509, b"x")], now=NOW
        )
        self.assertIn("PKCS7_X509", e.reason)
        self.assertRaises(UnsupportedCertificateEncoding, s.verifyPeer, self.peerId, [(250, b"x")], now=NOW)

    def test_otherEncodingsAfterFirstIgnored(self):
        """
        A CRL CERT payload after the certificate does not disturb.
        """
        self.makeStore().verifyPeer(self.peerId, self.payloads + [(CertEncoding.CRL, b"x")], now=NOW)

    def test_tooManyCertificates(self):
        self.assertFails("more than 16", payloads=self.payloads * 9)

    def test_trustedPublicKeyVouchesForCertificate(self):
        """
        As iked, a certificate whose key is the trusted raw key for the
        peer's ID is accepted without a chain.
        """
        stray = self.pki.stranger.issue(
            pki.name(CN="x"), self.peerKey.public_key(), notBefore=NOW - 10 * pki.DAY, notAfter=NOW - pki.DAY
        )
        self.tree.addPubkey("fqdn", "peer.example.com", self.peerKey.public_key())
        credential = self.makeStore().verifyPeer(self.peerId, [x509Payload(stray)], now=NOW)
        self.assertEqual(credential.source, "pubkeys/fqdn/peer.example.com")
        self.assertEqual(credential.chain, [stray])
        other = pki.key("other", "p256")
        stray2 = self.pki.stranger.issue(pki.name(CN="x"), other.public_key(), dns=["peer.example.com"])
        self.assertFails("unable to get local issuer", payloads=[x509Payload(stray2)])


class VerifiedChainCacheTests(StoreTestMixin, SynchronousTestCase):
    """
    The store keeps the chains it verified (per reload and cert_partial_chain
    setting) and does not ask OpenSSL again for the same certificates, but
    only while no certificate or CRL involved begins or ends its validity;
    every other check (the peer's ID, its pubkeys/ key) is made each time.
    """

    def setUp(self):
        StoreTestMixin.setUp(self)
        self.tree.addCA(self.pki.root.certificate, "rootA.crt")
        self.peerKey = pki.key("peer", "p256")
        self.peerId = IKEIdentity.fromFQDN("peer.example.com")
        self.leaf = self.pki.intermediate.issue(
            pki.name(CN="peer"), self.peerKey.public_key(), dns=["peer.example.com"])
        self.payloads = [x509Payload(self.leaf), x509Payload(self.pki.intermediate.certificate)]
        from OpenSSL import crypto

        self.contexts = []
        real = crypto.X509StoreContext

        def counting(*args, **kw):
            self.contexts.append(args)
            return real(*args, **kw)

        self.patch(crypto, "X509StoreContext", counting)

    def test_verifiedOnce(self):
        """
        The same certificates verify once; later verifications give the
        same chain, shared, and the peer's own credential each time.
        """
        s = self.makeStore()
        first = s.verifyPeer(self.peerId, self.payloads, now=NOW)
        second = s.verifyPeer(self.peerId, self.payloads, now=NOW + pki.DAY)
        self.assertEqual(len(self.contexts), 1)
        self.assertEqual(second.chain, [self.leaf, self.pki.intermediate.certificate, self.pki.root.certificate])
        self.assertIs(second.chain[2], s.trustedCertificates[0])
        self.assertEqual(second.chain, first.chain)
        self.assertEqual((second.source, second.identity), ("certificate", self.peerId))

    def test_identityCheckedEachTime(self):
        """
        A verified certificate presented with another ID fails as before
        (RFC 7296 3.5: the ID must be in the certificate).
        """
        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, IKEIdentity.fromFQDN("other.example.com"),
                              self.payloads, now=NOW)
        self.assertIn("not in the subjectAltName of its certificate /CN=peer", e.reason)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, IKEIdentity.fromDN("/CN=other"),
                              self.payloads, now=NOW)
        self.assertIn("not the subject", e.reason)
        self.assertEqual(s.verifyPeer(IKEIdentity.fromDN("/CN=peer"), self.payloads, now=NOW).certificate, self.leaf)
        self.assertEqual(len(self.contexts), 1)

    def test_expiryHonoured(self):
        """
        A chain verified before its end entity expires fails after, and one
        verified before its intermediate expires fails after that.
        """
        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, self.payloads,
                              now=self.leaf.not_valid_after_utc + datetime.timedelta(seconds=1))
        self.assertIn("certificate has expired", e.reason)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, self.payloads,
                              now=self.leaf.not_valid_before_utc - datetime.timedelta(seconds=1))
        self.assertIn("certificate is not yet valid", e.reason)
        short = self.pki.root.intermediate(cn="Short CA", keyName="interA", kind="p256")
        short.certificate = pki._build(short.subject, self.pki.root.subject, short.key.public_key(), self.pki.root.key,
                                       NOW - pki.DAY, NOW + 2 * pki.DAY, True,
                                       issuerKey=self.pki.root.key.public_key())
        leaf = short.issue(pki.name(CN="peer"), self.peerKey.public_key(), dns=["peer.example.com"])
        payloads = [x509Payload(leaf), x509Payload(short.certificate)]
        s.verifyPeer(self.peerId, payloads, now=NOW)
        s.verifyPeer(self.peerId, payloads, now=NOW + pki.DAY)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, payloads, now=NOW + 3 * pki.DAY)
        self.assertIn("certificate has expired", e.reason)
        self.assertIn("(at /C=DE/O=ikedtx test/CN=Short CA)", e.reason)

    def test_crlExpiryHonoured(self):
        """
        With CRLs, a chain verified while they are current fails once one
        has passed its nextUpdate (iked: CRL_CHECK_ALL), or before its
        lastUpdate.
        """
        self.tree.addCRL(self.pki.root.crl(), "root.crl")
        self.tree.addCRL(self.pki.intermediate.crl(lastUpdate=NOW - pki.DAY, nextUpdate=NOW + pki.DAY),
                         "intermediate.crl")
        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        s.verifyPeer(self.peerId, self.payloads, now=NOW + pki.DAY / 2)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, self.payloads,
                              now=NOW + 2 * pki.DAY)
        self.assertIn("CRL has expired", e.reason)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, self.payloads,
                              now=NOW - 2 * pki.DAY)
        self.assertIn("CRL is not yet valid", e.reason)
        self.assertEqual(len(self.contexts), 3)

    def test_reloadClears(self):
        """
        After a reload (ikectl reload) that brings a CRL revoking the
        certificate, or takes its CA away, it no longer verifies.
        """
        intermediate = self.pki.root.intermediate(cn="Revoking CA", keyName="revoker", kind="p256")
        leaf = intermediate.issue(pki.name(CN="r"), self.peerKey.public_key(), dns=["peer.example.com"])
        payloads = [x509Payload(leaf), x509Payload(intermediate.certificate)]
        s = self.makeStore()
        s.verifyPeer(self.peerId, payloads, now=NOW)
        intermediate.revoke(leaf)
        self.tree.addCRL(self.pki.root.crl(), "root.crl")
        self.tree.addCRL(intermediate.crl(), "intermediate.crl")
        s.verifyPeer(self.peerId, payloads, now=NOW)
        s.reload()
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, payloads, now=NOW)
        self.assertIn("certificate revoked", e.reason)
        os.unlink(self.tree.path("crls/root.crl"))
        os.unlink(self.tree.path("crls/intermediate.crl"))
        s.reload()
        s.verifyPeer(self.peerId, payloads, now=NOW)
        os.unlink(self.tree.path("ca/rootA.crt"))
        s.reload()
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, payloads, now=NOW)
        self.assertIn("unable to get", e.reason)

    def test_partialChainSetting(self):
        """
        Turning cert_partial_chain off drops the chains verified with it.
        """
        os.unlink(self.tree.path("ca/rootA.crt"))
        self.tree.addCA(self.pki.intermediate.certificate, "inter.crt")
        s = self.makeStore(certPartialChain=True)
        s.verifyPeer(self.peerId, [x509Payload(self.leaf)], now=NOW)
        s.certPartialChain = False
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, [x509Payload(self.leaf)], now=NOW)
        self.assertIn("unable to get issuer certificate", e.reason)

    def test_otherCertificatesVerifiedAgain(self):
        """
        The key is every certificate sent: the same end entity with another
        intermediate list is verified on its own (and fails without its
        intermediate).
        """
        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, [x509Payload(self.leaf)], now=NOW)
        self.assertIn("unable to get local issuer certificate", e.reason)
        self.assertEqual(len(self.contexts), 2)

    def test_failuresNotKept(self):
        """
        A chain that failed is verified again (and fails again).
        """
        s = self.makeStore()
        for _ in range(2):
            self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, [x509Payload(self.leaf)], now=NOW)
        self.assertEqual(len(self.contexts), 2)

    def test_trustedPublicKeyFirst(self):
        """
        A pubkeys/ key for the peer's ID vouches for the certificate before
        any chain, cached or not, as without the cache.
        """
        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        self.tree.addPubkey("fqdn", "peer.example.com", self.peerKey.public_key())
        s.reload()
        credential = s.verifyPeer(self.peerId, self.payloads, now=NOW)
        self.assertEqual(credential.source, "pubkeys/fqdn/peer.example.com")
        self.assertEqual(credential.chain, [self.leaf])

    def test_boundarySecondNotKept(self):
        """
        A verification at the very second a certificate's validity begins
        or ends is not kept (OpenSSL's comparison at that second is its
        own).
        """
        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, now=self.leaf.not_valid_before_utc)
        s.verifyPeer(self.peerId, self.payloads, now=self.leaf.not_valid_before_utc)
        self.assertEqual(len(self.contexts), 2)

    def test_bounded(self):
        """
        The store keeps at most MAX_VERIFIED_CHAINS chains, dropping the
        oldest.
        """
        self.patch(storeModule, "MAX_VERIFIED_CHAINS", 2)
        leaves = [self.pki.intermediate.issue(pki.name(CN="p%d" % i), self.peerKey.public_key(),
                                              dns=["peer.example.com"]) for i in range(3)]
        s = self.makeStore()
        for leaf in leaves + leaves[1:]:
            s.verifyPeer(self.peerId, [x509Payload(leaf), x509Payload(self.pki.intermediate.certificate)], now=NOW)
        self.assertEqual(len(self.contexts), 3)
        s.verifyPeer(self.peerId, [x509Payload(leaves[0]), x509Payload(self.pki.intermediate.certificate)], now=NOW)
        self.assertEqual(len(self.contexts), 4)

    def test_pickleDropsCaches(self):
        """
        The store handed to the privilege-separated worker carries no
        verified chains nor local choices; the worker makes its own.
        """
        from ikedtx.privsep.state import dumpState, loadState

        s = self.makeStore()
        s.verifyPeer(self.peerId, self.payloads, now=NOW)
        _, _, copy = loadState(dumpState(None, None, s), signer=None)
        self.assertIsNone(copy._verification)
        self.assertEqual(copy._localChains, {})
        self.assertEqual(copy.verifyPeer(self.peerId, self.payloads, now=NOW).chain[0], self.leaf)
        self.assertEqual(len(self.contexts), 2)
        self.assertIsNotNone(s._verification)


class PeerRawKeyTests(StoreTestMixin, SynchronousTestCase):
    """
    verifyPeer with raw public keys from pubkeys/ (iked(8) PUBLIC KEY
    AUTHENTICATION; ca.c ca_validate_pubkey).
    """

    def setUp(self):
        StoreTestMixin.setUp(self)
        self.peerKey = pki.key("peer", "p256")
        self.tree.addPubkey("ipv4", "192.0.2.2", self.peerKey.public_key())
        self.peerId = IKEIdentity.fromAddress("192.0.2.2")

    def test_noCertificatePayload(self):
        credential = self.makeStore().verifyPeer(self.peerId, [], now=NOW)
        self.assertTrue(keys.samePublicKey(credential.publicKey, self.peerKey))
        self.assertIsNone(credential.certificate)
        self.assertEqual(credential.chain, [])
        self.assertEqual(credential.source, "pubkeys/ipv4/192.0.2.2")

    def test_unknownPeer(self):
        e = self.assertRaises(AuthenticationFailed, self.makeStore().verifyPeer, IKEIdentity.fromAddress("192.0.2.3"), [])
        self.assertIn("no trusted public key for peer IPV4/192.0.2.3 (pubkeys/ipv4/192.0.2.3)", e.reason)

    def test_unmappableIdType(self):
        e = self.assertRaises(AuthenticationFailed, self.makeStore().verifyPeer, IKEIdentity.fromDN("/CN=x"), [])
        self.assertIn("ASN1_DN IDs cannot name a trusted public key", e.reason)

    def test_rawKeyPayloads(self):
        """
        A raw key CERT payload in iked's or RFC 7670's encoding must equal
        the trusted key.
        """
        s = self.makeStore()
        for encoding in (None, CertEncoding.RAW_PUBLIC_KEY):
            credential = s.verifyPeer(self.peerId, [keys.encodeRawPublicKey(self.peerKey, encoding)], now=NOW)
            self.assertTrue(keys.samePublicKey(credential.publicKey, self.peerKey))
        other = pki.key("other", "p256")
        e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, [keys.encodeRawPublicKey(other)])
        self.assertIn("is not the one in pubkeys/ipv4/192.0.2.2", e.reason)

    def test_rsaRawKey(self):
        rsaKey = pki.key("peer", "rsa2048")
        self.tree.addPubkey("fqdn", "rsa.example.com", rsaKey.public_key())
        peerId = IKEIdentity.fromFQDN("rsa.example.com")
        credential = self.makeStore().verifyPeer(peerId, [keys.encodeRawPublicKey(rsaKey)], now=NOW)
        self.assertEqual(credential.keyDescription, "RSA-2048")

    def test_malformedRawKey(self):
        s = self.makeStore()
        for payload in [
            (CertEncoding.RAW_RSA_KEY, b"junk"),
            (keys.IKED_CERT_ECDSA, keys.subjectPublicKeyInfo(pki.key("peer", "rsa1024"))),
            (CertEncoding.RAW_PUBLIC_KEY, b""),
        ]:
            e = self.assertRaises(AuthenticationFailed, s.verifyPeer, self.peerId, [payload])
            self.assertIn("malformed raw public key", e.reason)

    def test_expectedId(self):
        s = self.makeStore()
        e = self.assertRaises(
            AuthenticationFailed, s.verifyPeer, self.peerId, [], expectedId=IKEIdentity.fromAddress("192.0.2.9")
        )
        self.assertIn("dstid", e.reason)


class HelperTests(SynchronousTestCase):
    def test_subjectAltNameIdentities(self):
        ca = PKI.get().root
        cert = ca.issue(
            pki.name(CN="x"), pki.key("x", "p256").public_key(), dns=["a.example"], ips=["192.0.2.1"],
            emails=["u@example.com"],
        )
        self.assertEqual(
            subjectAltNameIdentities(cert),
            [IKEIdentity.fromFQDN("a.example"), IKEIdentity.fromAddress("192.0.2.1"), IKEIdentity.fromUFQDN("u@example.com")],
        )
        self.assertEqual(subjectAltNameIdentities(ca.certificate), [])
        self.assertTrue(certificateMatchesIdentity(cert, IKEIdentity.fromDN("/CN=x")))
        self.assertFalse(certificateMatchesIdentity(cert, IKEIdentity.null()))
        self.assertEqual(IdType.FQDN, subjectAltNameIdentities(cert)[0].idType)


class OpenSSLToolTests(StoreTestMixin, SynchronousTestCase):
    """
    Files made by the openssl command line tool, as ikectl(8)'s CA commands
    make them, load and verify.
    """

    def test_openSSLMadeTree(self):
        openssl = requireExecutable("openssl", "apt-get install openssl")
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)

        def run(*args):
            subprocess.run([openssl] + list(args), check=True, capture_output=True, cwd=work)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-subj", "/C=DE/O=ikectl/CN=VPN CA", "-days", "30")
        run("genrsa", "-out", "host.key", "2048")
        run("req", "-new", "-key", "host.key", "-out", "host.csr", "-subj", "/C=DE/O=ikectl/CN=10.1.2.3")
        with open(os.path.join(work, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:10.1.2.3,DNS:vpn.example.com\n")
        run("x509", "-req", "-in", "host.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "host.crt", "-days", "10", "-extfile", "san.ext")
        for src, dst, mode in [
            ("ca.crt", "ca/ca.crt", 0o644),
            ("host.crt", "certs/10.1.2.3.crt", 0o644),
            ("host.key", "private/local.key", 0o600),
        ]:
            with open(os.path.join(work, src), "rb") as f:
                self.tree.write(dst, f.read(), mode)
        s = self.makeStore()
        self.assertEqual(s.loadErrors, [])
        ident = IKEIdentity.fromAddress("10.1.2.3")
        credential = s.localCredential(ident)
        self.assertEqual(credential.certificate.subject.rfc4514_string(), "CN=10.1.2.3,O=ikectl,C=DE")
        self.assertEqual(credential.keyDescription, "RSA-2048")
        peer = s.verifyPeer(IKEIdentity.fromFQDN("vpn.example.com"), credential.certificatePayloads())
        self.assertEqual(peer.certificate, credential.certificate)
        peer = s.verifyPeer(IKEIdentity.fromDN("/C=DE/O=ikectl/CN=10.1.2.3"), credential.certificatePayloads())
        self.assertEqual(len(peer.chain), 2)

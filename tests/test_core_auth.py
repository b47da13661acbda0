"""
Tests for signature authentication in L{ikedtx.core} (RFC 7296 2.15, RFC
7427, RFC 4754): certificates under one CA, raw public keys from the iked
tree, and every way the peer's credential can be refused.
"""

from ikedtx.auth.store import CredentialStore
from ikedtx.config import parseConfig
from ikedtx.core.errors import AuthenticationFailed, NegotiationFailed
from ikedtx.core.sa import IKEState
from ikedtx.wire.constants import AuthMethod, CertEncoding, HashAlgorithm, NotifyType, PayloadType
from ikedtx.wire.message import Message

from tests import pki
from tests.corehelpers import Host, Network
from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase


def policies(authA="", authB=""):
    a = parseConfig('ikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s '
                    'srcid a.example dstid b.example %s' % (A_ADDR, B_ADDR, authA))
    b = parseConfig('ikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s '
                    'srcid b.example dstid a.example %s' % (B_ADDR, A_ADDR, authB))
    return a, b


class SignatureTestCase(ExchangeTestCase):
    def trees(self):
        self.treeA = pki.IkedTree(self.mktemp())
        self.treeB = pki.IkedTree(self.mktemp())
        return self.treeA, self.treeB

    def withCertificates(self, kind="p256", caKind="p256", hostB=None, ca=None):
        """
        Both hosts get a certificate for their FQDN under one CA, and trust
        that CA.
        """
        treeA, treeB = self.trees()
        self.ca = ca or pki.Authority.root(kind=caKind, keyName="ca-" + caKind)
        keyA, keyB = pki.key("a-" + kind, kind), pki.key("b-" + kind, kind)
        certA = self.ca.issue(pki.name(CN="a.example"), keyA.public_key(), dns=["a.example"])
        certB = (hostB or self.ca).issue(pki.name(CN="b.example"), keyB.public_key(), dns=["b.example"])
        for tree, key, cert in ((treeA, keyA, certA), (treeB, keyB, certB)):
            tree.setLocalKey(key)
            tree.addCert(cert)
            tree.addCA(self.ca.certificate)
        self.certB = certB
        return treeA, treeB

    def negotiate(self, authA="", authB="", trees=None):
        a, b = policies(authA, authB)
        treeA, treeB = trees
        self.network = Network()
        self.a = Host(self.network, A_ADDR, a, credentials=CredentialStore(treeA.root), wallClock=lambda: pki.NOW)
        self.b = Host(self.network, B_ADDR, b, credentials=CredentialStore(treeB.root), wallClock=lambda: pki.NOW)
        requestId = self.a.initiate("ab")
        self.network.pump()
        return requestId

    def authPayload(self, index):
        """
        The AUTH payload of delivered message C{index} (an IKE_AUTH).
        """
        message = Message.decode(self.network.delivered[index][0])
        ikeSA = (self.b if index == 2 else self.a).ikeSAs[0]
        inner = message.decrypt(ikeSA.cipherIn)
        return [p for p in inner if p.payloadType == PayloadType.AUTH][0], inner


class CertificateTests(SignatureTestCase):
    def test_ecdsaCertificates(self):
        """
        ECDSA P-256 certificates under one CA, with the policy's ecdsa256
        method; both sides announce their hashes, so (as iked) they sign
        with RFC 7427's DIGITAL_SIGNATURE; each side sends its certificate.
        """
        requestId = self.negotiate("ecdsa256", "ecdsa256", self.withCertificates("p256"))
        ikeSA = self.assertSucceeded(self.a, requestId)
        self.assertChildKeysMatch(self.a, self.b)
        auth, inner = self.authPayload(2)
        self.assertEqual(auth.method, AuthMethod.DIGITAL_SIGNATURE)
        certs = [p for p in inner if p.payloadType == PayloadType.CERT]
        self.assertEqual([c.encoding for c in certs], [CertEncoding.X509_CERT_SIGNATURE])
        self.assertEqual(ikeSA.peerCredential.certificate, self.certB)

    def test_ecdsaMethods(self):
        """
        ecdsa384 and ecdsa521 policies on P-384 and P-521 keys, between
        peers that announce their hashes: DIGITAL_SIGNATURE with the
        curve's hash.
        """
        for kind, policy in (("p384", "ecdsa384"), ("p521", "ecdsa521")):
            requestId = self.negotiate(policy, policy, self.withCertificates(kind))
            self.assertSucceeded(self.a, requestId)
            self.assertEqual(self.authPayload(2)[0].method, AuthMethod.DIGITAL_SIGNATURE)
            self.assertEqual(self.authPayload(3)[0].method, AuthMethod.DIGITAL_SIGNATURE)

    def test_rsaCertificates(self):
        """
        RSA-2048 certificates with the policy's rsa method, between peers
        that announce their hashes: DIGITAL_SIGNATURE (SHA2-256), not
        RSA_SIG's SHA-1.
        """
        requestId = self.negotiate("rsa", "rsa", self.withCertificates("rsa2048", "rsa2048"))
        self.assertSucceeded(self.a, requestId)
        self.assertEqual(self.authPayload(2)[0].method, AuthMethod.DIGITAL_SIGNATURE)
        self.assertEqual(self.authPayload(3)[0].method, AuthMethod.DIGITAL_SIGNATURE)

    def test_hashesAnnounced(self):
        """
        RFC 7427 4: every policy with certificates or raw keys announces
        SIGNATURE_HASH_ALGORITHMS in IKE_SA_INIT, both roles (as iked); a
        psk policy does not.
        """
        for auth, trees, announced in (("ecdsa256", self.withCertificates("p256"), True),
                                       ("rsa", self.withCertificates("rsa2048", "rsa2048"), True),
                                       ("psk \"secret\"", self.withCertificates("p256"), False)):
            self.negotiate(auth, auth, trees)
            for index in (0, 1):
                init = Message.decode(self.network.delivered[index][0])
                notifies = [p.notifyType for p in init.payloads if p.payloadType == PayloadType.NOTIFY]
                self.assertEqual(NotifyType.SIGNATURE_HASH_ALGORITHMS in notifies, announced, (auth, index))

    def test_digitalSignatureForNamedMethod(self):
        """
        A peer (libreswan) signs with DIGITAL_SIGNATURE against our
        ecdsa256 policy: RFC 7427 allows it once we announced our hashes,
        so it is accepted, with the P-256 key the method names.
        """
        requestId = self.negotiate("rfc7427", "ecdsa256", self.withCertificates("p256"))
        self.assertSucceeded(self.a, requestId)
        self.assertEqual(self.authPayload(2)[0].method, AuthMethod.DIGITAL_SIGNATURE)
        self.assertEqual([sa.state for sa in self.b.ikeSAs], [IKEState.VALID])

    def test_digitalSignatureWithOtherCurve(self):
        """
        DIGITAL_SIGNATURE with a P-384 key is refused by an ecdsa256 policy.
        """
        requestId = self.negotiate("rfc7427", "ecdsa256", self.withCertificates("p384"))
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)

    def test_namedMethodWithoutPeerHashes(self):
        """
        To a peer that announced no hashes, a named method signs with its
        own AUTH method (RFC 4754, RSA_SIG).
        """
        from ikedtx.core import cryptoglue

        for kind, policy, method in (("p256", "ecdsa256", AuthMethod.ECDSA_SHA256_P256),
                                     ("rsa2048", "rsa", AuthMethod.RSA_SIG)):
            key = pki.key("a-" + kind, kind)
            self.assertEqual(cryptoglue.signAuth(key, policy, b"octets", ())[0], method)
            hashes = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384)
            self.assertEqual(cryptoglue.signAuth(key, policy, b"octets", hashes)[0], AuthMethod.DIGITAL_SIGNATURE)

    def test_rfc7427(self):
        """
        RFC 7427: rfc7427 policies sign with DIGITAL_SIGNATURE (14).
        """
        requestId = self.negotiate("rfc7427", "rfc7427", self.withCertificates("rsa2048", "p256"))
        self.assertSucceeded(self.a, requestId)
        self.assertEqual(self.authPayload(2)[0].method, AuthMethod.DIGITAL_SIGNATURE)

    def test_defaultSignature(self):
        """
        Without an auth keyword (iked's "signature"), peers that announce
        SIGNATURE_HASH_ALGORITHMS use RFC 7427.
        """
        requestId = self.negotiate("", "", self.withCertificates("p384"))
        self.assertSucceeded(self.a, requestId)
        self.assertEqual(self.authPayload(3)[0].method, AuthMethod.DIGITAL_SIGNATURE)

    def test_untrustedCertificate(self):
        """
        A certificate that does not chain to a trusted CA is refused with
        AUTHENTICATION_FAILED; no SA is left on either side.
        """
        rogue = pki.Authority.root(kind="p256", keyName="rogue", cn="Rogue CA")
        requestId = self.negotiate("ecdsa256", "ecdsa256", self.withCertificates("p256", hostB=rogue))
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual((self.a.ikeSAs, self.b.ikeSAs), ([], []))
        self.assertEqual((self.a.kernel.sas, self.b.kernel.sas), ({}, {}))

    def test_revoked(self):
        """
        A revoked certificate (listed in the CA's CRL) is refused.
        """
        treeA, treeB = self.withCertificates("p256")
        self.ca.revoke(self.certB)
        treeA.addCRL(self.ca.crl())
        requestId = self.negotiate("ecdsa256", "ecdsa256", (treeA, treeB))
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual(self.a.ikeSAs, [])

    def test_identityNotInCertificate(self):
        """
        A peer whose ID is not in its certificate is refused.
        """
        treeA, treeB = self.withCertificates("p256")
        a, b = policies("ecdsa256", "ecdsa256")
        b = parseConfig('ikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s '
                        'srcid c.example ecdsa256' % (B_ADDR, A_ADDR))
        treeB.addCert(self.ca.issue(pki.name(CN="c.example"), pki.key("other", "p256").public_key(), dns=["c.example"]))
        self.network = Network()
        self.a = Host(self.network, A_ADDR, a, credentials=CredentialStore(treeA.root), wallClock=lambda: pki.NOW)
        self.b = Host(self.network, B_ADDR, b, credentials=CredentialStore(treeB.root), wallClock=lambda: pki.NOW)
        requestId = self.a.initiate("ab")
        self.network.pump()
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)

    def test_methodMismatch(self):
        """
        A policy that names ecdsa256 refuses a peer that signs with RSA.
        """
        treeA, treeB = self.trees()
        ca = pki.Authority.root(kind="p256", keyName="ca-p256")
        keyA, keyB = pki.key("a-p256", "p256"), pki.key("b-rsa2048", "rsa2048")
        for tree, key, host in ((treeA, keyA, "a.example"), (treeB, keyB, "b.example")):
            tree.setLocalKey(key)
            tree.addCert(ca.issue(pki.name(CN=host), key.public_key(), dns=[host]))
            tree.addCA(ca.certificate)
        requestId = self.negotiate("ecdsa256", "rsa", (treeA, treeB))
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual(self.a.ikeSAs, [])


class MissingCredentialTests(SignatureTestCase):
    def test_initiatorWithoutKey(self):
        """
        An initiator with no private key fails its request with a clear
        reason and sends no IKE_AUTH.
        """
        treeA, treeB = self.trees()
        treeB.setLocalKey(pki.key("b-p256", "p256"))
        requestId = self.negotiate("", "", (treeA, treeB))
        error = self.assertFailedWith(self.a, requestId, NegotiationFailed)
        self.assertIn("no usable local credential", str(error))
        self.assertEqual(len(self.network.delivered), 2)
        self.assertEqual(self.a.ikeSAs, [])

    def test_responderWithoutKey(self):
        """
        A responder that cannot sign answers AUTHENTICATION_FAILED and keeps
        nothing.
        """
        treeA, treeB = self.trees()
        keyA = pki.key("a-p256", "p256")
        treeA.setLocalKey(keyA)
        treeB.addPubkey("fqdn", "a.example", keyA.public_key())
        requestId = self.negotiate("", "", (treeA, treeB))
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual((self.a.ikeSAs, self.b.ikeSAs), ([], []))


class RawPublicKeyTests(SignatureTestCase):
    def test_rawKeys(self):
        """
        iked(8) PUBLIC KEY AUTHENTICATION: each side trusts the other's key
        under pubkeys/fqdn/<ID>, no certificates involved.
        """
        treeA, treeB = self.trees()
        keyA, keyB = pki.key("a-p256", "p256"), pki.key("b-rsa2048", "rsa2048")
        treeA.setLocalKey(keyA)
        treeB.setLocalKey(keyB)
        treeA.addPubkey("fqdn", "b.example", keyB.public_key())
        treeB.addPubkey("fqdn", "a.example", keyA.public_key())
        requestId = self.negotiate("", "", (treeA, treeB))
        ikeSA = self.assertSucceeded(self.a, requestId)
        self.assertEqual(ikeSA.peerCredential.certificate, None)
        self.assertEqual(self.b.ikeSAs[0].state, IKEState.VALID)

    def test_unknownKey(self):
        """
        A raw key that is not in pubkeys/ is refused.
        """
        treeA, treeB = self.trees()
        keyA, keyB = pki.key("a-p256", "p256"), pki.key("b-p256", "p256")
        treeA.setLocalKey(keyA)
        treeB.setLocalKey(keyB)
        treeA.addPubkey("fqdn", "b.example", pki.key("other", "p256").public_key())
        treeB.addPubkey("fqdn", "a.example", keyA.public_key())
        requestId = self.negotiate("", "", (treeA, treeB))
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual((self.a.ikeSAs, self.b.ikeSAs), ([], []))

# -*- test-case-name: tests.test_hostile_credentials -*-
"""
Credentials a live daemon refuses (RFC 8247 3.3, RFC 4945 5.1.3.2 and
5.1.3.12): a peer certificate with a weak key or without a usage that
allows IKE fails authentication (and a good peer then connects), and an
unusable private/local.key stops a daemon whose policies need it with one
line.
"""

import os
import tempfile

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.trial.unittest import TestCase

from ikedtx.auth.store import CredentialStore
from ikedtx.core.errors import AuthenticationFailed
from ikedtx.core.states import IKEState
from ikedtx.wire.constants import NotifyType

from tests.hostile import HostilePeer, LiveDaemon, SmallPKI

RESPONDER = ('ikev2 "victim" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local 127.0.0.1 peer 127.0.0.1 '
             'srcid b.example dstid a.example\n')
INITIATOR = ('ikev2 "attacker" active esp from 10.1.0.0/24 to 10.2.0.0/24 local 127.0.0.1 peer 127.0.0.1 '
             'srcid a.example dstid b.example\n')

_pki = []
_keys = {}


def pkiOnce():
    if not _pki:
        _pki.append(SmallPKI())
    return _pki[0]


def keyOnce(kind):
    if kind not in _keys:
        if kind == "p256":
            _keys[kind] = ec.generate_private_key(ec.SECP256R1())
        elif kind == "p224":
            _keys[kind] = ec.generate_private_key(ec.SECP224R1())
        else:
            _keys[kind] = rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    return _keys[kind]


class PeerCertificateTests(TestCase):
    def setUp(self):
        self.pki = pkiOnce()
        self.daemon = LiveDaemon(self, RESPONDER, start=False)
        key = keyOnce("p256")
        self.pki.tree(self.daemon.dir, self.pki.issue("b.example", key), key)
        self.daemon.start()

    def client(self, key, **extensions):
        """
        A client whose certificate for a.example has C{key} and the given
        extensions; its own store is told to use the key even when weak.
        """
        root = tempfile.mkdtemp(prefix="ikx-client-", dir=self.daemon.dir)
        self.pki.tree(root, self.pki.issue("a.example", key, **extensions), keyOnce("p256"))
        store = CredentialStore(root)
        store.privateKey = key
        return HostilePeer(self, self.daemon, INITIATOR, store)

    def assertRefused(self, key, why, **extensions):
        peer = self.client(key, **extensions)
        requestId, actions = peer.core.initiate("attacker")
        peer.execute(actions)
        error = peer.runUntil(requestId, AuthenticationFailed)
        self.assertEqual(error.notify, NotifyType.AUTHENTICATION_FAILED)
        self.assertIn(why, self.daemon.logWith(why))
        self.daemon.assertCleanLog(self)
        good = self.client(keyOnce("p256"))
        self.assertEqual(good.establish().state, IKEState.VALID)
        self.daemon.assertCleanLog(self)

    def test_rsa1024(self):
        """
        RFC 8247 3.3: RSA keys below 2048 bits are refused.
        """
        self.assertRefused(keyOnce("rsa1024"), "RSA key of 1024 bits, below the 2048 required")

    def test_weakCurve(self):
        """
        RFC 8247 3.3: ECDSA on curves other than P-256, P-384, P-521.
        """
        from ikedtx.auth import keys
        from ikedtx.wire.constants import AuthMethod

        # Our own client would not sign with it either: let it, here.
        self.patch(keys, "legacyAuthMethod", lambda key: AuthMethod.DIGITAL_SIGNATURE)
        self.assertRefused(keyOnce("p224"), "elliptic curve secp224r1 is not accepted")

    def test_keyUsageWithoutSignature(self):
        """
        RFC 4945 5.1.3.2: a keyUsage without digitalSignature or
        nonRepudiation cannot sign AUTH payloads.
        """
        self.assertRefused(keyOnce("p256"), "keyUsage allows neither", keyUsage={"key_encipherment": True})

    def test_extendedKeyUsageWithoutIke(self):
        """
        RFC 4945 5.1.3.12: an extendedKeyUsage without an IKE usage.
        """
        self.assertRefused(keyOnce("p256"), "does not allow IKE",
                           extendedKeyUsage=[ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION])

    def test_usagesAllowingIke(self):
        """
        digitalSignature with serverAuth/clientAuth, as most CAs issue them,
        is accepted.
        """
        peer = self.client(keyOnce("p256"), keyUsage={"digital_signature": True},
                           extendedKeyUsage=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
        self.assertEqual(peer.establish().state, IKEState.VALID)
        self.daemon.assertCleanLog(self)


class LocalKeyTests(TestCase):
    """
    An unusable private/local.key stops a daemon whose policies sign with
    it: exit status 1 and one line naming the file and why; a daemon of PSK
    policies starts anyway.
    """

    def assertStops(self, data, mode, why):
        daemon = LiveDaemon(self, RESPONDER, start=False)
        path = os.path.join(daemon.dir, "private", "local.key")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        status, output = daemon.run()
        lines = [line for line in output.splitlines() if line.startswith("iked: ")]
        self.assertEqual(status, 1, output)
        self.assertEqual(len(lines), 1, output)
        self.assertIn(path, lines[0])
        self.assertIn(why, lines[0])
        self.assertIn('policy victim needs it', lines[0])
        self.assertNotIn("Traceback", output)

    def pem(self, key):
        from cryptography.hazmat.primitives import serialization

        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def test_garbage(self):
        self.assertStops(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", 0o600, "malformed")

    def test_wrongMode(self):
        self.assertStops(self.pem(keyOnce("p256")), 0o644, "mode")

    def test_weakKey(self):
        self.assertStops(self.pem(keyOnce("rsa1024")), 0o600, "RSA key of 1024 bits")

    def test_pskPolicyStarts(self):
        """
        PSK policies do not need the key: the daemon starts (and says the
        key was skipped).
        """
        daemon = LiveDaemon(self, RESPONDER.replace("\n", ' psk "x"\n'), start=False)
        os.makedirs(os.path.join(daemon.dir, "private"))
        with open(os.path.join(daemon.dir, "private", "local.key"), "wb") as f:
            f.write(b"garbage")
        os.chmod(os.path.join(daemon.dir, "private", "local.key"), 0o600)
        daemon.start()
        self.assertIn("local.key: malformed private key", daemon.log())
        daemon.assertCleanLog(self)

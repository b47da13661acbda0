"""
Tests for ikedtx.crypto.sntrup: OpenBSD iked's sntrup761x25519 (private-use
id 1035) as a key exchange method: the KE data layout, the shared secret
(checked against an exchange recorded with openiked 7.2), refusal of
malformed input, and what happens without the optional binding.
"""

import hashlib

from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ikedtx.crypto import kex, sntrup
from ikedtx.crypto.errors import CryptoError, InvalidKeyExchange, UnsupportedTransform
from ikedtx.crypto.interfaces import IKeyExchange, IKeyExchangeMethod
from tests.cryptovectors import FixedRandom, counterRandom, h, load
from tests.support import missing

# RFC 7748 section 6.1: Alice's and Bob's X25519 keys.
ALICE_PRIVATE = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
X25519_SHARED = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def requireBinding():
    if not sntrup.AVAILABLE:
        missing("the sntrup761 binding is not installed (pip install 'ikedtx[pq]')")


class SntrupX25519Tests(SynchronousTestCase):
    """
    The method found in the registry under iked's id 1035.
    """

    def setUp(self):
        requireBinding()
        self.method = kex.keyExchangeFor(1035)

    def test_interfaces(self):
        verifyObject(IKeyExchangeMethod, self.method)
        verifyObject(IKeyExchange, self.method.generate(counterRandom))

    def test_sizes(self):
        """
        KEi: sntrup761 public key (1158) | X25519 public key (32); KEr:
        ciphertext (1039) | X25519 public key (32); a 64-byte (SHA-512)
        shared secret.  The method is a KEM for IKE: the sides send
        different data.
        """
        m = self.method
        self.assertEqual((m.transformId, m.name, m.kem), (1035, "sntrup761x25519", True))
        self.assertEqual((m.initiatorDataSize, m.responderDataSize, m.sharedSecretSize),
                         (1190, 1071, 64))

    def test_roundTrip(self):
        """
        The initiator's complete() and the responder's respond() give the
        same 64-byte bytearray; two exchanges give different secrets.
        """
        secrets = []
        for _ in range(2):
            exchange = self.method.generate()
            self.assertEqual(len(exchange.publicData), 1190)
            ourData, secret = self.method.respond(exchange.publicData)
            self.assertEqual(len(ourData), 1071)
            self.assertIsInstance(secret, bytearray)
            completed = exchange.complete(ourData)
            self.assertIsInstance(completed, bytearray)
            self.assertEqual(completed, secret)
            self.assertEqual(len(secret), 64)
            secrets.append(bytes(secret))
        self.assertNotEqual(secrets[0], secrets[1])

    def test_x25519FromRandom(self):
        """
        The X25519 scalar comes from the randomness source (32 bytes) and
        its public value (RFC 7748 6.1) ends each side's KE data.
        """
        source = FixedRandom(ALICE_PRIVATE)
        exchange = self.method.generate(source)
        self.assertEqual(source.requests, [32])
        self.assertEqual(exchange.publicData[1158:], ALICE_PUBLIC)
        ourData, _ = self.method.respond(exchange.publicData, FixedRandom(BOB_PRIVATE))
        self.assertEqual(ourData[1039:], BOB_PUBLIC)

    def test_combination(self):
        """
        The shared secret is SHA-512(sntrup761 key | X25519 shared secret):
        with the RFC 7748 keys on both sides, decapsulating the responder's
        ciphertext with the binding and hashing gives both sides' secret.
        """
        binding = sntrup._sntrup761
        exchange = self.method.generate(FixedRandom(ALICE_PRIVATE))
        ourData, secret = self.method.respond(exchange.publicData, FixedRandom(BOB_PRIVATE))
        kemKey = binding.decaps(bytes(exchange._secretKey), ourData[:1039])
        self.assertEqual(bytes(secret), hashlib.sha512(kemKey + X25519_SHARED).digest())
        self.assertEqual(exchange.complete(ourData), secret)

    def test_openiked(self):
        """
        An exchange recorded with Debian's openiked 7.2-1 as responder
        (tests/vectors/openiked_sntrup761x25519.json): from our recorded
        secret keys, iked's KEr data gives exactly the DHSECRET iked logged;
        decapsulating its ciphertext gives the recorded sntrup761 key (iked's
        sntrup761 and the binding agree).
        """
        v = load("openiked_sntrup761x25519")
        initiator = v["initiator"]
        private = x25519.X25519PrivateKey.from_private_bytes(h(initiator["x25519Private"]))
        secretKey = h(initiator["sntrup761SecretKey"])
        publicData = h(initiator["publicData"])
        self.assertEqual(private.public_key().public_bytes_raw(), publicData[1158:])
        responderData = h(v["responderData"])
        self.assertEqual(sntrup._sntrup761.decaps(secretKey, responderData[:1039]),
                         h(v["sntrup761Key"]))
        exchange = sntrup.SntrupX25519Exchange(self.method, publicData, bytearray(secretKey), private)
        self.assertEqual(exchange.complete(responderData).hex(), v["dhSecret"])
        self.assertEqual(sntrup.combine(h(v["sntrup761Key"]), h(v["x25519Shared"])).hex(),
                         v["dhSecret"])

    def test_tamperedCiphertext(self):
        """
        A modified ciphertext is not an error (sntrup761 rejects
        implicitly): the initiator just derives a different secret, and the
        IKE SA's AUTH fails later.
        """
        exchange = self.method.generate()
        ourData, secret = self.method.respond(exchange.publicData)
        tampered = bytes([ourData[0] ^ 1]) + ourData[1:]
        self.assertNotEqual(exchange.complete(tampered), secret)

    def _refusedByBoth(self, data):
        exchange = self.method.generate()
        self.assertRaises(InvalidKeyExchange, exchange.complete, data)
        self.assertRaises(InvalidKeyExchange, self.method.respond, data)

    def test_wrongLengths(self):
        """
        KE data one byte short or long, empty, of the other side's length,
        or not bytes at all is refused with InvalidKeyExchange.
        """
        exchange = self.method.generate()
        ourData, _ = self.method.respond(exchange.publicData)
        for data in (b"", exchange.publicData[:-1], exchange.publicData + b"\x00", ourData[:-1],
                     ourData + b"\x00", b"\x00" * 32, None, "x" * 1190, 1190):
            self.assertRaises(InvalidKeyExchange, exchange.complete, data)
            self.assertRaises(InvalidKeyExchange, self.method.respond, data)
        self.assertRaises(InvalidKeyExchange, self.method.respond, ourData)
        self.assertRaises(InvalidKeyExchange, exchange.complete, exchange.publicData)

    def test_lowOrderX25519(self):
        """
        RFC 7748 6: an X25519 value of small order (0, 1, and the order-8
        point of Wycheproof's x25519 tests) gives an all-zero secret and is
        refused on both sides, whatever the sntrup761 part.
        """
        exchange = self.method.generate()
        ourData, _ = self.method.respond(exchange.publicData)
        for point in (bytes(32), b"\x01" + bytes(31),
                      h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")):
            self.assertRaises(InvalidKeyExchange, self.method.respond, exchange.publicData[:1158] + point)
            self.assertRaises(InvalidKeyExchange, exchange.complete, ourData[:1039] + point)

    @settings(max_examples=25, deadline=None)
    @given(st.binary(min_size=0, max_size=1200))
    def test_arbitraryInput(self, data):
        """
        Any bytes: respond() and complete() return or raise
        InvalidKeyExchange, nothing else.
        """
        exchange = self.method.generate(FixedRandom(ALICE_PRIVATE))
        for call in (self.method.respond, exchange.complete):
            try:
                call(data)
            except InvalidKeyExchange:
                pass

    @settings(max_examples=10, deadline=None)
    @given(st.binary(min_size=1190, max_size=1190))
    def test_arbitraryPublicKey(self, data):
        """
        Every 1158-byte string decodes to an sntrup761 public key, so a
        random initiator value of the right length is either answered or
        (for a low-order X25519 part) refused with InvalidKeyExchange.
        """
        try:
            ourData, secret = self.method.respond(data)
        except InvalidKeyExchange:
            return
        self.assertEqual((len(ourData), len(secret)), (1071, 64))

    def test_wipe(self):
        """
        wipe() zeroes our copy of the sntrup761 secret key and forgets the
        X25519 key; complete() then fails.
        """
        exchange = self.method.generate()
        ourData, _ = self.method.respond(exchange.publicData)
        secretKey = exchange._secretKey
        self.assertEqual(len(secretKey), 1763)
        self.assertTrue(any(secretKey))
        exchange.wipe()
        self.assertEqual(secretKey, bytearray(1763))
        self.assertRaises(CryptoError, exchange.complete, ourData)


class BindingMissingTests(SynchronousTestCase):
    """
    Without the optional binding the group is refused with a message that
    says what to install; nothing falls back to Python arithmetic.
    """

    def test_methodNeedsBinding(self):
        self.patch(sntrup, "_sntrup761", None)
        e = self.assertRaises(CryptoError, sntrup.SntrupX25519Method)
        self.assertIn("ikedtx[pq]", str(e))

    def test_registryRefuses(self):
        methods = dict(kex.KEY_EXCHANGE_METHODS)
        methods.pop(1035, None)
        self.patch(kex, "KEY_EXCHANGE_METHODS", methods)
        e = self.assertRaises(UnsupportedTransform, kex.keyExchangeFor, 1035)
        self.assertEqual(str(e), sntrup.MISSING_REASON)
        self.assertIn("pqcrypto", str(e))

    def test_injectedBinding(self):
        """
        The method uses the binding it is given (the seam the tests above
        use implicitly with pqcrypto's).
        """
        calls = []

        class Binding:
            def keygen(self):
                calls.append("keygen")
                return b"P" * 1158, b"S" * 1763

            def encaps(self, publicKey):
                calls.append(("encaps", publicKey))
                return b"C" * 1039, b"K" * 32

            def decaps(self, secretKey, ciphertext):
                calls.append(("decaps", secretKey, ciphertext))
                return b"K" * 32

        method = sntrup.SntrupX25519Method(Binding())
        exchange = method.generate(FixedRandom(ALICE_PRIVATE))
        self.assertEqual(exchange.publicData, b"P" * 1158 + ALICE_PUBLIC)
        ourData, secret = method.respond(exchange.publicData, FixedRandom(BOB_PRIVATE))
        self.assertEqual(ourData, b"C" * 1039 + BOB_PUBLIC)
        self.assertEqual(exchange.complete(ourData), secret)
        self.assertEqual(calls, ["keygen", ("encaps", b"P" * 1158), ("decaps", b"S" * 1763, b"C" * 1039)])
        self.assertEqual(bytes(secret), hashlib.sha512(b"K" * 32 + X25519_SHARED).digest())

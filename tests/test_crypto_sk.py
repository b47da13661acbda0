"""
Tests for ikedtx.crypto.sk: SK/SKF payload protection for every IKE cipher.
"""

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ikedtx.crypto import keymat
from ikedtx.crypto.encr import encryptionFor
from ikedtx.crypto.errors import CryptoError, IntegrityError, InvalidKeyLength, UnsupportedTransform
from ikedtx.crypto.integ import integrityFor
from ikedtx.crypto.interfaces import ISKCipher
from ikedtx.crypto.prf import prfFor
from ikedtx.crypto.sk import SKCipher
from ikedtx.wire.constants import EncrId, IntegId, PrfId
from tests.cryptovectors import FixedRandom, counterRandom, h, strongswan

# Every (encrId, keyLength, integId) IKE can use.
SUITES = [
    (EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96),
    (EncrId.AES_CBC, 192, IntegId.HMAC_SHA2_384_192),
    (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128),
    (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_512_256),
    (EncrId.AES_CBC, 128, IntegId.HMAC_MD5_96),
    (EncrId.AES_CBC, 128, IntegId.AES_XCBC_96),
    (EncrId.AES_CBC, 128, IntegId.AES_CMAC_96),
    (EncrId.TRIPLE_DES, None, IntegId.HMAC_SHA1_96),
    (EncrId.AES_CTR, 128, IntegId.HMAC_SHA2_256_128),
    (EncrId.AES_CTR, 256, IntegId.HMAC_SHA1_96),
    (EncrId.AES_GCM_8, 128, None),
    (EncrId.AES_GCM_12, 192, None),
    (EncrId.AES_GCM_16, 256, None),
    (EncrId.AES_CCM_8, 128, None),
    (EncrId.AES_CCM_12, 192, None),
    (EncrId.AES_CCM_16, 256, IntegId.NONE),
    (EncrId.CHACHA20_POLY1305, None, None),
]


def _cipher(suite, random=counterRandom):
    encrId, keyLength, integId = suite
    encKey = bytes(range(encryptionFor(encrId).keyMaterialSize(keyLength)))
    integKey = b""
    if integId not in (None, IntegId.NONE):
        integKey = b"\xa5" * integrityFor(integId).keySize
    return SKCipher.forTransforms(encrId, keyLength, integId, encKey, integKey, random)


# RFC 7634 appendix B: an INFORMATIONAL request protected with
# ChaCha20-Poly1305 (key 80..9f, salt a0..a3, IV 10..17).
RFC7634_KEY = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3")
RFC7634_IV = h("1011121314151617")
RFC7634_HEADERS = h("c0c1c2c3c4c5c6c7 d0d1d2d3d4d5d6d7 2e202500 00000009 00000045 29000029")
RFC7634_PAYLOADS = h("0000000c 00004001 0000000a")
RFC7634_MESSAGE = RFC7634_HEADERS + RFC7634_IV + h(
    "610394701f8d017f7c12924889 6b71bfe25236efd7cdc67066906315b2")


class RFC7634Tests(SynchronousTestCase):
    """
    RFC 7634 appendix B, header to ICV.
    """

    def test_seal(self):
        """
        sealedLength() gives the SK payload length in the example's header
        (0x29 = 4 + 37), and seal() with the example's IV reproduces the
        message byte for byte.
        """
        cipher = SKCipher.forTransforms(EncrId.CHACHA20_POLY1305, None, None, RFC7634_KEY,
                                        random=FixedRandom(RFC7634_IV))
        self.assertEqual(4 + cipher.sealedLength(len(RFC7634_PAYLOADS)), 0x29)
        self.assertEqual(len(RFC7634_HEADERS) + cipher.sealedLength(len(RFC7634_PAYLOADS)),
                         0x45)
        sealed = cipher.seal(RFC7634_HEADERS, RFC7634_PAYLOADS)
        self.assertEqual(RFC7634_HEADERS + sealed, RFC7634_MESSAGE)

    def test_open(self):
        """
        open() recovers the Notify payload and refuses the message with its
        header changed.
        """
        cipher = SKCipher.forTransforms(EncrId.CHACHA20_POLY1305, None, None, RFC7634_KEY)
        self.assertEqual(cipher.open(RFC7634_HEADERS, RFC7634_MESSAGE[32:]), RFC7634_PAYLOADS)
        header = bytearray(RFC7634_HEADERS)
        header[19] ^= 1
        self.assertRaises(IntegrityError, cipher.open, bytes(header), RFC7634_MESSAGE[32:])

    def test_strongswanVector(self):
        """
        strongSwan's chacha20poly1305.c carries the same appendix B vector.
        """
        v = strongswan("chacha20poly1305")["chacha20poly1305_4"]
        self.assertEqual(h(v["key"]), RFC7634_KEY)
        self.assertEqual(h(v["adata"]) + h(v["iv"]) + h(v["cipher"]), RFC7634_MESSAGE)


class CipherVectorTests(SynchronousTestCase):
    """
    The ciphers inside the SK payload against their RFCs.  seal() appends a
    Pad Length byte (and padding), so the known ciphertext is a prefix of
    ours: CBC and CTR encrypt front to back.
    """

    def _prefix(self, fileName, encrId):
        for name, v in strongswan(fileName).items():
            key, iv, plain, expected = h(v["key"]), h(v["iv"]), h(v["plain"]), h(v["cipher"])
            keyLength = None if encrId == EncrId.TRIPLE_DES else 8 * (
                len(key) - encryptionFor(encrId).saltSize)
            cipher = SKCipher.forTransforms(encrId, keyLength, IntegId.HMAC_SHA1_96, key,
                                            b"k" * 20, FixedRandom(iv))
            sealed = cipher.seal(b"", plain)
            self.assertEqual(sealed[:len(iv)], iv, name)
            self.assertEqual(sealed[len(iv):len(iv) + len(expected)], expected, name)
            self.assertEqual(cipher.open(b"", sealed), plain, name)

    def test_rfc3602(self):
        """
        RFC 3602 section 4 AES-CBC test cases.
        """
        self._prefix("aes_cbc", EncrId.AES_CBC)

    def test_rfc3686(self):
        """
        RFC 3686 section 6 AES-CTR test vectors; the counter block is nonce
        | IV | 00000001 as RFC 5930 2 specifies for IKEv2.
        """
        self._prefix("aes_ctr", EncrId.AES_CTR)

    def test_3des(self):
        """
        3DES-CBC vectors from strongSwan's 3des_cbc.c.
        """
        self._prefix("3des_cbc", EncrId.TRIPLE_DES)


class _SuiteMixin:
    """
    Behaviour every SK cipher shares.
    """

    suite = None

    def setUp(self):
        self.cipher = _cipher(self.suite)

    def test_interface(self):
        verifyObject(ISKCipher, self.cipher)

    def test_lengths(self):
        """
        seal() produces sealedLength() bytes; maxPlaintextLength() inverts
        sealedLength().
        """
        for n in list(range(0, 40)) + [1000, 1469]:
            sealed = self.cipher.seal(b"aad", b"p" * n)
            self.assertEqual(len(sealed), self.cipher.sealedLength(n), n)
            self.assertEqual(self.cipher.open(b"aad", sealed), b"p" * n)
            budget = self.cipher.sealedLength(n)
            self.assertGreaterEqual(self.cipher.maxPlaintextLength(budget), n)
            self.assertLessEqual(
                self.cipher.sealedLength(self.cipher.maxPlaintextLength(budget)), budget)
        self.assertEqual(self.cipher.maxPlaintextLength(self.cipher.ivSize + self.cipher.icvSize),
                         -1)

    def test_uniqueIVs(self):
        """
        Two seals of the same payload differ (fresh IV each time).
        """
        first = self.cipher.seal(b"aad", b"payload")
        second = self.cipher.seal(b"aad", b"payload")
        self.assertNotEqual(first[:self.cipher.ivSize], second[:self.cipher.ivSize])

    def test_shortInput(self):
        """
        Input shorter than IV + one byte + ICV is refused with
        IntegrityError.
        """
        sealed = self.cipher.seal(b"aad", b"")
        for n in range(len(sealed)):
            self.assertRaises(IntegrityError, self.cipher.open, b"aad", sealed[:n])

    def test_wipe(self):
        """
        After wipe() the cipher neither seals nor opens.
        """
        sealed = self.cipher.seal(b"aad", b"x")
        self.cipher.wipe()
        self.assertRaises(CryptoError, self.cipher.seal, b"aad", b"x")
        self.assertRaises(CryptoError, self.cipher.open, b"aad", sealed)

    def _roundTrip(self, aad, plaintext):
        cipher = _cipher(self.suite)
        self.assertEqual(cipher.open(aad, cipher.seal(aad, plaintext)), plaintext)

    def _everyBitFlipDetected(self, aad, plaintext):
        cipher = _cipher(self.suite)
        sealed = cipher.seal(aad, plaintext)
        message = aad + sealed
        for bit in range(8 * len(message)):
            tampered = bytearray(message)
            tampered[bit // 8] ^= 1 << (bit % 8)
            tampered = bytes(tampered)
            self.assertRaises(IntegrityError, cipher.open, tampered[:len(aad)],
                              tampered[len(aad):])


def _suiteCase(suite):
    encrId, keyLength, integId = suite
    name = "SK_%s_%s_%s" % (EncrId(encrId).name, keyLength,
                            IntegId(integId).name if integId is not None else "AEAD")

    # Hypothesis wants one function object per test class.
    @settings(max_examples=25, deadline=None)
    @given(aad=st.binary(max_size=40), plaintext=st.binary(max_size=300))
    def test_roundTrip(self, aad, plaintext):
        """
        open(seal(x)) == x for any AAD and payloads.
        """
        self._roundTrip(aad, plaintext)

    @settings(max_examples=10, deadline=None)
    @given(aad=st.binary(min_size=1, max_size=36), plaintext=st.binary(max_size=48))
    def test_everyBitFlipDetected(self, aad, plaintext):
        """
        RFC 7296 3.14: flipping any bit of the AAD, IV, ciphertext or ICV
        makes open() fail with IntegrityError.
        """
        self._everyBitFlipDetected(aad, plaintext)

    return type(name, (_SuiteMixin, SynchronousTestCase), {
        "suite": suite, "__doc__": "SK protection with %s." % (name,),
        "test_roundTrip": test_roundTrip,
        "test_everyBitFlipDetected": test_everyBitFlipDetected})


for _suite in SUITES:
    _case = _suiteCase(_suite)
    globals()[_case.__name__] = _case
del _suite, _case


class PaddingTests(SynchronousTestCase):
    """
    Padding (RFC 7296 3.14): we pad to the block, the receiver accepts any
    padding that fits and refuses a Pad Length beyond the payload.
    """

    def test_cbcPadding(self):
        """
        AES-CBC pads payload + Pad Length byte to 16 bytes.
        """
        cipher = _cipher((EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96))
        self.assertEqual(cipher.sealedLength(15), 16 + 16 + 12)
        self.assertEqual(cipher.sealedLength(16), 16 + 32 + 12)

    def test_aeadNoPadding(self):
        """
        AEAD ciphers only add the Pad Length byte (RFC 7634 appendix B).
        """
        cipher = _cipher((EncrId.AES_GCM_16, 128, None))
        self.assertEqual(cipher.sealedLength(12), 8 + 13 + 16)

    def _sealRaw(self, cipher, aad, padded):
        # Seal bytes that already end in padding and a Pad Length byte of
        # our choosing, as another implementation might send them.
        cipher._pad = lambda plaintext: plaintext
        return cipher.seal(aad, padded)

    def test_acceptLongPadding(self):
        """
        A peer may pad more than needed, with any contents.
        """
        cipher = _cipher((EncrId.AES_GCM_16, 128, None))
        receiver = _cipher((EncrId.AES_GCM_16, 128, None))
        sealed = self._sealRaw(cipher, b"aad", b"payload" + b"\xff" * 9 + b"\x09")
        self.assertEqual(receiver.open(b"aad", sealed), b"payload")

    def test_refusePadLengthTooLarge(self):
        """
        A Pad Length larger than what precedes it is IntegrityError (after
        the ICV verified).
        """
        for suite in ((EncrId.AES_GCM_16, 128, None), (EncrId.AES_CBC, 128,
                                                       IntegId.HMAC_SHA1_96)):
            cipher = _cipher(suite)
            receiver = _cipher(suite)
            sealed = self._sealRaw(cipher, b"aad", b"x" * 15 + b"\x10")
            self.assertRaises(IntegrityError, receiver.open, b"aad", sealed)

    def test_cbcPartialBlock(self):
        """
        A CBC ciphertext that is not whole blocks is refused even with a
        valid ICV.
        """
        cipher = _cipher((EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96))
        iv = b"\x01" * 16
        body = iv + b"\x02" * 20
        icv = integrityFor(IntegId.HMAC_SHA1_96).compute(b"\xa5" * 20, b"aad" + body)
        self.assertRaises(IntegrityError, cipher.open, b"aad", body + icv)


class IVTests(SynchronousTestCase):
    """
    Where IVs come from.
    """

    def test_cbcRandom(self):
        """
        AES-CBC takes a fresh random IV per message from the source.
        """
        source = FixedRandom(b"A" * 16, b"B" * 16)
        cipher = _cipher((EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96), source)
        self.assertEqual(cipher.seal(b"", b"x")[:16], b"A" * 16)
        self.assertEqual(cipher.seal(b"", b"x")[:16], b"B" * 16)

    def test_aeadCounter(self):
        """
        AEAD IVs are a counter from a random start (RFC 5282 3.1: unique per
        key), wrapping modulo 2**64.
        """
        source = FixedRandom(b"\xff" * 8)
        cipher = _cipher((EncrId.AES_GCM_16, 128, None), source)
        self.assertEqual(source.requests, [8])
        self.assertEqual(cipher.seal(b"", b"x")[:8], b"\xff" * 8)
        self.assertEqual(cipher.seal(b"", b"x")[:8], bytes(8))
        self.assertEqual(cipher.seal(b"", b"x")[:8], bytes(7) + b"\x01")

    def test_brokenRandom(self):
        """
        A randomness source that returns the wrong length is an error, not a
        short IV.
        """
        cipher = _cipher((EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96), lambda n: b"short")
        self.assertRaises(ValueError, cipher.seal, b"", b"x")


class FactoryTests(SynchronousTestCase):
    """
    SKCipher.forTransforms and pairForIKESA.
    """

    def test_wrongKeys(self):
        self.assertRaises(InvalidKeyLength, SKCipher.forTransforms, EncrId.AES_CBC, 128,
                          IntegId.HMAC_SHA1_96, b"k" * 15, b"i" * 20)
        self.assertRaises(InvalidKeyLength, SKCipher.forTransforms, EncrId.AES_GCM_16, 128,
                          None, b"k" * 16)
        self.assertRaises(InvalidKeyLength, SKCipher.forTransforms, EncrId.AES_CBC, 128,
                          IntegId.HMAC_SHA1_96, b"k" * 16, b"i" * 19)
        self.assertRaises(InvalidKeyLength, SKCipher.forTransforms, EncrId.AES_CBC, None,
                          IntegId.HMAC_SHA1_96, b"k" * 16, b"i" * 20)

    def test_wrongCombinations(self):
        """
        AEAD with an integrity transform, a plain cipher without one and
        ESP-only transforms are refused.
        """
        self.assertRaises(UnsupportedTransform, SKCipher.forTransforms, EncrId.AES_GCM_16, 128,
                          IntegId.HMAC_SHA1_96, b"k" * 20, b"i" * 20)
        self.assertRaises(UnsupportedTransform, SKCipher.forTransforms, EncrId.AES_CBC, 128,
                          IntegId.NONE, b"k" * 16)
        self.assertRaises(UnsupportedTransform, SKCipher.forTransforms, EncrId.NULL, None,
                          IntegId.HMAC_SHA1_96, b"", b"i" * 20)
        self.assertRaises(UnsupportedTransform, SKCipher.forTransforms, EncrId.AES_CBC, 128,
                          IntegId.AES_128_GMAC, b"k" * 16, b"i" * 20)

    def test_pair(self):
        """
        The initiator seals with SK_ei/SK_ai what the responder opens with
        the same keys, and the other way round.
        """
        prf = prfFor(PrfId.HMAC_SHA2_256)
        for suite in ((EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128),
                      (EncrId.AES_GCM_16, 128, None)):
            keys = keymat.ikeSAKeys(prf, b"s" * 32, b"n" * 16, b"m" * 16, b"i" * 8, b"r" * 8,
                                    *suite)
            iOut, iIn = SKCipher.pairForIKESA(keys, *suite, isInitiator=True,
                                              random=counterRandom)
            rOut, rIn = SKCipher.pairForIKESA(keys, *suite, isInitiator=False,
                                              random=counterRandom)
            self.assertEqual(rIn.open(b"h", iOut.seal(b"h", b"request")), b"request")
            self.assertEqual(iIn.open(b"h", rOut.seal(b"h", b"response")), b"response")
            self.assertRaises(IntegrityError, iIn.open, b"h", iOut.seal(b"h", b"reflected"))

    def test_repr(self):
        cipher = _cipher((EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96))
        self.assertEqual(repr(cipher), "<CipherIntegritySKCipher aes-cbc>")

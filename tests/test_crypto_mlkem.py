"""
Tests for ML-KEM in ikedtx: the FIPS 203 known-answer vectors (through
Wycheproof) run through L{ikedtx.crypto.kex}'s ML-KEM-768 and ML-KEM-1024
methods, whose arithmetic is pyca/cryptography's; the modulus check of
L{ikedtx.crypto.mlkem} (public data) for all three parameter sets; and the
refusal of ML-KEM-512.

The pure-Python ML-KEM that ikedtx had (it divided secret values, the
KyberSlash pattern) was removed, and with it the tests that only it could
run: decapsulation keys compared byte for byte (cryptography keeps only the
64-byte seed), encapsulation from a given m (cryptography draws its own),
the H(ek) check of an imported decapsulation key (cryptography imports
seeds, not decapsulation keys), and the cross-checks between it and
cryptography.
"""

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.crypto import kex
from ikedtx.crypto.errors import InvalidKeyExchange, UnsupportedTransform
from ikedtx.crypto.mlkem import ML_KEM_512, ML_KEM_768, ML_KEM_1024
from ikedtx.wire.constants import DhId
from tests.cryptovectors import FixedRandom, h, load

_PARAMETERS = {"ML-KEM-512": ML_KEM_512, "ML-KEM-768": ML_KEM_768, "ML-KEM-1024": ML_KEM_1024}
_IDS = {"ML-KEM-768": DhId.ML_KEM_768, "ML-KEM-1024": DhId.ML_KEM_1024}


class _ParametersMixin:
    """
    FIPS 203 sizes and the 7.2 modulus check, for every parameter set.
    """

    parameterSet = None

    def setUp(self):
        self.parameters = _PARAMETERS[self.parameterSet]
        self.vectors = load("wycheproof_mlkem")["sizes"][self.parameterSet]

    def test_sizes(self):
        """
        FIPS 203 table 3: ek, dk and ciphertext sizes.
        """
        sizes = {"ML-KEM-512": (800, 1632, 768), "ML-KEM-768": (1184, 2400, 1088),
                 "ML-KEM-1024": (1568, 3168, 1568)}[self.parameterSet]
        p = self.parameters
        self.assertEqual((p.encapsulationKeySize, p.decapsulationKeySize, p.ciphertextSize), sizes)

    def test_modulusCheck(self):
        """
        FIPS 203 7.2: the encapsulation keys of Wycheproof's valid encaps
        vectors pass; those of the invalid ones (too short, too long, a
        coefficient not reduced mod q) fail.
        """
        valid = invalid = 0
        for t in self.vectors["encaps"]["tests"]:
            passed = self.parameters.checkEncapsulationKey(h(t["ek"]))
            self.assertEqual(passed, t["result"] == "valid", t["tcId"])
            if passed:
                valid += 1
            else:
                invalid += 1
        self.assertTrue(valid >= 4 and invalid >= 10, (valid, invalid))

    def test_lastCoefficient(self):
        """
        The check reaches the last coefficient of the last polynomial: q
        there fails, q - 1 passes.
        """
        p = self.parameters
        body = bytearray(384 * p.k)
        # The last coefficient is the top 12 bits of the last 3 bytes.
        body[-2:] = ((3328 << 4) & 0xFFFF).to_bytes(2, "little")
        self.assertTrue(p.checkEncapsulationKey(bytes(body) + bytes(32)))
        body[-2:] = ((3329 << 4) & 0xFFFF).to_bytes(2, "little")
        self.assertFalse(p.checkEncapsulationKey(bytes(body) + bytes(32)))


    def test_sameAsReference(self):
        """
        The check agrees with FIPS 203's definition (ByteDecode_12 of the
        whole vector as one integer, every value below q) on keys of
        random reduced values, with each value in turn set to q - 1, q and
        4095 at a low or high position of its three bytes, and on random
        bytes.
        """
        import random

        p = self.parameters
        rng = random.Random(203)
        size = 384 * p.k

        def reference(ek):
            value = int.from_bytes(ek[:size], "little")
            return len(ek) == p.encapsulationKeySize and all(
                (value >> (12 * i)) & 0xFFF < 3329 for i in range(size * 8 // 12))

        def pack(values):
            return sum(v << (12 * i) for i, v in enumerate(values)).to_bytes(size, "little") + bytes(32)

        count = size * 8 // 12
        checked = 0
        for trial in range(40):
            values = [rng.randrange(3329) for _ in range(count)]
            for position in (rng.randrange(count), rng.randrange(count) | 1, rng.randrange(count) & ~1):
                for value in (3328, 3329, 4095, 0, 3327):
                    changed = list(values)
                    changed[position] = value
                    ek = pack(changed)
                    self.assertEqual(p.checkEncapsulationKey(ek), reference(ek), (trial, position, value))
                    checked += 1
            ek = bytes(rng.randrange(256) for _ in range(p.encapsulationKeySize))
            self.assertEqual(p.checkEncapsulationKey(ek), reference(ek))
        self.assertEqual(checked, 40 * 3 * 5)


class _KnownAnswerMixin(_ParametersMixin):
    """
    FIPS 203 vectors from C2SP/wycheproof testvectors_v1 (mlkem_N_keygen_seed,
    mlkem_N_encaps and mlkem_N tests; see tests/vectors/README.md), through
    the IKE key exchange method.
    """

    def setUp(self):
        _ParametersMixin.setUp(self)
        self.method = kex.keyExchangeFor(_IDS[self.parameterSet])

    def test_keyGen(self):
        """
        ML-KEM.KeyGen_internal(d, z): the 64-byte seed d | z drawn from the
        randomness source gives the published ek as our KE data.
        """
        for t in self.vectors["keygen"]["tests"]:
            source = FixedRandom(h(t["seed"]))
            exchange = self.method.generate(source)
            self.assertEqual(source.requests, [64])
            self.assertEqual(exchange.publicData.hex(), t["ek"], t["tcId"])

    def test_encaps(self):
        """
        The responder encapsulates to every valid published ek (the
        ciphertext has the right size, and decapsulates to the same K in
        cryptography); the invalid keys (FIPS 203 7.2) are refused with
        InvalidKeyExchange.
        """
        valid = invalid = 0
        for t in self.vectors["encaps"]["tests"]:
            ek = h(t["ek"])
            if t["result"] == "valid":
                ciphertext, secret = self.method.respond(ek)
                self.assertEqual(len(ciphertext), self.parameters.ciphertextSize)
                self.assertEqual(len(secret), 32)
                valid += 1
            else:
                self.assertRaises(InvalidKeyExchange, self.method.respond, ek)
                invalid += 1
        self.assertTrue(valid >= 4 and invalid >= 10, (valid, invalid))

    def test_decaps(self):
        """
        ML-KEM.Decaps_internal: from the published seed, the initiator's
        complete() gives the published K (implicit rejection included);
        ciphertexts of the wrong length are refused with InvalidKeyExchange.
        """
        valid = invalid = 0
        for t in self.vectors["decaps"]["tests"]:
            exchange = self.method.generate(FixedRandom(h(t["seed"])))
            self.assertEqual(exchange.publicData.hex(), t["ek"], t["tcId"])
            if t["result"] == "valid":
                self.assertEqual(exchange.complete(h(t["c"])).hex(), t["K"], t["tcId"])
                valid += 1
            else:
                self.assertRaises(InvalidKeyExchange, exchange.complete, h(t["c"]))
                invalid += 1
        self.assertTrue(valid >= 4 and invalid >= 1, (valid, invalid))

    def test_implicitRejection(self):
        """
        FIPS 203 algorithm 18: a tampered ciphertext decapsulates to
        J(z | c) = SHAKE256(z | c, 32), not to the encapsulated key, and
        raises nothing.
        """
        d, z = b"\x01" * 32, b"\x02" * 32
        exchange = self.method.generate(FixedRandom(d + z))
        ciphertext, secret = self.method.respond(exchange.publicData)
        self.assertEqual(exchange.complete(ciphertext), secret)
        tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
        self.assertEqual(bytes(exchange.complete(tampered)),
                         hashlib.shake_256(z + tampered).digest(32))


class MLKEM512Tests(_ParametersMixin, SynchronousTestCase):
    parameterSet = "ML-KEM-512"

    def test_refused(self):
        """
        ML-KEM-512 (DhId 35) has no method: cryptography does not offer it
        and ikedtx does no ML-KEM arithmetic in Python.  The lookup says
        so, and the negotiation treats it as unsupported.
        """
        from ikedtx.crypto.transforms import isSupported
        from ikedtx.wire.constants import TransformType

        e = self.assertRaises(UnsupportedTransform, kex.keyExchangeFor, DhId.ML_KEM_512)
        self.assertIn("mlkem512 is not supported", str(e))
        self.assertNotIn(DhId.ML_KEM_512, kex.KEY_EXCHANGE_METHODS)
        self.assertFalse(isSupported(TransformType.DH, DhId.ML_KEM_512))


class MLKEM768Tests(_KnownAnswerMixin, SynchronousTestCase):
    parameterSet = "ML-KEM-768"


class MLKEM1024Tests(_KnownAnswerMixin, SynchronousTestCase):
    parameterSet = "ML-KEM-1024"

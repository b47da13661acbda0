"""
Tests for ikedtx.crypto.mlkem, the pure-Python FIPS 203 ML-KEM: FIPS 203
known-answer vectors (through Wycheproof) for all three parameter sets, and
cross-checks against pyca/cryptography's ML-KEM-768 and ML-KEM-1024.
"""

from cryptography.hazmat.primitives.asymmetric import mlkem as cmlkem
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.crypto.mlkem import ML_KEM_512, ML_KEM_768, ML_KEM_1024
from tests.cryptovectors import h, load

_PARAMETERS = {"ML-KEM-512": ML_KEM_512, "ML-KEM-768": ML_KEM_768, "ML-KEM-1024": ML_KEM_1024}


class _KnownAnswerMixin:
    """
    FIPS 203 vectors from C2SP/wycheproof testvectors_v1 (mlkem_N_keygen_seed,
    mlkem_N_encaps and mlkem_N tests; see tests/vectors/README.md).
    """

    parameterSet = None

    def setUp(self):
        self.kem = _PARAMETERS[self.parameterSet]
        self.vectors = load("wycheproof_mlkem")["sizes"][self.parameterSet]

    def test_sizes(self):
        """
        FIPS 203 table 3: ek, dk and ciphertext sizes.
        """
        sizes = {"ML-KEM-512": (800, 1632, 768), "ML-KEM-768": (1184, 2400, 1088),
                 "ML-KEM-1024": (1568, 3168, 1568)}[self.parameterSet]
        self.assertEqual((self.kem.encapsulationKeySize, self.kem.decapsulationKeySize,
                          self.kem.ciphertextSize), sizes)

    def test_keyGen(self):
        """
        ML-KEM.KeyGen_internal(d, z) gives the published ek and dk.
        """
        for t in self.vectors["keygen"]["tests"]:
            seed = h(t["seed"])
            ek, dk = self.kem.keyGen(seed[:32], seed[32:])
            self.assertEqual(ek.hex(), t["ek"], t["tcId"])
            self.assertEqual(dk.hex(), t["dk"], t["tcId"])

    def test_encaps(self):
        """
        ML-KEM.Encaps_internal(ek, m) gives the published c and K; keys that
        are too short, too long or not reduced mod q (FIPS 203 7.2) raise.
        """
        valid = invalid = 0
        for t in self.vectors["encaps"]["tests"]:
            ek, m = h(t["ek"]), h(t["m"])
            if t["result"] == "valid":
                key, c = self.kem.encaps(ek, m)
                self.assertEqual((key.hex(), c.hex()), (t["K"], t["c"]), t["tcId"])
                self.assertTrue(self.kem.checkEncapsulationKey(ek))
                valid += 1
            else:
                self.assertFalse(self.kem.checkEncapsulationKey(ek), t["tcId"])
                self.assertRaises(ValueError, self.kem.encaps, ek, m)
                invalid += 1
        self.assertTrue(valid >= 4 and invalid >= 10, (valid, invalid))

    def test_decaps(self):
        """
        ML-KEM.Decaps_internal gives the published K (implicit rejection
        included: the strcmp case); ciphertexts of the wrong length raise.
        """
        for t in self.vectors["decaps"]["tests"]:
            seed = h(t["seed"])
            _, dk = self.kem.keyGen(seed[:32], seed[32:])
            if t["result"] == "valid":
                self.assertEqual(self.kem.decaps(dk, h(t["c"])).hex(), t["K"], t["tcId"])
            else:
                self.assertRaises(ValueError, self.kem.decaps, dk, h(t["c"]))

    def test_implicitRejection(self):
        """
        FIPS 203 algorithm 18: a tampered ciphertext decapsulates to
        J(z | c), not to the encapsulated key, and raises nothing.
        """
        ek, dk = self.kem.keyGen(b"\x01" * 32, b"\x02" * 32)
        key, c = self.kem.encaps(ek, b"\x03" * 32)
        self.assertEqual(self.kem.decaps(dk, c), key)
        tampered = bytes([c[0] ^ 1]) + c[1:]
        import hashlib
        self.assertEqual(self.kem.decaps(dk, tampered),
                         hashlib.shake_256(b"\x02" * 32 + tampered).digest(32))

    def test_decapsulationKeyHashCheck(self):
        """
        FIPS 203 7.3: a decapsulation key whose H(ek) does not match is
        refused.
        """
        ek, dk = self.kem.keyGen(b"\x01" * 32, b"\x02" * 32)
        _, c = self.kem.encaps(ek, b"\x03" * 32)
        k = self.kem.k
        bad = bytearray(dk)
        bad[768 * k + 32] ^= 1
        self.assertRaises(ValueError, self.kem.decaps, bytes(bad), c)
        self.assertRaises(ValueError, self.kem.decaps, dk[:-1], c)

    def test_seedSizes(self):
        self.assertRaises(ValueError, self.kem.keyGen, b"\x01" * 31, b"\x02" * 32)
        ek, _ = self.kem.keyGen(b"\x01" * 32, b"\x02" * 32)
        self.assertRaises(ValueError, self.kem.encaps, ek, b"\x03" * 33)


class MLKEM512Tests(_KnownAnswerMixin, SynchronousTestCase):
    parameterSet = "ML-KEM-512"


class MLKEM768Tests(_KnownAnswerMixin, SynchronousTestCase):
    parameterSet = "ML-KEM-768"


class MLKEM1024Tests(_KnownAnswerMixin, SynchronousTestCase):
    parameterSet = "ML-KEM-1024"


class _CrossCheckMixin:
    """
    The pure-Python implementation and cryptography's agree.
    """

    kem = None
    privateClass = None
    publicClass = None

    def test_keyGenAgrees(self):
        """
        From the same seed d | z both produce the same encapsulation key.
        """
        for i in range(3):
            seed = bytes([i]) * 32 + bytes([i + 100]) * 32
            private = self.privateClass.from_seed_bytes(seed)
            ek, _ = self.kem.keyGen(seed[:32], seed[32:])
            self.assertEqual(private.public_key().public_bytes_raw(), ek)

    def test_theirCiphertextOurDecaps(self):
        """
        A ciphertext from cryptography's encapsulate() decapsulates here to
        the same key.
        """
        seed = b"\x07" * 64
        ek, dk = self.kem.keyGen(seed[:32], seed[32:])
        for _ in range(3):
            key, c = self.publicClass.from_public_bytes(ek).encapsulate()
            self.assertEqual(self.kem.decaps(dk, c), key)

    def test_ourCiphertextTheirDecaps(self):
        """
        A ciphertext from our encaps() decapsulates in cryptography to the
        same key.
        """
        seed = b"\x09" * 64
        private = self.privateClass.from_seed_bytes(seed)
        ek = private.public_key().public_bytes_raw()
        for i in range(3):
            key, c = self.kem.encaps(ek, bytes([i]) * 32)
            self.assertEqual(private.decapsulate(c), key)


class CrossCheck768(_CrossCheckMixin, SynchronousTestCase):
    kem = ML_KEM_768
    privateClass = cmlkem.MLKEM768PrivateKey
    publicClass = cmlkem.MLKEM768PublicKey


class CrossCheck1024(_CrossCheckMixin, SynchronousTestCase):
    kem = ML_KEM_1024
    privateClass = cmlkem.MLKEM1024PrivateKey
    publicClass = cmlkem.MLKEM1024PublicKey

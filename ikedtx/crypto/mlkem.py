# -*- test-case-name: tests.test_crypto_mlkem -*-
"""
ML-KEM (FIPS 203) parameter sets and the input check of a peer's
encapsulation key: public data only, no secret arithmetic.

The ML-KEM operations themselves (key generation, encapsulation,
decapsulation) come from pyca/cryptography (OpenSSL), which offers
ML-KEM-768 and ML-KEM-1024: see L{ikedtx.crypto.kex.MLKEMMethod}.
ML-KEM-512 is not supported: cryptography does not expose it, and ikedtx
does no secret ML-KEM arithmetic in Python (an earlier pure-Python
implementation here divided secret values, the KyberSlash timing pattern,
and was removed with its tests).  L{ML_KEM_512} remains only to name the
sizes of what is refused.

The modulus check of FIPS 203 7.2 is done here on the peer's
encapsulation key (public) before it reaches cryptography, so that a key
that fails it is refused with L{ikedtx.crypto.errors.InvalidKeyExchange}
whatever the library's own checks.
"""

Q = 3329
N = 256


#: A byte to its low four bits (bytes.translate).
_LOW_NIBBLE = bytes(b & 0xF for b in range(256))


def _coefficients12(data):
    """
    ByteDecode_12 without the reduction mod q (FIPS 203 algorithm 6): the
    12-bit values packed little-endian in C{data} (384 bytes per
    polynomial of N coefficients), two from each three bytes.
    """
    for i in range(0, len(data) - 2, 3):
        low, middle, high = data[i], data[i + 1], data[i + 2]
        yield low | (middle & 0xF) << 8
        yield middle >> 4 | high << 4


def _allReduced(data):
    """
    Whether every 12-bit value packed in C{data} is below q = 3329
    (0xD01). Of three bytes C{low, middle, high}, the values are C{low +
    256 (middle & 0xF)} and C{(middle >> 4) + 16 high}: both are at most
    3327 when every C{high} is below 208 and every C{middle & 0xF} below
    13, which one look at the bytes in C tells; only a key with a byte at
    such a bound (about one valid key in nine) is decoded value by value.
    """
    highs = data[2::3]
    nibbles = data[1::3].translate(_LOW_NIBBLE)
    if max(highs) < 208 and max(nibbles) < 13:
        return True
    return all(c < Q for c in _coefficients12(data))


class MLKEMParameters:
    """
    One ML-KEM parameter set (FIPS 203 table 2 and 3).

    @ivar name: e.g. C{"ML-KEM-768"}.
    @ivar k: the module rank.
    @ivar du, dv: the ciphertext compression parameters.
    @ivar encapsulationKeySize: bytes of ek (384k + 32).
    @ivar decapsulationKeySize: bytes of dk (768k + 96).
    @ivar ciphertextSize: bytes of c (32(du k + dv)).
    """

    sharedSecretSize = 32

    def __init__(self, name, k, du, dv):
        self.name = name
        self.k = k
        self.du = du
        self.dv = dv
        self.encapsulationKeySize = 384 * k + 32
        self.decapsulationKeySize = 768 * k + 96
        self.ciphertextSize = 32 * (du * k + dv)

    def checkEncapsulationKey(self, ek):
        """
        FIPS 203 7.2 input checking: the type check (length) and the modulus
        check (every coefficient of the encoded vector below q).  Return
        True if C{ek} passes.  C{ek} is public: this is not secret
        arithmetic.
        """
        ek = bytes(ek)
        if len(ek) != self.encapsulationKeySize:
            return False
        return _allReduced(ek[:384 * self.k])

    def __repr__(self):
        return "<MLKEMParameters %s>" % (self.name,)


ML_KEM_512 = MLKEMParameters("ML-KEM-512", 2, 10, 4)
ML_KEM_768 = MLKEMParameters("ML-KEM-768", 3, 10, 4)
ML_KEM_1024 = MLKEMParameters("ML-KEM-1024", 4, 11, 5)

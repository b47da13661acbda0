# -*- test-case-name: tests.test_crypto_mlkem -*-
"""
ML-KEM (FIPS 203), all three parameter sets, in pure Python.

pyca/cryptography 50 provides ML-KEM-768 and ML-KEM-1024 but not
ML-KEM-512, which draft-ietf-ipsecme-ikev2-mlkem registers for IKEv2 (Key
Exchange Method 35).  This module follows FIPS 203 (August 2024) algorithm
by algorithm, with SHA3/SHAKE from hashlib; it is checked against FIPS 203
known-answer vectors for all three parameter sets (key generation,
encapsulation, decapsulation including implicit rejection) and against
cryptography's ML-KEM-768/1024 in tests.test_crypto_mlkem.

ikedtx uses cryptography for ML-KEM-768 and ML-KEM-1024 and this module for
ML-KEM-512.  Python integer arithmetic is not guaranteed to run in constant
time: the implicit-rejection choice (FIPS 203 algorithm 18, line 9-10) is
made without a branch on secret data, but the arithmetic itself is best
effort, not a hardened implementation.
"""

import hashlib
import hmac

Q = 3329
N = 256


def _bitRev7(i):
    return int("{:07b}".format(i)[::-1], 2)


_ZETAS = [pow(17, _bitRev7(i), Q) for i in range(128)]
_GAMMAS = [pow(17, 2 * _bitRev7(i) + 1, Q) for i in range(128)]
_INV128 = 3303  # 128^-1 mod q


def _ntt(f):
    f = list(f)
    i = 1
    length = 128
    while length >= 2:
        for start in range(0, N, 2 * length):
            zeta = _ZETAS[i]
            i += 1
            for j in range(start, start + length):
                t = zeta * f[j + length] % Q
                f[j + length] = (f[j] - t) % Q
                f[j] = (f[j] + t) % Q
        length //= 2
    return f


def _nttInverse(f):
    f = list(f)
    i = 127
    length = 2
    while length <= 128:
        for start in range(0, N, 2 * length):
            zeta = _ZETAS[i]
            i -= 1
            for j in range(start, start + length):
                t = f[j]
                f[j] = (t + f[j + length]) % Q
                f[j + length] = zeta * (f[j + length] - t) % Q
        length *= 2
    return [x * _INV128 % Q for x in f]


def _multiplyNTTs(f, g):
    h = [0] * N
    for i in range(128):
        a0, a1, b0, b1 = f[2 * i], f[2 * i + 1], g[2 * i], g[2 * i + 1]
        h[2 * i] = (a0 * b0 + a1 * b1 * _GAMMAS[i]) % Q
        h[2 * i + 1] = (a0 * b1 + a1 * b0) % Q
    return h


def _add(f, g):
    return [(a + b) % Q for a, b in zip(f, g)]


def _byteEncode(f, d):
    value = 0
    for i, a in enumerate(f):
        value |= a << (d * i)
    return value.to_bytes(32 * d, "little")


def _byteDecode(data, d):
    value = int.from_bytes(data, "little")
    mask = (1 << d) - 1
    m = Q if d == 12 else 1 << d
    return [((value >> (d * i)) & mask) % m for i in range(N)]


def _compress(f, d):
    return [(((x << d) + Q // 2) // Q) % (1 << d) for x in f]


def _decompress(f, d):
    return [(y * Q + (1 << (d - 1))) >> d for y in f]


def _sampleNTT(seed):
    length = 840
    while True:
        stream = hashlib.shake_128(seed).digest(length)
        a = []
        for i in range(0, length - 2, 3):
            c0, c1, c2 = stream[i], stream[i + 1], stream[i + 2]
            d1 = c0 + 256 * (c1 % 16)
            d2 = c1 // 16 + 16 * c2
            if d1 < Q:
                a.append(d1)
            if d2 < Q and len(a) < N:
                a.append(d2)
            if len(a) == N:
                return a
        length *= 2


def _samplePolyCBD(data, eta):
    bits = int.from_bytes(data, "little")
    f = []
    for i in range(N):
        x = y = 0
        base = 2 * i * eta
        for j in range(eta):
            x += (bits >> (base + j)) & 1
            y += (bits >> (base + eta + j)) & 1
        f.append((x - y) % Q)
    return f


def _prf(eta, s, b):
    return hashlib.shake_256(s + bytes([b])).digest(64 * eta)


def _H(s):
    return hashlib.sha3_256(s).digest()


def _J(s):
    return hashlib.shake_256(s).digest(32)


def _G(c):
    digest = hashlib.sha3_512(c).digest()
    return digest[:32], digest[32:]


class MLKEM:
    """
    One ML-KEM parameter set (FIPS 203 table 2).

    @ivar k, eta1, eta2, du, dv: the parameters.
    @ivar encapsulationKeySize: bytes of ek (384k + 32).
    @ivar decapsulationKeySize: bytes of dk (768k + 96).
    @ivar ciphertextSize: bytes of c (32(du k + dv)).
    """

    sharedSecretSize = 32

    def __init__(self, name, k, eta1, eta2, du, dv):
        self.name = name
        self.k = k
        self.eta1 = eta1
        self.eta2 = eta2
        self.du = du
        self.dv = dv
        self.encapsulationKeySize = 384 * k + 32
        self.decapsulationKeySize = 768 * k + 96
        self.ciphertextSize = 32 * (du * k + dv)

    def _matrix(self, rho):
        return [[_sampleNTT(rho + bytes([j, i])) for j in range(self.k)] for i in range(self.k)]

    def _pkeKeyGen(self, d):
        rho, sigma = _G(d + bytes([self.k]))
        a = self._matrix(rho)
        n = 0
        s = []
        for _ in range(self.k):
            s.append(_samplePolyCBD(_prf(self.eta1, sigma, n), self.eta1))
            n += 1
        e = []
        for _ in range(self.k):
            e.append(_samplePolyCBD(_prf(self.eta1, sigma, n), self.eta1))
            n += 1
        sHat = [_ntt(p) for p in s]
        eHat = [_ntt(p) for p in e]
        tHat = []
        for i in range(self.k):
            acc = eHat[i]
            for j in range(self.k):
                acc = _add(acc, _multiplyNTTs(a[i][j], sHat[j]))
            tHat.append(acc)
        ek = b"".join(_byteEncode(p, 12) for p in tHat) + rho
        dk = b"".join(_byteEncode(p, 12) for p in sHat)
        return ek, dk

    def _pkeEncrypt(self, ek, m, r):
        tHat = [_byteDecode(ek[384 * i:384 * (i + 1)], 12) for i in range(self.k)]
        rho = ek[384 * self.k:]
        a = self._matrix(rho)
        n = 0
        y = []
        for _ in range(self.k):
            y.append(_samplePolyCBD(_prf(self.eta1, r, n), self.eta1))
            n += 1
        e1 = []
        for _ in range(self.k):
            e1.append(_samplePolyCBD(_prf(self.eta2, r, n), self.eta2))
            n += 1
        e2 = _samplePolyCBD(_prf(self.eta2, r, n), self.eta2)
        yHat = [_ntt(p) for p in y]
        u = []
        for i in range(self.k):
            acc = [0] * N
            for j in range(self.k):
                acc = _add(acc, _multiplyNTTs(a[j][i], yHat[j]))
            u.append(_add(_nttInverse(acc), e1[i]))
        mu = _decompress(_byteDecode(m, 1), 1)
        acc = [0] * N
        for j in range(self.k):
            acc = _add(acc, _multiplyNTTs(tHat[j], yHat[j]))
        v = _add(_add(_nttInverse(acc), e2), mu)
        c1 = b"".join(_byteEncode(_compress(p, self.du), self.du) for p in u)
        c2 = _byteEncode(_compress(v, self.dv), self.dv)
        return c1 + c2

    def _pkeDecrypt(self, dk, c):
        step = 32 * self.du
        u = [_decompress(_byteDecode(c[step * i:step * (i + 1)], self.du), self.du)
             for i in range(self.k)]
        v = _decompress(_byteDecode(c[step * self.k:], self.dv), self.dv)
        sHat = [_byteDecode(dk[384 * i:384 * (i + 1)], 12) for i in range(self.k)]
        acc = [0] * N
        for i in range(self.k):
            acc = _add(acc, _multiplyNTTs(sHat[i], _ntt(u[i])))
        w = [(a - b) % Q for a, b in zip(v, _nttInverse(acc))]
        return _byteEncode(_compress(w, 1), 1)

    def checkEncapsulationKey(self, ek):
        """
        FIPS 203 7.2 input checking: the type check (length) and the modulus
        check (every coefficient below q).  Return True if C{ek} passes.
        """
        ek = bytes(ek)
        if len(ek) != self.encapsulationKeySize:
            return False
        for i in range(self.k):
            chunk = ek[384 * i:384 * (i + 1)]
            if _byteEncode(_byteDecode(chunk, 12), 12) != chunk:
                return False
        return True

    def keyGen(self, d, z):
        """
        ML-KEM.KeyGen_internal (FIPS 203 algorithm 16) from the 32-byte
        seeds C{d} and C{z}: return (ek, dk).
        """
        d, z = bytes(d), bytes(z)
        if len(d) != 32 or len(z) != 32:
            raise ValueError("ML-KEM key generation takes two 32-byte seeds")
        ek, dkPke = self._pkeKeyGen(d)
        return ek, dkPke + ek + _H(ek) + z

    def encaps(self, ek, m):
        """
        ML-KEM.Encaps_internal (FIPS 203 algorithm 17) with the 32-byte
        randomness C{m}, after the input checks of 7.2: return (K, c).
        Raise ValueError for an invalid C{ek}.
        """
        ek, m = bytes(ek), bytes(m)
        if len(m) != 32:
            raise ValueError("ML-KEM encapsulation takes 32 bytes of randomness")
        if not self.checkEncapsulationKey(ek):
            raise ValueError("invalid ML-KEM encapsulation key")
        key, r = _G(m + _H(ek))
        return key, self._pkeEncrypt(ek, m, r)

    def decaps(self, dk, c):
        """
        ML-KEM.Decaps_internal (FIPS 203 algorithm 18) after the input checks
        of 7.3 (ciphertext and key lengths, the hash check of dk): return K,
        the implicit-rejection key J(z | c) if C{c} does not re-encrypt.
        Raise ValueError for malformed input.
        """
        dk, c = bytes(dk), bytes(c)
        if len(c) != self.ciphertextSize:
            raise ValueError("ML-KEM ciphertext has the wrong length")
        if len(dk) != self.decapsulationKeySize:
            raise ValueError("ML-KEM decapsulation key has the wrong length")
        k = self.k
        dkPke = dk[:384 * k]
        ekPke = dk[384 * k:768 * k + 32]
        h = dk[768 * k + 32:768 * k + 64]
        z = dk[768 * k + 64:]
        if not hmac.compare_digest(_H(ekPke), h):
            raise ValueError("ML-KEM decapsulation key fails its hash check")
        mPrime = self._pkeDecrypt(dkPke, c)
        kPrime, rPrime = _G(mPrime + h)
        kBar = _J(z + c)
        cPrime = self._pkeEncrypt(ekPke, mPrime, rPrime)
        # Select kPrime or kBar without branching on the comparison.
        mask = -int(hmac.compare_digest(c, cPrime)) & 0xFF
        return bytes(b ^ ((a ^ b) & mask) for a, b in zip(kPrime, kBar))


ML_KEM_512 = MLKEM("ML-KEM-512", 2, 3, 2, 10, 4)
ML_KEM_768 = MLKEM("ML-KEM-768", 3, 2, 2, 10, 4)
ML_KEM_1024 = MLKEM("ML-KEM-1024", 4, 2, 2, 11, 5)

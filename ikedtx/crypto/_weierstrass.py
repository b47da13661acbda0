# -*- test-case-name: tests.test_crypto_kex -*-
"""
Scalar multiplication on short Weierstrass curves y^2 = x^3 + ax + b over a
prime field, in pure Python, for the one IKEv2 group pyca/cryptography 50
lacks: brainpoolP224r1 (RFC 5639 section 3.3; IKEv2 group 27, RFC 6954).

The arithmetic is generic over the curve parameters so that the tests can
run the same code on brainpoolP256r1 and compare it with cryptography's
ECDH.

Points are kept in homogeneous projective coordinates (X:Y:Z), x = X/Z,
y = Y/Z, the point at infinity being (0:1:0).  Addition uses the complete
formulas of Renes, Costello and Batina ("Complete addition formulas for
prime order elliptic curves", EUROCRYPT 2016, algorithm 1, any a): they
are correct for every pair of inputs, doubling and the point at infinity
included, on a curve of odd order, so the scalar multiplication needs no
special case.  It is a Montgomery ladder over a fixed number of bits (the
bit length of the group order), with the two ladder points exchanged by an
arithmetic conditional swap rather than a branch: the sequence of field
operations does not depend on the scalar.

That is the pattern of a constant-time implementation, not a guarantee of
one: Python's integer arithmetic (multiplication, reduction, the inversion
by Fermat's little theorem at the end) takes time that depends on the
values, and Python ints holding the scalar cannot be wiped.  It is best
effort; ikedtx uses it only for group 27.
"""


class ShortWeierstrassCurve:
    """
    Elliptic curve domain parameters (p, a, b, G, n, h) of a curve
    y^2 = x^3 + ax + b over GF(p), and scalar multiplication on it.

    @ivar name: the curve's name, e.g. C{"brainpoolP224r1"}.
    @ivar p: the field prime.
    @ivar a: the coefficient a.
    @ivar b: the coefficient b.
    @ivar generator: the base point G as affine C{(x, y)}.
    @ivar order: n, the prime order of G.
    @ivar cofactor: h, the number of points on the curve divided by n.
    @ivar coordinateSize: bytes of one field element, big-endian.
    """

    def __init__(self, name, p, a, b, gx, gy, order, cofactor):
        self.name = name
        self.p = p
        self.a = a
        self.b = b
        self.generator = (gx, gy)
        self.order = order
        self.cofactor = cofactor
        self.coordinateSize = (p.bit_length() + 7) // 8
        self._b3 = 3 * b % p

    def __repr__(self):
        return "<ShortWeierstrassCurve %s>" % (self.name,)

    def contains(self, point):
        """
        Return True if the affine C{(x, y)} has both coordinates in
        [0, p - 1] and satisfies the curve equation.
        """
        x, y = point
        p = self.p
        if not (0 <= x < p and 0 <= y < p):
            return False
        return (y * y - (x * x * x + self.a * x + self.b)) % p == 0

    def _add(self, X1, Y1, Z1, X2, Y2, Z2):
        # Renes-Costello-Batina 2016, algorithm 1 (complete addition, any a),
        # reducing mod p as it goes; the ladder doubles with it too.
        p, a, b3 = self.p, self.a, self._b3
        t0 = X1 * X2 % p
        t1 = Y1 * Y2 % p
        t2 = Z1 * Z2 % p
        t3 = ((X1 + Y1) * (X2 + Y2) - t0 - t1) % p   # X1Y2 + X2Y1
        t4 = ((X1 + Z1) * (X2 + Z2) - t0 - t2) % p   # X1Z2 + X2Z1
        t5 = ((Y1 + Z1) * (Y2 + Z2) - t1 - t2) % p   # Y1Z2 + Y2Z1
        Z3 = (a * t4 + b3 * t2) % p
        X3 = t1 - Z3
        Z3 = t1 + Z3
        Y3 = X3 * Z3
        t1 = 3 * t0
        t2 = a * t2 % p
        t4 = (b3 * t4 + a * (t0 - t2)) % p
        t1 = (t1 + t2) % p
        Y3 = (Y3 + t1 * t4) % p
        X3 = (t3 * X3 - t5 * t4) % p
        Z3 = (t5 * Z3 + t3 * t1) % p
        return X3, Y3, Z3

    def multiply(self, scalar, point):
        """
        Return C{scalar} times the affine C{point} as affine C{(x, y)}, or
        None for the point at infinity.

        C{point} must be on the curve (see L{contains}) and
        0 <= C{scalar} < 2 ** order.bit_length(); the ladder always runs
        order.bit_length() steps.
        """
        bits = self.order.bit_length()
        if scalar < 0 or scalar >> bits:
            raise ValueError("scalar out of range")
        p = self.p
        x, y = point
        # R0 = infinity, R1 = point; invariant R1 = R0 + point.
        X0, Y0, Z0 = 0, 1, 0
        X1, Y1, Z1 = x, y, 1
        swap = 0
        for i in range(bits - 1, -1, -1):
            bit = (scalar >> i) & 1
            # Exchange R0 and R1 when this bit differs from the last one:
            # mask is 0 or -1 (all ones), so no branch depends on the bit.
            mask = -(swap ^ bit)
            d = (X0 ^ X1) & mask
            X0 ^= d
            X1 ^= d
            d = (Y0 ^ Y1) & mask
            Y0 ^= d
            Y1 ^= d
            d = (Z0 ^ Z1) & mask
            Z0 ^= d
            Z1 ^= d
            swap = bit
            X1, Y1, Z1 = self._add(X0, Y0, Z0, X1, Y1, Z1)
            X0, Y0, Z0 = self._add(X0, Y0, Z0, X0, Y0, Z0)
        mask = -swap
        d = (X0 ^ X1) & mask
        X0 ^= d
        d = (Y0 ^ Y1) & mask
        Y0 ^= d
        d = (Z0 ^ Z1) & mask
        Z0 ^= d
        del scalar, bit, swap, mask, d
        if Z0 == 0:
            return None
        zInverse = pow(Z0, p - 2, p)
        return X0 * zInverse % p, Y0 * zInverse % p


# RFC 5639 section 3.3 (the same values as OpenSSL's built-in brainpoolP224r1;
# tests.test_crypto_kex checks that G is on the curve and n * G = O).
BRAINPOOL_P224R1 = ShortWeierstrassCurve(
    "brainpoolP224r1",
    p=0xD7C134AA264366862A18302575D1D787B09F075797DA89F57EC8C0FF,
    a=0x68A5E62CA9CE6C1C299803A6C1530B514E182AD8B0042A59CAD29F43,
    b=0x2580F63CCFE44138870713B1A92369E33E2135D266DBB372386C400B,
    gx=0x0D9029AD2C7E5CF4340823B2A87DC68C9E4CE3174C1E6EFDEE12C07D,
    gy=0x58AA56F772C0726F24C6B89E4ECDAC24354B9E99CAA3F6D3761402CD,
    order=0xD7C134AA264366862A18302575D0FB98D116BC4B6DDEBCA3A5A7939F,
    cofactor=1)

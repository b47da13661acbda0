"""
Tests for ikedtx.crypto.kex, ikedtx.crypto._modp and
ikedtx.crypto._weierstrass: the key exchange methods, their known answers
and their validation of peer values.
"""

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.crypto import kex
from ikedtx.crypto._modp import MODP_GROUPS
from ikedtx.crypto._weierstrass import BRAINPOOL_P224R1, ShortWeierstrassCurve
from ikedtx.crypto.errors import CryptoError, InvalidKeyExchange, UnsupportedTransform
from ikedtx.wire.constants import DhId
from tests.cryptovectors import FixedRandom, counterRandom, h, load, strongswan

_STRONGSWAN_METHODS = {
    "MODP_768_BIT": DhId.MODP_768, "MODP_1024_BIT": DhId.MODP_1024,
    "MODP_1536_BIT": DhId.MODP_1536, "MODP_2048_BIT": DhId.MODP_2048,
    "MODP_3072_BIT": DhId.MODP_3072, "MODP_4096_BIT": DhId.MODP_4096,
    "MODP_6144_BIT": DhId.MODP_6144, "MODP_8192_BIT": DhId.MODP_8192,
    "MODP_1024_160": DhId.MODP_1024_160, "MODP_2048_224": DhId.MODP_2048_224,
    "MODP_2048_256": DhId.MODP_2048_256, "ECP_192_BIT": DhId.ECP_192,
    "ECP_224_BIT": DhId.ECP_224, "ECP_256_BIT": DhId.ECP_256, "ECP_384_BIT": DhId.ECP_384,
    "ECP_521_BIT": DhId.ECP_521, "ECP_224_BP": DhId.BRAINPOOL_224,
    "ECP_256_BP": DhId.BRAINPOOL_256, "ECP_384_BP": DhId.BRAINPOOL_384,
    "ECP_512_BP": DhId.BRAINPOOL_512, "CURVE_25519": DhId.CURVE25519,
    "CURVE_448": DhId.CURVE448,
}


class KnownAnswerTests(SynchronousTestCase):
    """
    Known-answer exchanges: both sides' public values and the shared secret
    from published private values.
    """

    def _vectors(self, fileName, expectedCount):
        vectors = strongswan(fileName)
        ran = 0
        for name, v in vectors.items():
            dhId = _STRONGSWAN_METHODS[v["method"]]
            method = kex.keyExchangeFor(dhId)
            seed = h(v["seed"])
            half = len(seed) // 2
            exchange = method.generate(FixedRandom(seed[:half]))
            self.assertEqual(exchange.publicData.hex(), v["pub_i"], name)
            self.assertEqual(len(exchange.publicData), method.initiatorDataSize, name)
            ourData, secret = method.respond(exchange.publicData, FixedRandom(seed[half:]))
            self.assertEqual(ourData.hex(), v["pub_r"], name)
            self.assertIsInstance(secret, bytearray)
            self.assertEqual(secret.hex(), v["shared"], name)
            self.assertEqual(exchange.complete(h(v["pub_r"])).hex(), v["shared"], name)
            self.assertEqual(len(secret), method.sharedSecretSize)
            ran += 1
        self.assertEqual(ran, expectedCount)

    def test_rfc5114Ecp(self):
        """
        RFC 5114 appendix A.6-A.10 ECP test data (groups 25, 26, 19, 20,
        21): KE data x | y, shared secret x only.
        """
        self._vectors("ecp", 5)

    def test_rfc6932Brainpool(self):
        """
        RFC 6932 appendix A test vectors for brainpool groups 27-30 (27 in
        pure Python, 28-30 through cryptography).
        """
        self._vectors("ecpbp", 4)

    def test_rfc5114Modp(self):
        """
        RFC 5114 appendix A.1-A.3: groups 22, 23, 24.
        """
        self._vectors("modpsub", 3)

    def test_modp(self):
        """
        Groups 1, 2, 5, 14-18 against strongSwan's generated vectors, which
        also fixes our private exponent sizes to strongSwan's.
        """
        self._vectors("modp", 8)

    def test_rfc7748(self):
        """
        RFC 7748 section 6.1 (X25519) and 6.2 (X448) Diffie-Hellman.
        """
        self._vectors("curve25519", 2)
        self._vectors("curve448", 1)


# RFC 5903 section 8: (group, i, gix, giy, r, grx, gry, girx).
RFC5903 = [
    (DhId.ECP_256,
     "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
     "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180",
     "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
     "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
     "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63",
     "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
     "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE"),
    (DhId.ECP_384,
     "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655"
     "E35B5380 41E649EE 3FAEF896 783AB194",
     "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6"
     "DE3AC808 ACB4BDB4 C88732AE E95F41AA",
     "9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E"
     "EB9FCFF3 C2C947DA E69B4C63 4573A81C",
     "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942"
     "E0308312 916B8ED2 960E4BD5 5A7448FC",
     "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D"
     "0D1AC43A 0336DEF9 6FDA41D0 774A3571",
     "DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF"
     "F83FA401 42209DFF 5EAAD96D B9E6386C",
     "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4"
     "D6031355 69B9E9D0 9CF5D4A2 70F59746"),
    (DhId.ECP_521,
     "0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0"
     "95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D 4A52",
     "0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE"
     "E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C ED3E",
     "017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A"
     "D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F 9582",
     "0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E"
     "9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168 5EB9",
     "00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21"
     "9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9 460F",
     "015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87"
     "220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F C56A",
     "01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04"
     "D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3 DDEA"),
]


class RFC5903Tests(SynchronousTestCase):
    """
    RFC 5903 section 8 (256, 384 and 521-bit random ECP groups, IANA 19-21).
    """

    def test_vectors(self):
        """
        The initiator's KE data is gix | giy (no 0x04), the responder's
        grx | gry, and both sides compute girx alone as g^ir.
        """
        for dhId, i, gix, giy, r, grx, gry, girx in RFC5903:
            method = kex.keyExchangeFor(dhId)
            exchange = method.generate(FixedRandom(h(i)))
            self.assertEqual(exchange.publicData, h(gix) + h(giy))
            ourData, secret = method.respond(h(gix) + h(giy), FixedRandom(h(r)))
            self.assertEqual(ourData, h(grx) + h(gry))
            self.assertEqual(bytes(secret), h(girx))
            self.assertEqual(bytes(exchange.complete(h(grx) + h(gry))), h(girx))


def _isProbablePrime(n, bases=(2,)):
    d = n - 1
    r = 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


class ModpParameterTests(SynchronousTestCase):
    """
    The MODP parameters are what RFC 2409, 3526 and 5114 publish.
    """

    def test_safePrimes(self):
        """
        RFC 2409 6 and RFC 3526: p and (p - 1) / 2 are prime (Miller-Rabin,
        base 2), the top and bottom 64 bits of p are all ones, generator 2.
        """
        for dhId in (DhId.MODP_768, DhId.MODP_1024, DhId.MODP_1536, DhId.MODP_2048,
                     DhId.MODP_3072, DhId.MODP_4096, DhId.MODP_6144, DhId.MODP_8192):
            group = MODP_GROUPS[dhId]
            bits = {1: 768, 2: 1024, 5: 1536, 14: 2048, 15: 3072, 16: 4096, 17: 6144,
                    18: 8192}[dhId]
            self.assertEqual(group.p.bit_length(), bits)
            self.assertEqual(group.p >> (bits - 64), 2 ** 64 - 1)
            self.assertEqual(group.p & (2 ** 64 - 1), 2 ** 64 - 1)
            self.assertEqual(group.g, 2)
            self.assertTrue(_isProbablePrime(group.p), dhId)
            self.assertTrue(_isProbablePrime((group.p - 1) // 2), dhId)

    def test_group14Prime(self):
        """
        RFC 3526 section 3, the 2048-bit prime, as printed there.
        """
        self.assertEqual(MODP_GROUPS[DhId.MODP_2048].p, int(
            "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"
            "29024E088A67CC74020BBEA63B139B22514A08798E3404DD"
            "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245"
            "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
            "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D"
            "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
            "83655D23DCA3AD961C62F356208552BB9ED529077096966D"
            "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
            "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9"
            "DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
            "15728E5A8AACAA68FFFFFFFFFFFFFFFF", 16))

    def test_subgroups(self):
        """
        RFC 5114 2.1-2.3: p and q prime, q divides p - 1, g has order q.
        """
        for dhId, (pBits, qBits) in ((DhId.MODP_1024_160, (1024, 160)),
                                     (DhId.MODP_2048_224, (2048, 224)),
                                     (DhId.MODP_2048_256, (2048, 256))):
            group = MODP_GROUPS[dhId]
            self.assertEqual((group.p.bit_length(), group.q.bit_length()), (pBits, qBits))
            self.assertTrue(_isProbablePrime(group.p))
            self.assertTrue(_isProbablePrime(group.q, (2, 3, 5, 7)))
            self.assertEqual((group.p - 1) % group.q, 0)
            self.assertEqual(pow(group.g, group.q, group.p), 1)
            self.assertNotEqual(group.g, 1)


class _RoundTripMixin:
    """
    generate/respond/complete agree, for one method.
    """

    dhId = None

    def setUp(self):
        self.method = kex.keyExchangeFor(self.dhId)

    def test_roundTrip(self):
        """
        The initiator's complete() and the responder's respond() give the
        same shared secret, of the announced sizes.
        """
        exchange = self.method.generate(counterRandom)
        self.assertEqual(len(exchange.publicData), self.method.initiatorDataSize)
        ourData, secret = self.method.respond(exchange.publicData, counterRandom)
        self.assertEqual(len(ourData), self.method.responderDataSize)
        self.assertEqual(exchange.complete(ourData), secret)
        self.assertEqual(len(secret), self.method.sharedSecretSize)

    def test_wrongLength(self):
        """
        RFC 7296 3.4: KE data of another length than the method's is
        refused, on both sides.
        """
        exchange = self.method.generate(counterRandom)
        for size in (0, self.method.responderDataSize - 1, self.method.responderDataSize + 1):
            self.assertRaises(InvalidKeyExchange, exchange.complete, b"\x05" * size)
        for size in (0, self.method.initiatorDataSize - 1, self.method.initiatorDataSize + 1):
            self.assertRaises(InvalidKeyExchange, self.method.respond, b"\x05" * size,
                              counterRandom)

    def test_wipe(self):
        """
        After wipe() the exchange holds no private value and cannot complete.
        """
        exchange = self.method.generate(counterRandom)
        ourData, _ = self.method.respond(exchange.publicData, counterRandom)
        exchange.wipe()
        self.assertRaises(CryptoError, exchange.complete, ourData)

    def test_repr(self):
        """
        The repr names the method only.
        """
        exchange = self.method.generate(counterRandom)
        self.assertEqual(repr(exchange), "<%s %s>" % (
            exchange.__class__.__name__, self.method.name))


class ModpRoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.MODP_2048

    def test_cryptographyStillComputesFFDH(self):
        """
        pyca/cryptography deprecates finite-field DH (setup.cfg pins a range
        that still has it): every MODP group still completes an exchange
        through it, with the same secret on both sides, and no error.
        """
        import cryptography

        for dhId in sorted(MODP_GROUPS):
            method = kex.keyExchangeFor(dhId)
            try:
                exchange = method.generate()
                responderData, responderSecret = method.respond(exchange.publicData)
                initiatorSecret = exchange.complete(responderData)
            except Exception as e:
                self.fail("cryptography %s no longer computes %s (%r): the MODP groups need "
                          "another implementation or a tighter pin" % (
                              cryptography.__version__, method.name, e))
            self.assertEqual(initiatorSecret, responderSecret)

    def test_range(self):
        """
        RFC 6989 2.1 and RFC 7296 3.4: y = 0, 1, p - 1, p, p + 1 and all
        ones (> p) are refused.
        """
        p = MODP_GROUPS[self.dhId].p
        exchange = self.method.generate(counterRandom)
        size = self.method.responderDataSize
        for y in (0, 1, p - 1, p, p + 1, 2 ** (8 * size) - 1):
            value = y.to_bytes(size, "big")
            self.assertRaises(InvalidKeyExchange, exchange.complete, value)
            self.assertRaises(InvalidKeyExchange, self.method.respond, value, counterRandom)
        self.assertEqual(len(exchange.complete((2).to_bytes(size, "big"))), size)

    def test_exponentFromRandom(self):
        """
        The private exponent takes the group's exponent size from the
        randomness source; a draw below 2 is drawn again.
        """
        source = FixedRandom(bytes(48), b"\x00" * 47 + b"\x01", b"\x00" * 47 + b"\x02")
        exchange = self.method.generate(source)
        self.assertEqual(source.requests, [48, 48, 48])
        self.assertEqual(int.from_bytes(exchange.publicData, "big"), 4)


class ModpSubgroupRoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.MODP_2048_256

    def test_subgroupCheck(self):
        """
        RFC 6989 2.2: for the RFC 5114 groups a value outside the order-q
        subgroup (here p - 1's neighbour 2, whose order is not q, and a
        generator of the whole group) is refused.
        """
        group = MODP_GROUPS[self.dhId]
        self.assertNotEqual(pow(2, group.q, group.p), 1)
        exchange = self.method.generate(counterRandom)
        value = (2).to_bytes(group.size, "big")
        self.assertRaises(InvalidKeyExchange, exchange.complete, value)
        self.assertRaises(InvalidKeyExchange, self.method.respond, value, counterRandom)


class ModpSmallRoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.MODP_1024_160


class ECP256RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.ECP_256

    def test_encoding(self):
        """
        RFC 5903 7: the KE data is x | y without the 0x04 prefix; the SEC 1
        form (65 bytes) is refused, as are an off-curve point, the all-zero
        value and coordinates equal to the field prime.
        """
        exchange = self.method.generate(counterRandom)
        other = self.method.generate(counterRandom).publicData
        self.assertEqual(len(other), 64)
        self.assertRaises(InvalidKeyExchange, exchange.complete, b"\x04" + other)
        offCurve = other[:-1] + bytes([other[-1] ^ 1])
        self.assertRaises(InvalidKeyExchange, exchange.complete, offCurve)
        self.assertRaises(InvalidKeyExchange, exchange.complete, bytes(64))
        p = 2 ** 256 - 2 ** 224 + 2 ** 192 + 2 ** 96 - 1
        # (x + p, y) names the same point modulo p but is not canonical.
        x = int.from_bytes(other[:32], "big")
        if x + p < 2 ** 256:
            self.assertRaises(InvalidKeyExchange, exchange.complete,
                              (x + p).to_bytes(32, "big") + other[32:])
        self.assertRaises(InvalidKeyExchange, exchange.complete,
                          p.to_bytes(32, "big") + other[32:])

    def test_scalarFromRandom(self):
        """
        The scalar is redrawn while it is 0 or not below the group order.
        """
        source = FixedRandom(bytes(32), b"\xff" * 32, b"\x00" * 31 + b"\x01")
        exchange = self.method.generate(source)
        self.assertEqual(source.requests, [32, 32, 32])
        # 1 * G
        self.assertEqual(exchange.publicData[:32], h(
            "6B17D1F2 E12C4247 F8BCE6E5 63A440F2 77037D81 2DEB33A0 F4A13945 D898C296"))


class ECP521RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.ECP_521


class BrainpoolRoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.BRAINPOOL_512


# RFC 6932 appendix A.1, the 224-bit curve (brainpoolP224r1): (dA, x_qA,
# y_qA, dB, x_qB, y_qB, x_Z, y_Z).  The same values are in strongSwan's
# ecpbp.c (tests/vectors, "ecp224bp"), which test_rfc6932Brainpool runs.
RFC6932_P224 = (
    "7C4B7A2C 8A4BAD1F BB7D79CC 0955DB7C 6A4660CA 64CC4778 159B495E",
    "B104A67A 6F6E85E1 4EC1825E 1539E8EC DBBF5849 22367DD8 8C6BDCF2",
    "46D782E7 FDB5F60C D8404301 AC5949C5 8EDB26BC 68BA0769 5B750A94",
    "63976D4A AE6CD0F6 DD18DEFE F55D9656 9D0507C0 3E74D648 6FFA28FB",
    "2A97089A 9296147B 71B21A4B 574E1278 245B536F 14D8C2B9 D07A874E",
    "9B900D7C 77A709A7 97276B8C A1BA61BB 95B546FC 29F862E4 4D59D25B",
    "312DFD98 783F9FB7 7B970494 5A73BEB6 DCCBE3B6 5D0F967D CAB574EB",
    "6F800811 D64114B1 C48C621A B3357CF9 3F496E42 38696A2A 012B3C98",
)

# RFC 5639 section 3.4, brainpoolP256r1: the same curve as cryptography's
# BrainpoolP256R1, to check the pure-Python arithmetic against OpenSSL's.
BRAINPOOL_P256R1 = ShortWeierstrassCurve(
    "brainpoolP256r1",
    p=0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
    a=0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9,
    b=0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6,
    gx=0x8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262,
    gy=0x547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997,
    order=0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
    cofactor=1)


def _affineMultiply(curve, k, point):
    """
    Textbook double-and-add in affine coordinates with explicit cases for
    the point at infinity (None), doubling and P + (-P): a reference for
    the ladder, sharing none of its code.
    """
    p = curve.p

    def add(P, Q):
        if P is None:
            return Q
        if Q is None:
            return P
        (x1, y1), (x2, y2) = P, Q
        if x1 == x2 and (y1 + y2) % p == 0:
            return None
        if P == Q:
            slope = (3 * x1 * x1 + curve.a) * pow(2 * y1, -1, p) % p
        else:
            slope = (y2 - y1) * pow(x2 - x1, -1, p) % p
        x3 = (slope * slope - x1 - x2) % p
        return x3, (slope * (x1 - x3) - y1) % p

    result = None
    for bit in bin(k)[2:]:
        result = add(result, result)
        if bit == "1":
            result = add(result, point)
    return result


def _scalars(label, count, size):
    """
    Deterministic pseudo-random scalars of C{size} bytes for the
    cross-checks.
    """
    return [int.from_bytes(hashlib.shake_256(b"%s %d" % (label, i)).digest(size), "big")
            for i in range(count)]


class WeierstrassCurveTests(SynchronousTestCase):
    """
    ikedtx.crypto._weierstrass: the brainpoolP224r1 domain parameters of RFC
    5639 section 3.3 and the ladder's arithmetic.
    """

    curve = BRAINPOOL_P224R1

    def test_domainParameters(self):
        """
        RFC 5639 2.2 and 3.3: p and n are 224-bit primes, the curve is
        non-singular, G is on it, n * G is the point at infinity, and with
        cofactor 1 the number of points n is within the Hasse bound
        |p + 1 - n| <= 2 sqrt(p).
        """
        c = self.curve
        self.assertEqual((c.p.bit_length(), c.order.bit_length(), c.cofactor), (224, 224, 1))
        self.assertEqual(c.coordinateSize, 28)
        bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
        self.assertTrue(_isProbablePrime(c.p, bases))
        self.assertTrue(_isProbablePrime(c.order, bases))
        self.assertNotEqual((4 * c.a ** 3 + 27 * c.b ** 2) % c.p, 0)
        self.assertTrue(c.contains(c.generator))
        self.assertIsNone(c.multiply(c.order, c.generator))
        self.assertLessEqual((c.p + 1 - c.order) ** 2, 4 * c.p)
        # RFC 5639 2.2: p = 3 mod 4, and a is not -3 (a "random" curve).
        self.assertEqual(c.p % 4, 3)
        self.assertNotEqual(c.a, c.p - 3)

    def test_rfc6932(self):
        """
        RFC 6932 appendix A.1: qA = dA * G, qB = dB * G and the whole shared
        point Z = dA * qB = dB * qA, both coordinates.
        """
        dA, xA, yA, dB, xB, yB, xZ, yZ = (int("".join(v.split()), 16) for v in RFC6932_P224)
        G = self.curve.generator
        self.assertEqual(self.curve.multiply(dA, G), (xA, yA))
        self.assertEqual(self.curve.multiply(dB, G), (xB, yB))
        self.assertEqual(self.curve.multiply(dA, (xB, yB)), (xZ, yZ))
        self.assertEqual(self.curve.multiply(dB, (xA, yA)), (xZ, yZ))

    def test_smallAndEdgeScalars(self):
        """
        The ladder agrees with affine double-and-add for 0, 1, 2, 3, n - 1
        (which gives -G) and n (the point at infinity), on both curves.
        """
        for c in (self.curve, BRAINPOOL_P256R1):
            G = c.generator
            for k in (0, 1, 2, 3, 4, 5, c.order - 2, c.order - 1, c.order):
                self.assertEqual(c.multiply(k, G), _affineMultiply(c, k, G), (c, k))
            self.assertEqual(c.multiply(c.order - 1, G), (G[0], c.p - G[1]))
            self.assertIsNone(c.multiply(0, G))

    def test_randomScalars(self):
        """
        The ladder agrees with affine double-and-add for pseudo-random
        scalars, including from a point other than G.
        """
        c = self.curve
        other = c.multiply(12345, c.generator)
        for k in _scalars(b"p224", 4, 28):
            self.assertEqual(c.multiply(k, c.generator), _affineMultiply(c, k, c.generator))
            self.assertEqual(c.multiply(k, other), _affineMultiply(c, k, other))

    def test_scalarRange(self):
        """
        The ladder runs over the bit length of n: a negative scalar or a
        longer one is a programming error.
        """
        G = self.curve.generator
        self.assertRaises(ValueError, self.curve.multiply, -1, G)
        self.assertRaises(ValueError, self.curve.multiply, 1 << 224, G)
        self.assertIsNotNone(self.curve.multiply((1 << 224) - 1, G))

    def test_contains(self):
        """
        contains() wants each coordinate in [0, p - 1] and the equation.
        """
        c = self.curve
        x, y = c.generator
        self.assertFalse(c.contains((x, y + 1)))
        self.assertFalse(c.contains((x, y + c.p)))
        self.assertFalse(c.contains((x + c.p, y)))
        self.assertFalse(c.contains((x, -y)))
        self.assertTrue(c.contains((x, c.p - y)))
        self.assertFalse(c.contains((0, 0)))


class BrainpoolP256CrossCheckTests(SynchronousTestCase):
    """
    The pure-Python arithmetic on RFC 5639's brainpoolP256r1 against
    cryptography (OpenSSL), which has that curve: public keys, ECDH shared
    secrets and the whole IKEv2 method.
    """

    def test_publicKeysAndShared(self):
        """
        d * G equals cryptography's public key for d, and dA * qB its ECDH
        x coordinate, for pseudo-random keys.
        """
        curve = BRAINPOOL_P256R1
        keys = [k % (curve.order - 1) + 1 for k in _scalars(b"p256", 6, 40)]
        for dA, dB in zip(keys[::2], keys[1::2]):
            privateA = ec.derive_private_key(dA, ec.BrainpoolP256R1())
            privateB = ec.derive_private_key(dB, ec.BrainpoolP256R1())
            for d, private in ((dA, privateA), (dB, privateB)):
                numbers = private.public_key().public_numbers()
                self.assertEqual(curve.multiply(d, curve.generator), (numbers.x, numbers.y))
            numbersB = privateB.public_key().public_numbers()
            shared = privateA.exchange(ec.ECDH(), privateB.public_key())
            self.assertEqual(curve.multiply(dA, (numbersB.x, numbersB.y))[0].to_bytes(32, "big"),
                             shared)

    def test_method(self):
        """
        A WeierstrassMethod on brainpoolP256r1 gives the same KE data and
        shared secrets as group 28 through cryptography, from the same
        random draws.
        """
        ours = kex.WeierstrassMethod(DhId.BRAINPOOL_256, "brainpool256-python",
                                     BRAINPOOL_P256R1)
        theirs = kex.keyExchangeFor(DhId.BRAINPOOL_256)
        for i in range(2):
            # Scalars already in [1, n - 1]: both methods take them as drawn.
            seedI, seedR = ((d % (BRAINPOOL_P256R1.order - 1) + 1).to_bytes(32, "big")
                            for d in _scalars(b"method %d" % (i,), 2, 40))
            exchange = ours.generate(FixedRandom(seedI))
            reference = theirs.generate(FixedRandom(seedI))
            self.assertEqual(exchange.publicData, reference.publicData)
            ourData, secret = ours.respond(reference.publicData, FixedRandom(seedR))
            theirData, theirSecret = theirs.respond(exchange.publicData, FixedRandom(seedR))
            self.assertEqual((ourData, secret), (theirData, theirSecret))
            self.assertEqual(exchange.complete(theirData), reference.complete(ourData))


class Brainpool224RoundTrip(_RoundTripMixin, SynchronousTestCase):
    """
    Group 27, brainpoolP224r1 (RFC 6954), in pure Python.
    """

    dhId = DhId.BRAINPOOL_224

    def _refused(self, value):
        exchange = self.method.generate(counterRandom)
        self.assertRaises(InvalidKeyExchange, exchange.complete, value)
        self.assertRaises(InvalidKeyExchange, self.method.respond, value, counterRandom)

    def test_sizes(self):
        """
        RFC 6954 4 (as RFC 5903 7): KE data x | y of 28 bytes each, shared
        secret the 28-byte x coordinate.
        """
        self.assertFalse(self.method.kem)
        self.assertEqual((self.method.initiatorDataSize, self.method.responderDataSize,
                          self.method.sharedSecretSize), (56, 56, 28))

    def test_invalidPeerValues(self):
        """
        RFC 6954 4 and RFC 5903 7: the SEC 1 form with its 0x04 prefix, a
        point off the curve, the all-zero value (the point at infinity has
        no x | y form, and (0, 0) is not on the curve), and coordinates of p
        or all ones are refused by both sides.
        """
        other = self.method.generate(counterRandom).publicData
        p = BRAINPOOL_P224R1.p
        self._refused(b"\x04" + other)
        self._refused(b"\x04" + other[:-1])
        self._refused(other[:-1] + bytes([other[-1] ^ 1]))
        self._refused(bytes(56))
        self._refused(p.to_bytes(28, "big") + other[28:])
        self._refused(other[:28] + p.to_bytes(28, "big"))
        self._refused(b"\xff" * 28 + other[28:])
        self._refused(other[:28] + b"\xff" * 28)
        self._refused(b"\xff" * 56)

    def test_unreducedCoordinates(self):
        """
        RFC 5903 7 (each coordinate an element of the field): x + p or
        y + p, which name a point on the curve modulo p, are refused.
        """
        c = BRAINPOOL_P224R1
        limit = 1 << 224
        foundX = foundY = False
        for k in range(1, 60):
            x, y = c.multiply(k, c.generator)
            if x + c.p < limit:
                self._refused((x + c.p).to_bytes(28, "big") + y.to_bytes(28, "big"))
                foundX = True
            if y + c.p < limit:
                self._refused(x.to_bytes(28, "big") + (y + c.p).to_bytes(28, "big"))
                foundY = True
            if foundX and foundY:
                break
        self.assertTrue(foundX and foundY)

    def test_scalarFromRandom(self):
        """
        The scalar takes 28 bytes from the source and is redrawn while it
        is 0 or not below n; 1 gives G (RFC 5639 3.3).
        """
        source = FixedRandom(bytes(28), b"\xff" * 28,
                             BRAINPOOL_P224R1.order.to_bytes(28, "big"), b"\x00" * 27 + b"\x01")
        exchange = self.method.generate(source)
        self.assertEqual(source.requests, [28, 28, 28, 28])
        gx, gy = BRAINPOOL_P224R1.generator
        self.assertEqual(exchange.publicData, gx.to_bytes(28, "big") + gy.to_bytes(28, "big"))

    def test_sharedAtInfinity(self):
        """
        A shared point at infinity is refused.  With cofactor 1 and a scalar
        in [1, n - 1] no valid peer value gives one, so the private scalar
        is set to n here to reach the check.
        """
        exchange = self.method.generate(counterRandom)
        peer = self.method.generate(counterRandom).publicData
        exchange._private = bytearray(BRAINPOOL_P224R1.order.to_bytes(28, "big"))
        self.assertRaises(InvalidKeyExchange, exchange.complete, peer)

    def test_wipeZeroes(self):
        """
        The private scalar is a bytearray, which wipe() zeroes.
        """
        exchange = self.method.generate(counterRandom)
        private = exchange._private
        self.assertIsInstance(private, bytearray)
        self.assertTrue(any(private))
        exchange.wipe()
        self.assertEqual(private, bytearray(28))


class ECP192RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.ECP_192


class X25519RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.CURVE25519


class X448RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.CURVE448


class MLKEM768RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.ML_KEM_768

    def test_sizes(self):
        """
        ML-KEM-768: 1184-byte encapsulation key, 1088-byte ciphertext.
        """
        self.assertEqual((self.method.initiatorDataSize, self.method.responderDataSize),
                         (1184, 1088))

    def test_seedFromRandom(self):
        """
        The initiator's key pair comes from a 64-byte seed d | z drawn from
        the randomness source (FIPS 203 ML-KEM.KeyGen_internal): the same
        seed gives the same key, another seed another key (the published
        keys for given seeds are checked in tests.test_crypto_mlkem).
        """
        source = FixedRandom(b"d" * 32 + b"z" * 32, b"d" * 32 + b"z" * 32, b"e" * 32 + b"z" * 32)
        first, second, third = (self.method.generate(source) for _ in range(3))
        self.assertEqual(source.requests, [64, 64, 64])
        self.assertEqual(first.publicData, second.publicData)
        self.assertNotEqual(first.publicData, third.publicData)

    def test_unreducedKey(self):
        """
        FIPS 203 7.2 modulus check: an encapsulation key with a coefficient
        of q or more is refused.
        """
        ek = bytearray(self.method.generate(counterRandom).publicData)
        ek[0] = 0xFF
        ek[1] |= 0x0F
        self.assertRaises(InvalidKeyExchange, self.method.respond, bytes(ek), counterRandom)


class MLKEM1024RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.ML_KEM_1024


class WycheproofXDHTests(SynchronousTestCase):
    """
    Wycheproof x25519_test.json and x448_test.json (subsets): low-order
    public values giving an all-zero shared secret must be refused (RFC 7748
    6, RFC 8031 2.3); valid vectors give their shared secret.
    """

    def _vectors(self, curve, dhId):
        method = kex.keyExchangeFor(dhId)
        refused = accepted = 0
        for t in load("wycheproof_kex")[curve]["tests"]:
            private = h(t["private"])
            exchange = method.generate(FixedRandom(private))
            public = h(t["public"])
            if "ZeroSharedSecret" in t["flags"] or t["result"] == "invalid":
                self.assertRaises(InvalidKeyExchange, exchange.complete, public)
                self.assertRaises(InvalidKeyExchange, method.respond, public,
                                  FixedRandom(private))
                refused += 1
            else:
                self.assertEqual(exchange.complete(public).hex(), t["shared"], t["tcId"])
                accepted += 1
        self.assertTrue(refused >= 10 and accepted >= 3, (refused, accepted))

    def test_x25519(self):
        self._vectors("x25519", DhId.CURVE25519)

    def test_x448(self):
        self._vectors("x448", DhId.CURVE448)


class WycheproofECDHTests(SynchronousTestCase):
    """
    Wycheproof ecdh_secp{256,384,521}r1_ecpoint_test.json (subsets): the
    invalid public points (invalid-curve attacks, wrong encodings) are
    refused; valid uncompressed points give the shared x coordinate.
    """

    def test_vectors(self):
        for curve, dhId, size in (("secp256r1", DhId.ECP_256, 32),
                                  ("secp384r1", DhId.ECP_384, 48),
                                  ("secp521r1", DhId.ECP_521, 66)):
            method = kex.keyExchangeFor(dhId)
            refused = 0
            for t in load("wycheproof_kex")["ecdh"][curve]["tests"]:
                d = int(t["private"], 16)
                private = d.to_bytes(size, "big")
                exchange = method.generate(FixedRandom(private))
                public = h(t["public"])
                # Our wire form is x | y: an uncompressed point loses its 0x04.
                wire = public[1:] if public[:1] == b"\x04" else public
                if t["result"] == "valid":
                    self.assertEqual(exchange.complete(wire).hex(), t["shared"],
                                     (curve, t["tcId"]))
                else:
                    self.assertRaises(InvalidKeyExchange, exchange.complete, wire)
                    refused += 1
            self.assertGreater(refused, 5, curve)


class RegistryTests(SynchronousTestCase):
    """
    keyExchangeFor() looks methods up by DhId.
    """

    def test_variableTime(self):
        """
        Only the pure-Python group (brainpoolP224r1) is marked as not
        constant-time; every method says which it is.
        """
        from ikedtx.crypto.kex import KEY_EXCHANGE_METHODS, variableTimeMethods

        self.assertEqual(variableTimeMethods(), frozenset({DhId.BRAINPOOL_224}))
        self.assertEqual({type(m.constantTime) for m in KEY_EXCHANGE_METHODS.values()}, {bool})

    def test_unsupported(self):
        for dhId in (DhId.NONE, DhId.GOST3410_2012_256, 1000, None):
            self.assertRaises(UnsupportedTransform, kex.keyExchangeFor, dhId)

    def test_all(self):
        """
        Every DhId but NONE, the GOST groups 33/34 (iked.conf(5) offers
        neither, and cryptography has no GOST) and ML-KEM-512 (35:
        cryptography lacks it, and ikedtx's pure-Python ML-KEM was removed)
        has a method; group 27 (brainpoolP224r1) is the pure-Python one.
        """
        missing = set(DhId) - set(kex.KEY_EXCHANGE_METHODS)
        self.assertEqual(missing, {DhId.NONE, DhId.GOST3410_2012_256, DhId.GOST3410_2012_512,
                                   DhId.ML_KEM_512})
        self.assertIsInstance(kex.keyExchangeFor(27), kex.WeierstrassMethod)
        self.assertEqual(kex.keyExchangeFor(DhId.BRAINPOOL_224).name, "brainpool224")

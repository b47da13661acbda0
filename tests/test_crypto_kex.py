"""
Tests for ikedtx.crypto.kex and ikedtx.crypto._modp: the key exchange
methods, their known answers and their validation of peer values.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.crypto import kex
from ikedtx.crypto._modp import MODP_GROUPS
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
            if dhId == DhId.BRAINPOOL_224:
                # cryptography has no brainpoolP224r1: group 27 is not offered.
                self.assertRaises(UnsupportedTransform, kex.keyExchangeFor, dhId)
                continue
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
        RFC 6932 appendix A test vectors for brainpool groups 28-30
        (group 27 is unsupported).
        """
        self._vectors("ecpbp", 3)

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


class ECP192RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.ECP_192


class X25519RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.CURVE25519


class X448RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.CURVE448


class MLKEM512RoundTrip(_RoundTripMixin, SynchronousTestCase):
    dhId = DhId.ML_KEM_512

    def test_sizes(self):
        """
        draft-ietf-ipsecme-ikev2-mlkem: KEi carries the 800-byte
        encapsulation key, KEr the 768-byte ciphertext.
        """
        self.assertTrue(self.method.kem)
        self.assertEqual((self.method.initiatorDataSize, self.method.responderDataSize),
                         (800, 768))

    def test_unreducedKey(self):
        """
        FIPS 203 7.2 modulus check: an encapsulation key with a coefficient
        of q or more is refused.
        """
        ek = bytearray(self.method.generate(counterRandom).publicData)
        ek[0] = 0xFF
        ek[1] |= 0x0F
        self.assertRaises(InvalidKeyExchange, self.method.respond, bytes(ek), counterRandom)

    def test_responderRandomness(self):
        """
        The pure-Python ML-KEM-512 responder takes its 32 bytes of
        encapsulation randomness from the source: the same m gives the same
        ciphertext.
        """
        ek = self.method.generate(counterRandom).publicData
        first = self.method.respond(ek, FixedRandom(b"m" * 32))
        second = self.method.respond(ek, FixedRandom(b"m" * 32))
        self.assertEqual(first, second)

    def test_wipeZeroes(self):
        """
        wipe() overwrites the pure-Python decapsulation key (a bytearray)
        with zeros before dropping it.
        """
        exchange = self.method.generate(counterRandom)
        dk = exchange._private
        self.assertIsInstance(dk, bytearray)
        self.assertTrue(any(dk))
        exchange.wipe()
        self.assertEqual(dk, bytearray(len(dk)))


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
        the randomness source (FIPS 203 ML-KEM.KeyGen_internal).
        """
        from ikedtx.crypto.mlkem import ML_KEM_768
        source = FixedRandom(b"d" * 32 + b"z" * 32)
        exchange = self.method.generate(source)
        self.assertEqual(exchange.publicData, ML_KEM_768.keyGen(b"d" * 32, b"z" * 32)[0])


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

    def test_unsupported(self):
        for dhId in (DhId.NONE, DhId.BRAINPOOL_224, 1000, None):
            self.assertRaises(UnsupportedTransform, kex.keyExchangeFor, dhId)

    def test_all(self):
        """
        Every DhId but NONE, group 27 (cryptography has no brainpoolP224r1)
        and the GOST groups 33/34 (iked.conf(5) offers none of them, and
        cryptography has no GOST) has a method.
        """
        missing = set(DhId) - set(kex.KEY_EXCHANGE_METHODS)
        self.assertEqual(missing, {DhId.NONE, DhId.BRAINPOOL_224, DhId.GOST3410_2012_256, DhId.GOST3410_2012_512})

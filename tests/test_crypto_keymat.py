"""
Tests for ikedtx.crypto.keymat: prf+, SKEYSEED, SK_*, Child SA KEYMAT,
rekey and RFC 9370 derivations, AUTH octets.
"""

import hashlib
import hmac as stdhmac

from cryptography.hazmat.primitives import hashes
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.crypto import keymat
from ikedtx.crypto._util import wipe
from ikedtx.crypto.errors import AuthenticationError, InvalidKeyLength
from ikedtx.crypto.prf import HMACPRF, prfFor
from ikedtx.wire.constants import EncrId, IntegId, PrfId
from tests.cryptovectors import h, strongswan

# NIST ACVP-Server, gen-val/src/crypto/test/NIST.CVP.ACVTS.Libraries.Crypto.IKEv2.Tests/
# IKEv2Tests.cs (usnistgov/ACVP-Server), test cases "IKEv2 SHA2-224" and
# "IKEv2 SHA2-256": (hash, DKM bits, Ni, Nr, g^ir, g^ir (new), SPIi, SPIr,
# SKEYSEED, DKM, DKM(Child SA), DKM(Child SA D-H), SKEYSEED(Rekey)).
ACVP_IKEV2 = [
    (hashes.SHA224, 1056,
     "1df77d01277c2e29deeaeb353e2c967b", "ebff4bf4945f9734db7b3af4aa7ed796",
     "e2fcb85717960683ff1700d05718b182a5b0be7133a02ad5b0a4a270",
     "31c5534a6d2e30b97e4d12526166aae0cb8e1d40c630e506252074ca",
     "48765233291b2a42", "f5a3ee5d92548a2a",
     "18ba6f5e429fb65e1ec26d90f929d67b8727e30f049f20ae66d56c9a",
     "370393be2f27d4b1dac17e8ab2ab1267985bdd38382a93a837caf1dbbe8cb0d313d2b6579eda3f552ae5e9a4"
     "d1f50d5e9285d8a6d8afbd398de5ab977383443af2a776618c80c52314d05f5faefbef95e1bf04bbe3879fe4"
     "1d6f6ffd6d6a13b8853944f6c1201055abcec41005583a00269a301747f827e42eff906bf1f86d52fd3870c7",
     "ab9ed337fd24bdfa7d493534ee958f0f187ed2927eb12e6ffc2b45b2469ec7f0420e325d865dda9e2dd86dc5"
     "3b95f0ecd45a09125359f652f5d64b1dfa8f2dfc6c08209cad70e841546e64eaa900e8132beeb7b65f994e89"
     "34dd6834478ecd03658a691c4ab5bd1e27c5cff7eba343027065a17333574f914e334b1ef20b08e3293b29b0",
     "87831a36e13eff758e1a961caa049cdf0696b9b939bc10a4f76857a04b6f0bfee01b2e54105d0a8bf2ae45bc"
     "c7f1e561e7001e9f58e6a747a4d6b930410d8dff677fbb09e22cbb89d7e19f0b9b2c7043471e11a2bbed576e"
     "2da738e7875575e4bfedfcf39730c36d78ce9656f50f0099786203128a20a80f5b4fbc145f12ccce3ff143dd",
     "e7b26b386ccbd433d333a872d90cbf99b14fdab6b0e8717f5ff3965a"),
    (hashes.SHA256, 3072,
     "0a58fea9c1d4fee2e74e1aad6fb02dd5f318eb127465a112be8dc3c04d5dba62eae708f9dc1b2362afd6ba4b"
     "da3cf5000f4979fbcbadbcfda9291593829c4e905c21db0c2ee15175ce77a8a0dadf25c7f175bc53fd91b636"
     "a9b3c50b203de9b9d6dc463dcb4048f101e26498ceaed3afbcd931394a7e099392dfff82e5d6fa85c2e8a8ab"
     "90ad363a66795dc32798847e405acd87988140f973058917273a6b0bafb962c75e2b1a21e79c08beeb82168b"
     "f8b4b57f3dce867bf7862a7b8acbc21be838021913daf64340c055ed17aaf7b6e1d0ca33ae890ddbdb83f4e6"
     "15aad5e3bff58c3db70bac81a0dfbabe5391fc62bca4659e22a0741e01d8d06e67d9bb41",
     "e4fdfa68df6171d9eaff8b7b5ad31e7c6098d259f3397c9854cbefe7449b0864c1df16ddece8b26567560f8d"
     "59182a44c19149c2d0d72606a160021ade3d23c7c6936c91a4b6bec37adf38cfc84b851c68dcee06f81306f6"
     "3abbefc07e231e3058c49437a557df617eac01663593d2a3e594699284c0a35eae6931492ccb2a43db72a600"
     "a3899205d681d2b76b1280e456339bb10e0c584aecfdae31c77a4c40dbcb345f782ac32835d4c220c1e97254"
     "ded6a40075dd717b00b69c86a49e801773026536ae02d58a649827f1ba67610ee936dffd11c9d5a915663191"
     "6a0a0046ec0ba42f56f2a18de83d5d71a985b0cc9eec2c06b3d907ca58454419f374069d",
     "9d469de41b4739c7dd01f19aa94f17e48150ae9dbede94832142db19",
     "c2987b0767006c3b9aea491bfed1646a3d7194639492b8d45b23b383",
     "c8de93111750e409", "32d51b33508997fa",
     "eec13ac67c2e072abb684ab4e7b6ce3e7f400af8b96bed48e113497ed337f8d4",
     "bc83518f63b762874ac57947cdfae33a8d9724df0b83ee4b6df38c23fc2ad829f4d70b5a68dd1f5a52416f09"
     "758638aedf919c09a17c5298cdb703bb75b1005cba0109739aaa4efd2fe7534c95ad05e546e4419931270edd"
     "cab68ac1589d7fde47f5b9e8d5b614cb24ec3caf515497a9e99ee6f1b318ff153b539ef071dcaff9b41945dc"
     "b780700d69e5dc888a91de195c52825badfd0ab4c33cec71ab5c2b4badefe5455455ce5d8ae91721a2091bcc"
     "cc1514e69482c9c8da1d9f0f187eedda916393570a8c0a8dfabc26d8ed31e8ea47662515972a22d11d692bc1"
     "fac6395aecd82a01ab78daafcd6f3070b1201f158a19331b5d21ceee66fccd2ea37bc07648b9539a52dbf797"
     "af53e31a0e8706dd86cf5081ebabd095f281d23c222dd3bc5abf06869017ca8f751cafcc85abea6ba88c139d"
     "1f32a12f7f486cf57eae5d85551b97f3963616d8f597c70efa98c1e1fa369fb77a80b1ec5fe533890672c455"
     "1172eab1b7fd68ad08c4d4c69f2a867302065ca730aa6915bc2cfb6d93820977",
     "c725012285d56e53244a9baaaf95abfca543708d333a3f3a86ba660e00edd4d489bcd631819fda0413382edd"
     "9f53d1ed718e056c2ad91d38de90f06cd434de70141d051c021e7ddd6e4137946b4770dca59a4decabdd8668"
     "52eb557fdd995646613ff2923f5f23aa58c8fbd5ad52cf2eac9bda97faad5596695f4a747a0f1cc6a1f78b21"
     "81138fb19ac24574d2e6b3a40d6e688abb919a27d793b76568ec66bd099f6f476b705c1472d774a1516a1131"
     "1b887688f36649e24227640ea8d8666b9f452217e7103b6f0a92b6adb8fbda650ba58d6ac13ac6f6b6361a5d"
     "1c44f1e9f22196c96295115c5d01a120e7265962d20353a049286908da776c2165f706a16f43d85fcd319f89"
     "c4386340bcb8ed10df38345cb68af719abaf997e9789a5f19a392dcecd78168ba282f0b30555c7a47031a315"
     "6d12d7158aa41b863b8394d30fec63120e89cbc5750eed7786f7d5961b1f2e6faca641ed776d2211bee757b6"
     "8b77f94056172553715da9fbd1c9a8728f28a2f3c9714a4917490132562484cd",
     "140a1f2a3c94318ece6edfa8c63f37d8d45982de8b6cbfe34011150db0253e34de3796d4aa579954a0bbf234"
     "794eb6e7ece2a8f91100f5507df4ee8e66c7813d4c0ff64d484a3494c54b0d9c605ea24234a49a010ce5c352"
     "feb9e1060c8c787229466296cdc9d11bb9d221ed2bb39544572464254ec02a0fbe777b07402c775eb6d3e53c"
     "d16214c707f851942cc7da92a811b6c5c82f29d9fc3751b0ebff9898fb14372402a6989ffb9cc32dfe7e2cea"
     "32fd882e09804d7fea34ce3b5eb6f303e095c48a452b0a3eccada81af22195ebbaad289aeabdab074c94e751"
     "496bde39d868ebf1d693f36d1c3c672bbb59c9f77aeb68de57d77da231b7f13d6d277f600c3d3086c4de7b3a"
     "59127f4cb9c118935574f30e1b7c88b52c8c3531fdbd38ee3d14c69e81803ced6e7501fa0180f6d110b64827"
     "2002dc1ad5bf09dc83188011da1d48632e0d2453c8abdd8e9fd32a576aeb9ddfb0a024f674441c20a950d9bd"
     "8cd7b30933cc0d8e87b55e8aa9d913579b410417b3acc13c14bf73c457327873",
     "05f796c8df322a7e33283ae5fa2f376d8d5efa0ac3745fc548e430031424c121"),
]

# libreswan/libreswan, lib/libswan ike_alg_test_prf.c, "CAVP: IKEv2 key
# derivation with HMAC-SHA1" (Ni, Nr, g^ir, g^ir (new), SPIi, SPIr,
# SKEYSEED, SKEYSEED(Rekey), DKM of 132 bytes).
LIBRESWAN_CAVP_SHA1 = (
    "32b50d5f4a3763f3", "9206a04b26564cb1",
    "4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52",
    "863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330",
    "34c9e7c188868785", "3ff77d760d2b2199",
    "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7",
    "63e81194946ebd05df7df5ebf5d8750056bf1f1d",
    "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002"
    "a2a63080e514a062768b76606f9fa5e992204fc5a670bde3f10d6b027113936a"
    "5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd1119"
    "8af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435"
    "a7a56cc4")


class CAVPTests(SynchronousTestCase):
    """
    The NIST CAVP/ACVP IKEv2 KDF (SP 800-135 section 4.1.2) sample values.
    """

    def test_acvp(self):
        """
        ACVP-Server's IKEv2 SHA2-224 and SHA2-256 cases: SKEYSEED, DKM =
        prf+(SKEYSEED, Ni | Nr | SPIi | SPIr), DKM(Child SA) = prf+(SK_d,
        Ni | Nr), DKM(Child SA D-H) = prf+(SK_d, g^ir (new) | Ni | Nr) and
        SKEYSEED(Rekey) = prf(SK_d, g^ir (new) | Ni | Nr), SK_d being the
        first prf-output bytes of DKM.
        """
        for (hashClass, bits, ni, nr, gir, girNew, spii, spir, seed, dkm, dkmChild,
             dkmChildDH, seedRekey) in ACVP_IKEV2:
            prf = HMACPRF(0, "prf-hmac-" + hashClass.name, hashClass)
            ni, nr, gir, girNew = h(ni), h(nr), h(gir), h(girNew)
            length = bits // 8
            skeyseed = keymat.skeyseed(prf, ni, nr, gir)
            self.assertEqual(skeyseed.hex(), seed)
            derived = keymat.prfPlus(prf, skeyseed, ni + nr + h(spii) + h(spir), length)
            self.assertEqual(derived.hex(), dkm)
            skD = derived[:prf.outputSize]
            self.assertEqual(keymat.childSAKeymat(prf, skD, ni, nr, length).hex(), dkmChild)
            self.assertEqual(keymat.childSAKeymat(prf, skD, ni, nr, length, [girNew]).hex(),
                             dkmChildDH)
            self.assertEqual(keymat.rekeySkeyseed(prf, skD, ni, nr, girNew).hex(), seedRekey)

    def test_libreswanSHA1(self):
        """
        The CAVP HMAC-SHA1 case in libreswan's ike_alg_test_prf.c: SKEYSEED,
        DKM and SKEYSEED(Rekey) with the registered HMAC-SHA1 PRF.
        """
        ni, nr, gir, girNew, spii, spir, seed, seedRekey, dkm = LIBRESWAN_CAVP_SHA1
        prf = prfFor(PrfId.HMAC_SHA1)
        skeyseed = keymat.skeyseed(prf, h(ni), h(nr), h(gir))
        self.assertEqual(skeyseed.hex(), seed)
        derived = keymat.prfPlus(prf, skeyseed, h(ni + nr + spii + spir), 132)
        self.assertEqual(derived.hex(), dkm)
        self.assertEqual(keymat.rekeySkeyseed(prf, derived[:20], h(ni), h(nr), h(girNew)).hex(),
                         seedRekey)

    def test_strongswanPrfPlus(self):
        """
        strongSwan's kdf_prf_plus.c: CAVP SP 800-135 prf+ vectors (key =
        SKEYSEED, seed = Ni | Nr | SPIi | SPIr) and one derived from RFC 4868.
        """
        names = {"PRF_HMAC_SHA2_256": PrfId.HMAC_SHA2_256,
                 "PRF_HMAC_SHA2_384": PrfId.HMAC_SHA2_384,
                 "PRF_HMAC_SHA2_512": PrfId.HMAC_SHA2_512, "PRF_HMAC_SHA1": PrfId.HMAC_SHA1}
        count = 0
        for name, v in strongswan("kdf_prf_plus").items():
            prf = prfFor(names[v["arg.prf"]])
            out = h(v["out"])
            self.assertEqual(keymat.prfPlus(prf, h(v["key"]), h(v["salt"]), len(out)), out,
                             name)
            count += 1
        self.assertEqual(count, 7)


class PrfPlusTests(SynchronousTestCase):
    """
    prf+ (RFC 7296 2.13).
    """

    def test_definition(self):
        """
        T1 = prf(K, S | 0x01), T2 = prf(K, T1 | S | 0x02), truncated.
        """
        prf = prfFor(PrfId.HMAC_SHA2_256)
        t1 = stdhmac.new(b"K", b"S\x01", hashlib.sha256).digest()
        t2 = stdhmac.new(b"K", t1 + b"S\x02", hashlib.sha256).digest()
        out = keymat.prfPlus(prf, b"K", b"S", 40)
        self.assertIsInstance(out, bytearray)
        self.assertEqual(bytes(out), (t1 + t2)[:40])

    def test_limit(self):
        """
        The counter is one byte: at most 255 blocks.
        """
        prf = prfFor(PrfId.HMAC_SHA1)
        self.assertEqual(len(keymat.prfPlus(prf, b"K", b"S", 255 * 20)), 255 * 20)
        self.assertRaises(ValueError, keymat.prfPlus, prf, b"K", b"S", 255 * 20 + 1)


class IKESAKeysTests(SynchronousTestCase):
    """
    SKEYSEED and SK_* (RFC 7296 2.14).
    """

    ni = bytes(range(32))
    nr = bytes(range(100, 132))
    spiI = b"\x11" * 8
    spiR = b"\x22" * 8

    def test_layout(self):
        """
        SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr are consecutive
        slices of prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) with the PRF's key
        size, the integrity key size and the cipher key size.
        """
        prf = prfFor(PrfId.HMAC_SHA2_384)
        seed = keymat.skeyseed(prf, self.ni, self.nr, b"g^ir")
        self.assertEqual(bytes(seed), stdhmac.new(self.ni + self.nr, b"g^ir",
                                                  hashlib.sha384).digest())
        keys = keymat.ikeSAKeys(prf, seed, self.ni, self.nr, self.spiI, self.spiR,
                                EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128)
        stream = keymat.prfPlus(prf, seed, self.ni + self.nr + self.spiI + self.spiR,
                                48 + 32 + 32 + 16 + 16 + 48 + 48)
        expected = []
        offset = 0
        for size in (48, 32, 32, 16, 16, 48, 48):
            expected.append(stream[offset:offset + size])
            offset += size
        self.assertEqual([keys.skD, keys.skAi, keys.skAr, keys.skEi, keys.skEr, keys.skPi,
                          keys.skPr], expected)
        for name in IKESAKeys_names:
            self.assertIsInstance(getattr(keys, name), bytearray)

    def test_aead(self):
        """
        An AEAD cipher has no SK_a*, and its SK_e* include the salt
        (RFC 5282 7.1: AES-GCM-256 takes 36 bytes).
        """
        prf = prfFor(PrfId.HMAC_SHA2_256)
        keys = keymat.ikeSAKeys(prf, b"s" * 32, self.ni, self.nr, self.spiI, self.spiR,
                                EncrId.AES_GCM_16, 256, None)
        self.assertEqual((len(keys.skAi), len(keys.skEi), len(keys.skD)), (0, 36, 32))
        self.assertRaises(InvalidKeyLength, keymat.ikeSAKeys, prf, b"s" * 32, self.ni,
                          self.nr, self.spiI, self.spiR, EncrId.AES_GCM_16, 256,
                          IntegId.HMAC_SHA1_96)
        self.assertRaises(InvalidKeyLength, keymat.ikeSAKeys, prf, b"s" * 32, self.ni,
                          self.nr, self.spiI, self.spiR, EncrId.AES_CBC, 256, IntegId.NONE)

    def test_fixedKeyPRF(self):
        """
        RFC 7296 2.14: with AES-XCBC/AES-CMAC only the first 64 bits of Ni
        and of Nr form the SKEYSEED key; SK_d and SK_p* are 16 bytes.
        """
        for prfId in (PrfId.AES128_XCBC, PrfId.AES128_CMAC):
            prf = prfFor(prfId)
            seed = keymat.skeyseed(prf, self.ni, self.nr, b"g^ir")
            self.assertEqual(bytes(seed), prf.compute(self.ni[:8] + self.nr[:8], b"g^ir"))
            keys = keymat.ikeSAKeys(prf, seed, self.ni, self.nr, self.spiI, self.spiR,
                                    EncrId.AES_CBC, 128, IntegId.AES_XCBC_96)
            self.assertEqual((len(keys.skD), len(keys.skAi), len(keys.skPr)), (16, 16, 16))

    def test_wipeAndRepr(self):
        """
        wipe() zeroes every key; the repr gives lengths only.
        """
        prf = prfFor(PrfId.HMAC_SHA1)
        keys = keymat.ikeSAKeys(prf, b"s" * 20, self.ni, self.nr, self.spiI, self.spiR,
                                EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96)
        skD = keys.skD
        self.assertIn("skD=20 bytes", repr(keys))
        self.assertNotIn(skD.hex(), repr(keys))
        keys.wipe()
        self.assertEqual(skD, bytearray(20))
        self.assertFalse(any(keys.skPr))


IKESAKeys_names = ("skD", "skAi", "skAr", "skEi", "skEr", "skPi", "skPr")


class ChildSATests(SynchronousTestCase):
    """
    Child SA KEYMAT (RFC 7296 2.17, RFC 9370 2.2.4) and its split.
    """

    prf = prfFor(PrfId.HMAC_SHA2_256)
    skD = b"d" * 32
    ni = b"i" * 16
    nr = b"r" * 16

    def test_split(self):
        """
        Initiator-to-responder keys first, encryption (with salt) before
        integrity.
        """
        keys = keymat.childSAKeys(self.prf, self.skD, self.ni, self.nr, EncrId.AES_CTR, 128,
                                  IntegId.HMAC_SHA2_256_128)
        stream = keymat.childSAKeymat(self.prf, self.skD, self.ni, self.nr, 2 * (20 + 32))
        self.assertEqual(keys.encryptionInitiator, stream[:20])
        self.assertEqual(keys.integrityInitiator, stream[20:52])
        self.assertEqual(keys.encryptionResponder, stream[52:72])
        self.assertEqual(keys.integrityResponder, stream[72:])
        self.assertEqual(keys.outbound(True), (stream[:20], stream[20:52]))
        self.assertEqual(keys.inbound(True), (stream[52:72], stream[72:]))
        self.assertEqual(keys.outbound(False), keys.inbound(True))

    def test_pfsAndAdditional(self):
        """
        RFC 9370 2.2.4: KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | SK(2)),
        SK(0) being g^ir (new) of the CREATE_CHILD_SA (empty without one).
        """
        out = keymat.childSAKeymat(self.prf, self.skD, self.ni, self.nr, 64,
                                   [b"G", b"K1", b"K2"])
        self.assertEqual(out, keymat.prfPlus(self.prf, self.skD, b"G" + self.ni + self.nr + b"K1K2",
                                             64))
        out = keymat.childSAKeymat(self.prf, self.skD, self.ni, self.nr, 64, [b"", b"K1"])
        self.assertEqual(out, keymat.prfPlus(self.prf, self.skD, self.ni + self.nr + b"K1", 64))

    def test_sizes(self):
        """
        Key material per direction for the kernel: GCM carries a 4-byte salt,
        CCM 3, GMAC 4, AH has no encryption key, ESP NULL no key at all.
        """
        cases = [((EncrId.AES_GCM_16, 256, None), (36, 0)),
                 ((EncrId.AES_CCM_16, 128, None), (19, 0)),
                 ((EncrId.NULL_AUTH_AES_GMAC, 128, None), (20, 0)),
                 ((EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_512_256), (32, 64)),
                 ((EncrId.TRIPLE_DES, None, IntegId.HMAC_MD5_96), (24, 16)),
                 ((EncrId.NULL, None, IntegId.HMAC_SHA1_96), (0, 20)),
                 ((None, None, IntegId.HMAC_SHA2_256_128), (0, 32)),
                 ((EncrId.CHACHA20_POLY1305, None, IntegId.NONE), (36, 0))]
        for args, sizes in cases:
            self.assertEqual(keymat.childSAKeySizes(*args), sizes, args)
        self.assertRaises(InvalidKeyLength, keymat.childSAKeySizes, EncrId.AES_GCM_16, 128,
                          IntegId.HMAC_SHA1_96)

    def test_wipe(self):
        keys = keymat.childSAKeys(self.prf, self.skD, self.ni, self.nr, EncrId.AES_GCM_16, 128)
        self.assertEqual(len(keys.integrityInitiator), 0)
        keys.wipe()
        self.assertFalse(any(keys.encryptionInitiator) or any(keys.encryptionResponder))
        self.assertNotIn("=b", repr(keys))


class RekeyTests(SynchronousTestCase):
    """
    IKE SA rekey (RFC 7296 2.18) and RFC 9370 additional key exchanges.
    """

    prf = prfFor(PrfId.HMAC_SHA2_256)

    def test_rekey(self):
        """
        SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr).
        """
        self.assertEqual(bytes(keymat.rekeySkeyseed(self.prf, b"D" * 32, b"ni", b"nr", b"G")),
                         stdhmac.new(b"D" * 32, b"Gninr", hashlib.sha256).digest())

    def test_additionalKeyExchange(self):
        """
        RFC 9370 2.2.2: SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr), then
        new SK_* from prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr).
        """
        seed1 = keymat.additionalKeyExchangeSkeyseed(self.prf, b"D" * 32, b"ni", b"nr", b"K1")
        self.assertEqual(bytes(seed1), stdhmac.new(b"D" * 32, b"K1ninr",
                                                   hashlib.sha256).digest())
        keys = keymat.ikeSAKeys(self.prf, seed1, b"ni", b"nr", b"i" * 8, b"r" * 8,
                                EncrId.AES_GCM_16, 128, None)
        seed2 = keymat.additionalKeyExchangeSkeyseed(self.prf, keys.skD, b"ni", b"nr", b"K2")
        self.assertNotEqual(seed1, seed2)


class AuthTests(SynchronousTestCase):
    """
    AUTH octets and shared-key AUTH (RFC 7296 2.15).
    """

    prf = prfFor(PrfId.HMAC_SHA2_256)

    def test_signedOctets(self):
        """
        RealMessage | Nonce | prf(SK_p, IDx').
        """
        octets = keymat.signedOctets(self.prf, b"MSG", b"NONCE", b"P" * 32, b"\x02\x00\x00\x00id")
        self.assertEqual(octets, b"MSGNONCE" + stdhmac.new(
            b"P" * 32, b"\x02\x00\x00\x00id", hashlib.sha256).digest())

    def test_intAuth(self):
        """
        RFC 9242 3.3.2: IntAuth links chain through the PRF and are
        appended to the signed octets.
        """
        first = keymat.intermediateAuth(self.prf, b"P" * 32, b"", b"A1", b"P1")
        self.assertEqual(first, stdhmac.new(b"P" * 32, b"A1P1", hashlib.sha256).digest())
        second = keymat.intermediateAuth(self.prf, b"Q" * 32, first, b"A2")
        self.assertEqual(second, stdhmac.new(b"Q" * 32, first + b"A2", hashlib.sha256).digest())
        octets = keymat.signedOctets(self.prf, b"MSG", b"N", b"P" * 32, b"ID", intAuth=b"IA")
        self.assertTrue(octets.endswith(b"IA"))
        self.assertEqual(len(octets), 3 + 1 + 32 + 2)

    def test_sharedKey(self):
        """
        AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>),
        checked in constant time by verifySharedKeyAuth.
        """
        inner = stdhmac.new(b"secret", b"Key Pad for IKEv2", hashlib.sha256).digest()
        expected = stdhmac.new(inner, b"octets", hashlib.sha256).digest()
        self.assertEqual(keymat.sharedKeyAuth(self.prf, b"secret", b"octets"), expected)
        keymat.verifySharedKeyAuth(self.prf, b"secret", b"octets", expected)
        self.assertRaises(AuthenticationError, keymat.verifySharedKeyAuth, self.prf,
                          b"secreT", b"octets", expected)
        self.assertRaises(AuthenticationError, keymat.verifySharedKeyAuth, self.prf,
                          b"secret", b"octets", expected[:-1])

    def test_sharedKeyXCBC(self):
        """
        With AES-XCBC the pre-shared key of any length is a PRF key as RFC
        4434 says (padded or reduced), not truncated.
        """
        prf = prfFor(PrfId.AES128_XCBC)
        short = keymat.sharedKeyAuth(prf, b"pw", b"octets")
        long = keymat.sharedKeyAuth(prf, b"a much longer pre-shared key", b"octets")
        self.assertEqual(len(short), 16)
        self.assertNotEqual(long, keymat.sharedKeyAuth(prf, b"a much longer pr", b"octets"))


class WipeTests(SynchronousTestCase):
    def test_wipe(self):
        """
        wipe() zeroes bytearrays and skips what it cannot change.
        """
        a = bytearray(b"secret")
        wipe(a, b"immutable", None)
        self.assertEqual(a, bytearray(6))

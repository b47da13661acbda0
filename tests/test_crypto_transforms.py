"""
Tests for the transform registries: ikedtx.crypto.prf, integ, encr,
transforms.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ikedtx.crypto import encr, integ, prf, transforms
from ikedtx.crypto.errors import IntegrityError, InvalidKeyLength, UnsupportedTransform
from ikedtx.crypto.interfaces import (
    IEncryptionAlgorithm, IIntegrityAlgorithm, IKeyExchangeMethod, IPseudoRandomFunction)
from ikedtx.wire.constants import (
    DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType)
from tests.cryptovectors import h, strongswan

_PRF_NAMES = {
    "PRF_HMAC_MD5": PrfId.HMAC_MD5, "PRF_HMAC_SHA1": PrfId.HMAC_SHA1,
    "PRF_HMAC_SHA2_256": PrfId.HMAC_SHA2_256, "PRF_HMAC_SHA2_384": PrfId.HMAC_SHA2_384,
    "PRF_HMAC_SHA2_512": PrfId.HMAC_SHA2_512, "PRF_AES128_XCBC": PrfId.AES128_XCBC,
    "PRF_AES128_CMAC": PrfId.AES128_CMAC,
}
_INTEG_NAMES = {
    "AUTH_HMAC_MD5_96": IntegId.HMAC_MD5_96, "AUTH_HMAC_SHA1_96": IntegId.HMAC_SHA1_96,
    "AUTH_HMAC_SHA2_256_128": IntegId.HMAC_SHA2_256_128,
    "AUTH_HMAC_SHA2_384_192": IntegId.HMAC_SHA2_384_192,
    "AUTH_HMAC_SHA2_512_256": IntegId.HMAC_SHA2_512_256,
    "AUTH_AES_XCBC_96": IntegId.AES_XCBC_96, "AUTH_AES_CMAC_96": IntegId.AES_CMAC_96,
}


class _VectorMixin:
    """
    Run the PRF ("p") and integrity ("s") vectors of one strongSwan file.
    """

    vectorFile = None

    def _prfVectors(self):
        return [(name, v) for name, v in strongswan(self.vectorFile).items() if "out" in v]

    def _macVectors(self):
        return [(name, v) for name, v in strongswan(self.vectorFile).items() if "mac" in v
                and v["alg"] in _INTEG_NAMES]

    def test_prfVectors(self):
        """
        Every PRF vector of the file gives the published output.
        """
        vectors = self._prfVectors()
        for name, v in vectors:
            p = prf.prfFor(_PRF_NAMES[v["alg"]])
            self.assertEqual(p.compute(h(v["key"]), h(v["seed"])).hex(), v["out"], name)
            self.assertEqual(len(h(v["out"])), p.outputSize, name)

    def test_macVectors(self):
        """
        Every truncated-ICV vector gives the published ICV, and verify()
        accepts it and refuses it with one bit flipped.
        """
        for name, v in self._macVectors():
            i = integ.integrityFor(_INTEG_NAMES[v["alg"]])
            key, data, mac = h(v["key"]), h(v["data"]), h(v["mac"])
            # strongSwan compares the first icvSize bytes of a longer MAC.
            self.assertGreaterEqual(len(mac), i.icvSize)
            mac = mac[:i.icvSize]
            self.assertEqual(i.compute(key, data), mac, name)
            i.verify(key, data, mac)
            bad = bytearray(mac)
            bad[-1] ^= 1
            self.assertRaises(IntegrityError, i.verify, key, data, bytes(bad))
            self.assertRaises(IntegrityError, i.verify, key, data, mac[:-1])


class RFC4868Tests(_VectorMixin, SynchronousTestCase):
    """
    RFC 4868 2.7.1 (PRF-HMAC-SHA-256/384/512) and 2.7.2 (HMAC-SHA-256-128,
    -384-192, -512-256 truncated ICVs), as in strongSwan's sha2_hmac.c.
    """

    vectorFile = "sha2_hmac"

    def test_counts(self):
        """
        The file holds PRF and ICV vectors for all three hashes.
        """
        self.assertEqual(len(self._prfVectors()), 15)
        self.assertEqual(len(self._macVectors()), 9)


class RFC2202Tests(_VectorMixin, SynchronousTestCase):
    """
    RFC 2202 HMAC-MD5 and HMAC-SHA1 truncated to 96 bits (RFC 2403, 2404).
    """

    vectorFile = "md5_hmac"


class RFC2202SHA1Tests(RFC2202Tests):
    vectorFile = "sha1_hmac"


class AESXCBCTests(_VectorMixin, SynchronousTestCase):
    """
    RFC 3566 section 4 (AES-XCBC-MAC-96, our own implementation) and RFC
    4434 section 4 (AES-XCBC-PRF-128 with 10, 16 and 18-byte keys).
    """

    vectorFile = "aes_xcbc"

    def test_variableKeys(self):
        """
        RFC 4434: the 10 and 18-byte key vectors are among those checked.
        """
        sizes = sorted(len(h(v["key"])) for _, v in self._prfVectors())
        self.assertIn(10, sizes)
        self.assertIn(18, sizes)

    def test_keySize(self):
        """
        AES-XCBC-MAC-96 takes exactly a 16-byte key.
        """
        self.assertRaises(InvalidKeyLength, integ.integrityFor(IntegId.AES_XCBC_96).compute,
                          b"k" * 15, b"")


class AESCMACTests(_VectorMixin, SynchronousTestCase):
    """
    RFC 4493 (AES-CMAC), RFC 4615 (AES-CMAC-PRF-128 with 10, 16, 18-byte
    keys; shorter keys are CMAC'd, not padded) and RFC 4494 (AES-CMAC-96).
    """

    vectorFile = "aes_cmac"

    def test_variableKeys(self):
        """
        RFC 4615 section 4: 10 and 18-byte keys are among those checked.
        """
        sizes = sorted(len(h(v["key"])) for _, v in self._prfVectors())
        self.assertIn(10, sizes)
        self.assertIn(18, sizes)


class RegistryTests(SynchronousTestCase):
    """
    The registries hold providers of their interfaces, keyed by IANA id,
    and cover iked.conf(5)'s CRYPTO TRANSFORMS.
    """

    def test_interfaces(self):
        """
        Every registered transform provides its interface.
        """
        for p in prf.PRFS.values():
            verifyObject(IPseudoRandomFunction, p)
        for i in integ.INTEGRITY.values():
            verifyObject(IIntegrityAlgorithm, i)
        for e in encr.ENCRYPTION.values():
            verifyObject(IEncryptionAlgorithm, e)
        for k in transforms.KEY_EXCHANGE_METHODS.values():
            verifyObject(IKeyExchangeMethod, k)

    def test_keyedById(self):
        """
        Each registry's key is its provider's transformId.
        """
        for registry in (prf.PRFS, integ.INTEGRITY, encr.ENCRYPTION,
                         transforms.KEY_EXCHANGE_METHODS):
            for key, provider in registry.items():
                self.assertEqual(key, provider.transformId)

    def test_ikedTransforms(self):
        """
        iked.conf(5) CRYPTO TRANSFORMS: its auth, prf, enc and group
        keywords all map to registered transforms.
        """
        for i in (IntegId.HMAC_MD5_96, IntegId.HMAC_SHA1_96, IntegId.HMAC_SHA2_256_128,
                  IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_512_256):
            self.assertTrue(transforms.isSupported(TransformType.INTEG, i))
            self.assertTrue(transforms.isSupported(TransformType.INTEG, i, protocol=ProtocolId.ESP))
        for p in (PrfId.HMAC_MD5, PrfId.HMAC_SHA1, PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA2_384,
                  PrfId.HMAC_SHA2_512):
            self.assertTrue(transforms.isSupported(TransformType.PRF, p))
        ike = [(EncrId.TRIPLE_DES, None), (EncrId.AES_CBC, 128), (EncrId.AES_CBC, 192),
               (EncrId.AES_CBC, 256), (EncrId.AES_GCM_16, 128), (EncrId.AES_GCM_16, 256),
               (EncrId.AES_GCM_12, 128), (EncrId.AES_GCM_12, 256)]
        esp = ike + [(EncrId.AES_CTR, 128), (EncrId.AES_CTR, 192), (EncrId.AES_CTR, 256),
                     (EncrId.AES_GCM_16, 192), (EncrId.BLOWFISH, 160), (EncrId.CAST, 128),
                     (EncrId.CHACHA20_POLY1305, None), (EncrId.NULL_AUTH_AES_GMAC, 128),
                     (EncrId.NULL_AUTH_AES_GMAC, 192), (EncrId.NULL_AUTH_AES_GMAC, 256),
                     (EncrId.NULL, None)]
        for encrId, keyLength in ike:
            self.assertTrue(transforms.isSupported(TransformType.ENCR, encrId, keyLength),
                            (encrId, keyLength))
        for encrId, keyLength in esp:
            self.assertTrue(transforms.isSupported(TransformType.ENCR, encrId, keyLength,
                                                   ProtocolId.ESP), (encrId, keyLength))
        for group in (1, 2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 25, 26, 28, 29, 30, 31):
            self.assertTrue(transforms.isSupported(TransformType.DH, group), group)
        for esn in (EsnId.ESN, EsnId.NO_ESN):
            self.assertTrue(transforms.isSupported(TransformType.ESN, esn, protocol=ProtocolId.ESP))

    def test_keyMaterialSizes(self):
        """
        iked.conf(5) key lengths include the salt/nonce: aes-128-ctr 160,
        aes-256-gcm 288, chacha20-poly1305 288, aes-192-gmac 224 bits; 3des
        168 effective bits in 24 bytes; CCM carries a 3-byte salt (RFC 4309).
        """
        cases = [(EncrId.AES_CTR, 128, 20), (EncrId.AES_CTR, 256, 36),
                 (EncrId.AES_GCM_16, 256, 36), (EncrId.AES_GCM_12, 128, 20),
                 (EncrId.CHACHA20_POLY1305, None, 36), (EncrId.NULL_AUTH_AES_GMAC, 192, 28),
                 (EncrId.TRIPLE_DES, None, 24), (EncrId.AES_CBC, 192, 24),
                 (EncrId.AES_CCM_8, 128, 19), (EncrId.BLOWFISH, 160, 20), (EncrId.NULL, None, 0)]
        for encrId, keyLength, size in cases:
            self.assertEqual(encr.encryptionFor(encrId).keyMaterialSize(keyLength), size,
                             (encrId, keyLength))

    def test_keyLengthAttribute(self):
        """
        AES needs a Key Length attribute of 128, 192 or 256 (RFC 7296 3.3.5);
        3DES and ChaCha20-Poly1305 take none.
        """
        aes = encr.encryptionFor(EncrId.AES_CBC)
        self.assertFalse(aes.validKeyLength(None))
        self.assertFalse(aes.validKeyLength(64))
        self.assertRaises(InvalidKeyLength, aes.keyMaterialSize, 512)
        self.assertTrue(encr.encryptionFor(EncrId.TRIPLE_DES).validKeyLength(None))
        self.assertFalse(encr.encryptionFor(EncrId.CHACHA20_POLY1305).validKeyLength(128))
        self.assertFalse(transforms.isSupported(TransformType.ENCR, EncrId.AES_CBC, None))

    def test_ikeOrEspOnly(self):
        """
        ESP-only transforms (iked: [ESP only]) are not usable for IKE, the
        PRF is IKE-only, ESN is ESP-only.
        """
        for encrId, keyLength in ((EncrId.NULL, None), (EncrId.NULL_AUTH_AES_GMAC, 128),
                                  (EncrId.BLOWFISH, 128)):
            self.assertFalse(transforms.isSupported(TransformType.ENCR, encrId, keyLength))
        self.assertFalse(transforms.isSupported(TransformType.INTEG, IntegId.AES_128_GMAC))
        self.assertFalse(transforms.isSupported(TransformType.PRF, PrfId.HMAC_SHA1,
                                                protocol=ProtocolId.ESP))
        self.assertFalse(transforms.isSupported(TransformType.ESN, EsnId.ESN))

    def test_unsupported(self):
        """
        Unknown ids raise UnsupportedTransform (a LookupError) and are not
        supported.
        """
        for lookup, bad in ((prf.prfFor, PrfId.HMAC_TIGER), (integ.integrityFor, IntegId.DES_MAC),
                            (encr.encryptionFor, EncrId.DES_IV64), (encr.encryptionFor, 1000)):
            self.assertRaises(UnsupportedTransform, lookup, bad)
        self.assertRaises(UnsupportedTransform, transforms.transformFor, None, 1)
        self.assertRaises(LookupError, prf.prfFor, 99)
        self.assertFalse(transforms.isSupported(TransformType.DH, DhId.GOST3410_2012_256))
        self.assertFalse(transforms.isSupported(TransformType.DH, DhId.NONE))
        self.assertFalse(transforms.isSupported(99, 1))
        self.assertTrue(transforms.isSupported(TransformType.INTEG, IntegId.NONE))

    def test_additionalKeyExchangeTypes(self):
        """
        RFC 9370 ADDKE transform types look up the same methods as DH.
        """
        for t in (TransformType.ADDKE1, TransformType.ADDKE7):
            self.assertIs(transforms.transformFor(t, DhId.ML_KEM_768),
                          transforms.transformFor(TransformType.DH, DhId.ML_KEM_768))

    def test_prfKeySizes(self):
        """
        RFC 7296 2.14: SK_d and SK_p* take the PRF's preferred key size: the
        output size for HMAC, 16 for the AES PRFs, which have a fixed key.
        """
        self.assertEqual(prf.prfFor(PrfId.HMAC_SHA2_384).preferredKeySize, 48)
        self.assertFalse(prf.prfFor(PrfId.HMAC_SHA2_384).fixedKeySize)
        for p in (PrfId.AES128_XCBC, PrfId.AES128_CMAC):
            self.assertEqual(prf.prfFor(p).preferredKeySize, 16)
            self.assertTrue(prf.prfFor(p).fixedKeySize)

    def test_reprHasNoKeys(self):
        """
        The providers' reprs name the algorithm only.
        """
        self.assertEqual(repr(prf.prfFor(PrfId.HMAC_SHA1)), "<PRF prf-hmac-sha1>")
        self.assertEqual(repr(integ.integrityFor(IntegId.HMAC_SHA1_96)),
                         "<Integrity hmac-sha1-96>")

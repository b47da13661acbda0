# -*- test-case-name: tests.test_crypto_transforms -*-
"""
Encryption transforms (IKEv2 transform type 1), registered by IANA EncrId.

These are descriptors: key lengths, salt, IV, ICV and padding sizes, and
whether IKE (L{ikedtx.crypto.sk}) or only ESP (the kernel) can use the
transform.  The key material of a transform is its key followed by its salt
or nonce (RFC 3686 3.1 and RFC 5930 for CTR, RFC 4106 8.1 and RFC 5282 for
GCM, RFC 4309 7.1 for CCM, RFC 4543 for GMAC, RFC 7634 for ChaCha20-Poly1305).
"""

from zope.interface import implementer

from ikedtx.crypto.errors import InvalidKeyLength, UnsupportedTransform
from ikedtx.crypto.interfaces import IEncryptionAlgorithm
from ikedtx.wire.constants import EncrId

AES_KEY_LENGTHS = (128, 192, 256)


@implementer(IEncryptionAlgorithm)
class EncryptionAlgorithm:
    """
    One encryption transform.  See L{IEncryptionAlgorithm} for the
    attributes.
    """

    def __init__(self, transformId, name, keyLengths=(), defaultKeyLength=None,
                 saltSize=0, ivSize=0, blockSize=1, icvSize=0, aead=False,
                 authenticationOnly=False, ikeUsable=False, espUsable=True):
        self.transformId = transformId
        self.name = name
        self.keyLengths = tuple(keyLengths)
        self.defaultKeyLength = defaultKeyLength
        self.saltSize = saltSize
        self.ivSize = ivSize
        self.blockSize = blockSize
        self.icvSize = icvSize
        self.aead = aead
        self.authenticationOnly = authenticationOnly
        self.ikeUsable = ikeUsable
        self.espUsable = espUsable

    def validKeyLength(self, keyLength):
        if self.keyLengths:
            return keyLength in self.keyLengths
        return keyLength is None or keyLength == self.defaultKeyLength

    def keySize(self, keyLength):
        if not self.validKeyLength(keyLength):
            raise InvalidKeyLength("%s does not take key length %r" % (self.name, keyLength))
        bits = keyLength if keyLength is not None else (self.defaultKeyLength or 0)
        return bits // 8

    def keyMaterialSize(self, keyLength):
        return self.keySize(keyLength) + self.saltSize

    def __repr__(self):
        return "<Encryption %s>" % (self.name,)


def _aesCCM(transformId, icvSize):
    return EncryptionAlgorithm(
        transformId, "aes-ccm-%d" % icvSize, AES_KEY_LENGTHS, saltSize=3, ivSize=8,
        icvSize=icvSize, aead=True, ikeUsable=True)


def _aesGCM(transformId, icvSize):
    return EncryptionAlgorithm(
        transformId, "aes-gcm-%d" % icvSize, AES_KEY_LENGTHS, saltSize=4, ivSize=8,
        icvSize=icvSize, aead=True, ikeUsable=True)


def _camelliaCCM(transformId, icvSize):
    return EncryptionAlgorithm(
        transformId, "camellia-ccm-%d" % icvSize, AES_KEY_LENGTHS, saltSize=3, ivSize=8,
        icvSize=icvSize, aead=True)


ENCRYPTION = {
    EncrId.TRIPLE_DES: EncryptionAlgorithm(
        EncrId.TRIPLE_DES, "3des", defaultKeyLength=192, ivSize=8, blockSize=8,
        ikeUsable=True),
    # iked: "cast 128 bits", "blowfish 160 bits" [ESP only]; RFC 2451 ranges.
    EncrId.CAST: EncryptionAlgorithm(
        EncrId.CAST, "cast", tuple(range(40, 129, 8)), defaultKeyLength=128, ivSize=8,
        blockSize=8),
    EncrId.BLOWFISH: EncryptionAlgorithm(
        EncrId.BLOWFISH, "blowfish", tuple(range(40, 449, 8)), defaultKeyLength=128,
        ivSize=8, blockSize=8),
    EncrId.NULL: EncryptionAlgorithm(
        EncrId.NULL, "null", defaultKeyLength=0, authenticationOnly=True),
    EncrId.AES_CBC: EncryptionAlgorithm(
        EncrId.AES_CBC, "aes-cbc", AES_KEY_LENGTHS, ivSize=16, blockSize=16, ikeUsable=True),
    EncrId.AES_CTR: EncryptionAlgorithm(
        EncrId.AES_CTR, "aes-ctr", AES_KEY_LENGTHS, saltSize=4, ivSize=8, ikeUsable=True),
    EncrId.AES_CCM_8: _aesCCM(EncrId.AES_CCM_8, 8),
    EncrId.AES_CCM_12: _aesCCM(EncrId.AES_CCM_12, 12),
    EncrId.AES_CCM_16: _aesCCM(EncrId.AES_CCM_16, 16),
    EncrId.AES_GCM_8: _aesGCM(EncrId.AES_GCM_8, 8),
    EncrId.AES_GCM_12: _aesGCM(EncrId.AES_GCM_12, 12),
    EncrId.AES_GCM_16: _aesGCM(EncrId.AES_GCM_16, 16),
    EncrId.NULL_AUTH_AES_GMAC: EncryptionAlgorithm(
        EncrId.NULL_AUTH_AES_GMAC, "aes-gmac", AES_KEY_LENGTHS, saltSize=4, ivSize=8,
        icvSize=16, aead=True, authenticationOnly=True),
    EncrId.CAMELLIA_CBC: EncryptionAlgorithm(
        EncrId.CAMELLIA_CBC, "camellia-cbc", AES_KEY_LENGTHS, ivSize=16, blockSize=16),
    EncrId.CAMELLIA_CTR: EncryptionAlgorithm(
        EncrId.CAMELLIA_CTR, "camellia-ctr", AES_KEY_LENGTHS, saltSize=4, ivSize=8),
    EncrId.CAMELLIA_CCM_8: _camelliaCCM(EncrId.CAMELLIA_CCM_8, 8),
    EncrId.CAMELLIA_CCM_12: _camelliaCCM(EncrId.CAMELLIA_CCM_12, 12),
    EncrId.CAMELLIA_CCM_16: _camelliaCCM(EncrId.CAMELLIA_CCM_16, 16),
    EncrId.CHACHA20_POLY1305: EncryptionAlgorithm(
        EncrId.CHACHA20_POLY1305, "chacha20-poly1305", defaultKeyLength=256, saltSize=4,
        ivSize=8, icvSize=16, aead=True, ikeUsable=True),
}


def encryptionFor(encrId):
    """
    Return the L{IEncryptionAlgorithm} for C{encrId}, or raise
    L{UnsupportedTransform}.
    """
    try:
        return ENCRYPTION[encrId]
    except (KeyError, TypeError):
        raise UnsupportedTransform("no encryption algorithm with id %r" % (encrId,))

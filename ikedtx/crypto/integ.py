# -*- test-case-name: tests.test_crypto_transforms -*-
"""
Integrity transforms (IKEv2 transform type 3), registered by IANA IntegId.

HMAC-*-96/128/192/256 (RFC 2403, 2404, 4868) and AES-CMAC-96 (RFC 4494) come
from pyca/cryptography; AES-XCBC-MAC-96 (RFC 3566) uses L{prf.aesXCBCMAC}.
AES-GMAC (RFC 4543) is listed for ESP negotiation only: its key material
includes a 4-byte salt.
"""

from cryptography.hazmat.primitives import hashes, hmac
from zope.interface import implementer

from ikedtx.crypto._util import constantTimeEqual
from ikedtx.crypto.errors import IntegrityError, InvalidKeyLength, UnsupportedTransform
from ikedtx.crypto.interfaces import IIntegrityAlgorithm
from ikedtx.crypto.prf import aesCMAC, aesXCBCMAC
from ikedtx.wire.constants import IntegId


class _Integrity:
    ikeUsable = True
    espUsable = True

    def verify(self, key, data, icv):
        if len(icv) != self.icvSize or not constantTimeEqual(self.compute(key, data), icv):
            raise IntegrityError("ICV mismatch")

    def _checkKey(self, key):
        if len(key) != self.keySize:
            raise InvalidKeyLength("%s takes a %d-byte key" % (self.name, self.keySize))

    def __repr__(self):
        return "<Integrity %s>" % (self.name,)


@implementer(IIntegrityAlgorithm)
class HMACIntegrity(_Integrity):
    """
    HMAC truncated to C{icvSize} bytes; the key is as long as the hash output.
    """

    def __init__(self, transformId, name, hashAlgorithm, icvSize):
        self.transformId = transformId
        self.name = name
        self.hashAlgorithm = hashAlgorithm
        self.keySize = hashAlgorithm.digest_size
        self.icvSize = icvSize

    def compute(self, key, data):
        self._checkKey(key)
        h = hmac.HMAC(bytes(key), self.hashAlgorithm())
        h.update(bytes(data))
        return h.finalize()[:self.icvSize]


@implementer(IIntegrityAlgorithm)
class AESMACIntegrity(_Integrity):
    """
    AES-XCBC-MAC-96 or AES-CMAC-96: a 16-byte key, a 12-byte ICV.
    """

    keySize = 16
    icvSize = 12

    def __init__(self, transformId, name, mac):
        self.transformId = transformId
        self.name = name
        self._mac = mac

    def compute(self, key, data):
        self._checkKey(key)
        return self._mac(key, data)[:self.icvSize]


@implementer(IIntegrityAlgorithm)
class ESPOnlyIntegrity(_Integrity):
    """
    An integrity transform this ikedtx negotiates for ESP/AH only (the kernel
    computes it): only its key material size is known here.
    """

    ikeUsable = False

    def __init__(self, transformId, name, keySize, icvSize):
        self.transformId = transformId
        self.name = name
        self.keySize = keySize
        self.icvSize = icvSize

    def compute(self, key, data):
        raise UnsupportedTransform("%s is not usable for IKE" % (self.name,))

    def verify(self, key, data, icv):
        raise UnsupportedTransform("%s is not usable for IKE" % (self.name,))


INTEGRITY = {
    IntegId.HMAC_MD5_96: HMACIntegrity(IntegId.HMAC_MD5_96, "hmac-md5-96", hashes.MD5, 12),
    IntegId.HMAC_SHA1_96: HMACIntegrity(IntegId.HMAC_SHA1_96, "hmac-sha1-96", hashes.SHA1, 12),
    IntegId.HMAC_SHA2_256_128: HMACIntegrity(
        IntegId.HMAC_SHA2_256_128, "hmac-sha2-256-128", hashes.SHA256, 16),
    IntegId.HMAC_SHA2_384_192: HMACIntegrity(
        IntegId.HMAC_SHA2_384_192, "hmac-sha2-384-192", hashes.SHA384, 24),
    IntegId.HMAC_SHA2_512_256: HMACIntegrity(
        IntegId.HMAC_SHA2_512_256, "hmac-sha2-512-256", hashes.SHA512, 32),
    IntegId.AES_XCBC_96: AESMACIntegrity(IntegId.AES_XCBC_96, "aes-xcbc-96", aesXCBCMAC),
    IntegId.AES_CMAC_96: AESMACIntegrity(IntegId.AES_CMAC_96, "aes-cmac-96", aesCMAC),
    IntegId.AES_128_GMAC: ESPOnlyIntegrity(IntegId.AES_128_GMAC, "aes-128-gmac", 16 + 4, 16),
    IntegId.AES_192_GMAC: ESPOnlyIntegrity(IntegId.AES_192_GMAC, "aes-192-gmac", 24 + 4, 16),
    IntegId.AES_256_GMAC: ESPOnlyIntegrity(IntegId.AES_256_GMAC, "aes-256-gmac", 32 + 4, 16),
}


def integrityFor(integId):
    """
    Return the L{IIntegrityAlgorithm} for C{integId}, or raise
    L{UnsupportedTransform} (also for NONE, which has no algorithm).
    """
    try:
        return INTEGRITY[integId]
    except (KeyError, TypeError):
        raise UnsupportedTransform("no integrity algorithm with id %r" % (integId,))

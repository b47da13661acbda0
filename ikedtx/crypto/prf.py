# -*- test-case-name: tests.test_crypto_transforms -*-
"""
Pseudo-random functions (IKEv2 transform type 2), registered by IANA PrfId.

HMAC comes from the standard library's OpenSSL binding (C{hmac.digest}'s,
one C call: cryptography's HMAC object costs a few dozen Python steps per
call, and prf+ calls the PRF a dozen times per IKE SA); AES-CMAC from
pyca/cryptography.  It has no AES-XCBC-MAC, so
L{aesXCBCMAC} implements RFC 3566 on top of cryptography's AES block cipher
(ECB on single blocks); it is checked against the RFC 3566 and RFC 4434 test
vectors in tests.test_crypto_transforms.

The AES PRFs take keys of any length (RFC 4434 and RFC 4615 section 3):
the PSK, the nonces and SK_d reach them with other lengths than 16.
"""

# The standard library's one-shot HMAC (OpenSSL's HMAC() in one C call
# behind one Python frame; the public name, not _hashlib's private one).
from hmac import digest as _hmacDigest

from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from zope.interface import implementer

from ikedtx.crypto.errors import UnsupportedTransform
from ikedtx.crypto.interfaces import IPseudoRandomFunction
from ikedtx.crypto._util import xorBytes
from ikedtx.wire.constants import PrfId

_AES_BLOCK = 16


@implementer(IPseudoRandomFunction)
class HMACPRF:
    """
    prf = HMAC with a hash (RFC 2104; RFC 4868 for SHA-2).

    @ivar hashAlgorithm: the cryptography hash class.
    """

    fixedKeySize = False

    def __init__(self, transformId, name, hashAlgorithm):
        self.transformId = transformId
        self.name = name
        self.hashAlgorithm = hashAlgorithm
        self.outputSize = hashAlgorithm.digest_size
        self.preferredKeySize = hashAlgorithm.digest_size
        # The same algorithm by its OpenSSL name ("sha256").
        self._digestName = hashAlgorithm.name.replace("-", "")

    def compute(self, key, data):
        return _hmacDigest(key, data, self._digestName)

    def __repr__(self):
        return "<PRF %s>" % (self.name,)


def _aesBlock(key, block):
    encryptor = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def aesXCBCMAC(key, data):
    """
    AES-XCBC-MAC (RFC 3566 section 4) of C{data} with a 16-byte C{key}: the
    full 128-bit value (AES-XCBC-MAC-96 truncates it to 12 bytes).
    """
    key = bytes(key)
    if len(key) != _AES_BLOCK:
        raise ValueError("AES-XCBC-MAC takes a 128-bit key")
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    k1 = encryptor.update(b"\x01" * _AES_BLOCK)
    k2 = encryptor.update(b"\x02" * _AES_BLOCK)
    k3 = encryptor.update(b"\x03" * _AES_BLOCK)
    encryptor.finalize()
    data = bytes(data)
    # Every block but the last goes through plain CBC under K1; the last is
    # XORed with K2 if it is complete and with K3 after 10* padding if not
    # (an empty message is one incomplete block).
    if data and len(data) % _AES_BLOCK == 0:
        head, last, finalKey = data[:-_AES_BLOCK], data[-_AES_BLOCK:], k2
    else:
        cut = len(data) - len(data) % _AES_BLOCK
        head, last = data[:cut], data[cut:]
        last = last + b"\x80" + b"\x00" * (_AES_BLOCK - len(last) - 1)
        finalKey = k3
    cbc = Cipher(algorithms.AES(k1), modes.ECB()).encryptor()
    e = bytes(_AES_BLOCK)
    for i in range(0, len(head), _AES_BLOCK):
        e = cbc.update(xorBytes(head[i:i + _AES_BLOCK], e))
    e = cbc.update(xorBytes(xorBytes(last, e), finalKey))
    cbc.finalize()
    return e


def aesCMAC(key, data):
    """
    AES-CMAC (RFC 4493) of C{data} with a 16-byte key, from cryptography.
    """
    c = cmac.CMAC(algorithms.AES(bytes(key)))
    c.update(bytes(data))
    return c.finalize()


@implementer(IPseudoRandomFunction)
class AESXCBCPRF:
    """
    PRF_AES128_XCBC, RFC 4434: a 16-byte key is used as is, a shorter one is
    padded with zeros, a longer one is first reduced with
    AES-XCBC-PRF-128(0^128, key).
    """

    transformId = PrfId.AES128_XCBC
    name = "prf-aes128-xcbc"
    outputSize = 16
    preferredKeySize = 16
    fixedKeySize = True

    def _key(self, key):
        key = bytes(key)
        if len(key) == 16:
            return key
        if len(key) < 16:
            return key + bytes(16 - len(key))
        return aesXCBCMAC(bytes(16), key)

    def compute(self, key, data):
        return aesXCBCMAC(self._key(key), data)

    def __repr__(self):
        return "<PRF %s>" % (self.name,)


@implementer(IPseudoRandomFunction)
class AESCMACPRF:
    """
    PRF_AES128_CMAC, RFC 4615: a 16-byte key is used as is; any other length
    (shorter too, unlike RFC 4434) is first reduced with AES-CMAC(0^128, key).
    """

    transformId = PrfId.AES128_CMAC
    name = "prf-aes128-cmac"
    outputSize = 16
    preferredKeySize = 16
    fixedKeySize = True

    def _key(self, key):
        key = bytes(key)
        if len(key) == 16:
            return key
        return aesCMAC(bytes(16), key)

    def compute(self, key, data):
        return aesCMAC(self._key(key), data)

    def __repr__(self):
        return "<PRF %s>" % (self.name,)


PRFS = {
    PrfId.HMAC_MD5: HMACPRF(PrfId.HMAC_MD5, "prf-hmac-md5", hashes.MD5),
    PrfId.HMAC_SHA1: HMACPRF(PrfId.HMAC_SHA1, "prf-hmac-sha1", hashes.SHA1),
    PrfId.HMAC_SHA2_256: HMACPRF(PrfId.HMAC_SHA2_256, "prf-hmac-sha2-256", hashes.SHA256),
    PrfId.HMAC_SHA2_384: HMACPRF(PrfId.HMAC_SHA2_384, "prf-hmac-sha2-384", hashes.SHA384),
    PrfId.HMAC_SHA2_512: HMACPRF(PrfId.HMAC_SHA2_512, "prf-hmac-sha2-512", hashes.SHA512),
    PrfId.AES128_XCBC: AESXCBCPRF(),
    PrfId.AES128_CMAC: AESCMACPRF(),
}


def prfFor(prfId):
    """
    Return the L{IPseudoRandomFunction} for C{prfId}, or raise
    L{UnsupportedTransform}.
    """
    try:
        return PRFS[prfId]
    except (KeyError, TypeError):
        raise UnsupportedTransform("no PRF with id %r" % (prfId,))

# -*- test-case-name: tests.test_crypto_sk -*-
"""
Protection of the Encrypted (SK, RFC 7296 3.14) and Encrypted Fragment (SKF,
RFC 7383) payloads, one L{ISKCipher} per direction.

Payload data layout: C{IV | ciphertext | ICV}, the ciphertext covering the
inner payloads, the Padding and the Pad Length byte.

 - AES-CBC and 3DES-CBC with an integrity transform: the IV is a fresh
   random block for each message (RFC 7296 3.14: unpredictable); the ICV is
   computed over the whole message up to the ICV - C{aad | IV | ciphertext}
   - and checked before anything is decrypted.
 - AES-CTR (RFC 5930): counter block = nonce (last 4 bytes of SK_e) | IV (8)
   | block counter (4, from 1); integrity as above.
 - AES-GCM (RFC 5282, 8/12/16-byte ICV), AES-CCM (RFC 5282, 8/12/16-byte
   ICV, 3-byte salt) and ChaCha20-Poly1305 (RFC 7634): nonce = salt | IV,
   the associated data is C{aad} (IKE header and SK header up to the IV).

IVs of CTR and the AEAD modes only need to be unique for the key (RFC 5282
3.1, RFC 7634 2, RFC 5930 2): each L{ISKCipher} uses an 8-byte counter that
starts at a value drawn from the randomness source and is incremented for
every message (a wrap, after 2**64 messages, is refused).  Keys are fresh
for each IKE SA, so a counter never repeats under one key.

We pad only as far as the cipher's block needs (nothing beyond the Pad
Length byte for stream and AEAD modes, as RFC 7634 appendix B shows); the
receiver accepts any padding that fits, whatever its contents (RFC 7296
3.14).
"""

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, ChaCha20Poly1305
from zope.interface import implementer

from ikedtx.crypto._util import defaultRandom, requireRandom, wipe
from ikedtx.crypto.encr import encryptionFor
from ikedtx.crypto.errors import (
    CryptoError, IntegrityError, InvalidKeyLength, UnsupportedTransform)
from ikedtx.crypto.integ import integrityFor
from ikedtx.crypto.interfaces import ISKCipher
from ikedtx.wire.constants import EncrId, IntegId

_COUNTER_LIMIT = 2 ** 64


class _IVCounter:
    """
    Unique 8-byte IVs: a counter starting at a random value.
    """

    def __init__(self, random):
        self._next = int.from_bytes(requireRandom(random, 8), "big")
        self._used = 0

    def next(self):
        if self._used >= _COUNTER_LIMIT:
            raise CryptoError("IV space exhausted; rekey")
        iv = self._next.to_bytes(8, "big")
        self._next = (self._next + 1) % _COUNTER_LIMIT
        self._used += 1
        return iv


class SKCipher:
    """
    Base of the L{ISKCipher} providers, and their factory.

    @ivar encryption: the L{IEncryptionAlgorithm}.
    @ivar ivSize: bytes of IV.
    @ivar icvSize: bytes of ICV.
    @ivar blockSize: padding alignment.
    """

    def __init__(self, encryption):
        self.encryption = encryption
        self.ivSize = encryption.ivSize
        self.blockSize = encryption.blockSize
        self._wiped = False

    @classmethod
    def forTransforms(cls, encrId, keyLength, integId, encryptionKey, integrityKey=b"",
                      random=defaultRandom):
        """
        Return the L{ISKCipher} for one direction: C{encryptionKey} is SK_ei
        or SK_er (salt included), C{integrityKey} SK_ai or SK_ar (empty for
        AEAD, whose C{integId} is None or NONE).  C{keyLength} is the Key
        Length attribute in bits (None if absent).  C{random} supplies CBC
        IVs and the starting value of the IV counter.
        """
        encr = encryptionFor(encrId)
        if not encr.ikeUsable:
            raise UnsupportedTransform("%s cannot protect IKE messages" % (encr.name,))
        if len(encryptionKey) != encr.keyMaterialSize(keyLength):
            raise InvalidKeyLength("%s with key length %r takes %d bytes of key material" % (
                encr.name, keyLength, encr.keyMaterialSize(keyLength)))
        if encr.aead:
            if integId not in (None, IntegId.NONE) or len(integrityKey):
                raise UnsupportedTransform("AEAD %s takes no integrity transform" % (encr.name,))
            return AEADSKCipher(encr, encryptionKey, random)
        if integId in (None, IntegId.NONE):
            raise UnsupportedTransform("%s needs an integrity transform" % (encr.name,))
        integ = integrityFor(integId)
        if not integ.ikeUsable:
            raise UnsupportedTransform("%s cannot protect IKE messages" % (integ.name,))
        if len(integrityKey) != integ.keySize:
            raise InvalidKeyLength("%s takes a %d-byte key" % (integ.name, integ.keySize))
        return CipherIntegritySKCipher(encr, encryptionKey, integ, integrityKey, random)

    @classmethod
    def pairForIKESA(cls, keys, encrId, keyLength, integId, isInitiator, random=defaultRandom):
        """
        Return C{(outbound, inbound)} L{ISKCipher}s from an
        L{ikedtx.crypto.keymat.IKESAKeys}: the initiator sends with SK_ei and
        SK_ai and receives with SK_er and SK_ar, the responder the reverse.
        """
        initiatorSide = cls.forTransforms(encrId, keyLength, integId, keys.skEi, keys.skAi, random)
        responderSide = cls.forTransforms(encrId, keyLength, integId, keys.skEr, keys.skAr, random)
        if isInitiator:
            return initiatorSide, responderSide
        return responderSide, initiatorSide

    def _paddedLength(self, plaintextLength):
        n = plaintextLength + 1
        return n + (-n) % self.blockSize

    def sealedLength(self, plaintextLength):
        if plaintextLength < 0:
            raise ValueError("negative length")
        return self.ivSize + self._paddedLength(plaintextLength) + self.icvSize

    def maxPlaintextLength(self, sealedLength):
        available = sealedLength - self.ivSize - self.icvSize
        if available < 1:
            return -1
        available -= available % self.blockSize
        return available - 1

    def _pad(self, plaintext):
        padLength = self._paddedLength(len(plaintext)) - len(plaintext) - 1
        return bytes(plaintext) + bytes(padLength) + bytes([padLength])

    def _unpad(self, padded):
        if not padded:
            raise IntegrityError("no Pad Length byte")
        padLength = padded[-1]
        if padLength + 1 > len(padded):
            raise IntegrityError("Pad Length exceeds the payload")
        return bytes(padded[:len(padded) - padLength - 1])

    def _checkAlive(self):
        if self._wiped:
            raise CryptoError("this SK cipher's keys were wiped")

    def __repr__(self):
        return "<%s %s>" % (self.__class__.__name__, self.encryption.name)


@implementer(ISKCipher)
class CipherIntegritySKCipher(SKCipher):
    """
    AES-CBC, 3DES-CBC or AES-CTR with a separate integrity transform.
    """

    def __init__(self, encryption, encryptionKey, integrity, integrityKey, random):
        SKCipher.__init__(self, encryption)
        self.integrity = integrity
        self.icvSize = integrity.icvSize
        self._random = random
        salt = encryption.saltSize
        material = bytes(encryptionKey)
        self._key = bytearray(material[:len(material) - salt])
        self._salt = bytearray(material[len(material) - salt:])
        self._integrityKey = bytearray(integrityKey)
        self._ctr = encryption.transformId == EncrId.AES_CTR
        self._counter = _IVCounter(random) if self._ctr else None

    def _cipher(self, iv):
        if self.encryption.transformId == EncrId.TRIPLE_DES:
            return Cipher(TripleDES(bytes(self._key)), modes.CBC(iv))
        if self._ctr:
            return Cipher(algorithms.AES(bytes(self._key)),
                          modes.CTR(bytes(self._salt) + iv + b"\x00\x00\x00\x01"))
        return Cipher(algorithms.AES(bytes(self._key)), modes.CBC(iv))

    def seal(self, aad, plaintext):
        self._checkAlive()
        if self._ctr:
            iv = self._counter.next()
        else:
            iv = requireRandom(self._random, self.ivSize)
        encryptor = self._cipher(iv).encryptor()
        ciphertext = encryptor.update(self._pad(plaintext)) + encryptor.finalize()
        icv = self.integrity.compute(self._integrityKey, bytes(aad) + iv + ciphertext)
        return iv + ciphertext + icv

    def open(self, aad, sealed):
        self._checkAlive()
        sealed = bytes(sealed)
        if len(sealed) < self.ivSize + self.blockSize + self.icvSize:
            raise IntegrityError("encrypted payload too short")
        body, icv = sealed[:-self.icvSize], sealed[-self.icvSize:]
        self.integrity.verify(self._integrityKey, bytes(aad) + body, icv)
        iv, ciphertext = body[:self.ivSize], body[self.ivSize:]
        if len(ciphertext) % self.blockSize:
            raise IntegrityError("ciphertext is not a whole number of blocks")
        decryptor = self._cipher(iv).decryptor()
        return self._unpad(decryptor.update(ciphertext) + decryptor.finalize())

    def wipe(self):
        wipe(self._key, self._salt, self._integrityKey)
        self._wiped = True


class _GCM:
    """
    AES-GCM with an 8, 12 or 16-byte tag through cryptography's GCM mode
    (its AESGCM class only makes 16-byte tags).
    """

    def __init__(self, key, tagLength):
        self._key = key
        self._tagLength = tagLength

    def encrypt(self, nonce, data, aad):
        encryptor = Cipher(algorithms.AES(bytes(self._key)), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        ciphertext = encryptor.update(data) + encryptor.finalize()
        return ciphertext + encryptor.tag[:self._tagLength]

    def decrypt(self, nonce, data, aad):
        ciphertext, tag = data[:-self._tagLength], data[-self._tagLength:]
        decryptor = Cipher(algorithms.AES(bytes(self._key)),
                           modes.GCM(nonce, tag, min_tag_length=self._tagLength)).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(ciphertext) + decryptor.finalize()


@implementer(ISKCipher)
class AEADSKCipher(SKCipher):
    """
    AES-GCM, AES-CCM or ChaCha20-Poly1305 (RFC 5282, RFC 7634).
    """

    def __init__(self, encryption, encryptionKey, random):
        SKCipher.__init__(self, encryption)
        self.icvSize = encryption.icvSize
        salt = encryption.saltSize
        material = bytes(encryptionKey)
        self._key = bytearray(material[:len(material) - salt])
        self._salt = bytearray(material[len(material) - salt:])
        self._counter = _IVCounter(random)

    def _aead(self):
        encrId = self.encryption.transformId
        if encrId == EncrId.CHACHA20_POLY1305:
            return ChaCha20Poly1305(bytes(self._key))
        if encrId in (EncrId.AES_CCM_8, EncrId.AES_CCM_12, EncrId.AES_CCM_16):
            return AESCCM(bytes(self._key), tag_length=self.icvSize)
        return _GCM(self._key, self.icvSize)

    def seal(self, aad, plaintext):
        self._checkAlive()
        iv = self._counter.next()
        return iv + self._aead().encrypt(bytes(self._salt) + iv, self._pad(plaintext), bytes(aad))

    def open(self, aad, sealed):
        self._checkAlive()
        sealed = bytes(sealed)
        if len(sealed) < self.ivSize + 1 + self.icvSize:
            raise IntegrityError("encrypted payload too short")
        iv, rest = sealed[:self.ivSize], sealed[self.ivSize:]
        try:
            padded = self._aead().decrypt(bytes(self._salt) + iv, rest, bytes(aad))
        except InvalidTag:
            raise IntegrityError("AEAD tag mismatch")
        return self._unpad(padded)

    def wipe(self):
        wipe(self._key, self._salt)
        self._wiped = True

# -*- test-case-name: tests.test_crypto_keymat -*-
"""
All IKEv2 key derivation, in one place (RFC 7296 2.13-2.18, 2.15; RFC 9370).

    prf+ (K,S) = T1 | T2 | ...,  T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n)
    SKEYSEED = prf(Ni | Nr, g^ir)
    {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
    KEYMAT = prf+(SK_d, [g^ir (new) | [SK(1) | ... SK(n)] |] Ni | Nr)        (Child SA)
    SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)                         (IKE SA rekey)
    SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)                            (RFC 9370 2.2.2)
    AUTH (PSK) = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)

A PRF with a fixed-size key (AES-XCBC, AES-CMAC) uses only the first 64 bits
of Ni and of Nr as the SKEYSEED key (RFC 7296 2.14); everywhere else keys of
other sizes go through the PRF's own key handling (RFC 4434, RFC 4615).

Long-lived keys are returned in bytearrays that the caller wipes (each holder
class has C{wipe()}); intermediate values are wiped here.
"""

from ikedtx.crypto._util import constantTimeEqual, wipe
from ikedtx.crypto.errors import AuthenticationError, InvalidKeyLength
from ikedtx.crypto.encr import encryptionFor
from ikedtx.crypto.integ import integrityFor
from ikedtx.wire.constants import IntegId

KEY_PAD = b"Key Pad for IKEv2"

_PRF_PLUS_MAX_BLOCKS = 255


def prfPlus(prf, key, seed, length):
    """
    prf+ (RFC 7296 2.13): C{length} bytes (a bytearray) from
    T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).  At most 255 blocks.
    """
    blocks = -(-length // prf.outputSize)
    if blocks > _PRF_PLUS_MAX_BLOCKS:
        raise ValueError("prf+ cannot produce %d bytes with %s" % (length, prf.name))
    out = bytearray()
    t = b""
    seed = bytes(seed)
    for n in range(1, blocks + 1):
        t = prf.compute(key, t + seed + bytes([n]))
        out += t
    result = bytearray(out[:length])
    wipe(out)
    return result


def _nonceKey(prf, ni, nr):
    if prf.fixedKeySize:
        return bytes(ni[:8]) + bytes(nr[:8])
    return bytes(ni) + bytes(nr)


def skeyseed(prf, ni, nr, sharedSecret):
    """
    SKEYSEED = prf(Ni | Nr, g^ir) for a new IKE SA (RFC 7296 2.14).  With
    RFC 9370 additional key exchanges this is SKEYSEED(0), from the
    IKE_SA_INIT exchange's shared secret.
    """
    return bytearray(prf.compute(_nonceKey(prf, ni, nr), sharedSecret))


def rekeySkeyseed(prf, oldSkD, ni, nr, sharedSecret=b"", additional=()):
    """
    SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) for an IKE SA rekeyed
    with CREATE_CHILD_SA (RFC 7296 2.18), C{prf} being the B{old} SA's PRF.
    With RFC 9370 additional key exchanges in IKE_FOLLOWUP_KE (2.2.4), their
    secrets C{additional} follow: prf(SK_d, SK(0) | Ni | Nr | SK(1) | ... |
    SK(n)).
    """
    seed = bytearray(sharedSecret) + bytes(ni) + bytes(nr)
    for secret in additional:
        seed += secret
    try:
        return bytearray(prf.compute(oldSkD, bytes(seed)))
    finally:
        wipe(seed)


def additionalKeyExchangeSkeyseed(prf, previousSkD, ni, nr, sharedSecret):
    """
    SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) after the n-th additional
    key exchange (RFC 9370 2.2.2, IKE_INTERMEDIATE or IKE_FOLLOWUP_KE), with
    the Ni and Nr of the IKE_SA_INIT (or CREATE_CHILD_SA) exchange.  Then
    L{ikeSAKeys} derives the new SK_* with the same SPIs.
    """
    return bytearray(prf.compute(previousSkD, bytes(sharedSecret) + bytes(ni) + bytes(nr)))


class IKESAKeys:
    """
    The seven keys of an IKE SA (RFC 7296 2.14), each a bytearray.

    @ivar skD: SK_d, for Child SA and rekey derivation.
    @ivar skAi: SK_ai (initiator's integrity key; empty for AEAD).
    @ivar skAr: SK_ar.
    @ivar skEi: SK_ei (initiator's encryption key, salt included).
    @ivar skEr: SK_er.
    @ivar skPi: SK_pi (for the initiator's AUTH).
    @ivar skPr: SK_pr.
    """

    _names = ("skD", "skAi", "skAr", "skEi", "skEr", "skPi", "skPr")

    def __init__(self, skD, skAi, skAr, skEi, skEr, skPi, skPr):
        self.skD = bytearray(skD)
        self.skAi = bytearray(skAi)
        self.skAr = bytearray(skAr)
        self.skEi = bytearray(skEi)
        self.skEr = bytearray(skEr)
        self.skPi = bytearray(skPi)
        self.skPr = bytearray(skPr)

    def wipe(self):
        """
        Zero every key.
        """
        for name in self._names:
            wipe(getattr(self, name))

    def __repr__(self):
        return "<IKESAKeys %s>" % (" ".join(
            "%s=%d bytes" % (name, len(getattr(self, name))) for name in self._names),)


def _encryptionKeySize(encrId, keyLength):
    return encryptionFor(encrId).keyMaterialSize(keyLength)


def _integrityKeySize(encrId, integId):
    if encryptionFor(encrId).aead:
        if integId not in (None, IntegId.NONE):
            raise InvalidKeyLength("an AEAD cipher takes no integrity transform")
        return 0
    if integId in (None, IntegId.NONE):
        raise InvalidKeyLength("a non-AEAD cipher needs an integrity transform")
    return integrityFor(integId).keySize


def ikeSAKeys(prf, skeyseedValue, ni, nr, spiI, spiR, encrId, keyLength, integId):
    """
    {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
        = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)

    with SK_d, SK_pi, SK_pr of the PRF's preferred key size, SK_a* of the
    integrity key size (none for AEAD) and SK_e* of the cipher's key
    material size (key plus salt).  Return an L{IKESAKeys}.
    """
    dLen = pLen = prf.preferredKeySize
    aLen = _integrityKeySize(encrId, integId)
    eLen = _encryptionKeySize(encrId, keyLength)
    material = prfPlus(prf, skeyseedValue, bytes(ni) + bytes(nr) + bytes(spiI) + bytes(spiR),
                       dLen + 2 * aLen + 2 * eLen + 2 * pLen)
    cuts = []
    offset = 0
    for size in (dLen, aLen, aLen, eLen, eLen, pLen, pLen):
        cuts.append(material[offset:offset + size])
        offset += size
    keys = IKESAKeys(*cuts)
    wipe(material, *cuts)
    return keys


def childSAKeymat(prf, skD, ni, nr, length, sharedSecrets=()):
    """
    KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (RFC 7296 2.17); with RFC
    9370 additional key exchanges, prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ...
    | SK(n)) (2.2.4), SK(0) being the CREATE_CHILD_SA's g^ir (empty when it
    had no KE).  C{sharedSecrets} is C{[SK(0), SK(1), ...]}, empty without
    PFS.  Returns a bytearray.
    """
    seed = bytearray()
    if sharedSecrets:
        seed += sharedSecrets[0]
    seed += bytes(ni) + bytes(nr)
    for secret in sharedSecrets[1:]:
        seed += secret
    try:
        return prfPlus(prf, skD, seed, length)
    finally:
        wipe(seed)


class ChildSAKeys:
    """
    The keys of one Child SA pair, split from KEYMAT as RFC 7296 2.17 says:
    initiator-to-responder first, encryption key (with salt) before
    integrity key.

    @ivar encryptionInitiator: bytearray, key material of the SA carrying
        traffic from the initiator to the responder (salt included).
    @ivar integrityInitiator: bytearray (empty for AEAD or no integrity).
    @ivar encryptionResponder: bytearray, responder-to-initiator.
    @ivar integrityResponder: bytearray.
    """

    def __init__(self, encryptionInitiator, integrityInitiator, encryptionResponder,
                 integrityResponder):
        self.encryptionInitiator = bytearray(encryptionInitiator)
        self.integrityInitiator = bytearray(integrityInitiator)
        self.encryptionResponder = bytearray(encryptionResponder)
        self.integrityResponder = bytearray(integrityResponder)

    def outbound(self, isInitiator):
        """
        Return (encryption, integrity) for the SA we send on.
        """
        if isInitiator:
            return self.encryptionInitiator, self.integrityInitiator
        return self.encryptionResponder, self.integrityResponder

    def inbound(self, isInitiator):
        """
        Return (encryption, integrity) for the SA we receive on.
        """
        return self.outbound(not isInitiator)

    def wipe(self):
        wipe(self.encryptionInitiator, self.integrityInitiator, self.encryptionResponder,
             self.integrityResponder)

    def __repr__(self):
        return "<ChildSAKeys encryption=%d bytes integrity=%d bytes>" % (
            len(self.encryptionInitiator), len(self.integrityInitiator))


def childSAKeySizes(encrId, keyLength, integId=None):
    """
    Return (encryption key material bytes, integrity key bytes) for one
    direction of an ESP (or AH: C{encrId} None) SA: the encryption size
    includes the salt/nonce; AEAD ciphers and ENCR_NULL with no integrity
    have 0 integrity bytes.
    """
    encSize = 0
    if encrId is not None:
        encr = encryptionFor(encrId)
        encSize = encr.keyMaterialSize(keyLength)
        if encr.aead and integId not in (None, IntegId.NONE):
            raise InvalidKeyLength("an AEAD cipher takes no integrity transform")
    integSize = 0
    if integId not in (None, IntegId.NONE):
        integSize = integrityFor(integId).keySize
    return encSize, integSize


def childSAKeys(prf, skD, ni, nr, encrId, keyLength, integId=None, sharedSecrets=()):
    """
    Derive KEYMAT for a Child SA and split it into a L{ChildSAKeys}.
    """
    encSize, integSize = childSAKeySizes(encrId, keyLength, integId)
    keymat = childSAKeymat(prf, skD, ni, nr, 2 * (encSize + integSize), sharedSecrets)
    a = encSize
    b = a + integSize
    c = b + encSize
    keys = ChildSAKeys(keymat[:a], keymat[a:b], keymat[b:c], keymat[c:])
    wipe(keymat)
    return keys


def signedOctets(prf, realMessage, peerNonce, skP, idPayloadBody, intAuth=b""):
    """
    The octets an AUTH payload signs or MACs (RFC 7296 2.15):

        InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
        MACedIDForI = prf(SK_pi, RestOfInitIDPayload)

    C{realMessage} is our whole IKE_SA_INIT message (the first one we sent),
    C{peerNonce} the other side's nonce data, C{skP} our SK_pi or SK_pr (the
    signer's), C{idPayloadBody} our ID payload without its generic header
    (ID Type, three reserved bytes, identification data).  After
    IKE_INTERMEDIATE exchanges (RFC 9242 3.3.2, used by RFC 9370) C{intAuth}
    is IntAuth = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID, appended last.
    """
    return (bytes(realMessage) + bytes(peerNonce) + prf.compute(skP, idPayloadBody)
            + bytes(intAuth))


def intermediateAuth(prf, skP, previous, authenticatedPart, encryptedPart=b""):
    """
    One link of the RFC 9242 3.3.2 chain over the IKE_INTERMEDIATE messages
    one side sent:

        IntAuth_i1 = prf(SK_pi, IntAuth_i1_A [| IntAuth_i1_P])
        IntAuth_iN = prf(SK_pi, IntAuth_i(N-1) | IntAuth_iN_A [| IntAuth_iN_P])

    C{previous} is IntAuth_i(N-1) (empty for the first message); C{skP} is
    the SK_pi or SK_pr in force for that message (it changes with each
    RFC 9370 additional key exchange).  The wire layer cuts the _A and _P
    parts out of the message as RFC 9242 3.3.2 describes.
    """
    return prf.compute(skP, bytes(previous) + bytes(authenticatedPart) + bytes(encryptedPart))


def sharedKeyAuth(prf, sharedSecret, octets):
    """
    AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)
    (RFC 7296 2.15), used for PSK, for EAP with the MSK (or SK_pi/SK_pr when
    the EAP method makes no MSK) and for NULL authentication (RFC 7619).
    """
    padded = bytearray(prf.compute(sharedSecret, KEY_PAD))
    try:
        return prf.compute(padded, octets)
    finally:
        wipe(padded)


def verifySharedKeyAuth(prf, sharedSecret, octets, authData):
    """
    Check a shared-key AUTH in constant time; raise L{AuthenticationError}
    if it does not match.
    """
    if not constantTimeEqual(sharedKeyAuth(prf, sharedSecret, octets), authData):
        raise AuthenticationError("shared key AUTH mismatch")

# -*- test-case-name: tests.test_core_exchanges -*-
"""
What the exchanges need of L{ikedtx.crypto}, in the terms of an IKE SA:
transform lookups, the IKE SA and Child SA keys, the AUTH payloads.
"""

from twisted.logger import Logger

from ikedtx.crypto import keymat
from ikedtx.crypto import signature
from ikedtx.crypto.encr import encryptionFor
from ikedtx.crypto.errors import CryptoError
from ikedtx.crypto.kex import keyExchangeFor
from ikedtx.crypto.prf import prfFor
from ikedtx.crypto.sk import SKCipher
from ikedtx.wire.constants import ADDITIONAL_KE_TYPES, AuthMethod, HashAlgorithm, TransformType

_log = Logger(namespace="ikedtx.core.cryptoglue")


class SignatureRefused(Exception):
    """
    A peer's signature AUTH did not verify, or its method does not fit the
    policy or the key.
    """


def keyExchangeMethod(group):
    return keyExchangeFor(group)


def isAead(encrId):
    try:
        return encryptionFor(encrId).aead
    except CryptoError:
        return False


def isSupported(transform, protocol=None):
    """
    Whether we implement C{transform} (an L{ikedtx.core.proposals.Transform})
    for IKE (C{protocol} None) or ESP/AH.
    """
    from ikedtx.crypto.transforms import isSupported as supported
    from ikedtx.wire.constants import ProtocolId

    if transform.type in (TransformType.INTEG, TransformType.DH) or transform.type in ADDITIONAL_KE_TYPES:
        if transform.id == 0:
            return True
    try:
        return supported(transform.type, transform.id, transform.keyLength, protocol or ProtocolId.IKE)
    except CryptoError:
        return False


def _prf(ikeSA):
    return prfFor(ikeSA.proposal.prf.id)


def deriveIKEKeys(core, ikeSA, shared):
    """
    SKEYSEED and SK_* from IKE_SA_INIT (RFC 7296 2.14), and the SK ciphers.
    """
    prf = _prf(ikeSA)
    encr = ikeSA.proposal.encryption
    integ = ikeSA.proposal.integrity
    try:
        seed = keymat.skeyseed(prf, ikeSA.nonceI, ikeSA.nonceR, shared)
        ikeSA.keys = keymat.ikeSAKeys(prf, seed, ikeSA.nonceI, ikeSA.nonceR, ikeSA.spiI, ikeSA.spiR,
                                      encr.id, encr.keyLength, integ.id if integ else None)
    finally:
        _wipe(shared)
    _wipe(seed)
    ikeSA.cipherOut, ikeSA.cipherIn = SKCipher.pairForIKESA(
        ikeSA.keys, encr.id, encr.keyLength, integ.id if integ else None, ikeSA.initiator, core.randomBytes)
    if core.keyLog is not None:
        core.keyLog(ikeSA)


def _wipe(value):
    if isinstance(value, bytearray):
        value[:] = bytes(len(value))


def signedOctets(ikeSA, ofInitiator, idBody):
    """
    RFC 7296 2.15: the octets the initiator (C{ofInitiator}) or the
    responder signs or MACs.
    """
    prf = _prf(ikeSA)
    if ofInitiator:
        return keymat.signedOctets(prf, ikeSA.initRequest, ikeSA.nonceR, ikeSA.keys.skPi, idBody)
    return keymat.signedOctets(prf, ikeSA.initResponse, ikeSA.nonceI, ikeSA.keys.skPr, idBody)


def pskAuth(ikeSA, psk, octets):
    return bytes(keymat.sharedKeyAuth(_prf(ikeSA), psk, octets))


_METHODS = {
    "ecdsa256": AuthMethod.ECDSA_SHA256_P256,
    "ecdsa384": AuthMethod.ECDSA_SHA384_P384,
    "ecdsa521": AuthMethod.ECDSA_SHA512_P521,
    "rsa": AuthMethod.RSA_SIG,
    "rfc7427": AuthMethod.DIGITAL_SIGNATURE,
}


def signAuth(privateKey, policyMethod, octets, peerHashes):
    """
    Our signature AUTH: the method the policy names (iked's C{rsa},
    C{ecdsa256}..., C{rfc7427}), or for the default C{signature} RFC 7427
    when the peer announced hash algorithms and the key's own method
    otherwise.

    @return: C{(authMethod, authData)}.
    """
    wanted = _METHODS.get(policyMethod)
    try:
        if wanted is None or wanted == AuthMethod.DIGITAL_SIGNATURE:
            method, hashAlgorithm = signature.chooseSignatureMethod(privateKey, peerHashes)
            if wanted == AuthMethod.DIGITAL_SIGNATURE and method != wanted:
                # "rfc7427: only use RFC 7427 signatures", even to a peer
                # that did not announce its hashes: SHA2-256 is mandatory
                # to implement (RFC 8247).
                method, hashAlgorithm = wanted, HashAlgorithm.SHA2_256
        else:
            method, hashAlgorithm = wanted, None
        return method, signature.sign(privateKey, method, octets, hashAlgorithm)
    except CryptoError as e:
        raise SignatureRefused("cannot sign with our key for policy method %s: %s" % (policyMethod, e))


def verifyAuth(publicKey, policyMethod, method, data, octets):
    """
    Verify a peer's signature AUTH; the policy's method, when it names one,
    must be the one used (C{rfc7427}: method 14 only).
    """
    wanted = _METHODS.get(policyMethod)
    if wanted is not None and method != wanted:
        raise SignatureRefused("peer used AUTH method %d, the policy requires %s" % (method, policyMethod))
    try:
        signature.verify(publicKey, method, data, octets)
    except CryptoError as e:
        raise SignatureRefused(str(e))


def deriveChildKeys(ikeSA, child, shared, initiator, nonces=None):
    """
    RFC 7296 2.17: KEYMAT for C{child}, from the IKE SA's nonces (IKE_AUTH)
    or the CREATE_CHILD_SA nonces, with the new shared secret under PFS.
    """
    if nonces is None:
        nonces = child.nonces or (ikeSA.nonceI, ikeSA.nonceR)
    encr = child.proposal.encryption
    integ = child.proposal.integrity
    secrets = (shared,) if shared else ()
    keys = keymat.childSAKeys(_prf(ikeSA), ikeSA.keys.skD, nonces[0], nonces[1],
                              encr.id if encr else None, encr.keyLength if encr else None,
                              integ.id if integ else None, sharedSecrets=secrets)
    _wipe(shared)
    child.keyOut = keys.outbound(initiator)
    child.keyIn = keys.inbound(initiator)
    child.keymat = keys


def deriveRekeyedIKEKeys(core, old, new, shared):
    """
    RFC 7296 2.18: the keys of C{new}, the IKE SA that rekeys C{old}:
    SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) with the B{old} SA's
    PRF, then SK_* with the new SA's PRF, nonces and SPIs.
    """
    seed = None
    try:
        seed = keymat.rekeySkeyseed(_prf(old), old.keys.skD, new.nonceI, new.nonceR, bytes(shared))
        encr = new.proposal.encryption
        integ = new.proposal.integrity
        new.keys = keymat.ikeSAKeys(_prf(new), seed, new.nonceI, new.nonceR, new.spiI, new.spiR,
                                    encr.id, encr.keyLength, integ.id if integ else None)
    finally:
        _wipe(shared)
        _wipe(seed)
    new.cipherOut, new.cipherIn = SKCipher.pairForIKESA(
        new.keys, encr.id, encr.keyLength, integ.id if integ else None, new.initiator, core.randomBytes)
    if core.keyLog is not None:
        core.keyLog(new)

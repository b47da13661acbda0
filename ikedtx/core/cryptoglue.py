# -*- test-case-name: tests.test_core_exchanges -*-
"""
What the exchanges need of L{ikedtx.crypto}, in the terms of an IKE SA:
transform lookups, the IKE SA and Child SA keys, the AUTH payloads.
"""

from twisted.logger import Logger

from ikedtx.auth import schemes
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


#: {(type, id, keyLength, protocol): bool}: what L{isSupported} said (the
#: transform registries are filled at import); bounded, as peers choose
#: the ids and key lengths asked about.
_supported = {}
_SUPPORTED_MAX = 4096


def isSupported(transform, protocol=None):
    """
    Whether we implement C{transform} (an L{ikedtx.core.proposals.Transform})
    for IKE (C{protocol} None) or ESP/AH.
    """
    key = (transform.type, transform.id, transform.keyLength, protocol)
    answer = _supported.get(key)
    if answer is None:
        answer = _isSupported(transform, protocol)
        if len(_supported) < _SUPPORTED_MAX:
            _supported[key] = answer
    return answer


def _isSupported(transform, protocol):
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


def updateIKEKeys(core, ikeSA, shared):
    """
    RFC 9370 2.2.2: after an additional key exchange, SKEYSEED(n) =
    prf(SK_d(n-1), SK(n) | Ni | Nr) and new SK_* from it with the same
    nonces and SPIs; the next message goes under the new SK ciphers.
    """
    prf = _prf(ikeSA)
    encr = ikeSA.proposal.encryption
    integ = ikeSA.proposal.integrity
    seed = None
    try:
        seed = keymat.additionalKeyExchangeSkeyseed(prf, ikeSA.keys.skD, ikeSA.nonceI, ikeSA.nonceR, shared)
        keys = keymat.ikeSAKeys(prf, seed, ikeSA.nonceI, ikeSA.nonceR, ikeSA.spiI, ikeSA.spiR,
                                encr.id, encr.keyLength, integ.id if integ else None)
    finally:
        _wipe(shared)
        if seed is not None:
            _wipe(seed)
    ikeSA.keys.wipe()
    ikeSA.keys = keys
    ikeSA.cipherOut, ikeSA.cipherIn = SKCipher.pairForIKESA(
        keys, encr.id, encr.keyLength, integ.id if integ else None, ikeSA.initiator, core.randomBytes)
    if core.keyLog is not None:
        core.keyLog(ikeSA)


def intermediateAuthLink(ikeSA, ofInitiator, previous, authenticated, plaintext):
    """
    RFC 9242 3.3.2: the next link of the initiator's (C{ofInitiator}) or
    the responder's IntAuth chain, with the SK_pi or SK_pr in force.
    """
    skP = ikeSA.keys.skPi if ofInitiator else ikeSA.keys.skPr
    return keymat.intermediateAuth(_prf(ikeSA), skP, previous, authenticated, plaintext)


def _wipe(value):
    if isinstance(value, bytearray):
        value[:] = bytes(len(value))


wipeSecret = _wipe


def signedOctets(ikeSA, ofInitiator, idBody):
    """
    RFC 7296 2.15: the octets the initiator (C{ofInitiator}) or the
    responder signs or MACs; after IKE_INTERMEDIATE exchanges with
    IntAuth appended (RFC 9242 3.3.2).
    """
    prf = _prf(ikeSA)
    intAuth = ikeSA.intermediate.intAuth() if ikeSA.intermediate is not None else b""
    if ofInitiator:
        return keymat.signedOctets(prf, ikeSA.initRequest, ikeSA.nonceR, ikeSA.keys.skPi, idBody, intAuth)
    return keymat.signedOctets(prf, ikeSA.initResponse, ikeSA.nonceI, ikeSA.keys.skPr, idBody, intAuth)


def pskAuth(ikeSA, psk, octets):
    return bytes(keymat.sharedKeyAuth(_prf(ikeSA), psk, octets))


_METHODS = {
    "ecdsa256": AuthMethod.ECDSA_SHA256_P256,
    "ecdsa384": AuthMethod.ECDSA_SHA384_P384,
    "ecdsa521": AuthMethod.ECDSA_SHA512_P521,
    "rsa": AuthMethod.RSA_SIG,
    "rfc7427": AuthMethod.DIGITAL_SIGNATURE,
}


# The key each named method signs with: (key type, curve).
_METHOD_KEYS = {
    AuthMethod.ECDSA_SHA256_P256: ("ecdsa", "secp256r1"),
    AuthMethod.ECDSA_SHA384_P384: ("ecdsa", "secp384r1"),
    AuthMethod.ECDSA_SHA512_P521: ("ecdsa", "secp521r1"),
    AuthMethod.RSA_SIG: ("rsa", None),
}


def _fitsMethod(key, method):
    keyType, curve = _METHOD_KEYS[method]
    return signature._keyType(key) == keyType and (curve is None or key.curve.name == curve)


def signAuth(privateKey, policyMethod, octets, peerHashes):
    """
    Our signature AUTH: the method the policy names (iked's C{rsa},
    C{ecdsa256}..., C{rfc7427}), or for the default C{signature} RFC 7427
    when the peer announced hash algorithms and the key's own method
    otherwise. As iked, a named C{rsa} or C{ecdsa} method is sent as
    RFC 7427's DIGITAL_SIGNATURE (same key, a SHA-2 hash the peer
    announced) when the peer announced SIGNATURE_HASH_ALGORITHMS: peers
    such as libreswan take ECDSA only that way.

    @return: C{(authMethod, authData)}.
    """
    wanted = _METHODS.get(policyMethod)
    try:
        if wanted in _METHOD_KEYS and peerHashes and _fitsMethod(privateKey, wanted):
            method, hashAlgorithm = signature.chooseSignatureMethod(privateKey, peerHashes)
            if method != AuthMethod.DIGITAL_SIGNATURE:
                method, hashAlgorithm = wanted, None
        elif wanted is None or wanted == AuthMethod.DIGITAL_SIGNATURE:
            method, hashAlgorithm = signature.chooseSignatureMethod(privateKey, peerHashes)
            if wanted == AuthMethod.DIGITAL_SIGNATURE and method != wanted:
                # "rfc7427: only use RFC 7427 signatures", even to a peer
                # that did not announce its hashes: SHA2-256 is mandatory
                # to implement (RFC 8247).
                method, hashAlgorithm = wanted, HashAlgorithm.SHA2_256
        else:
            method, hashAlgorithm = wanted, None
        pss = schemes.rsaPSS(privateKey, method)
        _log.debug("signing AUTH with {scheme}", scheme=schemes.describe(method, hashAlgorithm, pss))
        return method, signature.sign(privateKey, method, octets, hashAlgorithm, rsaPSS=pss)
    except CryptoError as e:
        raise SignatureRefused("cannot sign with our key for policy method %s: %s" % (policyMethod, e))


def verifyAuth(publicKey, policyMethod, method, data, octets):
    """
    Verify a peer's signature AUTH; the policy's method, when it names one,
    must be the one used (C{rfc7427}: method 14 only), or RFC 7427's
    DIGITAL_SIGNATURE with the key that method names (we announce our
    hashes whenever signatures are used, RFC 7427 4).
    """
    wanted = _METHODS.get(policyMethod)
    if wanted in _METHOD_KEYS and method == AuthMethod.DIGITAL_SIGNATURE:
        if not _fitsMethod(publicKey, wanted):
            raise SignatureRefused("peer signed with a key the policy's %s does not take" % (policyMethod,))
    elif wanted is not None and method != wanted:
        raise SignatureRefused("peer used AUTH method %d, the policy requires %s" % (method, policyMethod))
    try:
        signature.verify(publicKey, method, data, octets)
    except CryptoError as e:
        raise SignatureRefused(str(e))


def deriveChildKeys(ikeSA, child, shared, initiator, nonces=None):
    """
    RFC 7296 2.17: KEYMAT for C{child}, from the IKE SA's nonces (IKE_AUTH)
    or the CREATE_CHILD_SA nonces, with the new shared secret under PFS;
    C{shared} is a list after RFC 9370 additional key exchanges
    (IKE_FOLLOWUP_KE): SK(0) (g^ir, or empty) then SK(1) ... SK(n) (2.2.4).
    """
    if nonces is None:
        nonces = child.nonces or (ikeSA.nonceI, ikeSA.nonceR)
    encr = child.proposal.encryption
    integ = child.proposal.integrity
    if isinstance(shared, list):
        secrets = tuple(shared)
    else:
        secrets = (shared,) if shared else ()
    keys = keymat.childSAKeys(_prf(ikeSA), ikeSA.keys.skD, nonces[0], nonces[1],
                              encr.id if encr else None, encr.keyLength if encr else None,
                              integ.id if integ else None, sharedSecrets=secrets)
    for secret in secrets:
        _wipe(secret)
    child.keyOut = keys.outbound(initiator)
    child.keyIn = keys.inbound(initiator)
    child.keymat = keys


def deriveRekeyedIKEKeys(core, old, new, shared):
    """
    RFC 7296 2.18: the keys of C{new}, the IKE SA that rekeys C{old}:
    SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) with the B{old} SA's
    PRF, then SK_* with the new SA's PRF, nonces and SPIs. C{shared} is a
    list C{[SK(0), SK(1), ...]} after RFC 9370 additional key exchanges
    (IKE_FOLLOWUP_KE): SKEYSEED = prf(SK_d, SK(0) | Ni | Nr | SK(1) | ...).
    """
    seed = None
    secrets = list(shared) if isinstance(shared, list) else [shared]
    try:
        seed = keymat.rekeySkeyseed(_prf(old), old.keys.skD, new.nonceI, new.nonceR, bytes(secrets[0]),
                                    [bytes(s) for s in secrets[1:]])
        encr = new.proposal.encryption
        integ = new.proposal.integrity
        new.keys = keymat.ikeSAKeys(_prf(new), seed, new.nonceI, new.nonceR, new.spiI, new.spiR,
                                    encr.id, encr.keyLength, integ.id if integ else None)
    finally:
        for secret in secrets:
            _wipe(secret)
        _wipe(seed)
    new.cipherOut, new.cipherIn = SKCipher.pairForIKESA(
        new.keys, encr.id, encr.keyLength, integ.id if integ else None, new.initiator, core.randomBytes)
    if core.keyLog is not None:
        core.keyLog(new)

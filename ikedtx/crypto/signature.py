# -*- test-case-name: tests.test_crypto_signature -*-
"""
AUTH payload signatures (RFC 7296 2.15 and 3.8, RFC 4754, RFC 7427, RFC 8420).

 - RSA_SIG (1): RSASSA-PKCS1-v1_5 with SHA-1 over the signed octets - what
   strongSwan (SIGN_RSA_EMSA_PKCS1_SHA1) and iked (dsa_new: EVP_sha1) send
   and accept for this method.
 - ECDSA_SHA256_P256 / ECDSA_SHA384_P384 / ECDSA_SHA512_P521 (9, 10, 11):
   ECDSA with the curve's hash, the signature r | s as two fixed-size
   big-endian integers (RFC 4754 7); the key's curve must be the method's.
 - DIGITAL_SIGNATURE (14): one byte of ASN.1 length, the DER
   AlgorithmIdentifier, then the signature (RFC 7427 3): PKCS#1 v1.5 or
   RSASSA-PSS with SHA2-256/384/512 for RSA, ECDSA with SHA2 for any curve
   (DER Ecdsa-Sig-Value inside), Ed25519 and Ed448 (RFC 8420, hash
   "Identity").

The AlgorithmIdentifiers we send are those of RFC 7427 appendix A (for PSS
the errata form without the trailerField, which iked also accepts).  Those
we receive are parsed strictly as DER and must name a scheme that fits the
key and a hash in C{allowedHashes}.

L{chooseSignatureMethod} picks the AUTH method and hash for our key from the
peer's SIGNATURE_HASH_ALGORITHMS list.
"""

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)

from ikedtx.crypto.errors import AuthenticationError
from ikedtx.wire.constants import AuthMethod, HashAlgorithm

_HASHES = {
    HashAlgorithm.SHA1: hashes.SHA1,
    HashAlgorithm.SHA2_256: hashes.SHA256,
    HashAlgorithm.SHA2_384: hashes.SHA384,
    HashAlgorithm.SHA2_512: hashes.SHA512,
}

# What we put in our SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 4, RFC 8420).
ANNOUNCED_HASHES = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512,
                    HashAlgorithm.IDENTITY)

DEFAULT_ALLOWED_HASHES = frozenset(
    [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512,
     HashAlgorithm.IDENTITY])

# DER contents octets of the object identifiers we use.
_OID_HASH = {
    HashAlgorithm.SHA1: bytes.fromhex("2b0e03021a"),
    HashAlgorithm.SHA2_256: bytes.fromhex("608648016503040201"),
    HashAlgorithm.SHA2_384: bytes.fromhex("608648016503040202"),
    HashAlgorithm.SHA2_512: bytes.fromhex("608648016503040203"),
}
_OID_RSA_PKCS1 = {
    HashAlgorithm.SHA1: bytes.fromhex("2a864886f70d010105"),
    HashAlgorithm.SHA2_256: bytes.fromhex("2a864886f70d01010b"),
    HashAlgorithm.SHA2_384: bytes.fromhex("2a864886f70d01010c"),
    HashAlgorithm.SHA2_512: bytes.fromhex("2a864886f70d01010d"),
}
_OID_ECDSA = {
    HashAlgorithm.SHA1: bytes.fromhex("2a8648ce3d0401"),
    HashAlgorithm.SHA2_256: bytes.fromhex("2a8648ce3d040302"),
    HashAlgorithm.SHA2_384: bytes.fromhex("2a8648ce3d040303"),
    HashAlgorithm.SHA2_512: bytes.fromhex("2a8648ce3d040304"),
}
_OID_RSASSA_PSS = bytes.fromhex("2a864886f70d01010a")
_OID_MGF1 = bytes.fromhex("2a864886f70d010108")
_OID_ED25519 = bytes.fromhex("2b6570")
_OID_ED448 = bytes.fromhex("2b6571")

_SEQUENCE = 0x30
_OID = 0x06
_NULL = 0x05
_INTEGER = 0x02

_ECDSA_METHODS = {
    AuthMethod.ECDSA_SHA256_P256: ("secp256r1", HashAlgorithm.SHA2_256, 32),
    AuthMethod.ECDSA_SHA384_P384: ("secp384r1", HashAlgorithm.SHA2_384, 48),
    AuthMethod.ECDSA_SHA512_P521: ("secp521r1", HashAlgorithm.SHA2_512, 66),
}

_CURVE_HASH = {
    "secp256r1": HashAlgorithm.SHA2_256,
    "brainpoolP256r1": HashAlgorithm.SHA2_256,
    "secp384r1": HashAlgorithm.SHA2_384,
    "brainpoolP384r1": HashAlgorithm.SHA2_384,
    "secp521r1": HashAlgorithm.SHA2_512,
    "brainpoolP512r1": HashAlgorithm.SHA2_512,
}


# A minimal strict DER reader/writer: cryptography parses certificates but
# exposes no parser for a bare AlgorithmIdentifier.

def _derLength(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag, value):
    return bytes([tag]) + _derLength(len(value)) + value


def _readTLV(data, offset):
    """
    Read one DER TLV at C{offset}: return (tag, value, next offset).  Only
    definite, minimal lengths and single-byte tags are accepted.
    """
    if offset + 2 > len(data):
        raise AuthenticationError("truncated DER")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise AuthenticationError("multi-byte DER tag")
    first = data[offset + 1]
    offset += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise AuthenticationError("bad DER length")
        length = int.from_bytes(data[offset:offset + count], "big")
        if length < 0x80 or data[offset] == 0:
            raise AuthenticationError("non-minimal DER length")
        offset += count
    if offset + length > len(data):
        raise AuthenticationError("truncated DER")
    return tag, data[offset:offset + length], offset + length


def _readAll(data):
    items = []
    offset = 0
    while offset < len(data):
        tag, value, offset = _readTLV(data, offset)
        items.append((tag, value))
    return items


def _parseAlgorithmIdentifier(der):
    tag, body, end = _readTLV(der, 0)
    if tag != _SEQUENCE or end != len(der):
        raise AuthenticationError("AlgorithmIdentifier is not one DER SEQUENCE")
    items = _readAll(body)
    if not items or items[0][0] != _OID or len(items) > 2:
        raise AuthenticationError("malformed AlgorithmIdentifier")
    return items[0][1], (items[1] if len(items) == 2 else None)


def _hashAlgorithmIdentifier(hashAlgorithm):
    return _tlv(_SEQUENCE, _tlv(_OID, _OID_HASH[hashAlgorithm]) + _tlv(_NULL, b""))


def _parseHashIdentifier(der):
    oid, params = _parseAlgorithmIdentifier(der)
    if params is not None and params != (_NULL, b""):
        raise AuthenticationError("unexpected hash parameters")
    for hashAlgorithm, value in _OID_HASH.items():
        if value == oid:
            return hashAlgorithm
    raise AuthenticationError("unknown hash algorithm")


_IDENTIFIERS = {}


def algorithmIdentifier(keyType, hashAlgorithm, rsaPSS=False):
    """
    Return the DER AlgorithmIdentifier for a signature scheme: see
    L{_algorithmIdentifier}; each is built once.
    """
    key = (keyType, hashAlgorithm, bool(rsaPSS))
    der = _IDENTIFIERS.get(key)
    if der is None:
        der = _IDENTIFIERS[key] = _algorithmIdentifier(keyType, hashAlgorithm, rsaPSS)
    return der


def _algorithmIdentifier(keyType, hashAlgorithm, rsaPSS=False):
    """
    Return the DER AlgorithmIdentifier for a signature scheme (RFC 7427
    appendix A): C{keyType} is "rsa", "ecdsa", "ed25519" or "ed448".
    For RSASSA-PSS the parameters name C{hashAlgorithm} for the hash and
    for MGF1 and a salt as long as the hash (RFC 7427 A.4.3, errata form
    without the default trailerField).
    """
    if keyType == "ed25519":
        return _tlv(_SEQUENCE, _tlv(_OID, _OID_ED25519))
    if keyType == "ed448":
        return _tlv(_SEQUENCE, _tlv(_OID, _OID_ED448))
    if keyType == "ecdsa":
        return _tlv(_SEQUENCE, _tlv(_OID, _OID_ECDSA[hashAlgorithm]))
    if keyType == "rsa" and rsaPSS:
        hashId = _hashAlgorithmIdentifier(hashAlgorithm)
        params = (
            _tlv(0xA0, hashId)
            + _tlv(0xA1, _tlv(_SEQUENCE, _tlv(_OID, _OID_MGF1) + hashId))
            + _tlv(0xA2, _tlv(_INTEGER, bytes([_HASHES[hashAlgorithm].digest_size]))))
        return _tlv(_SEQUENCE, _tlv(_OID, _OID_RSASSA_PSS) + _tlv(_SEQUENCE, params))
    if keyType == "rsa":
        return _tlv(_SEQUENCE, _tlv(_OID, _OID_RSA_PKCS1[hashAlgorithm]) + _tlv(_NULL, b""))
    raise ValueError("unknown key type %r" % (keyType,))


class _Scheme:
    """
    A parsed RFC 7427 signature scheme (read-only: parsed schemes are
    shared).
    """

    __slots__ = ("keyType", "hashAlgorithm", "pss")

    def __init__(self, keyType, hashAlgorithm, pss=None):
        object.__setattr__(self, "keyType", keyType)
        object.__setattr__(self, "hashAlgorithm", hashAlgorithm)
        object.__setattr__(self, "pss", pss)  # (mgf1 hash, salt length) for RSASSA-PSS

    def __setattr__(self, name, value):
        raise AttributeError("a parsed signature scheme is read-only")


def _parsePSSParameters(params):
    hashAlgorithm = HashAlgorithm.SHA1
    mgfHash = HashAlgorithm.SHA1
    saltLength = 20
    if params is None or params[0] != _SEQUENCE:
        raise AuthenticationError("RSASSA-PSS needs its parameters SEQUENCE")
    lastTag = 0x9F
    for tag, value in _readAll(params[1]):
        if tag <= lastTag and lastTag != 0x9F:
            raise AuthenticationError("RSASSA-PSS parameters out of order")
        lastTag = tag
        if tag == 0xA0:
            hashAlgorithm = _parseHashIdentifier(value)
        elif tag == 0xA1:
            oid, mgfParams = _parseAlgorithmIdentifier(value)
            if oid != _OID_MGF1 or mgfParams is None or mgfParams[0] != _SEQUENCE:
                raise AuthenticationError("unsupported mask generation function")
            mgfHash = _parseHashIdentifier(_tlv(_SEQUENCE, mgfParams[1]))
        elif tag == 0xA2:
            inner = _readAll(value)
            if len(inner) != 1 or inner[0][0] != _INTEGER or not inner[0][1]:
                raise AuthenticationError("bad RSASSA-PSS salt length")
            raw = inner[0][1]
            if raw[0] & 0x80 or len(raw) > 2:
                raise AuthenticationError("bad RSASSA-PSS salt length")
            saltLength = int.from_bytes(raw, "big")
        elif tag == 0xA3:
            if _readAll(value) != [(_INTEGER, b"\x01")]:
                raise AuthenticationError("RSASSA-PSS trailerField must be 1")
        else:
            raise AuthenticationError("unknown RSASSA-PSS parameter")
    return _Scheme("rsa", hashAlgorithm, (mgfHash, saltLength))


# AlgorithmIdentifiers parsed already (DER -> _Scheme): a peer sends the
# same few; bounded, since the PSS parameters are the peer's to vary.
_PARSED = {}
_MAX_PARSED = 64


def parseAlgorithmIdentifier(der):
    """
    Parse an RFC 7427 AlgorithmIdentifier: return an object with C{keyType}
    ("rsa", "ecdsa", "ed25519", "ed448"), C{hashAlgorithm} (a
    L{HashAlgorithm}) and C{pss} (None, or (MGF1 hash, salt length)).
    Raise L{AuthenticationError} for anything malformed or unknown.

    The schemes of DER parsed before come from a small table of them (only
    what parsed is kept, so what is refused is parsed, and refused, again).
    """
    der = bytes(der)
    scheme = _PARSED.get(der)
    if scheme is None:
        scheme = _parseScheme(der)
        if len(_PARSED) >= _MAX_PARSED:
            _PARSED.clear()
        _PARSED[der] = scheme
    return scheme


def _parseScheme(der):
    oid, params = _parseAlgorithmIdentifier(der)
    if oid == _OID_ED25519 or oid == _OID_ED448:
        if params is not None:
            raise AuthenticationError("EdDSA takes no parameters")
        return _Scheme("ed25519" if oid == _OID_ED25519 else "ed448", HashAlgorithm.IDENTITY)
    for hashAlgorithm, value in _OID_ECDSA.items():
        if oid == value:
            if params is not None:
                raise AuthenticationError("ECDSA takes no parameters")
            return _Scheme("ecdsa", hashAlgorithm)
    for hashAlgorithm, value in _OID_RSA_PKCS1.items():
        if oid == value:
            if params is not None and params != (_NULL, b""):
                raise AuthenticationError("PKCS#1 v1.5 parameters must be NULL")
            return _Scheme("rsa", hashAlgorithm)
    if oid == _OID_RSASSA_PSS:
        return _parsePSSParameters(params)
    raise AuthenticationError("unknown signature algorithm")


def _keyType(key):
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ecdsa"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "ed448"
    return None


def _checkMethodKey(authMethod, key):
    keyType = _keyType(key)
    if authMethod == AuthMethod.RSA_SIG:
        if keyType != "rsa":
            raise AuthenticationError("RSA_SIG needs an RSA key")
    elif authMethod in _ECDSA_METHODS:
        curveName = _ECDSA_METHODS[authMethod][0]
        if keyType != "ecdsa" or key.curve.name != curveName:
            raise AuthenticationError("%s needs a %s key" % (
                AuthMethod(authMethod).name, curveName))
    elif authMethod == AuthMethod.DIGITAL_SIGNATURE:
        if keyType is None:
            raise AuthenticationError("unsupported key type")
    else:
        raise AuthenticationError("not a signature AUTH method: %r" % (authMethod,))
    return keyType


def _pss(hashAlgorithm, mgfHash=None, saltLength=None):
    hashClass = _HASHES[hashAlgorithm]
    return padding.PSS(
        mgf=padding.MGF1(_HASHES[mgfHash or hashAlgorithm]()),
        salt_length=hashClass.digest_size if saltLength is None else saltLength)


def sign(privateKey, authMethod, octets, hashAlgorithm=None, rsaPSS=False):
    """
    Return the AUTH payload's Authentication Data for C{octets} (the signed
    octets of RFC 7296 2.15) with C{authMethod}.

    For DIGITAL_SIGNATURE, C{hashAlgorithm} (a L{HashAlgorithm}) is
    required except for Ed25519/Ed448, and C{rsaPSS} selects RSASSA-PSS for
    an RSA key.  For the other methods the hash is fixed and
    C{hashAlgorithm}, if given, must be it.
    """
    octets = bytes(octets)
    keyType = _checkMethodKey(authMethod, privateKey)
    if authMethod == AuthMethod.RSA_SIG:
        if hashAlgorithm not in (None, HashAlgorithm.SHA1):
            raise ValueError("RSA_SIG signs with SHA-1")
        return privateKey.sign(octets, padding.PKCS1v15(), hashes.SHA1())
    if authMethod in _ECDSA_METHODS:
        _, methodHash, size = _ECDSA_METHODS[authMethod]
        if hashAlgorithm not in (None, methodHash):
            raise ValueError("%s signs with %s" % (AuthMethod(authMethod).name, methodHash.name))
        r, s = decode_dss_signature(privateKey.sign(octets, ec.ECDSA(_HASHES[methodHash]())))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if keyType in ("ed25519", "ed448"):
        if hashAlgorithm not in (None, HashAlgorithm.IDENTITY):
            raise ValueError("EdDSA uses the Identity hash")
        algorithmId = algorithmIdentifier(keyType, None)
        signature = privateKey.sign(octets)
    else:
        if hashAlgorithm not in (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384,
                                 HashAlgorithm.SHA2_512):
            raise ValueError("DIGITAL_SIGNATURE with %s needs a SHA-2 hash" % (keyType,))
        algorithmId = algorithmIdentifier(keyType, hashAlgorithm, rsaPSS)
        hashObject = _HASHES[hashAlgorithm]()
        if keyType == "ecdsa":
            signature = privateKey.sign(octets, ec.ECDSA(hashObject))
        elif rsaPSS:
            signature = privateKey.sign(octets, _pss(hashAlgorithm), hashObject)
        else:
            signature = privateKey.sign(octets, padding.PKCS1v15(), hashObject)
    return bytes([len(algorithmId)]) + algorithmId + signature


def verify(publicKey, authMethod, authData, octets, allowedHashes=DEFAULT_ALLOWED_HASHES):
    """
    Verify the Authentication Data C{authData} of an AUTH payload with
    C{authMethod} over C{octets}.  Return the L{HashAlgorithm} it used.

    For DIGITAL_SIGNATURE the hash must be in C{allowedHashes} (by default
    SHA2-256/384/512 and Identity: the hashes we announce; SHA-1 is
    refused).  Raise L{AuthenticationError} on any mismatch: wrong key type
    for the method, malformed or unacceptable AlgorithmIdentifier,
    disallowed hash, malformed or bad signature.
    """
    authData = bytes(authData)
    octets = bytes(octets)
    keyType = _checkMethodKey(authMethod, publicKey)
    try:
        if authMethod == AuthMethod.RSA_SIG:
            publicKey.verify(authData, octets, padding.PKCS1v15(), hashes.SHA1())
            return HashAlgorithm.SHA1
        if authMethod in _ECDSA_METHODS:
            _, methodHash, size = _ECDSA_METHODS[authMethod]
            if len(authData) != 2 * size:
                raise AuthenticationError("ECDSA signature must be %d bytes" % (2 * size,))
            r = int.from_bytes(authData[:size], "big")
            s = int.from_bytes(authData[size:], "big")
            publicKey.verify(encode_dss_signature(r, s), octets,
                             ec.ECDSA(_HASHES[methodHash]()))
            return methodHash
        if not authData or authData[0] + 1 > len(authData):
            raise AuthenticationError("truncated RFC 7427 signature")
        scheme = parseAlgorithmIdentifier(authData[1:1 + authData[0]])
        signature = authData[1 + authData[0]:]
        if scheme.keyType != keyType:
            raise AuthenticationError("signature algorithm does not fit the key")
        if scheme.hashAlgorithm not in allowedHashes:
            raise AuthenticationError("hash %s not allowed" % (scheme.hashAlgorithm.name,))
        if keyType in ("ed25519", "ed448"):
            publicKey.verify(signature, octets)
        elif keyType == "ecdsa":
            publicKey.verify(signature, octets, ec.ECDSA(_HASHES[scheme.hashAlgorithm]()))
        elif scheme.pss is not None:
            mgfHash, saltLength = scheme.pss
            if mgfHash not in allowedHashes:
                raise AuthenticationError("MGF1 hash %s not allowed" % (mgfHash.name,))
            publicKey.verify(signature, octets, _pss(scheme.hashAlgorithm, mgfHash, saltLength),
                             _HASHES[scheme.hashAlgorithm]())
        else:
            publicKey.verify(signature, octets, padding.PKCS1v15(),
                             _HASHES[scheme.hashAlgorithm]())
        return scheme.hashAlgorithm
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        raise AuthenticationError("signature does not verify")


_KNOWN_HASHES = frozenset(HashAlgorithm)

# Our preference among SHA-2 hashes when the curve does not suggest one;
# SHA2-256 first because iked's "rfc7427" verifies only SHA2-256.
_RSA_HASH_PREFERENCE = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384,
                        HashAlgorithm.SHA2_512)


def chooseSignatureMethod(key, peerHashes=(), rsaPSS=False):
    """
    Choose how to sign with C{key} (private or public): return
    C{(authMethod, hashAlgorithm)}.

    If the peer sent SIGNATURE_HASH_ALGORITHMS (C{peerHashes}, its list of
    L{HashAlgorithm} values) we use DIGITAL_SIGNATURE with a hash from it:
    Identity for Ed25519/Ed448, the curve's own hash for ECDSA if offered
    (else the strongest SHA-2 offered), SHA2-256 first for RSA.  Without it
    we fall back to RSA_SIG (SHA-1) or the RFC 4754 method of a NIST curve.
    Raise L{AuthenticationError} if nothing fits.
    """
    keyType = _keyType(key)
    peerHashes = [h for h in peerHashes if h in _KNOWN_HASHES]
    if peerHashes:
        if keyType in ("ed25519", "ed448"):
            if HashAlgorithm.IDENTITY in peerHashes:
                return AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.IDENTITY
        elif keyType == "ecdsa":
            preferred = _CURVE_HASH.get(key.curve.name)
            if preferred in peerHashes:
                return AuthMethod.DIGITAL_SIGNATURE, preferred
            for candidate in reversed(_RSA_HASH_PREFERENCE):
                if candidate in peerHashes:
                    return AuthMethod.DIGITAL_SIGNATURE, candidate
        elif keyType == "rsa":
            for candidate in _RSA_HASH_PREFERENCE:
                if candidate in peerHashes:
                    return AuthMethod.DIGITAL_SIGNATURE, candidate
    if keyType == "rsa" and not rsaPSS:
        return AuthMethod.RSA_SIG, HashAlgorithm.SHA1
    if keyType == "ecdsa":
        for method, (curveName, methodHash, _) in _ECDSA_METHODS.items():
            if key.curve.name == curveName:
                return method, methodHash
    raise AuthenticationError("no signature method fits this key and the peer's hashes")

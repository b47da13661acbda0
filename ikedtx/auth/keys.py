# -*- test-case-name: tests.test_auth_keys -*-
"""
Private and public keys: loading and dumping (PEM or DER; RSA, ECDSA on
P-256/P-384/P-521, Ed25519), the description logs use ("RSA-2048",
"ECDSA P-256"), which IKE AUTH methods a key can serve, and the raw public
key CERT payload formats.

Raw public keys travel in CERT payloads in three encodings:
  - RAW_RSA_KEY (11): a PKCS#1 RSAPublicKey, DER (RFC 7296 3.6); iked sends
    its RSA keys this way.
  - 201, from IANA's private-use range: iked's own encoding of an EC key, a
    SubjectPublicKeyInfo, DER (iked 7.2 ikev2.h IKEV2_CERT_ECDSA).
  - RAW_PUBLIC_KEY (15): a SubjectPublicKeyInfo, DER (RFC 7670); iked 7.2
    does not know it.
"""

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ikedtx.auth.errors import InvalidKey
from ikedtx.wire.constants import AuthMethod, CertEncoding

# iked's private-use CERT encoding for an EC public key (SubjectPublicKeyInfo).
IKED_CERT_ECDSA = 201

RAW_KEY_ENCODINGS = frozenset([CertEncoding.RAW_RSA_KEY, CertEncoding.RAW_PUBLIC_KEY, IKED_CERT_ECDSA])

# Curves we sign and verify with, by cryptography's curve name.
_CURVES = {
    "secp256r1": ("P-256", 256, AuthMethod.ECDSA_SHA256_P256, "ecdsa256"),
    "secp384r1": ("P-384", 384, AuthMethod.ECDSA_SHA384_P384, "ecdsa384"),
    "secp521r1": ("P-521", 521, AuthMethod.ECDSA_SHA512_P521, "ecdsa521"),
}

_PRIVATE_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
_PUBLIC_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)

# iked.conf ikeauth signature keywords, plus our own names for "any".
SIGNATURE_METHODS = frozenset(["signature", "rsa", "ecdsa256", "ecdsa384", "ecdsa521", "rfc7427"])


def _isPEM(data):
    return b"-----BEGIN " in data


def _checkSupported(key, types, what):
    if not isinstance(key, types):
        raise InvalidKey("unsupported %s key type %s" % (what, type(key).__name__))
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name not in _CURVES:
            raise InvalidKey("unsupported elliptic curve %s" % (key.curve.name,))
    return key


def loadPrivateKey(data):
    """
    Parse an unencrypted private key: PEM (PKCS#8 "PRIVATE KEY", PKCS#1
    "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY", with or without a leading
    "EC PARAMETERS" block) or DER (PKCS#8, PKCS#1, SEC1).

    @raise InvalidKey: malformed, encrypted, or not RSA / EC P-256, P-384,
        P-521 / Ed25519.
    """
    loader = serialization.load_pem_private_key if _isPEM(data) else serialization.load_der_private_key
    try:
        key = loader(data, password=None)
    except TypeError:
        # cryptography's way of saying "this key is encrypted".
        raise InvalidKey("private key is encrypted (iked needs an unencrypted key)")
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InvalidKey("malformed private key (%s)" % (_firstLine(e),))
    return _checkSupported(key, _PRIVATE_TYPES, "private")


def loadPublicKey(data):
    """
    Parse a public key: PEM ("PUBLIC KEY" SubjectPublicKeyInfo or PKCS#1
    "RSA PUBLIC KEY", the two forms iked reads from pubkeys/) or DER of
    either.

    @raise InvalidKey: malformed or unsupported.
    """
    loader = serialization.load_pem_public_key if _isPEM(data) else serialization.load_der_public_key
    try:
        key = loader(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InvalidKey("malformed public key (%s)" % (_firstLine(e),))
    return _checkSupported(key, _PUBLIC_TYPES, "public")


def _firstLine(e):
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:120]


def dumpPrivateKey(key, encoding="PEM"):
    """
    Serialize C{key} as unencrypted PKCS#8, C{"PEM"} or C{"DER"}.
    """
    return key.private_bytes(_encoding(encoding), serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def dumpPublicKey(key, encoding="PEM"):
    """
    Serialize the public half of C{key} (public or private) as a
    SubjectPublicKeyInfo, C{"PEM"} or C{"DER"}.
    """
    return publicKeyOf(key).public_bytes(_encoding(encoding), serialization.PublicFormat.SubjectPublicKeyInfo)


def _encoding(name):
    try:
        return {"PEM": serialization.Encoding.PEM, "DER": serialization.Encoding.DER}[name]
    except KeyError:
        raise ValueError("encoding must be PEM or DER, not %r" % (name,))


def publicKeyOf(key):
    """
    The public key of C{key}, which may already be one.
    """
    if hasattr(key, "private_bytes"):
        return key.public_key()
    return key


def subjectPublicKeyInfo(key):
    """
    DER SubjectPublicKeyInfo of C{key} (public or private).
    """
    return dumpPublicKey(key, "DER")


def samePublicKey(a, b):
    """
    Whether C{a} and C{b} (public or private keys) have the same public key.
    Compares the DER SubjectPublicKeyInfo, which is canonical.
    """
    if a is None or b is None:
        return False
    return subjectPublicKeyInfo(a) == subjectPublicKeyInfo(b)


def describeKey(key):
    """
    A short description for logs: C{"RSA-2048"}, C{"ECDSA P-256"},
    C{"Ed25519"}.  Never includes key material.
    """
    key = publicKeyOf(key)
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA-%d" % (key.key_size,)
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVES.get(key.curve.name)
        return "ECDSA %s" % (curve[0] if curve else key.curve.name,)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


def legacyAuthMethod(key):
    """
    The AUTH method a key signs with when RFC 7427 is not negotiated (what
    iked's ca_privkey_to_method picks): RSA_SIG, ECDSA_SHA*_P*; Ed25519 has
    none but DIGITAL_SIGNATURE.
    """
    key = publicKeyOf(key)
    if isinstance(key, rsa.RSAPublicKey):
        return AuthMethod.RSA_SIG
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _CURVES[key.curve.name][2]
    return AuthMethod.DIGITAL_SIGNATURE


def keyFitsMethod(key, method):
    """
    Whether C{key} can authenticate with the iked.conf ikeauth keyword
    C{method}: C{"rsa"} needs RSA, C{"ecdsa256"}/C{"ecdsa384"}/C{"ecdsa521"}
    need EC on that curve, C{"rfc7427"} and C{"signature"} (iked's default:
    any signature) take any supported key.

    @raise ValueError: C{method} is not a signature method.
    """
    if method not in SIGNATURE_METHODS:
        raise ValueError("not a signature authentication method: %r" % (method,))
    key = publicKeyOf(key)
    if method in ("signature", "rfc7427"):
        return True
    if method == "rsa":
        return isinstance(key, rsa.RSAPublicKey)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _CURVES[key.curve.name][3] == method
    return False


def encodeRawPublicKey(key, encoding=None):
    """
    The CERT payload (encoding, data) carrying C{key}'s public key.

    @param encoding: C{None} for what iked 7.2 sends and understands (RSA:
        RAW_RSA_KEY with PKCS#1; EC: 201 with SPKI; Ed25519, which iked 7.2
        does not support, RAW_PUBLIC_KEY), or one of L{RAW_KEY_ENCODINGS}.
    @raise ValueError: C{encoding} cannot carry this key type.
    """
    key = publicKeyOf(key)
    if encoding is None:
        if isinstance(key, rsa.RSAPublicKey):
            encoding = CertEncoding.RAW_RSA_KEY
        elif isinstance(key, ec.EllipticCurvePublicKey):
            encoding = IKED_CERT_ECDSA
        else:
            encoding = CertEncoding.RAW_PUBLIC_KEY
    if encoding == CertEncoding.RAW_RSA_KEY:
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("RAW_RSA_KEY carries only RSA keys")
        data = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return CertEncoding.RAW_RSA_KEY, data
    if encoding == IKED_CERT_ECDSA:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("encoding 201 carries only EC keys")
        return IKED_CERT_ECDSA, subjectPublicKeyInfo(key)
    if encoding == CertEncoding.RAW_PUBLIC_KEY:
        return CertEncoding.RAW_PUBLIC_KEY, subjectPublicKeyInfo(key)
    raise ValueError("not a raw public key encoding: %r" % (encoding,))


def decodeRawPublicKey(encoding, data):
    """
    Parse the public key of a raw-key CERT payload, strictly: RAW_RSA_KEY
    must be a DER PKCS#1 RSAPublicKey, 201 a DER SPKI of an EC key,
    RAW_PUBLIC_KEY any supported DER SPKI; nothing may trail the key.

    @raise InvalidKey: otherwise.
    """
    data = bytes(data)
    try:
        if encoding == CertEncoding.RAW_RSA_KEY:
            # load_der_public_key takes PKCS#1 as well as SPKI; insist on
            # PKCS#1 by re-encoding.
            key = serialization.load_der_public_key(data)
            if not isinstance(key, rsa.RSAPublicKey) or key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.PKCS1
            ) != data:
                raise InvalidKey("RAW_RSA_KEY is not a DER RSAPublicKey")
        elif encoding in (IKED_CERT_ECDSA, CertEncoding.RAW_PUBLIC_KEY):
            key = serialization.load_der_public_key(data)
            if subjectPublicKeyInfo(key) != data:
                raise InvalidKey("raw public key is not a DER SubjectPublicKeyInfo")
            if encoding == IKED_CERT_ECDSA and not isinstance(key, ec.EllipticCurvePublicKey):
                raise InvalidKey("CERT encoding 201 must carry an EC key")
        else:
            raise InvalidKey("not a raw public key encoding: %r" % (encoding,))
    except (ValueError, UnsupportedAlgorithm) as e:
        if isinstance(e, InvalidKey):
            raise
        raise InvalidKey("malformed raw public key (%s)" % (_firstLine(e),))
    return _checkSupported(key, _PUBLIC_TYPES, "public")

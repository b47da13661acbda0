# -*- test-case-name: tests.test_auth_schemes -*-
"""
Which signature scheme our AUTH payload uses within the method chosen
(L{ikedtx.crypto.signature.chooseSignatureMethod}): with an RSA key and
DIGITAL_SIGNATURE (RFC 7427, used when the peer announced
SIGNATURE_HASH_ALGORITHMS or the policy says C{rfc7427}), RSASSA-PSS
rather than PKCS#1 v1.5, as RFC 8247 3.2 recommends; peers that require
PSS (strongSwan's C{rsa/pss} constraints) refuse PKCS#1 v1.5. Peers that
verify RFC 7427 signatures verify PSS too (strongSwan, iked).
"""

from cryptography.hazmat.primitives.asymmetric import rsa

from ikedtx.wire.constants import AuthMethod, HashAlgorithm


def rsaPSS(privateKey, authMethod):
    """
    Whether to sign with RSASSA-PSS: an RSA key under DIGITAL_SIGNATURE.
    """
    return authMethod == AuthMethod.DIGITAL_SIGNATURE and isinstance(privateKey, rsa.RSAPrivateKey)


def describe(authMethod, hashAlgorithm, pss):
    """
    The scheme for logs: C{"DIGITAL_SIGNATURE RSASSA-PSS SHA2_256"}.
    """
    parts = [_name(AuthMethod, authMethod)]
    if pss:
        parts.append("RSASSA-PSS")
    if hashAlgorithm is not None:
        parts.append(_name(HashAlgorithm, hashAlgorithm))
    return " ".join(parts)


def _name(enum, value):
    try:
        return enum(value).name
    except ValueError:
        return str(value)

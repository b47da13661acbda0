# -*- test-case-name: tests.test_auth_strength -*-
"""
Whether a key or certificate is fit to authenticate an IKE peer: the
minimum strength of public keys (RFC 8247 3.3 and 4: RSA below 2048 bits
and curves other than P-256, P-384, P-521 and Ed25519 are refused), and the
key usages of an end-entity certificate (RFC 4945 5.1.3.2, 5.1.3.12).

Each check answers the problem as one line of text, or L{None}.
"""

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

# RFC 8247 3.3: RSA keys of at least 2048 bits.
MIN_RSA_BITS = 2048

# Curves strong enough and implemented in constant time by OpenSSL.
STRONG_CURVES = frozenset(["secp256r1", "secp384r1", "secp521r1"])

# RFC 4945 5.1.3.12: id-kp-ipsecIKE and anyExtendedKeyUsage; RFC 4945
# 5.1.3.12 asks to refuse certificates whose EKU has neither, but serverAuth
# and clientAuth (what strongSwan's pki and most CAs put in VPN certificates,
# and ikectl's CA) and iKEIntermediate (1.3.6.1.5.5.8.2.2, iked's and
# Windows') are as widely used for IKE and are accepted too, as strongSwan
# and iked do.
IPSEC_IKE = ObjectIdentifier("1.3.6.1.5.5.7.3.17")
IKE_INTERMEDIATE = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
ANY_EXTENDED_KEY_USAGE = ObjectIdentifier("2.5.29.37.0")
IKE_USAGES = frozenset([IPSEC_IKE, ANY_EXTENDED_KEY_USAGE, IKE_INTERMEDIATE, ExtendedKeyUsageOID.SERVER_AUTH,
                        ExtendedKeyUsageOID.CLIENT_AUTH])


def keyStrengthProblem(key, minRsaBits=MIN_RSA_BITS):
    """
    Why the public or private C{key} is too weak to authenticate with, or
    L{None}.
    """
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        if key.key_size < minRsaBits:
            return "RSA key of %d bits, below the %d required" % (key.key_size, minRsaBits)
        return None
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        if key.curve.name not in STRONG_CURVES:
            return "elliptic curve %s is not accepted (P-256, P-384, P-521 are)" % (key.curve.name,)
        return None
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey, ed448.Ed448PublicKey,
                        ed448.Ed448PrivateKey)):
        return None
    if isinstance(key, (dsa.DSAPublicKey, dsa.DSAPrivateKey)):
        return "DSA keys are not accepted"
    return "%s keys are not accepted" % (type(key).__name__,)


def certificateKeyProblem(certificate, minRsaBits=MIN_RSA_BITS):
    """
    Why the key of C{certificate} is too weak (or unreadable), or L{None}.
    """
    try:
        key = certificate.public_key()
    except (ValueError, TypeError) as e:
        return "unusable public key (%s)" % (str(e).splitlines()[0][:120] if str(e) else type(e).__name__,)
    return keyStrengthProblem(key, minRsaBits)


def usageProblem(certificate):
    """
    Why the end-entity C{certificate} may not sign IKE AUTH payloads, or
    L{None}: a keyUsage without digitalSignature and nonRepudiation
    (RFC 4945 5.1.3.2), or an extendedKeyUsage with none of L{IKE_USAGES}
    (RFC 4945 5.1.3.12).
    """
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        return "its keyUsage allows neither digitalSignature nor nonRepudiation"
    try:
        extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        extended = None
    if extended is not None and not IKE_USAGES.intersection(extended):
        return "its extendedKeyUsage (%s) does not allow IKE" % (
            ", ".join(getattr(oid, "_name", None) or oid.dotted_string for oid in extended),)
    return None

# -*- test-case-name: tests.test_crypto_sk -*-
"""
Exceptions raised by L{ikedtx.crypto}.

Every error a peer's input can cause derives from L{CryptoError}, so the core
can turn any of them into the right Notify (INVALID_KE_PAYLOAD, INVALID_SYNTAX,
AUTHENTICATION_FAILED) or into a silent drop (a bad ICV).  None of them carries
key material in its message.
"""


class CryptoError(Exception):
    """
    Base class of every exception raised by L{ikedtx.crypto}.
    """


class UnsupportedTransform(CryptoError, LookupError):
    """
    A registry has no provider for this transform id (or this key length).
    """


class InvalidKeyLength(CryptoError, ValueError):
    """
    A key or a Key Length attribute does not fit the transform.
    """


class InvalidKeyExchange(CryptoError, ValueError):
    """
    A peer's Key Exchange data is malformed or unsafe: wrong length, out of
    range (RFC 7296 3.4, RFC 6989), not a point on the curve (RFC 5903), a
    low-order X25519/X448 point (all-zero shared secret, RFC 7748 6), or a
    malformed ML-KEM encapsulation key or ciphertext (FIPS 203 7.2, 7.3).
    The value must never be used.
    """


class IntegrityError(CryptoError):
    """
    An SK or SKF payload failed to open: bad ICV or AEAD tag, bad padding, or
    too short (RFC 7296 3.14).  RFC 7296 2.21.2: such a message is dropped.
    """


class AuthenticationError(CryptoError):
    """
    An AUTH payload did not verify: wrong key type for the method, malformed
    or unacceptable RFC 7427 AlgorithmIdentifier, disallowed hash, or a bad
    signature or MAC.
    """

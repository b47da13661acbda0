# -*- test-case-name: tests.test_auth_store -*-
"""
Exceptions of the auth layer.

Two families, like the rest of ikedtx: the peer's fault
(L{AuthenticationFailed}: the IKE core answers AUTHENTICATION_FAILED and logs
the reason) and ours (L{CredentialError}: the local configuration cannot
produce what the policy asks for).  Malformed input is a ValueError
(L{InvalidIdentity}, L{InvalidKey}, L{MalformedCertificateRequest}).

No exception message carries key material or a password.
"""


class AuthenticationFailed(Exception):
    """
    The peer's identity or credentials were not accepted.

    @ivar reason: a one-line human readable reason, safe to log.
    """

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class UnsupportedCertificateEncoding(AuthenticationFailed):
    """
    The peer sent a CERT payload in an encoding we do not handle (HASH_URL,
    PKCS7, ...).

    @ivar encoding: the CERT encoding number.
    """

    def __init__(self, reason, encoding):
        AuthenticationFailed.__init__(self, reason)
        self.encoding = encoding


class CredentialError(Exception):
    """
    We cannot authenticate ourselves as the policy asks.
    """


class NoPrivateKey(CredentialError):
    """
    No usable private/local.key was loaded.
    """


class KeyMethodMismatch(CredentialError):
    """
    The policy's authentication method (e.g. ecdsa256) does not fit the
    local private key (e.g. RSA).

    @ivar method: the policy's method name.
    @ivar keyDescription: e.g. C{"RSA-2048"}.
    """

    def __init__(self, method, keyDescription):
        CredentialError.__init__(
            self, "auth method %s does not fit the local key (%s)" % (method, keyDescription)
        )
        self.method = method
        self.keyDescription = keyDescription


class InvalidIdentity(ValueError):
    """
    Identity data or text that does not parse as its ID type requires.
    """


class InvalidDN(InvalidIdentity):
    """
    Text that is not a distinguished name in iked's C{/type=value/...}
    syntax.

    @ivar reason: what is wrong, without the text (C{"missing value"}).
    @ivar text: the text.
    """

    def __init__(self, reason, text):
        InvalidIdentity.__init__(self, "%s in DN %r" % (reason, text))
        self.reason = reason
        self.text = text


class InvalidKey(ValueError):
    """
    Key material that does not parse (or is of an unsupported type).
    """


class MalformedCertificateRequest(ValueError):
    """
    CERTREQ data that is not a list of SHA-1 hashes.
    """

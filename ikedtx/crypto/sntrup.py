# -*- test-case-name: tests.test_crypto_sntrup -*-
"""
OpenBSD iked's hybrid key exchange C{sntrup761x25519}: Streamlined NTRU
Prime sntrup761 (the NTRU Prime round 3 KEM, as OpenSSH and iked use it)
combined with X25519, under iked's private-use transform id 1035 (RFC 7296
3.3.2: ids 1024-65535 are for private use; no IANA number exists).

The KE payload data, as OpenBSD iked 7.2 (Debian's openiked 7.2-1) sends
and expects it, and as the interop tests in L{tests.test_interop_pq} check
both ways:

 - initiator: sntrup761 public key (1158 bytes) | X25519 public key (32);
 - responder: sntrup761 ciphertext (1039 bytes) | X25519 public key (32);
 - shared secret (g^ir for SKEYSEED and KEYMAT): see L{combine}.

The sntrup761 arithmetic is never done in Python: it comes from the
compiled C{pqcrypto} binding (a Rust implementation, PyO3), an optional
dependency (C{pip install ikedtx[pq]}).  Without it L{AVAILABLE} is false,
the method is not registered in L{ikedtx.crypto.kex}, and iked.conf's
C{group sntrup761x25519} is refused with L{MISSING_REASON}.  X25519 comes
from pyca/cryptography.

Randomness: the X25519 scalar comes from the C{random} callable like every
other method's private value; the binding offers no key generation or
encapsulation with caller-given randomness, so the sntrup761 key pair and
the encapsulation draw from the operating system inside the binding.  The
binding returns the sntrup761 secret key and shared key as immutable
C{bytes}, which cannot be wiped; ikedtx keeps its own copy of the secret
key in a bytearray that L{wipe} zeroes, and the combined shared secret is a
bytearray like every other method's.

Peer values: the lengths are checked exactly; the X25519 part gets the
checks of L{ikedtx.crypto.kex.XDHMethod} (an all-zero shared secret is
refused, RFC 7748 6).  Every sntrup761 public key and ciphertext of the
right length is a valid input of the KEM (its decoding is total, and
decapsulation rejects implicitly), so nothing more can be checked there.
"""

import hashlib
import importlib.util
import sys

from cryptography.hazmat.primitives.asymmetric import x25519
from zope.interface import implementer

from ikedtx.crypto._util import defaultRandom, requireRandom, wipe
from ikedtx.crypto.errors import CryptoError, InvalidKeyExchange
from ikedtx.crypto.interfaces import IKeyExchange, IKeyExchangeMethod


def _findBinding():
    """
    Whether the pqcrypto package is installed, found without importing it
    (its compiled modules cost about 1 MB of RSS: they are loaded when the
    method is first used, L{_loadBinding}).
    """
    try:
        return importlib.util.find_spec("pqcrypto") is not None
    except (ImportError, ValueError):  # pragma: no cover
        return False


def _loadBinding():
    try:
        from pqcrypto.kem import sntrup_761
    except ImportError:  # pragma: no cover (the test extra installs it)
        return None
    return sntrup_761


def __getattr__(name):
    # The binding module, C{_sntrup761} (None if it cannot be imported), is
    # imported when first read.
    if name == "_sntrup761":
        binding = _loadBinding()
        globals()["_sntrup761"] = binding
        return binding
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


# OpenBSD iked's private-use transform id (iked.h IKEV2_XFORMDH_X_SNTRUP761X25519).
SNTRUP761X25519 = 1035

PUBLIC_KEY_SIZE = 1158
SECRET_KEY_SIZE = 1763
CIPHERTEXT_SIZE = 1039
KEM_KEY_SIZE = 32
X25519_SIZE = 32

AVAILABLE = _findBinding()
MISSING_REASON = ("sntrup761x25519 needs the optional compiled sntrup761 binding: "
                  "pip install 'ikedtx[pq]' (the pqcrypto package)")


def combine(kemKey, x25519Shared):
    """
    The shared secret of sntrup761x25519 as OpenBSD iked computes it:
    SHA-512 over the sntrup761 shared key followed by the X25519 shared
    secret (64 bytes; no public value is hashed in: the IKE SA's AUTH
    payloads cover both KE payloads).  Confirmed against openiked 7.2: its
    C{DHSECRET} (iked -vvv) equals this value, and IKE SAs with it
    authenticate in both directions.

    @return: a bytearray of 64 bytes.
    """
    digest = hashlib.sha512()
    digest.update(bytes(kemKey))
    digest.update(bytes(x25519Shared))
    return bytearray(digest.digest())


def _x25519(private, peerPublic, name):
    try:
        peer = x25519.X25519PublicKey.from_public_bytes(peerPublic)
        shared = bytearray(private.exchange(peer))
    except ValueError:
        raise InvalidKeyExchange("%s: low-order or malformed X25519 public value" % (name,))
    if not any(shared):
        raise InvalidKeyExchange("%s: all-zero X25519 shared secret" % (name,))
    return shared


def _exactly(name, data, size):
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != size:
        raise InvalidKeyExchange("%s: KE data of %d bytes, expected %d" % (
            name, len(data) if hasattr(data, "__len__") else -1, size))
    return bytes(data)


@implementer(IKeyExchange)
class SntrupX25519Exchange:
    """
    The initiator's side: an sntrup761 key pair and an X25519 key.

    @ivar method: the L{SntrupX25519Method}.
    @ivar publicData: sntrup761 public key | X25519 public key.
    """

    def __init__(self, method, publicData, secretKey, x25519Private):
        self.method = method
        self.publicData = bytes(publicData)
        self._secretKey = secretKey
        self._x25519 = x25519Private

    def complete(self, peerData):
        if self._secretKey is None:
            raise CryptoError("this key exchange was wiped")
        data = _exactly(self.method.name, peerData, self.method.responderDataSize)
        ciphertext, peerX25519 = data[:CIPHERTEXT_SIZE], data[CIPHERTEXT_SIZE:]
        xShared = _x25519(self._x25519, peerX25519, self.method.name)
        try:
            kemKey = bytearray(self.method._binding.decaps(bytes(self._secretKey), ciphertext))
        except (ValueError, TypeError):
            wipe(xShared)
            raise InvalidKeyExchange("%s: ciphertext refused" % (self.method.name,))
        try:
            return combine(kemKey, xShared)
        finally:
            wipe(kemKey, xShared)

    def wipe(self):
        wipe(self._secretKey)
        self._secretKey = None
        self._x25519 = None

    def __repr__(self):
        return "<%s %s>" % (self.__class__.__name__, self.method.name)


@implementer(IKeyExchangeMethod)
class SntrupX25519Method:
    """
    sntrup761x25519 as an L{IKeyExchangeMethod}: a KEM from IKE's point of
    view (the two sides send different data), with an X25519 exchange
    carried beside the sntrup761 one.
    """

    transformId = SNTRUP761X25519
    name = "sntrup761x25519"
    kem = True
    constantTime = True
    initiatorDataSize = PUBLIC_KEY_SIZE + X25519_SIZE
    responderDataSize = CIPHERTEXT_SIZE + X25519_SIZE
    sharedSecretSize = 64

    def __init__(self, binding=None):
        """
        @param binding: the sntrup761 module (C{keygen}, C{encaps},
            C{decaps}); the pqcrypto one by default.
        """
        if binding is None and globals().get("_sntrup761", True) is None:
            raise CryptoError(MISSING_REASON)
        self._given = binding

    @property
    def _binding(self):
        if self._given is not None:
            return self._given
        binding = sys.modules[__name__]._sntrup761
        if binding is None:
            raise CryptoError(MISSING_REASON)
        return binding

    def _x25519Key(self, random):
        private = x25519.X25519PrivateKey.from_private_bytes(requireRandom(random, X25519_SIZE))
        return private, private.public_key().public_bytes_raw()

    def generate(self, random=defaultRandom):
        publicKey, secretKey = self._binding.keygen()
        private, public = self._x25519Key(random)
        return SntrupX25519Exchange(self, publicKey + public, bytearray(secretKey), private)

    def respond(self, peerData, random=defaultRandom):
        data = _exactly(self.name, peerData, self.initiatorDataSize)
        publicKey, peerX25519 = data[:PUBLIC_KEY_SIZE], data[PUBLIC_KEY_SIZE:]
        private, public = self._x25519Key(random)
        xShared = _x25519(private, peerX25519, self.name)
        try:
            ciphertext, kemKey = self._binding.encaps(publicKey)
        except (ValueError, TypeError):
            wipe(xShared)
            raise InvalidKeyExchange("%s: sntrup761 public key refused" % (self.name,))
        kemKey = bytearray(kemKey)
        try:
            return ciphertext + public, combine(kemKey, xShared)
        finally:
            wipe(kemKey, xShared)

    def __repr__(self):
        return "<KeyExchangeMethod %s>" % (self.name,)

# -*- test-case-name: tests.test_crypto_kex -*-
"""
Key Exchange Methods (transform type 4 and RFC 9370's ADDKE types),
registered by IANA DhId, behind one API for Diffie-Hellman groups and KEMs:

    method = keyExchangeFor(DhId.ECP_256)
    exchange = method.generate(random)            # initiator
    ke = exchange.publicData                      # -> KEi
    ourData, secret = method.respond(ke, random)  # responder: KEr data, g^ir
    secret = exchange.complete(ourData)           # initiator: g^ir

Peer values are checked before use, and an invalid one raises
L{InvalidKeyExchange}:
 - MODP (RFC 2409, 3526, 5114): exact length (the modulus's, zero-padded,
   RFC 7296 3.4), 1 < y < p - 1 (RFC 6989 2.1), and y^q = 1 mod p for the
   RFC 5114 groups with small subgroups (RFC 6989 2.2).
 - ECP (RFC 5903, RFC 5114 groups 25 and 26, RFC 6954 brainpool): exactly
   x | y, no 0x04 prefix, each coordinate below the field prime and the
   point on the curve (cryptography's point decoding checks both, our own
   code for group 27); the shared secret is the x coordinate only (RFC 5903
   7, RFC 6954 4).  All these curves have cofactor 1, so a point on the
   curve is in the prime-order group; group 27's code also refuses a shared
   point at infinity, which a valid peer value cannot produce.
 - Curve25519/Curve448 (RFC 8031): exact length; an all-zero shared secret
   is refused (RFC 7748 6, RFC 8031 2.3).
 - ML-KEM (draft-ietf-ipsecme-ikev2-mlkem, FIPS 203): the initiator sends
   the encapsulation key, the responder the ciphertext; the key gets the
   length and modulus checks of FIPS 203 7.2, the ciphertext the length
   check of 7.3.
 - sntrup761x25519 (OpenBSD iked's private-use id 1035): exact lengths of
   both parts, the X25519 checks above; see L{ikedtx.crypto.sntrup}.  It
   is registered only when the optional compiled binding is installed;
   otherwise keyExchangeFor(1035) raises L{UnsupportedTransform} saying
   what to install.

Private values come from the C{random} callable: a MODP exponent of the
group's C{exponentSize}, an ECP scalar of the curve's size (resampled until
1 <= d < n), the X25519/X448 scalar, and the 64-byte ML-KEM seed d | z.
One exception: cryptography offers no ML-KEM encapsulation with caller-given
randomness, so ML-KEM-768/1024 responders take theirs from OpenSSL.
ML-KEM-512 (DhId 35) is refused: cryptography does not offer it and ikedtx
does no secret ML-KEM arithmetic in Python (L{UNSUPPORTED_METHODS}).

cryptography 50 has no brainpoolP224r1, so group 27 is computed in pure
Python by L{ikedtx.crypto._weierstrass} (a Montgomery ladder with complete
projective formulas, checked against RFC 6932's test vector and, on
brainpoolP256r1, against cryptography).  Python's integer arithmetic is not
constant-time, so that is best effort; one key
generation plus one shared secret takes about 5 ms (about 1 ms for group
28 through cryptography).

FFDH is deprecated in pyca/cryptography 50 (it warns on use); the MODP
groups still use it, with the warning silenced here, because it computes in
constant time where Python's pow() would not.
"""

import contextlib
import warnings

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dh, ec, mlkem as _cryptographyMLKEM
from cryptography.hazmat.primitives.asymmetric import x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from zope.interface import implementer

from ikedtx.crypto import _weierstrass, mlkem as _mlkem, sntrup as _sntrup
from ikedtx.crypto._modp import MODP_GROUPS
from ikedtx.crypto._util import defaultRandom, requireRandom, wipe
from ikedtx.crypto.errors import CryptoError, InvalidKeyExchange, UnsupportedTransform
from ikedtx.crypto.interfaces import IKeyExchange, IKeyExchangeMethod
from ikedtx.wire.constants import DhId

try:
    from cryptography.utils import CryptographyDeprecationWarning
except ImportError:  # pragma: no cover
    CryptographyDeprecationWarning = DeprecationWarning


@contextlib.contextmanager
def _ffdh():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


class _Exchange:
    """
    Common part of the initiator-side exchanges.
    """

    def __init__(self, method, publicData):
        self.method = method
        self.publicData = bytes(publicData)
        self._private = None

    def _privateKey(self):
        if self._private is None:
            raise CryptoError("this key exchange was wiped")
        return self._private

    def wipe(self):
        # A private value held as a bytearray (the pure-Python methods') is
        # zeroed, not only dropped; key objects of cryptography are dropped.
        wipe(self._private)
        self._private = None

    def __repr__(self):
        return "<%s %s>" % (self.__class__.__name__, self.method.name)


def _checkLength(method, data, size):
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != size:
        raise InvalidKeyExchange("%s: KE data of %d bytes, expected %d" % (
            method.name, len(data) if hasattr(data, "__len__") else -1, size))
    return bytes(data)


@implementer(IKeyExchange)
class _DHExchange(_Exchange):
    def complete(self, peerData):
        return self.method._shared(self._privateKey(), peerData)


class _DHMethod:
    """
    Shared logic of the Diffie-Hellman methods: respond() is generate() and
    complete(), with the peer's value validated before anything else.
    """

    kem = False
    constantTime = True

    def generate(self, random=defaultRandom):
        private, publicData = self._newKey(random)
        exchange = _DHExchange(self, publicData)
        exchange._private = private
        return exchange

    def respond(self, peerData, random=defaultRandom):
        self._validate(peerData)
        exchange = self.generate(random)
        try:
            return exchange.publicData, exchange.complete(peerData)
        finally:
            exchange.wipe()

    def __repr__(self):
        return "<KeyExchangeMethod %s>" % (self.name,)


@implementer(IKeyExchangeMethod)
class ModpMethod(_DHMethod):
    """
    A MODP group.

    @ivar group: the L{ikedtx.crypto._modp.ModpGroup}.
    """

    def __init__(self, group, name):
        self.group = group
        self.transformId = group.dhId
        self.name = name
        self.initiatorDataSize = self.responderDataSize = self.sharedSecretSize = group.size
        with _ffdh():
            if group.q is None:
                self._numbers = dh.DHParameterNumbers(group.p, group.g)
            else:
                self._numbers = dh.DHParameterNumbers(group.p, group.g, group.q)

    def _newKey(self, random):
        group = self.group
        upper = (group.q or group.p - 1) - 1
        while True:
            x = int.from_bytes(requireRandom(random, group.exponentSize), "big")
            if 2 <= x <= upper:
                break
        with _ffdh():
            # cryptography builds a private key from (x, y) without checking
            # that y = g^x; computing g^x as the "shared secret" with the
            # generator as peer keeps the exponentiation in OpenSSL's
            # constant-time code instead of Python's pow().
            provisional = dh.DHPrivateNumbers(
                x, dh.DHPublicNumbers(group.g, self._numbers)).private_key()
            y = int.from_bytes(
                provisional.exchange(dh.DHPublicNumbers(group.g, self._numbers).public_key()),
                "big")
            private = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(y, self._numbers)).private_key()
        del x
        return private, y.to_bytes(group.size, "big")

    def _validate(self, peerData):
        data = _checkLength(self, peerData, self.group.size)
        y = int.from_bytes(data, "big")
        p = self.group.p
        if not 1 < y < p - 1:
            raise InvalidKeyExchange("%s: public value out of range" % (self.name,))
        if self.group.q is not None and pow(y, self.group.q, p) != 1:
            raise InvalidKeyExchange("%s: public value not in the prime-order subgroup" % (
                self.name,))
        return y

    def _shared(self, private, peerData):
        y = self._validate(peerData)
        try:
            with _ffdh():
                secret = private.exchange(dh.DHPublicNumbers(y, self._numbers).public_key())
        except ValueError:
            raise InvalidKeyExchange("%s: public value refused" % (self.name,))
        return bytearray(secret.rjust(self.group.size, b"\x00"))


@implementer(IKeyExchangeMethod)
class ECPMethod(_DHMethod):
    """
    An elliptic curve group over a prime field (RFC 5903, RFC 5114, RFC 6954).

    @ivar curve: the cryptography curve.
    @ivar coordinateSize: bytes of one coordinate.
    """

    def __init__(self, transformId, name, curve):
        self.transformId = transformId
        self.name = name
        self.curve = curve
        self.coordinateSize = (curve.key_size + 7) // 8
        self.initiatorDataSize = self.responderDataSize = 2 * self.coordinateSize
        self.sharedSecretSize = self.coordinateSize
        self._order = curve.group_order

    def _newKey(self, random):
        size = self.coordinateSize
        mask = (1 << self._order.bit_length()) - 1
        while True:
            d = int.from_bytes(requireRandom(random, size), "big") & mask
            if 1 <= d < self._order:
                break
        private = ec.derive_private_key(d, self.curve)
        del d
        point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return private, point[1:]

    def _validate(self, peerData):
        data = _checkLength(self, peerData, 2 * self.coordinateSize)
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(self.curve, b"\x04" + data)
        except ValueError:
            raise InvalidKeyExchange("%s: not a point on the curve" % (self.name,))

    def _shared(self, private, peerData):
        peer = self._validate(peerData)
        try:
            secret = private.exchange(ec.ECDH(), peer)
        except ValueError:
            raise InvalidKeyExchange("%s: public value refused" % (self.name,))
        return bytearray(secret.rjust(self.coordinateSize, b"\x00"))


@implementer(IKeyExchangeMethod)
class WeierstrassMethod(_DHMethod):
    """
    An elliptic curve group over a prime field computed in pure Python by
    L{ikedtx.crypto._weierstrass}, for the curve cryptography lacks
    (brainpoolP224r1, group 27).  The KE data, the shared secret, the
    scalar's draw and the checks of the peer's value are those of
    L{ECPMethod}; the private scalar is kept as a bytearray, which wipe()
    zeroes.  Python's integers are not constant-time: C{constantTime} is
    false, and a configuration that names this group gets a warning.

    @ivar curve: the L{ikedtx.crypto._weierstrass.ShortWeierstrassCurve}
        (prime order: only cofactor 1 is supported).
    @ivar coordinateSize: bytes of one coordinate.
    """

    def __init__(self, transformId, name, curve):
        if curve.cofactor != 1:
            raise ValueError("only prime-order curves are supported")
        self.transformId = transformId
        self.name = name
        self.curve = curve
        self.coordinateSize = curve.coordinateSize
        self.initiatorDataSize = self.responderDataSize = 2 * self.coordinateSize
        self.sharedSecretSize = self.coordinateSize

    constantTime = False

    def _newKey(self, random):
        size = self.coordinateSize
        order = self.curve.order
        mask = (1 << order.bit_length()) - 1
        # Rejection sampling, as in ECPMethod: no bias towards small scalars.
        while True:
            private = bytearray(requireRandom(random, size))
            d = int.from_bytes(private, "big") & mask
            if 1 <= d < order:
                break
            wipe(private)
        private[:] = d.to_bytes(size, "big")
        x, y = self.curve.multiply(d, self.curve.generator)
        del d
        return private, x.to_bytes(size, "big") + y.to_bytes(size, "big")

    def _validate(self, peerData):
        data = _checkLength(self, peerData, 2 * self.coordinateSize)
        size = self.coordinateSize
        point = int.from_bytes(data[:size], "big"), int.from_bytes(data[size:], "big")
        # contains() also wants each coordinate below p; with cofactor 1
        # every affine point on the curve is in the order-n group, and the
        # point at infinity has no x | y form (b != 0, so (0, 0), the
        # all-zero value, is not on the curve).
        if not self.curve.contains(point):
            raise InvalidKeyExchange("%s: not a point on the curve" % (self.name,))
        return point

    def _shared(self, private, peerData):
        point = self._validate(peerData)
        d = int.from_bytes(private, "big")
        shared = self.curve.multiply(d, point)
        del d
        if shared is None:
            raise InvalidKeyExchange("%s: shared secret is the point at infinity" % (
                self.name,))
        return bytearray(shared[0].to_bytes(self.coordinateSize, "big"))


@implementer(IKeyExchangeMethod)
class XDHMethod(_DHMethod):
    """
    Curve25519 or Curve448 (RFC 8031).
    """

    def __init__(self, transformId, name, privateClass, publicClass, size):
        self.transformId = transformId
        self.name = name
        self._privateClass = privateClass
        self._publicClass = publicClass
        self.initiatorDataSize = self.responderDataSize = self.sharedSecretSize = size

    def _newKey(self, random):
        private = self._privateClass.from_private_bytes(
            requireRandom(random, self.sharedSecretSize))
        return private, private.public_key().public_bytes_raw()

    def _validate(self, peerData):
        data = _checkLength(self, peerData, self.sharedSecretSize)
        try:
            return self._publicClass.from_public_bytes(data)
        except ValueError:
            raise InvalidKeyExchange("%s: malformed public value" % (self.name,))

    def _shared(self, private, peerData):
        peer = self._validate(peerData)
        try:
            secret = bytearray(private.exchange(peer))
        except ValueError:
            raise InvalidKeyExchange("%s: low-order public value" % (self.name,))
        if not any(secret):
            raise InvalidKeyExchange("%s: all-zero shared secret" % (self.name,))
        return secret


@implementer(IKeyExchange)
class _KEMExchange(_Exchange):
    def complete(self, peerData):
        return self.method._decapsulate(self._privateKey(), peerData)


@implementer(IKeyExchangeMethod)
class MLKEMMethod:
    """
    ML-KEM as an IKEv2 key exchange (draft-ietf-ipsecme-ikev2-mlkem): the
    initiator's KE data is the encapsulation key, the responder's the
    ciphertext, the shared secret the 32-byte K.  All ML-KEM arithmetic is
    pyca/cryptography's (OpenSSL); this class only checks lengths and the
    modulus of the peer's (public) encapsulation key.

    @ivar parameters: the L{ikedtx.crypto.mlkem.MLKEMParameters} (sizes and
        the FIPS 203 7.2 input check).
    @ivar cryptographyClass: cryptography's private key class for this size.
    """

    kem = True
    constantTime = True
    sharedSecretSize = 32

    def __init__(self, transformId, name, parameters, cryptographyClass,
                 cryptographyPublicClass):
        self.transformId = transformId
        self.name = name
        self.parameters = parameters
        self.cryptographyClass = cryptographyClass
        self._publicClass = cryptographyPublicClass
        self.initiatorDataSize = parameters.encapsulationKeySize
        self.responderDataSize = parameters.ciphertextSize

    def generate(self, random=defaultRandom):
        seed = bytearray(requireRandom(random, 64))
        try:
            private = self.cryptographyClass.from_seed_bytes(bytes(seed))
        finally:
            wipe(seed)
        exchange = _KEMExchange(self, private.public_key().public_bytes_raw())
        exchange._private = private
        return exchange

    def respond(self, peerData, random=defaultRandom):
        ek = _checkLength(self, peerData, self.initiatorDataSize)
        if not self.parameters.checkEncapsulationKey(ek):
            raise InvalidKeyExchange("%s: encapsulation key fails the modulus check" % (
                self.name,))
        try:
            publicKey = self._publicClass.from_public_bytes(ek)
            secret, ciphertext = publicKey.encapsulate()
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidKeyExchange("%s: encapsulation key refused" % (self.name,))
        return ciphertext, bytearray(secret)

    def _decapsulate(self, private, peerData):
        ciphertext = _checkLength(self, peerData, self.responderDataSize)
        try:
            return bytearray(private.decapsulate(ciphertext))
        except ValueError:
            raise InvalidKeyExchange("%s: ciphertext refused" % (self.name,))

    def __repr__(self):
        return "<KeyExchangeMethod %s>" % (self.name,)


# Methods with an IANA id that ikedtx refuses, and why.
UNSUPPORTED_METHODS = {
    DhId.ML_KEM_512: "mlkem512 is not supported: pyca/cryptography offers ML-KEM-768 and "
                     "ML-KEM-1024 only, and ikedtx does no ML-KEM arithmetic in Python",
}


_MODP_NAMES = {
    DhId.MODP_768: "modp768", DhId.MODP_1024: "modp1024", DhId.MODP_1536: "modp1536",
    DhId.MODP_2048: "modp2048", DhId.MODP_3072: "modp3072", DhId.MODP_4096: "modp4096",
    DhId.MODP_6144: "modp6144", DhId.MODP_8192: "modp8192",
    DhId.MODP_1024_160: "modp1024-160", DhId.MODP_2048_224: "modp2048-224",
    DhId.MODP_2048_256: "modp2048-256",
}

KEY_EXCHANGE_METHODS = {}

for _dhId, _group in MODP_GROUPS.items():
    KEY_EXCHANGE_METHODS[_dhId] = ModpMethod(_group, _MODP_NAMES[_dhId])

for _dhId, _name, _curve in (
        (DhId.ECP_256, "ecp256", ec.SECP256R1()),
        (DhId.ECP_384, "ecp384", ec.SECP384R1()),
        (DhId.ECP_521, "ecp521", ec.SECP521R1()),
        (DhId.ECP_192, "ecp192", ec.SECP192R1()),
        (DhId.ECP_224, "ecp224", ec.SECP224R1()),
        (DhId.BRAINPOOL_256, "brainpool256", ec.BrainpoolP256R1()),
        (DhId.BRAINPOOL_384, "brainpool384", ec.BrainpoolP384R1()),
        (DhId.BRAINPOOL_512, "brainpool512", ec.BrainpoolP512R1())):
    KEY_EXCHANGE_METHODS[_dhId] = ECPMethod(_dhId, _name, _curve)

# cryptography has no brainpoolP224r1: group 27 is computed in Python.
KEY_EXCHANGE_METHODS[DhId.BRAINPOOL_224] = WeierstrassMethod(
    DhId.BRAINPOOL_224, "brainpool224", _weierstrass.BRAINPOOL_P224R1)
KEY_EXCHANGE_METHODS[DhId.CURVE25519] = XDHMethod(
    DhId.CURVE25519, "curve25519", x25519.X25519PrivateKey, x25519.X25519PublicKey, 32)
KEY_EXCHANGE_METHODS[DhId.CURVE448] = XDHMethod(
    DhId.CURVE448, "curve448", x448.X448PrivateKey, x448.X448PublicKey, 56)
KEY_EXCHANGE_METHODS[DhId.ML_KEM_768] = MLKEMMethod(
    DhId.ML_KEM_768, "mlkem768", _mlkem.ML_KEM_768, _cryptographyMLKEM.MLKEM768PrivateKey,
    _cryptographyMLKEM.MLKEM768PublicKey)
KEY_EXCHANGE_METHODS[DhId.ML_KEM_1024] = MLKEMMethod(
    DhId.ML_KEM_1024, "mlkem1024", _mlkem.ML_KEM_1024, _cryptographyMLKEM.MLKEM1024PrivateKey,
    _cryptographyMLKEM.MLKEM1024PublicKey)

# OpenBSD iked's hybrid sntrup761x25519 (private-use id 1035), when the
# optional compiled sntrup761 binding is installed.
if _sntrup.AVAILABLE:
    KEY_EXCHANGE_METHODS[_sntrup.SNTRUP761X25519] = _sntrup.SntrupX25519Method()

del _dhId, _group, _name, _curve


def variableTimeMethods():
    """
    Return the ids of the key exchange methods whose secret arithmetic is
    not constant-time (pure Python), for the configuration's warnings.
    """
    return frozenset(i for i, method in KEY_EXCHANGE_METHODS.items() if not method.constantTime)


def keyExchangeFor(dhId):
    """
    Return the L{IKeyExchangeMethod} for C{dhId}, or raise
    L{UnsupportedTransform} (also for NONE).
    """
    try:
        return KEY_EXCHANGE_METHODS[dhId]
    except (KeyError, TypeError):
        if dhId == _sntrup.SNTRUP761X25519:
            raise UnsupportedTransform(_sntrup.MISSING_REASON)
        if dhId in UNSUPPORTED_METHODS:
            raise UnsupportedTransform(UNSUPPORTED_METHODS[dhId])
        raise UnsupportedTransform("no key exchange method with id %r" % (dhId,))

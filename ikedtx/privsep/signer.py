# -*- test-case-name: tests.test_privsep_commands -*-
"""
Signing with the local private key across the privilege boundary: the key
stays in the privileged parent; the worker holds a L{remoteKey} that looks
like a cryptography private key (C{isinstance}, C{public_key()},
C{key_size}, C{curve}) and signs by asking the parent.

The worker's core signs synchronously (C{AuthTask} builds the AUTH payload
in one call), so the proxy makes a blocking request on a socketpair of its
own, apart from the AMP channel: the parent answers from its reactor within
a signature's time, and the worker, which serves peers one event at a time
anyway, waits only that long (at most L{TIMEOUT} seconds, then the AUTH
fails). Making the auth task wait for the signature as it waits for SPIs
would have spread an asynchronous step through IKE_AUTH's build path in
the core for no gain in what the worker can do.

A request is one frame (a 4-byte length, then JSON): the scheme
(C{pkcs1v15}, C{pss}, C{ecdsa}, C{pure}), the hash name, the PSS salt
length and the data; the answer is C{{"signature": HEX}} or
C{{"error": TEXT}}. The parent checks every field (L{parseRequest}).
"""

import json
import socket
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

#: The most data one request signs (AUTH octets: a message, a nonce and a
#: MAC, plus RFC 9242 IntAuth values).
MAX_SIGN_BYTES = 256 * 1024
#: The longest frame either way.
MAX_FRAME = 2 * MAX_SIGN_BYTES + 1024
#: Seconds the worker waits for a signature.
TIMEOUT = 10.0

_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_SCHEMES = ("pkcs1v15", "pss", "ecdsa", "pure")


class SigningError(Exception):
    """
    The parent refused or could not make a signature.
    """


def _frame(obj):
    data = json.dumps(obj, separators=(",", ":")).encode("ascii")
    return struct.pack("!I", len(data)) + data


# The worker's side

class RemoteSigner:
    """
    The worker's end of the signing socketpair (blocking).

    @ivar sock: the connected C{socket.socket}.
    """

    def __init__(self, sock, timeout=TIMEOUT):
        self.sock = sock
        self.sock.setblocking(True)
        self.sock.settimeout(timeout)

    def sign(self, scheme, hashName, saltLength, data):
        request = {"scheme": scheme, "hash": hashName, "salt": saltLength, "data": bytes(data).hex()}
        try:
            self.sock.sendall(_frame(request))
            answer = self._readFrame()
        except (OSError, ValueError) as e:
            raise SigningError("no signature from the privileged process: %s" % (e,))
        if "signature" in answer:
            return bytes.fromhex(answer["signature"])
        raise SigningError("the privileged process did not sign: %s" % (answer.get("error"),))

    def _readExactly(self, n):
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ValueError("connection closed")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _readFrame(self):
        (length,) = struct.unpack("!I", self._readExactly(4))
        if length > MAX_FRAME:
            raise ValueError("answer too long")
        return json.loads(self._readExactly(length).decode("ascii"))


class _RemoteKey:
    """
    What every remote private key has: its public key and a signer.
    """

    def __init__(self, publicKey, signer):
        self._public = publicKey
        self._signer = signer

    def public_key(self):
        return self._public

    @property
    def key_size(self):
        return self._public.key_size

    def private_bytes(self, *args, **kwargs):
        raise SigningError("the private key stays in the privileged process")

    def __reduce__(self):
        raise TypeError("a remote key is not pickled")


class RemoteRSAKey(_RemoteKey):
    def sign(self, data, pad, algorithm):
        if isinstance(pad, padding.PSS):
            salt = pad._salt_length
            if not isinstance(salt, int):
                # The named lengths: what the parent computes for the hash.
                salt = algorithm.digest_size
            return self._signer.sign("pss", algorithm.name, salt, data)
        return self._signer.sign("pkcs1v15", algorithm.name, None, data)


class RemoteECKey(_RemoteKey):
    @property
    def curve(self):
        return self._public.curve

    def sign(self, data, signatureAlgorithm):
        return self._signer.sign("ecdsa", signatureAlgorithm.algorithm.name, None, data)


class RemoteEdKey(_RemoteKey):
    @property
    def key_size(self):
        raise AttributeError("key_size")

    def sign(self, data):
        return self._signer.sign("pure", None, None, data)


rsa.RSAPrivateKey.register(RemoteRSAKey)
ec.EllipticCurvePrivateKey.register(RemoteECKey)


class RemoteEd25519Key(RemoteEdKey):
    pass


class RemoteEd448Key(RemoteEdKey):
    pass


ed25519.Ed25519PrivateKey.register(RemoteEd25519Key)
ed448.Ed448PrivateKey.register(RemoteEd448Key)


def remoteKey(publicKey, signer):
    """
    The stand-in for the private key of C{publicKey} that signs with
    C{signer} (a L{RemoteSigner}).
    """
    if isinstance(publicKey, rsa.RSAPublicKey):
        return RemoteRSAKey(publicKey, signer)
    if isinstance(publicKey, ec.EllipticCurvePublicKey):
        return RemoteECKey(publicKey, signer)
    if isinstance(publicKey, ed25519.Ed25519PublicKey):
        return RemoteEd25519Key(publicKey, signer)
    if isinstance(publicKey, ed448.Ed448PublicKey):
        return RemoteEd448Key(publicKey, signer)
    raise TypeError("no remote key for %s" % (type(publicKey).__name__,))


# The parent's side

def parseRequest(obj):
    """
    The checked C{(scheme, hashName, saltLength, data)} of a request.

    @raise SigningError: a field is missing, of the wrong type or out of
        range.
    """
    if type(obj) is not dict or set(obj) != {"scheme", "hash", "salt", "data"}:
        raise SigningError("a request has exactly scheme, hash, salt and data")
    scheme, hashName, salt, data = obj["scheme"], obj["hash"], obj["salt"], obj["data"]
    if scheme not in _SCHEMES:
        raise SigningError("unknown scheme %r" % (scheme,))
    if scheme == "pure":
        if hashName is not None:
            raise SigningError("a pure signature takes no hash")
    elif hashName not in _HASHES:
        raise SigningError("unknown hash %r" % (hashName,))
    if scheme == "pss":
        if type(salt) is not int or not 0 <= salt <= 64:
            raise SigningError("a PSS salt length is 0-64 bytes")
    elif salt is not None:
        raise SigningError("only PSS takes a salt length")
    if type(data) is not str or len(data) > 2 * MAX_SIGN_BYTES:
        raise SigningError("data must be at most %d bytes" % (MAX_SIGN_BYTES,))
    try:
        data = bytes.fromhex(data)
    except ValueError:
        raise SigningError("data is not hexadecimal")
    return scheme, hashName, salt, data


def signWith(privateKey, scheme, hashName, salt, data):
    """
    Sign C{data} with C{privateKey} as a checked request asks.

    @raise SigningError: the scheme does not fit the key.
    """
    if privateKey is None:
        raise SigningError("no local private key")
    if isinstance(privateKey, rsa.RSAPrivateKey) and scheme in ("pkcs1v15", "pss"):
        hashObject = _HASHES[hashName]()
        if scheme == "pss":
            pad = padding.PSS(mgf=padding.MGF1(_HASHES[hashName]()), salt_length=salt)
        else:
            pad = padding.PKCS1v15()
        return privateKey.sign(data, pad, hashObject)
    if isinstance(privateKey, ec.EllipticCurvePrivateKey) and scheme == "ecdsa":
        return privateKey.sign(data, ec.ECDSA(_HASHES[hashName]()))
    if isinstance(privateKey, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) and scheme == "pure":
        return privateKey.sign(data)
    raise SigningError("scheme %s does not fit the local key" % (scheme,))


class SigningServer(Protocol):
    """
    The parent's end of the signing socketpair: one answer per request,
    with the key C{keyFor()} returns at that moment (a reload may change
    it). A frame longer than L{MAX_FRAME} closes the channel.
    """

    _log = Logger()

    def __init__(self, keyFor):
        self.keyFor = keyFor
        self._buffer = b""
        self.signatures = 0

    def dataReceived(self, data):
        self._buffer += data
        while len(self._buffer) >= 4:
            (length,) = struct.unpack("!I", self._buffer[:4])
            if length > MAX_FRAME:
                self._log.error("worker sent a {length}-byte signing request: closing the channel", length=length)
                self._buffer = b""
                self.transport.loseConnection()
                return
            if len(self._buffer) < 4 + length:
                return
            frame, self._buffer = self._buffer[4:4 + length], self._buffer[4 + length:]
            self.transport.write(_frame(self._answer(frame)))

    def _answer(self, frame):
        try:
            try:
                request = json.loads(frame.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                raise SigningError("request is not JSON")
            signature = signWith(self.keyFor(), *parseRequest(request))
        except SigningError as e:
            self._log.warn("signing request refused: {error}", error=e)
            return {"error": str(e)}
        except Exception as e:
            self._log.failure("signing failed")
            return {"error": "signing failed: %s" % (type(e).__name__,)}
        self.signatures += 1
        return {"signature": signature.hex()}


def socketpair():
    """
    A connected pair of stream sockets, neither inheritable.
    """
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

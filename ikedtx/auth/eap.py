# -*- test-case-name: tests.test_auth_eap -*-
"""
EAP-MSCHAPv2 (RFC 3748, RFC 2759, draft-kamath-pppext-eap-mschapv2-02,
MSK per RFC 3079) as pure state machines: EAP packets (the body of IKEv2 EAP
payloads) in, EAP packets out; no I/O, randomness injectable.

The server (authenticator; iked's responder with C{eap "mschap-v2"} and
C{user NAME PASSWORD} lines) runs:

    -> Request/Identity            (L{MSCHAPv2Server.start})
    <- Response/Identity
    -> Request/MSCHAPv2 Challenge
    <- Response/MSCHAPv2 Response
    -> Request/MSCHAPv2 Success ("S=<authenticator response> M=Welcome")
    <- Response/MSCHAPv2 Success
    -> EAP Success                 (state SUCCEEDED; L{MSCHAPv2Server.msk})

A wrong password or unknown user ends with EAP Failure at once (RFC 3748
4.2 lets the authenticator send Failure at any time; no retry or password
change is offered, as iked).  The client (peer) is the mirror image; it
checks the server's authenticator response (mutual authentication) before
answering Success.

Malformed or unexpected packets raise L{EAPProtocolError}; the state does
not change, and the caller drops the packet (RFC 3748 says to silently
discard them).  The MSK is 64 octets: MasterReceiveKey, MasterSendKey (of
the server; the client's send and receive keys in that order) and 32 zero
octets, as iked and RFC 3079/draft-kamath build it.

Passwords and derived keys never appear in reprs, messages or logs.
"""

import hashlib
import hmac
import os
import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ikedtx.auth.md4 import md4

# EAP codes and types (RFC 3748 4, 5).
REQUEST, RESPONSE, SUCCESS, FAILURE = 1, 2, 3, 4
TYPE_IDENTITY = 1
TYPE_NOTIFICATION = 2
TYPE_NAK = 3
TYPE_MSCHAPV2 = 26

# MS-CHAPv2 op codes (draft-kamath 2).
OP_CHALLENGE, OP_RESPONSE, OP_SUCCESS, OP_FAILURE, OP_CHANGE_PASSWORD = 1, 2, 3, 4, 7

CHALLENGE_LENGTH = 16
RESPONSE_VALUE_LENGTH = 49
NT_RESPONSE_LENGTH = 24
MSK_LENGTH = 64
MAX_NAME_LENGTH = 256

# RFC 2759 8.7.
_MAGIC_AUTH1 = b"Magic server to client signing constant"
_MAGIC_AUTH2 = b"Pad to make it do more than one iteration"
# RFC 3079 3.4.
_MAGIC_MASTER = b"This is the MPPE Master Key"
_MAGIC_CLIENT_SEND = b"On the client side, this is the send key; on the server side, it is the receive key."
_MAGIC_CLIENT_RECEIVE = b"On the client side, this is the receive key; on the server side, it is the send key."
_SHS_PAD1 = b"\x00" * 40
_SHS_PAD2 = b"\xf2" * 40


class EAPProtocolError(ValueError):
    """
    A malformed or unexpected EAP packet; drop it.
    """


# -- MS-CHAPv2 primitives (RFC 2759 8, RFC 3079 3) ---------------------------


def ntPasswordHash(password):
    """
    NtPasswordHash: MD4 of the password in UTF-16LE (RFC 2759 8.3).
    """
    return md4(password.encode("utf-16-le"))


def hashNtPasswordHash(passwordHash):
    """
    HashNtPasswordHash (RFC 2759 8.4).
    """
    return md4(passwordHash)


def _userNameForHash(userName):
    # RFC 2759 8.2: the user name without a prepended "DOMAIN\".
    if isinstance(userName, str):
        userName = userName.encode("utf-8")
    return userName.rpartition(b"\\")[2]


def challengeHash(peerChallenge, authenticatorChallenge, userName):
    """
    ChallengeHash (RFC 2759 8.2): 8 octets.
    """
    digest = hashlib.sha1(peerChallenge + authenticatorChallenge + _userNameForHash(userName)).digest()
    return digest[:8]


def _desKey(seven):
    """
    Spread 56 key bits over 8 octets, with odd parity in each low bit.
    """
    bits = int.from_bytes(seven, "big")
    out = bytearray()
    for i in range(8):
        byte = ((bits >> (49 - 7 * i)) & 0x7F) << 1
        if bin(byte).count("1") % 2 == 0:
            byte |= 1
        out.append(byte)
    return bytes(out)


def _desEncrypt(clear, seven):
    key = _desKey(seven)
    # Three equal keys make 3DES single DES (OpenSSL has no plain DES in
    # its default provider).
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(clear) + encryptor.finalize()


def challengeResponse(challenge, passwordHash):
    """
    ChallengeResponse (RFC 2759 8.5): 24 octets.
    """
    padded = passwordHash + b"\x00" * 5
    return b"".join(_desEncrypt(challenge, padded[i : i + 7]) for i in (0, 7, 14))


def generateNTResponse(authenticatorChallenge, peerChallenge, userName, password):
    """
    GenerateNTResponse (RFC 2759 8.1).
    """
    return challengeResponse(challengeHash(peerChallenge, authenticatorChallenge, userName), ntPasswordHash(password))


def generateAuthenticatorResponse(password, ntResponse, peerChallenge, authenticatorChallenge, userName):
    """
    GenerateAuthenticatorResponse (RFC 2759 8.7): C{"S="} and 40 upper case
    hex digits, as bytes.
    """
    passwordHashHash = hashNtPasswordHash(ntPasswordHash(password))
    digest = hashlib.sha1(passwordHashHash + ntResponse + _MAGIC_AUTH1).digest()
    challenge = challengeHash(peerChallenge, authenticatorChallenge, userName)
    digest = hashlib.sha1(digest + challenge + _MAGIC_AUTH2).digest()
    return b"S=" + digest.hex().upper().encode("ascii")


def masterKey(passwordHashHash, ntResponse):
    """
    GetMasterKey (RFC 3079 3.4): 16 octets.
    """
    return hashlib.sha1(passwordHashHash + ntResponse + _MAGIC_MASTER).digest()[:16]


def asymmetricStartKey(master, isSend, isServer, length=16):
    """
    GetAsymmetricStartKey (RFC 3079 3.4).
    """
    magic = _MAGIC_CLIENT_RECEIVE if isSend == isServer else _MAGIC_CLIENT_SEND
    return hashlib.sha1(master + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:length]


def generateMSK(password, ntResponse):
    """
    The EAP-MSCHAPv2 MSK (64 octets): the server's receive key, the
    server's send key, 32 zero octets.  Both sides compute the same.
    """
    master = masterKey(hashNtPasswordHash(ntPasswordHash(password)), ntResponse)
    receive = asymmetricStartKey(master, isSend=False, isServer=True)
    send = asymmetricStartKey(master, isSend=True, isServer=True)
    return receive + send + b"\x00" * 32


# -- EAP packets -------------------------------------------------------------


class EAPPacket:
    """
    One EAP packet (RFC 3748 4).

    @ivar code: REQUEST, RESPONSE, SUCCESS or FAILURE.
    @ivar identifier: 0-255.
    @ivar type: the Type of a Request/Response, else C{None}.
    @ivar data: the Type-Data, bytes.
    """

    def __init__(self, code, identifier, type=None, data=b""):
        self.code = code
        self.identifier = identifier
        self.type = type
        self.data = bytes(data)

    def encode(self):
        if self.code in (SUCCESS, FAILURE):
            return struct.pack("!BBH", self.code, self.identifier, 4)
        return struct.pack("!BBHB", self.code, self.identifier, 5 + len(self.data), self.type) + self.data

    @classmethod
    def decode(cls, packet):
        """
        Parse strictly: the Length field must be the packet's length.

        @raise EAPProtocolError: otherwise.
        """
        packet = bytes(packet)
        if len(packet) < 4:
            raise EAPProtocolError("EAP packet of %d octets is too short" % (len(packet),))
        code, identifier, length = struct.unpack("!BBH", packet[:4])
        if length != len(packet):
            raise EAPProtocolError("EAP Length %d but %d octets" % (length, len(packet)))
        if code in (SUCCESS, FAILURE):
            if length != 4:
                raise EAPProtocolError("EAP Success/Failure of length %d" % (length,))
            return cls(code, identifier)
        if code not in (REQUEST, RESPONSE):
            raise EAPProtocolError("unknown EAP code %d" % (code,))
        if length < 5:
            raise EAPProtocolError("EAP Request/Response without a Type")
        return cls(code, identifier, packet[4], packet[5:])

    def __repr__(self):
        return "<EAPPacket code=%d id=%d type=%r %d octets>" % (self.code, self.identifier, self.type, len(self.data))


def _mschap(opCode, msId, body):
    """
    An MS-CHAPv2 Type-Data with its header: OpCode, MS-CHAPv2-ID and
    MS-Length, which draft-kamath sets to the EAP Length minus 5: the
    length from OpCode on.
    """
    return struct.pack("!BBH", opCode, msId, 4 + len(body)) + body


def _parseMschap(data, withHeader=True):
    """
    @return: (opCode, msId, body); msId and body are C{None}/b"" for the
        bare Success/Failure Responses.
    """
    if not data:
        raise EAPProtocolError("empty MS-CHAPv2 packet")
    opCode = data[0]
    if not withHeader:
        if len(data) != 1:
            raise EAPProtocolError("MS-CHAPv2 op %d response with %d extra octets" % (opCode, len(data) - 1))
        return opCode, None, b""
    if len(data) < 4:
        raise EAPProtocolError("MS-CHAPv2 packet of %d octets is too short" % (len(data),))
    _, msId, msLength = struct.unpack("!BBH", data[:4])
    if msLength != len(data):
        raise EAPProtocolError("MS-Length %d but %d octets" % (msLength, len(data)))
    return opCode, msId, data[4:]


def _name(raw, what):
    if len(raw) > MAX_NAME_LENGTH:
        raise EAPProtocolError("%s longer than %d octets" % (what, MAX_NAME_LENGTH))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EAPProtocolError("%s is not UTF-8" % (what,))
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise EAPProtocolError("%s contains control characters" % (what,))
    return text


# -- state machines -----------------------------------------------------------

IDLE = "idle"
IDENTITY = "identity"
CHALLENGE = "challenge"
SUCCESS_REQUEST = "success-request"
SUCCEEDED = "succeeded"
FAILED = "failed"


class _Machine:
    state = IDLE
    failureReason = None
    _msk = None

    @property
    def msk(self):
        """
        The MSK, once the exchange succeeded.

        @raise ValueError: before that.
        """
        if self.state != SUCCEEDED:
            raise ValueError("no MSK: EAP-MSCHAPv2 has not succeeded (state %s)" % (self.state,))
        return self._msk

    def _fail(self, reason):
        self.state = FAILED
        self.failureReason = reason
        self._msk = None

    def __repr__(self):
        return "<%s state=%s>" % (type(self).__name__, self.state)


class MSCHAPv2Server(_Machine):
    """
    The EAP-MSCHAPv2 authenticator.

    @ivar state: IDLE, IDENTITY (Request/Identity sent), CHALLENGE,
        SUCCESS_REQUEST, SUCCEEDED or FAILED.
    @ivar identity: the peer's EAP identity (text) once received.
    @ivar userName: the MS-CHAPv2 user name it authenticated as.
    @ivar failureReason: why it FAILED (safe to log: names, no secrets).
    """

    def __init__(self, users, serverName="ikedtx", random=os.urandom, firstIdentifier=0):
        """
        @param users: a mapping of user name to password (iked.conf C{user}
            lines), or a callable taking a name and returning the password
            or C{None}.
        @param serverName: the Name in our Challenge (iked sends "_iked").
        @param random: C{random(n)} returns C{n} random octets.
        """
        self._lookup = users if callable(users) else users.get
        self._serverName = serverName.encode("utf-8")
        self._random = random
        self._identifier = firstIdentifier & 0xFF
        self.identity = None
        self.userName = None

    def start(self):
        """
        The first packet: Request/Identity.
        """
        if self.state != IDLE:
            raise EAPProtocolError("EAP already started")
        self.state = IDENTITY
        return EAPPacket(REQUEST, self._identifier, TYPE_IDENTITY).encode()

    def _next(self, type_, data):
        self._identifier = (self._identifier + 1) & 0xFF
        return EAPPacket(REQUEST, self._identifier, type_, data).encode()

    def _failure(self, identifier, reason):
        self._fail(reason)
        return EAPPacket(FAILURE, identifier).encode()

    def receive(self, packet):
        """
        Process a Response from the peer.

        @return: the EAP packet to send (a Request, or EAP Success/Failure).
        @raise EAPProtocolError: malformed or unexpected; state unchanged.
        """
        eap = EAPPacket.decode(packet)
        if self.state in (IDLE, SUCCEEDED, FAILED):
            raise EAPProtocolError("no EAP request outstanding (state %s)" % (self.state,))
        if eap.code != RESPONSE:
            raise EAPProtocolError("expected an EAP Response, got code %d" % (eap.code,))
        if eap.identifier != self._identifier:
            raise EAPProtocolError(
                "EAP Response identifier %d does not answer request %d" % (eap.identifier, self._identifier)
            )
        if eap.type == TYPE_NAK:
            return self._failure(eap.identifier, "peer refused EAP-MSCHAPv2 (Nak)")
        if self.state == IDENTITY:
            return self._identityResponse(eap)
        if eap.type != TYPE_MSCHAPV2:
            raise EAPProtocolError("expected an EAP-MSCHAPv2 Response, got type %r" % (eap.type,))
        if self.state == CHALLENGE:
            return self._challengeResponse(eap)
        return self._successResponse(eap)

    def _identityResponse(self, eap):
        if eap.type != TYPE_IDENTITY:
            raise EAPProtocolError("expected an Identity Response, got type %r" % (eap.type,))
        identity = _name(eap.data, "EAP identity")
        if not identity:
            raise EAPProtocolError("empty EAP identity")
        self.identity = identity
        self._challenge = self._random(CHALLENGE_LENGTH)
        if len(self._challenge) != CHALLENGE_LENGTH:
            raise ValueError("random() returned %d octets" % (len(self._challenge),))
        self.state = CHALLENGE
        msId = (self._identifier + 1) & 0xFF
        body = bytes([CHALLENGE_LENGTH]) + self._challenge + self._serverName
        return self._next(TYPE_MSCHAPV2, _mschap(OP_CHALLENGE, msId, body))

    def _challengeResponse(self, eap):
        opCode, msId, body = _parseMschap(eap.data)
        if opCode != OP_RESPONSE:
            raise EAPProtocolError("expected an MS-CHAPv2 Response, got op %d" % (opCode,))
        if msId != self._identifier:
            raise EAPProtocolError("MS-CHAPv2-ID %d does not answer %d" % (msId, self._identifier))
        if len(body) < 1 + RESPONSE_VALUE_LENGTH or body[0] != RESPONSE_VALUE_LENGTH:
            raise EAPProtocolError("MS-CHAPv2 Response Value-Size is not 49")
        value = body[1 : 1 + RESPONSE_VALUE_LENGTH]
        peerChallenge, reserved, ntResponse, flags = value[:16], value[16:24], value[24:48], value[48]
        if reserved != b"\x00" * 8 or flags != 0:
            raise EAPProtocolError("MS-CHAPv2 Response reserved octets or flags are not zero")
        name = _name(body[1 + RESPONSE_VALUE_LENGTH :], "MS-CHAPv2 user name") or self.identity
        password = self._lookup(name)
        # Compute even for unknown users, so that timing tells nothing.
        expected = generateNTResponse(self._challenge, peerChallenge, name, password or "\x00")
        if password is None:
            return self._failure(eap.identifier, "unknown EAP user %r" % (name,))
        if not hmac.compare_digest(expected, ntResponse):
            return self._failure(eap.identifier, "EAP user %r: wrong password" % (name,))
        self.userName = name
        authenticatorResponse = generateAuthenticatorResponse(
            password, ntResponse, peerChallenge, self._challenge, name
        )
        self._pendingMsk = generateMSK(password, ntResponse)
        self.state = SUCCESS_REQUEST
        return self._next(TYPE_MSCHAPV2, _mschap(OP_SUCCESS, msId, authenticatorResponse + b" M=Welcome"))

    def _successResponse(self, eap):
        opCode, _, _ = _parseMschap(eap.data, withHeader=False)
        if opCode != OP_SUCCESS:
            raise EAPProtocolError("expected an MS-CHAPv2 Success Response, got op %d" % (opCode,))
        self.state = SUCCEEDED
        self._msk = self._pendingMsk
        self._pendingMsk = None
        return EAPPacket(SUCCESS, eap.identifier).encode()


class MSCHAPv2Client(_Machine):
    """
    The EAP-MSCHAPv2 peer (an initiator with EAP).

    @ivar state: IDLE, CHALLENGE (answered the Identity), SUCCESS_REQUEST
        (answered the Challenge), then after the server's Success Request
        and our Success Response still SUCCESS_REQUEST with
        C{serverAuthenticated}; SUCCEEDED on EAP Success, or FAILED.
    @ivar serverMessage: the server's "M=" text, if any.
    """

    def __init__(self, identity, password, random=os.urandom, userName=None):
        """
        @param identity: our EAP identity (text).
        @param password: our password (text).
        @param userName: the MS-CHAPv2 user name, default C{identity}.
        """
        self._identity = identity.encode("utf-8")
        self._userName = (userName if userName is not None else identity).encode("utf-8")
        self._password = password
        self._random = random
        self.serverAuthenticated = False
        self.serverMessage = None

    def __repr__(self):
        return "<MSCHAPv2Client %r state=%s>" % (self._identity.decode("utf-8"), self.state)

    def receive(self, packet):
        """
        Process a packet from the server.

        @return: the EAP Response to send, or C{None} after EAP
            Success/Failure (or when we fail the server: then FAILED).
        @raise EAPProtocolError: malformed or unexpected; state unchanged.
        """
        eap = EAPPacket.decode(packet)
        if self.state in (SUCCEEDED, FAILED):
            raise EAPProtocolError("EAP exchange is over (state %s)" % (self.state,))
        if eap.code == SUCCESS:
            if not self.serverAuthenticated:
                raise EAPProtocolError("EAP Success before the server proved the password")
            self.state = SUCCEEDED
            return None
        if eap.code == FAILURE:
            self._fail(self.failureReason or "server sent EAP Failure")
            return None
        if eap.code != REQUEST:
            raise EAPProtocolError("expected an EAP Request, got code %d" % (eap.code,))
        if eap.type == TYPE_IDENTITY:
            if self.state != IDLE:
                raise EAPProtocolError("unexpected Identity Request")
            self.state = CHALLENGE
            return EAPPacket(RESPONSE, eap.identifier, TYPE_IDENTITY, self._identity).encode()
        if eap.type == TYPE_NOTIFICATION:
            return EAPPacket(RESPONSE, eap.identifier, TYPE_NOTIFICATION).encode()
        if eap.type != TYPE_MSCHAPV2:
            # RFC 3748 5.3.1: answer an unwanted method with a Nak naming
            # the one we want.
            return EAPPacket(RESPONSE, eap.identifier, TYPE_NAK, bytes([TYPE_MSCHAPV2])).encode()
        opCode, msId, body = _parseMschap(eap.data)
        if opCode == OP_CHALLENGE and self.state in (IDLE, CHALLENGE):
            return self._challenge(eap, msId, body)
        if opCode == OP_SUCCESS and self.state == SUCCESS_REQUEST and not self.serverAuthenticated:
            return self._success(eap, body)
        if opCode == OP_FAILURE and self.state == SUCCESS_REQUEST:
            self._fail("server refused: %s" % (_name(body, "MS-CHAPv2 failure message"),))
            return EAPPacket(RESPONSE, eap.identifier, TYPE_MSCHAPV2, bytes([OP_FAILURE])).encode()
        raise EAPProtocolError("unexpected MS-CHAPv2 op %d in state %s" % (opCode, self.state))

    def _challenge(self, eap, msId, body):
        if len(body) < 1 + CHALLENGE_LENGTH or body[0] != CHALLENGE_LENGTH:
            raise EAPProtocolError("MS-CHAPv2 Challenge Value-Size is not 16")
        self._authenticatorChallenge = body[1 : 1 + CHALLENGE_LENGTH]
        _name(body[1 + CHALLENGE_LENGTH :], "MS-CHAPv2 server name")
        self._peerChallenge = self._random(CHALLENGE_LENGTH)
        if len(self._peerChallenge) != CHALLENGE_LENGTH:
            raise ValueError("random() returned %d octets" % (len(self._peerChallenge),))
        self._ntResponse = generateNTResponse(
            self._authenticatorChallenge, self._peerChallenge, self._userName, self._password
        )
        value = self._peerChallenge + b"\x00" * 8 + self._ntResponse + b"\x00"
        self.state = SUCCESS_REQUEST
        data = _mschap(OP_RESPONSE, msId, bytes([RESPONSE_VALUE_LENGTH]) + value + self._userName)
        return EAPPacket(RESPONSE, eap.identifier, TYPE_MSCHAPV2, data).encode()

    def _success(self, eap, body):
        expected = generateAuthenticatorResponse(
            self._password, self._ntResponse, self._peerChallenge, self._authenticatorChallenge, self._userName
        )
        received = body[: len(expected)]
        if len(body) < len(expected) or not hmac.compare_digest(received.upper(), expected):
            self._fail("server's authenticator response is wrong: it does not know our password")
            return None
        rest = body[len(expected) :]
        if rest.startswith(b" M="):
            # Only a message for the user, after the server proved itself:
            # strongSwan ends it with a NUL; one we cannot show is dropped.
            try:
                self.serverMessage = _name(rest[3:].rstrip(b"\x00"), "MS-CHAPv2 success message")
            except EAPProtocolError:
                self.serverMessage = None
        self.serverAuthenticated = True
        self._msk = generateMSK(self._password, self._ntResponse)
        return EAPPacket(RESPONSE, eap.identifier, TYPE_MSCHAPV2, bytes([OP_SUCCESS])).encode()

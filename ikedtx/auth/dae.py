# -*- test-case-name: tests.test_auth_dae -*-
"""
RADIUS Dynamic Authorization (RFC 5176) for iked 7.6's C{radius dae}
lines: a server listening on C{radius dae listen on ADDRESS [port N]}
(3799 by default) that takes Disconnect-Requests from the C{radius dae
client ADDRESS secret S} hosts and deletes the IKE SAs they name.

What iked 7.6 does, and this does too:

  - a datagram from an address that is no C{dae client} is logged and
    dropped, as is one whose Request Authenticator (RFC 5176 3.3, with the
    client's secret) or Message-Authenticator does not verify, or that is
    malformed: nothing is answered, nothing changes;
  - a CoA-Request is answered CoA-NAK with Error-Cause 501
    (Administratively Prohibited): only disconnection is supported;
  - a Disconnect-Request names the sessions by Acct-Session-Id (ours,
    L{ikedtx.auth.radius.sessionIdFor}, or iked's: the initiator's SPI in
    hex), optionally with a User-Name that must match it; else by
    User-Name (every IKE SA of that EAP identity); else by
    Framed-IP-Address (the address lent to the peer). A NAS-Identifier
    that is not ours is Error-Cause 403. The named IKE SAs are deleted
    (an INFORMATIONAL Delete to the peer, accounting Stop with
    Acct-Terminate-Cause Admin-Reset) and the request answered
    Disconnect-ACK; none found is Disconnect-NAK with Error-Cause 503
    (Session Context Not Found).

The codec is pyrad's L{CoAPacket}; the sessions come from the shell
through two callables (L{DynamicAuthorizationServer.__init__}).
"""

import ipaddress
import struct

from pyrad import packet as _pyrad
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

DAE_PORT = 3799

# RFC 5176 3.6 Error-Cause values.
ERROR_NAS_IDENTIFICATION_MISMATCH = 403
ERROR_INVALID_ATTRIBUTE_VALUE = 407
ERROR_ADMINISTRATIVELY_PROHIBITED = 501
ERROR_SESSION_NOT_FOUND = 503

_CODE_NAMES = {
    _pyrad.DisconnectRequest: "Disconnect-Request",
    _pyrad.DisconnectACK: "Disconnect-ACK",
    _pyrad.DisconnectNAK: "Disconnect-NAK",
    _pyrad.CoARequest: "CoA-Request",
    _pyrad.CoAACK: "CoA-ACK",
    _pyrad.CoANAK: "CoA-NAK",
}

_log = Logger()


class DAESession:
    """
    What a Disconnect-Request can name of one IKE SA up.

    @ivar spiI: the initiator's SPI (8 octets); C{spiR} the responder's.
    @ivar userName: the EAP identity, or L{None}.
    @ivar addresses: the addresses lent to the peer (text).
    @ivar handle: what the shell's C{disconnect} callable takes.
    """

    def __init__(self, spiI, spiR, userName, addresses, handle):
        self.spiI = spiI
        self.spiR = spiR
        self.userName = userName
        self.addresses = tuple(str(a) for a in addresses)
        self.handle = handle

    def __repr__(self):
        return "<DAESession %s-%s %r>" % (self.spiI.hex(), self.spiR.hex(), self.userName)

    def hasSessionId(self, sessionId):
        sessionId = sessionId.lower()
        return sessionId in ("%s-%s" % (self.spiI.hex(), self.spiR.hex()), self.spiI.hex())


class DynamicAuthorizationServer(DatagramProtocol):
    """
    The C{radius dae} server (one per listening socket).

    @ivar clients: C{{address text: secret bytes}} of the C{dae client}
        lines.
    @ivar handled: how many requests were answered; C{dropped}: how many
        datagrams were dropped.
    """

    def __init__(self, clients, sessions, disconnect, dictionary, nasIdentifier="ikedtx"):
        """
        @param clients: C{{address: secret}} (addresses as text or
            ip_address, secrets as text or bytes).
        @param sessions: a callable returning the L{DAESession}s of the IKE
            SAs up.
        @param disconnect: a callable taking a L{DAESession}'s C{handle}:
            delete that IKE SA.
        @param dictionary: the pyrad dictionary (L{ikedtx.auth.radius}).
        """
        self.clients = {str(ipaddress.ip_address(str(a))): s.encode("utf-8") if isinstance(s, str) else s
                        for a, s in dict(clients).items()}
        self.sessions = sessions
        self.disconnect = disconnect
        self.dictionary = dictionary
        self.nasIdentifier = nasIdentifier
        self.handled = 0
        self.dropped = 0

    def _drop(self, addr, reason, **kw):
        self.dropped += 1
        _log.warn("RADIUS DAE datagram from {host}:{port} dropped: " + reason, host=addr[0], port=addr[1], **kw)

    def datagramReceived(self, data, addr):
        try:
            self._receive(bytes(data), addr)
        except Exception:
            # Nothing a client sends may escape into the reactor.
            _log.failure("RADIUS DAE datagram from {host}:{port}: unexpected error", host=addr[0], port=addr[1])

    def _receive(self, data, addr):
        try:
            host = str(ipaddress.ip_address(addr[0].split("%")[0]))
        except ValueError:
            host = addr[0]
        secret = self.clients.get(host)
        if secret is None:
            self._drop(addr, "not a radius dae client")
            return
        problem = _headerProblem(data)
        if problem is not None:
            self._drop(addr, "malformed: {problem}", problem=problem)
            return
        length = struct.unpack("!H", data[2:4])[0]
        data = data[:length]
        try:
            request = _pyrad.CoAPacket(secret=secret, dict=self.dictionary, packet=data)
        except Exception as e:
            self._drop(addr, "malformed: {problem}", problem=str(e))
            return
        if request.code not in (_pyrad.DisconnectRequest, _pyrad.CoARequest):
            self._drop(addr, "code {code} is no Disconnect-Request", code=request.code)
            return
        if not request.VerifyCoARequest():
            self._drop(addr, "its Request Authenticator does not verify (wrong secret?)")
            return
        if 80 in request and not _messageAuthenticatorVerifies(data, secret):
            self._drop(addr, "its Message-Authenticator does not verify")
            return
        if request.code == _pyrad.CoARequest:
            self._answer(request, addr, _pyrad.CoANAK, ERROR_ADMINISTRATIVELY_PROHIBITED,
                         "CoA-Request is not supported")
            return
        _log.info("RADIUS DAE: Disconnect-Request from {host}", host=host)
        try:
            code, cause, why = self._disconnect(request)
        except (ValueError, TypeError, KeyError, UnicodeDecodeError, struct.error) as e:
            self._drop(addr, "malformed attribute: {problem}", problem=str(e))
            return
        self._answer(request, addr, code, cause, why)

    def _disconnect(self, request):
        """
        @return: C{(answer code, Error-Cause or None, why for the log)}.
        """
        nasIds = _strings(request, "NAS-Identifier")
        if nasIds and nasIds[0] != self.nasIdentifier:
            return _pyrad.DisconnectNAK, ERROR_NAS_IDENTIFICATION_MISMATCH, "NAS-Identifier is not ours"
        userNames = _strings(request, "User-Name")
        userName = userNames[0] if userNames else None
        sessionIds = _strings(request, "Acct-Session-Id")
        framed = request.get("Framed-IP-Address") or []
        candidates = list(self.sessions())
        if sessionIds:
            chosen = [s for s in candidates if s.hasSessionId(sessionIds[0])]
            if chosen and userName is not None and any(s.userName != userName for s in chosen):
                return _pyrad.DisconnectNAK, ERROR_INVALID_ATTRIBUTE_VALUE, "User-Name does not match the session"
        elif userName is not None:
            chosen = [s for s in candidates if s.userName == userName]
        elif framed:
            chosen = [s for s in candidates if str(framed[0]) in s.addresses]
        else:
            chosen = []
        if not chosen:
            return _pyrad.DisconnectNAK, ERROR_SESSION_NOT_FOUND, "session not found"
        for session in chosen:
            _log.info("RADIUS DAE: disconnecting IKE SA {spiI}-{spiR} ({user})", spiI=session.spiI.hex(),
                      spiR=session.spiR.hex(), user=session.userName)
            self.disconnect(session.handle)
        return _pyrad.DisconnectACK, None, "%d IKE SA%s deleted" % (len(chosen), "" if len(chosen) == 1 else "s")

    def _answer(self, request, addr, code, cause, why):
        reply = request.CreateReply()
        reply.code = code
        if cause is not None:
            reply.AddAttribute("Error-Cause", cause)
        self.handled += 1
        if self.transport is not None:
            self.transport.write(reply.ReplyPacket(), addr)
        _log.info("RADIUS DAE: {answer} to {host}: {why}", answer=_CODE_NAMES.get(code, code), host=addr[0], why=why)


def _strings(request, name):
    values = []
    for value in request.get(name) or []:
        values.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
    return values


def _headerProblem(data):
    """
    RFC 2865 3 framing and RFC 2865 5 attribute lengths, checked before any
    decoding.
    """
    if len(data) < 20:
        return "%d octets, shorter than a RADIUS header" % (len(data),)
    length = struct.unpack("!H", data[2:4])[0]
    if length < 20 or length > 4096 or length > len(data):
        return "Length %d but %d octets" % (length, len(data))
    body, offset = data[20:length], 0
    while offset < len(body):
        if len(body) - offset < 2 or body[offset + 1] < 2 or offset + body[offset + 1] > len(body):
            return "attribute at offset %d overruns the packet" % (20 + offset,)
        offset += body[offset + 1]
    return None


def _messageAuthenticatorVerifies(data, secret):
    """
    RFC 5176 3.3 / RFC 3579 3.2: HMAC-MD5 over the packet with the Request
    Authenticator and the Message-Authenticator's value zeroed.
    """
    import hashlib
    import hmac

    body = bytearray(data)
    body[4:20] = b"\x00" * 16
    offset, received = 20, None
    while offset + 2 <= len(body):
        kind, size = body[offset], body[offset + 1]
        if kind == 80 and size == 18:
            received = bytes(body[offset + 2:offset + 18])
            body[offset + 2:offset + 18] = b"\x00" * 16
        offset += max(size, 2)
    if received is None:
        return False
    expected = hmac.new(secret, bytes(body), hashlib.md5).digest()
    return hmac.compare_digest(expected, received)

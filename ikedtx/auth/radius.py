# -*- test-case-name: tests.test_auth_radius -*-
"""
A RADIUS client for EAP pass-through and accounting, as OpenBSD iked 7.6+
(C{eap "radius"}) and strongSwan's eap-radius do it.

The codec is U{pyrad<https://github.com/pyradius/pyrad>} (BSD-3-Clause,
maintained, Python 3.10-3.14): it builds and parses the packets, checks the
Response Authenticator and the Message-Authenticator (RFC 3579 3.2, with
C{hmac.compare_digest}) and applies RFC 2548's salt decryption to the
MS-MPPE keys.  This module adds what pyrad leaves to the caller: the
Twisted transport, retransmission with timeouts, failover between servers,
the EAP conversation and the accounting records.

    RadiusClient        one UDP port, outstanding requests by (server, id);
                        each request retransmitted C{maxTries} times per
                        server, then the next server (at most
                        C{maxFailovers} switches); answers that do not
                        verify are logged and dropped, never raised.
    RadiusEAPBackend    newSession(policy, peerIdentity) -> RadiusEAPSession
    RadiusEAPSession    start() -> EAP-Identity Request; receive(EAP
                        Response) -> Access-Request with the EAP-Message
                        (in 253-octet attributes), Message-Authenticator and
                        the echoed State; Access-Challenge -> the next EAP
                        Request, Access-Accept -> EAP Success and the MSK
                        from MS-MPPE-Recv-Key || MS-MPPE-Send-Key (zero
                        padded to 64 octets, the MSK ikedtx's own
                        EAP-MSCHAPv2 server derives), Access-Reject or no
                        answer -> EAP Failure.
    RadiusAccounting    start(session) / stop(session) Accounting-Requests
                        (RFC 2866): Acct-Session-Id per IKE SA, session time
                        and octet/packet counts at Stop.

RadiusEAPBackend and RadiusEAPSession are the IEAPBackend and IEAPSession
of ikedtx.auth.eapbackend; ikedtx.auth.radiuswire makes them (and the
accounting) from a configuration's C{radius} lines for the shell.

Secrets (shared secrets, keys, MSKs) are never logged or put in reprs.
"""

import io
import os
import struct
from dataclasses import dataclass, field
from typing import Optional, Tuple

from pyrad import dictionary as _pyradDictionary
from pyrad import packet as _pyrad
from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from ikedtx.auth import eap as _eap
from ikedtx.auth.eapbackend import EAPStep, IEAPBackend, IEAPSession

log = Logger()

# RFC 2865/2866/2869/3579 attribute numbers and RFC 2548's vendor ones.
USER_NAME = 1
NAS_IP_ADDRESS = 4
SERVICE_TYPE = 6
FRAMED_MTU = 12
REPLY_MESSAGE = 18
STATE = 24
CLASS = 25
VENDOR_SPECIFIC = 26
CALLED_STATION_ID = 30
CALLING_STATION_ID = 31
NAS_IDENTIFIER = 32
ACCT_STATUS_TYPE = 40
ACCT_INPUT_OCTETS = 42
ACCT_OUTPUT_OCTETS = 43
ACCT_SESSION_ID = 44
ACCT_SESSION_TIME = 46
ACCT_INPUT_PACKETS = 47
ACCT_OUTPUT_PACKETS = 48
ACCT_TERMINATE_CAUSE = 49
NAS_PORT_TYPE = 61
EAP_MESSAGE = 79
MESSAGE_AUTHENTICATOR = 80
FRAMED_IP_ADDRESS = 8

VENDOR_MICROSOFT = 311
MS_MPPE_SEND_KEY = 16
MS_MPPE_RECV_KEY = 17

ACCT_START, ACCT_STOP = 1, 2
NAS_PORT_TYPE_VIRTUAL = 5
SERVICE_TYPE_FRAMED = 2
# RFC 2866 5.10.
TERMINATE_USER_REQUEST = 1
TERMINATE_IDLE_TIMEOUT = 4
TERMINATE_SESSION_TIMEOUT = 5
TERMINATE_ADMIN_RESET = 6
TERMINATE_NAS_REQUEST = 10

ATTRIBUTE_VALUE_MAX = 253
MSK_LENGTH = 64
AUTH_PORT, ACCT_PORT = 1812, 1813
# iked's defaults (radius.c): 3 tries per server, 3 s apart.
DEFAULT_TIMEOUT = 3.0
DEFAULT_MAX_TRIES = 3
DEFAULT_MAX_FAILOVERS = 0

# The attributes ikedtx sends or reads; pyrad needs a dictionary to name
# them and to know that the MS-MPPE keys are salt-encrypted (encrypt=2).
_DICTIONARY_TEXT = """\
ATTRIBUTE User-Name 1 string
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE Service-Type 6 integer
ATTRIBUTE Framed-IP-Address 8 ipaddr
ATTRIBUTE Framed-MTU 12 integer
ATTRIBUTE Reply-Message 18 string
ATTRIBUTE State 24 octets
ATTRIBUTE Class 25 octets
ATTRIBUTE Called-Station-Id 30 string
ATTRIBUTE Calling-Station-Id 31 string
ATTRIBUTE NAS-Identifier 32 string
ATTRIBUTE Proxy-State 33 octets
ATTRIBUTE Acct-Status-Type 40 integer
ATTRIBUTE Acct-Input-Octets 42 integer
ATTRIBUTE Acct-Output-Octets 43 integer
ATTRIBUTE Acct-Session-Id 44 string
ATTRIBUTE Acct-Session-Time 46 integer
ATTRIBUTE Acct-Input-Packets 47 integer
ATTRIBUTE Acct-Output-Packets 48 integer
ATTRIBUTE Acct-Terminate-Cause 49 integer
ATTRIBUTE NAS-Port-Type 61 integer
ATTRIBUTE EAP-Message 79 octets
ATTRIBUTE Message-Authenticator 80 octets
ATTRIBUTE Error-Cause 101 integer
VENDOR Microsoft 311
BEGIN-VENDOR Microsoft
ATTRIBUTE MS-MPPE-Send-Key 16 octets encrypt=2
ATTRIBUTE MS-MPPE-Recv-Key 17 octets encrypt=2
END-VENDOR Microsoft
"""


def radiusDictionary():
    """
    @return: a pyrad Dictionary of the attributes above.
    """
    return _pyradDictionary.Dictionary(io.StringIO(_DICTIONARY_TEXT))


_DICTIONARY = radiusDictionary()

_ANSWERS = {
    _pyrad.AccessRequest: (_pyrad.AccessAccept, _pyrad.AccessReject, _pyrad.AccessChallenge),
    _pyrad.AccountingRequest: (_pyrad.AccountingResponse,),
}
_CODE_NAMES = {
    1: "Access-Request",
    2: "Access-Accept",
    3: "Access-Reject",
    4: "Accounting-Request",
    5: "Accounting-Response",
    11: "Access-Challenge",
}


class RadiusError(Exception):
    """
    A RADIUS request could not be completed.
    """


class RadiusTimeout(RadiusError):
    """
    No server gave a verified answer in all tries and failovers.
    """


@dataclass(frozen=True)
class RadiusServer:
    """
    One server, as a C{radius [accounting] server ADDRESS [port N] secret S}
    line gives it.

    @ivar host: its IP address (text).
    @ivar port: its UDP port.
    @ivar secret: the shared secret, bytes (not in the repr).
    """

    host: str
    port: int
    secret: bytes = field(repr=False)

    @property
    def address(self):
        return (self.host, self.port)


class _Outstanding:
    """
    One request in flight: the packet builder, the server now tried and the
    tries left there.
    """

    def __init__(self, build, servers, maxTries, maxFailovers, deferred):
        self.build = build
        self.servers = servers
        self.serverIndex = 0
        self.failovers = 0
        self.maxTries = maxTries
        self.maxFailovers = maxFailovers
        self.tries = 0
        self.deferred = deferred
        self.request = None
        self.raw = None
        self.key = None
        self.call = None


class RadiusClient(DatagramProtocol):
    """
    Sends RADIUS requests to a list of servers over one UDP port.

    @ivar servers: the L{RadiusServer}s in failover order.
    """

    def __init__(
        self,
        servers,
        reactor=None,
        timeout=DEFAULT_TIMEOUT,
        maxTries=DEFAULT_MAX_TRIES,
        maxFailovers=None,
        kind="authentication",
    ):
        """
        @param maxTries: sends per server (the first and the retransmits).
        @param maxFailovers: server switches per request; default: through
            every server once (iked's C{max-failovers} default is 0 with one
            server, so a single-server list tries only that one).
        """
        if reactor is None:
            from twisted.internet import reactor
        if not servers:
            raise ValueError("a RADIUS client needs at least one server")
        if maxTries < 1:
            raise ValueError("max-tries must be at least 1")
        self.servers = tuple(servers)
        self.reactor = reactor
        self.timeout = timeout
        self.maxTries = maxTries
        self.maxFailovers = len(self.servers) - 1 if maxFailovers is None else maxFailovers
        self.kind = kind
        self._outstanding = {}
        self._current = 0
        self.dropped = 0

    # -- sending -------------------------------------------------------------

    def send(self, build):
        """
        Send a request and wait for its verified answer.

        @param build: C{build(server, identifier)} -> a pyrad request
            packet for that server (its secret) with that identifier; called
            again with a new identifier on failover.
        @return: a Deferred firing with the verified pyrad answer, or
            failing with L{RadiusTimeout}.
        """
        d = defer.Deferred(lambda _: self._cancel(entry))
        entry = _Outstanding(build, self.servers, self.maxTries, self.maxFailovers, d)
        # Start with the server that answered last (iked keeps the current
        # server until it fails).
        entry.serverIndex = self._current
        self._transmitNew(entry)
        return d

    def _freeIdentifier(self, server):
        used = {ident for (addr, ident) in self._outstanding if addr == server.address}
        free = [i for i in range(256) if i not in used]
        if not free:
            raise RadiusError("256 requests outstanding to %s:%d" % server.address)
        return free[int.from_bytes(os.urandom(1), "big") % len(free)]

    def _transmitNew(self, entry):
        server = entry.servers[entry.serverIndex]
        try:
            ident = self._freeIdentifier(server)
            entry.request = entry.build(server, ident)
            entry.raw = entry.request.RequestPacket()
        except Exception as e:
            self._finish(entry, failure=RadiusError("cannot build the request: %s" % (e,)))
            return
        entry.key = (server.address, ident)
        entry.tries = 0
        self._outstanding[entry.key] = entry
        self._transmit(entry)

    def _transmit(self, entry):
        server = entry.servers[entry.serverIndex]
        entry.tries += 1
        if entry.tries > 1:
            log.info(
                "RADIUS {kind} server {host}:{port}: no answer, retransmitting id {ident} (try {n} of {max})",
                kind=self.kind,
                host=server.host,
                port=server.port,
                ident=entry.key[1],
                n=entry.tries,
                max=entry.maxTries,
            )
        if self.transport is not None:
            self.transport.write(entry.raw, server.address)
        entry.call = self.reactor.callLater(self.timeout, self._timedOut, entry)

    def _timedOut(self, entry):
        entry.call = None
        if entry.tries < entry.maxTries:
            self._transmit(entry)
            return
        server = entry.servers[entry.serverIndex]
        self._outstanding.pop(entry.key, None)
        if entry.failovers < entry.maxFailovers and len(entry.servers) > 1:
            entry.failovers += 1
            entry.serverIndex = (entry.serverIndex + 1) % len(entry.servers)
            self._current = entry.serverIndex
            nxt = entry.servers[entry.serverIndex]
            log.warn(
                "RADIUS {kind} server {host}:{port} did not answer {n} tries: failing over to {nhost}:{nport}",
                kind=self.kind,
                host=server.host,
                port=server.port,
                n=entry.tries,
                nhost=nxt.host,
                nport=nxt.port,
            )
            self._transmitNew(entry)
            return
        log.warn(
            "RADIUS {kind} request timed out: server {host}:{port} gave no valid answer in {n} tries",
            kind=self.kind,
            host=server.host,
            port=server.port,
            n=entry.tries,
        )
        self._finish(entry, failure=RadiusTimeout("no RADIUS %s server answered" % (self.kind,)))

    def _finish(self, entry, answer=None, failure=None):
        self._outstanding.pop(entry.key, None)
        if entry.call is not None and entry.call.active():
            entry.call.cancel()
        entry.call = None
        if entry.deferred.called:
            return
        if failure is not None:
            entry.deferred.errback(failure)
        else:
            entry.deferred.callback(answer)

    def _cancel(self, entry):
        self._outstanding.pop(entry.key, None)
        if entry.call is not None and entry.call.active():
            entry.call.cancel()
        entry.call = None

    def stopProtocol(self):
        for entry in list(self._outstanding.values()):
            self._finish(entry, failure=RadiusError("RADIUS client stopped"))

    # -- receiving -----------------------------------------------------------

    def _drop(self, addr, reason, **kw):
        self.dropped += 1
        log.warn(
            "RADIUS answer from {host}:{port} dropped: " + reason,
            host=addr[0],
            port=addr[1],
            **kw,
        )

    def datagramReceived(self, data, addr):
        try:
            self._receive(bytes(data), addr)
        except Exception:
            # Never raise out of the reactor: a bug here is logged.
            log.failure("RADIUS answer from {host}:{port}: unexpected error", host=addr[0], port=addr[1])

    def _receive(self, data, addr):
        if len(data) < 20:
            self._drop(addr, "{n} octets, shorter than a RADIUS header", n=len(data))
            return
        code, ident, length = struct.unpack("!BBH", data[:4])
        # RFC 2865 3: shorter than Length -> silently discard; octets past
        # Length are padding.
        if length < 20 or length > 4096 or length > len(data):
            self._drop(addr, "Length {length} but {n} octets", length=length, n=len(data))
            return
        entry = self._outstanding.get(((addr[0], addr[1]), ident))
        if entry is None:
            self._drop(addr, "no request with identifier {ident} outstanding to that server", ident=ident)
            return
        request = entry.request
        if code not in _ANSWERS.get(request.code, ()):
            self._drop(addr, "code {code} is no answer to a {req}", code=code, req=_CODE_NAMES.get(request.code))
            return
        server = entry.servers[entry.serverIndex]
        problem = _attributesProblem(data[20:length])
        if problem is not None:
            self._drop(addr, "malformed: {error}", error=problem)
            return
        try:
            reply = request.CreateReply(packet=data[:length])
        except Exception as e:
            self._drop(addr, "malformed: {error}", error=str(e))
            return
        reply.request_authenticator = request.authenticator
        reply._request_code = request.code
        # RFC 3579 3.2: an Access-Challenge/Accept/Reject to a request with
        # EAP-Message must carry a valid Message-Authenticator; we require
        # it on every Access answer (BlastRADIUS, CVE-2024-3596).
        enforce = request.code == _pyrad.AccessRequest
        if not request.VerifyReply(reply, data[:length], enforce_ma=enforce):
            self._drop(
                addr,
                "its Response Authenticator or Message-Authenticator does not verify"
                " (wrong shared secret for {host}:{port}?)",
            )
            return
        self._current = entry.serverIndex
        log.debug(
            "RADIUS {code} from {host}:{port} id {ident}",
            code=_CODE_NAMES.get(code, code),
            host=server.host,
            port=server.port,
            ident=ident,
        )
        self._finish(entry, answer=reply)


def clientsFor(settings, reactor=None, timeout=DEFAULT_TIMEOUT):
    """
    The RADIUS clients of a configuration's C{radius} lines.

    @param settings: L{ikedtx.config.model.RadiusSettings}.
    @return: (authentication client, accounting client), each a
        L{RadiusClient} not yet listening (C{reactor.listenUDP(0, client)})
        or C{None} without servers of that kind.
    """

    def make(entries, tries, failovers, kind):
        if not entries:
            return None
        servers = [RadiusServer(str(e.address), e.port, e.secret.encode("utf-8")) for e in entries]
        return RadiusClient(servers, reactor, timeout, tries, failovers, kind)

    return (
        make(settings.servers, settings.maxTries, settings.maxFailovers, "authentication"),
        make(settings.accountingServers, settings.accountingMaxTries, settings.accountingMaxFailovers, "accounting"),
    )


def _attributesProblem(body):
    """
    Check the attribute list strictly (RFC 2865 5): each Length at least 2
    and within the packet (pyrad truncates an overrunning last attribute).

    @return: what is wrong, or C{None}.
    """
    offset = 0
    while offset < len(body):
        if len(body) - offset < 2:
            return "a truncated attribute header at offset %d" % (20 + offset,)
        length = body[offset + 1]
        if length < 2 or offset + length > len(body):
            return "attribute %d of Length %d at offset %d" % (body[offset], length, 20 + offset)
        offset += length
    return None


def _attribute(reply, key):
    """
    All raw values of attribute C{key} (an int or a (vendor, type) tuple).
    """
    return list(dict.get(reply, key, []))


def decryptMPPEKey(reply, key):
    """
    The plaintext of an MS-MPPE-Send/Recv-Key (RFC 2548 2.4.2-3).

    @param reply: the verified pyrad Access-Accept, with
        C{request_authenticator} set.
    @param key: MS_MPPE_SEND_KEY or MS_MPPE_RECV_KEY.
    @raise RadiusError: missing, repeated or malformed.
    """
    values = _attribute(reply, (VENDOR_MICROSOFT, key))
    if len(values) != 1:
        raise RadiusError("Access-Accept has %d MS-MPPE key attributes of type %d" % (len(values), key))
    value = values[0]
    if len(value) < 18 or (len(value) - 2) % 16:
        raise RadiusError("MS-MPPE key attribute of %d octets" % (len(value),))
    if not value[0] & 0x80:
        raise RadiusError("MS-MPPE key salt without its high bit set")
    plain = reply._salt_en_decrypt(value[2:], value[:2], encrypt=False)
    length = plain[0]
    if length == 0 or length > len(plain) - 1:
        raise RadiusError("MS-MPPE key length %d in %d octets" % (length, len(plain) - 1))
    return plain[1 : 1 + length]


def mskFromAccept(reply):
    """
    The MSK of an Access-Accept: MS-MPPE-Recv-Key || MS-MPPE-Send-Key
    (RFC 3748 and strongSwan's eap-radius; for EAP-MSCHAPv2 the
    authenticator's receive key is MasterReceiveKey), zero-padded to 64
    octets as ikedtx's EAP-MSCHAPv2 server and iked build it.
    """
    recv = decryptMPPEKey(reply, MS_MPPE_RECV_KEY)
    send = decryptMPPEKey(reply, MS_MPPE_SEND_KEY)
    msk = recv + send
    if len(msk) < MSK_LENGTH:
        msk += b"\x00" * (MSK_LENGTH - len(msk))
    return msk


#: iked's maps without C{radius config} lines (radius.c): Framed-IP-Address
#: and -Netmask, and Microsoft's primary and secondary DNS and NBNS
#: servers (RFC 2548 2.6-2.7), as C{(CP attribute, vendor, type)}.
DEFAULT_CONFIG_MAPS = ((1, 0, 8), (2, 0, 9), (3, VENDOR_MICROSOFT, 28), (3, VENDOR_MICROSOFT, 29),
                       (4, VENDOR_MICROSOFT, 30), (4, VENDOR_MICROSOFT, 31))
#: CP attributes whose value is an IPv6 address (the others: IPv4).
_IPV6_OPTIONS = (8, 10, 11, 12, 15, 23457)


def configFromAccept(reply, maps=()):
    """
    The configuration attributes an Access-Accept gives, by the C{radius
    config} maps (L{ikedtx.config.model.RadiusConfigMap}, or
    L{DEFAULT_CONFIG_MAPS} without any); a map to C{none} (0) is skipped,
    a value of the wrong size logged and skipped.

    @return: C{((CP attribute type, ip_address), ...)} in map order.
    """
    import ipaddress

    rows = [(m.option, m.vendor, m.attribute) for m in maps] if maps else DEFAULT_CONFIG_MAPS
    result = []
    for option, vendor, attribute in rows:
        if option == 0:
            continue
        size = 16 if option in _IPV6_OPTIONS else 4
        for value in _attribute(reply, attribute if vendor == 0 else (vendor, attribute)):
            value = bytes(value)
            if option == 8 and len(value) == 18:
                # Framed-IPv6-Address is 16 octets; a Framed-IPv6-Prefix
                # style value (reserved, length, prefix) is taken whole.
                value = value[2:]
            if len(value) != size:
                log.info("RADIUS attribute {vendor}/{attribute} of {n} octets is no address for CP attribute "
                         "{option}: ignored", vendor=vendor, attribute=attribute, n=len(value), option=option)
                continue
            result.append((option, ipaddress.ip_address(value)))
    return tuple(result)


def eapMessage(reply):
    """
    The EAP packet of an answer: its EAP-Message attributes joined
    (RFC 3579 3.1), or C{None} without any.
    """
    values = _attribute(reply, EAP_MESSAGE)
    if not values:
        return None
    return b"".join(values)


def splitEAP(packet):
    """
    @return: C{packet} cut into EAP-Message values of at most 253 octets.
    """
    return [packet[i : i + ATTRIBUTE_VALUE_MAX] for i in range(0, len(packet), ATTRIBUTE_VALUE_MAX)] or [b""]


@implementer(IEAPBackend)
class RadiusEAPBackend:
    """
    IEAPBackend for C{eap "radius"}: every session passes EAP through to
    the RADIUS servers of C{client}.
    """

    def __init__(self, client, nasIdentifier="ikedtx", nasIPAddress=None, random=os.urandom, configMaps=()):
        """
        @param configMaps: the C{radius config} lines
            (L{configFromAccept}).
        """
        self.client = client
        self.nasIdentifier = nasIdentifier
        self.nasIPAddress = nasIPAddress
        self.configMaps = tuple(configMaps)
        self._random = random

    def newSession(self, policy, peerIdentity, callingStationId=None):
        """
        @param peerIdentity: the IKE identity of the peer (bytes); it names
            the session in logs, the EAP identity comes from the peer.
        """
        return RadiusEAPSession(self, policy, peerIdentity, callingStationId)


@implementer(IEAPSession)
class RadiusEAPSession:
    """
    One EAP conversation relayed to RADIUS (IEAPSession).

    @ivar userName: the EAP identity once the peer sent it (text).
    @ivar classAttributes: Class values of the Access-Accept (to echo in
        accounting, RFC 2865 5.25).
    """

    def __init__(self, backend, policy, peerIdentity, callingStationId=None):
        self._backend = backend
        self._policy = policy
        self._peerIdentity = peerIdentity
        self._callingStationId = callingStationId
        self._identifier = backend._random(1)[0]
        self._state = None
        self._done = False
        self._pending = None
        self.userName = None
        self.classAttributes = ()

    def __repr__(self):
        return "<RadiusEAPSession user=%r done=%r>" % (self.userName, self._done)

    def start(self):
        """
        @return: a Deferred of the first L{EAPStep}: EAP Request/Identity.
        """
        packet = _eap.EAPPacket(_eap.REQUEST, self._identifier, _eap.TYPE_IDENTITY).encode()
        return defer.succeed(EAPStep(packet))

    def _failure(self, reason):
        self._done = True
        log.warn("EAP-RADIUS for {user}: {reason}", user=self.userName or "(no identity yet)", reason=reason)
        # RFC 3748 4.2: the Identifier of the Response answered.
        return EAPStep(_eap.EAPPacket(_eap.FAILURE, self._identifier).encode(), False, reason=reason,
                       identity=self.userName)

    def receive(self, packet):
        """
        Relay an EAP Response from the peer.

        @return: a Deferred of the next L{EAPStep}; it never fails: RADIUS
            errors become an EAP Failure step.
        """
        if self._pending is not None:
            raise RuntimeError("receive() while a RADIUS request of this session is outstanding")
        if self._done:
            return defer.succeed(self._failure("EAP exchange already over"))
        try:
            eap = _eap.EAPPacket.decode(packet)
        except _eap.EAPProtocolError as e:
            return defer.succeed(self._failure("malformed EAP packet from the peer: %s" % (e,)))
        if eap.code != _eap.RESPONSE:
            return defer.succeed(self._failure("peer sent EAP code %d, not a Response" % (eap.code,)))
        if self.userName is None:
            if eap.type != _eap.TYPE_IDENTITY:
                return defer.succeed(self._failure("first EAP Response is not an Identity"))
            try:
                self.userName = _eap._name(eap.data, "EAP identity")
            except _eap.EAPProtocolError as e:
                return defer.succeed(self._failure(str(e)))
            if not self.userName:
                return defer.succeed(self._failure("empty EAP identity"))
        self._identifier = eap.identifier
        d = self._backend.client.send(lambda server, ident: self._build(server, ident, bytes(packet)))
        # Set before the callbacks, which clear it (at once if d has fired).
        self._pending = d
        d.addCallbacks(self._answer, self._noAnswer)
        return d

    def _build(self, server, ident, packet):
        request = _pyrad.AuthPacket(_pyrad.AccessRequest, ident, server.secret, dict=_DICTIONARY)
        request.add_message_authenticator()
        request.AddAttribute("User-Name", self.userName)
        request.AddAttribute("NAS-Identifier", self._backend.nasIdentifier)
        if self._backend.nasIPAddress:
            request.AddAttribute("NAS-IP-Address", self._backend.nasIPAddress)
        request.AddAttribute("Service-Type", SERVICE_TYPE_FRAMED)
        request.AddAttribute("NAS-Port-Type", NAS_PORT_TYPE_VIRTUAL)
        request.AddAttribute("Framed-MTU", 1400)
        if self._callingStationId:
            request.AddAttribute("Calling-Station-Id", self._callingStationId)
        for chunk in splitEAP(packet):
            request.AddAttribute("EAP-Message", chunk)
        if self._state is not None:
            request.AddAttribute("State", self._state)
        return request

    def _noAnswer(self, failure):
        self._pending = None
        if failure.check(defer.CancelledError):
            return EAPStep(None, False, reason="EAP-RADIUS session aborted", identity=self.userName)
        return self._failure("RADIUS: %s" % (failure.getErrorMessage(),))

    def _answer(self, reply):
        self._pending = None
        if self._done:
            return self._failure("answer after abort")
        states = _attribute(reply, STATE)
        self._state = states[0] if states else None
        message = eapMessage(reply)
        if reply.code == _pyrad.AccessReject:
            return self._failure("RADIUS Access-Reject")
        if reply.code == _pyrad.AccessChallenge:
            if message is None:
                return self._failure("Access-Challenge without EAP-Message")
            try:
                eap = _eap.EAPPacket.decode(message)
            except _eap.EAPProtocolError as e:
                return self._failure("Access-Challenge with a malformed EAP-Message: %s" % (e,))
            if eap.code != _eap.REQUEST:
                return self._failure("Access-Challenge carries EAP code %d, not a Request" % (eap.code,))
            return EAPStep(message, identity=self.userName)
        # Access-Accept.
        try:
            msk = mskFromAccept(reply)
        except RadiusError as e:
            return self._failure("Access-Accept without a usable MSK: %s" % (e,))
        self._done = True
        self.classAttributes = tuple(_attribute(reply, CLASS))
        success = _eap.EAPPacket(_eap.SUCCESS, self._identifier).encode()
        if message is not None:
            try:
                eap = _eap.EAPPacket.decode(message)
            except _eap.EAPProtocolError:
                eap = None
            if eap is not None and eap.code == _eap.SUCCESS:
                success = message
        config = configFromAccept(reply, self._backend.configMaps)
        log.info("EAP-RADIUS: {user} authenticated", user=self.userName)
        return EAPStep(success, True, msk, identity=self.userName, config=config)

    def abort(self):
        self._done = True
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()


@dataclass
class AccountingSession:
    """
    What RFC 2866 accounting needs to know of one IKE SA.

    @ivar sessionId: the Acct-Session-Id (one per IKE SA; e.g. the SPIs).
    @ivar userName: the EAP identity (or the IKE identity without EAP).
    @ivar framedAddress: the address given to the peer, if any.
    @ivar startedAt: the time the IKE SA came up (seconds).
    @ivar classAttributes: Class values of the Access-Accept, echoed.
    @ivar nasAddress: our IPv4 address of the IKE SA (NAS-IP-Address), if
        any (else the accounting's own C{nasIPAddress}).
    @ivar inputOctets: what the datapath counted for the IKE SA's Child SAs,
        inbound (from the user, RFC 2866 5.3); L{None} when unknown. Likewise
        C{outputOctets}, C{inputPackets}, C{outputPackets}.
    """

    sessionId: str
    userName: str
    framedAddress: Optional[str] = None
    callingStationId: Optional[str] = None
    startedAt: Optional[float] = None
    classAttributes: Tuple[bytes, ...] = ()
    nasAddress: Optional[str] = None
    inputOctets: Optional[int] = None
    outputOctets: Optional[int] = None
    inputPackets: Optional[int] = None
    outputPackets: Optional[int] = None

    def addUsage(self, inbound, octets, packets):
        """
        Count the usage of one Child SA's IPsec SA.
        """
        if inbound:
            self.inputOctets = (self.inputOctets or 0) + octets
            self.inputPackets = (self.inputPackets or 0) + packets
        else:
            self.outputOctets = (self.outputOctets or 0) + octets
            self.outputPackets = (self.outputPackets or 0) + packets


def sessionIdFor(spiI, spiR):
    """
    @return: an Acct-Session-Id for the IKE SA of these SPIs (8 octets each).
    """
    return "%s-%s" % (spiI.hex(), spiR.hex())


class RadiusAccounting:
    """
    Accounting-Request Start and Stop for IKE SAs (RFC 2866).
    """

    def __init__(self, client, nasIdentifier="ikedtx", nasIPAddress=None, clock=None):
        self.client = client
        self.nasIdentifier = nasIdentifier
        self.nasIPAddress = nasIPAddress
        self._clock = clock if clock is not None else (lambda: client.reactor.seconds())

    def _build(self, session, status, extra):
        def build(server, ident):
            request = _pyrad.AcctPacket(_pyrad.AccountingRequest, ident, server.secret, dict=_DICTIONARY)
            request.AddAttribute("Acct-Status-Type", status)
            request.AddAttribute("Acct-Session-Id", session.sessionId)
            request.AddAttribute("User-Name", session.userName)
            request.AddAttribute("NAS-Identifier", self.nasIdentifier)
            nasAddress = session.nasAddress or self.nasIPAddress
            if nasAddress:
                request.AddAttribute("NAS-IP-Address", nasAddress)
            request.AddAttribute("NAS-Port-Type", NAS_PORT_TYPE_VIRTUAL)
            request.AddAttribute("Service-Type", SERVICE_TYPE_FRAMED)
            if session.framedAddress:
                request.AddAttribute("Framed-IP-Address", session.framedAddress)
            if session.callingStationId:
                request.AddAttribute("Calling-Station-Id", session.callingStationId)
            for value in session.classAttributes:
                request.AddAttribute("Class", value)
            for name, value in extra:
                request.AddAttribute(name, value)
            return request

        return build

    def start(self, session):
        """
        Send Accounting Start for an IKE SA that came up.

        @return: a Deferred firing with C{True} when the server acknowledged
            it, C{False} (logged) when none did.
        """
        if session.startedAt is None:
            session.startedAt = self._clock()
        return self._send(session, ACCT_START, ())

    def stop(self, session, inputOctets=None, outputOctets=None, inputPackets=None, outputPackets=None,
             cause=TERMINATE_USER_REQUEST):
        """
        Send Accounting Stop with the session time and the counts known
        (given here, else those the session gathered).
        """
        inputOctets = session.inputOctets if inputOctets is None else inputOctets
        outputOctets = session.outputOctets if outputOctets is None else outputOctets
        inputPackets = session.inputPackets if inputPackets is None else inputPackets
        outputPackets = session.outputPackets if outputPackets is None else outputPackets
        now = self._clock()
        started = session.startedAt if session.startedAt is not None else now
        extra = [("Acct-Session-Time", max(0, int(now - started))), ("Acct-Terminate-Cause", cause)]
        for name, value in (
            ("Acct-Input-Octets", inputOctets),
            ("Acct-Output-Octets", outputOctets),
            ("Acct-Input-Packets", inputPackets),
            ("Acct-Output-Packets", outputPackets),
        ):
            if value is not None:
                # 32-bit counters (RFC 2866 5.3); the Gigawords attributes
                # of RFC 2869 are not sent.
                extra.append((name, value & 0xFFFFFFFF))
        return self._send(session, ACCT_STOP, extra)

    def _send(self, session, status, extra):
        d = self.client.send(self._build(session, status, extra))

        def failed(failure):
            failure.trap(RadiusError)
            log.warn(
                "RADIUS accounting {what} for session {sid} not acknowledged: {why}",
                what="Start" if status == ACCT_START else "Stop",
                sid=session.sessionId,
                why=failure.getErrorMessage(),
            )
            return False

        d.addCallbacks(lambda _: True, failed)
        return d

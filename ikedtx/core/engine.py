# -*- test-case-name: tests.test_core_exchanges -*-
"""
The sans-IO IKEv2 core.

L{IKECore} holds every IKE SA of the daemon. It is fed datagrams (with the
local and remote endpoints they travelled between), timer expiries and
commands, and answers each call with a list of actions
(L{ikedtx.core.actions}): datagrams to send, timers to arm, Child SAs to
install, state changes. It never touches a reactor, so two cores can be
pumped against each other with a fake clock.

The engine owns the message ID window of each IKE SA (RFC 7296 2.2, window
size 1), the retransmission of our requests (2.1), the response cache that
answers a retransmitted request with the identical response (2.1), the
COOKIE defence (2.6) and the dispatch of requests to the exchange handlers in
L{ikedtx.core.exchanges}.
"""

import hashlib
import hmac
import os
import struct
import time
from ipaddress import ip_address

from twisted.logger import Logger

from ikedtx.core.actions import (
    CancelTimer, IKESADown, IKESAUp, RemoveChildSA, RequestDone, SendDatagram, SendNatKeepalive, SetTimer)
from ikedtx.core import exchanges as X
from ikedtx.core.errors import (
    LocalProtocolError, NegotiationFailed, PeerNotResponding, RemoteProtocolError, SADeleted)
from ikedtx.core.policy import PolicyTable, peerAddressOf
from ikedtx.core.sa import IKESA, ChildState, IKEState, PendingRequest
from ikedtx.core.settings import NATT_ONLY, CoreSettings
from ikedtx.crypto.errors import IntegrityError
from ikedtx.addresses import addressOf
from ikedtx.wire.payloads import Notify, UnknownPayload
from ikedtx.wire.constants import ExchangeType, HeaderFlag, NotifyType, nameOf
from ikedtx.wire.errors import InvalidMajorVersion, MalformedMessage
from ikedtx.wire.fragments import Reassembler, fragmentMessage
from ikedtx.wire.message import Message

_ZERO_SPI = b"\x00" * 8
_COOKIE_VERSION = b"\x00\x00\x00\x01"
# RFC 7296 2.6: the cookie secret changes periodically; the previous one
# stays valid for one more period so that a cookie in flight still works.
COOKIE_SECRET_LIFETIME = 300.0


class IKECore:
    """
    All IKE SAs of one daemon, as a sans-IO state machine.

    @ivar config: the L{ikedtx.config.model.Config} in force.
    @ivar policies: its L{PolicyTable}.
    @ivar credentials: the L{ikedtx.auth.store.CredentialStore}.
    @ivar settings: L{CoreSettings}.
    @ivar ikeSAs: C{{localSPI: IKESA}} of every IKE SA past IKE_SA_INIT
        (and our own half-open ones).
    @ivar passive: iked's passive mode (C{set passive}, C{-S}, C{ikectl
        passive}): no packet is sent to peers and nothing is initiated; what
        peers send is dropped.
    """

    _log = Logger()

    def __init__(self, config, credentials=None, settings=None, now=time.monotonic, randomBytes=os.urandom,
                 spiAllocator=None, localAddressFor=None, resolved=None, keyLog=None, wallClock=None):
        self.config = config
        self.policies = PolicyTable(config.policies, resolved)
        self.credentials = credentials
        self.settings = settings or CoreSettings()
        self.now = now
        self.randomBytes = randomBytes
        self.spiAllocator = spiAllocator or self._randomSPI
        self.localAddressFor = localAddressFor
        self.keyLog = keyLog
        # Certificate validity is judged by wall-clock time (a datetime, or
        # None for the real time); the monotonic clock above drives timers.
        self.wallClock = wallClock or (lambda: None)
        self.passive = self.settings.passive
        self.ikeSAs = {}
        self._halfOpen = {}
        self._out = []
        self._requests = 0
        self._reqids = 0
        self._cookieSecret = randomBytes(32)
        self._previousCookieSecret = None

    # Helpers for the exchanges

    def _randomSPI(self, protocol, source, destination):
        while True:
            (spi,) = struct.unpack("!I", self.randomBytes(4))
            if spi > 255:
                return spi

    def newIKESPI(self):
        while True:
            spi = self.randomBytes(8)
            if spi != _ZERO_SPI and spi not in self.ikeSAs:
                return spi

    def nextReqid(self):
        self._reqids += 1
        return self._reqids

    def emit(self, action):
        self._out.append(action)

    def _drain(self):
        out, self._out = self._out, []
        return out

    def _newRequestId(self):
        self._requests += 1
        return self._requests

    # Commands

    def initiate(self, policyName):
        """
        Start an IKE SA (with its first Child SA) for the policy
        C{policyName}.

        @return: C{(requestId, actions)}; a L{RequestDone} with that id
            reports the outcome: the IKE SA, or a L{NegotiationFailed}.
        """
        requestId = self._newRequestId()
        try:
            self._initiate(policyName, requestId)
        except NegotiationFailed as e:
            self.emit(RequestDone(requestId, error=e))
        return requestId, self._drain()

    def _initiate(self, policyName, requestId):
        policy = self.policies.byName(policyName)
        if policy is None:
            raise NegotiationFailed("no policy named %r" % (policyName,))
        if self.passive:
            raise NegotiationFailed("passive mode: not initiating %r" % (policyName,))
        peer = peerAddressOf(policy)
        if isinstance(peer, str):
            addresses = self.policies.resolved.get(peer)
            peer = addresses[0] if addresses else None
        if peer is None:
            raise NegotiationFailed("policy %r has no single peer address to initiate to" % (policyName,))
        local = self._localAddress(policy, peer)
        nattOnly = self.settings.nattMode == NATT_ONLY
        localPort = self.settings.nattPort if nattOnly else self.settings.ikePort
        remotePort = self.settings.peerNattPort if nattOnly else self.settings.peerIkePort
        ikeSA = IKESA(True, self.newIKESPI(), _ZERO_SPI, policy, (str(local), localPort), (str(peer), remotePort), self.now())
        ikeSA.nattEnabled = nattOnly
        ikeSA.requestId = requestId
        self.ikeSAs[ikeSA.localSPI] = ikeSA
        self._log.info("{policy}: initiating IKE SA to {peer}", policy=policy.name, peer=peer)
        self.queueTask(ikeSA, X.InitTask())

    def _localAddress(self, policy, peer):
        local = policy.local
        if local is not None and not isinstance(local, str):
            from ipaddress import ip_network

            network = ip_network(local, strict=False)
            if network.num_addresses == 1:
                return network.network_address
        if isinstance(local, str) and self.policies.resolved.get(local):
            return self.policies.resolved[local][0]
        if self.localAddressFor is not None:
            try:
                return ip_address(self.localAddressFor(str(peer)))
            except OSError as e:
                raise NegotiationFailed("no local address to reach %s: %s" % (peer, e))
        return ip_address("::1" if ip_address(peer).version == 6 else "127.0.0.1")

    def startup(self):
        """
        Initiate every active policy (unless passive); the outcome of each
        is only logged. Also starts the rotation of the cookie secret.
        """
        self.emit(SetTimer(("cookiesecret", None), COOKIE_SECRET_LIFETIME))
        if not self.passive:
            for policy in self.policies.active():
                requestId = self._newRequestId()
                try:
                    self._initiate(policy.name, requestId)
                except NegotiationFailed as e:
                    self._log.warn("{policy}: {error}", policy=policy.name, error=e)
        return self._drain()

    def createChildSA(self, ikeSA):
        """
        Negotiate an additional Child SA for C{ikeSA}'s policy with
        CREATE_CHILD_SA (with PFS when the policy's childsa proposals have a
        group).
        """
        requestId = self._newRequestId()
        if not ikeSA.isEstablished:
            self.emit(RequestDone(requestId, error=LocalProtocolError("%s is not established" % (ikeSA,))))
        else:
            self.queueTask(ikeSA, X.CreateChildTask(requestId))
        return requestId, self._drain()

    def deleteChildSA(self, ikeSA, child):
        """
        Delete C{child} with an INFORMATIONAL exchange.
        """
        requestId = self._newRequestId()
        if child not in ikeSA.children:
            self.emit(RequestDone(requestId, error=LocalProtocolError("no such Child SA")))
        else:
            self.queueTask(ikeSA, X.DeleteChildTask(child, requestId))
        return requestId, self._drain()

    def deleteIKESA(self, ikeSA, reason="deleted by request"):
        """
        Delete C{ikeSA} and its Child SAs with an INFORMATIONAL exchange.
        """
        requestId = self._newRequestId()
        self._deleteIKESA(ikeSA, reason, requestId)
        return requestId, self._drain()

    def _deleteIKESA(self, ikeSA, reason, requestId=None):
        if ikeSA.isEstablished:
            for task in ikeSA.tasks:
                task.failed(self, ikeSA, SADeleted(reason))
            ikeSA.tasks = []
            self.queueTask(ikeSA, X.DeleteIKETask(requestId, reason))
        else:
            self.destroy(ikeSA, reason)
            if requestId is not None:
                self.emit(RequestDone(requestId, result=None))

    def checkLiveness(self, ikeSA):
        """
        Send an empty INFORMATIONAL request (RFC 7296 1.4); the request
        fails if the peer never answers, and the IKE SA is then deleted.
        """
        requestId = self._newRequestId()
        self.queueTask(ikeSA, X.LivenessTask(requestId))
        return requestId, self._drain()

    def shutdown(self):
        """
        Delete every IKE SA: established ones with a Delete sent once
        (no retransmission: the daemon is going away), the rest silently.
        """
        for ikeSA in list(self.ikeSAs.values()):
            if ikeSA.isEstablished and ikeSA.window.pending is None:
                try:
                    self.sendRequest(ikeSA, X.DeleteIKETask(None, "shutdown"), retransmit=False)
                except Exception:
                    self._log.failure("sending a Delete for {ikeSA}", ikeSA=ikeSA)
            self.destroy(ikeSA, "daemon shutting down")
        return self._drain()

    def findChild(self, spiIn):
        for ikeSA in self.ikeSAs.values():
            for child in ikeSA.children:
                if child.spiIn == spiIn:
                    return ikeSA, child
        return None, None

    # Tasks and requests

    def queueTask(self, ikeSA, task):
        ikeSA.tasks.append(task)
        self._nextTask(ikeSA)

    def _nextTask(self, ikeSA):
        if self.passive or ikeSA.window.pending is not None or not ikeSA.tasks:
            return
        if ikeSA.state in (IKEState.CLOSING, IKEState.CLOSED):
            return
        task = ikeSA.tasks.pop(0)
        try:
            self.sendRequest(ikeSA, task)
        except NegotiationFailed as e:
            task.failed(self, ikeSA, e)
            self._nextTask(ikeSA)

    def sendRequest(self, ikeSA, task, retransmit=True):
        """
        Build C{task}'s request and send it with the next Message ID.
        """
        exchangeType, payloads = task.build(self, ikeSA)
        messageId = ikeSA.window.nextRequestId
        datagrams = self.encode(ikeSA, exchangeType, payloads, messageId, response=False)
        task.sent(ikeSA, datagrams)
        if not retransmit:
            self._sendAll(ikeSA, datagrams)
            return
        ikeSA.window.pending = PendingRequest(task, messageId, datagrams)
        self._sendAll(ikeSA, datagrams)
        self.emit(SetTimer(("retransmit", ikeSA.localSPI), self.settings.retransmit.timeout(0)))

    def restartRequest(self, ikeSA, task):
        """
        Send IKE_SA_INIT C{task} again from scratch (after a COOKIE or
        INVALID_KE_PAYLOAD, RFC 7296 1.2 and 2.6).
        """
        self.emit(CancelTimer(("retransmit", ikeSA.localSPI)))
        ikeSA.window.pending = None
        # The response that asked for the restart did not complete the
        # exchange: the retry is the same Message ID (0 for IKE_SA_INIT).
        ikeSA.window.nextRequestId = 0
        self.sendRequest(ikeSA, task)

    def encode(self, ikeSA, exchangeType, payloads, messageId, response):
        """
        The datagrams of one message of C{ikeSA}: in the clear for
        IKE_SA_INIT, else in an SK payload, fragmented (RFC 7383) when the
        peer supports it and the message is too large.
        """
        flags = (HeaderFlag.INITIATOR if ikeSA.initiator else 0) | (HeaderFlag.RESPONSE if response else 0)
        if exchangeType == ExchangeType.IKE_SA_INIT:
            message = Message(ikeSA.spiI, ikeSA.spiR, exchangeType, flags, messageId, payloads=payloads)
            return [message.encode()]
        message = Message(ikeSA.spiI, ikeSA.spiR, exchangeType, flags, messageId, encrypted=payloads)
        data = message.encode(ikeSA.cipherOut)
        if ikeSA.peerFragmentation and self.config.settings.fragmentation and len(data) > self.settings.fragmentSize:
            return fragmentMessage(message, ikeSA.cipherOut, self.settings.fragmentSize)
        return [data]

    def _sendAll(self, ikeSA, datagrams, local=None, remote=None):
        local = local or ikeSA.local
        remote = remote or ikeSA.remote
        for data in datagrams:
            self.emit(SendDatagram(data, local, remote))

    def _sendResponse(self, ikeSA, exchangeType, messageId, payloads, local=None, remote=None):
        """
        Send a response (RFC 7296 2.11: to the address and port the request
        came from, from the address and port it came to) and keep it for
        retransmitted requests.
        """
        datagrams = self.encode(ikeSA, exchangeType, payloads, messageId, response=True)
        ikeSA.window.lastResponse = (messageId, datagrams)
        self._sendAll(ikeSA, datagrams, local, remote)
        return datagrams

    # Input

    def datagramReceived(self, data, local, remote):
        """
        Handle one IKE message (without the non-ESP marker) that arrived on
        C{local} from C{remote}.
        """
        if self.passive:
            self._log.debug("{remote}: passive mode, message dropped", remote=remote)
            return []
        try:
            self._datagramReceived(bytes(data), tuple(local), tuple(remote))
        except Exception:
            # A peer can never make the core raise; a bug is logged and the
            # message dropped, every SA stays as it was.
            self._log.failure("internal error handling a message from {remote}", remote=remote)
        return self._drain()

    def _datagramReceived(self, data, local, remote):
        try:
            message = Message.decode(data)
        except InvalidMajorVersion as e:
            self._log.info("{remote}: {error}", remote=remote, error=e)
            if e.header is not None and not e.header.isResponse and e.header.exchangeType == ExchangeType.IKE_SA_INIT:
                self._answerUnauthenticated(e.header, local, remote, NotifyType.INVALID_MAJOR_VERSION, b"")
            return
        except MalformedMessage as e:
            self._log.info("{remote}: dropped a malformed message: {error}", remote=remote, error=e)
            return
        message.rawData = data
        if message.exchangeType == ExchangeType.IKE_SA_INIT and not message.isResponse:
            X.respondInit(self, message, data, local, remote)
            return
        ours = message.spiR if message.isInitiator else message.spiI
        ikeSA = self.ikeSAs.get(ours)
        if ikeSA is None:
            self._log.debug("{remote}: message for unknown IKE SA {spi}", remote=remote, spi=ours.hex())
            return
        if message.isInitiator == ikeSA.initiator:
            self._log.info("{ikeSA}: message with the wrong Initiator flag dropped", ikeSA=ikeSA)
            return
        if message.isResponse:
            self._responseReceived(ikeSA, message, data, local, remote)
        else:
            self._requestReceived(ikeSA, message, data, local, remote)

    def _answerUnauthenticated(self, header, local, remote, notifyType, notifyData):
        """
        RFC 7296 2.21.1: errors to an IKE_SA_INIT request are answered in
        the clear, without keeping state.
        """
        message = Message(header.spiI, _ZERO_SPI, ExchangeType.IKE_SA_INIT, HeaderFlag.RESPONSE, 0,
                          payloads=[Notify(notifyType, data=notifyData)])
        self.emit(SendDatagram(message.encode(), local, remote))

    def _open(self, ikeSA, message):
        """
        The inner payloads of a protected message, or L{None} when it is a
        fragment of an incomplete message. Raises L{IntegrityError} or
        L{MalformedMessage}.
        """
        if message.isFragment:
            if ikeSA.reassembler is None:
                ikeSA.reassembler = Reassembler()
            whole = ikeSA.reassembler.add(message, ikeSA.cipherIn)
            return None if whole is None else whole.encrypted
        if ikeSA.cipherIn is None:
            raise MalformedMessage("protected message before keys exist")
        return message.decrypt(ikeSA.cipherIn)

    def _requestReceived(self, ikeSA, message, data, local, remote):
        window = ikeSA.window
        if window.lastResponse is not None and message.messageId == window.lastResponse[0]:
            if message.isFragment and message.sealedPayload.fragmentNumber != 1:
                return
            self._log.debug("{ikeSA}: retransmitted request {mid}, resending our response", ikeSA=ikeSA, mid=message.messageId)
            self._sendAll(ikeSA, window.lastResponse[1], local, remote)
            return
        if message.messageId != window.nextPeerRequestId:
            self._log.info("{ikeSA}: request with Message ID {mid} dropped (expected {expected})",
                           ikeSA=ikeSA, mid=message.messageId, expected=window.nextPeerRequestId)
            return
        try:
            payloads = self._open(ikeSA, message)
        except IntegrityError as e:
            self._log.info("{ikeSA}: request {mid} failed its integrity check ({error}); dropped",
                           ikeSA=ikeSA, mid=message.messageId, error=e)
            return
        except MalformedMessage as e:
            self._log.info("{ikeSA}: malformed request {mid}: {error}", ikeSA=ikeSA, mid=message.messageId, error=e)
            if e.notify is not None and ikeSA.cipherOut is not None:
                window.nextPeerRequestId += 1
                self._sendResponse(ikeSA, message.exchangeType, message.messageId, [Notify(e.notify, data=e.notifyData)],
                                   local, remote)
                if ikeSA.state == IKEState.SA_INIT and not ikeSA.initiator:
                    self.destroy(ikeSA, "malformed IKE_AUTH")
            return
        if payloads is None:
            return
        window.nextPeerRequestId += 1
        ikeSA.lastActivity = self.now()
        self._followPeer(ikeSA, local, remote)
        handler = X.RESPONDERS.get(message.exchangeType)
        if handler is None:
            self._log.info("{ikeSA}: unsupported exchange {exchange}", ikeSA=ikeSA,
                           exchange=nameOf(ExchangeType, message.exchangeType))
            self._sendResponse(ikeSA, message.exchangeType, message.messageId,
                               [Notify(NotifyType.INVALID_SYNTAX)], local, remote)
            return
        try:
            critical = [p for p in payloads if p.critical and isinstance(p, UnknownPayload)]
            if critical:
                raise RemoteProtocolError("unsupported critical payload %d" % (critical[0].payloadType,),
                                          NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, bytes([critical[0].payloadType]))
            answer = handler(self, ikeSA, payloads)
        except RemoteProtocolError as e:
            self._log.info("{ikeSA}: {exchange} request refused: {error}", ikeSA=ikeSA,
                           exchange=nameOf(ExchangeType, message.exchangeType), error=e)
            answer = [Notify(e.notify, data=e.notifyData)] if e.notify is not None else []
        if answer is not None:
            self._sendResponse(ikeSA, message.exchangeType, message.messageId, answer, local, remote)
        X.afterResponse(self, ikeSA)

    def _followPeer(self, ikeSA, local, remote):
        """
        RFC 7296 2.23: behind a NAT the peer's address and port are those of
        the last authenticated request; a peer that moved to the NAT-T port
        (after detecting a NAT, or as MOBIKE peers do) is followed there.
        """
        if local[1] == self.settings.nattPort and ikeSA.local[1] != local[1]:
            ikeSA.local = local
            ikeSA.remote = remote
            ikeSA.nattEnabled = True
        if ikeSA.natRemote and remote != ikeSA.remote:
            self._log.info("{ikeSA}: peer moved to {remote}", ikeSA=ikeSA, remote=remote)
            ikeSA.remote = remote

    def _responseReceived(self, ikeSA, message, data, local, remote):
        pending = ikeSA.window.pending
        if pending is None or message.messageId != pending.messageId:
            self._log.debug("{ikeSA}: unexpected response {mid} dropped", ikeSA=ikeSA, mid=message.messageId)
            return
        if message.exchangeType != pending.task.exchangeType:
            self._log.info("{ikeSA}: response of the wrong exchange type dropped", ikeSA=ikeSA)
            return
        if message.exchangeType == ExchangeType.IKE_SA_INIT:
            payloads = message.payloads
        else:
            try:
                payloads = self._open(ikeSA, message)
            except IntegrityError as e:
                self._log.info("{ikeSA}: response {mid} failed its integrity check ({error}); dropped",
                               ikeSA=ikeSA, mid=message.messageId, error=e)
                return
            except MalformedMessage as e:
                self._log.info("{ikeSA}: malformed response {mid}: {error}", ikeSA=ikeSA, mid=message.messageId, error=e)
                self._requestFinished(ikeSA)
                pending.task.failed(self, ikeSA, NegotiationFailed("malformed response: %s" % (e,)))
                self._nextTask(ikeSA)
                return
            if payloads is None:
                return
        ikeSA.lastActivity = self.now()
        self._requestFinished(ikeSA)
        task = pending.task
        try:
            task.process(self, ikeSA, message, payloads, local, remote)
        except NegotiationFailed as e:
            task.failed(self, ikeSA, e)
        self._nextTask(ikeSA)

    def _requestFinished(self, ikeSA):
        self.emit(CancelTimer(("retransmit", ikeSA.localSPI)))
        ikeSA.window.pending = None
        ikeSA.window.nextRequestId += 1

    # Timers

    def timerExpired(self, key):
        """
        The timer C{key} of a L{SetTimer} action has expired.
        """
        try:
            kind, spi = key
            handler = getattr(self, "_timer_" + kind)
            handler(spi)
        except Exception:
            self._log.failure("internal error in timer {key}", key=key)
        return self._drain()

    def _timer_retransmit(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is None or ikeSA.window.pending is None:
            return
        pending = ikeSA.window.pending
        pending.attempt += 1
        delay = self.settings.retransmit.timeout(pending.attempt)
        if delay is None:
            self._log.info("{ikeSA}: no answer to request {mid} after {n} transmissions",
                           ikeSA=ikeSA, mid=pending.messageId, n=pending.attempt)
            error = PeerNotResponding("peer %s did not answer" % (ikeSA.remote[0],))
            ikeSA.window.pending = None
            pending.task.failed(self, ikeSA, error)
            self.destroy(ikeSA, "peer not responding", error)
            return
        self._log.debug("{ikeSA}: retransmitting request {mid} ({n})", ikeSA=ikeSA, mid=pending.messageId, n=pending.attempt)
        self._sendAll(ikeSA, pending.datagrams)
        self.emit(SetTimer(("retransmit", spi), delay))

    def _timer_halfopen(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is not None and not ikeSA.isEstablished:
            self.destroy(ikeSA, "half-open IKE SA timed out")

    def _timer_keepalive(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is not None and ikeSA.natLocal and ikeSA.nattEnabled:
            self.emit(SendNatKeepalive(ikeSA.local, ikeSA.remote))
            self.emit(SetTimer(("keepalive", spi), self.settings.natKeepalive))

    def _timer_cookiesecret(self, spi):
        self._previousCookieSecret = self._cookieSecret
        self._cookieSecret = self.randomBytes(32)
        self.emit(SetTimer(("cookiesecret", None), COOKIE_SECRET_LIFETIME))

    # Cookies (RFC 7296 2.6)

    def halfOpenCount(self):
        return len(self._halfOpen)

    def cookieFor(self, nonceI, remoteHost, spiI, secret=None):
        secret = self._cookieSecret if secret is None else secret
        digest = hashlib.sha256(nonceI + addressOf(remoteHost).packed + spiI + secret).digest()
        return _COOKIE_VERSION + digest

    def cookieValid(self, cookie, nonceI, remoteHost, spiI):
        for secret in (self._cookieSecret, self._previousCookieSecret):
            if secret is not None and hmac.compare_digest(cookie, self.cookieFor(nonceI, remoteHost, spiI, secret)):
                return True
        return False

    # SA bookkeeping

    def registerResponderSA(self, ikeSA, halfOpenKey):
        self.ikeSAs[ikeSA.localSPI] = ikeSA
        self._halfOpen[halfOpenKey] = ikeSA
        ikeSA.halfOpenKey = halfOpenKey
        self.emit(SetTimer(("halfopen", ikeSA.localSPI), self.settings.halfOpenTimeout))

    def halfOpen(self, key):
        return self._halfOpen.get(key)

    def established(self, ikeSA):
        """
        Mark C{ikeSA} VALID and tell the shell.
        """
        ikeSA.state = IKEState.VALID
        ikeSA.established = self.now()
        # The IKE_SA_INIT messages were kept for the AUTH payloads only.
        ikeSA.initRequest = ikeSA.initResponse = None
        key = getattr(ikeSA, "halfOpenKey", None)
        if key is not None:
            self._halfOpen.pop(key, None)
            ikeSA.halfOpenKey = None
        self.emit(CancelTimer(("halfopen", ikeSA.localSPI)))
        if ikeSA.natLocal and ikeSA.nattEnabled and self.settings.natKeepalive:
            self.emit(SetTimer(("keepalive", ikeSA.localSPI), self.settings.natKeepalive))
        self.emit(IKESAUp(ikeSA))
        self._log.info("{ikeSA}: established, peer {peer} ({auth})", ikeSA=ikeSA, peer=ikeSA.peerId,
                       auth=ikeSA.policy.name)

    def destroy(self, ikeSA, reason, error=None):
        """
        Forget C{ikeSA}: remove its Child SAs from the kernel, fail the
        commands waiting on it, cancel its timers, wipe its keys.
        """
        if ikeSA.state == IKEState.CLOSED:
            return
        wasUp = ikeSA.established is not None
        ikeSA.state = IKEState.CLOSED
        ikeSA.deleteReason = reason
        self.ikeSAs.pop(ikeSA.localSPI, None)
        key = getattr(ikeSA, "halfOpenKey", None)
        if key is not None and self._halfOpen.get(key) is ikeSA:
            del self._halfOpen[key]
        for kind in ("retransmit", "halfopen", "keepalive"):
            self.emit(CancelTimer((kind, ikeSA.localSPI)))
        for child in list(ikeSA.children):
            if child.state == ChildState.INSTALLED:
                self.emit(RemoveChildSA(ikeSA, child))
            child.state = ChildState.DELETED
        error = error or SADeleted(reason)
        for task in ikeSA.tasks:
            task.failed(self, ikeSA, error)
        ikeSA.tasks = []
        if ikeSA.window.pending is not None:
            ikeSA.window.pending.task.failed(self, ikeSA, error)
            ikeSA.window.pending = None
        if ikeSA.requestId is not None:
            self.emit(RequestDone(ikeSA.requestId, error=error))
            ikeSA.requestId = None
        ikeSA.wipe()
        if wasUp or ikeSA.initiator:
            self.emit(IKESADown(ikeSA, reason))
        self._log.info("{ikeSA}: deleted ({reason})", ikeSA=ikeSA, reason=reason)

    def installFailed(self, ikeSA, child, error):
        """
        The shell could not install C{child}: delete it from the peer too.
        """
        if child in ikeSA.children and ikeSA.isEstablished:
            child.state = ChildState.DELETED
            self.queueTask(ikeSA, X.DeleteChildTask(child, None))
        return self._drain()

    def reload(self, config, resolved=None):
        """
        Use C{config} from now on; IKE SAs whose policy disappeared are
        deleted, the others keep running under the policy of the same name.
        """
        self.config = config
        self.policies = PolicyTable(config.policies, resolved)
        for ikeSA in list(self.ikeSAs.values()):
            policy = self.policies.byName(ikeSA.policy.name)
            if policy is None:
                self._deleteIKESA(ikeSA, "policy removed by reload")
            else:
                ikeSA.policy = policy
        return self._drain()

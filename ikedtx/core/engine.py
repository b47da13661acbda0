# -*- test-case-name: tests.test_core_exchanges -*-
"""
The sans-IO IKEv2 core.

L{IKECore} holds every IKE SA of the daemon. It is fed datagrams (with the
local and remote endpoints they travelled between), timer expiries,
datapath answers and events, and commands, and answers each call with a
list of actions (L{ikedtx.core.actions}): datagrams to send, timers to arm,
SPIs to allocate, Child SAs to install, state changes. It never touches a
reactor, so two cores can be pumped against each other with a fake clock.

The engine owns the SA registry, the COOKIE defence (RFC 7296 2.6) and the
dispatch: a datagram goes to its IKE SA's L{TaskManager} (Message IDs,
retransmissions, the response cache), which runs the tasks of
L{ikedtx.core.tasks}. Timers are L{TimerKey}s dispatched by kind.
"""

import hashlib
import hmac
import os
import struct
import time
from ipaddress import ip_address, ip_network

from twisted.logger import LogLevel

from ikedtx.addresses import packedAddress
from ikedtx.core import cookies, limits, screening
from ikedtx.core.counters import Counters
from ikedtx.core.actions import (
    AllocateSpi, CancelTimer, CheckCertificateStatus, IKESADown, IKESAUp, InstallChildSA, RemoveChildSA, RequestDone,
    RunEAP, SendDatagram, SendNatKeepalive, SetTimer)
from ikedtx.core.errors import (
    AuthenticationFailed, LocalProtocolError, NegotiationFailed, PeerNotResponding, RemoteProtocolError, SADeleted)
from ikedtx.core.pools import AddressPools
from ikedtx.core.policy import PolicyTable, peerAddressOf
from ikedtx.core.sa import IKESA
from ikedtx.core.saindex import IKESAIndex
from ikedtx.core.settings import NATT_ONLY, CoreSettings
from ikedtx.core.states import ChildEvent, ChildState, IKEEvent, IKEState
from ikedtx.core.taskmanager import TaskManager, requestHash
from ikedtx.core.tasks import registry
from ikedtx.core.tasks.delete import ChildDeleteTask, IKEDeleteTask
from ikedtx.core.tasks.ikeinit import Refusal, screenRequest
from ikedtx.core.tasks.child import ChildCreateTask
from ikedtx.core.tasks.dpd import DeadPeerDetection
from ikedtx.core.tasks.liveness import LivenessTask
from ikedtx.core import lifetimes
from ikedtx.core import reauth, singleikesa
from ikedtx.core.tasks import childrekey, ikerekey
from ikedtx.core.tasks import config as configtask
from ikedtx.core.tasks import eap as eaptask
from ikedtx.core.tasks import initialcontact
from ikedtx.core.timers import IKE_SA_KINDS, TimerKey
from ikedtx.crypto.errors import IntegrityError
from ikedtx.wire.constants import ExchangeType, HeaderFlag, NotifyType, nameOf
from ikedtx.wire.errors import FragmentDropped, InvalidMajorVersion, MalformedMessage
from ikedtx.core.tasks.mobikeupdate import addressesChanged, moveIkeSA
from ikedtx.wire.fragments import fragmentMessage, fragmentSizeFor
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify, UnknownPayload
from ikedtx.logtext import Logger

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
    @ivar counters: the L{Counters} of what happened (C{show stats}).
    @ivar passive: iked's passive mode (C{set passive}, C{-S}, C{ikectl
        passive}): no packet is sent to peers and nothing is initiated; what
        peers send is dropped.
    """

    _log = Logger()

    def __init__(self, config, credentials=None, settings=None, now=time.monotonic, randomBytes=os.urandom,
                 localAddressFor=None, resolved=None, keyLog=None, wallClock=None):
        self.config = config
        self.policies = PolicyTable(config.policies, resolved)
        self.credentials = credentials
        self.settings = settings or CoreSettings()
        self.now = now
        self.randomBytes = randomBytes
        self.localAddressFor = localAddressFor
        self.keyLog = keyLog
        # Certificate validity is judged by wall-clock time (a datetime, or
        # None for the real time); the monotonic clock above drives timers.
        self.wallClock = wallClock or (lambda: None)
        self.passive = self.settings.passive
        self.dpd = DeadPeerDetection(self)
        self.pools = AddressPools()
        self.counters = Counters()
        self.ikeSAs = {}
        self._halfOpen = {}
        self._out = []
        self._requests = 0
        self._reqids = 0
        self._spiTokens = 0
        self._spiRequests = {}
        # {token: task} of SPI allocations whose IKE SA went before the
        # answer: the SPI is given back when it comes.
        self._lateSpis = {}
        self._statusRequests = {}
        self._eapRequests = {}
        #: An IEAPBackend for every EAP policy (tests), or None: then
        #: ikedtx.core.tasks.eap.backendFor chooses per policy.
        self.eapBackend = None
        #: The IEAPBackend of eap "radius" policies (ikedtx.auth.radiuswire,
        #: set by the shell), or None without a radius server.
        self.radiusBackend = None
        self._children = {}
        #: C{{spi: {ChildSA: None}}}: the Child SAs handed to the datapath,
        #: by their inbound and outbound SPIs (a kernel's expire names one).
        self._childSpis = {}
        self._reinitiateAttempts = {}
        self._cookieSecret = randomBytes(32)
        self._previousCookieSecret = None
        self._quietDrops = screening.QuietDrops(now)
        self._malformed = screening.QuietDrops(now, level=LogLevel.info)
        self._cookieLog = screening.QuietDrops(now)
        self._limits = cookies.HalfOpenLimits(self.settings)
        self._fragments = limits.FragmentBudget(self.settings)
        self.responseCache = limits.ResponseCache(self.settings)
        self.peerIdentities = limits.PeerIdentities()
        #: The IKE SAs by peer address, identity and policy (no walk of all).
        self.saIndex = IKESAIndex()
        #: C{f(spi)}: the IKE SPI a worker of several keeps (its residue
        #: class, L{ikedtx.privsep.steering.ownSpi}), or L{None}.
        self.spiFilter = None
        #: Whether startup() initiates the active policies (one worker of
        #: several does).
        self.initiatesActive = True
        #: C{f(ikeSA)} after INITIAL_CONTACT on C{ikeSA} deleted what this
        #: core had of the peer (the other workers forget theirs), or None.
        self.initialContactHook = None

    # Services for the tasks and the task managers

    def newIKESPI(self):
        while True:
            spi = self.randomBytes(8)
            if self.spiFilter is not None:
                spi = self.spiFilter(spi)
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

    def responderTasks(self, ikeSA, exchangeType):
        """
        The responder tasks for a request of C{exchangeType}, or L{None}.
        """
        return registry.responderTasks(exchangeType)

    def allocateSPI(self, task, ikeSA, protocol, source, destination):
        """
        Ask the shell for an inbound SPI on behalf of C{task}.

        @return: the token L{spiAllocated} will name.
        """
        self._spiTokens += 1
        token = self._spiTokens
        self._spiRequests[token] = (ikeSA, task)
        self.emit(AllocateSpi(token, protocol, source, destination))
        return token

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
        if ikeSA.peerFragmentation and self.config.settings.fragmentation:
            size = fragmentSizeFor(self.settings, ikeSA)
            if len(data) > size:
                fragments = fragmentMessage(message, ikeSA.cipherOut, size)
                self.counters.count("ikes_frag_sent", len(fragments))
                return fragments
        return [data]

    def sendAll(self, ikeSA, datagrams, local=None, remote=None):
        local = local or ikeSA.local
        remote = remote or ikeSA.remote
        for data in datagrams:
            self.emit(SendDatagram(data, local, remote))

    def answerInClear(self, header, local, remote, notifyType, notifyData):
        """
        RFC 7296 2.21.1: errors to an IKE_SA_INIT request are answered in
        the clear, without keeping state.
        """
        message = Message(header.spiI, _ZERO_SPI, ExchangeType.IKE_SA_INIT, HeaderFlag.RESPONSE, 0,
                          payloads=[Notify(notifyType, data=notifyData)])
        self.counters.notifiesSent(message.payloads)
        self.emit(SendDatagram(message.encode(), local, remote))

    # Commands

    def initiate(self, policyName):
        """
        Start an IKE SA (with its first Child SA) for the policy
        C{policyName}.

        @return: C{(requestId, actions)}; a L{RequestDone} with that id
            reports the outcome: the IKE SA once its first Child SA is
            installed, or a L{NegotiationFailed}.
        """
        requestId = self._newRequestId()
        try:
            self._initiate(policyName, requestId)
        except NegotiationFailed as e:
            self.emit(RequestDone(requestId, error=e))
        return requestId, self._drain()

    def _initiate(self, policyName, requestId, keepUp=None):
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
        self.counters.count("ikes_sa_created")
        ikeSA.taskManager = TaskManager(self, ikeSA)
        ikeSA.nattEnabled = nattOnly
        ikeSA.keepUp = keepUp
        self.ikeSAs[ikeSA.localSPI] = ikeSA
        self.saIndex.registered(ikeSA)
        self._log.info("{policy}: initiating IKE SA to {peer}", policy=policy.name, peer=peer)
        ikeSA.taskManager.queueExchange(registry.establishTasks(requestId))
        return ikeSA

    def _localAddress(self, policy, peer):
        local = policy.local
        if local is not None and not isinstance(local, str):
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
        Initiate every active policy (unless passive), kept up from then on
        (L{_timer_reinitiate}); the outcome of each is only logged. Also
        starts the rotation of the cookie secret.
        """
        self.emit(SetTimer(TimerKey.cookieSecret(), COOKIE_SECRET_LIFETIME))
        if not self.passive and self.initiatesActive:
            for policy in self.policies.active():
                # Again after ikectl passive/active: not those still up.
                if not self._heldUp(policy.name):
                    self._initiateActive(policy.name)
        return self._drain()

    def _initiateActive(self, policyName):
        try:
            self._initiate(policyName, None, keepUp=True)
        except NegotiationFailed as e:
            self._log.warn("{policy}: {error}", policy=policyName, error=e)
            self._scheduleReinitiation(policyName)

    def createChildSA(self, ikeSA):
        """
        Negotiate an additional Child SA for C{ikeSA}'s policy with
        CREATE_CHILD_SA (with PFS when the policy's childsa proposals have a
        group); it succeeds with the L{ChildSA} once installed.
        """
        requestId = self._newRequestId()
        if not ikeSA.isEstablished:
            self.emit(RequestDone(requestId, error=LocalProtocolError("%s is not established" % (ikeSA,))))
        else:
            ikeSA.taskManager.queueExchange([ChildCreateTask(True, requestId)])
        return requestId, self._drain()

    def deleteChildSA(self, ikeSA, child):
        """
        Delete C{child} with an INFORMATIONAL exchange.
        """
        requestId = self._newRequestId()
        if child not in ikeSA.children:
            self.emit(RequestDone(requestId, error=LocalProtocolError("no such Child SA")))
        else:
            ikeSA.taskManager.queueExchange([ChildDeleteTask(True, child, requestId)])
        return requestId, self._drain()

    def deleteIKESA(self, ikeSA, reason="deleted by request"):
        """
        Delete C{ikeSA} and its Child SAs with an INFORMATIONAL exchange.
        """
        requestId = self._newRequestId()
        ikeSA.keepUp = False
        self._deleteIKESA(ikeSA, reason, requestId)
        return requestId, self._drain()

    def _deleteIKESA(self, ikeSA, reason, requestId=None):
        if ikeSA.isEstablished:
            ikeSA.taskManager.failAll(SADeleted(reason))
            ikeSA.taskManager.queueExchange([IKEDeleteTask(True, requestId, reason)])
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
        ikeSA.taskManager.queueExchange([LivenessTask(True, requestId)])
        return requestId, self._drain()

    def queueTask(self, ikeSA, task):
        """
        Queue the initiator C{task} as an exchange of its own on C{ikeSA}.
        """
        ikeSA.taskManager.queueExchange([task])
        return self._drain()

    def restartExchange(self, ikeSA):
        """
        Send the pending round of C{ikeSA} again from scratch, with the same
        Message ID (what a COOKIE or INVALID_KE_PAYLOAD answer does).
        """
        ikeSA.taskManager.retry()
        return self._drain()

    def shutdown(self):
        """
        Delete every IKE SA: established ones with a Delete sent once
        (no retransmission: the daemon is going away), the rest silently.
        """
        for ikeSA in list(self.ikeSAs.values()):
            ikeSA.keepUp = False
            if ikeSA.isEstablished and ikeSA.taskManager.pending is None:
                try:
                    ikeSA.taskManager.sendOnce([IKEDeleteTask(True, None, "shutdown")])
                except Exception:
                    self._log.failure("sending a Delete for {ikeSA}", ikeSA=ikeSA)
            self.destroy(ikeSA, "daemon shutting down")
        for policyName in list(self._reinitiateAttempts):
            self.emit(CancelTimer(TimerKey.reinitiate(policyName)))
        self._reinitiateAttempts.clear()
        return self._drain()

    def _childBySpi(self, spi, match):
        """
        The IKE SA and Child SA with the SPI C{spi} for which C{match(child)}
        is true, from the index of installed Child SAs; L{None} when it has
        none (the caller then walks all: a Child SA it never saw).
        """
        for child in self._childSpis.get(spi, ()):
            entry = self._children.get(child.reqid)
            if entry is not None and child in entry[0].children and match(child):
                return entry[0], child
        return None

    def findChild(self, spiIn):
        found = self._childBySpi(spiIn, lambda child: child.spiIn == spiIn)
        if found is not None:
            return found
        for ikeSA in self.ikeSAs.values():
            for child in ikeSA.children:
                if child.spiIn == spiIn:
                    return ikeSA, child
        return None, None

    # Input: datagrams

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

    def cookieAnswer(self, data, local, remote):
        """
        The COOKIE answer to C{data} from the fast path (counted, logged at
        debug level within the rate), for the shell to send at once
        without the actions of L{datagramReceived}; L{None} when C{data}
        must go to L{datagramReceived}.
        """
        if self.passive:
            return None
        try:
            cookie = cookies.fastCookie(self, data, local, remote)
        except Exception:
            self._log.failure("internal error in the COOKIE fast path for {remote}", remote=remote)
            return None
        if cookie is not None:
            self._cookieLog.drop(remote, "IKE_SA_INIT answered with a COOKIE (fast path)")
            self.counters.count("ikedtx_cookie_sent")
        return cookie

    def cookieAnswers(self, items):
        """
        L{cookieAnswer} for a batch of datagrams read together, each
        C{(data, remote, local)}: the flood's new IKE_SA_INIT requests. One
        look at the half-open count, the secret and the policy of the local
        address serves the whole batch (answering a COOKIE creates no IKE
        SA, so the count only grows within it: past the threshold at its
        start, past it throughout).

        @return: C{(answers, rest)}: C{answers} a list of C{(cookie
            response, remote, local)} to send at once, C{rest} the items
            that must go to L{datagramReceived}, in their order (all of
            them when cookies are not demanded now).
        """
        if self.passive or len(self._halfOpen) < self.settings.cookieThreshold:
            return [], items
        try:
            answers, rest = cookies.fastCookies(self, items, self._halfOpen, self._cookieSecret, _COOKIE_VERSION)
        except Exception:
            self._log.failure("internal error in the COOKIE fast path for a batch of {n}", n=len(items))
            return [], items
        if answers:
            self._cookieLog.dropAll([remote for _, remote, _ in answers],
                                    "IKE_SA_INIT answered with a COOKIE (fast path)")
            self.counters.count("ikedtx_cookie_sent", len(answers))
        return answers, rest

    def _datagramReceived(self, data, local, remote):
        cookie = cookies.fastCookie(self, data, local, remote)
        if cookie is not None:
            self._cookieLog.drop(remote, "IKE_SA_INIT answered with a COOKIE (fast path)")
            self.counters.count("ikedtx_cookie_sent")
            self.emit(SendDatagram(cookie, local, remote))
            return
        try:
            message = Message.decode(data)
        except InvalidMajorVersion as e:
            self._log.info("{remote}: {error}", remote=remote, error=e)
            if e.header is not None and not e.header.isResponse and e.header.exchangeType == ExchangeType.IKE_SA_INIT:
                self.answerInClear(e.header, local, remote, NotifyType.INVALID_MAJOR_VERSION, b"")
            return
        except MalformedMessage as e:
            self._malformed.drop(remote, "malformed message: %s" % (e,))
            answer = screening.clearAnswerTo(e)
            if answer is not None:
                self.answerInClear(e.header, local, remote, *answer)
            return
        message.rawData = data
        if message.exchangeType == ExchangeType.IKE_SA_INIT and not message.isResponse:
            self._initRequestReceived(message, data, local, remote)
            return
        ours = message.spiR if message.isInitiator else message.spiI
        ikeSA = self.ikeSAs.get(ours)
        if ikeSA is None:
            # (Under --ike-workers, a message the kernel gave the wrong
            # worker counts here too.)
            self.counters.count("ikes_msg_rcvd_dropped")
            self._log.debug("{remote}: message for unknown IKE SA {spi}", remote=remote, spi=ours.hex())
            return
        if message.isInitiator == ikeSA.initiator:
            self._quietDrops.drop(remote, "%s: message with the wrong Initiator flag" % (ikeSA,))
            return
        why = screening.protectedRefusal(self, ikeSA, message)
        if why is not None:
            self._quietDrops.drop(remote, why)
            return
        if message.isResponse:
            self._responseReceived(ikeSA, message, local, remote)
        else:
            self._requestReceived(ikeSA, message, local, remote)

    def _initRequestReceived(self, message, data, local, remote):
        """
        An IKE_SA_INIT request (RFC 7296 1.2): answered from the cache if
        retransmitted, refused in the clear, or a new responder IKE SA.
        """
        why = screening.initRequestRefusal(message)
        if why is not None:
            self._quietDrops.drop(remote, why)
            return
        key = (message.spiI, remote)
        existing = self._halfOpen.get(key)
        hashValue = requestHash(data)
        if existing is not None:
            last = existing.taskManager.lastResponse
            if last is not None and hmac.compare_digest(last.requestHash, hashValue):
                if not self.responseCache.mayResend(last):
                    self._quietDrops.drop(remote, "IKE_SA_INIT retransmitted too often")
                    return
                self._log.debug("{remote}: retransmitted IKE_SA_INIT; resending our response", remote=remote)
                self.counters.count("ikes_retransmit_response")
                self.sendAll(existing, last.datagrams, local, remote)
                return
            if existing.state != IKEState.SA_INIT:
                return
            self.destroy(existing, "initiator restarted IKE_SA_INIT")
        why = self._limits.refusal(len(self._halfOpen)) or self.responseCache.refusal()
        if why is not None:
            self._quietDrops.drop(remote, why)
            return
        try:
            screened = screenRequest(self, message, local, remote)
        except Refusal as e:
            if e.notifyType is None:
                self._log.info("{remote}: {why}; dropped", remote=remote, why=e)
            else:
                self._log.info("{remote}: IKE_SA_INIT refused with {notify}: {why}", remote=remote,
                               notify=nameOf(NotifyType, e.notifyType), why=e)
                self.answerInClear(message, local, remote, e.notifyType, e.data)
            return
        evicted = self._limits.evictionFor(remote[0])
        if evicted is not None:
            self.destroy(self._halfOpen[evicted], "more half-open IKE SAs from %s than --half-open-per-peer" % (
                remote[0],))
        ikeSA = IKESA(False, message.spiI, self.newIKESPI(), screened.policy, local, remote, self.now())
        self.counters.count("ikes_sa_created")
        ikeSA.taskManager = TaskManager(self, ikeSA)
        self._registerResponderSA(ikeSA, key)
        ikeSA.taskManager.handleRequest(message, hashValue, message.payloads, local, remote,
                                        tasks=registry.initResponderTasks(screened))

    def _open(self, ikeSA, message):
        """
        The inner payloads of a protected message, or L{None} when it is a
        fragment of an incomplete message. Raises L{IntegrityError} or
        L{MalformedMessage}.
        """
        if message.isFragment:
            self.counters.count("ikes_frag_rcvd")
            try:
                whole = self._fragments.add(ikeSA, message, self.now())
            except FragmentDropped:
                self.counters.count("ikes_frag_rcvd_drop")
                raise
            except (IntegrityError, MalformedMessage):
                self.counters.count("ikes_frag_reass_drop")
                raise
            if whole is None:
                return None
            self.counters.count("ikes_frag_reass_ok")
            return whole.encrypted
        if ikeSA.cipherIn is None:
            raise MalformedMessage("protected message before keys exist")
        return message.decrypt(ikeSA.cipherIn)

    def _requestReceived(self, ikeSA, message, local, remote):
        manager = ikeSA.taskManager
        if manager.requestReceived(message, local, remote) != "new":
            return
        try:
            payloads = self._open(ikeSA, message)
        except FragmentDropped as e:
            # RFC 7383 2.6.2: duplicates and the like are dropped, not errors.
            self._log.debug("{ikeSA}: fragment of request {mid} dropped: {error}", ikeSA=ikeSA, mid=message.messageId,
                            error=e)
            return
        except IntegrityError as e:
            self._quietDrops.drop(remote, "%s: request %d failed its integrity check (%s)" % (
                ikeSA, message.messageId, e))
            return
        except MalformedMessage as e:
            self._log.info("{ikeSA}: malformed request {mid}: {error}", ikeSA=ikeSA, mid=message.messageId, error=e)
            if e.notify is not None and ikeSA.cipherOut is not None:
                manager.answerError(message, manager.hashOf(message), Notify(e.notify, data=e.notifyData), local, remote)
                if ikeSA.state == IKEState.SA_INIT and not ikeSA.initiator:
                    self.destroy(ikeSA, "malformed IKE_AUTH")
            return
        if message.isFragment and message.sealedPayload.fragmentNumber == 1:
            manager.firstFragmentOpened(message)
        if payloads is None:
            return
        hashValue = manager.hashOf(message)
        ikeSA.lastActivity = self.now()
        self._followPeer(ikeSA, local, remote)
        critical = [p for p in payloads if p.critical and isinstance(p, UnknownPayload)]
        if critical:
            error = RemoteProtocolError("unsupported critical payload %d" % (critical[0].payloadType,),
                                        NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, bytes([critical[0].payloadType]))
            self._log.info("{ikeSA}: {exchange} request refused: {error}", ikeSA=ikeSA,
                           exchange=nameOf(ExchangeType, message.exchangeType), error=error)
            manager.answerError(message, hashValue, Notify(error.notify, data=error.notifyData), local, remote)
            return
        manager.handleRequest(message, hashValue, payloads, local, remote)

    def _followPeer(self, ikeSA, local, remote):
        """
        RFC 7296 2.23: behind a NAT the peer's address and port are those of
        the last authenticated request; a peer that moved to the NAT-T port
        (after detecting a NAT, or as MOBIKE peers do) is followed there.
        """
        if local[1] == self.settings.nattPort and ikeSA.local[1] != local[1]:
            ikeSA.local = local
            if remote[0] != ikeSA.remote[0]:
                ikeSA.remote = remote
                self.saIndex.moved(ikeSA)
            else:
                ikeSA.remote = remote
            ikeSA.nattEnabled = True
        if ikeSA.natRemote and remote != ikeSA.remote:
            self._log.info("{ikeSA}: peer moved to {remote}", ikeSA=ikeSA, remote=remote)
            # Its Child SAs' ESP follows too (an UpdateChildSA).
            moveIkeSA(self, ikeSA, ikeSA.local, remote)

    def _responseReceived(self, ikeSA, message, local, remote):
        manager = ikeSA.taskManager
        pending = manager.pending
        if pending is None or message.messageId != pending.messageId:
            self._log.debug("{ikeSA}: unexpected response {mid} dropped", ikeSA=ikeSA, mid=message.messageId)
            return
        if message.exchangeType != pending.exchangeType:
            self._log.info("{ikeSA}: response of the wrong exchange type dropped", ikeSA=ikeSA)
            return
        if message.exchangeType == ExchangeType.IKE_SA_INIT:
            payloads = message.payloads
        else:
            try:
                payloads = self._open(ikeSA, message)
            except FragmentDropped as e:
                self._log.debug("{ikeSA}: fragment of response {mid} dropped: {error}", ikeSA=ikeSA,
                                mid=message.messageId, error=e)
                return
            except IntegrityError as e:
                self._quietDrops.drop(remote, "%s: response %d failed its integrity check (%s)" % (
                    ikeSA, message.messageId, e))
                return
            except MalformedMessage as e:
                self._log.info("{ikeSA}: malformed response {mid}: {error}", ikeSA=ikeSA, mid=message.messageId, error=e)
                manager.malformedResponse(e)
                return
            if payloads is None:
                return
        ikeSA.lastActivity = self.now()
        manager.responseReceived(message, payloads, local, remote)

    # Input: the datapath

    def spiAllocated(self, token, spi):
        """
        The SPI of the L{AllocateSpi} C{token} is C{spi}.
        """
        request = self._spiRequests.pop(token, None)
        if request is None:
            task = self._lateSpis.pop(token, None)
            if task is None:
                self._log.info("SPI allocation {token} answered twice or never asked", token=token)
            else:
                # Its IKE SA went meanwhile.
                task.releaseLateSPI(self, token, spi)
            return self._drain()
        ikeSA, task = request
        if ikeSA.state == IKEState.CLOSED:
            task.releaseLateSPI(self, token, spi)
            return self._drain()
        try:
            task.spiAllocated(token, spi)
            ikeSA.taskManager.resume()
        except Exception:
            self._log.failure("internal error going on after an SPI allocation for {ikeSA}", ikeSA=ikeSA)
        return self._drain()

    def askCertificateStatus(self, task, ikeSA, certificate, issuer):
        """
        Ask the shell for the OCSP status of the peer's C{certificate} on
        behalf of C{task}, with iked.conf's C{set ocsp} settings.

        @return: the token L{certificateStatus} will name.
        """
        self._spiTokens += 1
        token = self._spiTokens
        self._statusRequests[token] = (ikeSA, task)
        settings = self.config.settings
        self.emit(CheckCertificateStatus(token, certificate, issuer, settings.ocspUrl, settings.ocspTolerate,
                                         settings.ocspMaxAge))
        return token

    def certificateStatus(self, token, good, reason):
        """
        The answer to the L{CheckCertificateStatus} C{token}: whether the
        peer's certificate is good, and why not (L{ikedtx.core.ocsp}).
        """
        request = self._statusRequests.pop(token, None)
        if request is None:
            self._log.info("certificate status {token} answered twice or never asked", token=token)
            return self._drain()
        ikeSA, task = request
        if ikeSA.state != IKEState.CLOSED:
            try:
                task.certificateStatus(self, ikeSA, good, reason)
                ikeSA.taskManager.resume()
            except Exception:
                self._log.failure("internal error after the certificate status for {ikeSA}", ikeSA=ikeSA)
        return self._drain()

    def runEAP(self, task, ikeSA, session, packet):
        """
        Ask the shell to give C{packet} to the EAP C{session} (or start it)
        on behalf of C{task}.

        @return: the token L{eapAnswered} will name.
        """
        self._spiTokens += 1
        token = self._spiTokens
        self._eapRequests[token] = (ikeSA, task)
        self.emit(RunEAP(token, session, packet))
        return token

    def eapAnswered(self, token, step):
        """
        The EAP session of the L{RunEAP} C{token} answered C{step} (an
        L{ikedtx.auth.eapbackend.EAPStep}, or an exception when it failed).
        """
        request = self._eapRequests.pop(token, None)
        if request is None:
            self._log.info("EAP answer {token} came twice, late or never asked", token=token)
            return self._drain()
        ikeSA, task = request
        if ikeSA.state != IKEState.CLOSED:
            try:
                eaptask.answered(task, step)
                ikeSA.taskManager.resume()
            except Exception:
                self._log.failure("internal error going on after an EAP answer for {ikeSA}", ikeSA=ikeSA)
        return self._drain()

    def spiAllocationFailed(self, token, error):
        """
        The datapath could not allocate the SPI of the L{AllocateSpi}
        C{token}: the task that asked fails (as initiator) or refuses its
        part of the exchange (as responder).
        """
        request = self._spiRequests.pop(token, None)
        if request is None:
            self._lateSpis.pop(token, None)
            return self._drain()
        ikeSA, task = request
        self._log.warn("{ikeSA}: no SPI from the datapath: {error}", ikeSA=ikeSA, error=error)
        if ikeSA.state != IKEState.CLOSED:
            try:
                task.spiAllocationFailed(token, error)
                ikeSA.taskManager.resume()
            except Exception:
                self._log.failure("internal error after a failed SPI allocation for {ikeSA}", ikeSA=ikeSA)
        return self._drain()

    def usageReported(self, token, usages):
        """
        The datapath's counters for the SAs of the L{QuerySAUsage} C{token}
        (L{None} for each SA it could not query).
        """
        try:
            self.dpd.usageReported(token, usages)
        except Exception:
            self._log.failure("internal error after an SA usage query")
        return self._drain()

    def installChild(self, ikeSA, child, task, holdOutbound=False):
        """
        Hand C{child}'s SAs and flows to the datapath; C{task} (or L{None})
        hears when the install is confirmed (L{childInstalled}). With
        C{holdOutbound} (the responder of a Child SA rekey) the outbound SA
        waits in C{child.heldOutbound} until the old Child SA goes
        (L{ikedtx.core.tasks.childrekey.releaseOutbound}).
        """
        child.handle(ChildEvent.INSTALL)
        ikeSA.children.append(child)
        lifetimes.plan(self, ikeSA, child)
        # The SAs and flows share their (immutable) selectors.
        selectors = child._selectors()
        sas = tuple(child.kernelSAs(ikeSA, selectors))
        if holdOutbound:
            child.heldOutbound = [sa for sa in sas if not sa.inbound]
            sas = tuple(sa for sa in sas if sa.inbound)
        records = (sas, tuple(child.kernelFlows(ikeSA, selectors)))
        child.kernelRecords = records
        self._children[child.reqid] = (ikeSA, child, task)
        spis = self._childSpis
        spis.setdefault(child.spiIn, {})[child] = None
        spis.setdefault(child.spiOut, {})[child] = None
        self.emit(InstallChildSA(child.reqid, records[0], records[1]))
        # One info line per Child SA, when it is up (logging is about a tenth
        # of a responder's CPU per SA: bench/results-2026-12-03-neutral.md).
        self._log.debug("{ikeSA}: installing Child SA {child}", ikeSA=ikeSA, child=child)

    def childInstalled(self, reqid):
        """
        The datapath installed the Child SA C{reqid} of an L{InstallChildSA}.
        """
        entry = self._children.get(reqid)
        if entry is None:
            return self._drain()
        ikeSA, child, task = entry
        self._children[reqid] = (ikeSA, child, None)
        if child.state != ChildState.INSTALLING:
            # Deleted while the datapath was at work.
            return self._drain()
        child.handle(ChildEvent.INSTALLED)
        lifetimes.arm(self, ikeSA, child)
        self._log.info("{ikeSA}: Child SA {child} {local} === {remote} up", ikeSA=ikeSA, child=child,
                       local=", ".join(map(str, child.localTS)), remote=", ".join(map(str, child.remoteTS)))
        if task is not None:
            task.childUp(self, ikeSA, child)
        reauth.childUp(self, ikeSA)
        return self._drain()

    def installFailed(self, reqid, error):
        """
        The datapath could not install the Child SA C{reqid}: delete it from
        the peer too, and fail the command waiting for it.
        """
        entry = self._children.get(reqid)
        if entry is None:
            return self._drain()
        ikeSA, child, task = entry
        self._children[reqid] = (ikeSA, child, None)
        self._log.warn("{ikeSA}: installing Child SA {child} failed: {error}", ikeSA=ikeSA, child=child, error=error)
        if task is not None:
            task.reportFailure(self, NegotiationFailed("installing the Child SA failed: %s" % (error,)))
        if child in ikeSA.children and ikeSA.isEstablished and child.can(ChildEvent.DELETE):
            child.handle(ChildEvent.DELETE)
            ikeSA.taskManager.queueExchange([ChildDeleteTask(True, child)])
        return self._drain()

    def removeChild(self, ikeSA, child):
        """
        Forget C{child}: out of the datapath (if handed to it), keys wiped.
        """
        if child in ikeSA.children:
            ikeSA.children.remove(child)
        for spi in {child.spiIn, child.spiOut}:
            held = self._childSpis.get(spi)
            if held is not None and held.pop(child, 0) is None and not held:
                del self._childSpis[spi]
        if child.state == ChildState.DELETED:
            return
        childrekey.releaseOutbound(self, ikeSA, child)
        if child.rekeyedBy is not None or child.peerRekey is not None:
            self.emit(CancelTimer(TimerKey.childRekeyed(child.reqid, child.spiIn)))
        if child.kernelRecords is not None:
            self.emit(RemoveChildSA(child.reqid, child.kernelRecords[0], child.kernelRecords[1],
                                    (ikeSA.spiI, ikeSA.spiR)))
        child.handle(ChildEvent.REMOVE)
        # A rekeyed Child SA shares its reqid with its successor (so that
        # the datapath's flows stay): only its own entry and timers go.
        entry = self._children.get(child.reqid)
        if entry is not None and entry[1] is child:
            del self._children[child.reqid]
            if entry[2] is not None:
                # Gone before the datapath confirmed it.
                entry[2].reportFailure(self, SADeleted("Child SA deleted before it was installed"))
        others = [other for other in ikeSA.children if other.reqid == child.reqid]
        if others:
            self._children.setdefault(child.reqid, (ikeSA, others[-1], None))
            lifetimes.rearm(self, ikeSA, others[-1])
        else:
            for key in (TimerKey.childSoft(ikeSA.localSPI, child.reqid), TimerKey.childHard(ikeSA.localSPI, child.reqid)):
                self.emit(CancelTimer(key))
        child.wipe()
        # Its successor keeps a reference to it (rekeyOf): without cutting
        # its own, every Child SA a rekey chain ever had stays in memory.
        child.rekeyOf = None

    def acquire(self, reqid, source, destination):
        """
        The datapath saw a packet for a flow with no SA (L{IDatapathEvents}):
        initiate the policy that owns that flow, unless its IKE SA is up or
        on its way.
        """
        try:
            policy = self._policyForFlow(reqid, source, destination)
            if policy is None:
                self._log.info("acquire for {source} -> {destination}: no policy", source=source, destination=destination)
            elif self._ikeSAOf(policy.name) is None:
                self._log.info("{policy}: acquire for {source} -> {destination}", policy=policy.name,
                               source=source.startAddress, destination=destination.startAddress)
                self._initiate(policy.name, None)
        except NegotiationFailed as e:
            self._log.warn("acquire: {error}", error=e)
        return self._drain()

    def _policyForFlow(self, reqid, source, destination):
        entry = self._children.get(reqid)
        if entry is not None:
            return entry[0].policy
        for policy in self.policies.policies:
            if policy.peer is None:
                continue
            ours = self.policies.selectors(policy, local=True)
            theirs = self.policies.selectors(policy, local=False)
            if _covers(ours, source.startAddress) and _covers(theirs, destination.startAddress):
                return policy
        return None

    def _ikeSAOf(self, policyName):
        for ikeSA in self.saIndex.byPolicy.get(policyName):
            if ikeSA.policy.name == policyName and ikeSA.state not in (IKEState.CLOSING, IKEState.CLOSED):
                return ikeSA
        return None

    def expired(self, protocol, spi, destination, hard):
        """
        The datapath reports a Child SA's SA at its soft or hard lifetime.
        """
        found = self._childBySpi(spi, lambda child: child.protocol == protocol)
        candidates = [found] if found is not None else (
            (ikeSA, child) for ikeSA in list(self.ikeSAs.values()) for child in ikeSA.children)
        for ikeSA, child in candidates:
            if child.protocol == protocol and spi in (child.spiIn, child.spiOut):
                try:
                    if hard:
                        self._childHardExpired(ikeSA, child)
                    else:
                        childrekey.softExpired(self, ikeSA, child)
                except Exception:
                    self._log.failure("internal error after the expire of {spi:08x}", spi=spi)
                return self._drain()
        self._log.debug("expire of unknown SA {spi:08x}", spi=spi)
        return self._drain()

    def addressChanged(self, address, added):
        """
        A local address came or went: MOBIKE (RFC 4555 3.8) moves the IKE
        SAs we initiated off a lost address (L{mobikeupdate.addressesChanged}).
        """
        self._log.info("local address {address} {what}", address=address, what="added" if added else "removed")
        try:
            addressesChanged(self, None if added else address)
        except Exception:
            self._log.failure("internal error after an address change")
        return self._drain()

    # Timers

    def timerExpired(self, key):
        """
        The timer C{key} (a L{TimerKey}) of a L{SetTimer} action has expired.
        """
        self._dispatchTimer(key)
        return self._drain()

    def _dispatchTimer(self, key):
        try:
            kind, subject = key
            handler = getattr(self, "_timer_" + kind)
            handler(subject)
        except Exception:
            self._log.failure("internal error in timer {key}", key=key)

    def _timer_retransmit(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is not None:
            ikeSA.taskManager.retransmit()

    def _timer_halfopen(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is not None and not ikeSA.isEstablished:
            self.destroy(ikeSA, "half-open IKE SA timed out")

    def _timer_keepalive(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is not None and ikeSA.natLocal and ikeSA.nattEnabled:
            self.emit(SendNatKeepalive(ikeSA.local, ikeSA.remote))
            self.emit(SetTimer(TimerKey.keepalive(spi), self.settings.natKeepalive))

    def _timer_cookiesecret(self, subject):
        self._previousCookieSecret = self._cookieSecret
        self._cookieSecret = self.randomBytes(32)
        self.emit(SetTimer(TimerKey.cookieSecret(), COOKIE_SECRET_LIFETIME))

    def _childOf(self, subject):
        spi, reqid = subject
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is None:
            return None, None
        # The newest of the Child SAs of that reqid (a rekey's old one
        # shares it until it is deleted).
        return ikeSA, next((c for c in reversed(ikeSA.children) if c.reqid == reqid), None)

    def _timer_childsoft(self, subject):
        ikeSA, child = self._childOf(subject)
        childrekey.softExpired(self, ikeSA, child)

    def _timer_childhard(self, subject):
        ikeSA, child = self._childOf(subject)
        self._childHardExpired(ikeSA, child)

    def _timer_childrekeyed(self, subject):
        reqid, spiIn = subject
        entry = self._children.get(reqid)
        if entry is not None:
            ikeSA = entry[0]
            old = next((c for c in ikeSA.children if c.reqid == reqid and c.spiIn == spiIn), None)
            childrekey.peerNeverDeleted(self, ikeSA, old)

    def _childHardExpired(self, ikeSA, child):
        if child is None:
            return
        self._log.info("{ikeSA}: Child SA {child} reached its hard lifetime; deleting it", ikeSA=ikeSA, child=child)
        if ikeSA.isEstablished and child.can(ChildEvent.DELETE):
            child.handle(ChildEvent.DELETE)
            ikeSA.taskManager.queueExchange([ChildDeleteTask(True, child)])
        else:
            self.removeChild(ikeSA, child)

    def _timer_ikerekey(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is not None and ikeSA.policy.reauth:
            reauth.reauthTime(self, ikeSA)
        else:
            ikerekey.rekeyTime(self, ikeSA)

    def _timer_ikelifetime(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is not None:
            self._deleteIKESA(ikeSA, "IKE SA lifetime expired")

    def _timer_dpd(self, spi):
        self.dpd.timerExpired(spi)

    def _timer_responder(self, spi):
        ikeSA = self.ikeSAs.get(spi)
        if ikeSA is not None:
            ikeSA.taskManager.abandonResponders()

    def _timer_reinitiate(self, policyName):
        policy = self.policies.byName(policyName)
        if policy is None or not policy.active or self.passive or self._heldUp(policyName):
            self._reinitiateAttempts.pop(policyName, None)
            return
        self._log.info("{policy}: initiating again", policy=policyName)
        self._initiateActive(policyName)

    def _scheduleReinitiation(self, policyName):
        """
        Initiate the active policy C{policyName} again after the backoff of
        its failed attempts so far.
        """
        attempt = self._reinitiateAttempts.get(policyName, 0)
        self._reinitiateAttempts[policyName] = attempt + 1
        (value,) = struct.unpack("!I", self.randomBytes(4))
        delay = self.settings.reinitiate.delay(attempt, value / 2.0 ** 32)
        self._log.info("{policy}: initiating again in {delay:.1f}s", policy=policyName, delay=delay)
        self.emit(SetTimer(TimerKey.reinitiate(policyName), delay))

    # Cookies (RFC 7296 2.6)

    def halfOpenCount(self):
        return len(self._halfOpen)

    def isHalfOpen(self, spiI, remote):
        return (spiI, remote) in self._halfOpen

    def cookieFor(self, nonceI, remoteHost, spiI, secret=None):
        secret = self._cookieSecret if secret is None else secret
        digest = hashlib.sha256(nonceI + packedAddress(remoteHost) + spiI + secret).digest()
        return _COOKIE_VERSION + digest

    def cookieValid(self, cookie, nonceI, remoteHost, spiI):
        for secret in (self._cookieSecret, self._previousCookieSecret):
            if secret is not None and hmac.compare_digest(cookie, self.cookieFor(nonceI, remoteHost, spiI, secret)):
                return True
        return False

    # SA bookkeeping

    def _registerResponderSA(self, ikeSA, halfOpenKey):
        self.ikeSAs[ikeSA.localSPI] = ikeSA
        self.saIndex.registered(ikeSA)
        self._halfOpen[halfOpenKey] = ikeSA
        self._limits.opened(halfOpenKey)
        ikeSA.halfOpenKey = halfOpenKey
        self.emit(SetTimer(TimerKey.halfOpen(ikeSA.localSPI), self.settings.halfOpenTimeout))

    def established(self, ikeSA):
        """
        Mark C{ikeSA} VALID and tell the shell.
        """
        ikeSA.handle(IKEEvent.AUTHENTICATED)
        ikeSA.established = self.now()
        # The IKE_SA_INIT messages were kept for the AUTH payloads only.
        ikeSA.initRequest = ikeSA.initResponse = None
        if ikeSA.halfOpenKey is not None:
            if self._halfOpen.pop(ikeSA.halfOpenKey, None) is not None:
                self._limits.closed(ikeSA.halfOpenKey)
            ikeSA.halfOpenKey = None
        self.emit(CancelTimer(TimerKey.halfOpen(ikeSA.localSPI)))
        if ikeSA.natLocal and ikeSA.nattEnabled and self.settings.natKeepalive:
            self.emit(SetTimer(TimerKey.keepalive(ikeSA.localSPI), self.settings.natKeepalive))
        if ikeSA.keepUp:
            self._reinitiateAttempts.pop(ikeSA.policy.name, None)
        self.dpd.start(ikeSA)
        self.emit(IKESAUp(ikeSA.spiI, ikeSA.spiR, ikeSA.policy.name, ikeSA.local, ikeSA.remote, str(ikeSA.peerId)))
        lifetimes.armIKE(self, ikeSA)
        self.peerIdentities.established(ikeSA)
        self.saIndex.established(ikeSA)
        singleikesa.enforce(self, ikeSA)
        self._log.info("{ikeSA}: established, peer {peer} ({auth})", ikeSA=ikeSA, peer=ikeSA.peerId,
                       auth=ikeSA.policy.name)
        initialcontact.released(self, ikeSA)

    def destroy(self, ikeSA, reason, error=None):
        """
        Forget C{ikeSA}: remove its Child SAs from the kernel, fail the
        commands waiting on it, cancel its timers, wipe its keys.
        """
        if ikeSA.state == IKEState.CLOSED:
            return
        wasUp = ikeSA.established is not None
        ikeSA.handle(IKEEvent.CLOSE)
        ikeSA.deleteReason = reason
        self.ikeSAs.pop(ikeSA.localSPI, None)
        self.peerIdentities.destroyed(ikeSA)
        self.saIndex.destroyed(ikeSA)
        if ikeSA.halfOpenKey is not None and self._halfOpen.get(ikeSA.halfOpenKey) is ikeSA:
            del self._halfOpen[ikeSA.halfOpenKey]
            self._limits.closed(ikeSA.halfOpenKey)
        for kind in IKE_SA_KINDS:
            self.emit(CancelTimer(TimerKey(kind, ikeSA.localSPI)))
        for child in list(ikeSA.children):
            self.removeChild(ikeSA, child)
        for token in [t for t, (sa, _) in self._spiRequests.items() if sa is ikeSA]:
            # Given back when it comes (spiAllocated).
            self._lateSpis[token] = self._spiRequests.pop(token)[1]
        for token in [t for t, (sa, _) in self._eapRequests.items() if sa is ikeSA]:
            del self._eapRequests[token]
        eaptask.forget(self, ikeSA)
        ikeSA.taskManager.failAll(error or SADeleted(reason))
        configtask.release(self, ikeSA)
        self._fragments.forget(ikeSA)
        self.responseCache.forget(ikeSA.taskManager.lastResponse)
        ikeSA.wipe()
        if isinstance(error, AuthenticationFailed) or ikeSA.authFailed:
            cause = "auth"
        elif isinstance(error, PeerNotResponding):
            cause = "timeout"
        elif error is not None and not isinstance(error, SADeleted):
            cause = "failed"
        else:
            cause = "deleted"
        if wasUp or ikeSA.initiator or ikeSA.authFailed:
            self.emit(IKESADown(ikeSA.spiI, ikeSA.spiR, ikeSA.policy.name if ikeSA.policy else "", ikeSA.remote,
                                reason, wasUp, cause))
        self._log.info("{ikeSA}: deleted ({reason})", ikeSA=ikeSA, reason=reason)
        initialcontact.released(self, ikeSA)
        if self._keptUp(ikeSA):
            self._scheduleReinitiation(ikeSA.policy.name)

    def _keptUp(self, ikeSA):
        """
        Whether the policy of the deleted C{ikeSA} is initiated again: an
        active policy (or one started at start-up) not deleted on request,
        with no other IKE SA up or on its way. A peer's IKE SA that never
        authenticated does not count (anyone can start and abandon those).
        """
        if self.passive or ikeSA.keepUp is False or ikeSA.policy is None:
            return False
        if not ikeSA.initiator and ikeSA.established is None:
            return False
        policy = self.policies.byName(ikeSA.policy.name)
        if policy is None or not (ikeSA.keepUp or policy.active):
            return False
        return not self._heldUp(policy.name)

    def _heldUp(self, policyName):
        """
        Whether an IKE SA keeps the policy C{policyName} up: one that is
        established, or our own on its way (a peer's half-open one may
        never authenticate, and its end would not initiate the policy).
        """
        return any(ikeSA.policy.name == policyName and ikeSA.state not in (IKEState.CLOSING, IKEState.CLOSED)
                   and (ikeSA.initiator or ikeSA.isEstablished) for ikeSA in self.saIndex.byPolicy.get(policyName))

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
                ikeSA.keepUp = False
                self._deleteIKESA(ikeSA, "policy removed by reload")
            else:
                ikeSA.policy = policy
        self.dpd.reloaded()
        return self._drain()


def _covers(selectors, address):
    return any(ts.startAddress.version == address.version and ts.startAddress <= address <= ts.endAddress
               for ts in selectors)

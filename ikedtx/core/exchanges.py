# -*- test-case-name: tests.test_core_exchanges -*-
"""
The IKEv2 exchanges (RFC 7296 1.2-1.4): the tasks an initiator runs (each
builds one request and processes its response) and the handlers that answer
a peer's requests.

A task is created for one side; the engine sends its request when the
window is free and calls C{process} with the decrypted response, or
C{failed} when the exchange could not complete. A responder handler returns
the payloads of the response, or raises L{RemoteProtocolError} to answer
with an error Notify.
"""

import hashlib
import hmac
import socket
import struct

from twisted.logger import Logger

from ikedtx.auth.errors import AuthenticationFailed as CredentialRefused
from ikedtx.auth.errors import CredentialError, MalformedCertificateRequest
from ikedtx.auth.ids import IKEIdentity, defaultLocalIdentity
from ikedtx.auth.store import parseCertificateRequest
from ikedtx.core.actions import InstallChildSA, RemoveChildSA, RequestDone, SendDatagram
from ikedtx.core import cryptoglue
from ikedtx.core.errors import (
    AuthenticationFailed, NegotiationFailed, NoProposalChosen, RemoteProtocolError, TrafficSelectorsUnacceptable)
from ikedtx.core.proposals import Offer, Transform, accept, select
from ikedtx.core.sa import ChildSA, ChildState, IKEState
from ikedtx.core.settings import NATT_DISABLED, NATT_ONLY
from ikedtx.core.ts import TrafficSelector, isSubsetOf, narrow
from ikedtx.crypto.errors import InvalidKeyExchange
from ikedtx.wire.payloads import (
    Authentication, Certificate, CertificateRequest, Delete, IdentificationInitiator, IdentificationResponder, KeyExchange, Nonce, Notify, Proposal, SecurityAssociation, TrafficSelector as WireTrafficSelector, TrafficSelectorsInitiator, TrafficSelectorsResponder, Transform as WireTransform, VendorID)
from ikedtx.wire.constants import (
    AuthMethod, CertEncoding, DhId, ExchangeType, HashAlgorithm, IpcompTransform, NotifyType, ProtocolId,
    TransformType, isErrorNotify, nameOf)

_log = Logger(namespace="ikedtx.core.exchanges")
_ZERO_SPI = b"\x00" * 8
_MIN_NONCE, _MAX_NONCE = 16, 256
_OUR_HASHES = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512, HashAlgorithm.IDENTITY)


# Payload access


def _first(payloads, kind):
    for p in payloads:
        if isinstance(p, kind):
            return p
    return None


def _all(payloads, kind):
    return [p for p in payloads if isinstance(p, kind)]


def _notify(payloads, notifyType):
    for p in payloads:
        if isinstance(p, Notify) and p.notifyType == notifyType:
            return p
    return None


def _errorNotify(payloads):
    for p in payloads:
        if isinstance(p, Notify) and isErrorNotify(p.notifyType):
            return p
    return None


def _require(payload, what):
    if payload is None:
        raise RemoteProtocolError("%s payload missing" % (what,), NotifyType.INVALID_SYNTAX)
    return payload


def _requireResponse(payload, what):
    if payload is None:
        raise NegotiationFailed("the response has no %s payload" % (what,))
    return payload


def _checkNonce(nonce):
    if not _MIN_NONCE <= len(nonce.data) <= _MAX_NONCE:
        raise RemoteProtocolError("nonce of %d bytes" % (len(nonce.data),), NotifyType.INVALID_SYNTAX)
    return bytes(nonce.data)


# Proposals between config, wire and core


_offerCache = {}


def offersFromConfig(proposals, spi=b"", withKeyExchange=True):
    """
    The L{Offer}s of a policy's C{ikeSA} or C{childsa} proposals, numbered
    from 1 (kept, as they are asked for on every negotiation).
    """
    key = (id(proposals), spi, withKeyExchange)
    cached = _offerCache.get(key)
    if cached is not None and cached[0] is proposals:
        return cached[1]
    if len(_offerCache) > 4096:
        _offerCache.clear()
    offers = []
    for number, proposal in enumerate(proposals, 1):
        transforms = tuple(Transform(t.type, t.id, t.keyLength) for t in proposal.transforms)
        offer = Offer(proposal.protocol, transforms, number, spi)
        offers.append(offer if withKeyExchange else offer.withoutKeyExchange())
    _offerCache[key] = (proposals, offers)
    return offers


def offersFromWire(sa):
    return [
        Offer(p.protocolId, tuple(Transform(t.transformType, t.transformId, t.keyLength) for t in p.transforms), p.number,
              bytes(p.spi))
        for p in sa.proposals
    ]


def saPayload(offers):
    return SecurityAssociation([
        Proposal(o.number, o.protocol, [WireTransform(t.type, t.id, keyLength=t.keyLength) for t in o.transforms], o.spi)
        for o in offers
    ])


def _supported(transform, protocol=None):
    return cryptoglue.isSupported(transform, protocol)


# Traffic selectors between wire and core


def tsFromWire(payload):
    # Security labels and unknown selector types are not negotiated here.
    return [TrafficSelector(s.startAddress.version, s.startAddress, s.endAddress, s.ipProtocol, s.startPort, s.endPort)
            for s in payload.selectors if isinstance(s, WireTrafficSelector)]


def tsToWire(selectors):
    return [WireTrafficSelector(ts.startAddress, ts.endAddress, ts.ipProtocol, ts.startPort, ts.endPort) for ts in selectors]


# NAT detection (RFC 7296 2.23)


def natHash(spiI, spiR, host, port):
    """
    RFC 7296 2.23: SHA-1(SPIi | SPIr | IP | Port).
    """
    packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    return hashlib.sha1(spiI + spiR + packed + struct.pack("!H", port)).digest()


def natPayloads(core, ikeSA, spiR):
    """
    NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP for our side.
    A policy with C{natt} (or iked -t) sends a source hash that cannot match,
    so that both peers encapsulate ESP in UDP as if a NAT were present.
    """
    if core.settings.nattMode == NATT_DISABLED:
        return []
    if ikeSA.policy.natt or core.settings.nattMode == NATT_ONLY:
        source = core.randomBytes(20)
    else:
        source = natHash(ikeSA.spiI, spiR, ikeSA.local[0], ikeSA.local[1])
    destination = natHash(ikeSA.spiI, spiR, ikeSA.remote[0], ikeSA.remote[1])
    return [Notify.natDetectionSourceIP(source), Notify.natDetectionDestinationIP(destination)]


def detectNat(core, ikeSA, payloads, spiR, local, remote):
    """
    Process the peer's NAT-D payloads: set C{natRemote} when its source hash
    does not match the address we saw, C{natLocal} when its destination hash
    does not match ours.

    @return: whether the peer supports NAT-T (sent NAT-D payloads).
    """
    sources = [bytes(p.data) for p in _all(payloads, Notify) if p.notifyType == NotifyType.NAT_DETECTION_SOURCE_IP]
    destinations = [bytes(p.data) for p in _all(payloads, Notify)
                    if p.notifyType == NotifyType.NAT_DETECTION_DESTINATION_IP]
    if not sources or not destinations or core.settings.nattMode == NATT_DISABLED:
        return False
    theirs = natHash(ikeSA.spiI, spiR, remote[0], remote[1])
    ours = natHash(ikeSA.spiI, spiR, local[0], local[1])
    ikeSA.natRemote = not any(hmac.compare_digest(theirs, s) for s in sources)
    ikeSA.natLocal = not any(hmac.compare_digest(ours, d) for d in destinations)
    if ikeSA.policy.natt or core.settings.nattMode == NATT_ONLY:
        ikeSA.natLocal = True
    return True


def _capabilities(ikeSA, payloads):
    if _notify(payloads, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) is not None:
        ikeSA.peerFragmentation = True
    hashes = _notify(payloads, NotifyType.SIGNATURE_HASH_ALGORITHMS)
    if hashes is not None:
        ikeSA.peerSignatureHashes = tuple(hashes.hashAlgorithms)
    ikeSA.certreqAuthorities = []
    for certreq in _all(payloads, CertificateRequest):
        if certreq.encoding == CertEncoding.X509_CERT_SIGNATURE:
            try:
                ikeSA.certreqAuthorities.extend(parseCertificateRequest(certreq.data))
            except MalformedCertificateRequest as e:
                # Only a hint for choosing our certificate: ignored.
                _log.info("{ikeSA}: {error}", ikeSA=ikeSA, error=e)


def _commonPayloads(core, ikeSA):
    out = []
    if core.config.settings.fragmentation:
        out.append(Notify.fragmentationSupported())
    if ikeSA.policy.auth.method in ("signature", "rfc7427"):
        # RFC 7427 4: announce the hashes only where the policy takes
        # DIGITAL_SIGNATURE; a peer then uses it for its AUTH, which an
        # ecdsa256/rsa policy (as iked's) would refuse.
        out.append(Notify.signatureHashAlgorithms(_OUR_HASHES))
    if core.settings.vendorId:
        out.append(VendorID(core.settings.vendorId))
    return out


def _usesCertificates(policy):
    return policy.auth.method != "psk"


def _certreqPayloads(core, ikeSA):
    if not _usesCertificates(ikeSA.policy) or core.credentials is None:
        return []
    authorities = core.credentials.certificateRequestAuthorities()
    return [CertificateRequest(CertEncoding.X509_CERT_SIGNATURE, b"".join(authorities))]


# IKE_SA_INIT


class Task:
    """
    An initiator task: one exchange we start.

    @ivar requestId: the command waiting for it, or L{None}.
    """

    exchangeType = None
    requestId = None

    def build(self, core, ikeSA):
        raise NotImplementedError()

    def sent(self, ikeSA, datagrams):
        pass

    def process(self, core, ikeSA, message, payloads, local, remote):
        raise NotImplementedError()

    def failed(self, core, ikeSA, error):
        if self.requestId is not None:
            core.emit(RequestDone(self.requestId, error=error))
            self.requestId = None

    def succeeded(self, core, result):
        if self.requestId is not None:
            core.emit(RequestDone(self.requestId, result=result))
            self.requestId = None


class InitTask(Task):
    """
    IKE_SA_INIT as initiator (RFC 7296 1.2), with the COOKIE (2.6) and
    INVALID_KE_PAYLOAD (1.2) retries.
    """

    exchangeType = ExchangeType.IKE_SA_INIT

    def __init__(self):
        self.group = None
        self.restarts = 0

    def build(self, core, ikeSA):
        offers = offersFromConfig(ikeSA.policy.ikeProposals)
        if self.group is None:
            self.group = next(t.id for t in offers[0].transforms if t.type == TransformType.DH)
        if ikeSA.keyExchange is None or ikeSA.keyExchange.method.transformId != self.group:
            if ikeSA.keyExchange is not None:
                ikeSA.keyExchange.wipe()
            ikeSA.keyExchange = cryptoglue.keyExchangeMethod(self.group).generate(core.randomBytes)
        if ikeSA.nonceI is None:
            ikeSA.nonceI = core.randomBytes(core.settings.nonceSize)
        self.offers = offers
        payloads = []
        if ikeSA.cookie is not None:
            payloads.append(Notify.cookie(ikeSA.cookie))
        payloads += [
            saPayload(offers),
            KeyExchange(self.group, ikeSA.keyExchange.publicData),
            Nonce(ikeSA.nonceI),
        ]
        payloads += natPayloads(core, ikeSA, _ZERO_SPI)
        payloads += _commonPayloads(core, ikeSA)
        ikeSA.state = IKEState.SA_INIT
        return ExchangeType.IKE_SA_INIT, payloads

    def sent(self, ikeSA, datagrams):
        ikeSA.initRequest = datagrams[0]

    def _restart(self, core, ikeSA, why):
        self.restarts += 1
        if self.restarts > core.settings.maxInitRetries:
            raise NegotiationFailed("IKE_SA_INIT restarted too often (%s)" % (why,))
        _log.info("{ikeSA}: restarting IKE_SA_INIT ({why})", ikeSA=ikeSA, why=why)
        core.restartRequest(ikeSA, self)

    def process(self, core, ikeSA, message, payloads, local, remote):
        cookie = _notify(payloads, NotifyType.COOKIE)
        if cookie is not None:
            if not 1 <= len(cookie.data) <= 64:
                raise NegotiationFailed("malformed COOKIE from the responder")
            ikeSA.cookie = bytes(cookie.data)
            return self._restart(core, ikeSA, "responder asked for a cookie")
        invalidKe = _notify(payloads, NotifyType.INVALID_KE_PAYLOAD)
        if invalidKe is not None:
            group = invalidKe.group
            offered = {t.id for o in self.offers for t in o.transforms if t.type == TransformType.DH}
            if group not in offered or group == self.group:
                raise NoProposalChosen("responder wants key exchange %s, which we did not offer" % (nameOf(DhId, group),),
                                       NotifyType.INVALID_KE_PAYLOAD)
            self.group = group
            return self._restart(core, ikeSA, "responder wants key exchange %s" % (nameOf(DhId, group),))
        error = _errorNotify(payloads)
        if error is not None:
            kind = NoProposalChosen if error.notifyType == NotifyType.NO_PROPOSAL_CHOSEN else NegotiationFailed
            raise kind("responder refused IKE_SA_INIT: %s" % (nameOf(NotifyType, error.notifyType),), error.notifyType)
        sa = _requireResponse(_first(payloads, SecurityAssociation), "SA")
        ke = _requireResponse(_first(payloads, KeyExchange), "KE")
        nonce = _requireResponse(_first(payloads, Nonce), "Nonce")
        answer = offersFromWire(sa)
        if len(answer) != 1:
            raise NoProposalChosen("responder answered with %d proposals" % (len(answer),))
        chosen = accept(self.offers, answer[0], cryptoglue.isAead)
        if chosen is None or any(not _supported(t, ProtocolId.IKE) for t in chosen.transforms.values()):
            raise NoProposalChosen("responder chose a proposal we did not offer")
        if ke.group != chosen.dhGroup or chosen.dhGroup != self.group:
            raise NegotiationFailed("responder's KE group %d does not match" % (ke.group,))
        if message.spiR == _ZERO_SPI:
            raise NegotiationFailed("responder SPI is zero")
        try:
            ikeSA.nonceR = _checkNonce(nonce)
        except RemoteProtocolError as e:
            raise NegotiationFailed(str(e))
        ikeSA.spiR = message.spiR
        ikeSA.proposal = chosen
        ikeSA.initResponse = bytes(message.rawData)
        try:
            shared = ikeSA.keyExchange.complete(bytes(ke.data))
        except InvalidKeyExchange as e:
            raise NegotiationFailed("responder's KE is invalid: %s" % (e,))
        ikeSA.keyExchange.wipe()
        ikeSA.keyExchange = None
        cryptoglue.deriveIKEKeys(core, ikeSA, shared)
        _capabilities(ikeSA, payloads)
        natSupported = detectNat(core, ikeSA, payloads, ikeSA.spiR, local, remote)
        # RFC 7296 2.23: move to port 4500 once a NAT is detected; RFC 4555
        # 3.3: a MOBIKE initiator moves there in any case, so that a later
        # NAT on its path does not need another change of ports.
        float4500 = ikeSA.natLocal or ikeSA.natRemote or core.config.settings.mobike
        if natSupported and float4500 and not ikeSA.nattEnabled:
            ikeSA.local = (ikeSA.local[0], core.settings.nattPort)
            ikeSA.remote = (ikeSA.remote[0], core.settings.peerNattPort)
            ikeSA.nattEnabled = True
        ikeSA.state = IKEState.AUTH_REQUEST
        ikeSA.tasks.insert(0, AuthTask(ikeSA.requestId))
        ikeSA.requestId = None

    def failed(self, core, ikeSA, error):
        if ikeSA.requestId is not None:
            core.emit(RequestDone(ikeSA.requestId, error=error))
            ikeSA.requestId = None
        core.destroy(ikeSA, str(error), error)


def respondInit(core, message, data, local, remote):
    """
    Answer an IKE_SA_INIT request (RFC 7296 1.2), or drop it.
    """
    if message.spiR != _ZERO_SPI or message.messageId != 0:
        _log.info("{remote}: IKE_SA_INIT request with a responder SPI or Message ID; dropped", remote=remote)
        return
    key = (message.spiI, remote)
    existing = core.halfOpen(key)
    if existing is not None:
        if existing.initRequest == data and existing.window.lastResponse is not None:
            _log.debug("{remote}: retransmitted IKE_SA_INIT; resending our response", remote=remote)
            for datagram in existing.window.lastResponse[1]:
                core.emit(SendDatagram(datagram, local, remote))
            return
        if existing.state != IKEState.SA_INIT:
            return
        core.destroy(existing, "initiator restarted IKE_SA_INIT")
    payloads = message.payloads
    policy = core.policies.lookup(local[0], remote[0])
    if policy is None:
        _log.info("{remote}: no policy for an IKE SA from {remote} to {local}; dropped", remote=remote, local=local)
        return
    nonce = _first(payloads, Nonce)
    sa = _first(payloads, SecurityAssociation)
    ke = _first(payloads, KeyExchange)

    def refuse(notifyType, data=b"", why=""):
        _log.info("{remote}: IKE_SA_INIT refused with {notify}{why}", remote=remote,
                  notify=nameOf(NotifyType, notifyType), why=(": " + why) if why else "")
        core._answerUnauthenticated(message, local, remote, notifyType, data)

    if nonce is None or sa is None or ke is None:
        return refuse(NotifyType.INVALID_SYNTAX, why="SA, KE or Nonce missing")
    if not _MIN_NONCE <= len(nonce.data) <= _MAX_NONCE:
        return refuse(NotifyType.INVALID_SYNTAX, why="nonce of %d bytes" % (len(nonce.data),))
    nonceI = bytes(nonce.data)
    if core.halfOpenCount() >= core.settings.cookieThreshold:
        cookie = _notify(payloads, NotifyType.COOKIE)
        if cookie is None or payloads[0] is not cookie or not core.cookieValid(bytes(cookie.data), nonceI, remote[0], message.spiI):
            _log.info("{remote}: {n} half-open IKE SAs; asking for a cookie", remote=remote, n=core.halfOpenCount())
            core._answerUnauthenticated(message, local, remote, NotifyType.COOKIE,
                                        core.cookieFor(nonceI, remote[0], message.spiI))
            return
    offers = offersFromConfig(policy.ikeProposals)
    chosen = select(offers, offersFromWire(sa), _supported, cryptoglue.isAead)
    if chosen is None:
        return refuse(NotifyType.NO_PROPOSAL_CHOSEN, why="policy %s" % (policy.name,))
    if ke.group != chosen.dhGroup:
        return refuse(NotifyType.INVALID_KE_PAYLOAD, Notify.invalidKePayload(chosen.dhGroup).data,
                      "peer sent %s, we want %s" % (nameOf(DhId, ke.group), nameOf(DhId, chosen.dhGroup)))
    ikeSA = _newResponderSA(core, message, policy, local, remote)
    try:
        ourKe, shared = cryptoglue.keyExchangeMethod(chosen.dhGroup).respond(bytes(ke.data), core.randomBytes)
    except InvalidKeyExchange as e:
        return refuse(NotifyType.INVALID_SYNTAX, why="invalid KE: %s" % (e,))
    ikeSA.proposal = chosen
    ikeSA.nonceI = nonceI
    ikeSA.nonceR = core.randomBytes(core.settings.nonceSize)
    ikeSA.initRequest = data
    cryptoglue.deriveIKEKeys(core, ikeSA, shared)
    _capabilities(ikeSA, payloads)
    detectNat(core, ikeSA, payloads, _ZERO_SPI, local, remote)
    if local[1] == core.settings.nattPort:
        ikeSA.nattEnabled = True
    ikeSA.state = IKEState.SA_INIT
    answer = [saPayload([chosen.asOffer(b"")]), KeyExchange(chosen.dhGroup, ourKe), Nonce(ikeSA.nonceR)]
    answer += natPayloads(core, ikeSA, ikeSA.spiR)
    answer += _certreqPayloads(core, ikeSA)
    answer += _commonPayloads(core, ikeSA)
    core.registerResponderSA(ikeSA, key)
    datagrams = core._sendResponse(ikeSA, ExchangeType.IKE_SA_INIT, 0, answer, local, remote)
    ikeSA.initResponse = datagrams[0]
    ikeSA.window.nextPeerRequestId = 1


def _newResponderSA(core, message, policy, local, remote):
    from ikedtx.core.sa import IKESA

    return IKESA(False, message.spiI, core.newIKESPI(), policy, local, remote, core.now())


# Authentication (RFC 7296 2.15)


def _idBody(idPayload):
    return bytes([idPayload.idType]) + b"\x00\x00\x00" + bytes(idPayload.data)


def _localIdentity(core, ikeSA):
    srcId = ikeSA.policy.srcId
    if srcId is not None:
        return IKEIdentity.fromConfig(srcId.type, srcId.value)
    # iked: without srcid, the local host name as an FQDN, with or without
    # certificates.
    return defaultLocalIdentity()


def _localCredential(core, ikeSA):
    policy = ikeSA.policy
    if policy.auth.method == "psk":
        return None
    if core.credentials is None:
        raise NegotiationFailed("policy %s needs a certificate or key, and there is no credential store" % (policy.name,))
    srcId = _localIdentity(core, ikeSA)
    try:
        return core.credentials.localCredential(srcId, policy.auth.method, getattr(ikeSA, "certreqAuthorities", []),
                                                now=core.wallClock())
    except CredentialError as e:
        raise NegotiationFailed("no usable local credential: %s" % (e,))


def _ourAuthPayloads(core, ikeSA, credential, idPayload):
    policy = ikeSA.policy
    octets = cryptoglue.signedOctets(ikeSA, ikeSA.initiator, _idBody(idPayload))
    if credential is None:
        return [Authentication(AuthMethod.SHARED_KEY_MIC, cryptoglue.pskAuth(ikeSA, policy.auth.psk, octets))]
    try:
        method, data = cryptoglue.signAuth(credential.privateKey, policy.auth.method, octets, ikeSA.peerSignatureHashes)
    except cryptoglue.SignatureRefused as e:
        raise NegotiationFailed(str(e))
    certs = [Certificate(encoding, data_) for encoding, data_ in credential.certificatePayloads()]
    return certs + [Authentication(method, data)]


def _verifyPeer(core, ikeSA, idPayload, authPayload, payloads):
    """
    Check the peer's identity and AUTH; raise L{AuthenticationFailed}.
    """
    policy = ikeSA.policy
    try:
        peerId = IKEIdentity.fromPayload(idPayload.idType, bytes(idPayload.data))
    except ValueError as e:
        raise AuthenticationFailed("malformed peer ID: %s" % (e,), NotifyType.AUTHENTICATION_FAILED)
    if policy.dstId is not None and not peerId.matches(IKEIdentity.fromConfig(policy.dstId.type, policy.dstId.value)):
        raise AuthenticationFailed("peer ID %s is not the policy's dstid %s" % (peerId, policy.dstId.value),
                                   NotifyType.AUTHENTICATION_FAILED)
    octets = cryptoglue.signedOctets(ikeSA, not ikeSA.initiator, _idBody(idPayload))
    if policy.auth.method == "psk":
        if authPayload.method != AuthMethod.SHARED_KEY_MIC:
            raise AuthenticationFailed("peer used %s, the policy requires a pre-shared key" % (
                nameOf(AuthMethod, authPayload.method),), NotifyType.AUTHENTICATION_FAILED)
        expected = cryptoglue.pskAuth(ikeSA, policy.auth.psk, octets)
        if not hmac.compare_digest(expected, bytes(authPayload.data)):
            raise AuthenticationFailed("peer's pre-shared key AUTH does not verify", NotifyType.AUTHENTICATION_FAILED)
    else:
        if authPayload.method == AuthMethod.SHARED_KEY_MIC:
            raise AuthenticationFailed("peer used a pre-shared key, the policy requires signatures",
                                       NotifyType.AUTHENTICATION_FAILED)
        if core.credentials is None:
            raise AuthenticationFailed("no credential store to verify the peer", NotifyType.AUTHENTICATION_FAILED)
        certificates = [(c.encoding, bytes(c.data)) for c in _all(payloads, Certificate)]
        expected = None
        if policy.dstId is not None:
            expected = IKEIdentity.fromConfig(policy.dstId.type, policy.dstId.value)
        try:
            credential = core.credentials.verifyPeer(peerId, certificates, expected, now=core.wallClock())
            cryptoglue.verifyAuth(credential.publicKey, policy.auth.method, authPayload.method, bytes(authPayload.data), octets)
        except (CredentialRefused, cryptoglue.SignatureRefused) as e:
            raise AuthenticationFailed("peer %s: %s" % (peerId, e), NotifyType.AUTHENTICATION_FAILED)
        ikeSA.peerCredential = credential
    ikeSA.peerId = peerId


class AuthTask(Task):
    """
    IKE_AUTH as initiator (RFC 7296 1.2), creating the first Child SA.
    """

    exchangeType = ExchangeType.IKE_AUTH

    def __init__(self, requestId):
        self.requestId = requestId
        self.child = None

    def build(self, core, ikeSA):
        policy = ikeSA.policy
        credential = _localCredential(core, ikeSA)
        localId = credential.identity if credential is not None else _localIdentity(core, ikeSA)
        ikeSA.localId = localId
        idPayload = IdentificationInitiator(localId.idType, localId.data)
        payloads = [idPayload]
        auth = _ourAuthPayloads(core, ikeSA, credential, idPayload)
        payloads += auth[:-1]
        payloads += _certreqPayloads(core, ikeSA)
        if policy.dstId is not None:
            dst = IKEIdentity.fromConfig(policy.dstId.type, policy.dstId.value)
            payloads.append(IdentificationResponder(dst.idType, dst.data))
        payloads.append(auth[-1])
        if not any(other is not ikeSA and other.remote[0] == ikeSA.remote[0] and other.isEstablished
                   for other in core.ikeSAs.values()):
            payloads.append(Notify(NotifyType.INITIAL_CONTACT))
        self.child, childPayloads = _proposeChild(core, ikeSA, withKeyExchange=False)
        payloads += childPayloads
        if core.config.settings.mobike:
            payloads.append(Notify(NotifyType.MOBIKE_SUPPORTED))
        return ExchangeType.IKE_AUTH, payloads

    def process(self, core, ikeSA, message, payloads, local, remote):
        error = _notify(payloads, NotifyType.AUTHENTICATION_FAILED)
        if error is not None:
            raise AuthenticationFailed("peer refused our authentication", NotifyType.AUTHENTICATION_FAILED)
        idr = _first(payloads, IdentificationResponder)
        auth = _first(payloads, Authentication)
        if idr is None or auth is None:
            other = _errorNotify(payloads)
            raise NegotiationFailed("IKE_AUTH response without IDr/AUTH%s" % (
                ": " + nameOf(NotifyType, other.notifyType) if other is not None else "",),
                other.notifyType if other is not None else None)
        try:
            _verifyPeer(core, ikeSA, idr, auth, payloads)
        except AuthenticationFailed as e:
            _log.warn("{ikeSA}: {error}", ikeSA=ikeSA, error=e)
            # RFC 7296 2.21.2: the initiator may report it in a separate
            # INFORMATIONAL exchange, then the IKE SA is gone.
            core.sendRequest(ikeSA, InformTask([Notify(NotifyType.AUTHENTICATION_FAILED)]), retransmit=False)
            raise
        ikeSA.peerMobike = _notify(payloads, NotifyType.MOBIKE_SUPPORTED) is not None
        core.established(ikeSA)
        try:
            _completeChild(core, ikeSA, self.child, payloads, shared=None)
        except NegotiationFailed as e:
            _log.warn("{ikeSA}: IKE SA up, but its Child SA failed: {error}", ikeSA=ikeSA, error=e)
            Task.failed(self, core, ikeSA, e)
            return
        self.succeeded(core, ikeSA)

    def failed(self, core, ikeSA, error):
        Task.failed(self, core, ikeSA, error)
        if not ikeSA.isEstablished:
            core.destroy(ikeSA, str(error), error)


class InformTask(Task):
    """
    An INFORMATIONAL request carrying C{payloads}, sent once.
    """

    exchangeType = ExchangeType.INFORMATIONAL

    def __init__(self, payloads):
        self.payloads = payloads

    def build(self, core, ikeSA):
        return ExchangeType.INFORMATIONAL, self.payloads

    def process(self, core, ikeSA, message, payloads, local, remote):
        pass


def respondAuth(core, ikeSA, payloads):
    """
    Answer IKE_AUTH (RFC 7296 1.2): authenticate the peer, choose the policy
    for its identity, authenticate ourselves and create the first Child SA.
    """
    if ikeSA.initiator or ikeSA.state != IKEState.SA_INIT:
        raise RemoteProtocolError("IKE_AUTH in state %s" % (ikeSA.state.name,), NotifyType.INVALID_SYNTAX)
    idi = _first(payloads, IdentificationInitiator)
    auth = _first(payloads, Authentication)
    if idi is None:
        ikeSA.destroyAfterResponse = "IKE_AUTH without IDi"
        raise RemoteProtocolError("IDi missing", NotifyType.INVALID_SYNTAX)
    if auth is None:
        ikeSA.destroyAfterResponse = "EAP is not offered by this policy"
        raise RemoteProtocolError("no AUTH payload (EAP) and the policy does not use EAP", NotifyType.AUTHENTICATION_FAILED)
    try:
        peerId = IKEIdentity.fromPayload(idi.idType, bytes(idi.data))
    except ValueError as e:
        ikeSA.destroyAfterResponse = "malformed IDi"
        raise RemoteProtocolError("malformed IDi: %s" % (e,), NotifyType.AUTHENTICATION_FAILED)
    policy = core.policies.lookup(ikeSA.local[0], ikeSA.remote[0], peerId)
    if policy is None:
        ikeSA.destroyAfterResponse = "no policy for %s" % (peerId,)
        raise RemoteProtocolError("no policy for peer %s" % (peerId,), NotifyType.AUTHENTICATION_FAILED)
    ikeSA.policy = policy
    try:
        _verifyPeer(core, ikeSA, idi, auth, payloads)
        credential = _localCredential(core, ikeSA)
        localId = credential.identity if credential is not None else _localIdentity(core, ikeSA)
        idPayload = IdentificationResponder(localId.idType, localId.data)
        answer = [idPayload] + _ourAuthPayloads(core, ikeSA, credential, idPayload)
    except NegotiationFailed as e:
        # AuthenticationFailed (the peer's fault) is a NegotiationFailed
        # too; without our own credential we cannot authenticate either.
        _log.warn("{ikeSA}: authentication failed: {error}", ikeSA=ikeSA, error=e)
        ikeSA.destroyAfterResponse = str(e)
        raise RemoteProtocolError(str(e), NotifyType.AUTHENTICATION_FAILED)
    ikeSA.localId = localId
    ikeSA.peerMobike = _notify(payloads, NotifyType.MOBIKE_SUPPORTED) is not None
    core.established(ikeSA)
    if _first(payloads, SecurityAssociation) is not None:
        try:
            answer += _respondChild(core, ikeSA, payloads, withKeyExchange=False)
        except RemoteProtocolError as e:
            _log.warn("{ikeSA}: IKE SA up, Child SA refused: {error}", ikeSA=ikeSA, error=e)
            answer.append(Notify(e.notify, data=e.notifyData))
    if core.config.settings.mobike and ikeSA.peerMobike:
        answer.append(Notify(NotifyType.MOBIKE_SUPPORTED))
    return answer


# Child SAs (RFC 7296 1.3, 2.9, 2.17)


def _childProtocol(policy):
    return policy.saProtocol


def _proposeChild(core, ikeSA, withKeyExchange, rekeying=None):
    """
    Our SA, TSi, TSr (and notifies) for a new Child SA of C{ikeSA}'s policy.

    @return: C{(child, payloads)}; C{child} holds what the response will
        complete.
    """
    policy = ikeSA.policy
    protocol = _childProtocol(policy)
    spiIn = core.spiAllocator(protocol, ikeSA.remote[0], ikeSA.local[0])
    child = ChildSA(protocol, policy.mode, spiIn, core.nextReqid(), core.now())
    child.rekeyOf = rekeying
    child.offers = offersFromConfig(policy.childProposals, struct.pack("!I", spiIn), withKeyExchange)
    child.localOffer = core.policies.selectors(policy, local=True)
    child.remoteOffer = core.policies.selectors(policy, local=False)
    payloads = [saPayload(child.offers), TrafficSelectorsInitiator(tsToWire(child.localOffer)),
                TrafficSelectorsResponder(tsToWire(child.remoteOffer))]
    if policy.mode == "transport":
        payloads.append(Notify(NotifyType.USE_TRANSPORT_MODE))
    if policy.ipcomp:
        child.ipcompIn = core.spiAllocator(ProtocolId.NONE, ikeSA.remote[0], ikeSA.local[0]) & 0xFFFF or 0x100
        payloads.append(Notify.ipcompSupported(child.ipcompIn, IpcompTransform.DEFLATE))
    return child, payloads


def _completeChild(core, ikeSA, child, payloads, shared):
    """
    As initiator: check the responder's SA and TS payloads for C{child},
    derive its keys and install it.
    """
    error = _errorNotify(payloads)
    sa = _first(payloads, SecurityAssociation)
    if sa is None:
        if error is not None and error.notifyType == NotifyType.TS_UNACCEPTABLE:
            raise TrafficSelectorsUnacceptable("responder refused our traffic selectors", error.notifyType)
        if error is not None:
            raise NoProposalChosen("responder refused the Child SA: %s" % (nameOf(NotifyType, error.notifyType),),
                                   error.notifyType)
        raise NegotiationFailed("response creates no Child SA")
    answer = offersFromWire(sa)
    if len(answer) != 1:
        raise NoProposalChosen("responder answered with %d Child SA proposals" % (len(answer),))
    offers = child.offers if shared is not None else [o.withoutKeyExchange() for o in child.offers]
    peerAnswer = answer[0] if shared is not None else answer[0].withoutKeyExchange()
    chosen = accept(offers, peerAnswer, cryptoglue.isAead)
    if chosen is None or len(peerAnswer.spi) != 4:
        raise NoProposalChosen("responder chose a Child SA proposal we did not offer")
    tsi, tsr = _trafficSelectors(payloads)
    if not tsi or not tsr or not isSubsetOf(tsi, child.localOffer) or not isSubsetOf(tsr, child.remoteOffer):
        raise TrafficSelectorsUnacceptable("responder's traffic selectors are not within ours")
    transport = _notify(payloads, NotifyType.USE_TRANSPORT_MODE) is not None
    if child.mode == "transport" and not transport:
        raise NegotiationFailed("responder refused transport mode")
    child.mode = "transport" if transport else "tunnel"
    ipcomp = _notify(payloads, NotifyType.IPCOMP_SUPPORTED)
    # The decoder guarantees an IPCOMP_SUPPORTED has its CPI and transform.
    if ipcomp is not None and child.ipcompIn is not None and ipcomp.ipcompTransform == IpcompTransform.DEFLATE:
        child.ipcompOut = ipcomp.cpi
    else:
        child.ipcompIn = None
    child.proposal = chosen
    (child.spiOut,) = struct.unpack("!I", peerAnswer.spi)
    child.localTS, child.remoteTS = tsi, tsr
    cryptoglue.deriveChildKeys(ikeSA, child, shared, initiator=True)
    _install(core, ikeSA, child)


def _trafficSelectors(payloads):
    tsi = _first(payloads, TrafficSelectorsInitiator)
    tsr = _first(payloads, TrafficSelectorsResponder)
    return (tsFromWire(tsi) if tsi is not None else None), (tsFromWire(tsr) if tsr is not None else None)


def _install(core, ikeSA, child):
    ikeSA.children.append(child)
    child.state = ChildState.INSTALLED
    core.emit(InstallChildSA(ikeSA, child))
    _log.info("{ikeSA}: Child SA {child} {local} === {remote}", ikeSA=ikeSA, child=child,
              local=", ".join(map(str, child.localTS)), remote=", ".join(map(str, child.remoteTS)))


def _respondChild(core, ikeSA, payloads, withKeyExchange, rekeying=None, nonces=None):
    """
    As responder: choose a proposal and narrow the traffic selectors for a
    new Child SA, derive its keys and install it.

    @return: our SA, TSi, TSr (and notifies) payloads.
    """
    policy = ikeSA.policy
    sa = _require(_first(payloads, SecurityAssociation), "SA")
    peerTsi, peerTsr = _trafficSelectors(payloads)
    if peerTsi is None or peerTsr is None:
        raise RemoteProtocolError("TSi or TSr missing", NotifyType.INVALID_SYNTAX)
    local = offersFromConfig(policy.childProposals, withKeyExchange=withKeyExchange)
    peer = offersFromWire(sa)
    if not withKeyExchange:
        peer = [o.withoutKeyExchange() for o in peer]
    chosen = select(local, peer, _supported, cryptoglue.isAead)
    if chosen is None or chosen.protocol not in (ProtocolId.ESP, ProtocolId.AH) or len(chosen.peerSPI) != 4:
        raise RemoteProtocolError("no acceptable Child SA proposal for policy %s" % (policy.name,),
                                  NotifyType.NO_PROPOSAL_CHOSEN)
    shared = None
    ourKe = None
    if withKeyExchange and chosen.dhGroup != DhId.NONE:
        ke = _first(payloads, KeyExchange)
        if ke is None or ke.group != chosen.dhGroup:
            raise RemoteProtocolError("Child SA wants KE group %d" % (chosen.dhGroup,), NotifyType.INVALID_KE_PAYLOAD,
                                      Notify.invalidKePayload(chosen.dhGroup).data)
        try:
            ourKe, shared = cryptoglue.keyExchangeMethod(chosen.dhGroup).respond(bytes(ke.data), core.randomBytes)
        except InvalidKeyExchange as e:
            raise RemoteProtocolError("invalid KE: %s" % (e,), NotifyType.INVALID_SYNTAX)
    tsi = narrow(peerTsi, core.policies.selectors(policy, local=False))
    tsr = narrow(peerTsr, core.policies.selectors(policy, local=True))
    if not tsi or not tsr:
        raise RemoteProtocolError("traffic selectors %s === %s outside policy %s" % (
            ", ".join(map(str, peerTsi)), ", ".join(map(str, peerTsr)), policy.name), NotifyType.TS_UNACCEPTABLE)
    transport = _notify(payloads, NotifyType.USE_TRANSPORT_MODE) is not None and policy.mode == "transport"
    spiIn = core.spiAllocator(chosen.protocol, ikeSA.remote[0], ikeSA.local[0])
    child = ChildSA(chosen.protocol, "transport" if transport else "tunnel", spiIn, core.nextReqid(), core.now())
    child.rekeyOf = rekeying
    child.proposal = chosen
    (child.spiOut,) = struct.unpack("!I", chosen.peerSPI)
    child.localTS, child.remoteTS = tsr, tsi
    answer = [saPayload([chosen.asOffer(struct.pack("!I", spiIn))])]
    if nonces is not None:
        answer.append(Nonce(nonces[1]))
        if ourKe is not None:
            answer.append(KeyExchange(chosen.dhGroup, ourKe))
    answer += [TrafficSelectorsInitiator(tsToWire(tsi)), TrafficSelectorsResponder(tsToWire(tsr))]
    if transport:
        answer.append(Notify(NotifyType.USE_TRANSPORT_MODE))
    ipcomp = _notify(payloads, NotifyType.IPCOMP_SUPPORTED)
    if ipcomp is not None and policy.ipcomp and ipcomp.ipcompTransform == IpcompTransform.DEFLATE:
        child.ipcompOut = ipcomp.cpi
        child.ipcompIn = core.spiAllocator(ProtocolId.NONE, ikeSA.remote[0], ikeSA.local[0]) & 0xFFFF or 0x100
        answer.append(Notify.ipcompSupported(child.ipcompIn, IpcompTransform.DEFLATE))
    cryptoglue.deriveChildKeys(ikeSA, child, shared, initiator=False, nonces=nonces)
    _install(core, ikeSA, child)
    return answer


class CreateChildTask(Task):
    """
    CREATE_CHILD_SA for an additional Child SA (RFC 7296 1.3.1), with a KE
    payload when the policy's childsa proposals ask for PFS.
    """

    exchangeType = ExchangeType.CREATE_CHILD_SA

    def __init__(self, requestId, rekeying=None):
        self.requestId = requestId
        self.rekeying = rekeying
        self.group = None
        self.keyExchange = None
        self.restarts = 0

    def build(self, core, ikeSA):
        if not ikeSA.isEstablished:
            raise NegotiationFailed("IKE SA is not established")
        self.child, payloads = _proposeChild(core, ikeSA, withKeyExchange=True, rekeying=self.rekeying)
        if self.group is None:
            groups = [t.id for t in self.child.offers[0].transforms if t.type == TransformType.DH]
            self.group = groups[0] if groups else DhId.NONE
        self.nonce = core.randomBytes(core.settings.nonceSize)
        head = [payloads[0], Nonce(self.nonce)]
        if self.group != DhId.NONE:
            self.keyExchange = cryptoglue.keyExchangeMethod(self.group).generate(core.randomBytes)
            head.append(KeyExchange(self.group, self.keyExchange.publicData))
        if self.rekeying is not None:
            head.insert(0, Notify.rekeySa(self.rekeying.protocol, struct.pack("!I", self.rekeying.spiIn)))
        return ExchangeType.CREATE_CHILD_SA, head + payloads[1:]

    def process(self, core, ikeSA, message, payloads, local, remote):
        invalidKe = _notify(payloads, NotifyType.INVALID_KE_PAYLOAD)
        if invalidKe is not None:
            offered = {t.id for o in self.child.offers for t in o.transforms if t.type == TransformType.DH}
            group = invalidKe.group
            self.restarts += 1
            if group in offered and group != self.group and self.restarts <= core.settings.maxInitRetries:
                self.group = group
                self._wipe()
                ikeSA.tasks.insert(0, self)
                return
            raise NoProposalChosen("responder wants Child SA group %s" % (nameOf(DhId, group),), NotifyType.INVALID_KE_PAYLOAD)
        nonce = _first(payloads, Nonce)
        if _errorNotify(payloads) is None and nonce is None:
            raise NegotiationFailed("CREATE_CHILD_SA response without Nonce")
        shared = b""
        nonceR = None
        if nonce is not None:
            try:
                nonceR = _checkNonce(nonce)
            except RemoteProtocolError as e:
                raise NegotiationFailed(str(e))
        if self.keyExchange is not None and _errorNotify(payloads) is None:
            ke = _first(payloads, KeyExchange)
            if ke is None or ke.group != self.group:
                raise NegotiationFailed("CREATE_CHILD_SA response without our KE group")
            try:
                shared = self.keyExchange.complete(bytes(ke.data))
            except InvalidKeyExchange as e:
                raise NegotiationFailed("responder's KE is invalid: %s" % (e,))
        self._wipe()
        self.child.nonces = (self.nonce, nonceR)
        _completeChild(core, ikeSA, self.child, payloads, shared)
        if self.child.proposal.dhGroup != self.group and not (self.group == DhId.NONE and self.child.proposal.dhGroup == DhId.NONE):
            raise NegotiationFailed("responder chose another PFS group than our KE")
        self.succeeded(core, self.child)

    def _wipe(self):
        if self.keyExchange is not None:
            self.keyExchange.wipe()
            self.keyExchange = None

    def failed(self, core, ikeSA, error):
        self._wipe()
        Task.failed(self, core, ikeSA, error)


def respondCreateChild(core, ikeSA, payloads):
    """
    Answer CREATE_CHILD_SA: a new or rekeyed Child SA (RFC 7296 1.3.1,
    1.3.3). Rekeying the IKE SA itself is refused for now.
    """
    if not ikeSA.isEstablished:
        raise RemoteProtocolError("CREATE_CHILD_SA before IKE_AUTH completed", NotifyType.INVALID_SYNTAX)
    sa = _require(_first(payloads, SecurityAssociation), "SA")
    if any(p.protocolId == ProtocolId.IKE for p in sa.proposals):
        raise RemoteProtocolError("IKE SA rekeying is not supported yet", NotifyType.NO_ADDITIONAL_SAS)
    nonce = _require(_first(payloads, Nonce), "Nonce")
    nonceI = _checkNonce(nonce)
    rekeying = None
    rekey = _notify(payloads, NotifyType.REKEY_SA)
    if rekey is not None:
        spi = struct.unpack("!I", bytes(rekey.spi))[0] if len(rekey.spi) == 4 else None
        rekeying = next((c for c in ikeSA.children if c.spiOut == spi and c.state == ChildState.INSTALLED), None)
        if rekeying is None:
            raise RemoteProtocolError("REKEY_SA for unknown Child SA", NotifyType.CHILD_SA_NOT_FOUND)
    nonceR = core.randomBytes(core.settings.nonceSize)
    return _respondChild(core, ikeSA, payloads, withKeyExchange=True, rekeying=rekeying, nonces=(nonceI, nonceR))


# INFORMATIONAL (RFC 7296 1.4)


class DeleteChildTask(Task):
    exchangeType = ExchangeType.INFORMATIONAL

    def __init__(self, child, requestId):
        self.child = child
        self.requestId = requestId

    def build(self, core, ikeSA):
        self.child.state = ChildState.DELETING
        return ExchangeType.INFORMATIONAL, [Delete(self.child.protocol, [struct.pack("!I", self.child.spiIn)])]

    def process(self, core, ikeSA, message, payloads, local, remote):
        _removeChild(core, ikeSA, self.child)
        self.succeeded(core, None)

    def failed(self, core, ikeSA, error):
        _removeChild(core, ikeSA, self.child)
        Task.failed(self, core, ikeSA, error)


class DeleteIKETask(Task):
    exchangeType = ExchangeType.INFORMATIONAL

    def __init__(self, requestId, reason):
        self.requestId = requestId
        self.reason = reason

    def build(self, core, ikeSA):
        ikeSA.state = IKEState.CLOSING
        return ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE, [])]

    def process(self, core, ikeSA, message, payloads, local, remote):
        self.succeeded(core, None)
        core.destroy(ikeSA, self.reason)

    def failed(self, core, ikeSA, error):
        Task.failed(self, core, ikeSA, error)
        core.destroy(ikeSA, self.reason)


class LivenessTask(Task):
    exchangeType = ExchangeType.INFORMATIONAL

    def __init__(self, requestId):
        self.requestId = requestId

    def build(self, core, ikeSA):
        return ExchangeType.INFORMATIONAL, []

    def process(self, core, ikeSA, message, payloads, local, remote):
        self.succeeded(core, True)


def _removeChild(core, ikeSA, child):
    if child in ikeSA.children:
        ikeSA.children.remove(child)
        if child.state in (ChildState.INSTALLED, ChildState.DELETING, ChildState.REKEYING):
            core.emit(RemoveChildSA(ikeSA, child))
        child.state = ChildState.DELETED
        child.wipe()


def respondInformational(core, ikeSA, payloads):
    """
    Answer INFORMATIONAL: Deletes of Child SAs (answered with ours) and of
    the IKE SA (answered empty, then the IKE SA is gone), and liveness
    checks.
    """
    answer = []
    for delete in _all(payloads, Delete):
        if delete.protocolId == ProtocolId.IKE:
            ikeSA.destroyAfterResponse = "deleted by peer"
            return []
        ours = []
        for spi in delete.spis:
            if len(spi) != 4:
                continue
            (value,) = struct.unpack("!I", bytes(spi))
            child = next((c for c in ikeSA.children if c.spiOut == value and c.protocol == delete.protocolId), None)
            if child is None:
                continue
            if child.state != ChildState.DELETING:
                ours.append(struct.pack("!I", child.spiIn))
            _removeChild(core, ikeSA, child)
        if ours:
            answer.append(Delete(delete.protocolId, ours))
    for notify in _all(payloads, Notify):
        if isErrorNotify(notify.notifyType):
            _log.warn("{ikeSA}: peer reports {notify}", ikeSA=ikeSA, notify=nameOf(NotifyType, notify.notifyType))
            if notify.notifyType == NotifyType.AUTHENTICATION_FAILED:
                # RFC 7296 2.21.2: the initiator could not verify us and
                # reports it in its own INFORMATIONAL; the IKE SA is dead.
                ikeSA.destroyAfterResponse = "peer refused our authentication"
    return answer


def afterResponse(core, ikeSA):
    reason = getattr(ikeSA, "destroyAfterResponse", None)
    if reason:
        ikeSA.destroyAfterResponse = None
        core.destroy(ikeSA, reason)


RESPONDERS = {
    ExchangeType.IKE_AUTH: respondAuth,
    ExchangeType.CREATE_CHILD_SA: respondCreateChild,
    ExchangeType.INFORMATIONAL: respondInformational,
}

# -*- test-case-name: tests.test_core_auth -*-
"""
The authentication task of IKE_AUTH (RFC 7296 2.15): our identity, our
certificates and AUTH, and the verification of the peer's; a responder
also chooses the policy for the peer's identity here. An initiator that
cannot verify the responder reports AUTHENTICATION_FAILED in an
INFORMATIONAL of its own (2.21.2, L{ikedtx.core.tasks.inform}).
"""

import functools
import hmac

from twisted.logger import Logger

from ikedtx.auth.errors import AuthenticationFailed as CredentialRefused
from ikedtx.auth.errors import CredentialError
from ikedtx.auth.ids import IKEIdentity, defaultLocalIdentity
from ikedtx.core import cryptoglue, limits
from ikedtx.core.errors import AuthenticationFailed, NegotiationFailed, RemoteProtocolError
from ikedtx.core.states import IKEState
from ikedtx.core.ocsp import certificateStatusWanted
from ikedtx.core.tasks import DONE, MORE, Task
from ikedtx.core.tasks import eap as eaptask
from ikedtx.core.tasks.common import allOf, errorNotify, findNotify, first
from ikedtx.wire.constants import AuthMethod, ExchangeType, NotifyType, nameOf
from ikedtx.wire.payloads import (
    Authentication, Certificate, IdentificationInitiator, IdentificationResponder)


def idBody(idPayload):
    return bytes([idPayload.idType]) + b"\x00\x00\x00" + bytes(idPayload.data)


@functools.lru_cache(maxsize=1024)
def _configIdentity(idType, value):
    # IKEIdentity is immutable; a policy's srcid and dstid are read at every
    # IKE_AUTH.
    return IKEIdentity.fromConfig(idType, value)


def configIdentity(configId):
    """
    The L{IKEIdentity} of a policy's srcid or dstid.
    """
    return _configIdentity(configId.type, configId.value)


def localIdentity(core, ikeSA):
    srcId = ikeSA.policy.srcId
    if srcId is not None:
        return configIdentity(srcId)
    # iked: without srcid, the local host name as an FQDN, with or without
    # certificates.
    return defaultLocalIdentity()


def localCredential(core, ikeSA):
    policy = ikeSA.policy
    if policy.auth.method == "psk":
        return None
    if core.credentials is None:
        raise NegotiationFailed("policy %s needs a certificate or key, and there is no credential store" % (policy.name,))
    srcId = localIdentity(core, ikeSA)
    try:
        return core.credentials.localCredential(srcId, policy.auth.method, ikeSA.certreqAuthorities, now=core.wallClock())
    except CredentialError as e:
        raise NegotiationFailed("no usable local credential: %s" % (e,))


def ourAuthPayloads(core, ikeSA, credential, idPayload):
    """
    Our CERT payloads (if any) and our AUTH, last.
    """
    policy = ikeSA.policy
    octets = cryptoglue.signedOctets(ikeSA, ikeSA.initiator, idBody(idPayload))
    if credential is None:
        return [Authentication(AuthMethod.SHARED_KEY_MIC, cryptoglue.pskAuth(ikeSA, policy.auth.psk, octets))]
    try:
        method, data = cryptoglue.signAuth(credential.privateKey, policy.auth.method, octets, ikeSA.peerSignatureHashes)
    except cryptoglue.SignatureRefused as e:
        raise NegotiationFailed(str(e))
    certs = [Certificate(encoding, data_) for encoding, data_ in credential.certificatePayloads()]
    return certs + [Authentication(method, data)]


def verifyPeer(core, ikeSA, idPayload, authPayload, payloads, peerId=None):
    """
    Check the peer's identity and AUTH; raise L{AuthenticationFailed}.

    @param peerId: C{idPayload}'s identity, when the caller read it already.
    """
    policy = ikeSA.policy
    if peerId is None:
        try:
            peerId = IKEIdentity.fromPayload(idPayload.idType, bytes(idPayload.data))
        except ValueError as e:
            raise AuthenticationFailed("malformed peer ID: %s" % (e,), NotifyType.AUTHENTICATION_FAILED)
    if policy.dstId is not None and not peerId.matches(configIdentity(policy.dstId)):
        raise AuthenticationFailed("peer ID %s is not the policy's dstid %s" % (peerId, policy.dstId.value),
                                   NotifyType.AUTHENTICATION_FAILED)
    octets = cryptoglue.signedOctets(ikeSA, not ikeSA.initiator, idBody(idPayload))
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
        certificates = [(c.encoding, bytes(c.data)) for c in allOf(payloads, Certificate)]
        expected = None
        if policy.dstId is not None:
            expected = configIdentity(policy.dstId)
        try:
            credential = core.credentials.verifyPeer(peerId, certificates, expected, now=core.wallClock())
            cryptoglue.verifyAuth(credential.publicKey, policy.auth.method, authPayload.method, bytes(authPayload.data),
                                  octets)
        except (CredentialRefused, cryptoglue.SignatureRefused) as e:
            raise AuthenticationFailed("peer %s: %s" % (peerId, e), NotifyType.AUTHENTICATION_FAILED)
        ikeSA.peerCredential = credential
    ikeSA.peerId = peerId
    core.saIndex.identified(ikeSA)


class AuthTask(Task):
    """
    IDi/IDr, CERT and AUTH of IKE_AUTH, both roles.

    @ivar answer: as responder, our IDr, CERT and AUTH payloads.
    """

    exchangeType = ExchangeType.IKE_AUTH
    _log = Logger()

    def __init__(self, initiator):
        Task.__init__(self, initiator)
        self.answer = []
        self.statusToken = None
        # EAP (ikedtx.core.tasks.eap): the RunEAP we wait for, its answer.
        self.eapToken = None
        self.eapStep = None
        # As initiator: the server ended EAP with an EAP Failure. As
        # responder: we did, and AUTHENTICATION_FAILED follows the response.
        self.serverRefused = False
        self.reportAuthFailed = False
        # As EAP client with OCSP: the first response, read once the
        # server's certificate status is known.
        self._eapFirstResponse = None

    @property
    def waiting(self):
        return Task.waiting.fget(self) or self.holding or self.eapToken is not None

    @property
    def holding(self):
        # The peer's certificate status (OCSP) is not known yet.
        return self.statusToken is not None

    # Initiator

    #: As initiator, whether the task runs the EAP rounds alone (the task
    #: manager holds the exchange's other tasks back meanwhile).
    leading = False

    def buildI(self, core, ikeSA, payloads):
        policy = ikeSA.policy
        if eaptask.usesEAP(policy):
            return self._buildEAP(core, ikeSA, payloads)
        credential = localCredential(core, ikeSA)
        localId = credential.identity if credential is not None else localIdentity(core, ikeSA)
        ikeSA.localId = localId
        idPayload = IdentificationInitiator(localId.idType, localId.data)
        auth = ourAuthPayloads(core, ikeSA, credential, idPayload)
        payloads.append(idPayload)
        payloads += auth[:-1]
        if policy.dstId is not None:
            dst = configIdentity(policy.dstId)
            payloads.append(IdentificationResponder(dst.idType, dst.data))
        payloads.append(auth[-1])

    def processI(self, core, ikeSA, message, payloads, local, remote):
        if findNotify(payloads, NotifyType.AUTHENTICATION_FAILED) is not None:
            raise AuthenticationFailed("peer refused our authentication", NotifyType.AUTHENTICATION_FAILED)
        idr = first(payloads, IdentificationResponder)
        auth = first(payloads, Authentication)
        if ikeSA.eapClient is not None:
            return self._processEAP(core, ikeSA, payloads, None)
        if idr is None or auth is None:
            other = errorNotify(payloads)
            raise NegotiationFailed("IKE_AUTH response without IDr/AUTH%s" % (
                ": " + nameOf(NotifyType, other.notifyType) if other is not None else "",),
                other.notifyType if other is not None else None)
        try:
            verifyPeer(core, ikeSA, idr, auth, payloads)
        except AuthenticationFailed as e:
            self._peerRefusedI(ikeSA, e)
            raise
        wanted = certificateStatusWanted(core, ikeSA)
        if eaptask.usesEAP(ikeSA.policy):
            if wanted is not None:
                # The EAP server's certificate status first: no EAP
                # Response (our password's proof) goes to a server whose
                # certificate is not known good. EAP starts on the answer
                # (certificateStatus), its rounds alone.
                self._eapFirstResponse = (payloads, idr)
                self.leading = True
                self.statusToken = core.askCertificateStatus(self, ikeSA, *wanted)
                return MORE
            return self._processEAP(core, ikeSA, payloads, idr)
        if wanted is not None:
            # The tasks after this one read the response once the answer
            # came (certificateStatus).
            self.statusToken = core.askCertificateStatus(self, ikeSA, *wanted)
            return DONE
        core.established(ikeSA)
        return DONE

    def _buildEAP(self, core, ikeSA, payloads):
        if ikeSA.eapClient is not None:
            eaptask.buildI(self, core, ikeSA, payloads)
            return
        # The first round: IDi without AUTH asks for EAP (RFC 7296 2.16).
        policy = ikeSA.policy
        localId = ikeSA.localId = localIdentity(core, ikeSA)
        self.idPayload = IdentificationInitiator(localId.idType, localId.data)
        payloads.append(self.idPayload)
        if policy.dstId is not None:
            dst = configIdentity(policy.dstId)
            payloads.append(IdentificationResponder(dst.idType, dst.data))

    def _processEAP(self, core, ikeSA, payloads, idr):
        from ikedtx.auth.eap import MSCHAPv2Client

        if idr is not None:
            name, password = eaptask.clientCredentials(core, ikeSA.policy, ikeSA.localId)
            ikeSA.eapClient = eaptask.EAPInitiator(MSCHAPv2Client(name, password), idBody(idr))
            self.leading = True
        try:
            if not eaptask.processI(self, core, ikeSA, payloads):
                return MORE
        except AuthenticationFailed as e:
            self.leading = False
            if self.serverRefused:
                self._log.warn("{ikeSA}: {error}", ikeSA=ikeSA, error=e)
            else:
                self._peerRefusedI(ikeSA, e)
            raise
        core.established(ikeSA)
        return DONE

    def _peerRefusedI(self, ikeSA, error):
        from ikedtx.core.tasks.inform import AuthenticationFailedTask

        self._log.warn("{ikeSA}: {error}", ikeSA=ikeSA, error=error)
        # RFC 7296 2.21.2: the initiator may report it in a separate
        # INFORMATIONAL exchange, then the IKE SA is gone.
        ikeSA.taskManager.sendOnce([AuthenticationFailedTask(initiator=True)])

    def failed(self, core, ikeSA, error):
        Task.failed(self, core, ikeSA, error)
        if not ikeSA.isEstablished:
            core.destroy(ikeSA, str(error), error)

    # Responder

    def processR(self, core, ikeSA, message, payloads):
        if ikeSA.initiator or ikeSA.state != IKEState.SA_INIT:
            raise RemoteProtocolError("IKE_AUTH in state %s" % (ikeSA.state.name,), NotifyType.INVALID_SYNTAX)
        if ikeSA.eap is not None:
            if eaptask.continueR(self, core, ikeSA, payloads):
                core.established(ikeSA)
            return
        idi = first(payloads, IdentificationInitiator)
        auth = first(payloads, Authentication)
        if idi is None:
            self.closeAfterResponse = "IKE_AUTH without IDi"
            raise RemoteProtocolError("IDi missing", NotifyType.INVALID_SYNTAX)
        try:
            peerId = IKEIdentity.fromPayload(idi.idType, bytes(idi.data))
        except ValueError as e:
            self.closeAfterResponse = "malformed IDi"
            raise RemoteProtocolError("malformed IDi: %s" % (e,), NotifyType.AUTHENTICATION_FAILED)
        policy = core.policies.lookup(ikeSA.local[0], ikeSA.remote[0], peerId)
        if policy is None:
            self.closeAfterResponse = "no policy for %s" % (peerId,)
            ikeSA.authFailed = True
            raise RemoteProtocolError("no policy for peer %s" % (peerId,), NotifyType.AUTHENTICATION_FAILED)
        ikeSA.policy = policy
        core.saIndex.byPolicy.add(policy.name, ikeSA)
        if auth is None or eaptask.usesEAP(policy):
            return self._startEAP(core, ikeSA, idi, auth, payloads)
        try:
            verifyPeer(core, ikeSA, idi, auth, payloads, peerId)
        except NegotiationFailed as e:
            raise self._refused(ikeSA, e)
        wanted = certificateStatusWanted(core, ikeSA)
        if wanted is not None:
            # The rest of the round waits for the answer (certificateStatus).
            self.statusToken = core.askCertificateStatus(self, ikeSA, *wanted)
            return
        self._authenticated(core, ikeSA)

    def certificateStatus(self, core, ikeSA, good, reason):
        """
        The OCSP answer on the peer's certificate came: go on, or refuse
        the peer with AUTHENTICATION_FAILED (as initiator in an
        INFORMATIONAL of our own, RFC 7296 2.21.2).
        """
        self.statusToken = None
        if self.initiator:
            eapFirst, self._eapFirstResponse = self._eapFirstResponse, None
            if good and eapFirst is not None:
                try:
                    self._processEAP(core, ikeSA, eapFirst[0], eapFirst[1])
                except NegotiationFailed as e:
                    self.holdFailure = e
            elif good:
                core.established(ikeSA)
            else:
                self.leading = False
                self.holdFailure = AuthenticationFailed("peer %s: certificate status: %s" % (ikeSA.peerId, reason),
                                                        NotifyType.AUTHENTICATION_FAILED)
                self._peerRefusedI(ikeSA, self.holdFailure)
            return
        try:
            if not good:
                raise self._refused(ikeSA, AuthenticationFailed(
                    "peer %s: certificate status: %s" % (ikeSA.peerId, reason), NotifyType.AUTHENTICATION_FAILED))
            self._authenticated(core, ikeSA)
        except RemoteProtocolError as e:
            self.refusal = e

    def _refused(self, ikeSA, error):
        # AuthenticationFailed (the peer's fault) is a NegotiationFailed
        # too; without our own credential we cannot authenticate either.
        self._log.warn("{ikeSA}: authentication failed: {error}", ikeSA=ikeSA, error=error)
        self.closeAfterResponse = str(error)
        ikeSA.authFailed = True
        return RemoteProtocolError(str(error), NotifyType.AUTHENTICATION_FAILED)

    def _authenticated(self, core, ikeSA):
        try:
            why = limits.identityRefusal(core, ikeSA)
            if why is not None:
                core.counters.count("ikedtx_sa_refused_per_id")
                raise AuthenticationFailed(why, NotifyType.AUTHENTICATION_FAILED)
            credential = localCredential(core, ikeSA)
            localId = credential.identity if credential is not None else localIdentity(core, ikeSA)
            idPayload = IdentificationResponder(localId.idType, localId.data)
            self.answer = [idPayload] + ourAuthPayloads(core, ikeSA, credential, idPayload)
        except NegotiationFailed as e:
            raise self._refused(ikeSA, e)
        ikeSA.localId = localId
        core.established(ikeSA)

    def _startEAP(self, core, ikeSA, idi, auth, payloads):
        if not eaptask.usesEAP(ikeSA.policy):
            self.closeAfterResponse = "EAP is not offered by this policy"
            raise RemoteProtocolError("no AUTH payload (EAP) and the policy does not use EAP", NotifyType.AUTHENTICATION_FAILED)
        try:
            if auth is not None:
                raise AuthenticationFailed("AUTH in the first IKE_AUTH to an EAP policy (EAP not done)",
                                           NotifyType.AUTHENTICATION_FAILED)
            policy = ikeSA.policy
            peerId = IKEIdentity.fromPayload(idi.idType, bytes(idi.data))
            if policy.dstId is not None and not peerId.matches(
                    configIdentity(policy.dstId)):
                raise AuthenticationFailed("peer ID %s is not the policy's dstid %s" % (peerId, policy.dstId.value),
                                           NotifyType.AUTHENTICATION_FAILED)
            credential = localCredential(core, ikeSA)
            localId = credential.identity if credential is not None else localIdentity(core, ikeSA)
            idPayload = IdentificationResponder(localId.idType, localId.data)
            answer = [idPayload] + ourAuthPayloads(core, ikeSA, credential, idPayload)
        except NegotiationFailed as e:
            core.counters.count("ikedtx_eap_failures")
            self._log.warn("{ikeSA}: EAP authentication failed: {error}", ikeSA=ikeSA, error=e)
            self.closeAfterResponse = str(e)
            ikeSA.authFailed = True
            raise RemoteProtocolError(str(e), NotifyType.AUTHENTICATION_FAILED)
        ikeSA.localId = localId
        eaptask.startR(self, core, ikeSA, idi, payloads, answer, idBody(idPayload))

    def sent(self, core, ikeSA, datagrams):
        if self.reportAuthFailed and not self.initiator:
            # The response carried our EAP Failure alone (tasks/eap.py):
            # RFC 7296 2.21.2's AUTHENTICATION_FAILED follows, once.
            from ikedtx.core.tasks.inform import AuthenticationFailedTask

            self.reportAuthFailed = False
            ikeSA.taskManager.sendOnce([AuthenticationFailedTask(initiator=True)])

    def buildR(self, core, ikeSA, payloads):
        if ikeSA.eap is not None and not ikeSA.isEstablished:
            eaptask.buildR(self, core, ikeSA, payloads)
            return DONE
        payloads += self.answer
        return DONE

# -*- test-case-name: tests.test_core_eap -*-
"""
EAP in IKE_AUTH (RFC 7296 2.16), the responder's side.

A peer that sends IKE_AUTH without AUTH to a policy with C{eap} gets our
IDr, certificate and AUTH (we are authenticated first) and the first EAP
Request; each further IKE_AUTH carries one EAP Response and is answered
with the next Request, then EAP Success; the last IKE_AUTH carries the
peer's AUTH computed from the MSK, answered with ours and the first
request's Child SA and configuration.

The EAP-Identity round is always asked for, as iked asks it (its
ikev2_resp_ike_auth starts every EAP conversation with an Identity
Request), even when the IDi seems to name a user: iked.conf has no
strongSwan-like C{eap_id} saying the IKE identity is the EAP one, the
native clients' IDi is not the user (Windows sends its IP address), and
with C{eap "radius"} the Identity Response is the User-Name and first
EAP-Message of the Access-Request (RFC 3579 2.1). It costs one round trip.

The EAP conversation itself belongs to an L{IEAPSession} of the core's
EAP backend (L{ikedtx.auth.eapbackend}). The core never calls it: it emits
L{RunEAP} with a token, the responder task waits (like for an SPI), and
the shell answers with C{IKECore.eapAnswered(token, step)}.

The state lives on the IKE SA (C{ikeSA.eap}, an L{EAPResponder}); each
IKE_AUTH round has fresh responder tasks, and the first request's SA, TSi,
TSr, CP and Notify payloads are held back here and handed to the tasks of
the last round, the one that establishes the IKE SA.

Every way out but success is AUTHENTICATION_FAILED and the IKE SA is
deleted: a wrong password, an unknown user, a Nak, a malformed or
unexpected EAP or MS-CHAPv2 packet, an AUTH before EAP Success (the
skipped phases of CVE-2015-8023), an EAP payload after it, a wrong AUTH,
too many rounds. Each is counted (C{ikedtx_eap_failures}) and logged with
its reason, which never holds a password or hash.

When the EAP method itself fails (the backend's step says so, or the
backend fails while the peer waits for the answer to its Response), the
IKE_AUTH response carries an EAP Failure (RFC 3748 4.2, its Identifier
that of the peer's last Response) and nothing else: EAP peers such as
strongSwan's charon read an error Notify before the EAP payload and would
never see the Failure next to one (strongSwan's own server leaves the
Notify out for that reason). AUTHENTICATION_FAILED then follows in an
INFORMATIONAL of ours, sent once (RFC 7296 2.21.2), and the IKE SA is
deleted. A request that breaks IKEv2's rules around EAP (an AUTH too
early, a missing EAP payload) is answered with the Notify alone, as any
other refused IKE_AUTH.

As initiator, an EAP Failure received is logged as such and ends the IKE
SA without an AUTHENTICATION_FAILED of ours (the server refused us); an
active policy is then initiated again on the core's backoff.
"""

import hmac

from twisted.logger import Logger

from ikedtx.auth import eap as mschap
from ikedtx.auth.eapbackend import EAPStep, LocalMSCHAPv2Backend
from ikedtx.auth.ids import IKEIdentity
from ikedtx.core import cryptoglue, limits
from ikedtx.core.actions import AbortEAP
from ikedtx.core.errors import RemoteProtocolError
from ikedtx.wire.constants import AuthMethod, NotifyType
from ikedtx.wire.payloads import (
    EAP, Authentication, Configuration, Notify, SecurityAssociation,
    TrafficSelectorsInitiator, TrafficSelectorsResponder)

_log = Logger()

#: EAP rounds (IKE_AUTH requests carrying EAP) before we give up.
MAX_ROUNDS = 10

#: What the first IKE_AUTH request carries for the tasks of the last round.
_HELD = (SecurityAssociation, TrafficSelectorsInitiator, TrafficSelectorsResponder, Configuration, Notify)

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"


class EAPFailed(RemoteProtocolError):
    def __init__(self, reason):
        RemoteProtocolError.__init__(self, reason, NotifyType.AUTHENTICATION_FAILED)


class EAPResponder:
    """
    The EAP state of one IKE SA (responder).

    @ivar session: the L{IEAPSession}.
    @ivar idi: the peer's IDi payload of the first request.
    @ivar idrBody: the body of the IDr we sent.
    @ivar held: the first request's payloads for the last round.
    @ivar rounds: EAP Responses received.
    @ivar identity: the EAP identity the backend reported.
    @ivar lastIdentifier: the Identifier of the peer's last EAP Response
        (the one an EAP Failure answers), or L{None}.
    """

    lastIdentifier = None
    #: The backend's configuration attributes given with its success
    #: (L{ikedtx.auth.eapbackend.EAPStep.config}), for the CFG_REPLY.
    config = ()

    def __init__(self, session, idi, idrBody, held):
        self.session = session
        self.idi = idi
        self.idrBody = idrBody
        self.held = held
        self.state = RUNNING
        self.rounds = 0
        self.msk = None
        self.identity = None

    def __repr__(self):
        return "<EAPResponder %s round %d>" % (self.state, self.rounds)

    def wipe(self):
        if isinstance(self.msk, bytearray):
            self.msk[:] = bytes(len(self.msk))
        self.msk = None
        self.held = []


def backendFor(core, policy):
    """
    The EAP backend for C{policy}: the core's C{eapBackend} if one was set
    (it serves every policy), else for C{eap "radius"} the core's
    C{radiusBackend} (the shell makes it from the configuration's C{radius
    server} lines, L{ikedtx.auth.radiuswire}), else the configuration's
    C{user} lines.

    @return: the L{IEAPBackend}, or L{None} for C{eap "radius"} without a
        RADIUS server.
    """
    backend = getattr(core, "eapBackend", None)
    if backend is not None:
        return backend
    if policy is not None and policy.auth.eapRadius:
        return getattr(core, "radiusBackend", None)
    return LocalMSCHAPv2Backend(core.config.users)


def usesEAP(policy):
    return policy is not None and policy.auth.method == "eap"


def _fail(core, ikeSA, task, reason, counter="ikedtx_eap_failures"):
    """
    Refuse with AUTHENTICATION_FAILED and delete the IKE SA after the
    response; C{counter} counts it.
    """
    state = ikeSA.eap
    if state is not None and state.state != FAILED:
        state.state = FAILED
        state.wipe()
        core.emit(AbortEAP(state.session))
    core.counters.count(counter)
    ikeSA.authFailed = True
    task.closeAfterResponse = "EAP authentication failed"
    _log.warn("{ikeSA}: {what}: {reason}", ikeSA=ikeSA, reason=reason,
              what="EAP authentication failed" if counter == "ikedtx_eap_failures" else "refused after EAP")
    raise EAPFailed(reason)


def startR(task, core, ikeSA, idi, payloads, answer, idrBody):
    """
    The first IKE_AUTH request, without AUTH, to an EAP policy: hold back
    its Child SA payloads and ask the backend for the first Request.
    C{answer} is our IDr, CERT and AUTH.
    """
    held = [p for p in payloads if isinstance(p, _HELD)]
    payloads[:] = [p for p in payloads if not isinstance(p, _HELD)]
    backend = backendFor(core, ikeSA.policy)
    if backend is None:
        _fail(core, ikeSA, task, 'policy %s uses eap "radius" and no radius server is configured' % (ikeSA.policy.name,))
    session = backend.newSession(ikeSA.policy, bytes(idi.data))
    ikeSA.eap = EAPResponder(session, idi, idrBody, held)
    task.answer = list(answer)
    task.eapToken = core.runEAP(task, ikeSA, session, None)


def continueR(task, core, ikeSA, payloads):
    """
    A later IKE_AUTH request of an EAP conversation.
    """
    state = ikeSA.eap
    eapPayload = next((p for p in payloads if isinstance(p, EAP)), None)
    auth = next((p for p in payloads if isinstance(p, Authentication)), None)
    if state.state == FAILED:
        _fail(core, ikeSA, task, "IKE_AUTH after EAP failed")
    if state.state == RUNNING:
        if auth is not None:
            _fail(core, ikeSA, task, "AUTH before EAP finished")
        if eapPayload is None:
            _fail(core, ikeSA, task, "IKE_AUTH without EAP payload during EAP")
        state.rounds += 1
        if state.rounds > MAX_ROUNDS:
            _fail(core, ikeSA, task, "more than %d EAP rounds" % (MAX_ROUNDS,))
        payloads[:] = [p for p in payloads if not isinstance(p, _HELD)]
        if len(eapPayload.message) >= 2:
            state.lastIdentifier = eapPayload.message[1]
        task.answer = []
        task.eapToken = core.runEAP(task, ikeSA, state.session, eapPayload.message)
        return
    # SUCCEEDED: the AUTH from the MSK.
    if eapPayload is not None:
        _fail(core, ikeSA, task, "EAP payload after EAP Success")
    if auth is None:
        _fail(core, ikeSA, task, "IKE_AUTH without AUTH after EAP Success")
    if auth.method != AuthMethod.SHARED_KEY_MIC:
        _fail(core, ikeSA, task, "AUTH after EAP is not a shared key MIC")
    from ikedtx.core.tasks.auth import idBody

    octets = cryptoglue.signedOctets(ikeSA, True, idBody(state.idi))
    expected = cryptoglue.pskAuth(ikeSA, state.msk, octets)
    if not hmac.compare_digest(expected, bytes(auth.data)):
        _fail(core, ikeSA, task, "AUTH from the MSK does not verify")
    ikeSA.peerId = IKEIdentity.fromPayload(state.idi.idType, bytes(state.idi.data))
    core.saIndex.identified(ikeSA)
    ikeSA.eapIdentity = state.identity
    why = limits.identityRefusal(core, ikeSA)
    if why is not None:
        _fail(core, ikeSA, task, why, counter="ikedtx_sa_refused_per_id")
    ours = cryptoglue.pskAuth(ikeSA, state.msk, cryptoglue.signedOctets(ikeSA, False, state.idrBody))
    task.answer = [Authentication(AuthMethod.SHARED_KEY_MIC, ours)]
    payloads[:] = [p for p in payloads if not isinstance(p, _HELD)] + state.held
    state.wipe()
    core.counters.count("ikedtx_eap_success")
    _log.info("{ikeSA}: EAP authenticated {identity}", ikeSA=ikeSA, identity=state.identity)
    return True


def answered(task, step):
    """
    The backend's answer to the L{RunEAP} the task waited for.
    """
    task.eapToken = None
    task.eapStep = step


def buildR(task, core, ikeSA, payloads):
    """
    Add the EAP payload of the backend's step (and our IDr, CERT and AUTH
    in the first round).
    """
    step, task.eapStep = task.eapStep, None
    state = ikeSA.eap
    if step is None or state is None or state.state != RUNNING:
        return
    if not isinstance(step, EAPStep):
        step = EAPStep(outcome=False, reason="the EAP backend failed: %s" % (step,))
    state.identity = step.identity or state.identity
    if step.outcome is False:
        failure = _failurePacket(state, step.packet)
        if failure is None:
            _fail(core, ikeSA, task, step.reason or "EAP failure")
        _failWithEAP(core, ikeSA, task, step.reason or "EAP failure", failure)
        payloads.append(failure)
        return
    if step.packet is None:
        _fail(core, ikeSA, task, "the EAP backend sent nothing")
    try:
        eapPayload = EAP.decodeBody(step.packet)
    except Exception as e:
        _fail(core, ikeSA, task, "the EAP backend's packet is malformed: %s" % (e,))
    if step.outcome is True:
        state.state = SUCCEEDED
        # Ours to zero when the IKE SA goes (L{EAPResponder.wipe}).
        state.msk = bytearray(step.msk) if step.msk is not None else None
        state.config = tuple(step.config)
    payloads += task.answer + [eapPayload]


def _failurePacket(state, packet):
    """
    The EAP Failure payload to answer with: the backend's own if it is one,
    else one answering the peer's last Response; L{None} before the peer
    sent any (the first round: there is nothing an EAP Failure answers).
    """
    if packet is not None and len(packet) >= 4 and packet[0] == mschap.FAILURE:
        try:
            return EAP.decodeBody(packet)
        except Exception:
            pass
    if state.lastIdentifier is None:
        return None
    return EAP.decodeBody(mschap.EAPPacket(mschap.FAILURE, state.lastIdentifier).encode())


def _failWithEAP(core, ikeSA, task, reason, failure):
    """
    Like L{_fail}, but the response carries the EAP Failure and the
    AUTHENTICATION_FAILED follows in an INFORMATIONAL once it is out
    (L{ikedtx.core.tasks.auth.AuthTask.sent}).
    """
    state = ikeSA.eap
    state.state = FAILED
    state.wipe()
    core.emit(AbortEAP(state.session))
    core.counters.count("ikedtx_eap_failures")
    ikeSA.authFailed = True
    task.closeAfterResponse = "EAP authentication failed"
    task.reportAuthFailed = True
    _log.warn("{ikeSA}: EAP authentication failed: {reason}; sending EAP Failure", ikeSA=ikeSA, reason=reason)


def forget(core, ikeSA):
    """
    The IKE SA goes: abort a conversation still running, wipe the MSK.
    """
    state = ikeSA.eap
    if state is None:
        return
    if state.state == RUNNING:
        core.emit(AbortEAP(state.session))
    state.state = FAILED if state.state != SUCCEEDED else state.state
    state.wipe()


# -- the initiator (EAP peer) -------------------------------------------------


class EAPInitiator:
    """
    The EAP state of one IKE SA (initiator): the MS-CHAPv2 peer, the next
    EAP Response to send, the responder's IDr (for its AUTH from the MSK).
    """

    def __init__(self, machine, idrBody):
        self.machine = machine
        self.idrBody = idrBody
        self.outgoing = None
        self.rounds = 0

    def __repr__(self):
        return "<EAPInitiator %r round %d>" % (self.machine, self.rounds)


def clientCredentials(core, policy, localId):
    """
    ikedtx's extension: an active policy with C{eap "mschap-v2"}
    authenticates as the C{user} line named like its srcid's value (else
    the only C{user} line).

    @return: C{(name, password)}.
    @raise NegotiationFailed: no such user line.
    """
    from ikedtx.core.errors import NegotiationFailed

    users = core.config.users
    name = policy.srcId.value if policy.srcId is not None else None
    chosen = [u for u in users if u.name == name] or (list(users) if len(users) == 1 else [])
    if not chosen:
        raise NegotiationFailed("policy %s uses EAP as initiator and no user line is named %r" % (policy.name, name))
    return chosen[0].name, chosen[0].password


def _refuse(core, reason):
    from ikedtx.core.errors import AuthenticationFailed

    core.counters.count("ikedtx_eap_failures")
    _log.warn("EAP authentication failed: {reason}", reason=reason)
    raise AuthenticationFailed(reason, NotifyType.AUTHENTICATION_FAILED)


def buildI(task, core, ikeSA, payloads):
    """
    A later round: our EAP Response, or after EAP Success our AUTH from the
    MSK.
    """
    state = ikeSA.eapClient
    if state.outgoing is not None:
        packet, state.outgoing = state.outgoing, None
        payloads.append(EAP.decodeBody(packet))
        return
    from ikedtx.core.tasks.auth import idBody

    octets = cryptoglue.signedOctets(ikeSA, True, idBody(task.idPayload))
    payloads.append(Authentication(AuthMethod.SHARED_KEY_MIC, cryptoglue.pskAuth(ikeSA, state.machine.msk, octets)))


def processI(task, core, ikeSA, payloads):
    """
    A response during EAP: the next Request, EAP Success (then we send
    AUTH), or the responder's AUTH from the MSK (then C{True}: the IKE SA
    is authenticated).
    """
    state = ikeSA.eapClient
    machine = state.machine
    eapPayload = next((p for p in payloads if isinstance(p, EAP)), None)
    auth = next((p for p in payloads if isinstance(p, Authentication)), None)
    if machine.state == mschap.SUCCEEDED:
        if auth is None or auth.method != AuthMethod.SHARED_KEY_MIC:
            _refuse(core, "no shared key MIC AUTH after EAP Success")
        octets = cryptoglue.signedOctets(ikeSA, False, state.idrBody)
        if not hmac.compare_digest(cryptoglue.pskAuth(ikeSA, machine.msk, octets), bytes(auth.data)):
            _refuse(core, "the responder's AUTH from the MSK does not verify")
        task.leading = False
        core.counters.count("ikedtx_eap_success")
        return True
    if eapPayload is None:
        _refuse(core, "IKE_AUTH response without EAP during EAP")
    received = eapPayload.message
    if machine.state == mschap.FAILED:
        # We answered an MS-CHAPv2 Failure Request; EAP Failure ends it.
        if received[:1] == bytes([mschap.FAILURE]):
            task.serverRefused = True
            _refuse(core, "received EAP Failure (%s)" % (machine.failureReason,))
        _refuse(core, "%s, and no EAP Failure followed" % (machine.failureReason,))
    state.rounds += 1
    # The responder's first Request comes before any Response of ours.
    if state.rounds > MAX_ROUNDS + 1:
        _refuse(core, "more than %d EAP rounds" % (MAX_ROUNDS,))
    try:
        answer = machine.receive(eapPayload.message)
    except mschap.EAPProtocolError as e:
        _refuse(core, "malformed or unexpected EAP: %s" % (e,))
    if machine.state == mschap.FAILED:
        if received[:1] == bytes([mschap.FAILURE]):
            # The server refused us and knows it: no AUTHENTICATION_FAILED
            # of ours follows (AuthTask._processEAP).
            task.serverRefused = True
            _refuse(core, "received EAP Failure (%s)" % (machine.failureReason or "server refused us",))
        if answer is not None:
            # RFC 2759 / draft-kamath: an MS-CHAPv2 Failure Request is
            # acknowledged, then the server sends EAP Failure.
            _log.info("{ikeSA}: EAP-MSCHAPv2 failed: {reason}", ikeSA=ikeSA, reason=machine.failureReason)
            state.outgoing = answer
            return False
        _refuse(core, machine.failureReason or "EAP failed")
    if answer is None and machine.state != mschap.SUCCEEDED:
        _refuse(core, "EAP ended without success")
    state.outgoing = answer
    return False

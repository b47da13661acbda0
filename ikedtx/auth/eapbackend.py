# -*- test-case-name: tests.test_auth_eapbackend -*-
"""
Pluggable EAP backends for the responder's EAP authentication (RFC 7296
2.16).

A backend (L{IEAPBackend}) makes one L{IEAPSession} per IKE SA that
authenticates with EAP. The session is a conversation of EAP packets (the
bodies of IKEv2 EAP payloads): L{IEAPSession.start} gives the first
Request, each L{IEAPSession.receive} of the peer's Response gives the next
L{EAPStep} - another Request, or EAP Success with the MSK, or EAP Failure.
Both return Deferreds: the local user table answers at once, a RADIUS
pass-through answers when the RADIUS server does. The core never calls a
session itself; it emits L{ikedtx.core.actions.RunEAP} and hears the step
back through C{IKECore.eapAnswered}.

L{LocalMSCHAPv2Backend} is iked's C{eap "mschap-v2"} with C{user NAME
PASSWORD} lines.
"""

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

from twisted.internet.defer import fail, succeed
from zope.interface import Interface, implementer

from ikedtx.auth import eap


@dataclass(frozen=True)
class EAPStep:
    """
    What a session answers.

    @ivar packet: the EAP packet to send the peer (a Request, Success or
        Failure), or L{None}.
    @ivar outcome: L{None} while more rounds follow, C{True} on success,
        C{False} on failure.
    @ivar msk: the Master Session Key on success, else L{None}.
    @ivar reason: why it failed (names, never secrets), for the log.
    @ivar identity: the identity the peer authenticated as (EAP identity or
        user name), when known.
    @ivar config: on success, configuration attributes for the peer's
        CFG_REPLY, C{((attribute type, ip_address), ...)} (a RADIUS
        Access-Accept's, by iked's C{radius config} maps).
    """

    packet: Optional[bytes] = None
    outcome: Optional[bool] = None
    msk: Optional[bytes] = field(default=None, repr=False)
    reason: Optional[str] = None
    identity: Optional[str] = None
    config: Tuple[Tuple[int, Any], ...] = ()

    def __post_init__(self):
        if self.outcome is True and not self.msk:
            raise ValueError("an EAP success needs an MSK")
        if self.outcome is not True and self.msk is not None:
            raise ValueError("an MSK without success")


class IEAPSession(Interface):
    """
    One EAP conversation with one peer.
    """

    def start():
        """
        The first step: a Deferred firing with an L{EAPStep} whose packet is
        the first Request (an EAP-Identity, say).
        """

    def receive(packet):
        """
        The peer's EAP packet (bytes): a Deferred firing with the next
        L{EAPStep}. A malformed or unexpected packet fails the session (the
        step's outcome is C{False}): IKEv2 has no silent discard here.
        """

    def abort():
        """
        Give up (the IKE SA went away): release whatever the session holds.
        Nothing it answers afterwards is used.
        """


class IEAPBackend(Interface):
    """
    Makes EAP sessions.
    """

    def newSession(policy, peerIdentity):
        """
        A new L{IEAPSession} for a peer that matched C{policy}
        (L{ikedtx.config.model.Policy}) with the IKE identity
        C{peerIdentity} (the IDi body, bytes).
        """


@implementer(IEAPSession)
class LocalMSCHAPv2Session:
    """
    EAP-Identity then EAP-MSCHAPv2 against a table of users.
    """

    def __init__(self, users, random=None):
        kwargs = {} if random is None else {"random": random}
        self._server = eap.MSCHAPv2Server(users, serverName="ikedtx", **kwargs)
        self.aborted = False

    def __repr__(self):
        return "<LocalMSCHAPv2Session state=%s>" % (self._server.state,)

    def start(self):
        if self.aborted:
            return fail(RuntimeError("EAP session aborted"))
        return succeed(EAPStep(packet=self._server.start()))

    def receive(self, packet):
        if self.aborted:
            return fail(RuntimeError("EAP session aborted"))
        server = self._server
        try:
            answer = server.receive(packet)
        except eap.EAPProtocolError as e:
            return succeed(EAPStep(packet=None, outcome=False, reason="malformed or unexpected EAP: %s" % (e,),
                                   identity=server.identity))
        identity = server.userName or server.identity
        if server.state == eap.SUCCEEDED:
            return succeed(EAPStep(packet=answer, outcome=True, msk=server.msk, identity=identity))
        if server.state == eap.FAILED:
            return succeed(EAPStep(packet=answer, outcome=False, reason=server.failureReason, identity=identity))
        return succeed(EAPStep(packet=answer, identity=identity))

    def abort(self):
        self.aborted = True


@implementer(IEAPBackend)
class LocalMSCHAPv2Backend:
    """
    iked's C{eap "mschap-v2"}: the users are the configuration's C{user}
    lines, looked up by the EAP identity (or MS-CHAPv2 name).

    @ivar users: C{{name: password}}.
    """

    def __init__(self, users, random=None):
        if not isinstance(users, dict):
            users = {user.name: user.password for user in users}
        self.users = users
        self._random = random

    def __repr__(self):
        return "<LocalMSCHAPv2Backend %d users>" % (len(self.users),)

    def newSession(self, policy, peerIdentity):
        return LocalMSCHAPv2Session(self.users, self._random)


def runEAP(action, answer):
    """
    Carry out a L{ikedtx.core.actions.RunEAP}: call the session, and
    C{answer(token, step)} once its Deferred fires (with an L{EAPStep}, or
    the exception when it failed). For the shell and the in-memory pumps.
    """
    session = action.session
    try:
        d = session.start() if action.packet is None else session.receive(action.packet)
    except Exception as e:
        return answer(action.token, e)
    d.addCallbacks(lambda step: answer(action.token, step), lambda f: answer(action.token, f.value))
    return d

# -*- test-case-name: tests.test_core_states -*-
"""
The declared state machines of IKE SAs and Child SAs (after h11's _state.py).

Each SA has a state and changes it only through an event; the transitions
are a table C{{(state, event): newState}}. An event the table does not know
for the current state is our own bug (the core asked for something illegal)
and raises L{LocalProtocolError} before anything changes.

IKE SA states keep the names of iked's IKEV2_STATE_* (and their numbers):

    INIT --INIT_SENT--> SA_INIT --INIT_DONE--> AUTH_REQUEST --AUTHENTICATED--> VALID
    INIT --INIT_ANSWERED--> SA_INIT --AUTHENTICATED--> VALID     (responder)
    VALID --DELETE_SENT--> CLOSING
    INIT --REKEYED--> VALID     (made by rekeying another IKE SA, RFC 7296 1.3.2)
    any but CLOSED --CLOSE--> CLOSED

An initiator whose IKE_SA_INIT is answered with a COOKIE or
INVALID_KE_PAYLOAD sends it again (INIT_SENT from SA_INIT). EAP, IKE SA
rekeying and IKE_INTERMEDIATE add their states and events here when they
arrive.

Child SA states:

    LARVAL --INSTALL--> INSTALLING --INSTALLED--> INSTALLED --DELETE--> DELETING
    INSTALLING --DELETE--> DELETING    (an install failed, or the peer went away)
    LARVAL --DELETE--> DELETING        (one the peer made and we refused)
    any but DELETED --REMOVE--> DELETED
"""

from enum import Enum, IntEnum

from ikedtx.core.errors import LocalProtocolError


class IKEState(IntEnum):
    """
    The state of an IKE SA (iked's IKEV2_STATE_*, same numbers).
    """

    INIT = 0
    SA_INIT = 2
    AUTH_REQUEST = 5
    VALID = 7
    CLOSING = 9
    CLOSED = 10


class IKEEvent(Enum):
    """
    What happens to an IKE SA.
    """

    INIT_SENT = "we sent IKE_SA_INIT"
    INIT_ANSWERED = "we answered IKE_SA_INIT"
    INIT_DONE = "the IKE_SA_INIT response was accepted"
    AUTHENTICATED = "both AUTH payloads verified"
    DELETE_SENT = "we sent a Delete for the IKE SA"
    REKEYED = "it replaces an IKE SA that was rekeyed"
    CLOSE = "the IKE SA is gone"


class ChildState(IntEnum):
    """
    The state of a Child SA.
    """

    LARVAL = 0
    INSTALLING = 1
    INSTALLED = 2
    DELETING = 3
    DELETED = 4


class ChildEvent(Enum):
    """
    What happens to a Child SA.
    """

    INSTALL = "its SAs and flows were handed to the datapath"
    INSTALLED = "the datapath confirmed the install"
    DELETE = "a Delete for it was sent"
    REMOVE = "it is gone"


def _closeFromAll(states, closed, event):
    return {(state, event): closed for state in states if state != closed}


IKE_TRANSITIONS = {
    (IKEState.INIT, IKEEvent.INIT_SENT): IKEState.SA_INIT,
    (IKEState.SA_INIT, IKEEvent.INIT_SENT): IKEState.SA_INIT,
    (IKEState.INIT, IKEEvent.INIT_ANSWERED): IKEState.SA_INIT,
    (IKEState.SA_INIT, IKEEvent.INIT_DONE): IKEState.AUTH_REQUEST,
    (IKEState.AUTH_REQUEST, IKEEvent.AUTHENTICATED): IKEState.VALID,
    (IKEState.SA_INIT, IKEEvent.AUTHENTICATED): IKEState.VALID,
    (IKEState.VALID, IKEEvent.DELETE_SENT): IKEState.CLOSING,
    (IKEState.INIT, IKEEvent.REKEYED): IKEState.VALID,
    **_closeFromAll(IKEState, IKEState.CLOSED, IKEEvent.CLOSE),
}

CHILD_TRANSITIONS = {
    (ChildState.LARVAL, ChildEvent.INSTALL): ChildState.INSTALLING,
    (ChildState.INSTALLING, ChildEvent.INSTALLED): ChildState.INSTALLED,
    (ChildState.LARVAL, ChildEvent.DELETE): ChildState.DELETING,
    (ChildState.INSTALLING, ChildEvent.DELETE): ChildState.DELETING,
    (ChildState.INSTALLED, ChildEvent.DELETE): ChildState.DELETING,
    **_closeFromAll(ChildState, ChildState.DELETED, ChildEvent.REMOVE),
}


class StateMachine:
    """
    A mixin for objects with a C{state} that changes through a transition
    table.

    @cvar transitions: C{{(state, event): newState}}.
    """

    # No instance dict of its own, so that subclasses with __slots__ have none.
    __slots__ = ()

    transitions = {}

    def handle(self, event):
        """
        Move to the state C{event} leads to from the current one.

        @raise LocalProtocolError: the table has no such transition; the
            state is unchanged.
        """
        try:
            newState = self.transitions[(self.state, event)]
        except KeyError:
            raise LocalProtocolError("%s: %s is illegal in state %s" % (self, event.name, self.state.name))
        self.state = newState
        return newState

    def can(self, event):
        """
        Whether C{event} is legal in the current state.
        """
        return (self.state, event) in self.transitions

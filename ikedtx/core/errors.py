# -*- test-case-name: tests.test_core_exchanges -*-
"""
The two kinds of protocol error (after h11): L{LocalProtocolError} when we
misuse the core, L{RemoteProtocolError} when the peer sent something wrong
(carrying the Notify to answer with, if any), and the typed failures an
C{initiate} Deferred fails with.
"""


class LocalProtocolError(Exception):
    """
    The caller asked the core for something illegal in the current state.
    """


class RemoteProtocolError(Exception):
    """
    The peer sent something we must refuse.

    @ivar notify: the L{NotifyType} to answer with, or L{None} to drop.
    @ivar notifyData: the Notify's data.
    """

    def __init__(self, message, notify=None, notifyData=b""):
        Exception.__init__(self, message)
        self.notify = notify
        self.notifyData = notifyData


class NegotiationFailed(Exception):
    """
    An IKE SA or Child SA could not be established.

    @ivar notify: the error Notify that ended it (ours or the peer's), if any.
    """

    def __init__(self, message, notify=None):
        Exception.__init__(self, message)
        self.notify = notify


class AuthenticationFailed(NegotiationFailed):
    """
    A peer's AUTH, certificate or identity was refused, or it refused ours.
    """


class NoProposalChosen(NegotiationFailed):
    """
    The peers share no acceptable proposal.
    """


class TrafficSelectorsUnacceptable(NegotiationFailed):
    """
    The peers share no traffic selectors.
    """


class PeerNotResponding(NegotiationFailed):
    """
    A request was retransmitted the allowed number of times without an answer.
    """


class SADeleted(NegotiationFailed):
    """
    The SA was deleted (by us, by the peer, or by a reload) before it was up.
    """

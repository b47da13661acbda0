# -*- test-case-name: tests.test_core_liveness -*-
"""
The INITIAL_CONTACT task of IKE_AUTH (RFC 7296 2.4): an initiator with no
other IKE SA up with the peer says so; a responder that receives it, once
the peer is authenticated, deletes every other IKE SA between the same two
identities (with their Child SAs, without a Delete: the peer forgot them,
it rebooted), before the new Child SA is installed.

Of several IKE SAs of ours that reach IKE_AUTH with the same peer together
(active policies started together), the first to build its request says
INITIAL_CONTACT and the others wait (L{InitialContactTask.waiting}) until
it is established or gone (L{released}): sent alongside, one of them might
be established at the peer before the INITIAL_CONTACT is read there, and
be deleted by it (charon answers requests in parallel threads).
"""

from twisted.logger import Logger

from ikedtx.core.states import IKEState
from ikedtx.core.tasks import Task
from ikedtx.core.tasks.common import findNotify
from ikedtx.wire.constants import ExchangeType, NotifyType
from ikedtx.wire.payloads import Notify


class InitialContactTask(Task):
    """
    INITIAL_CONTACT in our IKE_AUTH request, and acted upon in the peer's.
    """

    exchangeType = ExchangeType.IKE_AUTH
    _log = Logger()

    def __init__(self, *args, **kw):
        Task.__init__(self, *args, **kw)
        # As initiator, from prepareI until the request is built: the
        # IKE SA and its core, to see whether another one goes first.
        self._pending = None

    @property
    def waiting(self):
        """
        As initiator, before our IKE_AUTH request is built: whether another
        IKE SA of ours to the same peer is authenticating with
        INITIAL_CONTACT.
        """
        if Task.waiting.fget(self):
            return True
        if self._pending is None:
            return False
        core, ikeSA = self._pending
        return _initialContactUnderway(core, ikeSA)

    def prepareI(self, core, ikeSA):
        self._pending = (core, ikeSA)
        core.saIndex.holding.add(ikeSA.remote[0], ikeSA)

    def buildI(self, core, ikeSA, payloads):
        self._pending = None
        core.saIndex.holding.remove(ikeSA)
        # Not when another IKE SA to the peer is up: the peer would delete
        # it.
        host = ikeSA.remote[0]
        if not any(other is not ikeSA and other.remote[0] == host and other.state == IKEState.VALID
                   for other in core.saIndex.byHost.get(host)) and not _initialContactUnderway(core, ikeSA):
            ikeSA.initialContactSent = True
            core.saIndex.contacting.add(host, ikeSA)
            payloads.append(Notify(NotifyType.INITIAL_CONTACT))

    def failed(self, core, ikeSA, error):
        self._pending = None
        core.saIndex.holding.remove(ikeSA)
        Task.failed(self, core, ikeSA, error)

    def processR(self, core, ikeSA, message, payloads):
        # After AuthTask: the peer is authenticated when the IKE SA is up.
        if findNotify(payloads, NotifyType.INITIAL_CONTACT) is None or not ikeSA.isEstablished:
            return
        stale = [other for other in core.saIndex.byPeer.get(ikeSA.peerId)
                 if other is not ikeSA and other.peerId is not None and other.peerId == ikeSA.peerId
                 and other.localId == ikeSA.localId]
        for other in stale:
            self._log.info("{ikeSA}: INITIAL_CONTACT from {peer}: deleting its old {other}", ikeSA=ikeSA,
                           peer=ikeSA.peerId, other=other)
            core.destroy(other, "replaced: the peer sent INITIAL_CONTACT")
        if core.initialContactHook is not None:
            core.initialContactHook(ikeSA)


def _initialContactUnderway(core, ikeSA):
    """
    Whether another IKE SA of C{core} to the peer of C{ikeSA} sent
    INITIAL_CONTACT and is not established yet.
    """
    host = ikeSA.remote[0]
    return any(other is not ikeSA and other.remote[0] == host and other.state == IKEState.AUTH_REQUEST
               and other.initialContactSent for other in core.saIndex.contacting.get(host))


def released(core, ikeSA):
    """
    C{ikeSA} was established or is gone: if it said INITIAL_CONTACT, the
    IKE SAs to the same peer that waited for it go on.
    """
    if not ikeSA.initialContactSent or not ikeSA.initiator:
        return
    host = core.saIndex.contacting.keyOf(ikeSA)
    core.saIndex.contacting.remove(ikeSA)
    if host is None:
        host = ikeSA.remote[0]
    # Those waiting are between prepareI and buildI (holding).
    for other in list(core.saIndex.holding.get(host)):
        if other is not ikeSA and other.remote[0] == ikeSA.remote[0] and other.state == IKEState.AUTH_REQUEST:
            other.taskManager.resume()

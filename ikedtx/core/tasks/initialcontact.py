# -*- test-case-name: tests.test_core_liveness -*-
"""
The INITIAL_CONTACT task of IKE_AUTH (RFC 7296 2.4): an initiator with no
other IKE SA up with the peer says so; a responder that receives it, once
the peer is authenticated, deletes every other IKE SA between the same two
identities (with their Child SAs, without a Delete: the peer forgot them,
it rebooted), before the new Child SA is installed.
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

    def buildI(self, core, ikeSA, payloads):
        # Not when another IKE SA to the peer is up, or authenticating with
        # INITIAL_CONTACT already (several policies starting together, their
        # IKE_AUTH requests built in whatever order their SPIs came): the
        # peer would delete it.
        if not any(other is not ikeSA and other.remote[0] == ikeSA.remote[0]
                   and (other.state == IKEState.VALID
                        or (other.state == IKEState.AUTH_REQUEST and other.initialContactSent))
                   for other in core.ikeSAs.values()):
            ikeSA.initialContactSent = True
            payloads.append(Notify(NotifyType.INITIAL_CONTACT))

    def processR(self, core, ikeSA, message, payloads):
        # After AuthTask: the peer is authenticated when the IKE SA is up.
        if findNotify(payloads, NotifyType.INITIAL_CONTACT) is None or not ikeSA.isEstablished:
            return
        stale = [other for other in core.ikeSAs.values()
                 if other is not ikeSA and other.peerId is not None and other.peerId == ikeSA.peerId
                 and other.localId == ikeSA.localId]
        for other in stale:
            self._log.info("{ikeSA}: INITIAL_CONTACT from {peer}: deleting its old {other}", ikeSA=ikeSA,
                           peer=ikeSA.peerId, other=other)
            core.destroy(other, "replaced: the peer sent INITIAL_CONTACT")

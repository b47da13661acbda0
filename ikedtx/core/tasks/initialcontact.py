# -*- test-case-name: tests.test_core_exchanges -*-
"""
The INITIAL_CONTACT task of IKE_AUTH (RFC 7296 2.4): an initiator with no
other IKE SA up with the peer says so. A responder does not act on it yet
(deleting the peer's older IKE SAs is for the lifecycle work), so this
task has no responder side in L{ikedtx.core.tasks.registry}.
"""

from ikedtx.core.tasks import Task
from ikedtx.wire.constants import ExchangeType, NotifyType
from ikedtx.wire.payloads import Notify


class InitialContactTask(Task):
    """
    INITIAL_CONTACT in our IKE_AUTH request.
    """

    exchangeType = ExchangeType.IKE_AUTH

    def buildI(self, core, ikeSA, payloads):
        if not any(other is not ikeSA and other.remote[0] == ikeSA.remote[0] and other.isEstablished
                   for other in core.ikeSAs.values()):
            payloads.append(Notify(NotifyType.INITIAL_CONTACT))

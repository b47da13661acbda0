# -*- test-case-name: tests.test_core_child -*-
"""
The liveness task (RFC 7296 1.4): an empty INFORMATIONAL request, answered
empty; a peer that never answers is given up with the IKE SA. Dead peer
detection (L{ikedtx.core.tasks.dpd}) queues it from its timer.
"""

from ikedtx.core.tasks import DONE, PRIORITY_LIVENESS, Task
from ikedtx.wire.constants import ExchangeType


class LivenessTask(Task):
    """
    An empty INFORMATIONAL, both roles (as responder the answer is empty
    too, unless other tasks of the same request add to it).
    """

    exchangeType = ExchangeType.INFORMATIONAL
    priority = PRIORITY_LIVENESS

    def processI(self, core, ikeSA, message, payloads, local, remote):
        self.succeeded(core, True)
        return DONE

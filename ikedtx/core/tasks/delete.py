# -*- test-case-name: tests.test_core_child -*-
"""
The delete tasks (RFC 7296 1.4.1): a Child SA's or the IKE SA's Delete in
an INFORMATIONAL exchange, both roles. A responder answers the peer's
Child SA Deletes with the Deletes of the other halves (except for Child
SAs it is deleting itself), and deletes the IKE SA after answering its
Delete.
"""

import struct

from ikedtx.core.states import ChildEvent, ChildState, IKEEvent
from ikedtx.core.tasks import DONE, PRIORITY_DELETE, Task
from ikedtx.core.tasks.common import allOf
from ikedtx.wire.constants import ExchangeType, ProtocolId
from ikedtx.wire.payloads import Delete


class ChildDeleteTask(Task):
    """
    Deletes of Child SAs.

    @ivar child: as initiator, the L{ChildSA} to delete.
    @ivar answer: as responder, our Delete payloads.
    """

    exchangeType = ExchangeType.INFORMATIONAL
    priority = PRIORITY_DELETE

    def __init__(self, initiator, child=None, requestId=None):
        Task.__init__(self, initiator, requestId)
        self.child = child
        self.answer = []

    def buildI(self, core, ikeSA, payloads):
        if self.child.state != ChildState.DELETING:
            self.child.handle(ChildEvent.DELETE)
        payloads.append(Delete(self.child.protocol, [struct.pack("!I", self.child.spiIn)]))

    def processI(self, core, ikeSA, message, payloads, local, remote):
        core.removeChild(ikeSA, self.child)
        self.succeeded(core, None)
        return DONE

    def failed(self, core, ikeSA, error):
        core.removeChild(ikeSA, self.child)
        Task.failed(self, core, ikeSA, error)

    def processR(self, core, ikeSA, message, payloads):
        deletes = allOf(payloads, Delete)
        if any(delete.protocolId == ProtocolId.IKE for delete in deletes):
            # The IKE SA goes, its Child SAs with it.
            return
        for delete in deletes:
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
                core.removeChild(ikeSA, child)
            if ours:
                self.answer.append(Delete(delete.protocolId, ours))

    def buildR(self, core, ikeSA, payloads):
        payloads += self.answer
        return DONE


class IKEDeleteTask(Task):
    """
    The Delete of the IKE SA.

    @ivar reason: as initiator, why we delete it.
    """

    exchangeType = ExchangeType.INFORMATIONAL
    priority = PRIORITY_DELETE

    def __init__(self, initiator, requestId=None, reason="deleted"):
        Task.__init__(self, initiator, requestId)
        self.reason = reason

    def buildI(self, core, ikeSA, payloads):
        if ikeSA.can(IKEEvent.DELETE_SENT):
            ikeSA.handle(IKEEvent.DELETE_SENT)
        payloads.append(Delete(ProtocolId.IKE, []))

    def processI(self, core, ikeSA, message, payloads, local, remote):
        self.succeeded(core, None)
        core.destroy(ikeSA, self.reason)
        return DONE

    def failed(self, core, ikeSA, error):
        Task.failed(self, core, ikeSA, error)
        core.destroy(ikeSA, self.reason)

    def processR(self, core, ikeSA, message, payloads):
        if any(delete.protocolId == ProtocolId.IKE for delete in allOf(payloads, Delete)):
            self.closeAfterResponse = "deleted by peer"

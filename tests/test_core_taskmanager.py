# -*- test-case-name: tests.test_core_taskmanager -*-
"""
Tests for L{ikedtx.core.taskmanager}: the response cache keyed on the
request's hash, the Message ID window, the retransmission schedule and
its give-up, and the priorities of queued exchanges (RFC 7296 2.1, 2.2).
"""


from ikedtx.core.errors import PeerNotResponding
from ikedtx.core.retransmit import RetransmitSchedule
from ikedtx.core.settings import CoreSettings
from ikedtx.core.states import ChildState
from ikedtx.core.taskmanager import requestHash
from ikedtx.core.tasks import PRIORITY_DELETE, PRIORITY_LIVENESS, PRIORITY_OTHER, PRIORITY_REKEY
from ikedtx.core.tasks.child import ChildCreateTask
from ikedtx.core.tasks.delete import ChildDeleteTask
from ikedtx.core.tasks.inform import InformTask
from ikedtx.core.tasks.liveness import LivenessTask
from ikedtx.wire.constants import ExchangeType, HeaderFlag, NotifyType, PayloadType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify
from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase


class ResponseCacheTests(ExchangeTestCase):
    def test_retransmittedRequestGetsIdenticalBytes(self):
        """
        RFC 7296 2.1: the same request again is answered with the very same
        datagrams, and not processed again.
        """
        a, b, ikeSA = self.establish()
        a.command(a.core.checkLiveness, ikeSA)
        request = self.network.inFlight[0]
        self.network.deliverOne()
        answer = self.network.inFlight[0][0]
        ikeSAB = b.ikeSAs[0]
        self.assertEqual(ikeSAB.taskManager.lastResponse.requestHash, requestHash(request[0]))
        b.receive(request[0], request[2], request[1])
        self.assertEqual([d for d, _, _ in self.network.inFlight], [answer, answer])
        self.assertEqual(ikeSAB.taskManager.nextPeerRequestId, 3)

    def test_otherRequestSameMessageId(self):
        """
        A different request that carries the Message ID of the one last
        answered does not get the cached response: it is dropped.
        """
        a, b, ikeSA = self.establish()
        a.command(a.core.checkLiveness, ikeSA)
        self.network.deliverOne()
        self.network.inFlight.clear()
        other = Message(ikeSA.spiI, ikeSA.spiR, ExchangeType.INFORMATIONAL, HeaderFlag.INITIATOR, 2,
                        encrypted=[Notify(NotifyType.INITIAL_CONTACT)]).encode(ikeSA.cipherOut)
        self.assertEqual(b.core.datagramReceived(other, (B_ADDR, 500), (A_ADDR, 500)), [])

    def test_windowOfOne(self):
        """
        RFC 7296 2.2: with a request outstanding, the next one waits; it
        goes out once the first is answered.
        """
        a, b, ikeSA = self.establish()
        first = a.command(a.core.checkLiveness, ikeSA)
        second = a.command(a.core.checkLiveness, ikeSA)
        self.assertEqual(len(self.network.inFlight), 1)
        self.assertEqual(ikeSA.taskManager.pending.messageId, 2)
        self.network.deliverOne()
        self.network.deliverOne()
        self.assertSucceeded(a, first)
        self.assertNotIn(second, a.results)
        self.assertEqual(ikeSA.taskManager.pending.messageId, 3)
        self.network.pump()
        self.assertSucceeded(a, second)


class RetransmitTests(ExchangeTestCase):
    def test_schedule(self):
        """
        The schedule is a pure function of the attempt: doubling up to the
        cap, then L{None} (give up).
        """
        schedule = RetransmitSchedule(initial=1.0, base=2.0, cap=5.0, tries=5)
        self.assertEqual([schedule.timeout(n) for n in range(6)], [1.0, 2.0, 4.0, 5.0, 5.0, None])
        self.assertEqual(schedule.total(), 17.0)

    def test_retransmitThenGiveUp(self):
        """
        RFC 7296 2.1: an unanswered request is sent again on the schedule;
        after the last attempt the command fails and the IKE SA goes.
        """
        schedule = RetransmitSchedule(initial=1.0, base=2.0, cap=4.0, tries=3, jitter=0.0)
        a, b, ikeSA = self.establish(settingsA=CoreSettings(retransmit=schedule))
        requestId = a.command(a.core.checkLiveness, ikeSA)
        request = self.network.drop()
        sent = []
        for delay in (1.0, 2.0):
            a.clock.advance(delay)
            sent.append(self.network.drop()[0])
        self.assertEqual(sent, [request[0], request[0]])
        a.clock.advance(3.9)
        self.assertNotIn(requestId, a.results)
        a.clock.advance(0.1)
        self.assertFailedWith(a, requestId, PeerNotResponding)
        self.assertEqual(a.ikeSAs, [])
        self.assertEqual(self.network.inFlight, [])


class PriorityTests(ExchangeTestCase):
    def test_priorityOrder(self):
        """
        The queue's documented order: Delete, then rekey, then liveness,
        then the rest; first come, first served within one priority.
        """
        self.assertEqual(sorted([PRIORITY_OTHER, PRIORITY_LIVENESS, PRIORITY_DELETE, PRIORITY_REKEY]),
                         [PRIORITY_DELETE, PRIORITY_REKEY, PRIORITY_LIVENESS, PRIORITY_OTHER])
        a, b, ikeSA = self.establish()
        (child,) = ikeSA.children
        manager = ikeSA.taskManager
        a.execute(a.core.queueTask(ikeSA, InformTask(True, [])))
        self.assertIsNotNone(manager.pending)
        other = ChildCreateTask(True)
        rekey = ChildCreateTask(True, rekeying=child)
        liveness1, liveness2 = LivenessTask(True), LivenessTask(True)
        delete = ChildDeleteTask(True, child)
        for task in (other, liveness1, rekey, liveness2, delete):
            manager.queueExchange([task])
        self.assertEqual([q.tasks[0] for q in manager.queue], [delete, rekey, liveness1, liveness2, other])
        self.network.deliverOne()
        self.network.deliverOne()
        # The Delete went first.
        sent = Message.decode(self.network.inFlight[0][0]).decrypt(b.ikeSAs[0].cipherIn)
        self.assertEqual([p.payloadType for p in sent], [PayloadType.DELETE])
        self.assertEqual(child.state, ChildState.DELETING)

# -*- test-case-name: tests.test_core_taskmanager -*-
"""
The task manager of one IKE SA (after strongSwan's task_manager_v2.c, sans
IO): who sends what, with which Message ID, and when.

It owns:

  - the Message ID windows (RFC 7296 2.2, window size 1 both ways);
  - our pending request, its datagrams and its retransmissions (2.1), on the
    schedule of L{ikedtx.core.retransmit}, a pure function of the attempt;
  - the response cache: the datagrams of our last response with the hash
    of the request they answer (SHA-256 of the request's datagram, or of
    its first fragment when it came in fragments, RFC 7383), so that only
    the same request retransmitted gets them again (2.1); another request
    with the same Message ID does not;
  - the queue of initiator exchanges, in priority order (L{PRIORITY_DELETE}
    before L{PRIORITY_REKEY} before L{PRIORITY_LIVENESS} before
    L{PRIORITY_OTHER}; first come, first served within a priority).

An exchange is a list of tasks (L{ikedtx.core.tasks.Task}), all created for
the same role. Each round, the lead task (the first one left) names the
exchange type; the tasks that want that exchange type take part: as
initiator each one adds its payloads to the request (C{buildI}) and reads
the response (C{processI}); as responder each one reads the request
(C{processR}) and adds its payloads to the response (C{buildR}). A task
answers L{DONE}, L{MORE} (another round: IKE_INTERMEDIATE, EAP, multiple
key exchanges) or, as initiator, L{RETRY} (send this round again with the
same Message ID: a COOKIE or INVALID_KE_PAYLOAD to IKE_SA_INIT). A task
that waits for the datapath (an SPI) says so with C{waiting}; the round
is then built when it no longer waits.
"""

import hashlib

from twisted.logger import Logger

from ikedtx.core.actions import CancelTimer, SetTimer
from ikedtx.core.errors import NegotiationFailed, PeerNotResponding, RemoteProtocolError
from ikedtx.core.retransmit import jitterOf
from ikedtx.core.tasks import DONE, MORE, RETRY
from ikedtx.core.timers import TimerKey
from ikedtx.wire.constants import ExchangeType, NotifyType, nameOf
from ikedtx.wire.payloads import Notify



def requestHash(data):
    """
    The key of the response cache: SHA-256 of a request's datagram (its
    first fragment's for a fragmented request).
    """
    return hashlib.sha256(bytes(data)).digest()


class PendingRequest:
    """
    A request we sent and wait an answer for.

    @ivar tasks: the tasks that built it and will process the response.
    @ivar exchangeType: its exchange type.
    @ivar messageId: its Message ID.
    @ivar datagrams: what was sent (one datagram, or fragments).
    @ivar attempt: how many retransmissions so far.
    """

    def __init__(self, tasks, exchangeType, messageId, datagrams):
        self.tasks = tasks
        self.exchangeType = exchangeType
        self.messageId = messageId
        self.datagrams = datagrams
        self.attempt = 0


class CachedResponse:
    """
    Our last response.

    @ivar messageId: the Message ID of the request it answers.
    @ivar requestHash: the L{requestHash} of that request.
    @ivar datagrams: the response as sent.
    @ivar size: their octets.
    @ivar resends: how many times it was sent again.
    """

    def __init__(self, messageId, requestHash, datagrams):
        self.messageId = messageId
        self.requestHash = requestHash
        self.datagrams = datagrams
        self.size = sum(len(d) for d in datagrams)
        self.resends = 0


class _Queued:
    def __init__(self, priority, sequence, tasks):
        self.priority = priority
        self.sequence = sequence
        self.tasks = tasks


class _Answering:
    """
    A peer's request we are answering (our responder tasks may wait for
    the datapath before the response can be built).
    """

    def __init__(self, exchangeType, messageId, requestHash, local, remote):
        self.exchangeType = exchangeType
        self.messageId = messageId
        self.requestHash = requestHash
        self.local = local
        self.remote = remote


class TaskManager:
    """
    The exchanges of one IKE SA.

    @ivar core: the L{IKECore} (its C{emit}, C{encode}, C{settings}).
    @ivar ikeSA: the L{IKESA}.
    @ivar nextRequestId: the Message ID of our next request.
    @ivar pending: our outstanding L{PendingRequest}, or L{None}.
    @ivar nextPeerRequestId: the Message ID the peer's next request carries.
    @ivar lastResponse: our last L{CachedResponse}, or L{None}.
    @ivar active: the initiator tasks of the exchange in progress.
    @ivar responding: the responder tasks of the exchange in progress
        (kept between rounds while some answer L{MORE}).
    @ivar answering: the L{_Answering} request whose response waits for the
        datapath, or L{None}.
    @ivar queue: L{_Queued} exchanges not started yet.
    """

    _log = Logger()

    def __init__(self, core, ikeSA):
        self.core = core
        self.ikeSA = ikeSA
        self.nextRequestId = 0
        self.pending = None
        self.nextPeerRequestId = 0
        self.lastResponse = None
        self.active = []
        self.responding = []
        self.answering = None
        self.queue = []
        self._sequence = 0
        self._firstFragments = {}
        self._parked = []
        # A request whose later tasks wait for a holding task (the peer's
        # certificate status): (message, payloads, the tasks left).
        self._held = None
        # The same for a response: (message, payloads, local, remote, the
        # PendingRequest, the holding task, the tasks left).
        self._heldResponse = None
        # While tasks process a response, what they queue waits for the end.
        self._processing = False

    # Initiator

    def queueExchange(self, tasks, priority=None):
        """
        Queue an exchange made of C{tasks} (initiator tasks); start it when
        the window is free and nothing of higher priority waits.
        """
        if priority is None:
            priority = min(task.priority for task in tasks)
        self._sequence += 1
        self.queue.append(_Queued(priority, self._sequence, list(tasks)))
        self.queue.sort(key=lambda q: (q.priority, q.sequence))
        self.initiate()

    def queuedTasks(self):
        """
        Every task queued or active, in the order they will run.
        """
        return list(self.active) + [task for queued in self.queue for task in queued.tasks]

    @property
    def busy(self):
        return self.pending is not None or bool(self.active)

    def initiate(self):
        """
        Start the next round: that of the active exchange, else the first
        queued exchange's.
        """
        core = self.core
        if core.passive or self.pending is not None or self._processing or not self.ikeSA.canSend:
            return
        if not self.active:
            if not self.queue:
                return
            self.active = self.queue.pop(0).tasks
        participants = self._participants(self.active)
        try:
            for task in participants:
                if not task.prepared:
                    task.prepared = True
                    task.prepareI(core, self.ikeSA)
        except NegotiationFailed as e:
            self._fail(e)
            return
        if any(task.waiting for task in participants):
            return
        self._sendRound(participants, retransmit=True)

    def _participants(self, tasks):
        exchangeType = tasks[0].exchangeType
        participants = [task for task in tasks if task.exchangeType == exchangeType]
        leader = next((task for task in participants if getattr(task, "leading", False)), None)
        return participants if leader is None else [leader]

    def resume(self):
        """
        A task stopped waiting (an SPI was allocated): go on with the round
        it waited in.
        """
        if self._heldResponse is not None and not self._heldResponse[5].holding:
            self._resumeResponse()
        if self.answering is not None:
            if self._held is not None:
                if any(task.holding for task in self.responding):
                    return
                message, payloads, rest = self._held
                self._held = None
                if any(task.essential and task.refusal is not None for task in self.responding):
                    rest = []
                self._processRequest(message, payloads, rest)
            elif not any(task.waiting for task in self.responding):
                self._answer()
        elif self.active and self.pending is None and self._heldResponse is None:
            self.initiate()

    def _sendRound(self, participants, retransmit):
        core, ikeSA = self.core, self.ikeSA
        exchangeType = participants[0].exchangeType
        payloads = []
        try:
            for task in participants:
                task.buildI(core, ikeSA, payloads)
        except NegotiationFailed as e:
            self._fail(e)
            return
        messageId = self.nextRequestId
        datagrams = core.encode(ikeSA, exchangeType, payloads, messageId, response=False)
        for task in participants:
            task.sent(core, ikeSA, datagrams)
        if retransmit:
            self.pending = PendingRequest(participants, exchangeType, messageId, datagrams)
        else:
            self.nextRequestId += 1
        core.sendAll(ikeSA, datagrams)
        if retransmit:
            core.emit(SetTimer(TimerKey.retransmit(ikeSA.localSPI),
                               core.settings.retransmit.timeout(0, jitterOf(datagrams[0], 0))))

    def sendOnce(self, tasks):
        """
        Build and send the request of C{tasks} now, without waiting for the
        window and without retransmitting it (a Delete at shutdown, the
        AUTHENTICATION_FAILED of RFC 7296 2.21.2).
        """
        self._sendRound(self._participants(tasks), retransmit=False)

    def retry(self):
        """
        Send the pending round again from scratch with the same Message ID
        (IKE_SA_INIT after a COOKIE or INVALID_KE_PAYLOAD, RFC 7296 1.2, 2.6).
        """
        pending = self.pending
        self.core.emit(CancelTimer(TimerKey.retransmit(self.ikeSA.localSPI)))
        self.pending = None
        tasks = pending.tasks if pending is not None else self._participants(self.active)
        self._sendRound(tasks, retransmit=True)

    def responseReceived(self, message, payloads, local, remote):
        """
        The response to our pending request, decrypted.
        """
        core, ikeSA = self.core, self.ikeSA
        pending = self.pending
        if any(task.staleResponse(core, ikeSA, message, payloads) for task in pending.tasks):
            self._log.info("{ikeSA}: answer to an earlier transmission of request {mid} ignored",
                           ikeSA=ikeSA, mid=message.messageId)
            return
        core.emit(CancelTimer(TimerKey.retransmit(ikeSA.localSPI)))
        core.counters.notifiesReceived(payloads)
        # The exchange is over: what the tasks send now (the
        # AUTHENTICATION_FAILED of RFC 7296 2.21.2) takes the next Message ID.
        self.pending = None
        self.nextRequestId += 1
        self._processResponse(message, payloads, local, remote, pending, list(pending.tasks), [])

    def _processResponse(self, message, payloads, local, remote, pending, queue, processed):
        """
        The initiator tasks in C{queue} (of C{pending}) read the response in
        turn, and go to C{processed}.

        A task that is C{leading} (EAP, RFC 7296 2.16) runs further rounds
        of its exchange alone; the other tasks of the exchange read the
        response of the round in which it stops leading.  A task left
        L{holding} (the responder's certificate status) stops them until
        L{resume}, before the tasks after it read anything.
        """
        core, ikeSA = self.core, self.ikeSA
        self._processing = True
        try:
            while queue:
                task = queue.pop(0)
                wasLeading = getattr(task, "leading", False)
                status = task.processI(core, ikeSA, message, payloads, local, remote)
                if status == RETRY:
                    self.nextRequestId = pending.messageId
                    self._sendRound(pending.tasks, retransmit=True)
                    return
                task.status = status
                processed.append(task)
                if wasLeading and not getattr(task, "leading", False):
                    queue += [t for t in self._participants(self.active) if t not in processed and t not in queue]
                if task.holding:
                    self._heldResponse = (message, payloads, local, remote, pending, task, queue, processed)
                    return
                if getattr(task, "leading", False):
                    break
        except NegotiationFailed as e:
            self._processing = False
            self._fail(e)
            self.initiate()
            return
        finally:
            if self._heldResponse is None:
                self._processing = False
        self._responseProcessed(processed)

    def _resumeResponse(self):
        message, payloads, local, remote, pending, held, queue, processed = self._heldResponse
        self._heldResponse = None
        self._processing = False
        if held.holdFailure is not None:
            self._fail(held.holdFailure)
            self.initiate()
            return
        if getattr(held, "leading", False):
            # Its next round goes out alone; the others read a later response.
            queue = []
        self._processResponse(message, payloads, local, remote, pending, queue, processed)

    def _responseProcessed(self, processed):
        core, ikeSA = self.core, self.ikeSA
        self.active = [task for task in self.active if task not in processed or task.status == MORE]
        for task in processed:
            if task.status == DONE:
                task.done(core, ikeSA)
        self.initiate()

    def malformedResponse(self, error):
        """
        The response to our pending request could not be decoded.
        """
        self.core.emit(CancelTimer(TimerKey.retransmit(self.ikeSA.localSPI)))
        self.pending = None
        self.nextRequestId += 1
        self._fail(NegotiationFailed("malformed response: %s" % (error,)))
        self.initiate()

    def _fail(self, error):
        """
        The active exchange failed: every one of its tasks is told.
        """
        tasks, self.active = self.active, []
        self.pending = None
        # The commands waiting hear of it before the IKE SA goes away.
        for task in tasks:
            task.reportFailure(self.core, error)
        for task in tasks:
            task.failed(self.core, self.ikeSA, error)

    def retransmit(self):
        """
        The retransmission timer fired: send the pending request again, or
        give the peer up after the last attempt.
        """
        core, ikeSA = self.core, self.ikeSA
        pending = self.pending
        if pending is None:
            return
        pending.attempt += 1
        delay = core.settings.retransmit.timeout(pending.attempt, jitterOf(pending.datagrams[0], pending.attempt))
        if delay is None:
            self._log.info("{ikeSA}: no answer to request {mid} after {n} transmissions",
                           ikeSA=ikeSA, mid=pending.messageId, n=pending.attempt)
            error = PeerNotResponding("peer %s did not answer" % (ikeSA.remote[0],))
            self._fail(error)
            core.destroy(ikeSA, "peer not responding", error)
            return
        self._log.debug("{ikeSA}: retransmitting request {mid} ({n})", ikeSA=ikeSA, mid=pending.messageId, n=pending.attempt)
        core.counters.count("ikes_retransmit_request")
        core.sendAll(ikeSA, pending.datagrams)
        core.emit(SetTimer(TimerKey.retransmit(ikeSA.localSPI), delay))

    def failAll(self, error):
        """
        The IKE SA is going away: every task, active or queued, fails; the
        responder tasks of the peer's unfinished exchanges are abandoned.
        """
        tasks = self.queuedTasks()
        responders = self.responding + self._parked
        self.active, self.queue, self.pending = [], [], None
        self.responding, self.answering, self._parked = [], None, []
        self._held = self._heldResponse = None
        self._processing = False
        for task in tasks:
            task.failed(self.core, self.ikeSA, error)
        for task in responders:
            task.abandoned(self.core, self.ikeSA)

    def abandonResponders(self):
        """
        The peer never sent the next round of an exchange we answered (the
        C{responder} timer, armed for L{CoreSettings.halfOpenTimeout} when
        a responder task answered L{MORE}): its tasks free their state (RFC
        9370 2.2.3 lets the responder forget an IKE_FOLLOWUP_KE exchange
        after a while), and a late round is answered STATE_NOT_FOUND.
        """
        if self.answering is not None:
            # A round of it arrived and waits for the datapath: not
            # abandoned; only the exchanges set aside meanwhile are.
            waiting, self._parked = self._parked, []
        else:
            waiting = self.responding + self._parked
            self.responding, self._parked = [], []
        if waiting:
            self._log.info("{ikeSA}: the peer left {n} exchange(s) unfinished; their state is freed",
                           ikeSA=self.ikeSA, n=len(waiting))
        for task in waiting:
            task.abandoned(self.core, self.ikeSA)

    # Responder

    def requestReceived(self, message, local, remote):
        """
        Where a request of the peer stands with the window: C{"new"} (open
        and answer it), C{"cached"} (a retransmission, answered from the
        cache) or C{"drop"}.
        """
        messageId = message.messageId
        last = self.lastResponse
        if last is not None and messageId == last.messageId:
            if message.isFragment and message.sealedPayload.fragmentNumber != 1:
                return "drop"
            if requestHash(message.rawData) != last.requestHash:
                # Before any integrity check: anyone who sees the SPIs can
                # send these, so they stay out of the info log.
                self._log.debug("{ikeSA}: another request with Message ID {mid} than the one answered; dropped",
                                ikeSA=self.ikeSA, mid=messageId)
                return "drop"
            if not self.core.responseCache.mayResend(last):
                self._log.debug("{ikeSA}: request {mid} retransmitted too often; dropped", ikeSA=self.ikeSA, mid=messageId)
                return "drop"
            self._log.debug("{ikeSA}: retransmitted request {mid}, resending our response", ikeSA=self.ikeSA, mid=messageId)
            self.core.counters.count("ikes_retransmit_response")
            self.core.sendAll(self.ikeSA, last.datagrams, local, remote)
            return "cached"
        if self.answering is not None and messageId == self.answering.messageId:
            self._log.debug("{ikeSA}: request {mid} is still being answered", ikeSA=self.ikeSA, mid=messageId)
            self.core.counters.count("ikes_msg_rcvd_busy")
            return "drop"
        if messageId != self.nextPeerRequestId:
            self._log.debug("{ikeSA}: request with Message ID {mid} dropped (expected {expected})",
                            ikeSA=self.ikeSA, mid=messageId, expected=self.nextPeerRequestId)
            return "drop"
        return "new"

    def firstFragmentOpened(self, message):
        """
        The first fragment of a request passed its integrity check: its
        hash keys the response cache (RFC 7383 2.6.1). A forged first
        fragment never gets here, so it cannot take the real one's place.
        """
        self._firstFragments = {message.messageId: requestHash(message.rawData)}

    def hashOf(self, message):
        """
        The L{requestHash} of a complete request C{message}.
        """
        if message.isFragment:
            return self._firstFragments.pop(message.messageId, requestHash(message.rawData))
        return requestHash(message.rawData)

    def answerError(self, message, hashValue, notify, local, remote):
        """
        Answer the request C{message} with one error Notify (its payloads
        could not be read, or its exchange type is unsupported).
        """
        self.nextPeerRequestId = message.messageId + 1
        self.respond(message.exchangeType, message.messageId, hashValue, [notify], local, remote)

    def respond(self, exchangeType, messageId, hashValue, payloads, local, remote):
        """
        Send a response (RFC 7296 2.11: to the address and port the request
        came from, from the address and port it came to) and keep it for a
        retransmission of that request.
        """
        datagrams = self.core.encode(self.ikeSA, exchangeType, payloads, messageId, response=True)
        self.core.counters.notifiesSent(payloads)
        cached = CachedResponse(messageId, hashValue, datagrams)
        self.core.responseCache.keep(self.ikeSA, self.lastResponse, cached)
        self.lastResponse = cached
        self.core.sendAll(self.ikeSA, datagrams, local, remote)
        return datagrams

    def handleRequest(self, message, hashValue, payloads, local, remote, tasks=None):
        """
        Answer a request that opened: the responder tasks of its exchange
        type (or C{tasks}) read it, then (once none waits) build the
        response.
        """
        core, ikeSA = self.core, self.ikeSA
        self.nextPeerRequestId = message.messageId + 1
        exchangeType = message.exchangeType
        if tasks is None:
            tasks = [task for task in self.responding if task.exchangeType == exchangeType]
        if not tasks:
            tasks = core.responderTasks(ikeSA, exchangeType)
        if tasks is None:
            self._log.info("{ikeSA}: unsupported exchange {exchange}", ikeSA=ikeSA, exchange=nameOf(ExchangeType, exchangeType))
            self.respond(exchangeType, message.messageId, hashValue, [Notify(NotifyType.INVALID_SYNTAX)], local, remote)
            return
        # Responder tasks waiting for a later round of another exchange (an
        # IKE_FOLLOWUP_KE, RFC 9370 2.2.3) outlive this request.
        self._parked = [task for task in self.responding if task not in tasks]
        self.responding = tasks
        self.answering = _Answering(exchangeType, message.messageId, hashValue, local, remote)
        for task in tasks:
            task.refusal = None
        self._processRequest(message, payloads, tasks)

    def _processRequest(self, message, payloads, tasks):
        """
        The responder tasks C{tasks} read the request in turn; a task left
        L{holding} (the peer's certificate status is not known yet) stops
        the round until L{resume}, before the tasks after it read anything.
        """
        core, ikeSA = self.core, self.ikeSA
        for index, task in enumerate(tasks):
            try:
                task.processR(core, ikeSA, message, payloads)
            except RemoteProtocolError as e:
                self._log.info("{ikeSA}: {exchange} request refused: {error}", ikeSA=ikeSA,
                               exchange=nameOf(ExchangeType, message.exchangeType), error=e)
                task.refusal = e
                if task.essential:
                    break
            except Exception:
                task.refusal = self._internalError(task)
                if task.essential:
                    break
            if task.holding:
                self._held = (message, payloads, tasks[index + 1:])
                return
        if not any(task.waiting for task in self.responding):
            self._answer()

    def _internalError(self, task):
        """
        A responder task failed on our side (a bug): logged with its
        traceback, and the request answered INVALID_SYNTAX all the same, so
        that the Message ID window moves on instead of sticking for good.
        """
        self._log.failure("{ikeSA}: internal error in {task}", ikeSA=self.ikeSA, task=task)
        return RemoteProtocolError("internal error in %r" % (task,), NotifyType.INVALID_SYNTAX)

    def _answer(self):
        core, ikeSA = self.core, self.ikeSA
        answering, self.answering = self.answering, None
        tasks = self.responding
        essential = next((task.refusal for task in tasks if task.essential and task.refusal is not None), None)
        payloads = []
        if essential is not None:
            if essential.notify is not None:
                payloads = [Notify(essential.notify, data=essential.notifyData)]
            for task in tasks:
                task.status = DONE
        else:
            for task in tasks:
                if task.refusal is not None:
                    if task.refusal.notify is not None:
                        payloads.append(Notify(task.refusal.notify, data=task.refusal.notifyData))
                    task.status = DONE
                    continue
                try:
                    task.status = task.buildR(core, ikeSA, payloads)
                except Exception as e:
                    if not isinstance(e, RemoteProtocolError):
                        e = self._internalError(task)
                    self._log.info("{ikeSA}: {error}", ikeSA=ikeSA, error=e)
                    if e.notify is not None:
                        payloads.append(Notify(e.notify, data=e.notifyData))
                    task.status = DONE
        datagrams = self.respond(answering.exchangeType, answering.messageId, answering.requestHash, payloads,
                                 answering.local, answering.remote)
        for task in tasks:
            task.sent(core, ikeSA, datagrams)
        self.responding = [task for task in tasks if task.status == MORE] + self._parked
        self._parked = []
        if any(task.status == MORE for task in tasks):
            # Each round of it gets the peer the same time to send the next.
            core.emit(SetTimer(TimerKey.responder(ikeSA.localSPI), core.settings.halfOpenTimeout))
        elif not self.responding:
            core.emit(CancelTimer(TimerKey.responder(ikeSA.localSPI)))
        reason = next((task.closeAfterResponse for task in tasks if task.closeAfterResponse), None)
        if reason:
            core.destroy(ikeSA, reason)
            return
        for task in tasks:
            if task.status == DONE:
                task.done(core, ikeSA)
        # Our own requests may have waited for this one (RFC 7296 2.2:
        # each side's window is independent, but an exchange we queued
        # while answering starts now).
        self.initiate()

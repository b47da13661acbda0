# -*- test-case-name: tests.test_core_liveness -*-
"""
Dead peer detection (RFC 7296 1.4, 2.4), as iked's C{dpd_check_interval}.

Every established IKE SA has one C{dpd} timer. It runs for
C{dpd_check_interval} plus a jitter of up to C{CoreSettings.dpdJitter} of
it, drawn from the IKE SA's SPI and the time (no random bytes used): IKE
SAs established in the same second (a gateway's restart, a benchmark) are
spread, not all checked together on every interval - at 100,000 idle IKE
SAs and the default 60 s, the checks are about 1,500 exchanges per second
on average, and a burst of them would be a flood to a busy peer. When it
fires and the peer
has sent nothing authenticated for C{dpd_check_interval} seconds, the
datapath is asked what it counted on the IKE SA's inbound Child SAs
(L{QuerySAUsage}): packets received since the last check are traffic from
the peer too, and the timer is armed again. Otherwise a liveness check (an
empty INFORMATIONAL, L{LivenessTask}) is queued; it is retransmitted on the
schedule of RFC 7296 2.1 and, after the last transmission, the task
manager deletes the IKE SA (its Child SAs leave the datapath) and an active
policy is initiated again (L{IKECore._keptUp}).
"""

import weakref

from twisted.logger import Logger

from ikedtx.core.actions import CancelTimer, QuerySAUsage, SetTimer
from ikedtx.core.retransmit import jitterOf
from ikedtx.core.states import ChildState
from ikedtx.core.tasks.liveness import LivenessTask
from ikedtx.core.timers import TimerKey


class DeadPeerDetection:
    """
    The C{dpd} timers of one core.

    @ivar core: the L{IKECore}.
    """

    _log = Logger()

    def __init__(self, core):
        self.core = core
        self._tokens = 0
        self._queries = {}
        # The inbound packets counted at the last check, by Child SA.
        self._packets = weakref.WeakKeyDictionary()

    @property
    def interval(self):
        return self.core.config.settings.dpdCheckInterval

    def start(self, ikeSA, delay=None):
        """
        Arm C{ikeSA}'s timer (for the full interval unless C{delay}, plus
        the jitter); DPD off (an interval of 0) arms nothing.
        """
        interval = self.interval
        if interval > 0:
            if delay is None:
                delay = interval
            jitter = self.core.settings.dpdJitter
            if jitter:
                delay += interval * jitter * jitterOf(ikeSA.localSPI, int(self.core.now()))
            self.core.emit(SetTimer(TimerKey.dpd(ikeSA.localSPI), delay))

    def reloaded(self):
        """
        The configuration was reloaded: a changed C{dpd_check_interval}
        applies to the IKE SAs already up (0 stops their checks).
        """
        interval = self.interval
        for ikeSA in self.core.ikeSAs.values():
            if ikeSA.isEstablished:
                if interval > 0:
                    self.start(ikeSA)
                else:
                    self.core.emit(CancelTimer(TimerKey.dpd(ikeSA.localSPI)))

    def timerExpired(self, spi):
        core = self.core
        ikeSA = core.ikeSAs.get(spi)
        if ikeSA is None or not ikeSA.isEstablished or self.interval <= 0:
            return
        idle = core.now() - ikeSA.lastActivity
        if idle < self.interval:
            self.start(ikeSA, self.interval - idle)
            return
        if ikeSA.taskManager.busy:
            # A request of ours is out: its retransmissions are the check.
            self.start(ikeSA)
            return
        inbound = [(child, sa) for child in ikeSA.children
                   if child.state == ChildState.INSTALLED and child.kernelRecords is not None
                   for sa in child.kernelRecords[0] if sa.inbound]
        if not inbound:
            self.check(ikeSA, idle)
            return
        # The next check is armed now: a datapath that never answers the
        # query cannot stop DPD (an earlier unanswered query is forgotten).
        self.start(ikeSA)
        for token in [t for t, query in self._queries.items() if query[0] is ikeSA]:
            del self._queries[token]
        self._tokens += 1
        self._queries[self._tokens] = (ikeSA, inbound, idle)
        core.emit(QuerySAUsage(self._tokens, tuple(sa for _, sa in inbound)))

    def usageReported(self, token, usages):
        """
        The datapath's answer to a L{QuerySAUsage}.
        """
        query = self._queries.pop(token, None)
        if query is None:
            return
        ikeSA, inbound, idle = query
        if not ikeSA.isEstablished or self.core.ikeSAs.get(ikeSA.localSPI) is not ikeSA:
            return
        traffic = False
        for (child, sa), usage in zip(inbound, usages):
            if usage is None:
                continue
            if usage.packets > self._packets.get(child, 0):
                traffic = True
            self._packets[child] = usage.packets
        if traffic:
            self._log.debug("{ikeSA}: ESP from the peer counts as liveness", ikeSA=ikeSA)
            self.start(ikeSA)
        else:
            self.check(ikeSA, idle)

    def check(self, ikeSA, idle):
        """
        Queue a liveness check of C{ikeSA}'s peer.
        """
        self._log.info("{ikeSA}: nothing from the peer for {idle:.0f}s; checking liveness", ikeSA=ikeSA, idle=idle)
        ikeSA.taskManager.queueExchange([LivenessTask(True)])
        self.core.counters.count("ikes_dpd_sent")
        self.start(ikeSA)

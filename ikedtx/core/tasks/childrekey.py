# -*- test-case-name: tests.test_core_rekey -*-
"""
Rekeying a Child SA (RFC 7296 1.3.3, 2.8), both roles.

As initiator, L{ChildRekeyTask} is a L{ChildCreateTask} with a REKEY_SA
Notify naming the old Child SA's inbound SPI; once the new Child SA is
installed (the datapath confirmed it), the old one is deleted with an
INFORMATIONAL exchange, so that traffic never finds no SA. As responder,
L{ChildCreateTask} answers such a request through L{rekeyedChild}: the new
Child SA is installed next to the old one, which goes when the initiator's
Delete arrives; if none has come once the initiator would have given up
retransmitting it, the responder deletes the old one itself
(L{peerNeverDeleted}), as it does an IKE SA the peer rekeyed.

Collisions (2.8.1): both peers rekey the same Child SA at once. Each one
answers the other's request, so each ends with two new Child SAs; the one
made by the exchange holding the lowest of the four nonces is redundant and
is deleted by the peer that initiated that exchange, the other peer deletes
the old one. A rekey of a Child SA we are deleting, or on an IKE SA that is
closing or was rekeyed, is answered TEMPORARY_FAILURE (2.25); one of a
Child SA we do not have, CHILD_SA_NOT_FOUND. An initiator told
TEMPORARY_FAILURE tries again after a short random delay; told
CHILD_SA_NOT_FOUND, it makes a new Child SA instead.
"""

import struct

from twisted.logger import Logger

from ikedtx.core import lifetimes
from ikedtx.core.actions import ChildSARekeyed, SetTimer
from ikedtx.core.errors import NegotiationFailed, RemoteProtocolError
from ikedtx.core.states import ChildEvent, ChildState
from ikedtx.core.tasks.child import ChildCreateTask
from ikedtx.core.tasks.common import findNotify
from ikedtx.core.tasks.delete import ChildDeleteTask
from ikedtx.core.timers import TimerKey
from ikedtx.wire.constants import NotifyType, TransformType

_log = Logger()


def screenRequest(core, ikeSA):
    """
    As responder: refuse a CREATE_CHILD_SA on an IKE SA that is closing or
    was replaced by a rekey with TEMPORARY_FAILURE (RFC 7296 2.25.2).
    """
    if ikeSA.rekeyedBy is not None or (ikeSA.established is not None and not ikeSA.canSend):
        raise RemoteProtocolError("%s is being deleted or was rekeyed" % (ikeSA,), NotifyType.TEMPORARY_FAILURE)


def rekeyedChild(core, ikeSA, notify):
    """
    As responder: the Child SA a REKEY_SA Notify names (by our outbound
    SPI, the peer's inbound one).

    @raise RemoteProtocolError: CHILD_SA_NOT_FOUND when we have no such
        Child SA, TEMPORARY_FAILURE when it is being deleted or was
        rekeyed already (RFC 7296 2.25.1).
    """
    spi = struct.unpack("!I", bytes(notify.spi))[0] if len(notify.spi) == 4 else None
    child = next((c for c in ikeSA.children if c.spiOut == spi and c.protocol == notify.protocolId), None)
    if child is None or child.state in (ChildState.LARVAL, ChildState.INSTALLING):
        raise RemoteProtocolError("REKEY_SA for unknown Child SA", NotifyType.CHILD_SA_NOT_FOUND)
    if child.state != ChildState.INSTALLED or child.rekeyedBy is not None:
        raise RemoteProtocolError("REKEY_SA for Child SA %s being deleted or already rekeyed" % (child,),
                                  NotifyType.TEMPORARY_FAILURE)
    return child


def answered(core, ikeSA, old, new):
    """
    As responder: we made C{new} to replace C{old}; C{old} stays until the
    initiator deletes it (or, in a collision, until L{ChildRekeyTask}
    settles which one goes).
    """
    _deleteStale(core, ikeSA, old)
    core.emit(SetTimer(TimerKey.childRekeyed(old.reqid, old.spiIn), core.settings.retransmit.total()))
    pending = ikeSA.taskManager.pending
    if old.rekeying is not None and pending is not None and old.rekeying in pending.tasks:
        # Our own rekey of it is in flight: a collision, settled when our
        # response arrives.
        old.peerRekey = new
    else:
        old.rekeyedBy = new
        rekeyed(core, ikeSA, old, new)
    _log.info("{ikeSA}: Child SA {old} rekeyed by the peer as {new}", ikeSA=ikeSA, old=old, new=new)


def rekeyed(core, ikeSA, old, new):
    """
    Tell the shell (and the counters) that C{new} replaces C{old}.
    """
    core.counters.count("ikedtx_csa_rekeyed")
    core.emit(ChildSARekeyed(new.reqid, old.spiIn, old.spiOut, new.spiIn, new.spiOut, ikeSA.policy.name, ikeSA.remote))


def _deleteStale(core, ikeSA, current):
    """
    Delete the predecessors of C{current} (same reqid, rekeyed already)
    that the peer, which rekeyed them, never deleted: by the time
    C{current} is rekeyed in turn they are of no use.
    """
    for other in list(ikeSA.children):
        if (other is not current and other.reqid == current.reqid and other.rekeyedBy is not None
                and other.state == ChildState.INSTALLED):
            _log.info("{ikeSA}: the peer never deleted the rekeyed Child SA {other}; deleting it", ikeSA=ikeSA,
                      other=other)
            other.handle(ChildEvent.DELETE)
            ikeSA.taskManager.queueExchange([ChildDeleteTask(True, other)])


def releaseOutbound(core, ikeSA, old):
    """
    C{old} is going: the outbound SA of the Child SA that replaced it,
    held back since we answered the rekey, goes to the datapath first, so
    that our traffic moves to it before the old SA disappears.
    """
    from ikedtx.core.actions import InstallChildSA

    for new in (old.rekeyedBy, old.peerRekey):
        if new is None or not new.heldOutbound or new.state not in (ChildState.INSTALLING, ChildState.INSTALLED):
            continue
        if new.rekeyedBy is not None:
            # The peer's redundant SA of a collision we won.
            continue
        held, new.heldOutbound = tuple(new.heldOutbound), []
        sas, flows = new.kernelRecords
        new.kernelRecords = (sas + held, flows)
        core.emit(InstallChildSA(new.reqid, held, ()))


def peerNeverDeleted(core, ikeSA, old):
    """
    The peer rekeyed C{old} and has not deleted it within the time it
    retransmits a request: our traffic moves to the Child SA that replaced
    it, and we delete C{old} ourselves.
    """
    if old is None or old.rekeyedBy is None or old.state != ChildState.INSTALLED or not ikeSA.isEstablished:
        return
    _log.info("{ikeSA}: the peer never deleted the rekeyed Child SA {old}; deleting it", ikeSA=ikeSA, old=old)
    releaseOutbound(core, ikeSA, old)
    old.handle(ChildEvent.DELETE)
    ikeSA.taskManager.queueExchange([ChildDeleteTask(True, old)])


def softExpired(core, ikeSA, child):
    """
    C{child} reached its soft lifetime (our timer or the datapath): rekey
    it, unless that is under way or done.
    """
    if child is None or core.passive:
        return
    if child.state != ChildState.INSTALLED or child.rekeying is not None or child.rekeyedBy is not None:
        return
    if not ikeSA.isEstablished or ikeSA.rekeyedBy is not None:
        return
    _deleteStale(core, ikeSA, child)
    _log.info("{ikeSA}: Child SA {child} reached its soft lifetime; rekeying it", ikeSA=ikeSA, child=child)
    task = ChildRekeyTask(child)
    child.rekeying = task
    ikeSA.taskManager.queueExchange([task])


class ChildRekeyTask(ChildCreateTask):
    """
    As initiator: replace the Child SA C{old} with a new one (RFC 7296
    1.3.3).

    @ivar old: the L{ChildSA} being rekeyed.
    """

    _log = Logger()

    def __init__(self, old, requestId=None):
        ChildCreateTask.__init__(self, True, requestId, rekeying=old)
        self.old = old

    def prepareI(self, core, ikeSA):
        old = self.old
        if old not in ikeSA.children or old.state != ChildState.INSTALLED or old.rekeyedBy is not None:
            raise NegotiationFailed("Child SA %s is gone or rekeyed already" % (old,))
        # RFC 7296 1.3.3: keep the Child SA's PFS group when the policy
        # still offers it.
        if old.pfsGroup:
            offered = {t.id for p in ikeSA.policy.childProposals for t in p.transforms if t.type == TransformType.DH}
            if old.pfsGroup in offered:
                self.group = old.pfsGroup
        ChildCreateTask.prepareI(self, core, ikeSA)

    def buildI(self, core, ikeSA, payloads):
        if self.old.rekeyedBy is not None or self.old.state != ChildState.INSTALLED:
            raise NegotiationFailed("Child SA %s was rekeyed by the peer or is going" % (self.old,))
        ChildCreateTask.buildI(self, core, ikeSA, payloads)
        # The new Child SA keeps the reqid: the datapath's flows stay, and
        # its newest SA of that reqid carries the traffic.
        self.child.reqid = self.old.reqid

    def processI(self, core, ikeSA, message, payloads, local, remote):
        if findNotify(payloads, NotifyType.TEMPORARY_FAILURE) is not None:
            delay = lifetimes.retryDelay(core)
            self._log.info("{ikeSA}: peer cannot rekey Child SA {old} now; again in {delay:.1f}s", ikeSA=ikeSA,
                           old=self.old, delay=delay)
            self.old.rekeying = None
            if self.old in ikeSA.children and self.old.state == ChildState.INSTALLED:
                lifetimes.retrySoft(core, ikeSA, self.old, delay)
            raise NegotiationFailed("peer answered TEMPORARY_FAILURE to the rekey")
        if findNotify(payloads, NotifyType.CHILD_SA_NOT_FOUND) is not None:
            self._log.info("{ikeSA}: peer has no Child SA {old}; creating a new one", ikeSA=ikeSA, old=self.old)
            self.old.rekeying = None
            core.removeChild(ikeSA, self.old)
            ikeSA.taskManager.queueExchange([ChildCreateTask(True)])
            raise NegotiationFailed("peer answered CHILD_SA_NOT_FOUND to the rekey")
        return ChildCreateTask.processI(self, core, ikeSA, message, payloads, local, remote)

    def childUp(self, core, ikeSA, child):
        """
        The new Child SA is installed: now the old one (or, having lost a
        collision, our redundant new one) is deleted.
        """
        old = self.old
        old.rekeying = None
        peerRekey = old.peerRekey
        redundant = old
        if peerRekey is not None and peerRekey in ikeSA.children:
            # RFC 7296 2.8.1: the SA made with the lowest of the four
            # nonces is deleted by the peer that made it.
            if min(child.nonces) < min(peerRekey.nonces):
                self._log.info("{ikeSA}: Child SA rekey collision lost; deleting our {child}", ikeSA=ikeSA, child=child)
                redundant = child
                old.rekeyedBy = peerRekey
            else:
                self._log.info("{ikeSA}: Child SA rekey collision won; the peer deletes its {other}", ikeSA=ikeSA,
                               other=peerRekey)
                old.rekeyedBy = child
                # Superseded by ours: never rekeyed nor given our traffic,
                # and deleted by us if the peer has not deleted it within
                # the time it retransmits a request (L{peerNeverDeleted}).
                peerRekey.rekeyedBy = child
                core.emit(SetTimer(TimerKey.childRekeyed(peerRekey.reqid, peerRekey.spiIn),
                                   core.settings.retransmit.total()))
        else:
            old.rekeyedBy = child
        self._log.info("{ikeSA}: Child SA {old} rekeyed as {new}", ikeSA=ikeSA, old=old, new=child)
        rekeyed(core, ikeSA, old, old.rekeyedBy)
        if redundant is child:
            self._deleteChild(core, ikeSA, child)
            self.succeeded(core, peerRekey)
            return
        self._deleteChild(core, ikeSA, old)
        self.succeeded(core, child)

    def _deleteChild(self, core, ikeSA, child):
        if child not in ikeSA.children:
            return
        if child.state == ChildState.INSTALLED and ikeSA.isEstablished:
            child.handle(ChildEvent.DELETE)
            ikeSA.taskManager.queueExchange([ChildDeleteTask(True, child)])
        elif child.state != ChildState.DELETING:
            core.removeChild(ikeSA, child)

    def failed(self, core, ikeSA, error):
        old = self.old
        if old.rekeying is self:
            old.rekeying = None
        if old.peerRekey is not None and old.rekeyedBy is None:
            old.rekeyedBy = old.peerRekey
        ChildCreateTask.failed(self, core, ikeSA, error)

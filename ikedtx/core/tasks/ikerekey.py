# -*- test-case-name: tests.test_core_rekey -*-
"""
Rekeying the IKE SA (RFC 7296 1.3.2, 2.18), both roles.

A CREATE_CHILD_SA whose SA payload proposes protocol IKE (with the new
SPI of its sender), a Nonce and a KE makes a new IKE SA: SKEYSEED = prf(SK_d
(old), g^ir (new) | Ni | Nr) with the old SA's PRF, SK_* with the new SA's.
The peer that started the rekey is the new SA's original initiator; both
Message ID windows start again at zero. Every Child SA moves to the new IKE
SA with its timers, and so do the exchanges queued on the old one. The
initiator then deletes the old IKE SA; the responder keeps it (answering
only retransmissions, and TEMPORARY_FAILURE to anything new) until that
Delete arrives, or deletes it itself if it never does.

A rekey request is refused with TEMPORARY_FAILURE while the IKE SA is
closing, was rekeyed, or has a Child SA exchange of ours in flight (2.25.2);
before IKE_AUTH completed it is INVALID_SYNTAX, as any CREATE_CHILD_SA.

Collisions (2.8.2): when both peers rekey the IKE SA at once, each answers
the other's request; the new IKE SA made with the lowest of the four nonces
is deleted by the peer that initiated it, the other survives and the old
one is deleted by the winner.

RFC 9370 additional key exchanges (ADDKE transforms in the ikesa proposal):
the CREATE_CHILD_SA response carries ADDITIONAL_KEY_EXCHANGE, one
IKE_FOLLOWUP_KE exchange per additional key exchange follows on the old IKE
SA (L{ikedtx.core.tasks.followup.Followup}), and the new IKE SA exists only
after the last one, with SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1)
| ... | SK(n)) (2.2.4). A round refused (TEMPORARY_FAILURE when the old IKE
SA was rekeyed or is closing meanwhile, STATE_NOT_FOUND) ends the rekey
with nothing made.
"""

from twisted.logger import Logger

from ikedtx.core import cryptoglue, lifetimes
from ikedtx.core.actions import IKESARekeyed, IKESAUp, SetTimer
from ikedtx.core.errors import NegotiationFailed, NoProposalChosen, RemoteProtocolError
from ikedtx.core.proposals import accept, select
from ikedtx.core.sa import IKESA
from ikedtx.core.states import ChildState, IKEEvent
from ikedtx.core.tasks import DONE, MORE, PRIORITY_REKEY, Task
from ikedtx.core.tasks.childrekey import screenRequest
from ikedtx.core.tasks.common import (
    ZERO_SPI, checkNonce, checkResponseNonce, errorNotify, findNotify, first, offersFromConfig, offersFromWire,
    require, requireInResponse, saPayload, supported)
from ikedtx.core.tasks import followup as _followup
from ikedtx.core.tasks.delete import IKEDeleteTask
from ikedtx.core.timers import TimerKey
from ikedtx.crypto.errors import InvalidKeyExchange
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType, ProtocolId, TransformType, nameOf
from ikedtx.wire.payloads import KeyExchange, Nonce, Notify, SecurityAssociation

_log = Logger()


def rekeyTime(core, ikeSA):
    """
    C{ikeSA} reached its (jittered) C{ikelifetime}: rekey it, unless that is
    under way or done.
    """
    if ikeSA is None or core.passive or not ikeSA.isEstablished:
        return
    if ikeSA.rekeying is not None or ikeSA.rekeyedBy is not None:
        return
    _log.info("{ikeSA}: rekeying the IKE SA", ikeSA=ikeSA)
    task = IKERekeyTask(True)
    ikeSA.rekeying = task
    ikeSA.taskManager.queueExchange([task])


def _childExchangeInFlight(ikeSA):
    """
    Whether one of our own Child SA exchanges is in flight, or a Child SA
    is half made (its SAs would be left on the old IKE SA).
    """
    pending = ikeSA.taskManager.pending
    if pending is not None and not any(isinstance(task, IKERekeyTask) for task in pending.tasks):
        return True
    return any(child.state in (ChildState.LARVAL, ChildState.INSTALLING) for child in ikeSA.children)


def switch(core, old, new):
    """
    C{new} replaces C{old}: it takes C{old}'s peer, identities and
    capabilities, its Child SAs (with their timers) and its queued
    exchanges, and is registered and reported up.
    """
    from ikedtx.core.taskmanager import TaskManager

    new.taskManager = TaskManager(core, new)
    for name in ("natLocal", "natRemote", "nattEnabled", "localId", "peerId", "peerCredential",
                 "peerFragmentation", "peerSignatureHashes", "peerMobike", "mobikeInitiator", "certreqAuthorities",
                 "keepUp", "eapIdentity"):
        setattr(new, name, getattr(old, name))
    # A MOBIKE update waiting for a way to the peer (mobikeupdate) waits on.
    if getattr(old, "localLost", False):
        new.localLost = True
    old.keepUp = False
    now = core.now()
    new.handle(IKEEvent.REKEYED)
    new.established = new.lastActivity = now
    old.rekeyedBy = new
    old.rekeying = None
    core.ikeSAs[new.localSPI] = new
    core.saIndex.registered(new)
    new.children, old.children = old.children, []
    new.peerVirtualIPs, new.localVirtualIPs, new.peerConfig = old.peerVirtualIPs, old.localVirtualIPs, old.peerConfig
    old.peerVirtualIPs, old.localVirtualIPs, old.peerConfig = [], [], []
    core.pools.transfer(old, new)
    for child in new.children:
        # The engine's index of installs names the IKE SA of each Child SA.
        entry = core._children.get(child.reqid)
        if entry is not None:
            core._children[child.reqid] = (new, entry[1], entry[2])
        lifetimes.move(core, old, new, child)
    queued, old.taskManager.queue = old.taskManager.queue, []
    # Only exchanges not started yet move (what a moved task asks the
    # datapath for is asked on the new IKE SA); a queued rekey of the old
    # IKE SA has nothing left to do.
    for entry in queued:
        stale = [task for task in entry.tasks if isinstance(task, IKERekeyTask)]
        for task in stale:
            task.failed(core, old, NegotiationFailed("%s was rekeyed" % (old,)))
        if len(stale) < len(entry.tasks):
            entry.tasks = [task for task in entry.tasks if task not in stale]
            new.taskManager.queue.append(entry)
    core.emit(IKESAUp(new.spiI, new.spiR, new.policy.name, new.local, new.remote, str(new.peerId)))
    core.emit(IKESARekeyed(old.spiI, old.spiR, new.spiI, new.spiR, new.policy.name, new.remote))
    core.counters.count("ikes_sa_rekeyed")
    if new.natLocal and new.nattEnabled and core.settings.natKeepalive:
        core.emit(SetTimer(TimerKey.keepalive(new.localSPI), core.settings.natKeepalive))
    lifetimes.armIKE(core, new)
    core.dpd.start(new)
    _log.info("{old}: rekeyed as {new}, {n} Child SA(s) moved", old=old, new=new, n=len(new.children))
    new.taskManager.initiate()


def _newIKESA(core, old, initiator, spiI, spiR, chosen, nonceI, nonceR, shared):
    new = IKESA(initiator, spiI, spiR, old.policy, old.local, old.remote, core.now())
    core.counters.count("ikes_sa_created")
    new.proposal = chosen
    new.nonceI, new.nonceR = nonceI, nonceR
    cryptoglue.deriveRekeyedIKEKeys(core, old, new, shared)
    return new


def _lowestNonce(ikeSA):
    return min(ikeSA.nonceI, ikeSA.nonceR)


class IKERekeyTask(Task):
    """
    The IKE SA rekey, both roles.

    @ivar spi: our SPI of the new IKE SA.
    @ivar nonce: our nonce.
    @ivar group: the key exchange (initiator).
    @ivar keyExchange: our key exchange in progress (initiator).
    @ivar offers: our L{Offer}s (initiator).
    @ivar restarts: INVALID_KE_PAYLOAD retries so far.
    @ivar skip: as responder, the request is no IKE SA rekey (a Child SA's,
        answered by L{ChildCreateTask}).
    @ivar chosen: as responder, the chosen proposal.
    @ivar peerNonce: as responder, the initiator's nonce.
    @ivar ourKe: as responder, our KE data.
    @ivar shared: as responder, the shared secret.
    @ivar new: the new L{IKESA}, once made.
    @ivar followup: the L{ikedtx.core.tasks.followup.Followup} of its RFC
        9370 additional key exchanges, or L{None}.
    @ivar nonces: C{(Ni, Nr)} of the CREATE_CHILD_SA, while the
        IKE_FOLLOWUP_KE rounds go on.
    """

    exchangeType = ExchangeType.CREATE_CHILD_SA
    priority = PRIORITY_REKEY
    _log = Logger()

    def __init__(self, initiator, requestId=None):
        Task.__init__(self, initiator, requestId)
        self.spi = None
        self.nonce = None
        self.group = None
        self.keyExchange = None
        self.offers = ()
        self.restarts = 0
        self.skip = False
        self.chosen = None
        self.peerNonce = None
        self.ourKe = None
        self.shared = None
        self.new = None
        self.followup = None
        self.nonces = None

    # Initiator

    def prepareI(self, core, ikeSA):
        if not ikeSA.isEstablished or ikeSA.rekeyedBy is not None:
            raise NegotiationFailed("%s is not established" % (ikeSA,))
        ikeSA.rekeying = self

    def buildI(self, core, ikeSA, payloads):
        if self.followup is not None:
            return self.followup.buildI(core, payloads)
        if ikeSA.rekeyedBy is not None:
            raise NegotiationFailed("%s was rekeyed by the peer" % (ikeSA,))
        if self.spi is None:
            self.spi = core.newIKESPI()
        self.offers = offersFromConfig(ikeSA.policy.ikeProposals, self.spi)
        offered = [t.id for o in self.offers for t in o.transforms if t.type == TransformType.DH]
        if self.group is None:
            # RFC 7296 1.3.2: the group of the IKE SA being rekeyed, if
            # still offered, is the best guess.
            current = ikeSA.proposal.dhGroup
            self.group = current if current in offered else offered[0]
        self._wipe()
        self.keyExchange = cryptoglue.keyExchangeMethod(self.group).generate(core.randomBytes)
        self.nonce = core.randomBytes(core.settings.nonceSize)
        payloads += [saPayload(self.offers), Nonce(self.nonce), KeyExchange(self.group, self.keyExchange.publicData)]

    def processI(self, core, ikeSA, message, payloads, local, remote):
        if self.followup is not None:
            if not self.followup.processI(payloads):
                return MORE
            secrets, self.followup.secrets = self.followup.secrets, []
            return self._made(core, ikeSA, self.chosen, self.nonces[1], secrets)
        invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD)
        if invalidKe is not None:
            offered = {t.id for o in self.offers for t in o.transforms if t.type == TransformType.DH}
            group = invalidKe.group
            self.restarts += 1
            if group in offered and group != self.group and self.restarts <= core.settings.maxInitRetries:
                self.group = group
                self._wipe()
                return MORE
            raise NoProposalChosen("responder wants IKE SA group %s" % (nameOf(DhId, group),), NotifyType.INVALID_KE_PAYLOAD)
        error = errorNotify(payloads)
        if error is not None:
            if error.notifyType == NotifyType.TEMPORARY_FAILURE:
                delay = lifetimes.retryDelay(core)
                self._log.info("{ikeSA}: peer cannot rekey the IKE SA now; again in {delay:.1f}s", ikeSA=ikeSA,
                               delay=delay)
                lifetimes.armIKE(core, ikeSA, delay)
            raise NegotiationFailed("peer refused the IKE SA rekey: %s" % (nameOf(NotifyType, error.notifyType),),
                                    error.notifyType)
        sa = requireInResponse(first(payloads, SecurityAssociation), "SA")
        ke = requireInResponse(first(payloads, KeyExchange), "KE")
        nonceR = checkResponseNonce(requireInResponse(first(payloads, Nonce), "Nonce"))
        answer = offersFromWire(sa)
        if len(answer) != 1:
            raise NoProposalChosen("responder answered the IKE SA rekey with %d proposals" % (len(answer),))
        chosen = accept(self.offers, answer[0], cryptoglue.isAead)
        if chosen is None or chosen.protocol != ProtocolId.IKE:
            raise NoProposalChosen("responder chose an IKE SA proposal we did not offer")
        if len(chosen.peerSPI) != 8 or chosen.peerSPI == ZERO_SPI:
            raise NegotiationFailed("responder's new IKE SA SPI is invalid")
        if ke.group != self.group or chosen.dhGroup != self.group:
            raise NegotiationFailed("responder's KE group %d does not match" % (ke.group,))
        try:
            shared = self.keyExchange.complete(bytes(ke.data))
        except InvalidKeyExchange as e:
            raise NegotiationFailed("responder's KE is invalid: %s" % (e,))
        self._wipe()
        if chosen.additionalKeyExchanges:
            link = _followup.linkOf(payloads)
            if link is None:
                cryptoglue.wipeSecret(shared)
                raise NegotiationFailed("additional key exchanges chosen without ADDITIONAL_KEY_EXCHANGE")
            self.followup = _followup.Followup(chosen.additionalKeyExchanges, shared, link)
            self.chosen, self.nonces = chosen, (self.nonce, nonceR)
            self.exchangeType = ExchangeType.IKE_FOLLOWUP_KE
            return MORE
        return self._made(core, ikeSA, chosen, nonceR, shared)

    def _made(self, core, ikeSA, chosen, nonceR, shared):
        """
        As initiator, all key exchanges are done: make the new IKE SA and
        switch to it (or, having lost a collision, delete it).
        """
        new = self.new = _newIKESA(core, ikeSA, True, self.spi, chosen.peerSPI, chosen, self.nonce, nonceR, shared)
        ikeSA.rekeying = None
        collided = ikeSA.rekeyedBy
        if collided is not None:
            # RFC 7296 2.8.2: we answered the peer's rekey too.
            if _lowestNonce(new) < _lowestNonce(collided):
                self._log.info("{ikeSA}: IKE SA rekey collision lost; deleting our new {new}", ikeSA=ikeSA, new=new)
                new.taskManager = _bareManager(core, new)
                new.handle(IKEEvent.REKEYED)
                core.ikeSAs[new.localSPI] = new
                core.saIndex.registered(new)
                new.taskManager.queueExchange([IKEDeleteTask(True, None, "redundant after a rekey collision")])
                return DONE
            self._log.info("{ikeSA}: IKE SA rekey collision won", ikeSA=ikeSA)
            self._takeOver(core, collided, new)
        else:
            switch(core, ikeSA, new)
        ikeSA.taskManager.queueExchange([IKEDeleteTask(True, None, "rekeyed")])
        return DONE

    def _takeOver(self, core, loser, new):
        """
        We won a collision: the peer's new IKE SA C{loser} (which holds the
        Child SAs now) is deleted by the peer; ours takes its place.
        """
        switch(core, loser, new)
        # The peer deletes it; if it never does, it goes on its own.
        core.emit(SetTimer(TimerKey.ikeLifetime(loser.localSPI), core.settings.retransmit.total()))

    def _wipe(self):
        if self.keyExchange is not None:
            self.keyExchange.wipe()
            self.keyExchange = None

    def failed(self, core, ikeSA, error):
        self._wipe()
        if self.followup is not None:
            self.followup.wipe()
        if ikeSA.rekeying is self:
            ikeSA.rekeying = None
        Task.failed(self, core, ikeSA, error)

    def abandoned(self, core, ikeSA):
        self._log.info("{ikeSA}: IKE SA rekey abandoned by the peer; its state is freed", ikeSA=ikeSA)
        if self.followup is not None:
            self.followup.wipe()
            self.followup = None
        if isinstance(self.shared, bytearray):
            self.shared[:] = bytes(len(self.shared))
        self.shared = None

    # Responder

    def processR(self, core, ikeSA, message, payloads):
        if self.followup is not None:
            if ikeSA.rekeyedBy is not None or not ikeSA.canSend:
                self.followup.wipe()
                self.followup = None
                raise RemoteProtocolError("%s was rekeyed or is closing; IKE_FOLLOWUP_KE refused" % (ikeSA,),
                                          NotifyType.TEMPORARY_FAILURE)
            return self.followup.processR(core, payloads)
        sa = first(payloads, SecurityAssociation)
        if sa is None or not any(p.protocolId == ProtocolId.IKE for p in sa.proposals):
            self.skip = True
            return
        screenRequest(core, ikeSA)
        if not ikeSA.isEstablished:
            raise RemoteProtocolError("CREATE_CHILD_SA before IKE_AUTH completed", NotifyType.INVALID_SYNTAX)
        if _childExchangeInFlight(ikeSA):
            raise RemoteProtocolError("a Child SA exchange is in flight; IKE SA rekey refused for now",
                                      NotifyType.TEMPORARY_FAILURE)
        nonceI = checkNonce(require(first(payloads, Nonce), "Nonce"))
        chosen = select(offersFromConfig(ikeSA.policy.ikeProposals), offersFromWire(sa), supported, cryptoglue.isAead)
        if chosen is None or chosen.protocol != ProtocolId.IKE or len(chosen.peerSPI) != 8 or chosen.peerSPI == ZERO_SPI:
            raise RemoteProtocolError("no acceptable IKE SA proposal to rekey %s" % (ikeSA,), NotifyType.NO_PROPOSAL_CHOSEN)
        ke = first(payloads, KeyExchange)
        if ke is None or ke.group != chosen.dhGroup:
            raise RemoteProtocolError("IKE SA rekey wants KE group %d" % (chosen.dhGroup,), NotifyType.INVALID_KE_PAYLOAD,
                                      Notify.invalidKePayload(chosen.dhGroup).data)
        try:
            self.ourKe, self.shared = cryptoglue.keyExchangeMethod(chosen.dhGroup).respond(bytes(ke.data), core.randomBytes)
        except InvalidKeyExchange as e:
            raise RemoteProtocolError("invalid KE: %s" % (e,), NotifyType.INVALID_SYNTAX)
        self.chosen = chosen
        self.peerNonce = nonceI
        self.nonce = core.randomBytes(core.settings.nonceSize)
        self.spi = core.newIKESPI()

    def buildR(self, core, ikeSA, payloads):
        if self.followup is not None:
            if not self.followup.buildR(core, payloads):
                return MORE
            secrets, self.followup.secrets = self.followup.secrets, []
            self.new = _newIKESA(core, ikeSA, False, self.chosen.peerSPI, self.spi, self.chosen, self.peerNonce,
                                 self.nonce, secrets)
            return DONE
        if self.skip or self.chosen is None:
            return DONE
        chosen = self.chosen
        payloads += [saPayload([chosen.asOffer(self.spi)]), Nonce(self.nonce), KeyExchange(chosen.dhGroup, self.ourKe)]
        if chosen.additionalKeyExchanges:
            # RFC 9370 2.2.2: the new IKE SA is made after the
            # IKE_FOLLOWUP_KE exchanges.
            self.followup = _followup.Followup(chosen.additionalKeyExchanges, self.shared,
                                               core.randomBytes(_followup.LINK_SIZE))
            self.shared = None
            payloads.append(Notify.additionalKeyExchange(self.followup.link))
            self.exchangeType = ExchangeType.IKE_FOLLOWUP_KE
            return MORE
        self.new = _newIKESA(core, ikeSA, False, chosen.peerSPI, self.spi, chosen, self.peerNonce, self.nonce,
                             self.shared)
        self.shared = None
        return DONE

    def done(self, core, ikeSA):
        if self.initiator or self.new is None:
            return
        # When our own rekey is in flight too (a collision, RFC 7296 2.8.2),
        # its response settles which new IKE SA survives; until then the
        # Child SAs live on the peer's.
        switch(core, ikeSA, self.new)
        # The initiator deletes the old IKE SA; if it never does, it goes
        # on its own.
        core.emit(SetTimer(TimerKey.ikeLifetime(ikeSA.localSPI), core.settings.retransmit.total()))


def _bareManager(core, ikeSA):
    from ikedtx.core.taskmanager import TaskManager

    return TaskManager(core, ikeSA)


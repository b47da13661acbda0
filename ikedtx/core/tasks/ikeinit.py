# -*- test-case-name: tests.test_core_exchanges -*-
"""
The IKE_SA_INIT task (RFC 7296 1.2): proposals, key exchange and nonces,
and the IKE SA keys; as initiator with the COOKIE (2.6) and
INVALID_KE_PAYLOAD (1.2) retries.

A responder screens the request before any state exists (L{screenRequest}):
whatever is refused there is answered in the clear without keeping state
(2.21.1); what passes becomes an IKE SA with responder tasks.
"""

from twisted.logger import Logger

from ikedtx.core import cryptoglue
from ikedtx.core.errors import NegotiationFailed, NoProposalChosen
from ikedtx.core.proposals import accept, select
from ikedtx.core.states import IKEEvent
from ikedtx.core.tasks import DONE, RETRY, Task
from ikedtx.core.tasks.common import (
    MAX_NONCE, MIN_NONCE, ZERO_SPI, checkResponseNonce, errorNotify, findNotify, first, offersFromConfig,
    offersFromWire, requireInResponse, saPayload, supported)
from ikedtx.crypto.errors import InvalidKeyExchange
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType, ProtocolId, TransformType, nameOf
from ikedtx.wire.payloads import KeyExchange, Nonce, Notify, SecurityAssociation


class Refusal(Exception):
    """
    An IKE_SA_INIT request answered with an error Notify and no state.

    @ivar notifyType: the Notify to answer with, or L{None} to drop.
    @ivar data: its data.
    """

    def __init__(self, why, notifyType=None, data=b""):
        Exception.__init__(self, why)
        self.notifyType = notifyType
        self.data = data


class Screened:
    """
    What a responder learnt from an acceptable IKE_SA_INIT request.
    """

    def __init__(self, policy, chosen, nonceI, ourKe, shared):
        self.policy = policy
        self.chosen = chosen
        self.nonceI = nonceI
        self.ourKe = ourKe
        self.shared = shared


def screenRequest(core, message, local, remote):
    """
    Check an IKE_SA_INIT request before keeping state for it: a policy, the
    nonce, the COOKIE when too many IKE SAs are half open (2.6), a proposal
    and its key exchange.

    @return: a L{Screened}.
    @raise Refusal: answer with its Notify (or drop, without one).
    """
    payloads = message.payloads
    policy = core.policies.lookup(local[0], remote[0])
    if policy is None:
        raise Refusal("no policy for an IKE SA from %s to %s" % (remote[0], local[0]))
    nonce = first(payloads, Nonce)
    sa = first(payloads, SecurityAssociation)
    ke = first(payloads, KeyExchange)
    if nonce is None or sa is None or ke is None:
        raise Refusal("SA, KE or Nonce missing", NotifyType.INVALID_SYNTAX)
    if not MIN_NONCE <= len(nonce.data) <= MAX_NONCE:
        raise Refusal("nonce of %d bytes" % (len(nonce.data),), NotifyType.INVALID_SYNTAX)
    nonceI = bytes(nonce.data)
    if core.halfOpenCount() >= core.settings.cookieThreshold:
        cookie = findNotify(payloads, NotifyType.COOKIE)
        if cookie is None or payloads[0] is not cookie or not core.cookieValid(bytes(cookie.data), nonceI, remote[0], message.spiI):
            raise Refusal("%d half-open IKE SAs; asking for a cookie" % (core.halfOpenCount(),), NotifyType.COOKIE,
                          core.cookieFor(nonceI, remote[0], message.spiI))
    offers = offersFromConfig(policy.ikeProposals)
    chosen = select(offers, offersFromWire(sa), supported, cryptoglue.isAead)
    if chosen is None:
        raise Refusal("policy %s" % (policy.name,), NotifyType.NO_PROPOSAL_CHOSEN)
    if ke.group != chosen.dhGroup:
        raise Refusal("peer sent %s, we want %s" % (nameOf(DhId, ke.group), nameOf(DhId, chosen.dhGroup)),
                      NotifyType.INVALID_KE_PAYLOAD, Notify.invalidKePayload(chosen.dhGroup).data)
    try:
        ourKe, shared = cryptoglue.keyExchangeMethod(chosen.dhGroup).respond(bytes(ke.data), core.randomBytes)
    except InvalidKeyExchange as e:
        raise Refusal("invalid KE: %s" % (e,), NotifyType.INVALID_SYNTAX)
    return Screened(policy, chosen, nonceI, ourKe, shared)


class IKEInitTask(Task):
    """
    IKE_SA_INIT's proposal, KE and nonces.

    @ivar group: the key exchange we send (initiator).
    @ivar restarts: how often IKE_SA_INIT was restarted (initiator).
    @ivar offers: our L{Offer}s (initiator).
    @ivar screened: the L{Screened} request (responder).
    """

    exchangeType = ExchangeType.IKE_SA_INIT
    _log = Logger()

    def __init__(self, initiator, screened=None):
        Task.__init__(self, initiator)
        self.group = None
        self.restarts = 0
        self.offers = ()
        self.screened = screened

    # Initiator

    def buildI(self, core, ikeSA, payloads):
        offers = offersFromConfig(ikeSA.policy.ikeProposals)
        if self.group is None:
            self.group = next(t.id for t in offers[0].transforms if t.type == TransformType.DH)
        if ikeSA.keyExchange is None or ikeSA.keyExchange.method.transformId != self.group:
            if ikeSA.keyExchange is not None:
                ikeSA.keyExchange.wipe()
            ikeSA.keyExchange = cryptoglue.keyExchangeMethod(self.group).generate(core.randomBytes)
        if ikeSA.nonceI is None:
            ikeSA.nonceI = core.randomBytes(core.settings.nonceSize)
        self.offers = offers
        if ikeSA.cookie is not None:
            payloads.append(Notify.cookie(ikeSA.cookie))
        payloads += [
            saPayload(offers),
            KeyExchange(self.group, ikeSA.keyExchange.publicData),
            Nonce(ikeSA.nonceI),
        ]
        ikeSA.handle(IKEEvent.INIT_SENT)

    def sent(self, core, ikeSA, datagrams):
        if self.initiator:
            ikeSA.initRequest = datagrams[0]
        else:
            ikeSA.initResponse = datagrams[0]

    def _restart(self, core, ikeSA, why):
        self.restarts += 1
        if self.restarts > core.settings.maxInitRetries:
            raise NegotiationFailed("IKE_SA_INIT restarted too often (%s)" % (why,))
        self._log.info("{ikeSA}: restarting IKE_SA_INIT ({why})", ikeSA=ikeSA, why=why)
        return RETRY

    def staleResponse(self, core, ikeSA, message, payloads):
        """
        After a restart, the COOKIE or INVALID_KE_PAYLOAD answer that caused
        it may come again (duplicated, or answering a retransmission of the
        first request): the restarted request already follows it.
        """
        if self.restarts == 0:
            return False
        cookie = findNotify(payloads, NotifyType.COOKIE)
        if cookie is not None:
            return ikeSA.cookie is not None and bytes(cookie.data) == ikeSA.cookie
        invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD)
        return invalidKe is not None and invalidKe.group == self.group

    def processI(self, core, ikeSA, message, payloads, local, remote):
        cookie = findNotify(payloads, NotifyType.COOKIE)
        if cookie is not None:
            if not 1 <= len(cookie.data) <= 64:
                raise NegotiationFailed("malformed COOKIE from the responder")
            ikeSA.cookie = bytes(cookie.data)
            return self._restart(core, ikeSA, "responder asked for a cookie")
        invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD)
        if invalidKe is not None:
            group = invalidKe.group
            offered = {t.id for o in self.offers for t in o.transforms if t.type == TransformType.DH}
            if group not in offered or group == self.group:
                raise NoProposalChosen("responder wants key exchange %s, which we did not offer" % (nameOf(DhId, group),),
                                       NotifyType.INVALID_KE_PAYLOAD)
            self.group = group
            return self._restart(core, ikeSA, "responder wants key exchange %s" % (nameOf(DhId, group),))
        error = errorNotify(payloads)
        if error is not None:
            kind = NoProposalChosen if error.notifyType == NotifyType.NO_PROPOSAL_CHOSEN else NegotiationFailed
            raise kind("responder refused IKE_SA_INIT: %s" % (nameOf(NotifyType, error.notifyType),), error.notifyType)
        sa = requireInResponse(first(payloads, SecurityAssociation), "SA")
        ke = requireInResponse(first(payloads, KeyExchange), "KE")
        nonce = requireInResponse(first(payloads, Nonce), "Nonce")
        answer = offersFromWire(sa)
        if len(answer) != 1:
            raise NoProposalChosen("responder answered with %d proposals" % (len(answer),))
        chosen = accept(self.offers, answer[0], cryptoglue.isAead)
        if chosen is None or any(not supported(t, ProtocolId.IKE) for t in chosen.transforms.values()):
            raise NoProposalChosen("responder chose a proposal we did not offer")
        if ke.group != chosen.dhGroup or chosen.dhGroup != self.group:
            raise NegotiationFailed("responder's KE group %d does not match" % (ke.group,))
        if message.spiR == ZERO_SPI:
            raise NegotiationFailed("responder SPI is zero")
        ikeSA.nonceR = checkResponseNonce(nonce)
        ikeSA.spiR = message.spiR
        ikeSA.proposal = chosen
        ikeSA.initResponse = bytes(message.rawData)
        try:
            shared = ikeSA.keyExchange.complete(bytes(ke.data))
        except InvalidKeyExchange as e:
            raise NegotiationFailed("responder's KE is invalid: %s" % (e,))
        ikeSA.keyExchange.wipe()
        ikeSA.keyExchange = None
        cryptoglue.deriveIKEKeys(core, ikeSA, shared)
        ikeSA.handle(IKEEvent.INIT_DONE)
        return DONE

    def failed(self, core, ikeSA, error):
        Task.failed(self, core, ikeSA, error)
        core.destroy(ikeSA, str(error), error)

    # Responder

    def processR(self, core, ikeSA, message, payloads):
        screened = self.screened
        ikeSA.proposal = screened.chosen
        ikeSA.nonceI = screened.nonceI
        ikeSA.nonceR = core.randomBytes(core.settings.nonceSize)
        ikeSA.initRequest = bytes(message.rawData)
        cryptoglue.deriveIKEKeys(core, ikeSA, screened.shared)
        screened.shared = None
        ikeSA.handle(IKEEvent.INIT_ANSWERED)

    def buildR(self, core, ikeSA, payloads):
        chosen = self.screened.chosen
        payloads += [saPayload([chosen.asOffer(b"")]), KeyExchange(chosen.dhGroup, self.screened.ourKe),
                     Nonce(ikeSA.nonceR)]
        return DONE

# -*- test-case-name: tests.test_core_intermediate -*-
"""
IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of
RFC 9370, between IKE_SA_INIT and IKE_AUTH, in both roles.

In IKE_SA_INIT both sides announce INTERMEDIATE_EXCHANGE_SUPPORTED (the
initiator when its proposals have ADDKE transforms, the responder when the
initiator did). When the chosen proposal has additional key exchanges
(ADDKE1..ADDKE7 other than NONE), each one, in transform type order, is one
IKE_INTERMEDIATE exchange with a KE payload each way; after it both sides
derive new SK_* (RFC 9370 2.2.2, L{cryptoglue.updateIKEKeys}), so the next
message goes under the new keys. Every IKE_INTERMEDIATE message extends
its sender's IntAuth chain (RFC 9242 3.3.2) with the SK_pi or SK_pr in
force when it was sent; IntAuth_iN | IntAuth_rN | IKE_AUTH_MID is then
appended to both AUTH payloads' signed octets.

A proposal makes an additional exchange optional by listing NONE beside a
method for that ADDKE type (C{addke1 mlkem768 addke1 none} in iked.conf);
without NONE it is required and a peer that cannot do it gets
NO_PROPOSAL_CHOSEN. The large KE payloads (ML-KEM) are fragmented
(RFC 7383) like any protected message when the peers agreed on it.
"""

import struct

from twisted.logger import Logger

from ikedtx.core import cryptoglue
from ikedtx.core.errors import NegotiationFailed, NoProposalChosen, RemoteProtocolError
from ikedtx.core.tasks import DONE, MORE, Task
from ikedtx.core.tasks.common import errorNotify, findNotify, first, offersFromConfig
from ikedtx.crypto.errors import InvalidKeyExchange
from ikedtx.wire.constants import ADDITIONAL_KE_TYPES, DhId, ExchangeType, NotifyType, TransformType, nameOf
from ikedtx.wire.header import Header
from ikedtx.wire.intauth import intAuthPartsOfMessage, intAuthPartsOfPayloads
from ikedtx.wire.payloads import KeyExchange, Notify


def offersAdditionalKeyExchanges(offers):
    """
    Whether any of our L{Offer}s has an additional key exchange other than
    NONE.
    """
    return any(t.type in ADDITIONAL_KE_TYPES and t.id != DhId.NONE for offer in offers for t in offer.transforms)


class Intermediate:
    """
    The IKE_INTERMEDIATE exchanges of one IKE SA.

    @ivar rounds: C{[(transformType, method)]} of the additional key
        exchanges not done yet, in order.
    @ivar done: C{[(transformType, method)]} of those done.
    @ivar chainI: IntAuth_iN so far (empty before the first message).
    @ivar chainR: IntAuth_rN so far.
    @ivar lastMessageId: the Message ID of the last IKE_INTERMEDIATE
        request, or L{None}.
    """

    def __init__(self, rounds):
        self.rounds = list(rounds)
        self.done = []
        self.chainI = b""
        self.chainR = b""
        self.lastMessageId = None

    @property
    def complete(self):
        return not self.rounds

    def extend(self, ikeSA, ofInitiator, parts):
        """
        Add one message's C{(IntAuth_A, IntAuth_P)} to its sender's chain.
        """
        if ofInitiator:
            self.chainI = cryptoglue.intermediateAuthLink(ikeSA, True, self.chainI, *parts)
        else:
            self.chainR = cryptoglue.intermediateAuthLink(ikeSA, False, self.chainR, *parts)

    def intAuth(self):
        """
        IntAuth = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID (RFC 9242 3.3.2),
        or nothing when no IKE_INTERMEDIATE exchange took place.
        """
        if self.lastMessageId is None:
            return b""
        return self.chainI + self.chainR + struct.pack("!I", self.lastMessageId + 1)

    def wipe(self):
        self.chainI = self.chainR = b""


class IntermediateTask(Task):
    """
    INTERMEDIATE_EXCHANGE_SUPPORTED in IKE_SA_INIT, then one IKE_INTERMEDIATE
    exchange per additional key exchange, both roles.

    @ivar exchangeType: IKE_SA_INIT, then IKE_INTERMEDIATE.
    @ivar peerSupports: the peer announced INTERMEDIATE_EXCHANGE_SUPPORTED.
    @ivar keyExchange: our key exchange in progress (initiator).
    @ivar shared: the shared secret of the round being answered
        (responder), until the response is sent.
    @ivar answer: our KE data for the response (responder).
    @ivar built: the payload list of our message of this round (its
        IntAuth parts are computed from it once sent), or L{None}.
    """

    exchangeType = ExchangeType.IKE_SA_INIT
    _log = Logger()

    def __init__(self, initiator):
        Task.__init__(self, initiator)
        self.exchangeType = ExchangeType.IKE_SA_INIT
        self.peerSupports = False
        self.keyExchange = None
        self.shared = None
        self.answer = None
        self.built = None

    # Initiator

    def buildI(self, core, ikeSA, payloads):
        if self.exchangeType == ExchangeType.IKE_SA_INIT:
            if offersAdditionalKeyExchanges(offersFromConfig(ikeSA.policy.ikeProposals)):
                payloads.append(Notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED))
            return
        transformType, method = ikeSA.intermediate.rounds[0]
        if self.keyExchange is None:
            self.keyExchange = cryptoglue.keyExchangeMethod(method).generate(core.randomBytes)
        payloads.append(KeyExchange(method, self.keyExchange.publicData))
        self.built = payloads

    def sent(self, core, ikeSA, datagrams):
        if self.exchangeType != ExchangeType.IKE_INTERMEDIATE or self.built is None:
            return
        header = Header.decode(datagrams[0])
        ikeSA.intermediate.extend(ikeSA, ikeSA.initiator, intAuthPartsOfPayloads(header, self.built))
        self.built = None
        if self.initiator:
            ikeSA.intermediate.lastMessageId = header.messageId
        else:
            # The response went out under the keys in force; the next
            # request comes under the new ones (RFC 9370 2.2.2).
            self._nextKeys(core, ikeSA, self.shared)
            self.shared = None

    def processI(self, core, ikeSA, message, payloads, local, remote):
        if self.exchangeType == ExchangeType.IKE_SA_INIT:
            return self._negotiatedI(core, ikeSA, payloads)
        error = errorNotify(payloads)
        if error is not None:
            raise NegotiationFailed("responder refused IKE_INTERMEDIATE: %s" % (nameOf(NotifyType, error.notifyType),),
                                    error.notifyType)
        transformType, method = ikeSA.intermediate.rounds[0]
        ke = first(payloads, KeyExchange)
        if ke is None:
            raise NegotiationFailed("IKE_INTERMEDIATE response without a KE payload")
        if ke.group != method:
            raise NegotiationFailed("responder's KE for %s is of method %d, not %s" % (
                nameOf(TransformType, transformType), ke.group, nameOf(DhId, method)))
        try:
            shared = self.keyExchange.complete(bytes(ke.data))
        except InvalidKeyExchange as e:
            raise NegotiationFailed("responder's KE for %s is invalid: %s" % (nameOf(TransformType, transformType), e))
        finally:
            self.keyExchange.wipe()
            self.keyExchange = None
        ikeSA.intermediate.extend(ikeSA, False, intAuthPartsOfMessage(message))
        self._nextKeys(core, ikeSA, shared)
        return MORE if ikeSA.intermediate.rounds else DONE

    def _negotiatedI(self, core, ikeSA, payloads):
        self.peerSupports = findNotify(payloads, NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED) is not None
        rounds = ikeSA.proposal.additionalKeyExchanges
        if not rounds:
            return DONE
        if not self.peerSupports:
            raise NoProposalChosen("responder chose additional key exchanges without IKE_INTERMEDIATE support")
        ikeSA.intermediate = Intermediate(rounds)
        self.exchangeType = ExchangeType.IKE_INTERMEDIATE
        return MORE

    def failed(self, core, ikeSA, error):
        if self.keyExchange is not None:
            self.keyExchange.wipe()
            self.keyExchange = None
        Task.failed(self, core, ikeSA, error)
        if not ikeSA.isEstablished:
            core.destroy(ikeSA, str(error), error)

    # Responder

    def processR(self, core, ikeSA, message, payloads):
        self.built = None
        if self.exchangeType == ExchangeType.IKE_SA_INIT:
            self.peerSupports = findNotify(payloads, NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED) is not None
            if ikeSA.proposal.additionalKeyExchanges and not self.peerSupports:
                self.closeAfterResponse = "additional key exchanges without IKE_INTERMEDIATE support"
                raise RemoteProtocolError("the proposal has additional key exchanges, the initiator did not announce "
                                          "IKE_INTERMEDIATE", NotifyType.NO_PROPOSAL_CHOSEN)
            return
        intermediate = ikeSA.intermediate
        transformType, method = intermediate.rounds[0]
        intermediate.extend(ikeSA, True, intAuthPartsOfMessage(message))
        intermediate.lastMessageId = message.messageId
        ke = first(payloads, KeyExchange)
        if ke is None or ke.group != method:
            self.closeAfterResponse = "bad IKE_INTERMEDIATE request"
            raise RemoteProtocolError("IKE_INTERMEDIATE for %s needs a KE payload of %s" % (
                nameOf(TransformType, transformType), nameOf(DhId, method)), NotifyType.INVALID_SYNTAX)
        try:
            self.answer, self.shared = cryptoglue.keyExchangeMethod(method).respond(bytes(ke.data), core.randomBytes)
        except InvalidKeyExchange as e:
            self.closeAfterResponse = "invalid KE in IKE_INTERMEDIATE"
            raise RemoteProtocolError("invalid KE for %s: %s" % (nameOf(TransformType, transformType), e),
                                      NotifyType.INVALID_SYNTAX)

    def buildR(self, core, ikeSA, payloads):
        if self.exchangeType == ExchangeType.IKE_SA_INIT:
            if self.peerSupports:
                payloads.append(Notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED))
            rounds = ikeSA.proposal.additionalKeyExchanges
            if not rounds:
                return DONE
            ikeSA.intermediate = Intermediate(rounds)
            self.exchangeType = ExchangeType.IKE_INTERMEDIATE
            return MORE
        transformType, method = ikeSA.intermediate.rounds[0]
        payloads.append(KeyExchange(method, self.answer))
        self.answer = None
        self.built = payloads
        return MORE if len(ikeSA.intermediate.rounds) > 1 else DONE

    # Both

    def _nextKeys(self, core, ikeSA, shared):
        intermediate = ikeSA.intermediate
        cryptoglue.updateIKEKeys(core, ikeSA, shared)
        done = intermediate.rounds.pop(0)
        intermediate.done.append(done)
        self._log.info("{ikeSA}: additional key exchange {type} with {method} done; IKE SA keys updated",
                       ikeSA=ikeSA, type=nameOf(TransformType, done[0]), method=nameOf(DhId, done[1]))


class IntermediateGuardTask(Task):
    """
    As responder, the first task of IKE_AUTH: an IKE_AUTH request before
    every negotiated additional key exchange was done is refused and the
    IKE SA deleted (the keys would not be the ones the policy requires).
    """

    exchangeType = ExchangeType.IKE_AUTH

    def processR(self, core, ikeSA, message, payloads):
        intermediate = ikeSA.intermediate
        if intermediate is not None and not intermediate.complete:
            self.closeAfterResponse = "IKE_AUTH before the additional key exchanges"
            raise RemoteProtocolError("IKE_AUTH with %d additional key exchanges still to do" % (
                len(intermediate.rounds),), NotifyType.INVALID_SYNTAX)

    def buildR(self, core, ikeSA, payloads):
        return DONE

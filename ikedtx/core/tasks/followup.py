# -*- test-case-name: tests.test_core_followup -*-
"""
IKE_FOLLOWUP_KE (RFC 9370 2.2.3): the additional key exchanges of a Child
SA made with CREATE_CHILD_SA, one IKE_FOLLOWUP_KE exchange each.

    HDR(CREATE_CHILD_SA), SK {SA, Ni, KEi, TSi, TSr}  -->
                <--  HDR(CREATE_CHILD_SA), SK {SA, Nr, KEr, TSi, TSr, N(ADDITIONAL_KEY_EXCHANGE)(link1)}
    HDR(IKE_FOLLOWUP_KE), SK {KEi(1), N(ADDITIONAL_KEY_EXCHANGE)(link1)}  -->
                <--  HDR(IKE_FOLLOWUP_KE), SK {KEr(1), N(ADDITIONAL_KEY_EXCHANGE)(link2)}
    HDR(IKE_FOLLOWUP_KE), SK {KEi(2), N(ADDITIONAL_KEY_EXCHANGE)(link2)}  -->
                <--  HDR(IKE_FOLLOWUP_KE), SK {KEr(2)}

The Child SA is installed after the last one, with KEYMAT = prf+(SK_d,
SK(0) | Ni | Nr | SK(1) | ... | SK(n)) (RFC 9370 2.2.4; SK(0) is the
CREATE_CHILD_SA's g^ir, empty without a KE there). The
L{ikedtx.core.tasks.child.ChildCreateTask} of the CREATE_CHILD_SA keeps a
L{Followup} and takes part in the IKE_FOLLOWUP_KE rounds through it. The
link data is ours to choose as responder (random, 16 bytes), and compared
in constant time; an IKE_FOLLOWUP_KE that names no exchange of ours is
answered STATE_NOT_FOUND (L{OrphanFollowupTask}).
"""

import hmac

from ikedtx.core import cryptoglue
from ikedtx.core.errors import NegotiationFailed, RemoteProtocolError
from ikedtx.core.tasks import DONE, Task
from ikedtx.core.tasks.common import errorNotify, findNotify, first
from ikedtx.crypto.errors import InvalidKeyExchange
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType, TransformType, nameOf
from ikedtx.wire.payloads import KeyExchange, Notify

LINK_SIZE = 16
MAX_LINK = 64


class Followup:
    """
    The IKE_FOLLOWUP_KE rounds of one Child SA, either role.

    @ivar rounds: C{[(transformType, method)]} still to do, in order.
    @ivar secrets: the shared secrets so far, in order: SK(0), the
        CREATE_CHILD_SA's (empty when it had no KE), then SK(1)...
    @ivar link: the ADDITIONAL_KEY_EXCHANGE data of the next round.
    @ivar keyExchange: the initiator's key exchange in progress.
    @ivar answer: the responder's KE data for its response.
    """

    def __init__(self, rounds, shared, link):
        self.rounds = list(rounds)
        self.secrets = [_owned(shared or b"")]
        self.link = link
        self.keyExchange = None
        self.answer = None

    @property
    def method(self):
        return self.rounds[0][1]

    def _name(self):
        transformType, method = self.rounds[0]
        return "%s (%s)" % (nameOf(TransformType, transformType), nameOf(DhId, method))

    # Initiator

    def buildI(self, core, payloads):
        if self.keyExchange is None:
            self.keyExchange = cryptoglue.keyExchangeMethod(self.method).generate(core.randomBytes)
        payloads += [KeyExchange(self.method, self.keyExchange.publicData), Notify.additionalKeyExchange(self.link)]

    def processI(self, payloads):
        """
        The responder's answer to one round; return whether it was the last.
        """
        error = errorNotify(payloads)
        if error is not None:
            raise NegotiationFailed("responder refused IKE_FOLLOWUP_KE for %s: %s" % (
                self._name(), nameOf(NotifyType, error.notifyType)), error.notifyType)
        ke = first(payloads, KeyExchange)
        if ke is None or ke.group != self.method:
            raise NegotiationFailed("IKE_FOLLOWUP_KE response without a KE payload of %s" % (self._name(),))
        try:
            self.secrets.append(_owned(self.keyExchange.complete(bytes(ke.data))))
        except InvalidKeyExchange as e:
            raise NegotiationFailed("responder's KE for %s is invalid: %s" % (self._name(), e))
        finally:
            self.wipeExchange()
        self.rounds.pop(0)
        if not self.rounds:
            return True
        self.link = linkOf(payloads)
        if self.link is None:
            raise NegotiationFailed("IKE_FOLLOWUP_KE response without the link to the next exchange")
        return False

    # Responder

    def processR(self, core, payloads):
        link = findNotify(payloads, NotifyType.ADDITIONAL_KEY_EXCHANGE)
        if link is None or not hmac.compare_digest(bytes(link.data), self.link):
            raise RemoteProtocolError("IKE_FOLLOWUP_KE for another exchange", NotifyType.STATE_NOT_FOUND)
        ke = first(payloads, KeyExchange)
        if ke is None or ke.group != self.method:
            raise RemoteProtocolError("IKE_FOLLOWUP_KE needs a KE payload of %s" % (self._name(),),
                                      NotifyType.INVALID_SYNTAX)
        try:
            self.answer, shared = cryptoglue.keyExchangeMethod(self.method).respond(bytes(ke.data), core.randomBytes)
        except InvalidKeyExchange as e:
            raise RemoteProtocolError("invalid KE for %s: %s" % (self._name(), e), NotifyType.INVALID_SYNTAX)
        self.secrets.append(_owned(shared))

    def buildR(self, core, payloads):
        """
        Our answer to one round; return whether it was the last.
        """
        payloads.append(KeyExchange(self.method, self.answer))
        self.answer = None
        self.rounds.pop(0)
        if not self.rounds:
            return True
        self.link = core.randomBytes(LINK_SIZE)
        payloads.append(Notify.additionalKeyExchange(self.link))
        return False

    def wipeExchange(self):
        if self.keyExchange is not None:
            self.keyExchange.wipe()
            self.keyExchange = None

    def wipe(self):
        self.wipeExchange()
        for secret in self.secrets:
            secret[:] = bytes(len(secret))
        self.secrets = []


def _owned(secret):
    """
    A shared secret as a bytearray this module wipes (the key exchanges
    return bytearrays; anything else is copied).
    """
    return secret if isinstance(secret, bytearray) else bytearray(secret)


def linkOf(payloads):
    """
    The data of an ADDITIONAL_KEY_EXCHANGE notify, or L{None}.
    """
    notify = findNotify(payloads, NotifyType.ADDITIONAL_KEY_EXCHANGE)
    if notify is None or not 1 <= len(notify.data) <= MAX_LINK:
        return None
    return bytes(notify.data)


class OrphanFollowupTask(Task):
    """
    As responder, an IKE_FOLLOWUP_KE request no exchange of ours waits for:
    STATE_NOT_FOUND (RFC 9370 2.2.3).
    """

    exchangeType = ExchangeType.IKE_FOLLOWUP_KE

    def processR(self, core, ikeSA, message, payloads):
        raise RemoteProtocolError("IKE_FOLLOWUP_KE for no pending exchange", NotifyType.STATE_NOT_FOUND)

    def buildR(self, core, ikeSA, payloads):
        return DONE

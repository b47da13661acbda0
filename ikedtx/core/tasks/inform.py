# -*- test-case-name: tests.test_core_child -*-
"""
Notifies in INFORMATIONAL exchanges: an initiator's request carrying given
payloads (the AUTHENTICATION_FAILED of RFC 7296 2.21.2 among them), and,
as responder, the peer's error Notifies: logged, and AUTHENTICATION_FAILED
ends the IKE SA once answered.
"""

from twisted.logger import Logger

from ikedtx.core.tasks import Task
from ikedtx.core.tasks.common import allOf
from ikedtx.wire.constants import ExchangeType, NotifyType, isErrorNotify, nameOf
from ikedtx.wire.payloads import Notify


class InformTask(Task):
    """
    An INFORMATIONAL request carrying C{payloads} (initiator only).
    """

    exchangeType = ExchangeType.INFORMATIONAL

    def __init__(self, initiator=True, payloads=()):
        Task.__init__(self, initiator)
        self.payloads = list(payloads)

    def buildI(self, core, ikeSA, payloads):
        payloads += self.payloads


class AuthenticationFailedTask(InformTask):
    """
    RFC 7296 2.21.2: the initiator could not verify the responder and says
    so in an INFORMATIONAL of its own, sent once.
    """

    def __init__(self, initiator=True):
        InformTask.__init__(self, initiator, [Notify(NotifyType.AUTHENTICATION_FAILED)])


class ErrorNotifyTask(Task):
    """
    The peer's error Notifies in its INFORMATIONAL request (responder only).
    """

    exchangeType = ExchangeType.INFORMATIONAL
    _log = Logger()

    def processR(self, core, ikeSA, message, payloads):
        for notify in allOf(payloads, Notify):
            if isErrorNotify(notify.notifyType):
                self._log.warn("{ikeSA}: peer reports {notify}", ikeSA=ikeSA, notify=nameOf(NotifyType, notify.notifyType))
                if notify.notifyType == NotifyType.AUTHENTICATION_FAILED:
                    # RFC 7296 2.21.2: the initiator could not verify us and
                    # reports it in its own INFORMATIONAL; the IKE SA is dead.
                    self.closeAfterResponse = "peer refused our authentication"

# -*- test-case-name: tests.test_core_exchanges -*-
"""
The MOBIKE task of IKE_AUTH (RFC 4555 3.1): MOBIKE_SUPPORTED, sent when
the configuration enables MOBIKE (a responder only to a peer that sent it).
Address updates (UPDATE_SA_ADDRESSES) will be further tasks.
"""

from ikedtx.core.tasks import DONE, Task
from ikedtx.core.tasks.common import findNotify
from ikedtx.wire.constants import ExchangeType, NotifyType
from ikedtx.wire.payloads import Notify


class MobikeTask(Task):
    """
    MOBIKE_SUPPORTED in IKE_AUTH, both roles.
    """

    exchangeType = ExchangeType.IKE_AUTH

    def buildI(self, core, ikeSA, payloads):
        if core.config.settings.mobike:
            payloads.append(Notify(NotifyType.MOBIKE_SUPPORTED))

    def processI(self, core, ikeSA, message, payloads, local, remote):
        ikeSA.peerMobike = findNotify(payloads, NotifyType.MOBIKE_SUPPORTED) is not None
        return DONE

    def processR(self, core, ikeSA, message, payloads):
        ikeSA.peerMobike = findNotify(payloads, NotifyType.MOBIKE_SUPPORTED) is not None

    def buildR(self, core, ikeSA, payloads):
        if core.config.settings.mobike and ikeSA.peerMobike:
            payloads.append(Notify(NotifyType.MOBIKE_SUPPORTED))
        return DONE

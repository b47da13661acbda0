# -*- test-case-name: tests.test_core_child -*-
"""
The NAT detection task (RFC 7296 2.23): NAT_DETECTION_SOURCE_IP and
NAT_DETECTION_DESTINATION_IP in IKE_SA_INIT, hashed by
L{ikedtx.wire.natt.natDetectionHash}; an initiator that finds a NAT (or
runs MOBIKE, RFC 4555 3.3) moves to the NAT-T port.
"""

import hmac

from ikedtx.core.settings import NATT_DISABLED, NATT_ONLY
from ikedtx.core.tasks import DONE, Task
from ikedtx.core.tasks.common import ZERO_SPI, allOf
from ikedtx.wire.constants import ExchangeType, NotifyType
from ikedtx.wire.natt import natDetectionHash
from ikedtx.wire.payloads import Notify


def natPayloads(core, ikeSA, spiR):
    """
    NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP for our side.
    A policy with C{natt} (or iked -t) sends a source hash that cannot match,
    so that both peers encapsulate ESP in UDP as if a NAT were present.
    """
    if core.settings.nattMode == NATT_DISABLED:
        return []
    if ikeSA.policy.natt or core.settings.nattMode == NATT_ONLY:
        source = core.randomBytes(20)
    else:
        source = natDetectionHash(ikeSA.spiI, spiR, ikeSA.local[0], ikeSA.local[1])
    destination = natDetectionHash(ikeSA.spiI, spiR, ikeSA.remote[0], ikeSA.remote[1])
    return [Notify.natDetectionSourceIP(source), Notify.natDetectionDestinationIP(destination)]


def detectNat(core, ikeSA, payloads, spiR, local, remote):
    """
    Process the peer's NAT-D payloads: set C{natRemote} when its source hash
    does not match the address we saw, C{natLocal} when its destination hash
    does not match ours.

    @return: whether the peer supports NAT-T (sent NAT-D payloads).
    """
    notifies = allOf(payloads, Notify)
    sources = [bytes(p.data) for p in notifies if p.notifyType == NotifyType.NAT_DETECTION_SOURCE_IP]
    destinations = [bytes(p.data) for p in notifies if p.notifyType == NotifyType.NAT_DETECTION_DESTINATION_IP]
    if not sources or not destinations or core.settings.nattMode == NATT_DISABLED:
        return False
    theirs = natDetectionHash(ikeSA.spiI, spiR, remote[0], remote[1])
    ours = natDetectionHash(ikeSA.spiI, spiR, local[0], local[1])
    ikeSA.natRemote = not any(hmac.compare_digest(theirs, s) for s in sources)
    ikeSA.natLocal = not any(hmac.compare_digest(ours, d) for d in destinations)
    if ikeSA.policy.natt or core.settings.nattMode == NATT_ONLY:
        ikeSA.natLocal = True
    return True


class NATDetectionTask(Task):
    """
    NAT-D payloads in IKE_SA_INIT, both roles.
    """

    exchangeType = ExchangeType.IKE_SA_INIT

    def buildI(self, core, ikeSA, payloads):
        payloads += natPayloads(core, ikeSA, ZERO_SPI)

    def processI(self, core, ikeSA, message, payloads, local, remote):
        natSupported = detectNat(core, ikeSA, payloads, ikeSA.spiR, local, remote)
        # RFC 7296 2.23: move to port 4500 once a NAT is detected; RFC 4555
        # 3.3: a MOBIKE initiator moves there in any case, so that a later
        # NAT on its path does not need another change of ports.
        float4500 = ikeSA.natLocal or ikeSA.natRemote or core.config.settings.mobike
        if natSupported and float4500 and not ikeSA.nattEnabled:
            ikeSA.local = (ikeSA.local[0], core.settings.nattPort)
            ikeSA.remote = (ikeSA.remote[0], core.settings.peerNattPort)
            ikeSA.nattEnabled = True
        return DONE

    def processR(self, core, ikeSA, message, payloads):
        detectNat(core, ikeSA, payloads, ZERO_SPI, ikeSA.local, ikeSA.remote)
        if ikeSA.local[1] == core.settings.nattPort:
            ikeSA.nattEnabled = True

    def buildR(self, core, ikeSA, payloads):
        payloads += natPayloads(core, ikeSA, ikeSA.spiR)
        return DONE

# -*- test-case-name: tests.test_core_exchanges -*-
"""
The capabilities task of IKE_SA_INIT: IKEV2_FRAGMENTATION_SUPPORTED
(RFC 7383 2.3), SIGNATURE_HASH_ALGORITHMS (RFC 7427 4),
CHILDLESS_IKEV2_SUPPORTED (RFC 6023 3: we take an IKE_AUTH without a Child
SA; said to every initiator, since one that wants a childless IKE SA, as
charon's C{childless = force}, does not say so itself) and our vendor ID,
announced and learnt in both roles.
"""

from ikedtx.core.tasks import DONE, Task
from ikedtx.wire.constants import ExchangeType, HashAlgorithm, NotifyType
from ikedtx.wire.payloads import Notify, VendorID

OUR_HASHES = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512, HashAlgorithm.IDENTITY)


def capabilityPayloads(core, ikeSA):
    out = []
    out.append(Notify(NotifyType.CHILDLESS_IKEV2_SUPPORTED))
    if core.config.settings.fragmentation:
        out.append(Notify.fragmentationSupported())
    if ikeSA.policy.auth.method != "psk":
        # RFC 7427 4: whenever certificates or raw keys are used, as iked
        # does; a peer may then sign with DIGITAL_SIGNATURE, which every
        # signature policy accepts (with the key its method names).
        out.append(Notify.signatureHashAlgorithms(OUR_HASHES))
    if core.settings.vendorId:
        out.append(VendorID(core.settings.vendorId))
    return out


def learnCapabilities(ikeSA, payloads):
    # One pass over the payloads for the three Notify types (the first
    # SIGNATURE_HASH_ALGORITHMS counts).
    hashes = None
    for p in payloads:
        if isinstance(p, Notify):
            notifyType = p.notifyType
            if notifyType == _FRAGMENTATION:
                ikeSA.peerFragmentation = True
            elif notifyType == _CHILDLESS:
                ikeSA.peerChildless = True
            elif notifyType == _HASHES and hashes is None:
                hashes = p
    if hashes is not None:
        ikeSA.peerSignatureHashes = tuple(hashes.hashAlgorithms)


_FRAGMENTATION = NotifyType.IKEV2_FRAGMENTATION_SUPPORTED
_CHILDLESS = NotifyType.CHILDLESS_IKEV2_SUPPORTED
_HASHES = NotifyType.SIGNATURE_HASH_ALGORITHMS


class CapabilitiesTask(Task):
    """
    Fragmentation, signature hashes and vendor ID in IKE_SA_INIT.
    """

    exchangeType = ExchangeType.IKE_SA_INIT

    def buildI(self, core, ikeSA, payloads):
        payloads += capabilityPayloads(core, ikeSA)

    def processI(self, core, ikeSA, message, payloads, local, remote):
        learnCapabilities(ikeSA, payloads)
        return DONE

    def processR(self, core, ikeSA, message, payloads):
        learnCapabilities(ikeSA, payloads)

    def buildR(self, core, ikeSA, payloads):
        payloads += capabilityPayloads(core, ikeSA)
        return DONE

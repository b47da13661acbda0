# -*- test-case-name: tests.test_crypto_transforms -*-
"""
One lookup over all transform registries, for proposal negotiation:

    transformFor(TransformType.PRF, PrfId.HMAC_SHA2_256)
    isSupported(TransformType.ENCR, EncrId.AES_GCM_16, keyLength=256, protocol=ProtocolId.IKE)

The registries themselves live beside their transforms:
L{ikedtx.crypto.encr.ENCRYPTION}, L{ikedtx.crypto.prf.PRFS},
L{ikedtx.crypto.integ.INTEGRITY}, L{ikedtx.crypto.kex.KEY_EXCHANGE_METHODS}
and L{ESN_IDS} here.
"""

from ikedtx.crypto.encr import ENCRYPTION, encryptionFor
from ikedtx.crypto.errors import UnsupportedTransform
from ikedtx.crypto.integ import INTEGRITY, integrityFor
from ikedtx.crypto.kex import KEY_EXCHANGE_METHODS, keyExchangeFor
from ikedtx.crypto.prf import PRFS, prfFor
from ikedtx.wire.constants import (
    ADDITIONAL_KE_TYPES, EsnId, IntegId, ProtocolId, TransformType)

ESN_IDS = frozenset([EsnId.NO_ESN, EsnId.ESN])


def transformFor(transformType, transformId):
    """
    Return the provider for (C{transformType}, C{transformId}): an
    L{IEncryptionAlgorithm}, L{IPseudoRandomFunction},
    L{IIntegrityAlgorithm} or L{IKeyExchangeMethod} (for DH and the ADDKE
    types), or the L{EsnId} for ESN.  Raise L{UnsupportedTransform}.
    """
    if transformType == TransformType.ENCR:
        return encryptionFor(transformId)
    if transformType == TransformType.PRF:
        return prfFor(transformId)
    if transformType == TransformType.INTEG:
        return integrityFor(transformId)
    if transformType == TransformType.DH or transformType in ADDITIONAL_KE_TYPES:
        return keyExchangeFor(transformId)
    if transformType == TransformType.ESN:
        if transformId in ESN_IDS:
            return EsnId(transformId)
        raise UnsupportedTransform("no ESN transform %r" % (transformId,))
    raise UnsupportedTransform("unknown transform type %r" % (transformType,))


def isSupported(transformType, transformId, keyLength=None, protocol=ProtocolId.IKE):
    """
    Return True if we can use this transform (with this Key Length attribute,
    for ENCR) for C{protocol}: IKE needs what L{ikedtx.crypto.sk} and
    L{ikedtx.crypto.prf} implement, ESP/AH what the kernel is told about.
    INTEG NONE is supported (the core checks it goes with AEAD only).
    """
    if transformType == TransformType.INTEG and transformId == IntegId.NONE:
        return True
    try:
        provider = transformFor(transformType, transformId)
    except UnsupportedTransform:
        return False
    if transformType == TransformType.ENCR:
        if not provider.validKeyLength(keyLength):
            return False
        return provider.ikeUsable if protocol == ProtocolId.IKE else provider.espUsable
    if transformType == TransformType.INTEG:
        return provider.ikeUsable if protocol == ProtocolId.IKE else provider.espUsable
    if transformType == TransformType.PRF:
        return protocol == ProtocolId.IKE
    if transformType == TransformType.ESN:
        return protocol != ProtocolId.IKE
    return True


__all__ = ["ENCRYPTION", "PRFS", "INTEGRITY", "KEY_EXCHANGE_METHODS", "ESN_IDS",
           "transformFor", "isSupported"]

# -*- test-case-name: tests.test_core_proposals -*-
"""
SA proposal selection (RFC 7296 sections 2.7 and 3.3.6).

Proposals from the configuration and from the wire are both reduced to
L{Offer}s: a protocol, an SPI and, per transform type, the transforms in
preference order. The responder picks the first of the peer's proposals (in
the peer's order) that one of its own proposals accepts, taking for each
transform type the peer's most preferred transform it also offers; the
initiator checks that the answer is one transform per type out of what it
offered.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ikedtx.wire.constants import ADDITIONAL_KE_TYPES, DhId, EsnId, IntegId, ProtocolId, TransformType


@dataclass(frozen=True, order=True, slots=True)
class Transform:
    """
    One transform: its type, its IANA id and, for ciphers with a variable
    key, the key length in bits.
    """

    type: int
    id: int
    keyLength: Optional[int] = None


_interned = {}


def internTransform(transformType, transformId, keyLength=None):
    """
    The one L{Transform} with these fields: the configuration's and the
    peers' proposals share them, so that matching finds its equal by
    identity before any field is compared (a few dozen kinds are in use;
    the table is emptied when a peer's odd ids have grown it).
    """
    key = (transformType, transformId, keyLength)
    transform = _interned.get(key)
    if transform is None:
        if len(_interned) > 4096:
            _interned.clear()
        transform = _interned[key] = Transform(transformType, transformId, keyLength)
    return transform


# Types that, when a proposal does not list them, mean "none" (RFC 7296
# 3.3.3: INTEG and DH are optional; an ESP proposal without ESN means no ESN).
_ABSENT_MEANS = {
    TransformType.INTEG: Transform(TransformType.INTEG, IntegId.NONE),
    TransformType.DH: Transform(TransformType.DH, DhId.NONE),
    TransformType.ESN: Transform(TransformType.ESN, EsnId.NO_ESN),
}
for _t in ADDITIONAL_KE_TYPES:
    _ABSENT_MEANS[_t] = Transform(_t, DhId.NONE)

_REQUIRED = {
    ProtocolId.IKE: (TransformType.ENCR, TransformType.PRF, TransformType.DH),
    ProtocolId.ESP: (TransformType.ENCR,),
    ProtocolId.AH: (TransformType.INTEG,),
}


@dataclass(frozen=True)
class Offer:
    """
    A proposal as offered: C{transforms} lists every transform, in order of
    preference within each type.

    @ivar number: the proposal number (1-based) on the wire.
    @ivar protocol: L{ProtocolId}.
    @ivar spi: the sender's SPI for this protocol (C{b""} in IKE_SA_INIT).
    """

    protocol: int
    transforms: Tuple[Transform, ...]
    number: int = 1
    spi: bytes = b""

    def __post_init__(self):
        byType = {}
        for t in self.transforms:
            byType.setdefault(t.type, []).append(t)
        object.__setattr__(self, "_byType", byType)
        object.__setattr__(self, "_types", frozenset(byType))

    def ofType(self, transformType):
        found = self._byType.get(transformType)
        if found:
            return found
        if transformType in _ABSENT_MEANS:
            return [_ABSENT_MEANS[transformType]]
        return []

    def types(self):
        return self._types

    def withoutKeyExchange(self):
        """
        The offer minus its key exchange transforms: the Child SA of IKE_AUTH
        uses the IKE SA's keys, and a peer's DH there is ignored (RFC 7296
        1.2; strongSwan and iked both send "group none" or nothing).
        """
        keep = tuple(t for t in self.transforms if t.type != TransformType.DH and t.type not in ADDITIONAL_KE_TYPES)
        return Offer(self.protocol, keep, self.number, self.spi)

    def withSpi(self, spi, number=None):
        return Offer(self.protocol, self.transforms, self.number if number is None else number, spi)


@dataclass(frozen=True, slots=True)
class Chosen:
    """
    The outcome of a negotiation: one transform per type.

    @ivar number: the number of the peer's proposal that was accepted.
    @ivar peerSPI: the SPI the peer gave in that proposal.
    @ivar transforms: C{{type: Transform}}.
    """

    protocol: int
    number: int
    peerSPI: bytes
    transforms: Dict[int, Transform] = field(default_factory=dict)
    explicitTypes: frozenset = frozenset()

    def get(self, transformType):
        return self.transforms.get(transformType)

    @property
    def encryption(self):
        return self.transforms.get(TransformType.ENCR)

    @property
    def prf(self):
        return self.transforms.get(TransformType.PRF)

    @property
    def integrity(self):
        t = self.transforms.get(TransformType.INTEG)
        return None if t is None or t.id == IntegId.NONE else t

    @property
    def dhGroup(self):
        t = self.transforms.get(TransformType.DH)
        return DhId.NONE if t is None else t.id

    @property
    def additionalKeyExchanges(self):
        """
        C{[(type, group)]} of the RFC 9370 additional key exchanges, in order.
        """
        return [(t, self.transforms[t].id) for t in ADDITIONAL_KE_TYPES
                if t in self.transforms and self.transforms[t].id != DhId.NONE]

    @property
    def esn(self):
        t = self.transforms.get(TransformType.ESN)
        return t is not None and t.id == EsnId.ESN

    def asOffer(self, spi, number=None):
        """
        This choice as the single proposal of a responder's SA payload,
        carrying our C{spi} and the peer's proposal number.
        """
        # RFC 7296 3.3.6: one transform of each type the peer's proposal had.
        transforms = tuple(self.transforms[t] for t in sorted(self.transforms) if t in self.explicitTypes)
        return Offer(self.protocol, transforms, self.number if number is None else number, spi)


def _isAead(isAeadCipher, transform):
    return transform is not None and isAeadCipher(transform.id)


def _match(local, peer, isSupported, isAeadCipher):
    if local.protocol != peer.protocol:
        return None
    types = set(local.types() | peer.types())
    for required in _REQUIRED.get(peer.protocol, ()):
        if required not in peer.types():
            return None
    if peer.protocol == ProtocolId.ESP:
        types.add(TransformType.ESN)
    chosen = {}
    for transformType in sorted(types):
        mine = local.ofType(transformType)
        for theirs in peer.ofType(transformType):
            if theirs in mine and isSupported(theirs, peer.protocol):
                # Our equal Transform, shared by every SA of the policy,
                # rather than the one decoded from this peer's message.
                chosen[transformType] = mine[mine.index(theirs)]
                break
        else:
            return None
    encr = chosen.get(TransformType.ENCR)
    integ = chosen.get(TransformType.INTEG)
    aead = _isAead(isAeadCipher, encr)
    if aead and integ is not None and integ.id != IntegId.NONE:
        return None
    if not aead and peer.protocol != ProtocolId.IKE and encr is not None and (integ is None or integ.id == IntegId.NONE):
        # ESP without integrity is refused (RFC 4303 3.2.2 permits it, iked does not offer it).
        return None
    if not aead and peer.protocol == ProtocolId.IKE and (integ is None or integ.id == IntegId.NONE):
        return None
    return Chosen(peer.protocol, peer.number, peer.spi, chosen, _sharedTypes(peer.types()))


# The sets of transform types proposals had: a few kinds, kept by every SA.
_typeSets = {}


def _sharedTypes(types):
    types = frozenset(types)
    shared = _typeSets.get(types)
    if shared is None:
        if len(_typeSets) >= 256:
            _typeSets.clear()
        shared = _typeSets[types] = types
    return shared


def select(local, peer, isSupported=lambda t, protocol: True, isAeadCipher=lambda encrId: False):
    """
    Choose, as responder, one of the C{peer}'s offers that one of our
    C{local} offers accepts.

    @param local: our L{Offer}s, in our order.
    @param peer: the peer's L{Offer}s, in its order.
    @param isSupported: whether we implement a transform for a protocol
        (C{isSupported(transform, protocol)}); a transform we do not
        implement is never chosen.
    @param isAeadCipher: whether an ENCR id is a combined-mode cipher.
    @return: a L{Chosen}, or L{None} (NO_PROPOSAL_CHOSEN).
    """
    for theirs in peer:
        for mine in local:
            chosen = _match(mine, theirs, isSupported, isAeadCipher)
            if chosen is not None:
                return chosen
    return None


def accept(offered, answer, isAeadCipher=lambda encrId: False):
    """
    Check, as initiator, the responder's single proposal C{answer} against
    what we C{offered}: it must name one of our proposal numbers, our
    protocol, and exactly one transform of each type that proposal offered.

    @return: a L{Chosen}, or L{None} if the answer is unacceptable.
    """
    for mine in offered:
        if mine.number != answer.number or mine.protocol != answer.protocol:
            continue
        chosen = {}
        for t in answer.transforms:
            if t.type in chosen or t not in mine.ofType(t.type):
                return None
            chosen[t.type] = t
        for transformType in mine.types() | set(_REQUIRED.get(mine.protocol, ())):
            if transformType not in chosen:
                absent = _ABSENT_MEANS.get(transformType)
                if absent is None or absent not in mine.ofType(transformType):
                    return None
                chosen[transformType] = absent
        result = Chosen(answer.protocol, answer.number, answer.spi, chosen, frozenset(answer.types()))
        encr = chosen.get(TransformType.ENCR)
        if _isAead(isAeadCipher, encr) and result.integrity is not None:
            return None
        return result
    return None

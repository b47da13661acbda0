# -*- test-case-name: tests.test_core_exchanges -*-
"""
Payload access and conversions the tasks share: proposals and traffic
selectors between the configuration, the wire and the core.
"""

from ikedtx.core import cryptoglue
from ikedtx.core.errors import NegotiationFailed, RemoteProtocolError
from ikedtx.core.proposals import Offer, internTransform
from ikedtx.core.ts import TrafficSelector
from ikedtx.wire.constants import NotifyType, isErrorNotify
from ikedtx.wire.payloads import (
    Notify, Proposal, SecurityAssociation, TrafficSelectorsInitiator, TrafficSelectorsResponder)
from ikedtx.wire.payloads import TrafficSelector as WireTrafficSelector
from ikedtx.wire.payloads import Transform as WireTransform

ZERO_SPI = b"\x00" * 8
MIN_NONCE, MAX_NONCE = 16, 256


def first(payloads, kind):
    for p in payloads:
        if isinstance(p, kind):
            return p
    return None


def allOf(payloads, kind):
    return [p for p in payloads if isinstance(p, kind)]


def findNotify(payloads, notifyType):
    for p in payloads:
        if isinstance(p, Notify) and p.notifyType == notifyType:
            return p
    return None


def errorNotify(payloads):
    for p in payloads:
        if isinstance(p, Notify) and isErrorNotify(p.notifyType):
            return p
    return None


def require(payload, what):
    """
    As responder: a payload the request must carry.
    """
    if payload is None:
        raise RemoteProtocolError("%s payload missing" % (what,), NotifyType.INVALID_SYNTAX)
    return payload


def requireInResponse(payload, what):
    """
    As initiator: a payload the response must carry.
    """
    if payload is None:
        raise NegotiationFailed("the response has no %s payload" % (what,))
    return payload


def checkNonce(nonce):
    if not MIN_NONCE <= len(nonce.data) <= MAX_NONCE:
        raise RemoteProtocolError("nonce of %d bytes" % (len(nonce.data),), NotifyType.INVALID_SYNTAX)
    return bytes(nonce.data)


def checkResponseNonce(nonce):
    try:
        return checkNonce(nonce)
    except RemoteProtocolError as e:
        raise NegotiationFailed(str(e))


_offerCache = {}


def offersFromConfig(proposals, spi=b"", withKeyExchange=True):
    """
    The L{Offer}s of a policy's C{ikesa} or C{childsa} proposals, numbered
    from 1 (kept, as they are asked for on every negotiation).
    """
    key = (id(proposals), spi, withKeyExchange)
    cached = _offerCache.get(key)
    if cached is not None and cached[0] is proposals:
        return cached[1]
    if len(_offerCache) > 4096:
        _offerCache.clear()
    offers = []
    for number, proposal in enumerate(proposals, 1):
        transforms = tuple(internTransform(t.type, t.id, t.keyLength) for t in proposal.transforms)
        offer = Offer(proposal.protocol, transforms, number, spi)
        offers.append(offer if withKeyExchange else offer.withoutKeyExchange())
    # Offers with an SPI (every Child SA and IKE SA rekey has its own) are
    # never asked for again: kept, they only filled the cache (megabytes
    # on a gateway that rekeys, seen in the soak).
    if not spi:
        _offerCache[key] = (proposals, offers)
    return offers


def offersFromWire(sa):
    return [
        Offer(p.protocolId, tuple(internTransform(t.transformType, t.transformId, t.keyLength) for t in p.transforms),
              p.number,
              bytes(p.spi))
        for p in sa.proposals
    ]


def saPayload(offers):
    return SecurityAssociation([
        Proposal(o.number, o.protocol, [WireTransform(t.type, t.id, keyLength=t.keyLength) for t in o.transforms], o.spi)
        for o in offers
    ])


def supported(transform, protocol=None):
    return cryptoglue.isSupported(transform, protocol)


def tsFromWire(payload):
    # Security labels and unknown selector types are not negotiated here;
    # an address range whose start is above its end selects nothing (what
    # is left may then be TS_UNACCEPTABLE).
    return [TrafficSelector(s.startAddress.version, s.startAddress, s.endAddress, s.ipProtocol, s.startPort, s.endPort)
            for s in payload.selectors if isinstance(s, WireTrafficSelector) and s.startAddress <= s.endAddress]


def tsToWire(selectors):
    return [WireTrafficSelector(ts.startAddress, ts.endAddress, ts.ipProtocol, ts.startPort, ts.endPort) for ts in selectors]


def trafficSelectors(payloads):
    tsi = first(payloads, TrafficSelectorsInitiator)
    tsr = first(payloads, TrafficSelectorsResponder)
    return (tsFromWire(tsi) if tsi is not None else None), (tsFromWire(tsr) if tsr is not None else None)

# -*- test-case-name: tests.test_wire_payloads -*-
"""
The Traffic Selector payloads TSi/TSr (RFC 7296 3.13) and their
selectors (RFC 7296 3.13.1, RFC 9478 security labels).
"""

import ipaddress
import struct

from ikedtx.wire.constants import PayloadType, TrafficSelectorType, nameOf
from ikedtx.wire.errors import InvalidSyntax, WireEncodeError
from ikedtx.wire.payloads.base import (
    _B3X,
    Payload,
    _Fields,
    _bytes,
    _check,
    registerPayload,
)


_TS_IPV4 = struct.Struct("!BBHHH4s4s")
_TS_IPV6 = struct.Struct("!BBHHH16s16s")
_TS_HEADER = struct.Struct("!BBH")


def _address(value):
    # ip_address() of an address object formats it and parses the text
    # again: a few percent of a responder's CPU per Child SA (bench/).
    if type(value) in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        return value
    return ipaddress.ip_address(value)


class TrafficSelector(_Fields):
    """
    An address-range traffic selector (RFC 7296 3.13.1), TS_IPV4_ADDR_RANGE
    or TS_IPV6_ADDR_RANGE according to the addresses.
    """

    compareAttributes = ("startAddress", "endAddress", "ipProtocol", "startPort", "endPort")

    def __init__(self, startAddress, endAddress, ipProtocol=0, startPort=0, endPort=65535):
        self.startAddress = _address(startAddress)
        self.endAddress = _address(endAddress)
        if self.startAddress.version != self.endAddress.version:
            raise WireEncodeError("traffic selector mixes IPv4 and IPv6")
        self.ipProtocol = ipProtocol
        self.startPort = startPort
        self.endPort = endPort

    @classmethod
    def fromNetwork(cls, network, ipProtocol=0, startPort=0, endPort=65535):
        network = ipaddress.ip_network(network)
        return cls(
            network.network_address, network.broadcast_address, ipProtocol, startPort, endPort
        )

    @property
    def tsType(self):
        if self.startAddress.version == 4:
            return TrafficSelectorType.TS_IPV4_ADDR_RANGE
        return TrafficSelectorType.TS_IPV6_ADDR_RANGE

    def encode(self):
        layout = _TS_IPV4 if self.startAddress.version == 4 else _TS_IPV6
        return layout.pack(
            self.tsType,
            _check(self.ipProtocol, 8, "IP protocol"),
            layout.size,
            _check(self.startPort, 16, "port"),
            _check(self.endPort, 16, "port"),
            self.startAddress.packed,
            self.endAddress.packed,
        )


class SecurityLabelSelector(_Fields):
    """
    A TS_SECLABEL traffic selector (RFC 9478 3).
    """

    compareAttributes = ("label",)
    tsType = TrafficSelectorType.TS_SECLABEL

    def __init__(self, label):
        self.label = _bytes(label, "label")

    def encode(self):
        length = _check(4 + len(self.label), 16, "selector length")
        return _TS_HEADER.pack(self.tsType, 0, length) + self.label


class UnknownTrafficSelector(_Fields):
    """
    A traffic selector of a type not decoded here, kept as octets.

    @ivar secondOctet: the octet after the TS Type (IP Protocol ID in the
        address ranges; its meaning depends on the type).
    @ivar data: the octets after the Selector Length.
    """

    compareAttributes = ("tsType", "secondOctet", "data")

    def __init__(self, tsType, data, secondOctet=0):
        self.tsType = tsType
        self.data = _bytes(data, "data")
        self.secondOctet = secondOctet

    def encode(self):
        length = _check(4 + len(self.data), 16, "selector length")
        return (
            _TS_HEADER.pack(
                _check(self.tsType, 8, "TS type"), _check(self.secondOctet, 8, "octet"), length
            )
            + self.data
        )


def _decodeSelector(view, offset, end):
    if end - offset < 4:
        raise InvalidSyntax("traffic selector truncated")
    tsType, second, length = _TS_HEADER.unpack_from(view, offset)
    if length < 4:
        raise InvalidSyntax("traffic selector length %d below 4" % (length,))
    if length > end - offset:
        raise InvalidSyntax("traffic selector of %d octets overruns its payload" % (length,))
    if tsType == TrafficSelectorType.TS_IPV4_ADDR_RANGE:
        layout, factory = _TS_IPV4, ipaddress.IPv4Address
    elif tsType == TrafficSelectorType.TS_IPV6_ADDR_RANGE:
        layout, factory = _TS_IPV6, ipaddress.IPv6Address
    elif tsType == TrafficSelectorType.TS_SECLABEL:
        return SecurityLabelSelector(bytes(view[offset + 4 : offset + length])), length
    else:
        return (
            UnknownTrafficSelector(tsType, bytes(view[offset + 4 : offset + length]), second),
            length,
        )
    if length != layout.size:
        raise InvalidSyntax(
            "%s selector of %d octets, not %d"
            % (nameOf(TrafficSelectorType, tsType), length, layout.size)
        )
    _, protocol, _, startPort, endPort, start, stop = layout.unpack_from(view, offset)
    selector = TrafficSelector.__new__(TrafficSelector)
    selector.startAddress = factory(start)
    selector.endAddress = factory(stop)
    selector.ipProtocol = protocol
    selector.startPort = startPort
    selector.endPort = endPort
    return selector, length


class _TrafficSelectors(Payload):
    """
    TSi/TSr payload (RFC 7296 3.13).

    @ivar selectors: L{list} of L{TrafficSelector},
        L{SecurityLabelSelector} or L{UnknownTrafficSelector}.
    """

    minimumBodyLength = 4
    compareAttributes = ("selectors", "critical")

    def __init__(self, selectors=(), critical=False):
        self.selectors = list(selectors)
        self.critical = critical

    def encodeBody(self):
        return _B3X.pack(_check(len(self.selectors), 8, "TS count")) + b"".join(
            s.encode() for s in self.selectors
        )

    @classmethod
    def decodeBody(cls, body):
        count = body[0]
        selectors = []
        offset = 4
        end = len(body)
        while offset < end:
            selector, length = _decodeSelector(body, offset, end)
            selectors.append(selector)
            offset += length
        if len(selectors) != count:
            raise InvalidSyntax(
                "TS payload announces %d selectors, carries %d" % (count, len(selectors))
            )
        return cls(selectors)


@registerPayload
class TrafficSelectorsInitiator(_TrafficSelectors):
    payloadType = PayloadType.TSi


@registerPayload
class TrafficSelectorsResponder(_TrafficSelectors):
    payloadType = PayloadType.TSr


TSi = TrafficSelectorsInitiator
TSr = TrafficSelectorsResponder

# -*- test-case-name: tests.test_core_ts -*-
"""
Traffic selectors (RFC 7296 section 3.13.1) as values, and the narrowing of
section 2.9.

A selector is a range of addresses of one family, a range of ports and one IP
protocol (0 for any). Selectors are immutable and ordered, so lists of them can
be compared and deduplicated.
"""

import functools
from dataclasses import dataclass
from ipaddress import ip_address, ip_network, summarize_address_range

ANY_PROTOCOL = 0
PORT_ANY = (0, 65535)
# ICMP and ICMPv6 put type and code in the port fields (RFC 4301 4.4.1.1).
_OPAQUE_PORTS = (1, 58)


@dataclass(frozen=True, order=True, slots=True)
class TrafficSelector:
    """
    @ivar version: 4 or 6.
    @ivar startAddress: first address of the range (an ipaddress object).
    @ivar endAddress: last address of the range.
    @ivar ipProtocol: IP protocol number, 0 for any.
    @ivar startPort: first port.
    @ivar endPort: last port.
    """

    version: int
    startAddress: object
    endAddress: object
    ipProtocol: int = ANY_PROTOCOL
    startPort: int = 0
    endPort: int = 65535

    def __post_init__(self):
        if self.startAddress.version != self.version or self.endAddress.version != self.version:
            raise ValueError("traffic selector mixes address families")

    @classmethod
    def fromNetwork(cls, network, ipProtocol=ANY_PROTOCOL, ports=PORT_ANY):
        """
        Make the selector of a network (anything C{ip_network} takes) with an
        optional protocol and C{(start, end)} port range.
        """
        network = ip_network(network, strict=False)
        return cls(network.version, network.network_address, network.broadcast_address, ipProtocol, ports[0], ports[1])

    @classmethod
    def forAddress(cls, address, ipProtocol=ANY_PROTOCOL, ports=PORT_ANY):
        address = ip_address(address)
        return cls(address.version, address, address, ipProtocol, ports[0], ports[1])

    @classmethod
    def anyOf(cls, version):
        """
        The selector of all traffic of one address family.
        """
        return cls.fromNetwork("0.0.0.0/0" if version == 4 else "::/0")

    def intersect(self, other):
        """
        Return the selector covering what both C{self} and C{other} cover, or
        L{None} when they share nothing.
        """
        if self.version != other.version:
            return None
        if self.ipProtocol == ANY_PROTOCOL:
            protocol = other.ipProtocol
        elif other.ipProtocol in (ANY_PROTOCOL, self.ipProtocol):
            protocol = self.ipProtocol
        else:
            return None
        start = max(self.startAddress, other.startAddress)
        end = min(self.endAddress, other.endAddress)
        startPort = max(self.startPort, other.startPort)
        endPort = min(self.endPort, other.endPort)
        if start > end or startPort > endPort:
            return None
        return TrafficSelector(self.version, start, end, protocol, startPort, endPort)

    def contains(self, other):
        """
        Whether every packet C{other} selects is selected by C{self}.
        """
        return self.intersect(other) == other

    @property
    def isOpaquePorts(self):
        """
        RFC 7296 3.13.1: start port 65535 and end port 0 select "OPAQUE"
        ports, as a peer that cannot see them (a fragment) sends.
        """
        return self.startPort == 65535 and self.endPort == 0

    def networks(self):
        """
        The CIDR networks making up the address range (for the kernel, whose
        selectors are prefixes).
        """
        return list(summarize_address_range(self.startAddress, self.endAddress))

    def __str__(self):
        return _describe(self)

    def _describe(self):
        if self.startAddress == self.endAddress:
            addresses = str(self.startAddress)
        else:
            nets = self.networks()
            addresses = str(nets[0]) if len(nets) == 1 else "%s-%s" % (self.startAddress, self.endAddress)
        text = addresses
        if self.ipProtocol:
            text += " proto %d" % (self.ipProtocol,)
        if (self.startPort, self.endPort) != PORT_ANY:
            if self.startPort == self.endPort:
                text += " port %d" % (self.startPort,)
            else:
                text += " port %d-%d" % (self.startPort, self.endPort)
        return text


def _dedupe(selectors):
    result = []
    for ts in selectors:
        if not any(kept.contains(ts) for kept in result):
            result = [kept for kept in result if not ts.contains(kept)]
            result.append(ts)
    return result


def narrow(proposed, allowed):
    """
    RFC 7296 2.9: the responder's answer to C{proposed} (the peer's list for
    one side) given what its policy C{allowed} for that side: every non-empty
    intersection, deduplicated, in the peer's order.

    @return: a list, empty when nothing is acceptable (TS_UNACCEPTABLE).
    """
    result = []
    for ts in proposed:
        for ok in allowed:
            common = ts.intersect(ok)
            if common is not None:
                result.append(common)
    return _dedupe(result)


def isSubsetOf(selectors, proposed):
    """
    Whether each of C{selectors} (what a responder answered) lies within one
    of C{proposed} (what we offered), as an initiator must check.
    """
    return all(any(offer.contains(ts) for offer in proposed) for ts in selectors)


# Selectors are frozen and few (a policy's, and what peers narrow them to),
# while each Child SA up is logged with them: summarize_address_range is a
# few percent of a responder's CPU per Child SA (bench/).
_describe = functools.lru_cache(maxsize=4096)(TrafficSelector._describe)

# -*- test-case-name: tests.test_kernel_decoupled -*-
"""
The one interface between the IKE daemon and an IPsec datapath.

The core decides what to install; a provider of L{IKernel} installs it: the
Linux XFRM provider (netlink), the user-space ESP provider (TUN), or the
decoupled provider that only records (C{set decouple}, or hosts without a
datapath). Installs and removals return Deferreds because a provider may be
asynchronous; SPI allocation is synchronous because the core needs the SPI to
build the message it is about to send.
"""

from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import ip_address
from typing import Optional, Tuple

from zope.interface import Attribute, Interface


@dataclass(frozen=True)
class KernelSelector:
    """
    One traffic selector as the datapath matches it: an address range and a
    port range for one IP protocol (0: any).
    """

    startAddress: object
    endAddress: object
    ipProtocol: int = 0
    startPort: int = 0
    endPort: int = 65535


@dataclass(frozen=True)
class KernelSA:
    """
    One unidirectional IPsec SA.

    @ivar spi: the SPI, as an integer (ESP/AH 32 bits, IPcomp CPI 16 bits).
    @ivar protocol: L{ikedtx.wire.constants.ProtocolId} ESP or AH.
    @ivar inbound: C{True} for the SA we receive with.
    @ivar source: outer source address.
    @ivar destination: outer destination address.
    @ivar mode: C{"tunnel"} or C{"transport"}.
    @ivar encryption: C{(EncrId, keyLengthBits)} or L{None} for AH.
    @ivar encryptionKey: key material for the cipher (salt included).
    @ivar integrity: L{ikedtx.wire.constants.IntegId} or L{None} for AEAD.
    @ivar integrityKey: key material for the integrity algorithm.
    @ivar esn: extended sequence numbers negotiated.
    @ivar encapsulation: C{(sourcePort, destinationPort)} for ESP in UDP
        (RFC 3948), or L{None}.
    @ivar reqid: ties the two SAs of a Child SA to its flows.
    @ivar lifetimeSeconds: hard lifetime; L{None} for none.
    @ivar lifetimeBytes: hard byte limit; L{None} for none.
    @ivar selectors: C{(local, remote)} tuples of L{KernelSelector}.
    """

    spi: int
    protocol: int
    inbound: bool
    source: object
    destination: object
    mode: str
    encryption: Optional[Tuple[int, Optional[int]]]
    encryptionKey: bytes = field(repr=False)
    integrity: Optional[int]
    integrityKey: bytes = field(repr=False)
    esn: bool = False
    encapsulation: Optional[Tuple[int, int]] = None
    reqid: int = 0
    lifetimeSeconds: Optional[int] = None
    lifetimeBytes: Optional[int] = None
    selectors: tuple = ()


@dataclass(frozen=True)
class KernelFlow:
    """
    A flow: traffic matching C{source}/C{destination} is protected by the
    SAs with C{reqid} between C{localAddress} and C{peerAddress}.

    @ivar direction: C{"in"}, C{"out"} or C{"fwd"}.
    """

    source: KernelSelector
    destination: KernelSelector
    direction: str
    protocol: int
    mode: str
    localAddress: object
    peerAddress: object
    reqid: int = 0


class IKernel(Interface):
    """
    An IPsec datapath the daemon installs SAs and flows into.
    """

    name = Attribute("A short name for logs and ikectl: 'xfrm', 'userspace', 'decoupled'.")

    def allocateSpi(protocol, source, destination):
        """
        Reserve an inbound SPI for C{protocol} on SAs from C{source} to
        C{destination}, and return it (an C{int}).
        """

    def addSA(sa):
        """
        Install the L{KernelSA} C{sa}; return a Deferred that fires when it
        is in place or fails.
        """

    def deleteSA(sa):
        """
        Remove the L{KernelSA} C{sa}; return a Deferred.
        """

    def addFlow(flow):
        """
        Install the L{KernelFlow} C{flow}; return a Deferred.
        """

    def deleteFlow(flow):
        """
        Remove the L{KernelFlow} C{flow}; return a Deferred.
        """

    def flush():
        """
        Remove every SA and flow this daemon installed; return a Deferred.
        """


@lru_cache(maxsize=4096)
def _parse(text):
    return ip_address(text)


def addressOf(value):
    """
    Normalise an address given as a string or an ipaddress object; the
    daemon sees few distinct addresses, so parsed strings are remembered
    (ipaddress parsing showed in the per-message profile).
    """
    return _parse(value) if isinstance(value, str) else value

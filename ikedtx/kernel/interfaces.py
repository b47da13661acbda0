# -*- test-case-name: tests.test_kernel_decoupled -*-
"""
The one interface between the IKE daemon and an IPsec datapath, both ways.

The core decides what to install; a provider of L{IKernel} installs it: the
Linux XFRM provider (netlink), the user-space ESP provider (TUN), or the
decoupled provider that only records (C{set decouple}, or tests). Every
operation returns a Deferred, SPI allocation included, because a provider
may have to ask the kernel. What the datapath notices on its own (a packet
that matches a flow with no SA, an SA whose soft or hard lifetime ran out,
a local address that came or went) goes the other way, to the
L{IDatapathEvents} provider the daemon gives with L{IKernel.setEventReceiver}.

The records here are plain values: the core builds them from its Child SAs
and hands them over; a provider keeps no reference to core objects.
"""

from dataclasses import dataclass, field
from typing import Optional, Tuple

from zope.interface import Attribute, Interface


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class KernelSA:
    """
    One unidirectional IPsec SA.

    @ivar spi: the SPI, as an integer (32 bits).
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
    @ivar softLifetimeSeconds: when the datapath reports a soft expire
        (L{IDatapathEvents.expired} with C{hard=False}); L{None} for none.
    @ivar softLifetimeBytes: the byte count of the soft expire.
    @ivar replayWindow: the anti-replay window in packets (0: none).
    @ivar ipcompCpi: the CPI of the IPcomp SA (RFC 3173, DEFLATE) that goes
        with this SA in the same direction, or L{None}.
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
    softLifetimeSeconds: Optional[int] = None
    softLifetimeBytes: Optional[int] = None
    replayWindow: int = 32
    ipcompCpi: Optional[int] = None
    selectors: tuple = ()


@dataclass(frozen=True, slots=True)
class KernelFlow:
    """
    A flow: traffic matching C{source}/C{destination} is protected by the
    SAs with C{reqid} between C{localAddress} and C{peerAddress}.

    @ivar direction: C{"in"}, C{"out"} or C{"fwd"}.
    @ivar ipcomp: the flow's packets are compressed (an IPcomp SA goes with
        the ESP or AH SA).
    """

    source: KernelSelector
    destination: KernelSelector
    direction: str
    protocol: int
    mode: str
    localAddress: object
    peerAddress: object
    reqid: int = 0
    ipcomp: bool = False


#: The reqids of trap flows (L{ikedtx.core.trap}): far above the core's own,
#: which count up from 1.
TRAP_REQID_BASE = 0xF00000


def isTrap(flow):
    """
    Whether C{flow} is a trap flow (its reqid is in the trap range).
    """
    return flow.reqid >= TRAP_REQID_BASE


def claimPosition(claims, flow):
    """
    Where C{flow} goes in C{claims}, the flows that want one selector in the
    order they came, of which the datapath uses the last: after the other
    traps (the newest of the same kind wins) but before every Child SA's
    flow, so that a trap installed later (ikectl couple, a reload) never
    takes a Child SA's packets. C{claims} holds flows, or tuples whose first
    element is one.
    """
    if not isTrap(flow):
        return len(claims)
    position = 0
    for claim in claims:
        if not isTrap(claim[0] if isinstance(claim, tuple) else claim):
            break
        position += 1
    return position


@dataclass(frozen=True)
class KernelSAUsage:
    """
    What the datapath counted for one SA (L{IKernel.querySA}).

    @ivar bytes: payload bytes protected or accepted.
    @ivar packets: packets protected or accepted.
    @ivar installed: when the SA was installed (seconds, the provider's
        clock: wall-clock seconds for XFRM).
    @ivar lastUsed: when a packet last used it, or L{None} if none has.
    """

    bytes: int = 0
    packets: int = 0
    installed: Optional[float] = None
    lastUsed: Optional[float] = None


class KernelError(Exception):
    """
    The datapath refused an operation; the message says which SA or flow
    and the datapath's own reason (for XFRM, the netlink error).
    """


class IDatapathEvents(Interface):
    """
    What a datapath tells the daemon (the core turns each into work: an
    acquire starts a negotiation, a soft expire a rekey, a hard expire a
    delete).
    """

    def acquire(reqid, source, destination):
        """
        A packet matched the outbound flow with C{reqid} and there is no SA
        for it yet; C{source} and C{destination} are L{KernelSelector}s of
        that packet (single addresses, and ports where the flow has them).
        """

    def expired(protocol, spi, destination, hard):
        """
        The SA C{(protocol, spi, destination)} reached its soft (C{hard}
        false) or hard lifetime; after a hard expire the datapath has
        removed it.
        """

    def addressChanged(address, added):
        """
        The local address C{address} was added to (C{added} true) or removed
        from an interface of this host (MOBIKE, RFC 4555 3.8).
        """


class IKernel(Interface):
    """
    An IPsec datapath the daemon installs SAs and flows into.
    """

    name = Attribute("A short name for logs and ikectl: 'xfrm', 'userspace', 'decoupled'.")

    def setEventReceiver(receiver):
        """
        Deliver datapath events to the L{IDatapathEvents} provider
        C{receiver} from now on (L{None}: drop them).
        """

    def allocateSpi(protocol, source, destination):
        """
        Reserve an inbound SPI for C{protocol} on SAs from C{source} to
        C{destination}; return a Deferred that fires with it (an C{int}),
        or fails with L{KernelError}.
        """

    def addSA(sa):
        """
        Install the L{KernelSA} C{sa}; return a Deferred that fires when it
        is in place or fails with L{KernelError}.
        """

    def updateSA(old, new):
        """
        Replace the installed L{KernelSA} C{old} by C{new}, which differs in
        its addresses or encapsulation (MOBIKE, NAT mapping changes); return
        a Deferred.
        """

    def deleteSA(sa):
        """
        Remove the L{KernelSA} C{sa}; return a Deferred.
        """

    def detachSA(sa):
        """
        Remove the L{KernelSA} C{sa} for now (C{ikectl decouple}): a later
        L{addSA} of the same SA goes on from the sequence numbers it had,
        where the datapath can (XFRM); return a Deferred.
        """

    def querySA(sa):
        """
        Return a Deferred that fires with the L{KernelSAUsage} of the
        installed L{KernelSA} C{sa}.
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
        Remove every SA and flow this daemon installed (and the IPv6 block);
        return a Deferred.
        """

    def blockIPv6():
        """
        Drop IPv6 traffic that no installed flow covers, until L{flush}
        (iked's default; C{-6} leaves IPv6 alone); flows for IPv6 override
        the block while they are installed. Return a Deferred.
        """

    def unblockIPv6():
        """
        Lift the block of L{blockIPv6} (C{ikectl decouple}); the flows stay.
        Return a Deferred.
        """

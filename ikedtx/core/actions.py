# -*- test-case-name: tests.test_core_async -*-
"""
What the sans-IO core asks its shell to do.

Every call into L{ikedtx.core.engine.IKECore} returns a list of these; the
shell carries them out in order (the Twisted shell in L{ikedtx.net.shell},
the in-memory pump in the tests).
"""

from dataclasses import dataclass, field
from typing import Any, Hashable, Optional, Tuple


@dataclass(frozen=True)
class SendDatagram:
    """
    Send C{data} (an IKE message, without the non-ESP marker) from C{local}
    to C{remote}, both C{(host, port)}; the shell adds the marker when the
    local port is the NAT-T port.
    """

    data: bytes = field(repr=False)
    local: Tuple[str, int]
    remote: Tuple[str, int]


@dataclass(frozen=True)
class SetTimer:
    """
    Call C{IKECore.timerExpired(key)} after C{delay} seconds, replacing any
    timer with the same key.
    """

    key: Hashable
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    key: Hashable


@dataclass(frozen=True)
class AllocateSpi:
    """
    Reserve an inbound SPI for C{protocol} on SAs from C{source} to
    C{destination} (L{IKernel.allocateSpi}); answer with
    C{IKECore.spiAllocated(token, spi)} or C{IKECore.spiAllocationFailed(token,
    error)}.
    """

    token: int
    protocol: int
    source: str
    destination: str


@dataclass(frozen=True)
class ReleaseSpi:
    """
    Give back the inbound SPI C{spi} of an L{AllocateSpi} (same
    C{protocol}, C{source}, C{destination}) that no SA was installed with
    (the exchange failed or was abandoned), and the IPcomp CPI C{cpi}
    allocated with it, or L{None}: C{IKernel.deleteSA} of the larval SA.
    """

    protocol: int
    spi: int
    source: str
    destination: str
    cpi: Optional[int] = None

    def kernelSA(self):
        """
        The L{KernelSA} record that names the larval SA (no keys).
        """
        from ikedtx.kernel.interfaces import KernelSA

        return KernelSA(self.spi, self.protocol, True, self.source, self.destination, "tunnel", None, b"", None, b"",
                        ipcompCpi=self.cpi)


@dataclass(frozen=True)
class CheckCertificateStatus:
    """
    Ask the OCSP responder at C{url} (or the one the certificates name,
    L{ikedtx.pki.ocsp.responderUrl}) whether the peer's x509 C{certificate},
    issued by C{issuer}, is good; C{tolerate} and C{maxAge} as iked.conf's
    C{set ocsp}. Answer with C{IKECore.certificateStatus(token, good,
    reason)}.
    """

    token: int
    certificate: Any
    issuer: Any
    url: Optional[str]
    tolerate: int
    maxAge: Optional[int]


@dataclass(frozen=True)
class InstallChildSA:
    """
    Install the L{KernelSA}s C{sas} (inbound first) and the L{KernelFlow}s
    C{flows} of the Child SA C{reqid}; answer with
    C{IKECore.childInstalled(reqid)} or C{IKECore.installFailed(reqid, error)}.
    """

    reqid: int
    sas: Tuple[Any, ...]
    flows: Tuple[Any, ...]


@dataclass(frozen=True)
class RemoveChildSA:
    """
    Remove the L{KernelSA}s and L{KernelFlow}s of the Child SA C{reqid}
    (those its L{InstallChildSA} carried). C{ikeSPIs} are the C{(spiI,
    spiR)} of its IKE SA (RADIUS accounting reads its counters first).
    """

    reqid: int
    sas: Tuple[Any, ...]
    flows: Tuple[Any, ...]
    ikeSPIs: Optional[Tuple[bytes, bytes]] = None


@dataclass(frozen=True)
class UpdateChildSA:
    """
    Move the installed L{KernelSA}s C{old} of the Child SA C{reqid} to the
    addresses and encapsulation of C{new} (same SPIs and keys, pairwise;
    MOBIKE, RFC 4555): the datapath keeps their sequence numbers. Its
    L{KernelFlow}s C{oldFlows} become C{newFlows} (pairwise; their tunnel
    endpoints moved): each new one goes in before the old one goes.
    """

    reqid: int
    old: Tuple[Any, ...]
    new: Tuple[Any, ...]
    oldFlows: Tuple[Any, ...] = ()
    newFlows: Tuple[Any, ...] = ()


@dataclass(frozen=True)
class IKESAMoved:
    """
    The IKE SA of the policy named C{policy} moved to the addresses
    C{local} and C{remote} (MOBIKE, RFC 4555, or a NAT mapping change),
    after the L{UpdateChildSA}s of its Child SAs: the policy's trap flows
    (L{ikedtx.core.trap}) follow it to the new tunnel endpoints.
    """

    policy: str
    local: str
    remote: str


@dataclass(frozen=True)
class QuerySAUsage:
    """
    Ask the datapath what it counted for the installed L{KernelSA}s C{sas}
    (C{IKernel.querySA}); answer with C{IKECore.usageReported(token,
    usages)}, one L{KernelSAUsage} (or L{None} where the query failed) per
    SA, in order.
    """

    token: int
    sas: Tuple[Any, ...]


@dataclass(frozen=True)
class SendNatKeepalive:
    """
    RFC 3948 4: one 0xFF byte from C{local} to C{remote} on the NAT-T port.
    """

    local: Tuple[str, int]
    remote: Tuple[str, int]


@dataclass(frozen=True)
class IKESAUp:
    """
    An IKE SA is established (both AUTHs verified).

    @ivar spiI: the initiator's SPI.
    @ivar spiR: the responder's SPI.
    @ivar policy: the name of its policy.
    @ivar local: our endpoint C{(host, port)}.
    @ivar remote: the peer's endpoint.
    @ivar peerId: the peer's identity, as text.
    """

    spiI: bytes
    spiR: bytes
    policy: str
    local: Tuple[str, int]
    remote: Tuple[str, int]
    peerId: str


@dataclass(frozen=True)
class IKESADown:
    """
    An IKE SA is gone; C{reason} says why, C{established} whether it had
    been up.

    @ivar cause: why, for monitors: C{"deleted"} (by either side or a
        command), C{"auth"} (authentication failed), C{"timeout"} (the
        peer stopped answering: retransmissions given up) or C{"failed"}
        (the negotiation failed otherwise).
    """

    spiI: bytes
    spiR: bytes
    policy: str
    remote: Tuple[str, int]
    reason: str
    established: bool
    cause: str = "deleted"


@dataclass(frozen=True)
class IKESARekeyed:
    """
    The IKE SA C{oldSpiI}/C{oldSpiR} was rekeyed (RFC 7296 2.18): the IKE
    SA C{spiI}/C{spiR} took its place and its Child SAs (its L{IKESAUp}
    comes before this).
    """

    oldSpiI: bytes
    oldSpiR: bytes
    spiI: bytes
    spiR: bytes
    policy: str
    remote: Tuple[str, int]


@dataclass(frozen=True)
class ChildSARekeyed:
    """
    The Child SA with the SPIs C{oldSpiIn}/C{oldSpiOut} was rekeyed (RFC
    7296 2.8): the one with C{spiIn}/C{spiOut} replaces it (SPIs as
    C{int}s; ours, the inbound one, first).
    """

    reqid: int
    oldSpiIn: int
    oldSpiOut: int
    spiIn: int
    spiOut: int
    policy: str
    remote: Tuple[str, int]


@dataclass(frozen=True)
class RequestDone:
    """
    The command C{requestId} (see C{IKECore.initiate}) finished: C{result}
    on success, or C{error} (an exception) on failure.
    """

    requestId: int
    result: Any = None
    error: Optional[BaseException] = None


@dataclass(frozen=True)
class AddVirtualAddress:
    """
    A configuration payload lent us C{address} (RFC 7296 2.19): put it on
    C{interface} (the policy's C{iface}), or where the datapath puts such
    addresses when L{None}.
    """

    address: Any
    interface: Optional[str] = None


@dataclass(frozen=True)
class RemoveVirtualAddress:
    """
    The IKE SA that lent us C{address} is gone: take it off again.
    """

    address: Any
    interface: Optional[str] = None


@dataclass(frozen=True)
class RunEAP:
    """
    Give the peer's EAP packet to an EAP session (L{IEAPSession.receive}),
    or start it when C{packet} is L{None} (L{IEAPSession.start}); answer
    with C{IKECore.eapAnswered(token, step)} with the L{EAPStep} (or the
    failure) its Deferred fires with.
    """

    token: int
    session: object = field(repr=False)
    packet: Optional[bytes] = field(default=None, repr=False)


@dataclass(frozen=True)
class AbortEAP:
    """
    The IKE SA of an EAP session went away or failed: L{IEAPSession.abort}.
    """

    session: object = field(repr=False)

# -*- test-case-name: tests.test_core_exchanges -*-
"""
Run-time knobs of the core that do not come from iked.conf policies: ports,
the NAT-T mode of the command line (-T, -t, -p), cookie thresholds, timers.
"""

from dataclasses import dataclass, field

from ikedtx.core.retransmit import RetransmitSchedule
from ikedtx.core.timers import BackoffPolicy
from ikedtx.wire.constants import IKE_PORT, NATT_PORT

NATT_NORMAL = "normal"  # negotiate NAT-T (RFC 7296 2.23)
NATT_DISABLED = "disabled"  # iked -T: no NAT-D payloads, never port 4500
NATT_ONLY = "only"  # iked -t / -p: everything on the NAT-T port


@dataclass(frozen=True)
class CoreSettings:
    """
    @ivar ikePort: our IKE port (500).
    @ivar nattPort: our NAT-T port (4500, or iked -p).
    @ivar peerIkePort: the port peers listen for IKE on.
    @ivar peerNattPort: the port peers listen for NAT-T on.
    @ivar nattMode: L{NATT_NORMAL}, L{NATT_DISABLED} or L{NATT_ONLY}.
    @ivar passive: iked -S / C{set passive}: never send a request.
    @ivar cookieThreshold: half-open IKE SAs above which the responder
        demands a COOKIE (RFC 7296 2.6).
    @ivar halfOpenPerPeer: half-open responder IKE SAs kept from one
        address; past it, the oldest of that address is given up.
    @ivar halfOpenMax: half-open responder IKE SAs kept in all; more are
        dropped, even with a valid COOKIE.
    @ivar fragmentBytesMax: octets of fragments (RFC 7383) held for
        reassembly over all IKE SAs.
    @ivar ikeSAsPerIdentity: established IKE SAs of one authenticated
        peer identity; past it a new one is refused in IKE_AUTH with
        AUTHENTICATION_FAILED (unless C{set enforcesingleikesa}, which
        replaces the old one); 0 for no cap.
    @ivar responseCacheBytesMax: octets of responses kept for
        retransmitted requests (RFC 7296 2.1) over all IKE SAs; past it,
        no new half-open IKE SA is made. Each established IKE SA keeps its
        last response: 215 octets with a PSK, 737 with an ECDSA P-256
        certificate, 1,374 with RSA-2048 (IKE_AUTH with a Child SA), so
        256 MiB holds those of about 195,000 IKE SAs with RSA
        certificates (16 MiB, the default before, stopped new IKE SAs at
        about 12,000 of them). What unauthenticated peers can make it
        hold is bounded by C{halfOpenMax}.
    @ivar cachedResendsMax: how many times one cached response is sent
        again for retransmissions of its request; later copies are
        dropped.
    @ivar halfOpenTimeout: seconds a responder keeps an IKE SA that has
        not authenticated.
    @ivar retransmit: the L{RetransmitSchedule} of our requests.
    @ivar fragmentSize: the largest IKE message (bytes of UDP payload)
        sent unfragmented when the peer supports RFC 7383; 0 (the
        default) sizes fragments by the path as iked does: datagrams of
        576 octets over IPv4, 1280 over IPv6 (RFC 7383 2.5.1).
    @ivar nonceSize: bytes of our nonces.
    @ivar natKeepalive: seconds between NAT keepalives when we are behind
        a NAT (RFC 3948 4), 0 for none.
    @ivar maxInitRetries: how many times IKE_SA_INIT is restarted for a
        COOKIE or INVALID_KE_PAYLOAD before giving up.
    @ivar vendorId: our VENDOR_ID payload's data, empty for none.
    @ivar reinitiate: the L{BackoffPolicy} of re-initiating an active
        policy whose IKE SA failed or was deleted.
    @ivar childless: as initiator (RFC 6023; strongSwan's C{childless}):
        C{"never"} (a Child SA in IKE_AUTH, as iked), C{"prefer"} (none in
        IKE_AUTH when the responder announced CHILDLESS_IKEV2_SUPPORTED, the
        Child SA by CREATE_CHILD_SA next) or C{"force"} (the same, and a
        responder without it is given up). As responder we always take both.
    @ivar dpdJitter: each DPD timer (C{dpd_check_interval}) runs up to this
        fraction of the interval longer, drawn per IKE SA and per arming
        (L{ikedtx.core.tasks.dpd}): IKE SAs established together are not
        all checked in the same second.
    """

    ikePort: int = IKE_PORT
    nattPort: int = NATT_PORT
    peerIkePort: int = IKE_PORT
    peerNattPort: int = NATT_PORT
    nattMode: str = NATT_NORMAL
    passive: bool = False
    cookieThreshold: int = 64
    halfOpenPerPeer: int = 32
    halfOpenMax: int = 4096
    fragmentBytesMax: int = 8 << 20
    ikeSAsPerIdentity: int = 100
    responseCacheBytesMax: int = 256 << 20
    cachedResendsMax: int = 16
    halfOpenTimeout: float = 60.0
    retransmit: RetransmitSchedule = field(default_factory=RetransmitSchedule)
    fragmentSize: int = 0
    nonceSize: int = 32
    natKeepalive: float = 20.0
    maxInitRetries: int = 4
    reinitiate: BackoffPolicy = field(default_factory=BackoffPolicy)
    vendorId: bytes = b""
    childless: str = "never"
    dpdJitter: float = 0.25

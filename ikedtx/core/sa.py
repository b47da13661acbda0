# -*- test-case-name: tests.test_core_states -*-
"""
The state the core keeps per IKE SA and per Child SA.

Their states change only through the transition tables of
L{ikedtx.core.states}. Every attribute is declared in C{__init__}. Nothing
here does I/O.
"""

from ikedtx.addresses import addressOf
from ikedtx.core.states import CHILD_TRANSITIONS, IKE_TRANSITIONS, ChildState, IKEState, StateMachine
from ikedtx.kernel.interfaces import KernelFlow, KernelSA, KernelSelector
from ikedtx.wire.constants import ProtocolId


class IKESA(StateMachine):
    """
    One IKE SA.

    @ivar initiator: whether we are the original initiator.
    @ivar spiI: the initiator's SPI (8 bytes).
    @ivar spiR: the responder's SPI (8 bytes; zeros until known).
    @ivar state: an L{IKEState}.
    @ivar policy: the L{ikedtx.config.model.Policy} it runs under.
    @ivar local: our endpoint C{(host, port)}.
    @ivar remote: the peer's endpoint C{(host, port)}.
    @ivar natLocal: a NAT is in front of us (RFC 7296 2.23).
    @ivar natRemote: a NAT is in front of the peer.
    @ivar nattEnabled: IKE runs over the NAT-T port (after a NAT was
        detected, or as MOBIKE peers do in any case).
    @ivar proposal: the negotiated L{Chosen} IKE proposal.
    @ivar nonceI: the initiator's nonce.
    @ivar nonceR: the responder's nonce.
    @ivar keys: the L{ikedtx.crypto.keymat} IKE SA keys.
    @ivar cipherOut: the SK cipher we protect our messages with.
    @ivar cipherIn: the SK cipher the peer's messages are opened with.
    @ivar initRequest: the IKE_SA_INIT request as sent (for AUTH).
    @ivar initResponse: the IKE_SA_INIT response as sent.
    @ivar localId: the L{IKEIdentity} we authenticate as.
    @ivar peerId: the L{IKEIdentity} the peer authenticated as.
    @ivar peerCredential: the peer's verified credential (signatures).
    @ivar children: our L{ChildSA}s.
    @ivar taskManager: its L{ikedtx.core.taskmanager.TaskManager} (message
        IDs, the pending request, the response cache, queued tasks).
    @ivar keyExchange: our key exchange in progress (IKE_SA_INIT).
    @ivar peerFragmentation: the peer sent IKEV2_FRAGMENTATION_SUPPORTED.
    @ivar peerSignatureHashes: the peer's SIGNATURE_HASH_ALGORITHMS.
    @ivar peerChildless: the peer sent CHILDLESS_IKEV2_SUPPORTED (RFC 6023).
    @ivar peerMobike: the peer sent MOBIKE_SUPPORTED.
    @ivar mobikeInitiator: we initiated the first IKE SA of this chain of
        rekeys, so we are the MOBIKE initiator (RFC 4555 3.1; an IKE SA
        rekey makes the rekey's initiator the new IKE SA's original
        initiator, but leaves the MOBIKE roles as they were).
    @ivar certreqAuthorities: the SHA-1 hashes of the authorities the peer
        named in its CERTREQ payloads (a hint for our certificate).
    @ivar cookie: the COOKIE the responder asked us to repeat (RFC 7296 2.6).
    @ivar halfOpenKey: the key of a responder's half-open registration
        C{(spiI, remote)}, until it is established.
    @ivar keepUp: whether it is initiated again when it fails or is
        deleted: L{None} (the default) follows the policy (active policies
        are kept up, whoever initiated the IKE SA), C{False} once deleted
        on request, at shutdown or by a reload.
    @ivar created: when it was created (the core's clock).
    @ivar established: when it became VALID, or L{None}.
    @ivar lastActivity: when the peer last sent an authenticated message.
    @ivar deleteReason: why it was deleted, once it is.
    @ivar initialContactSent: whether our IKE_AUTH request carried
        INITIAL_CONTACT.
    @ivar authFailed: whether the peer failed to authenticate (reported to
        monitors when the SA goes).
    @ivar reassembler: the L{Reassembler} of fragmented messages (RFC 7383).
    @ivar intermediate: the L{ikedtx.core.tasks.intermediate.Intermediate}
        progress of the IKE_INTERMEDIATE exchanges (RFC 9242, RFC 9370
        additional key exchanges), or L{None} when there are none.
    @ivar rekeying: as initiator, our IKE SA rekey task in progress, or
        L{None} (L{ikedtx.core.tasks.ikerekey}).
    @ivar rekeyedBy: the IKE SA that replaced this one (RFC 7296 1.3.2),
        once rekeyed; it then only waits for its Delete.
    @ivar reauthBy: the IKE SA we opened to reauthenticate this one
        (L{ikedtx.core.reauth}), or L{None}.
    @ivar reauthOf: the IKE SA this one reauthenticates, until it is
        deleted, or L{None}.
    @ivar recreating: the L{ikedtx.core.reauth.RecreateChildTask}s still
        making the old IKE SA's Child SAs on this one, once started.
    """

    # Slots, not an instance dict: one per IKE SA held, and a dict of more
    # than 30 keys (CPython's limit for key-sharing dicts) costs 1.6 KB.
    __slots__ = (
        "initiator", "spiI", "spiR", "state", "policy", "local", "remote", "natLocal", "natRemote", "nattEnabled",
        "proposal", "nonceI", "nonceR", "keyExchange", "keys", "cipherOut", "cipherIn", "initRequest", "initResponse",
        "localId", "peerId", "peerCredential", "peerVirtualIPs", "localVirtualIPs", "peerConfig", "addressRefused",
        "children", "taskManager", "peerFragmentation", "peerSignatureHashes", "peerChildless", "peerMobike",
        "mobikeInitiator", "certreqAuthorities", "cookie", "halfOpenKey", "keepUp", "created", "established",
        "lastActivity", "deleteReason", "authFailed", "initialContactSent", "eap", "eapClient", "eapIdentity",
        "reassembler", "intermediate", "rekeying", "rekeyedBy", "reauthBy", "reauthOf", "recreating",
        "lastAddressUpdate", "localLost",
        # Its TaskManager refers to it weakly (no cycle to collect).
        "__weakref__",
    )

    transitions = IKE_TRANSITIONS

    def __init__(self, initiator, spiI, spiR, policy, local, remote, now):
        self.initiator = initiator
        self.spiI = spiI
        self.spiR = spiR
        self.state = IKEState.INIT
        self.policy = policy
        self.local = local
        self.remote = remote
        self.natLocal = False
        self.natRemote = False
        self.nattEnabled = False
        self.proposal = None
        self.nonceI = None
        self.nonceR = None
        self.keyExchange = None
        self.keys = None
        self.cipherOut = None
        self.cipherIn = None
        self.initRequest = None
        self.initResponse = None
        self.localId = None
        self.peerId = None
        self.peerCredential = None
        # Configuration payloads (tasks/config.py): the addresses lent to
        # the peer from a pool, those the peer gave us, and the other
        # attributes of its CFG_REPLY.
        self.peerVirtualIPs = []
        self.localVirtualIPs = []
        self.peerConfig = []
        self.addressRefused = False
        self.children = []
        self.taskManager = None
        self.peerFragmentation = False
        self.peerSignatureHashes = ()
        self.peerChildless = False
        self.peerMobike = False
        self.mobikeInitiator = initiator
        self.certreqAuthorities = []
        self.cookie = None
        self.halfOpenKey = None
        self.keepUp = None
        self.created = now
        self.established = None
        self.lastActivity = now
        self.deleteReason = None
        self.authFailed = False
        self.initialContactSent = False
        # EAP (RFC 7296 2.16): the responder's conversation
        # (ikedtx.core.tasks.eap.EAPResponder) and the identity it proved.
        self.eap = None
        self.eapClient = None
        self.eapIdentity = None
        self.reassembler = None
        self.intermediate = None
        self.rekeying = None
        self.rekeyedBy = None
        self.reauthBy = None
        self.reauthOf = None
        self.recreating = None
        # MOBIKE (tasks/mobikeupdate.py): the Message ID of the peer's last
        # UPDATE_SA_ADDRESSES, and whether our address went away.
        self.lastAddressUpdate = -1
        self.localLost = False

    @property
    def localSPI(self):
        return self.spiI if self.initiator else self.spiR

    @property
    def peerSPI(self):
        return self.spiR if self.initiator else self.spiI

    @property
    def encapsulateEsp(self):
        """
        ESP goes in UDP (RFC 3948): a NAT is in front of either peer, or
        encapsulation is forced (C{natt}, iked -t, a peer faking its NAT-D).
        """
        return self.natLocal or self.natRemote

    @property
    def canSend(self):
        """
        Whether new requests may start (not once it is closing).
        """
        return self.state not in (IKEState.CLOSING, IKEState.CLOSED)

    @property
    def isEstablished(self):
        return self.state == IKEState.VALID

    def __str__(self):
        return "IKE SA %s/%s %s[%s] %s <-> %s" % (
            self.spiI.hex(), self.spiR.hex(), "policy " + (self.policy.name if self.policy else "-"),
            self.state.name, _endpointText(self.local), _endpointText(self.remote))

    def wipe(self):
        """
        Forget every key of this IKE SA.
        """
        if self.keys is not None:
            self.keys.wipe()
        if self.keyExchange is not None:
            self.keyExchange.wipe()
            self.keyExchange = None
        for child in self.children:
            child.wipe()


class ChildSA(StateMachine):
    """
    One Child SA: a pair of IPsec SAs and the flows they protect.

    @ivar protocol: L{ProtocolId} ESP or AH.
    @ivar mode: C{"tunnel"} or C{"transport"}.
    @ivar spiIn: the SPI we receive with (allocated by us), an C{int}.
    @ivar spiOut: the SPI we send with (allocated by the peer), an C{int}.
    @ivar proposal: the negotiated L{Chosen} proposal.
    @ivar localTS: the negotiated selectors of our side.
    @ivar remoteTS: the negotiated selectors of the peer's side.
    @ivar keyIn: C{(encryptionKey, integrityKey)} for the inbound SA.
    @ivar keyOut: C{(encryptionKey, integrityKey)} for the outbound SA.
    @ivar ipcompIn: our IPcomp CPI, or L{None}.
    @ivar ipcompOut: the peer's IPcomp CPI, or L{None}.
    @ivar reqid: ties the SAs to their flows in the kernel; unique in the
        core, it names the Child SA in L{IKECore.childInstalled}.
    @ivar policy: the policy whose flows it carries (several policies of
        one peer may share an IKE SA), or L{None} for the IKE SA's.
    @ivar pfsGroup: the key exchange of a CREATE_CHILD_SA (0: none).
    @ivar state: a L{ChildState}.
    @ivar created: when it was created (the core's clock).
    @ivar rekeyOf: the L{ChildSA} this one rekeys, or L{None}.
    @ivar offers: our L{Offer}s, while we initiate it.
    @ivar localOffer: the selectors we proposed for our side.
    @ivar remoteOffer: the selectors we proposed for the peer's side.
    @ivar nonces: C{(nonceI, nonceR)} of its CREATE_CHILD_SA, or L{None}
        when its keys come from the IKE SA's nonces (IKE_AUTH).
    @ivar keymat: its L{ikedtx.crypto.keymat} Child SA keys.
    @ivar kernelRecords: C{(sas, flows)}: the L{KernelSA}s and L{KernelFlow}s
        handed to the datapath, kept to remove exactly those.
    @ivar rekeying: as initiator, our rekey task of it in progress, or
        L{None} (L{ikedtx.core.tasks.childrekey}).
    @ivar rekeyedBy: the L{ChildSA} that replaced it, once rekeyed.
    @ivar peerRekey: the L{ChildSA} the peer made to replace it while our
        own rekey of it was in flight (a collision, RFC 7296 2.8.1).
    @ivar softLifetime: seconds after its install at which it is rekeyed
        (jittered, L{ikedtx.core.lifetimes}), or L{None}.
    @ivar softBytes: bytes after which the datapath reports a soft expire,
        or L{None}.
    @ivar deadlines: C{(soft, hard)} on the core's clock, or L{None} each.
    @ivar heldOutbound: as responder of its rekey, the outbound L{KernelSA}s
        not handed to the datapath until the old Child SA goes, so that we
        send with the new SA only once the initiator has its inbound one.
    """

    # As IKESA's: a dict of 30 keys was 1.6 KB per Child SA.
    __slots__ = (
        "protocol", "mode", "spiIn", "spiOut", "reqid", "policy", "proposal", "localTS", "remoteTS", "keyIn",
        "keyOut", "ipcompIn", "ipcompOut", "pfsGroup", "state", "created", "rekeyOf", "offers", "localOffer",
        "remoteOffer", "nonces", "keymat", "kernelRecords", "rekeying", "rekeyedBy", "peerRekey", "softLifetime",
        "softBytes", "deadlines", "heldOutbound",
        # tasks/dpd.py keeps the packet counts of Child SAs in a WeakKeyDictionary.
        "__weakref__",
    )

    transitions = CHILD_TRANSITIONS

    def __init__(self, protocol, mode, spiIn, reqid, now):
        self.protocol = protocol
        self.mode = mode
        self.spiIn = spiIn
        self.spiOut = None
        self.reqid = reqid
        self.policy = None
        self.proposal = None
        self.localTS = ()
        self.remoteTS = ()
        self.keyIn = None
        self.keyOut = None
        self.ipcompIn = None
        self.ipcompOut = None
        self.pfsGroup = 0
        self.state = ChildState.LARVAL
        self.created = now
        self.rekeyOf = None
        self.offers = ()
        self.localOffer = ()
        self.remoteOffer = ()
        self.nonces = None
        self.keymat = None
        self.kernelRecords = None
        self.rekeying = None
        self.rekeyedBy = None
        self.peerRekey = None
        self.softLifetime = None
        self.softBytes = None
        self.deadlines = (None, None)
        self.heldOutbound = []

    def __str__(self):
        return "%s %08x/%s %s" % (
            ProtocolId(self.protocol).name, self.spiIn, "%08x" % self.spiOut if self.spiOut is not None else "-", self.mode)

    def wipe(self):
        for keys in (self.keyIn, self.keyOut):
            if keys is not None:
                for key in keys:
                    if isinstance(key, bytearray):
                        key[:] = bytes(len(key))

    def _selectors(self):
        return tuple(
            (
                KernelSelector(l.startAddress, l.endAddress, l.ipProtocol or r.ipProtocol, l.startPort, l.endPort),
                KernelSelector(r.startAddress, r.endAddress, l.ipProtocol or r.ipProtocol, r.startPort, r.endPort),
            )
            for l in self.localTS
            for r in self.remoteTS
            if l.version == r.version
        )

    def kernelSAs(self, ikeSA, selectors=None):
        """
        The inbound and outbound L{KernelSA} of this Child SA.

        @param selectors: L{_selectors}, if the caller has them already.
        """
        local, remote = addressOf(ikeSA.local[0]), addressOf(ikeSA.remote[0])
        encr = self.proposal.encryption
        integ = self.proposal.integrity
        encap = None
        if ikeSA.encapsulateEsp:
            encap = (ikeSA.local[1], ikeSA.remote[1])
        policy = self.policy or ikeSA.policy
        lifetime = policy.lifetime
        lifetimeBytes = policy.lifetimeBytes
        common = dict(
            protocol=self.protocol,
            mode=self.mode,
            encryption=(encr.id, encr.keyLength) if encr is not None else None,
            integrity=integ.id if integ is not None else None,
            esn=self.proposal.esn,
            reqid=self.reqid,
            lifetimeSeconds=lifetime or None,
            lifetimeBytes=lifetimeBytes or None,
            softLifetimeSeconds=self.softLifetime,
            softLifetimeBytes=self.softBytes,
            selectors=self._selectors() if selectors is None else selectors,
        )
        inbound = KernelSA(
            spi=self.spiIn, inbound=True, source=remote, destination=local,
            encryptionKey=bytes(self.keyIn[0]), integrityKey=bytes(self.keyIn[1]),
            encapsulation=(encap[1], encap[0]) if encap else None,
            ipcompCpi=self.ipcompIn if self.ipcomp else None, **common)
        outbound = KernelSA(
            spi=self.spiOut, inbound=False, source=local, destination=remote,
            encryptionKey=bytes(self.keyOut[0]), integrityKey=bytes(self.keyOut[1]),
            encapsulation=encap, ipcompCpi=self.ipcompOut if self.ipcomp else None, **common)
        return [inbound, outbound]

    def kernelFlows(self, ikeSA, selectors=None):
        """
        The L{KernelFlow}s: outbound traffic from our selectors to the peer's,
        and inbound (and forwarded, in tunnel mode) the other way.

        @param selectors: L{_selectors}, if the caller has them already.
        """
        local, remote = addressOf(ikeSA.local[0]), addressOf(ikeSA.remote[0])
        flows = []
        comp = self.ipcomp
        for ours, theirs in self._selectors() if selectors is None else selectors:
            flows.append(KernelFlow(ours, theirs, "out", self.protocol, self.mode, local, remote, self.reqid, comp))
            flows.append(KernelFlow(theirs, ours, "in", self.protocol, self.mode, remote, local, self.reqid, comp))
            if self.mode == "tunnel":
                flows.append(KernelFlow(theirs, ours, "fwd", self.protocol, self.mode, remote, local, self.reqid,
                                        comp))
        return flows

    @property
    def ipcomp(self):
        """
        Whether IPcomp was negotiated (both CPIs known, RFC 7296 2.22).
        """
        return self.ipcompIn is not None and self.ipcompOut is not None


def _endpointText(endpoint):
    """
    C{address:port}, C{[address]:port} for IPv6, C{-} for none.
    """
    if not endpoint:
        return "-"
    host, port = endpoint[0], endpoint[1]
    host = str(host)
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)

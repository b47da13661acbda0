# -*- test-case-name: tests.test_core_trap -*-
"""
Trap flows: the outbound flows of every policy with a peer to negotiate
with, installed at start-up without SAs, as iked loads its policies' flows
(C{type require}) and as strongSwan's C{start_action = trap} does.

A packet that matches a trap flow makes the datapath raise an acquire
(L{ikedtx.kernel.interfaces.IDatapathEvents.acquire}) with the trap's reqid,
which no Child SA has: the core finds the policy by the packet's addresses
and negotiates it (on-demand tunnels), and nothing leaves in clear
meanwhile. A Child SA's own flows take the trap's place while it is
installed (the datapath keeps the newest flow for one selector, and a trap
never over a Child SA's flow, whichever came first:
L{ikedtx.kernel.interfaces.claimPosition}) and the trap is back when it
goes.

A trap has the tunnel endpoints of its policy's IKE SA while one is up:
when MOBIKE moves the IKE SA, the trap follows it
(L{ikedtx.core.actions.IKESAMoved}), so the
trap that is back when the Child SA goes, and the route the datapath made
for it, have the new ones.
"""

from ipaddress import ip_address

from ikedtx.core.errors import NegotiationFailed
from ikedtx.core.policy import peerAddressOf
from ikedtx.core.tasks.config import dynamicPlaceholders
from ikedtx.kernel.interfaces import TRAP_REQID_BASE, KernelFlow, KernelSelector

__all__ = ["TRAP_REQID_BASE", "trapFlows"]


def trapFlows(core, policyName=None):
    """
    The outbound L{KernelFlow}s without SA of C{core}'s policies that have
    one peer address (and a local address to reach it from), or of the
    policy named C{policyName} only. A policy whose IKE SA is up has its
    endpoints (where MOBIKE moved it).
    """
    flows = []
    for index, policy in enumerate(core.policies.policies):
        if policyName is not None and policy.name != policyName:
            continue
        peer = peerAddressOf(policy)
        if isinstance(peer, str):
            addresses = core.policies.resolved.get(peer)
            peer = addresses[0] if addresses else None
        if peer is None:
            continue
        ikeSA = core._ikeSAOf(policy.name)
        if ikeSA is not None and ikeSA.isEstablished and ikeSA.local is not None and ikeSA.remote is not None:
            local, peer = ip_address(ikeSA.local[0]), ip_address(ikeSA.remote[0])
        else:
            peer = ip_address(peer)
            try:
                local = core._localAddress(policy, peer)
            except NegotiationFailed:
                continue
        flows += _flows(core, policy, index, local, peer)
    return flows


def _flows(core, policy, index, local, peer):
    """
    The trap flows of C{policy} (the C{index}th) from C{local} to C{peer}.
    """
    flows = []
    reqid = TRAP_REQID_BASE + index
    # A dynamic side is an address not known before a configuration
    # payload lends it: no trap for its placeholder.
    placeholders = dynamicPlaceholders(policy)
    for ours in core.policies.selectors(policy, local=True):
        for theirs in core.policies.selectors(policy, local=False):
            if ours in placeholders or theirs in placeholders:
                continue
            if ours.version != theirs.version:
                continue
            protocol = ours.ipProtocol or theirs.ipProtocol
            flows.append(KernelFlow(
                KernelSelector(ours.startAddress, ours.endAddress, protocol, ours.startPort, ours.endPort),
                KernelSelector(theirs.startAddress, theirs.endAddress, protocol, theirs.startPort,
                               theirs.endPort),
                "out", policy.saProtocol, policy.mode, local, peer, reqid, policy.ipcomp))
    return flows

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
"""

from ipaddress import ip_address

from ikedtx.core.errors import NegotiationFailed
from ikedtx.core.policy import peerAddressOf
from ikedtx.core.tasks.config import dynamicPlaceholders
from ikedtx.kernel.interfaces import TRAP_REQID_BASE, KernelFlow, KernelSelector

__all__ = ["TRAP_REQID_BASE", "trapFlows"]


def trapFlows(core):
    """
    The outbound L{KernelFlow}s without SA of C{core}'s policies that have
    one peer address (and a local address to reach it from).
    """
    flows = []
    for index, policy in enumerate(core.policies.policies):
        peer = peerAddressOf(policy)
        if isinstance(peer, str):
            addresses = core.policies.resolved.get(peer)
            peer = addresses[0] if addresses else None
        if peer is None:
            continue
        peer = ip_address(peer)
        try:
            local = core._localAddress(policy, peer)
        except NegotiationFailed:
            continue
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

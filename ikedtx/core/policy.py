# -*- test-case-name: tests.test_core_policy -*-
"""
Policy evaluation as iked does it (iked.conf(5), "eval"): for an incoming
IKE SA every policy is tried in order and the last one that matches wins,
unless a matching policy is C{quick}; C{skip} policies are not evaluated for
incoming connections; the C{default} policy is used when none matches.

A policy matches a peer by its C{peer} (any, an address, a network, or an
FQDN resolved by the shell) and C{local} endpoints and address family; once
the peer's identity is known (IKE_AUTH) a policy with a C{dstid} must also
match that identity.
"""

from ipaddress import ip_address, ip_network

from ikedtx.core.ts import TrafficSelector


class PolicyTable:
    """
    The policies of a configuration with the lookups the core needs.

    @ivar policies: the L{ikedtx.config.model.Policy} objects, in order.
    @ivar resolved: C{{fqdn: [ip_address]}} of FQDN peers/locals that the
        shell resolved.
    """

    def __init__(self, policies, resolved=None):
        self.policies = tuple(policies)
        self.resolved = dict(resolved or {})
        self._byName = {p.name: p for p in self.policies}

    def byName(self, name):
        return self._byName.get(name)

    def _addressMatches(self, spec, address):
        if spec is None:
            return True
        address = ip_address(address)
        if isinstance(spec, str):
            return address in self.resolved.get(spec, ())
        network = ip_network(spec, strict=False)
        return network.version == address.version and address in network

    def _matches(self, policy, local, remote, peerId):
        if policy.af is not None:
            want = 4 if policy.af == "inet" else 6
            if ip_address(remote).version != want:
                return False
        if not self._addressMatches(policy.peer, remote):
            return False
        if not self._addressMatches(policy.local, local):
            return False
        if peerId is not None and policy.dstId is not None:
            from ikedtx.auth.ids import IKEIdentity

            if not peerId.matches(IKEIdentity.fromConfig(policy.dstId.type, policy.dstId.value)):
                return False
        return True

    def lookup(self, local, remote, peerId=None):
        """
        The policy for an incoming IKE SA from C{remote} to C{local}
        (addresses), optionally restricted to a peer identity.

        @return: a policy, or L{None}.
        """
        found = None
        default = None
        for policy in self.policies:
            if policy.default:
                default = policy
            if policy.skip:
                continue
            if self._matches(policy, local, remote, peerId):
                found = policy
                if policy.quick:
                    break
        return found if found is not None else default

    def active(self):
        """
        The policies to initiate at start-up.
        """
        return [p for p in self.policies if p.active]


def selectorsOf(policy, local=True):
    """
    The traffic selectors of one side of a policy's flows: C{from} for our
    side, C{to} for the peer's, deduplicated, in flow order. (The config
    layer already expanded C{any} into one flow per address family.)
    """
    result = []
    for flow in policy.flows:
        selector = flow.src if local else flow.dst
        ts = TrafficSelector.fromNetwork(selector.network, flow.ipProtocol or 0, selector.portRange)
        if ts not in result:
            result.append(ts)
    return result


def peerAddressOf(policy):
    """
    The address to initiate to: the C{peer} when it is one host, else the
    destination of a host-to-host flow (iked.conf(5): "For host-to-host
    connections where dst is identical to remote, this option is generally
    not needed"). An FQDN is returned as the string to resolve.
    """
    peer = policy.peer
    if isinstance(peer, str):
        return peer
    if peer is not None:
        network = ip_network(peer, strict=False)
        if network.num_addresses == 1:
            return network.network_address
        return None
    for flow in policy.flows:
        network = flow.dst.network
        if network is not None and network.num_addresses == 1:
            return network.network_address
    return None

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

from ipaddress import ip_network

from ikedtx.core.ts import TrafficSelector
from ikedtx.addresses import addressOf


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
        self._selectors = {}
        # {(local, family): True} where a policy for any peer matches.
        self._anyPeer = {}
        # What each policy matches, worked out once: (policy, address
        # family, peer addresses, local addresses, dstid).
        self._matchers = [
            (policy, {"inet": 4, "inet6": 6}.get(policy.af), self._addresses(policy.peer),
             self._addresses(policy.local), self._identity(policy.dstId))
            for policy in self.policies
        ]

    def byName(self, name):
        return self._byName.get(name)

    def selectors(self, policy, local=True):
        """
        L{selectorsOf} C{policy}, computed once per policy and side.
        """
        key = (id(policy), local)
        result = self._selectors.get(key)
        if result is None:
            result = self._selectors[key] = tuple(selectorsOf(policy, local))
        return result

    def _addresses(self, spec):
        """
        What a peer or local spec matches: L{None} for any, else a tuple of
        networks (an FQDN's resolved addresses as host networks).
        """
        if spec is None:
            return None
        if isinstance(spec, str):
            return tuple(ip_network(address) for address in self.resolved.get(spec, ()))
        return (ip_network(spec, strict=False),)

    @staticmethod
    def _identity(dstId):
        if dstId is None:
            return None
        from ikedtx.auth.ids import IKEIdentity

        return IKEIdentity.fromConfig(dstId.type, dstId.value)

    @staticmethod
    def _within(address, networks):
        return networks is None or any(
            network.version == address.version and address in network for network in networks)

    def lookup(self, local, remote, peerId=None):
        """
        The policy for an incoming IKE SA from C{remote} to C{local}
        (addresses), optionally restricted to a peer identity.

        @return: a policy, or L{None}.
        """
        local, remote = addressOf(local), addressOf(remote)
        found = None
        default = None
        for policy, version, peers, locals_, dstId in self._matchers:
            if policy.default:
                default = policy
            if policy.skip:
                continue
            if version is not None and remote.version != version:
                continue
            if not self._within(remote, peers) or not self._within(local, locals_):
                continue
            if peerId is not None and dstId is not None and not peerId.matches(dstId):
                continue
            found = policy
            if policy.quick:
                break
        return found if found is not None else default

    def accepts(self, local, remote):
        """
        Whether L{lookup}C{(local, remote)} finds a policy, quicker where a
        policy for any peer (or the default) matches C{local}: that answer,
        the same for every remote address of a family, is remembered, so a
        flood from ever new addresses costs no lookup each.
        """
        family = 6 if (":" in remote if isinstance(remote, str) else remote.version == 6) else 4
        key = (local, family)
        if key in self._anyPeer:
            return True
        localAddress = addressOf(local)
        for policy, version, peers, locals_, dstId in self._matchers:
            if policy.default or (not policy.skip and peers is None and version in (None, family)
                                  and self._within(localAddress, locals_)):
                self._anyPeer[key] = True
                return True
        return self.lookup(local, remote) is not None

    def matching(self, local, remote, peerId):
        """
        Every policy (not C{skip}) that matches an IKE SA from C{remote} to
        C{local} with the authenticated C{peerId}, in order.
        """
        local, remote = addressOf(local), addressOf(remote)
        return [policy for policy, version, peers, locals_, dstId in self._matchers
                if not policy.skip and (version is None or remote.version == version)
                and self._within(remote, peers) and self._within(local, locals_)
                and (dstId is None or peerId.matches(dstId))]

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
        # A dynamic side's 0.0.0.0/32 stands for an address lent at run time.
        if network is not None and network.num_addresses == 1 and not flow.dst.dynamic:
            return network.network_address
    return None

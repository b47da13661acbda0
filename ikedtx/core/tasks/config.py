# -*- test-case-name: tests.test_core_config -*-
"""
Configuration payloads in IKE_AUTH (RFC 7296 2.19, 3.15): as responder a
CFG_REQUEST is answered with a CFG_REPLY holding an address lent from the
policy's C{config address NET/PREFIX} pool (L{ikedtx.core.pools}) or its
static C{config address}, and every other C{config} attribute of the policy
(netmask, name-server, netbios-server, dhcp-server, protected-subnet,
access-server); as initiator a policy with C{request} options sends a
CFG_REQUEST and keeps what the reply gives.

A C{dynamic} side of a flow stands for those addresses: the peer's lent
address narrows the Child SA's remote selectors (L{peerSelectors}), and ours
our local selectors (L{localSelectors}; before the reply, the whole address
family is proposed, as strongSwan does, for the responder to narrow).
"""

from ipaddress import ip_address, ip_network

from twisted.logger import Logger

from ikedtx.core.actions import AddVirtualAddress, RemoveVirtualAddress
from ikedtx.core.errors import RemoteProtocolError
from ikedtx.core.pools import PoolExhausted
from ikedtx.core.tasks import DONE, Task
from ikedtx.core.tasks.common import findNotify, first
from ikedtx.core.ts import TrafficSelector
from ikedtx.wire.constants import ConfigurationAttribute as CfgAttr
from ikedtx.wire.constants import ConfigurationType, ExchangeType, NotifyType, nameOf
from ikedtx.wire.payloads.cp import Configuration, ConfigurationAttribute


_log = Logger()
_ADDRESS_ATTRIBUTES = {4: CfgAttr.INTERNAL_IP4_ADDRESS, 6: CfgAttr.INTERNAL_IP6_ADDRESS}
# Attributes that carry a prefix length after the address.
_PREFIXED = (CfgAttr.INTERNAL_IP6_ADDRESS, CfgAttr.INTERNAL_IP4_SUBNET, CfgAttr.INTERNAL_IP6_SUBNET)


def requestsAddress(policy):
    """
    Whether C{policy} asks the peer for an address (C{request address}).
    """
    return any(o.request and o.kind == "address" for o in policy.configOptions)


def _hasDynamic(policy, local):
    return any((flow.src if local else flow.dst).dynamic for flow in policy.flows)


def _selectors(policy, local, addresses, wholeFamily):
    result = []
    for flow in policy.flows:
        selector = flow.src if local else flow.dst
        if selector.dynamic:
            networks = [ip_network(a) for a in addresses if a.version == selector.family]
            if not networks and wholeFamily:
                networks = [ip_network("0.0.0.0/0" if selector.family == 4 else "::/0")]
        else:
            networks = [selector.network]
        for network in networks:
            ts = TrafficSelector.fromNetwork(network, flow.ipProtocol or 0, selector.portRange)
            if ts not in result:
                result.append(ts)
    return tuple(result)


def dynamicPlaceholders(policy):
    """
    The selectors that stand for C{dynamic} sides of C{policy}'s flows
    (C{0.0.0.0/32}, C{::/128}).
    """
    return {TrafficSelector.fromNetwork(side.network, flow.ipProtocol or 0, side.portRange)
            for flow in policy.flows for side in (flow.src, flow.dst) if side.dynamic}


def peerSelectors(core, ikeSA, policy):
    """
    The selectors C{policy} allows for the peer's side of a Child SA of
    C{ikeSA}: a C{dynamic} side becomes the addresses lent to the peer (and
    nothing when none was).
    """
    if not _hasDynamic(policy, local=False):
        return core.policies.selectors(policy, local=False)
    return _selectors(policy, False, ikeSA.peerVirtualIPs, wholeFamily=False)


def localSelectors(core, ikeSA, policy):
    """
    The selectors we propose for our side of a Child SA of C{ikeSA}: a
    C{dynamic} side becomes the addresses the peer gave us, or, while we
    ask for one, the whole address family.
    """
    if not _hasDynamic(policy, local=True):
        return core.policies.selectors(policy, local=True)
    return _selectors(policy, True, ikeSA.localVirtualIPs, wholeFamily=requestsAddress(policy))


def unassignedDynamic(ikeSA, policy):
    """
    Whether C{policy}'s peer side is C{dynamic} but no address was lent to
    the peer of C{ikeSA} (its CFG_REQUEST failed or was never sent).
    """
    return _hasDynamic(policy, local=False) and not ikeSA.peerVirtualIPs


def release(core, ikeSA):
    """
    C{ikeSA} is gone: the addresses lent to its peer go back to their pools,
    and those lent to us come off their interface.
    """
    for address in core.pools.release(ikeSA):
        _log.info("{ikeSA}: {address} back in its pool", ikeSA=ikeSA, address=address)
    for address in ikeSA.localVirtualIPs:
        core.emit(RemoveVirtualAddress(address, ikeSA.policy.iface if ikeSA.policy else None))
    ikeSA.localVirtualIPs = []


def _attribute(option):
    if option.prefixLength is not None and option.attribute in _PREFIXED:
        return ConfigurationAttribute.fromAddress(option.attribute, option.address, option.prefixLength)
    return ConfigurationAttribute.fromAddress(option.attribute, option.address)


#: Framed-IP-Address values that give no address (RFC 2865 5.8: the user
#: or the NAS should select one).
_NO_ADDRESS = (ip_address("255.255.255.255"), ip_address("255.255.255.254"))


def _backendConfig(ikeSA):
    """
    The configuration attributes the EAP backend gave with its success
    (L{ikedtx.core.tasks.eap.EAPResponder.config}), without the addresses
    that say "none".
    """
    state = getattr(ikeSA, "eap", None)
    config = getattr(state, "config", ()) if state is not None else ()
    return [(attribute, address) for attribute, address in config if address not in _NO_ADDRESS]


def _identityKey(ikeSA):
    # After EAP the user is the client (Windows sends its IP address as
    # IDi, the same for many users behind one NAT).
    if getattr(ikeSA, "eapIdentity", None):
        return "eap:" + ikeSA.eapIdentity
    return str(ikeSA.peerId)


class ConfigTask(Task):
    """
    The CP exchange of IKE_AUTH, both roles.

    @ivar reply: as responder, the attributes of our CFG_REPLY, or L{None}
        when we send none.
    """

    exchangeType = ExchangeType.IKE_AUTH
    _log = Logger()

    def __init__(self, initiator, requestId=None):
        Task.__init__(self, initiator, requestId)
        self.essential = False
        self.reply = None

    # Initiator

    def buildI(self, core, ikeSA, payloads):
        options = [o for o in ikeSA.policy.configOptions if o.request]
        if not options:
            return
        attributes, seen = [], set()
        for option in options:
            if option.attribute not in seen:
                seen.add(option.attribute)
                attributes.append(ConfigurationAttribute(option.attribute))
        payloads.append(Configuration(ConfigurationType.CFG_REQUEST, attributes))

    def processI(self, core, ikeSA, message, payloads, local, remote):
        if not any(o.request for o in ikeSA.policy.configOptions):
            return DONE
        if findNotify(payloads, NotifyType.INTERNAL_ADDRESS_FAILURE) is not None:
            self._log.warn("{ikeSA}: the peer has no address for us (INTERNAL_ADDRESS_FAILURE)", ikeSA=ikeSA)
        cp = first(payloads, Configuration)
        if cp is None or cp.cfgType != ConfigurationType.CFG_REPLY:
            return DONE
        addresses, other = [], []
        for attribute in cp.attributes:
            address = attribute.address
            if attribute.attributeType in _ADDRESS_ATTRIBUTES.values():
                if address is None or address.is_unspecified or address.is_multicast:
                    self._log.info("{ikeSA}: ignored an unusable {kind} in the CFG_REPLY", ikeSA=ikeSA,
                                   kind=nameOf(CfgAttr, attribute.attributeType))
                    continue
                if address not in addresses:
                    addresses.append(address)
            elif address is not None:
                other.append((nameOf(CfgAttr, attribute.attributeType), address, attribute.prefixLength))
        ikeSA.localVirtualIPs = addresses
        ikeSA.peerConfig = other
        for address in addresses:
            self._log.info("{ikeSA}: the peer assigned us {address}", ikeSA=ikeSA, address=address)
            core.emit(AddVirtualAddress(address, ikeSA.policy.iface))
        return DONE

    # Responder

    def processR(self, core, ikeSA, message, payloads):
        cp = first(payloads, Configuration)
        if cp is None or cp.cfgType != ConfigurationType.CFG_REQUEST or not ikeSA.isEstablished:
            return
        policy = ikeSA.policy
        served = [o for o in policy.configOptions if not o.request]
        fromBackend = _backendConfig(ikeSA)
        if not served and not fromBackend:
            self._log.info("{ikeSA}: CFG_REQUEST ignored: policy {policy} serves no configuration",
                           ikeSA=ikeSA, policy=policy.name)
            return
        requested = {a.attributeType for a in cp.attributes}
        reply, failures = [], []
        # iked's radius.c: the address an Access-Accept gives replaces the
        # pool's; its other attributes add to the policy's config lines,
        # which win for the same attribute (a netmask only with an address).
        given = {}
        for attribute, address in fromBackend:
            if attribute in _ADDRESS_ATTRIBUTES.values() and address.version not in given:
                if _ADDRESS_ATTRIBUTES[address.version] == attribute and attribute in requested:
                    given[address.version] = address
        for version, address in sorted(given.items()):
            if address not in ikeSA.peerVirtualIPs:
                ikeSA.peerVirtualIPs.append(address)
            reply.append(ConfigurationAttribute.fromAddress(_ADDRESS_ATTRIBUTES[version], address,
                                                            128 if version == 6 else None))
            self._log.info("{ikeSA}: {address} for {peer}, as the EAP server (RADIUS) says", ikeSA=ikeSA,
                           address=address, peer=ikeSA.peerId)
        for option in served:
            if option.kind != "address":
                continue
            if _ADDRESS_ATTRIBUTES[option.value.version] not in requested or option.value.version in given:
                continue
            if option.isPool:
                try:
                    address = self._lend(core, ikeSA, option.value)
                except PoolExhausted as e:
                    failures.append(str(e))
                    continue
                prefix = option.prefixLength if option.value.version == 6 else None
                reply.append(ConfigurationAttribute.fromAddress(option.attribute, address, prefix))
            else:
                address = ip_address(option.address)
                if address not in ikeSA.peerVirtualIPs:
                    ikeSA.peerVirtualIPs.append(address)
                reply.append(ConfigurationAttribute.fromAddress(
                    option.attribute, address, 128 if address.version == 6 else None))
        if failures and not ikeSA.peerVirtualIPs:
            self._log.warn("{ikeSA}: no address for {peer}: {error}", ikeSA=ikeSA, peer=ikeSA.peerId,
                           error="; ".join(failures))
            ikeSA.addressRefused = True
            raise RemoteProtocolError("no address for %s" % (ikeSA.peerId,), NotifyType.INTERNAL_ADDRESS_FAILURE)
        for failure in failures:
            self._log.warn("{ikeSA}: {error}", ikeSA=ikeSA, error=failure)
        reply += [_attribute(o) for o in served if o.kind != "address"]
        ours = {o.attribute for o in served}
        for attribute, address in fromBackend:
            if attribute in _ADDRESS_ATTRIBUTES.values() or attribute in ours:
                continue
            if attribute == CfgAttr.INTERNAL_IP4_NETMASK and 4 not in given:
                continue
            reply.append(ConfigurationAttribute.fromAddress(attribute, address))
        self.reply = reply

    def _lend(self, core, ikeSA, network):
        pool = core.pools.pool(network)
        address = pool.acquire(_identityKey(ikeSA), ikeSA, sticky=core.config.settings.stickyAddress)
        if address not in ikeSA.peerVirtualIPs:
            ikeSA.peerVirtualIPs.append(address)
        self._log.info("{ikeSA}: lent {address} from pool {pool} to {peer}", ikeSA=ikeSA, address=address,
                       pool=network, peer=ikeSA.peerId)
        return address

    def buildR(self, core, ikeSA, payloads):
        if self.reply is not None:
            payloads.append(Configuration(ConfigurationType.CFG_REPLY, self.reply))
        return DONE

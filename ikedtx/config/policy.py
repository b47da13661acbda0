# -*- test-case-name: tests.test_config_parser -*-
"""
Policy building: an ikev2 rule as the grammar read it (a L{_Draft}),
checked as a whole, completed with iked's defaults and turned into an
immutable L{ikedtx.config.model.Policy} (iked's create_ike() and
expand_flows()).
"""

from ipaddress import ip_network

from ikedtx.auth.errors import InvalidDN
from ikedtx.config import hosts as _hosts
from ikedtx.config import transforms as xf
from ikedtx.config.model import Auth, Flow, Identity, Policy, Selector
from ikedtx.wire.constants import ProtocolId


ID_SIZE = 1024
TAG_SIZE = 64
IPPROTO_MAX = 16


class _Host:
    """
    One entry of a host list while a rule is read (iked's ipsec_addr_wrap).

    @ivar kind: C{"addr"}, C{"any"} or C{"dynamic"}.
    @ivar address: the L{HostAddress} of an C{"addr"}.
    @ivar port: the port (only the first entry of a list gets one).
    @ivar srcNat: the L{HostAddress} written in parentheses, or L{None}.
    @ivar text: how it was written (for messages).
    """

    def __init__(self, kind, address=None, text=""):
        self.kind = kind
        self.address = address
        self.port = None
        self.srcNat = None
        self.text = text

    @property
    def family(self):
        if self.kind != "addr":
            return None
        return self.address.address.version

    @property
    def isNetwork(self):
        return self.kind == "any" or (self.kind == "addr" and self.address.isNetwork)


class _Draft:
    """
    What an ikev2 rule said, before create_ike() turns it into a L{Policy}.
    """

    def __init__(self):
        self.name = None
        self.match = None
        self.active = False
        self.ipcomp = False
        self.transport = False
        self.natt = False
        self.saProtocol = ProtocolId.ESP
        self.af = None
        self.protocols = []
        self.rdomain = None
        self.srcs = []
        self.dsts = []
        self.local = None
        self.peer = None
        self.ikeSpecs = []
        self.childSpecs = []
        self.srcId = None
        self.dstId = None
        self.ikeLifetime = 0
        self.reauth = False
        self.lifetime = 10800
        self.lifetimeBytes = 4294967296
        self.auth = Auth()
        self.configOptions = []
        self.iface = None
        self.tag = None
        self.tap = None


def _flowKey(flow):
    """
    iked's flow_cmp() order: protocol, then destination, then source (each
    by family, address, prefix length, port), then the source NAT address.
    Addresses compare as iked's C code compares them on a little-endian
    host: 32-bit words in memory order, the last word first for IPv6.
    """

    def address(address):
        packed = address.packed
        if address.version == 4:
            return (2, int.from_bytes(packed, "little"))
        words = [int.from_bytes(packed[i : i + 4], "little") for i in (12, 8, 4, 0)]
        return (10, *words)

    def port(p):
        p = p or 0
        return ((p & 0xFF) << 8) | (p >> 8)

    def side(sel):
        return (address(sel.address), sel.network.prefixlen, port(sel.port))

    nat = (0,) if flow.srcNat is None else (1, address(flow.srcNat.address), flow.srcNat.network.prefixlen)
    return (flow.ipProtocol, side(flow.dst), side(flow.src), nat)


class PolicyBuilder:
    """
    The policy half of L{ikedtx.config.grammar.Parser} (a mixin): turns the
    L{_Draft} of an ikev2 rule into a L{Policy}.

    It uses the parser's C{fail}, C{warn} and C{_nextPosition}, its
    C{profile} and C{lexer}, and appends to its C{policies}, counting
    C{policyCount}.
    """

    def createIke(self, d):
        """
        iked's create_ike(): check the rule as a whole, apply the defaults
        and record the L{Policy}.
        """
        self.policyCount += 1
        if len(d.protocols) > IPPROTO_MAX:
            self.fail("too many protocols")
        if d.name is None:
            name = "policy%d" % (self.policyCount,)
        else:
            name = d.name
            if len(name.encode()) >= ID_SIZE:
                self.fail("name too long")
        if d.iface is not None and not _hosts.interfaceExists(d.iface):
            self.fail("invalid iface")
        ids = []
        for label, text in (("srcid", d.srcId), ("dstid", d.dstId)):
            if text is None:
                ids.append(None)
                continue
            if len(text.encode()) >= ID_SIZE:
                self.fail("%s too long" % (label,))
            identity = Identity.fromString(text)
            if identity.type == identity.type.DER_ASN1_DN:
                try:
                    identity.data()
                except InvalidDN as e:
                    self.fail("%s: invalid ASN1_DN %s (%s)" % (label, text, e.reason))
            ids.append(identity)

        if d.local is not None and d.peer is not None:
            if d.local.family and d.peer.family and d.local.family != d.peer.family:
                self.fail("peer address family mismatch")
        if d.af is not None:
            for end in (d.local, d.peer):
                if end is not None and end.family and end.family != d.af:
                    self.fail("policy address family mismatch")
        local, peer = d.local, d.peer
        if local is None and peer is None:
            if len(d.srcs) == 1:
                local = d.srcs[0]
            if len(d.dsts) == 1:
                peer = d.dsts[0]
        if local is None and peer is None:
            self.fail("could not get local/peer specification")
        if d.active:
            if peer is None or peer.isNetwork or (local is not None and local.isNetwork):
                self.fail("active mode requires local/peer address")
        af = d.af
        for end in (local, peer):
            if af is None and end is not None and end.family:
                af = end.family

        # (iked crashes on these.)
        if any(spec.isEmpty() for spec in d.ikeSpecs):
            self.fail("ikesa needs at least one of auth, enc, prf, group")
        if any(spec.isEmpty() for spec in d.childSpecs):
            self.fail("childsa needs at least one of auth, enc, group, esn, noesn")
        try:
            ikeProposals = xf.ikeProposals(d.ikeSpecs)
            childProposals = xf.childProposals(d.childSpecs, d.saProtocol, self.profile)
        except xf.ProposalError as e:
            self.fail(str(e))
        for proposal in ikeProposals + childProposals:
            for t in proposal.transforms:
                if t.type not in xf.KEY_EXCHANGE_TYPES:
                    continue
                if t.id in xf.UNSUPPORTED_GROUPS and self.profile.refuseUnsupportedGroups:
                    self.fail(xf.UNSUPPORTED_GROUPS[t.id])

        flows = {}
        for src, dst in zip(d.srcs, d.dsts):
            for protocol in d.protocols or [0]:
                for flow in self._expandFlows(protocol, src, dst):
                    key = _flowKey(flow)
                    if key in flows:
                        self.warn("duplicate flow")
                        continue
                    flows[key] = flow

        self.policies.append(
            Policy(
                name=name,
                quick=d.match == "QUICK",
                skip=d.match == "SKIP",
                default=d.match == "DEFAULT",
                active=d.active,
                ipcomp=d.ipcomp,
                mode="transport" if d.transport else "tunnel",
                natt=d.natt,
                saProtocol=d.saProtocol,
                af={None: None, 4: "inet", 6: "inet6"}[af],
                ipProtocols=tuple(d.protocols),
                rdomain=d.rdomain,
                flows=tuple(flows[k] for k in sorted(flows)),
                local=_endpoint(local),
                peer=_endpoint(peer),
                localAddress=None if local is None or local.kind != "addr" else local.address,
                peerAddress=None if peer is None or peer.kind != "addr" else peer.address,
                ikeProposals=ikeProposals,
                childProposals=childProposals,
                srcId=ids[0],
                dstId=ids[1],
                ikeLifetime=d.ikeLifetime,
                reauth=d.reauth,
                lifetime=d.lifetime,
                lifetimeBytes=d.lifetimeBytes,
                auth=d.auth,
                configOptions=tuple(d.configOptions),
                iface=d.iface,
                tag=None if d.tag is None else _truncate(d.tag, TAG_SIZE - 1),
                tap=None if not d.tap else "enc%d" % (d.tap,),
                filename=self.lexer.filename,
                line=self.lexer.line,
                position=self._nextPosition(),
            )
        )

    def _expandFlows(self, protocol, src, dst):
        """
        iked's expand_flows(): a flow for a pair of hosts; C{any} and
        C{dynamic} take the other side's family, or give one flow per
        family when both sides have none.
        """
        if src.family is None and dst.family is None:
            return [
                self._flow(protocol, src, dst, family, family) for family in (4, 6)
            ]
        if src.family is None:
            return [self._flow(protocol, src, dst, dst.family, dst.family)]
        if dst.family is None:
            return [self._flow(protocol, src, dst, src.family, src.family)]
        if src.family != dst.family:
            self.fail("cannot mix different address families.")
        return [self._flow(protocol, src, dst, src.family, dst.family)]

    def _flow(self, protocol, src, dst, srcFamily, dstFamily):
        srcNat = None
        if src.srcNat is not None:
            srcNat = _selector(_Host("addr", src.srcNat), None, srcFamily)
        return Flow(
            _selector(src, src.port, srcFamily, self.profile.keepPortOnAny),
            _selector(dst, dst.port, dstFamily, self.profile.keepPortOnAny),
            protocol,
            srcNat,
        )


def _selector(host, port, family, keepPortOnAny=True):
    zero = "0.0.0.0" if family == 4 else "::"
    if host.kind == "any":
        return Selector(ip_network("%s/0" % zero), port if keepPortOnAny else None, any=True)
    if host.kind == "dynamic":
        return Selector(ip_network(zero), port if keepPortOnAny else None, showPrefix=False, dynamic=True)
    a = host.address
    network = ip_network((_unscoped(a.address), a.prefixLength), strict=False)
    return Selector(network, port, address=a.address, showPrefix=a.isNetwork)


def _unscoped(address):
    if getattr(address, "scope_id", None):
        return type(address)(str(address).split("%")[0])
    return address


def _endpoint(host):
    if host is None or host.kind != "addr":
        return None
    if host.address.name is not None:
        return host.address.name
    return host.address.network


def _truncate(text, size):
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= size:
        return text
    return data[:size].decode("utf-8", "ignore")

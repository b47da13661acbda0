# -*- test-case-name: tests.test_config_model -*-
"""
The policy model: what an iked.conf(5) file means, as immutable values.

Everything here is a frozen dataclass holding tuples, ipaddress objects,
strings and ints, so a L{Config} can be shared between the daemon's parts
and compared with C{==}.  The parser (L{ikedtx.config.parser}) applies all of
iked's defaults before it builds these objects: a policy always carries its
complete proposal lists, lifetimes, name and authentication method.

Secrets (pre-shared keys, user passwords) never appear in a C{repr}.
"""

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_network
from types import MappingProxyType
from typing import Mapping, Optional, Tuple, Union

from ikedtx.auth.ids import inferIdType, parseDN
from ikedtx.wire.constants import (
    AuthMethod,
    ConfigurationAttribute,
    DhId,
    EapType,
    EsnId,
    IdType,
    ProtocolId,
    TransformType,
)

IPAddress = Union[IPv4Address, IPv6Address]


@dataclass(frozen=True)
class TransformSpec:
    """
    One transform of a proposal, as it goes into an SA payload.

    @ivar type: the transform type.
    @ivar id: the transform id (an L{ikedtx.wire.constants.EncrId},
        L{PrfId<ikedtx.wire.constants.PrfId>},
        L{IntegId<ikedtx.wire.constants.IntegId>}, L{DhId} or L{EsnId} value).
    @ivar keyLength: the Key Length attribute in bits, or L{None} when the
        transform is sent without one.
    """

    type: TransformType
    id: int
    keyLength: Optional[int] = None


@dataclass(frozen=True)
class Proposal:
    """
    One proposal of an SA payload, its transforms in the order they are sent.
    Proposal numbers are implicit: the position in the policy's tuple, from 1.

    @ivar protocol: L{ProtocolId.IKE}, L{ProtocolId.ESP} or L{ProtocolId.AH}.
    @ivar transforms: the transforms, in sending order.
    """

    protocol: ProtocolId
    transforms: Tuple[TransformSpec, ...]

    def ofType(self, transformType):
        """
        The transforms of one type, in preference order.
        """
        return tuple(t for t in self.transforms if t.type == transformType)


@dataclass(frozen=True)
class Selector:
    """
    One side of a flow (a traffic selector).

    iked expands C{any} into one flow per address family, so L{network} is
    always a real network: C{any} becomes C{0.0.0.0/0} or C{::/0} (with
    L{any} set) and C{dynamic} becomes C{0.0.0.0/32} or C{::/128} (with
    L{dynamic} set): a placeholder for the address a configuration payload
    assigns at run time.

    @ivar network: the addresses this side covers (host bits cleared).
    @ivar port: the port (1-65535), or L{None} for all ports.
    @ivar address: the address as written, host bits kept (what C{iked -n -v}
        prints).
    @ivar showPrefix: whether the prefix length was written (iked prints it
        then, and only then).
    @ivar any: written as C{any}.
    @ivar dynamic: written as C{dynamic}.
    """

    network: object
    port: Optional[int] = None
    address: Optional[IPAddress] = None
    showPrefix: bool = True
    any: bool = False
    dynamic: bool = False

    def __post_init__(self):
        if self.address is None:
            object.__setattr__(self, "address", self.network.network_address)

    @property
    def family(self):
        """
        4 or 6.
        """
        return self.network.version

    @property
    def portRange(self):
        """
        The (low, high) port range of a traffic selector.
        """
        if self.port is None:
            return (0, 65535)
        return (self.port, self.port)


@dataclass(frozen=True)
class Flow:
    """
    One flow of a policy: what iked installs in the kernel and offers as
    traffic selectors.

    @ivar src: the local side.
    @ivar dst: the remote side.
    @ivar ipProtocol: the IP protocol number, 0 for all.
    @ivar srcNat: the real local network behind L{src} (outgoing NAT,
        C{from A (B) to C}), or L{None}.
    """

    src: Selector
    dst: Selector
    ipProtocol: int = 0
    srcNat: Optional[Selector] = None


@dataclass(frozen=True)
class HostAddress:
    """
    A local or peer address as iked resolved it when it read the file.

    @ivar address: the address (host bits kept).
    @ivar prefixLength: the prefix length.
    @ivar isNetwork: whether a prefix was written: the policy then matches
        every address in L{network}; otherwise exactly L{address}.
    @ivar name: the host or interface name that was resolved, or L{None}.
    """

    address: IPAddress
    prefixLength: int
    isNetwork: bool = False
    name: Optional[str] = None

    @property
    def network(self):
        """
        The addresses this endpoint matches.
        """
        if not self.isNetwork:
            return ip_network(self.address)
        return ip_network((self.address, self.prefixLength), strict=False)


def parseDistinguishedName(text):
    """
    Parse an iked ASN1_DN ID, C{/type0=value0/type1=value1...} (a backslash
    escapes the next character), into a L{cryptography.x509.Name} with one
    attribute per RDN, in the written order: L{ikedtx.auth.ids.parseDN}.

    @raise ikedtx.auth.errors.InvalidDN: (a L{ValueError}) if C{text} is not
        such a name.
    """
    return parseDN(text)


@dataclass(frozen=True)
class Identity:
    """
    An IKE identity (srcid/dstid), typed the way iked infers it.

    @ivar type: L{IdType.IPV4_ADDR}, L{IdType.IPV6_ADDR}, L{IdType.FQDN},
        L{IdType.RFC822_ADDR} (iked's UFQDN) or L{IdType.DER_ASN1_DN}.
    @ivar value: the text as written in the file.
    """

    type: IdType
    value: str

    @classmethod
    def fromString(cls, text):
        """
        Infer the type of C{text} like iked: a leading C{/} is an ASN1_DN, an
        IPv4 or IPv6 address is an address, a C{@} makes a UFQDN, anything
        else is an FQDN.
        """
        return cls(inferIdType(text), text)

    def data(self):
        """
        The identification data of an ID payload (RFC 7296 3.5), without the
        type octet and reserved bytes: the packed address, the UTF-8 name,
        or the DER encoding of the distinguished name.

        @raise ValueError: if an ASN1_DN value does not parse.
        """
        import socket

        if self.type == IdType.IPV4_ADDR:
            return socket.inet_pton(socket.AF_INET, self.value)
        if self.type == IdType.IPV6_ADDR:
            return socket.inet_pton(socket.AF_INET6, self.value)
        if self.type == IdType.DER_ASN1_DN:
            return self.distinguishedName().public_bytes()
        return self.value.encode("utf-8", "surrogateescape")

    def distinguishedName(self):
        """
        The L{cryptography.x509.Name} of an ASN1_DN identity.
        """
        if self.type != IdType.DER_ASN1_DN:
            raise ValueError("not an ASN1_DN identity")
        return parseDistinguishedName(self.value)

    def __str__(self):
        names = {
            IdType.IPV4_ADDR: "IPV4",
            IdType.IPV6_ADDR: "IPV6",
            IdType.FQDN: "FQDN",
            IdType.RFC822_ADDR: "UFQDN",
            IdType.DER_ASN1_DN: "ASN1_DN",
        }
        return "%s/%s" % (names.get(self.type, self.type.name), self.value)


AUTH_METHODS = ("psk", "rsa", "ecdsa256", "ecdsa384", "ecdsa521", "rfc7427", "signature", "eap")


@dataclass(frozen=True)
class Auth:
    """
    How the peer authenticates (iked.conf's I{ikeauth}).

    @ivar method: one of C{"psk"}, C{"rsa"} (RSA with SHA-1),
        C{"ecdsa256"}, C{"ecdsa384"}, C{"ecdsa521"}, C{"rfc7427"} (RFC 7427
        digital signatures only), C{"signature"} (the default: any signature
        method, chosen from the keys and certificates found) or C{"eap"}
        (the initiator authenticates with EAP, the responder with a
        signature).
    @ivar psk: the pre-shared key for C{"psk"}, else L{None}.
    @ivar eapType: the EAP method for C{"eap"} (only
        L{EapType.MSCHAP_V2}), else L{None} (also for C{eap "radius"}).
    @ivar eapRadius: C{eap "radius"} (iked 7.6): EAP is passed through to
        the C{radius server}s, whatever method they choose.
    """

    method: str = "signature"
    psk: Optional[bytes] = field(default=None, repr=False)
    eapType: Optional[EapType] = None
    eapRadius: bool = False

    def __repr__(self):
        psk = "None" if self.psk is None else "<%d bytes hidden>" % (len(self.psk),)
        radius = ", eapRadius=True" if self.eapRadius else ""
        return "Auth(method=%r, psk=%s, eapType=%r%s)" % (self.method, psk, self.eapType, radius)

    @property
    def ianaMethod(self):
        """
        The RFC 7296 auth method this policy uses for its own AUTH payload
        when it is fixed by the configuration, or L{None} for C{"signature"}
        and C{"eap"} (chosen from the local key).
        """
        return {
            "psk": AuthMethod.SHARED_KEY_MIC,
            "rsa": AuthMethod.RSA_SIG,
            "ecdsa256": AuthMethod.ECDSA_SHA256_P256,
            "ecdsa384": AuthMethod.ECDSA_SHA384_P384,
            "ecdsa521": AuthMethod.ECDSA_SHA512_P521,
            "rfc7427": AuthMethod.DIGITAL_SIGNATURE,
        }.get(self.method)


CONFIG_KINDS = (
    "address",
    "netmask",
    "name-server",
    "netbios-server",
    "dhcp-server",
    "protected-subnet",
    "access-server",
)


@dataclass(frozen=True)
class ConfigOption:
    """
    One C{config} (served to the peer) or C{request} (asked of the peer)
    configuration payload attribute.

    @ivar kind: the iked.conf name: C{"address"}, C{"netmask"},
        C{"name-server"}, C{"netbios-server"}, C{"dhcp-server"},
        C{"protected-subnet"} or C{"access-server"}.
    @ivar value: an address; a network for an address pool
        (C{address 10.0.0.0/24}) or a protected subnet; L{None} for
        C{request ... any}.
    @ivar request: C{True} for C{request}, C{False} for C{config}.
    @ivar attribute: the CP attribute type (which also gives the family).
    @ivar address: the address as written, host bits kept, or L{None}.
    @ivar prefixLength: the prefix length if one was written, else L{None}.
    """

    kind: str
    value: object
    request: bool
    attribute: ConfigurationAttribute
    address: Optional[IPAddress] = None
    prefixLength: Optional[int] = None

    @property
    def isPool(self):
        """
        An C{address} with a prefix: a pool to assign addresses from.
        """
        return self.kind == "address" and self.prefixLength is not None


@dataclass(frozen=True)
class User:
    """
    A C{user NAME PASSWORD} line: a local EAP user.

    @ivar name: the user name.
    @ivar password: the password (never in the repr).
    @ivar position: the statement's place among users and policies, from 0.
    """

    name: str
    password: str = field(repr=False)
    position: int = field(default=0, compare=False)

    def __repr__(self):
        return "User(name=%r, password=<hidden>)" % (self.name,)


@dataclass(frozen=True)
class Settings:
    """
    The C{set} options, with iked's defaults.

    @ivar passive: C{set passive}: never initiate.
    @ivar decouple: C{set decouple}: do not load SAs and flows into the kernel.
    @ivar dpdCheckInterval: seconds between liveness checks, 0 disables DPD.
    @ivar enforceSingleIkeSa: one IKE SA per dstid.
    @ivar fragmentation: RFC 7383 IKE fragmentation.
    @ivar mobike: RFC 4555 MOBIKE.
    @ivar certPartialChain: accept a partial chain ending at a trusted CA.
    @ivar ocspUrl: the fallback OCSP responder URL, or L{None}: no OCSP.
    @ivar ocspTolerate: seconds of clock skew tolerated in OCSP responses
        (0: times are not checked).
    @ivar ocspMaxAge: the most seconds C{thisUpdate} may be in the past, or
        L{None} for no limit.
    @ivar vendorId: send the OpenIKED vendor ID payload.
    @ivar stickyAddress: give a returning dstid the same pool address.
    """

    passive: bool = False
    decouple: bool = False
    dpdCheckInterval: int = 60
    enforceSingleIkeSa: bool = False
    fragmentation: bool = False
    mobike: bool = True
    certPartialChain: bool = False
    ocspUrl: Optional[str] = None
    ocspTolerate: int = 0
    ocspMaxAge: Optional[int] = None
    vendorId: bool = True
    stickyAddress: bool = False


@dataclass(frozen=True)
class Policy:
    """
    One C{ikev2} policy with every default applied.

    @ivar name: the policy name (C{policyN} when the file gives none, N
        counting the file's ikev2 rules from 1).
    @ivar quick: C{quick}: the first match wins for incoming connections.
    @ivar skip: C{skip}: never matched for incoming connections.
    @ivar default: C{default}: the policy used when no other matches.
    @ivar active: initiate at once (C{active}); else wait (C{passive}).
    @ivar ipcomp: negotiate IPcomp.
    @ivar mode: C{"tunnel"} or C{"transport"}.
    @ivar natt: C{natt}: force NAT-T encapsulation after IKE_SA_INIT.
    @ivar saProtocol: L{ProtocolId.ESP} or L{ProtocolId.AH}.
    @ivar af: C{"inet"} or C{"inet6"} when the policy is bound to an address
        family (written, or taken from the local/peer address), else L{None}.
    @ivar ipProtocols: the C{proto} numbers, empty for all protocols.
    @ivar rdomain: the routing domain of the clear traffic, or L{None}.
    @ivar flows: the flows, sorted and deduplicated as iked does.
    @ivar local: the local endpoint: L{None} for any, an
        L{ipaddress.IPv4Network}/L{ipaddress.IPv6Network}, or a host name
        (C{str}) that is resolved when used.
    @ivar peer: the remote endpoint, like L{local}.
    @ivar localAddress: L{local} as iked resolved it when reading the file
        (a L{HostAddress}), or L{None} for any.
    @ivar peerAddress: L{peer} as resolved when reading the file, or L{None}.
    @ivar ikeProposals: the IKE SA proposals, in preference order.
    @ivar childProposals: the Child SA (ESP or AH) proposals, in preference
        order; they include the DH transforms (group C{none} by default; the
        Child SA created in IKE_AUTH is sent without DH transforms) and the
        ESN transforms.
    @ivar srcId: the local identity, or L{None} for the default (the FQDN
        from the host name).
    @ivar dstId: the identity the peer must present, or L{None} for any.
    @ivar ikeLifetime: IKE SA rekey time in seconds, 0 for none.
    @ivar reauth: at C{ikeLifetime}, reauthenticate (a new IKE SA, then
        the old one deleted: RFC 7296 2.8.3) instead of rekeying; an
        ikedtx extension (C{ikelifetime 3600 reauth}).
    @ivar lifetime: Child SA rekey time in seconds, 0 for none.
    @ivar lifetimeBytes: Child SA rekey volume in bytes, 0 for none.
    @ivar auth: the L{Auth} method.
    @ivar configOptions: the C{config}/C{request} attributes, in order.
    @ivar iface: the interface for received addresses and routes, or L{None}.
    @ivar tag: the pf tag (with C{$id}, C{$eapid}, C{$domain}, C{$name}
        expanded at run time), or L{None}.
    @ivar tap: the enc(4) interface name (C{"enc1"}) for decapsulated
        traffic, or L{None} for the default C{enc0}.
    @ivar filename: the file the policy was read from.
    @ivar line: the line the policy statement ended on.
    @ivar position: the statement's place among users and policies, from 0.
    """

    name: str
    quick: bool = False
    skip: bool = False
    default: bool = False
    active: bool = False
    ipcomp: bool = False
    mode: str = "tunnel"
    natt: bool = False
    saProtocol: ProtocolId = ProtocolId.ESP
    af: Optional[str] = None
    ipProtocols: Tuple[int, ...] = ()
    rdomain: Optional[int] = None
    flows: Tuple[Flow, ...] = ()
    local: object = None
    peer: object = None
    localAddress: Optional[HostAddress] = None
    peerAddress: Optional[HostAddress] = None
    ikeProposals: Tuple[Proposal, ...] = ()
    childProposals: Tuple[Proposal, ...] = ()
    srcId: Optional[Identity] = None
    dstId: Optional[Identity] = None
    ikeLifetime: int = 0
    reauth: bool = False
    lifetime: int = 10800
    lifetimeBytes: int = 4294967296
    auth: Auth = Auth()
    configOptions: Tuple[ConfigOption, ...] = ()
    iface: Optional[str] = None
    tag: Optional[str] = None
    tap: Optional[str] = None
    filename: str = field(default="<string>", compare=False)
    line: int = field(default=0, compare=False)
    position: int = field(default=0, compare=False)

    @property
    def transport(self):
        return self.mode == "transport"

    @property
    def esn(self):
        """
        The ESN choices offered for Child SAs: a frozenset of L{EsnId}
        values over all child proposals (both by default).
        """
        return frozenset(
            EsnId(t.id) for p in self.childProposals for t in p.transforms if t.type == TransformType.ESN
        )

    @property
    def pfsGroups(self):
        """
        The DH groups offered for Child SA rekeying (PFS), in preference
        order, without L{DhId.NONE}; empty when PFS is not configured.
        """
        seen = []
        for p in self.childProposals:
            for t in p.ofType(TransformType.DH):
                if t.id != DhId.NONE and t.id not in seen:
                    seen.append(t.id)
        return tuple(seen)


RADIUS_AUTH_PORT = 1812
RADIUS_ACCT_PORT = 1813
RADIUS_DAE_PORT = 3799


@dataclass(frozen=True)
class RadiusServerEntry:
    """
    A C{radius [accounting] server ADDRESS [port N] secret SECRET} line.

    @ivar address: the server's IP address (iked takes numeric addresses only).
    @ivar port: its UDP port (1812, or 1813 for accounting, by default).
    @ivar secret: the shared secret (not in the repr).
    @ivar accounting: an accounting server.
    """

    address: Union[IPv4Address, IPv6Address]
    port: int
    secret: str = field(repr=False)
    accounting: bool = False


@dataclass(frozen=True)
class RadiusConfigMap:
    """
    A C{radius config [inet|inet6] OPTION|none [VENDOR] ATTRIBUTE} line: the
    RADIUS attribute of an Access-Accept that gives a CP attribute.

    @ivar option: the CP attribute type, or 0 for C{none} (the attribute
        is not used).
    @ivar vendor: the vendor id, 0 for a standard attribute.
    @ivar attribute: the attribute type.
    """

    option: int
    vendor: int
    attribute: int


@dataclass(frozen=True)
class RadiusDaeClient:
    """
    A C{radius dae client ADDRESS secret SECRET} line.
    """

    address: Union[IPv4Address, IPv6Address]
    secret: str = field(repr=False)


@dataclass(frozen=True)
class RadiusSettings:
    """
    The C{radius} lines of iked 7.6 (RADIUS authentication, accounting and
    dynamic authorization), with iked's defaults.

    @ivar servers: the authentication servers, in file order.
    @ivar accountingServers: the accounting servers, in file order.
    @ivar maxTries: sends of a request to one server (C{max-tries}).
    @ivar maxFailovers: server switches per request (C{max-failovers}).
    @ivar accountingMaxTries: the same for accounting.
    @ivar accountingMaxFailovers: the same for accounting.
    @ivar configMaps: the C{radius config} lines.
    @ivar daeListen: C{radius dae listen on} (address, port) pairs.
    @ivar daeClients: the L{RadiusDaeClient}s.
    """

    servers: Tuple[RadiusServerEntry, ...] = ()
    accountingServers: Tuple[RadiusServerEntry, ...] = ()
    maxTries: int = 3
    maxFailovers: int = 0
    accountingMaxTries: int = 3
    accountingMaxFailovers: int = 0
    configMaps: Tuple[RadiusConfigMap, ...] = ()
    daeListen: Tuple[Tuple[Union[IPv4Address, IPv6Address], int], ...] = ()
    daeClients: Tuple[RadiusDaeClient, ...] = ()


@dataclass(frozen=True)
class Config:
    """
    A whole configuration.

    @ivar settings: the global L{Settings}.
    @ivar users: the L{User}s, in file order.
    @ivar policies: the L{Policy}s, in file order (the order of evaluation).
    @ivar radius: the L{RadiusSettings} (iked 7.6's C{radius} lines).
    @ivar macros: the macros after reading the file (C{-D} definitions
        included), a read-only mapping.
    @ivar warnings: L{ConfigProblem<ikedtx.config.errors.ConfigProblem>}s
        that did not make the file invalid (duplicate flows, no rules).
    """

    settings: Settings = Settings()
    users: Tuple[User, ...] = ()
    policies: Tuple[Policy, ...] = ()
    radius: RadiusSettings = RadiusSettings()
    macros: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False)
    warnings: tuple = field(default=(), compare=False)

    def __post_init__(self):
        if not isinstance(self.macros, MappingProxyType):
            object.__setattr__(self, "macros", MappingProxyType(dict(self.macros)))

    def policyNamed(self, name):
        """
        The first policy called C{name}, or L{None}.
        """
        for policy in self.policies:
            if policy.name == name:
                return policy
        return None

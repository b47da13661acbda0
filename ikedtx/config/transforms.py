# -*- test-case-name: tests.test_config_parser,tests.test_config_differential -*-
"""
The names of iked.conf(5)'s CRYPTO TRANSFORMS, and how a policy's C{ikesa}
and C{childsa} keywords become proposals.

Each table lists names in iked's order, because iked looks names up by
prefix (C{enc aes} is the first cipher whose name starts with C{aes}:
C{aes-128}) and prints a transform under the first name with its id and
key length (C{group grp30} prints as C{brainpool512}).

IKE-only and ESP-only transforms are the ones found in only one of
L{IKE_ENCRYPTION} and L{ESP_ENCRYPTION}; C{prf} and the DH groups are read
for both, but a child proposal ignores C{prf} (as iked does) and an IKE
proposal refuses group C{none} and C{esn}/C{noesn}.
"""

from dataclasses import dataclass
from typing import Optional

from ikedtx.config.model import Proposal, TransformSpec
from ikedtx.crypto import sntrup as _sntrup
from ikedtx.wire.constants import (
    ConfigurationAttribute as CA,
    DhId,
    EncrId,
    EsnId,
    IntegId,
    PrfId,
    ProtocolId,
    TransformType,
)


@dataclass(frozen=True)
class TransformName:
    """
    One row of a transform table.

    @ivar name: the iked.conf name.
    @ivar type: the transform type.
    @ivar id: the transform id.
    @ivar length: iked's length for the name in bytes (the key size; for
        the AEAD and CTR ciphers without the salt), which tells apart names
        with the same id.
    @ivar keyLength: the Key Length attribute sent, in bits, or L{None}.
    @ivar aead: the cipher authenticates (no integrity transform).
    """

    name: str
    type: TransformType
    id: int
    length: int = 0
    keyLength: Optional[int] = None
    aead: bool = False

    def spec(self):
        return TransformSpec(self.type, self.id, self.keyLength)


# OpenBSD iked's hybrid Streamlined NTRU Prime sntrup761 + X25519 key
# exchange: a private-use transform id (RFC 7296 3.3.2), not in IANA's DhId.
SNTRUP761X25519 = _sntrup.SNTRUP761X25519


def _table(transformType, rows):
    return tuple(TransformName(name, transformType, *rest) for name, *rest in rows)


INTEGRITY = _table(
    TransformType.INTEG,
    [
        ("hmac-md5", IntegId.HMAC_MD5_96, 16),
        ("hmac-sha1", IntegId.HMAC_SHA1_96, 20),
        ("hmac-sha2-256", IntegId.HMAC_SHA2_256_128, 32),
        ("hmac-sha2-384", IntegId.HMAC_SHA2_384_192, 48),
        ("hmac-sha2-512", IntegId.HMAC_SHA2_512_256, 64),
    ],
)

PRF = _table(
    TransformType.PRF,
    [
        ("hmac-md5", PrfId.HMAC_MD5, 16),
        ("hmac-sha1", PrfId.HMAC_SHA1, 20),
        ("hmac-sha2-256", PrfId.HMAC_SHA2_256, 32),
        ("hmac-sha2-384", PrfId.HMAC_SHA2_384, 48),
        ("hmac-sha2-512", PrfId.HMAC_SHA2_512, 64),
    ],
)

IKE_ENCRYPTION = _table(
    TransformType.ENCR,
    [
        ("3des", EncrId.TRIPLE_DES, 24),
        ("3des-cbc", EncrId.TRIPLE_DES, 24),
        ("aes-128", EncrId.AES_CBC, 16, 128),
        ("aes-192", EncrId.AES_CBC, 24, 192),
        ("aes-256", EncrId.AES_CBC, 32, 256),
        ("aes-128-gcm", EncrId.AES_GCM_16, 16, 128, True),
        ("aes-256-gcm", EncrId.AES_GCM_16, 32, 256, True),
        ("aes-128-gcm-12", EncrId.AES_GCM_12, 16, 128, True),
        ("aes-256-gcm-12", EncrId.AES_GCM_12, 32, 256, True),
    ],
)

# ikedtx also protects IKE with ChaCha20-Poly1305 (RFC 7634), which iked.conf
# names as ESP-only; L{Profile.ikeChaCha} says whether C{ikesa} accepts it.
IKE_ENCRYPTION_EXTENDED = IKE_ENCRYPTION + _table(
    TransformType.ENCR,
    [
        ("chacha20-poly1305", EncrId.CHACHA20_POLY1305, 32, None, True),
    ],
)

# ChaCha20-Poly1305 goes without a Key Length attribute (RFC 7634 section 2);
# iked sends 256 there.
ESP_ENCRYPTION = _table(
    TransformType.ENCR,
    [
        ("3des", EncrId.TRIPLE_DES, 24),
        ("3des-cbc", EncrId.TRIPLE_DES, 24),
        ("aes-128", EncrId.AES_CBC, 16, 128),
        ("aes-192", EncrId.AES_CBC, 24, 192),
        ("aes-256", EncrId.AES_CBC, 32, 256),
        ("aes-128-ctr", EncrId.AES_CTR, 16, 128),
        ("aes-192-ctr", EncrId.AES_CTR, 24, 192),
        ("aes-256-ctr", EncrId.AES_CTR, 32, 256),
        ("aes-128-gcm", EncrId.AES_GCM_16, 16, 128, True),
        ("aes-192-gcm", EncrId.AES_GCM_16, 24, 192, True),
        ("aes-256-gcm", EncrId.AES_GCM_16, 32, 256, True),
        ("aes-128-gmac", EncrId.NULL_AUTH_AES_GMAC, 16, 128, True),
        ("aes-192-gmac", EncrId.NULL_AUTH_AES_GMAC, 24, 192, True),
        ("aes-256-gmac", EncrId.NULL_AUTH_AES_GMAC, 32, 256, True),
        ("blowfish", EncrId.BLOWFISH, 20, 160),
        ("cast", EncrId.CAST, 16, 128),
        ("chacha20-poly1305", EncrId.CHACHA20_POLY1305, 32, None, True),
        ("null", EncrId.NULL, 0),
    ],
)

GROUPS = _table(
    TransformType.DH,
    [
        ("none", DhId.NONE),
        ("modp768", DhId.MODP_768),
        ("grp1", DhId.MODP_768),
        ("modp1024", DhId.MODP_1024),
        ("grp2", DhId.MODP_1024),
        ("modp1536", DhId.MODP_1536),
        ("grp5", DhId.MODP_1536),
        ("modp2048", DhId.MODP_2048),
        ("grp14", DhId.MODP_2048),
        ("modp3072", DhId.MODP_3072),
        ("grp15", DhId.MODP_3072),
        ("modp4096", DhId.MODP_4096),
        ("grp16", DhId.MODP_4096),
        ("modp6144", DhId.MODP_6144),
        ("grp17", DhId.MODP_6144),
        ("modp8192", DhId.MODP_8192),
        ("grp18", DhId.MODP_8192),
        ("ecp256", DhId.ECP_256),
        ("grp19", DhId.ECP_256),
        ("ecp384", DhId.ECP_384),
        ("grp20", DhId.ECP_384),
        ("ecp521", DhId.ECP_521),
        ("grp21", DhId.ECP_521),
        ("ecp192", DhId.ECP_192),
        ("grp25", DhId.ECP_192),
        ("ecp224", DhId.ECP_224),
        ("grp26", DhId.ECP_224),
        ("brainpool224", DhId.BRAINPOOL_224),
        ("grp27", DhId.BRAINPOOL_224),
        ("brainpool256", DhId.BRAINPOOL_256),
        ("grp28", DhId.BRAINPOOL_256),
        ("brainpool384", DhId.BRAINPOOL_384),
        ("grp29", DhId.BRAINPOOL_384),
        ("brainpool512", DhId.BRAINPOOL_512),
        ("grp30", DhId.BRAINPOOL_512),
        ("curve25519", DhId.CURVE25519),
        ("grp31", DhId.CURVE25519),
        ("sntrup761x25519", SNTRUP761X25519),
    ],
)

ESN = _table(TransformType.ESN, [("esn", EsnId.ESN), ("noesn", EsnId.NO_ESN)])

# ikedtx's extension for RFC 9370: "addke1 mlkem768" ... "addke7 ..." name
# the methods of the additional key exchanges of an ikesa proposal (like
# strongSwan's ke1_mlkem768); "addkeN none" beside a method makes that
# exchange optional.  Any key exchange method may be additional; ML-KEM is
# what they are for.  The rows carry TransformType.DH: L{additionalSpec}
# gives them their ADDKE type.
ADDITIONAL_GROUPS = GROUPS + _table(
    TransformType.DH,
    [
        ("mlkem768", DhId.ML_KEM_768),
        ("mlkem1024", DhId.ML_KEM_1024),
    ],
)


KEY_EXCHANGE_TYPES = frozenset([TransformType.DH]) | frozenset(
    range(TransformType.ADDKE1, TransformType.ADDKE7 + 1))


def additionalSpec(number, row):
    """
    The transform of C{addke<number> <row.name>}: type ADDKE<number>.
    """
    return TransformSpec(TransformType(TransformType.ADDKE1 + number - 1), row.id)

# Key exchange methods iked.conf names but ikedtx cannot compute: a policy
# that offers one is refused with this reason.  sntrup761x25519 is computed
# only with the optional compiled binding (ikedtx[pq]).
UNSUPPORTED_GROUPS = {} if _sntrup.AVAILABLE else {SNTRUP761X25519: _sntrup.MISSING_REASON}

# ikeauth names: iked reads "none" but refuses it; "signature" is the
# default (any signature method).
AUTH_METHOD_NAMES = ("none", "rsa", "ecdsa256", "ecdsa384", "ecdsa521", "rfc7427", "signature")


@dataclass(frozen=True)
class ConfigName:
    """
    One row of the C{config}/C{request} option table.

    @ivar name: the iked.conf name.
    @ivar attribute: the CP attribute type.
    @ivar family: 4 or 6.
    """

    name: str
    attribute: int
    family: int


CONFIG_OPTIONS = tuple(
    ConfigName(*row)
    for row in [
        ("address", CA.INTERNAL_IP4_ADDRESS, 4),
        ("netmask", CA.INTERNAL_IP4_NETMASK, 4),
        ("name-server", CA.INTERNAL_IP4_DNS, 4),
        ("netbios-server", CA.INTERNAL_IP4_NBNS, 4),
        ("dhcp-server", CA.INTERNAL_IP4_DHCP, 4),
        ("address", CA.INTERNAL_IP6_ADDRESS, 6),
        ("name-server", CA.INTERNAL_IP6_DNS, 6),
        ("netbios-server", CA.INTERNAL_IP6_NBNS, 6),
        ("dhcp-server", CA.INTERNAL_IP6_DHCP, 6),
        ("protected-subnet", CA.INTERNAL_IP4_SUBNET, 4),
        ("protected-subnet", CA.INTERNAL_IP6_SUBNET, 6),
        ("access-server", CA.INTERNAL_IP4_SERVER, 4),
        ("access-server", CA.INTERNAL_IP6_SERVER, 6),
    ]
)


def lookup(name, table, match=lambda row: True):
    """
    Find C{name} in C{table} the way iked's parse_xf() does: the first row
    whose name starts with C{name} (so an abbreviation, or even the empty
    string, finds a row) and that C{match} accepts.

    @return: the row, or L{None}.
    """
    for row in table:
        if row.name.startswith(name) and match(row):
            return row
    return None


def nameOf(spec, protocol):
    """
    The name iked prints for a transform: the first row of its table with
    the same id (and the same key length, when the transform has one).
    """
    tables = {
        TransformType.ENCR: IKE_ENCRYPTION_EXTENDED if protocol == ProtocolId.IKE else ESP_ENCRYPTION,
        TransformType.PRF: PRF,
        TransformType.INTEG: INTEGRITY,
        TransformType.DH: GROUPS,
        TransformType.ESN: ESN,
        **{t: ADDITIONAL_GROUPS for t in range(TransformType.ADDKE1, TransformType.ADDKE7 + 1)},
    }
    for row in tables.get(spec.type, ()):
        if row.id != spec.id:
            continue
        if spec.keyLength is None or row.keyLength == spec.keyLength:
            return row.name
    return "unknown"


def configName(attribute):
    """
    The iked.conf name and family of a CP attribute type.
    """
    for row in CONFIG_OPTIONS:
        if row.attribute == attribute:
            return row
    raise KeyError(attribute)


def _specs(*rows):
    return tuple(TransformSpec(*row) for row in rows)


_E, _P, _I, _D, _N = TransformType.ENCR, TransformType.PRF, TransformType.INTEG, TransformType.DH, TransformType.ESN

_IKE_PRFS = _specs(
    (_P, PrfId.HMAC_SHA2_256), (_P, PrfId.HMAC_SHA2_384), (_P, PrfId.HMAC_SHA2_512), (_P, PrfId.HMAC_SHA1)
)
_IKE_GROUPS = _specs(
    *[
        (_D, g)
        for g in (
            DhId.CURVE25519,
            DhId.ECP_521,
            DhId.ECP_384,
            DhId.ECP_256,
            DhId.MODP_4096,
            DhId.MODP_3072,
            DhId.MODP_2048,
            DhId.MODP_1536,
            DhId.MODP_1024,
        )
    ]
)
_INTEGS = _specs(
    (_I, IntegId.HMAC_SHA2_256_128),
    (_I, IntegId.HMAC_SHA2_384_192),
    (_I, IntegId.HMAC_SHA2_512_256),
    (_I, IntegId.HMAC_SHA1_96),
)
_CBC = _specs((_E, EncrId.AES_CBC, 256), (_E, EncrId.AES_CBC, 192), (_E, EncrId.AES_CBC, 128))
_GCM = _specs((_E, EncrId.AES_GCM_16, 128), (_E, EncrId.AES_GCM_16, 256))
_ESNS = _specs((_N, EsnId.ESN), (_N, EsnId.NO_ESN))

# iked's default proposals, transforms in iked's sending order.  A custom
# proposal takes the transform types it does not name from these.
DEFAULT_IKE_AEAD = _GCM + _IKE_PRFS + _IKE_GROUPS
DEFAULT_IKE = _CBC + _specs((_E, EncrId.TRIPLE_DES)) + _IKE_PRFS + _INTEGS + _IKE_GROUPS
DEFAULT_ESP_AEAD = _GCM + _specs((_D, DhId.NONE)) + _ESNS
DEFAULT_ESP = _CBC + _INTEGS + _specs((_D, DhId.NONE)) + _ESNS


@dataclass(frozen=True)
class Profile:
    """
    The defaults and platform quirks a parse follows.

    L{IKEDTX} is what ikedtx does: iked's behaviour on OpenBSD, less the
    quirks listed here.  L{IKED_LINUX} reproduces Debian's openiked 7.2
    (iked built on Linux PF_KEY) with those quirks, for the differential
    test against it.

    @ivar defaultEspAead: the default AEAD child proposal, or L{None} for none.
    @ivar defaultEsp: the default child proposal with integrity.
    @ivar aeadChildProposals: build child proposals of AEAD ciphers (iked on
        Linux drops them: its PF_KEY cannot install AES-GCM).
    @ivar rdomain: the C{rdomain} keyword is supported.
    @ivar ahWithoutEncryption: AH proposals carry no encryption transforms
        (iked copies the ESP defaults into AH proposals, ciphers included).
    @ivar nattKeyword: the C{natt} keyword exists (since OpenBSD 7.3).
    @ivar keepPortOnAny: C{from any port 22} keeps its port (iked drops
        it when it expands C{any} per address family, widening the flow).
    @ivar refuseUnsupportedGroups: refuse the groups in
        L{UNSUPPORTED_GROUPS} (iked computes them; ikedtx cannot).
    @ivar ikeChaCha: C{ikesa enc chacha20-poly1305} is accepted (an ikedtx
        extension: iked.conf(5) lists it as ESP only).
    @ivar radius: OpenBSD 7.6's C{radius} statements and C{eap "radius"}
        (their words are keywords).
    @ivar lexErrorEndsLine: after a lexical error (an undefined macro, a
        number too large) parsing resumes on the next line; iked's lexer
        skips to the end of the line and then its parser skips to the end
        of the next one, silently dropping that line.
    """

    name: str
    defaultEspAead: Optional[tuple] = DEFAULT_ESP_AEAD
    defaultEsp: tuple = DEFAULT_ESP
    aeadChildProposals: bool = True
    rdomain: bool = True
    ahWithoutEncryption: bool = True
    nattKeyword: bool = True
    keepPortOnAny: bool = True
    refuseUnsupportedGroups: bool = True
    lexErrorEndsLine: bool = True
    ikeChaCha: bool = True
    radius: bool = True


IKEDTX = Profile("ikedtx")

IKED_LINUX = Profile(
    "openiked 7.2 on Linux",
    defaultEspAead=None,
    defaultEsp=tuple(
        t
        for t in DEFAULT_ESP
        if not (t.type == _I and t.id == IntegId.HMAC_SHA2_256_128) and not (t.type == _N and t.id == EsnId.ESN)
    ),
    aeadChildProposals=False,
    rdomain=False,
    ahWithoutEncryption=False,
    nattKeyword=False,
    keepPortOnAny=False,
    refuseUnsupportedGroups=False,
    lexErrorEndsLine=False,
    ikeChaCha=False,
    radius=False,
)


class ProposalError(ValueError):
    """
    A proposal's transforms cannot go together; the message is iked's.
    """


@dataclass
class ProposalSpec:
    """
    The transforms one C{ikesa} or C{childsa} keyword named, as read.

    @ivar encryption: L{TransformName} rows for C{enc}.
    @ivar integrity: rows for C{auth}.
    @ivar prf: rows for C{prf}.
    @ivar groups: rows for C{group}.
    @ivar esn: rows for C{esn}/C{noesn}.
    @ivar additional: C{{n: rows}} for C{addke<n>} (RFC 9370; an ikedtx
        extension).
    """

    encryption: list
    integrity: list
    prf: list
    groups: list
    esn: list
    additional: dict

    def __init__(self):
        self.encryption, self.integrity, self.prf, self.groups, self.esn = [], [], [], [], []
        self.additional = {}

    def isEmpty(self):
        return not (self.encryption or self.integrity or self.prf or self.groups or self.esn or self.additional)

    def additionalTransforms(self):
        """
        The ADDKE transforms, by type, each type's methods in the order named.
        """
        return tuple(additionalSpec(n, row) for n in sorted(self.additional) for row in self.additional[n])


def _pick(transformType, named, defaults):
    """
    iked's copy_transforms(): the named transforms of one type, or else the
    defaults' transforms of that type.
    """
    if named:
        return tuple(row.spec() for row in named)
    return tuple(t for t in defaults if t.type == transformType)


def _split(spec):
    aead = sum(1 for row in spec.encryption if row.aead)
    withAuth = len(spec.encryption) - aead + (1 if spec.integrity else 0)
    if aead and aead != len(spec.encryption):
        raise ProposalError("cannot mix encryption transforms with implicit and non-implicit authentication")
    if aead and spec.integrity:
        raise ProposalError("authentication is implicit for given encryption transforms")
    return aead, withAuth


def ikeProposals(specs):
    """
    The IKE SA proposals for a policy's C{ikesa} keywords (none: iked's two
    defaults).  Each C{ikesa} gives an AEAD proposal when it names only AEAD
    ciphers, a proposal with integrity when it names only other ciphers or
    an integrity algorithm, and both when it names no cipher.

    @raise ProposalError: the transforms cannot go together.
    """
    if not specs:
        return (Proposal(ProtocolId.IKE, DEFAULT_IKE_AEAD), Proposal(ProtocolId.IKE, DEFAULT_IKE))
    proposals = []
    for spec in specs:
        if any(row.id == DhId.NONE for row in spec.groups):
            raise ProposalError('IKE group can not be "none".')
        if spec.esn:
            raise ProposalError("cannot use ESN with ikesa.")
        aead, withAuth = _split(spec)
        additional = spec.additionalTransforms()
        if not withAuth:
            d = DEFAULT_IKE_AEAD
            proposals.append(
                Proposal(
                    ProtocolId.IKE,
                    _pick(_E, spec.encryption, d) + _pick(_D, spec.groups, d) + _pick(_P, spec.prf, d) + additional,
                )
            )
        if not aead:
            d = DEFAULT_IKE
            proposals.append(
                Proposal(
                    ProtocolId.IKE,
                    _pick(_I, spec.integrity, d)
                    + _pick(_E, spec.encryption, d)
                    + _pick(_D, spec.groups, d)
                    + _pick(_P, spec.prf, d)
                    + additional,
                )
            )
    return tuple(proposals)


def childProposals(specs, protocol, profile=IKEDTX):
    """
    The Child SA proposals for a policy's C{childsa} keywords (none: the
    defaults), for L{ProtocolId.ESP} or L{ProtocolId.AH}.  C{prf} is
    ignored, as iked does.

    @raise ProposalError: the transforms cannot go together.
    """
    ah = protocol == ProtocolId.AH and profile.ahWithoutEncryption

    def finish(transforms, spec=None):
        if spec is not None:
            transforms += spec.additionalTransforms()
        if ah:
            transforms = tuple(t for t in transforms if t.type != _E)
        return Proposal(protocol, transforms)

    if not specs:
        proposals = []
        if profile.defaultEspAead is not None and not ah:
            proposals.append(finish(profile.defaultEspAead))
        proposals.append(finish(profile.defaultEsp))
        return tuple(proposals)
    proposals = []
    for spec in specs:
        if ah and spec.encryption:
            raise ProposalError("enc is not valid with ah: AH only authenticates")
        aead, withAuth = _split(spec)
        if not withAuth and profile.aeadChildProposals and not ah:
            d = profile.defaultEspAead or DEFAULT_ESP_AEAD
            proposals.append(
                finish(_pick(_E, spec.encryption, d) + _pick(_D, spec.groups, d) + _pick(_N, spec.esn, d), spec)
            )
        if not aead:
            d = profile.defaultEsp
            proposals.append(
                finish(
                    _pick(_I, spec.integrity, d)
                    + _pick(_E, spec.encryption, d)
                    + _pick(_D, spec.groups, d)
                    + _pick(_N, spec.esn, d),
                    spec,
                )
            )
    return tuple(proposals)

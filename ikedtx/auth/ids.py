# -*- test-case-name: tests.test_auth_ids -*-
"""
IKE identities: the value an IDi/IDr payload carries (RFC 7296 3.5), with
iked's text forms.

An L{IKEIdentity} is an ID type and the identification data exactly as on
the wire (the payload body after its 4-byte header).  Constructing one
validates the data strictly, so an IKEIdentity in hand is always well formed:

  - IPV4_ADDR: 4 octets; IPV6_ADDR: 16 octets.
  - FQDN, RFC822_ADDR (iked's UFQDN): 1 to 1024 printable ASCII characters
    (0x21-0x7e: no spaces, controls, NULs or 8-bit bytes).
  - DER_ASN1_DN: one DER Name with at least one attribute, nothing trailing.
  - KEY_ID, DER_ASN1_GN, FC_NAME: 1 to 1024 opaque octets.
  - NULL (RFC 7619): the data carries no meaning and is dropped.
  - Other ID types are refused.
1024 is iked's IKED_ID_SIZE; iked cannot hold a longer ID either.

Text forms follow iked:
  - L{IKEIdentity.__str__} renders like iked's ikev2_print_id, used in its
    logs and by ikectl: C{"FQDN/host.example.com"}, C{"IPV4/192.0.2.1"},
    C{"UFQDN/user@example.com"}, C{"ASN1_DN//C=DE/O=x/CN=y"} (the DN like
    OpenSSL's X509_NAME_oneline), C{"KEY_ID/0a0b..."} (hex).
  - L{inferIdentity} is iked.conf's srcid/dstid type inference (parse.y
    get_id_type): a leading '/' is ASN1_DN; an IPv4 literal IPV4; an IPv6
    literal IPV6; anything containing '@' UFQDN; else FQDN.
  - L{parseDN} reads iked's "/type=value/type=value" DN syntax (ca.c
    ca_x509_name_parse: '\\' escapes the next character, each pair is its
    own RDN, types are OpenSSL short or long names or dotted OIDs) and
    L{renderDN} writes X509_NAME_oneline's form.

Equality (C{==}, C{hash}) is identity matching:
  - ASN1_DN compares the decoded Names the way OpenSSL's X509_NAME_cmp does
    (RFC 5280 7.1): string values are compared case-insensitively (ASCII)
    with runs of white space collapsed and leading/trailing white space
    ignored, whatever ASN.1 string type carries them; multi-valued RDNs
    compare as sets.  So "/C=DE/CN=Host" from iked.conf equals a certificate
    subject C=DE, CN=host encoded as PrintableString.
  - FQDN compares case-insensitively (ASCII, DNS rules).
  - UFQDN compares the local part exactly and the domain case-insensitively.
  - everything else compares octets.
iked itself compares printed ID strings octet for octet (policy.c
policy_test); the rules here accept what iked accepts and, in addition, the
case and encoding variants the RFCs call equal.

The default local ID (policy without srcid) is L{defaultLocalIdentity}: an
FQDN with the local host name, as iked 7.2 does in ikev2_policy2id
(gethostname(3)), with or without certificates; iked then looks for a local
certificate whose subjectAltName holds that FQDN.  It does not use a
certificate's subject DN.
"""

import ipaddress
import socket

from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ikedtx.auth.errors import InvalidDN, InvalidIdentity
from ikedtx.wire.constants import IdType

MAX_ID_LENGTH = 1024

# iked's names for the ID types (ikev2.h IKEV2_ID_*).
_TYPE_NAMES = {
    IdType.IPV4_ADDR: "IPV4",
    IdType.FQDN: "FQDN",
    IdType.RFC822_ADDR: "UFQDN",
    IdType.IPV6_ADDR: "IPV6",
    IdType.DER_ASN1_DN: "ASN1_DN",
    IdType.DER_ASN1_GN: "ASN1_GN",
    IdType.KEY_ID: "KEY_ID",
    IdType.FC_NAME: "FC_NAME",
    IdType.NULL: "NULL",
}

# pubkeys/ subdirectory per ID type (iked's lc_idtype of the printed type).
PUBKEY_DIRECTORIES = {
    IdType.IPV4_ADDR: "ipv4",
    IdType.IPV6_ADDR: "ipv6",
    IdType.FQDN: "fqdn",
    IdType.RFC822_ADDR: "ufqdn",
}

# OpenSSL's short names (OBJ_nid2sn) and long names for the attributes a DN
# commonly holds; X509_NAME_oneline prints the short name and falls back to
# the dotted OID.
_ATTRIBUTES = [
    ("C", "countryName", NameOID.COUNTRY_NAME),
    ("ST", "stateOrProvinceName", NameOID.STATE_OR_PROVINCE_NAME),
    ("L", "localityName", NameOID.LOCALITY_NAME),
    ("O", "organizationName", NameOID.ORGANIZATION_NAME),
    ("OU", "organizationalUnitName", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("CN", "commonName", NameOID.COMMON_NAME),
    ("emailAddress", "emailAddress", NameOID.EMAIL_ADDRESS),
    ("serialNumber", "serialNumber", NameOID.SERIAL_NUMBER),
    ("SN", "surname", NameOID.SURNAME),
    ("GN", "givenName", NameOID.GIVEN_NAME),
    ("title", "title", NameOID.TITLE),
    ("street", "streetAddress", NameOID.STREET_ADDRESS),
    ("postalCode", "postalCode", NameOID.POSTAL_CODE),
    ("initials", "initials", NameOID.INITIALS),
    ("generationQualifier", "generationQualifier", NameOID.GENERATION_QUALIFIER),
    ("dnQualifier", "dnQualifier", NameOID.DN_QUALIFIER),
    ("pseudonym", "pseudonym", NameOID.PSEUDONYM),
    ("name", "name", ObjectIdentifier("2.5.4.41")),
    ("description", "description", ObjectIdentifier("2.5.4.13")),
    ("businessCategory", "businessCategory", NameOID.BUSINESS_CATEGORY),
    ("DC", "domainComponent", NameOID.DOMAIN_COMPONENT),
    ("UID", "userId", NameOID.USER_ID),
    ("organizationIdentifier", "organizationIdentifier", NameOID.ORGANIZATION_IDENTIFIER),
    ("jurisdictionC", "jurisdictionCountryName", NameOID.JURISDICTION_COUNTRY_NAME),
    ("jurisdictionST", "jurisdictionStateOrProvinceName", NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME),
    ("jurisdictionL", "jurisdictionLocalityName", NameOID.JURISDICTION_LOCALITY_NAME),
    ("unstructuredName", "unstructuredName", ObjectIdentifier("1.2.840.113549.1.9.2")),
]
_SHORT_NAMES = {oid: short for short, _, oid in _ATTRIBUTES}
_OIDS_BY_NAME = {}
for _short, _long, _oid in _ATTRIBUTES:
    _OIDS_BY_NAME[_short] = _oid
    _OIDS_BY_NAME[_long] = _oid
del _short, _long, _oid

# ASN.1 string types X509_NAME_cmp canonicalizes (OpenSSL ASN1_MASK_CANON).
_CANONICAL_TYPES = frozenset(
    [
        _ASN1Type.UTF8String,
        _ASN1Type.BMPString,
        _ASN1Type.UniversalString,
        _ASN1Type.PrintableString,
        _ASN1Type.T61String,
        _ASN1Type.IA5String,
        _ASN1Type.VisibleString,
    ]
)
_WHITESPACE = " \t\n\v\f\r"


def _asciiLower(text):
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _canonicalValue(attribute):
    value = attribute.value
    if isinstance(value, str) and attribute._type in _CANONICAL_TYPES:
        # OpenSSL's asn1_string_canon: trim, collapse white space, lower
        # case ASCII only.
        words = value.strip(_WHITESPACE)
        collapsed = []
        previousSpace = False
        for c in words:
            if c in _WHITESPACE:
                if not previousSpace:
                    collapsed.append(" ")
                previousSpace = True
            else:
                collapsed.append(c)
                previousSpace = False
        return ("s", _asciiLower("".join(collapsed)))
    return ("raw", int(attribute._type.value), _rawValue(attribute))


def canonicalName(name):
    """
    A hashable form of the x509.Name C{name} under which two names are equal
    exactly when OpenSSL's X509_NAME_cmp finds them equal.
    """
    return tuple(
        frozenset((attribute.oid.dotted_string, _canonicalValue(attribute)) for attribute in rdn)
        for rdn in name.rdns
    )


def namesEqual(a, b):
    """
    Whether x509.Names C{a} and C{b} name the same entity (RFC 5280 7.1,
    as X509_NAME_cmp).
    """
    return canonicalName(a) == canonicalName(b)


def _rawValue(attribute):
    """
    The content octets of an attribute value as encoded.
    """
    value = attribute.value
    if isinstance(value, bytes):
        return value
    if attribute._type == _ASN1Type.UTF8String:
        return value.encode("utf-8")
    if attribute._type == _ASN1Type.BMPString:
        return value.encode("utf-16-be")
    if attribute._type == _ASN1Type.UniversalString:
        return value.encode("utf-32-be")
    return value.encode("latin-1", "replace")


def renderDN(name):
    """
    Render the x509.Name C{name} like OpenSSL's X509_NAME_oneline (and so
    like iked's logs): C{"/C=DE/O=Example/CN=host"}, attributes in encoding
    order, each by its OpenSSL short name or dotted OID, octets outside
    0x20-0x7e as C{\\xHH}, the attributes of a multi-valued RDN joined by
    C{+} as OpenSSL 3 does.
    Values are not escaped, so a value holding C{/} does not parse back.
    """
    if any(len(rdn) > 1 for rdn in name.rdns):
        # DER sorts the attributes of a multi-valued RDN; OpenSSL walks them
        # in encoded order, which a Name built in memory may not have.
        name = x509.Name.from_bytes(name.public_bytes())
    parts = []
    for rdn in name.rdns:
        separator = "/"
        for attribute in rdn:
            label = _SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
            value = "".join(
                chr(octet) if 0x20 <= octet <= 0x7E else "\\x%02X" % (octet,) for octet in _rawValue(attribute)
            )
            parts.append("%s%s=%s" % (separator, label, value))
            # OpenSSL 3 joins the attributes of one RDN with '+'.
            separator = "+"
    return "".join(parts)


def _unescape(text, start, marker):
    """
    Copy C{text} from C{start} up to an unescaped C{marker}.

    @return: (the unescaped text, the index after the marker or the end,
        whether the marker was found)
    """
    out = []
    i = start
    while i < len(text):
        c = text[i]
        if c == marker:
            return "".join(out), i + 1, True
        if c == "\\":
            i += 1
            if i == len(text):
                raise InvalidDN("'\\' at end", text)
            c = text[i]
        out.append(c)
        i += 1
    return "".join(out), i, False


def parseDN(text):
    """
    Parse iked's DN syntax C{"/C=DE/O=Example/CN=host"} into an x509.Name.

    Each C{type=value} becomes its own RDN, in order; C{\\} escapes the next
    character (so C{\\/} is a slash inside a value); types are OpenSSL short
    or long names (case-sensitive, as OpenSSL's OBJ_txt2nid) or dotted OIDs.
    String types are those OpenSSL picks: PrintableString for C,
    serialNumber and dnQualifier, IA5String for emailAddress and DC,
    UTF8String otherwise.

    This is the one DN parser: the configuration's srcid/dstid
    (L{ikedtx.config.model.Identity}) uses it too.

    @raise InvalidDN: no leading '/', an empty type or value, a missing
        '=', an unknown type, or a value the attribute does not allow (C
        must be two letters); its C{reason} says which.
    @raise InvalidIdentity: C{text} is not a L{str}.
    """
    if not isinstance(text, str):
        raise InvalidIdentity("DN must be text, not %r" % (type(text).__name__,))
    if not text.startswith("/"):
        raise InvalidDN("leading '/' missing", text)
    attributes = []
    i = 1
    while i < len(text):
        attrType, i, found = _unescape(text, i, "=")
        if not found:
            raise InvalidDN("missing value", text)
        value, i, _ = _unescape(text, i, "/")
        if not attrType or not value:
            raise InvalidDN("empty type or value", text)
        oid = _OIDS_BY_NAME.get(attrType)
        if oid is None:
            try:
                oid = ObjectIdentifier(attrType)
            except ValueError:
                raise InvalidDN("unknown attribute type %r" % (attrType,), text)
        try:
            attributes.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)]))
        except ValueError as e:
            raise InvalidDN("bad value for %s (%s)" % (attrType, e), text)
    if not attributes:
        raise InvalidDN("no attribute", text)
    name = x509.Name(attributes)
    try:
        name.public_bytes()
    except ValueError as e:
        raise InvalidDN("cannot be encoded (%s)" % (e,), text)
    return name


_PRINTABLE = bytes(range(0x21, 0x7F))


def _printable(data):
    # Nothing left once the octets 0x21-0x7E are taken out (in C: an
    # octet at a time in Python showed in the responder's profile).
    return not bytes(data).translate(None, _PRINTABLE)


def _decodeName(data):
    try:
        name = x509.Name.from_bytes(data)
    except ValueError:
        raise InvalidIdentity("ASN1_DN data is not a DER Name")
    if not name.rdns:
        raise InvalidIdentity("ASN1_DN data is an empty Name")
    return name


class IKEIdentity:
    """
    An IKE identity: an ID type and its identification data as carried in an
    IDi/IDr payload (RFC 7296 3.5).

    Immutable and validated on construction (see the module docstring).

    @ivar idType: an L{IdType}.
    @ivar data: the identification data, bytes.
    """

    __slots__ = ("idType", "data", "_name", "_key")

    def __init__(self, idType, data):
        """
        Validate received identification data.

        @raise InvalidIdentity: the data does not fit the type.
        """
        try:
            idType = IdType(idType)
        except ValueError:
            raise InvalidIdentity("unsupported ID type %r" % (idType,))
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidIdentity("ID data must be bytes, not %r" % (type(data).__name__,))
        data = bytes(data)
        name = None
        if idType == IdType.NULL:
            data = b""
        elif not data:
            raise InvalidIdentity("empty %s ID" % (_TYPE_NAMES[idType],))
        elif len(data) > MAX_ID_LENGTH:
            raise InvalidIdentity("%s ID longer than %d octets" % (_TYPE_NAMES[idType], MAX_ID_LENGTH))
        elif idType == IdType.IPV4_ADDR and len(data) != 4:
            raise InvalidIdentity("IPV4 ID must be 4 octets, not %d" % (len(data),))
        elif idType == IdType.IPV6_ADDR and len(data) != 16:
            raise InvalidIdentity("IPV6 ID must be 16 octets, not %d" % (len(data),))
        elif idType in (IdType.FQDN, IdType.RFC822_ADDR) and not _printable(data):
            raise InvalidIdentity("%s ID is not printable ASCII" % (_TYPE_NAMES[idType],))
        elif idType == IdType.DER_ASN1_DN:
            name = _decodeName(data)
        object.__setattr__(self, "idType", idType)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_key", self._matchKey())

    def __setattr__(self, attr, value):
        raise AttributeError("IKEIdentity is immutable")

    @classmethod
    def fromPayload(cls, idType, data):
        """
        Validate and wrap received ID payload data (the same as the
        constructor).
        """
        return cls(idType, data)

    @classmethod
    def fromAddress(cls, address):
        """
        An IPV4 or IPV6 identity from an address (text or ipaddress object).
        Text must be a plain literal: no zone index, no prefix.
        """
        if isinstance(address, str):
            if "%" in address or "/" in address:
                raise InvalidIdentity("not an address literal: %r" % (address,))
            try:
                address = ipaddress.ip_address(address)
            except ValueError:
                raise InvalidIdentity("not an address literal: %r" % (address,))
        if isinstance(address, ipaddress.IPv4Address):
            return cls(IdType.IPV4_ADDR, address.packed)
        if isinstance(address, ipaddress.IPv6Address):
            if address.scope_id:
                raise InvalidIdentity("an IPV6 ID carries no zone index: %r" % (str(address),))
            return cls(IdType.IPV6_ADDR, address.packed)
        raise InvalidIdentity("not an address: %r" % (address,))

    @classmethod
    def fromFQDN(cls, fqdn):
        """
        An FQDN identity from text such as C{"host.example.com"}.
        """
        return cls(IdType.FQDN, _ascii(fqdn, "FQDN"))

    @classmethod
    def fromUFQDN(cls, address):
        """
        A UFQDN (ID_RFC822_ADDR) identity from text such as
        C{"user@example.com"}.
        """
        return cls(IdType.RFC822_ADDR, _ascii(address, "UFQDN"))

    @classmethod
    def fromDN(cls, dn):
        """
        An ASN1_DN identity from iked's text form C{"/C=DE/O=x/CN=y"} (see
        L{parseDN}) or an x509.Name; the data is the Name's DER.
        """
        if isinstance(dn, str):
            dn = parseDN(dn)
        if not isinstance(dn, x509.Name):
            raise InvalidIdentity("not a DN: %r" % (dn,))
        return cls(IdType.DER_ASN1_DN, dn.public_bytes())

    @classmethod
    def fromKeyID(cls, keyId):
        """
        A KEY_ID identity: opaque octets.
        """
        if isinstance(keyId, str):
            keyId = keyId.encode("utf-8")
        return cls(IdType.KEY_ID, keyId)

    @classmethod
    def null(cls):
        """
        The ID_NULL identity (RFC 7619).
        """
        return cls(IdType.NULL, b"")

    @classmethod
    def fromConfig(cls, idType, value):
        """
        The identity an iked.conf srcid/dstid of type C{idType} with text
        C{value} stands for (what iked's ikev2_policy2id builds).

        @param idType: an L{IdType}, or C{None} to infer it as iked does
            (L{inferIdentity}).
        """
        if idType is None:
            return inferIdentity(value)
        try:
            idType = IdType(idType)
        except ValueError:
            raise InvalidIdentity("unsupported ID type %r" % (idType,))
        if not isinstance(value, str):
            raise InvalidIdentity("configured ID must be text, not %r" % (type(value).__name__,))
        if idType == IdType.IPV4_ADDR:
            ident = cls.fromAddress(value)
            if ident.idType != IdType.IPV4_ADDR:
                raise InvalidIdentity("not an IPv4 address: %r" % (value,))
            return ident
        if idType == IdType.IPV6_ADDR:
            ident = cls.fromAddress(value)
            if ident.idType != IdType.IPV6_ADDR:
                raise InvalidIdentity("not an IPv6 address: %r" % (value,))
            return ident
        if idType == IdType.DER_ASN1_DN:
            return cls.fromDN(value)
        if idType == IdType.NULL:
            return cls.null()
        # FQDN, UFQDN and the opaque types: iked copies the text.
        return cls(idType, value.encode("utf-8"))

    @property
    def typeName(self):
        """
        iked's name of the ID type: C{"FQDN"}, C{"UFQDN"}, C{"ASN1_DN"}...
        """
        return _TYPE_NAMES[self.idType]

    @property
    def name(self):
        """
        The x509.Name of an ASN1_DN identity, else C{None}.
        """
        return self._name

    @property
    def address(self):
        """
        The ipaddress object of an IPV4/IPV6 identity, else C{None}.
        """
        if self.idType in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
            return ipaddress.ip_address(self.data)
        return None

    @property
    def text(self):
        """
        The value part of L{__str__}: C{"host.example.com"},
        C{"/C=DE/CN=y"}, C{"192.0.2.1"}, hex for opaque types.
        """
        if self.idType in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
            return str(self.address)
        if self.idType in (IdType.FQDN, IdType.RFC822_ADDR):
            return self.data.decode("ascii")
        if self.idType == IdType.DER_ASN1_DN:
            return renderDN(self._name)
        return self.data.hex()

    @property
    def pubkeyPath(self):
        """
        The file naming this identity's trusted raw public key, relative to
        the pubkeys/ directory (C{"fqdn/host.example.com"}), or C{None} for
        ID types iked does not map to files (ASN1_DN, KEY_ID, ...).
        """
        directory = PUBKEY_DIRECTORIES.get(self.idType)
        if directory is None:
            return None
        return "%s/%s" % (directory, self.text)

    def _matchKey(self):
        if self.idType == IdType.DER_ASN1_DN:
            return (self.idType, canonicalName(self._name))
        if self.idType == IdType.FQDN:
            return (self.idType, self.data.lower())
        if self.idType == IdType.RFC822_ADDR:
            local, at, domain = self.data.rpartition(b"@")
            if not at:
                return (self.idType, self.data.lower())
            return (self.idType, local, domain.lower())
        return (self.idType, self.data)

    def matches(self, other):
        """
        Whether C{other} names the same entity (see the module docstring);
        the same as C{==}.
        """
        return self == other

    def __eq__(self, other):
        if not isinstance(other, IKEIdentity):
            return NotImplemented
        return self._key == other._key

    def __ne__(self, other):
        result = self.__eq__(other)
        if result is NotImplemented:
            return result
        return not result

    def __hash__(self):
        return hash(self._key)

    def __str__(self):
        return "%s/%s" % (self.typeName, self.text)

    def __repr__(self):
        return "IKEIdentity(%s)" % (self,)


def _ascii(text, what):
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise InvalidIdentity("%s must be ASCII text: %r" % (what, text))


def inferIdType(text):
    """
    iked's get_id_type(): the ID type an iked.conf srcid/dstid C{text}
    without a type stands for.  C{"/..."} is ASN1_DN; an IPv4 literal IPV4;
    an IPv6 literal (without zone index) IPV6; text containing '@' UFQDN;
    anything else FQDN.  Whether the text is valid for that type is not
    checked here (see L{inferIdentity}).
    """
    if text.startswith("/"):
        return IdType.DER_ASN1_DN
    if "%" not in text:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            pass
        else:
            return IdType.IPV4_ADDR if address.version == 4 else IdType.IPV6_ADDR
    if "@" in text:
        return IdType.RFC822_ADDR
    return IdType.FQDN


def inferIdentity(text):
    """
    The identity iked.conf means by a srcid/dstid C{text} without a type
    (L{inferIdType}).

    @raise InvalidIdentity: the text is not valid for the inferred type.
    """
    if not isinstance(text, str):
        raise InvalidIdentity("ID must be text, not %r" % (type(text).__name__,))
    idType = inferIdType(text)
    if idType == IdType.DER_ASN1_DN:
        return IKEIdentity.fromDN(text)
    if idType in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        return IKEIdentity.fromAddress(text)
    if idType == IdType.RFC822_ADDR:
        return IKEIdentity.fromUFQDN(text)
    return IKEIdentity.fromFQDN(text)


def defaultLocalIdentity(hostname=None):
    """
    The local ID of a policy without srcid: FQDN of the host name, as iked
    7.2 (ikev2_policy2id uses gethostname(3), whether or not certificates
    are in use).

    @param hostname: the host name to use; C{None} asks the system.
    """
    if hostname is None:
        hostname = socket.gethostname()
    return IKEIdentity.fromFQDN(hostname)

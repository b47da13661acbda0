"""
Tests for L{ikedtx.auth.ids}: IKE identity values, iked's text forms and
type inference, DN parsing and rendering, matching rules.
"""

import ipaddress
import subprocess
import tempfile
import os

from cryptography import x509
from cryptography.hazmat.bindings.openssl.binding import Binding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth.errors import InvalidDN, InvalidIdentity
from ikedtx.auth.ids import (
    IKEIdentity,
    defaultLocalIdentity,
    inferIdentity,
    inferIdType,
    namesEqual,
    parseDN,
    renderDN,
)
from ikedtx.wire.constants import IdType
from tests import pki
from tests.support import requireExecutable


def opensslOneline(name):
    """
    OpenSSL's own X509_NAME_oneline of C{name}, the reference for
    L{renderDN}.
    """
    lib, ffi = Binding.lib, Binding.ffi
    der = name.public_bytes()
    buf = ffi.new("unsigned char[]", der)
    pointer = ffi.new("unsigned char **", buf)
    parsed = lib.d2i_X509_NAME(ffi.NULL, ffi.cast("const unsigned char **", pointer), len(der))
    assert parsed != ffi.NULL
    try:
        out = lib.X509_NAME_oneline(parsed, ffi.NULL, 0)
        try:
            return ffi.string(out).decode("latin-1")
        finally:
            lib.OPENSSL_free(out)
    finally:
        lib.X509_NAME_free(parsed)


def _opensslName(name):
    lib, ffi = Binding.lib, Binding.ffi
    der = name.public_bytes()
    buf = ffi.new("unsigned char[]", der)
    pointer = ffi.new("unsigned char **", buf)
    parsed = lib.d2i_X509_NAME(ffi.NULL, ffi.cast("const unsigned char **", pointer), len(der))
    assert parsed != ffi.NULL
    return ffi.gc(parsed, lib.X509_NAME_free)


def opensslNamesEqual(a, b):
    """
    OpenSSL's X509_NAME_cmp(a, b) == 0, the reference for L{namesEqual}.
    """
    return Binding.lib.X509_NAME_cmp(_opensslName(a), _opensslName(b)) == 0


class InferenceTests(SynchronousTestCase):
    """
    L{inferIdentity} is iked.conf's srcid/dstid type inference (iked.conf(5)
    srcid; parse.y get_id_type).
    """

    def test_table(self):
        """
        '/...' is ASN1_DN, an IPv4 literal IPV4, an IPv6 literal (compressed
        or not) IPV6, text with '@' UFQDN, anything else FQDN; the order of
        the checks is iked's.
        """
        table = [
            ("/C=DE/CN=host", IdType.DER_ASN1_DN, "/C=DE/CN=host"),
            ("192.0.2.1", IdType.IPV4_ADDR, "192.0.2.1"),
            ("2001:db8::1", IdType.IPV6_ADDR, "2001:db8::1"),
            ("2001:0db8:0:0:0:0:0:1", IdType.IPV6_ADDR, "2001:db8::1"),
            ("::ffff:192.0.2.1", IdType.IPV6_ADDR, "::ffff:c000:201"),
            ("reyk@example.com", IdType.RFC822_ADDR, "reyk@example.com"),
            ("host.example.com", IdType.FQDN, "host.example.com"),
            ("host", IdType.FQDN, "host"),
            ("192.0.2.256", IdType.FQDN, "192.0.2.256"),
            ("1.2.3", IdType.FQDN, "1.2.3"),
            # A slash first wins over '@'.
            ("/CN=a@b", IdType.DER_ASN1_DN, "/CN=a@b"),
        ]
        for text, idType, rendered in table:
            identity = inferIdentity(text)
            self.assertEqual((identity.idType, identity.text), (idType, rendered), text)

    def test_zoneIndexIsNotAnAddress(self):
        """
        inet_pton does not take a zone index, so iked infers FQDN; so do we
        (Python's ipaddress would take it).
        """
        self.assertEqual(inferIdentity("fe80::1%eth0").idType, IdType.FQDN)

    def test_invalidText(self):
        """
        Inferred types still validate: a DN must parse, text must be ASCII
        without spaces.
        """
        for text in ["/CN", "/", "host name", "h\u00f6st", "", "a@b c"]:
            self.assertRaises(InvalidIdentity, inferIdentity, text)

    def test_notText(self):
        self.assertRaises(InvalidIdentity, inferIdentity, b"host")

    def test_typeOnly(self):
        """
        L{inferIdType} gives the type alone, without validating the text for
        it (the configuration keeps the text and checks a DN later), and it is
        the type L{inferIdentity} builds.
        """
        self.assertEqual(inferIdType("/CN"), IdType.DER_ASN1_DN)
        self.assertEqual(inferIdType("h\u00f6st name"), IdType.FQDN)
        self.assertEqual(inferIdType("a@b c"), IdType.RFC822_ADDR)
        for text in ["/C=DE/CN=host", "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", "reyk@example.com", "host", "1.2.3", "fe80::1%eth0"]:
            self.assertEqual(inferIdType(text), inferIdentity(text).idType, text)

    def test_addressesAsInetPton(self):
        """
        An address is what inet_pton(3) takes, as in iked's get_id_type.
        """
        import socket

        for text in ["192.0.2.1", "0.0.0.0", "192.0.2.01", "192.0.2", "192.0.2.1.", " 192.0.2.1", "::", "::1", "1::", "::ffff:192.0.2.1", "2001:db8::1::", "2001:db8:0:0:0:0:0:0:1", "fe80::1%1", "2001:DB8::A"]:
            expected = IdType.FQDN
            for family, idType in ((socket.AF_INET, IdType.IPV4_ADDR), (socket.AF_INET6, IdType.IPV6_ADDR)):
                try:
                    socket.inet_pton(family, text)
                except OSError:
                    continue
                expected = idType
                break
            self.assertEqual(inferIdType(text), expected, text)


class ConstructorTests(SynchronousTestCase):
    """
    The constructors build the wire data (RFC 7296 3.5).
    """

    def test_addresses(self):
        v4 = IKEIdentity.fromAddress("192.0.2.1")
        self.assertEqual((v4.idType, v4.data), (IdType.IPV4_ADDR, b"\xc0\x00\x02\x01"))
        v6 = IKEIdentity.fromAddress(ipaddress.ip_address("2001:db8::1"))
        self.assertEqual((v6.idType, v6.data), (IdType.IPV6_ADDR, ipaddress.ip_address("2001:db8::1").packed))
        self.assertEqual(v6.address, ipaddress.ip_address("2001:db8::1"))

    def test_badAddresses(self):
        for bad in ["192.0.2.1/32", "fe80::1%eth0", "01.2.3.4", "example", 42]:
            self.assertRaises(InvalidIdentity, IKEIdentity.fromAddress, bad)

    def test_fqdnAndUfqdn(self):
        self.assertEqual(IKEIdentity.fromFQDN("host.example.com").data, b"host.example.com")
        u = IKEIdentity.fromUFQDN("user@example.com")
        self.assertEqual((u.idType, u.data), (IdType.RFC822_ADDR, b"user@example.com"))

    def test_dnFromText(self):
        """
        An ASN1_DN identity carries the DER of the Name iked's parser builds.
        """
        identity = IKEIdentity.fromDN("/C=DE/O=Example/CN=host")
        self.assertEqual(identity.data, pki.name(C="DE", O="Example", CN="host").public_bytes())
        self.assertEqual(identity.name, pki.name(C="DE", O="Example", CN="host"))

    def test_dnFromName(self):
        name = pki.name(C="DE", CN="host")
        self.assertEqual(IKEIdentity.fromDN(name).data, name.public_bytes())

    def test_keyId(self):
        self.assertEqual(IKEIdentity.fromKeyID(b"\x01\x02").data, b"\x01\x02")
        self.assertEqual(str(IKEIdentity.fromKeyID(b"\x01\x02")), "KEY_ID/0102")

    def test_null(self):
        """
        ID_NULL (RFC 7619) carries no meaning; received data is dropped.
        """
        self.assertEqual(IKEIdentity(IdType.NULL, b"ignored").data, b"")
        self.assertEqual(IKEIdentity.null(), IKEIdentity(IdType.NULL, b"x"))

    def test_fromConfig(self):
        """
        fromConfig takes the config model's (type, text) for srcid/dstid.
        """
        self.assertEqual(IKEIdentity.fromConfig(IdType.FQDN, "a.example").data, b"a.example")
        self.assertEqual(IKEIdentity.fromConfig(IdType.IPV4_ADDR, "192.0.2.1").data, b"\xc0\x00\x02\x01")
        self.assertEqual(IKEIdentity.fromConfig(IdType.IPV6_ADDR, "::1").data, b"\x00" * 15 + b"\x01")
        self.assertEqual(IKEIdentity.fromConfig(IdType.DER_ASN1_DN, "/CN=x").name, pki.name(CN="x"))
        self.assertEqual(IKEIdentity.fromConfig(IdType.RFC822_ADDR, "u@x").data, b"u@x")
        self.assertEqual(IKEIdentity.fromConfig(IdType.KEY_ID, "abc").data, b"abc")
        self.assertEqual(IKEIdentity.fromConfig(None, "u@x").idType, IdType.RFC822_ADDR)

    def test_fromConfigMismatch(self):
        """
        An explicit type must fit the text.
        """
        self.assertRaises(InvalidIdentity, IKEIdentity.fromConfig, IdType.IPV4_ADDR, "::1")
        self.assertRaises(InvalidIdentity, IKEIdentity.fromConfig, IdType.IPV6_ADDR, "192.0.2.1")
        self.assertRaises(InvalidIdentity, IKEIdentity.fromConfig, IdType.IPV4_ADDR, "host")
        self.assertRaises(InvalidIdentity, IKEIdentity.fromConfig, IdType.DER_ASN1_DN, "CN=x")
        self.assertRaises(InvalidIdentity, IKEIdentity.fromConfig, 99, "x")

    def test_immutable(self):
        identity = IKEIdentity.fromFQDN("a")
        self.assertRaises(AttributeError, setattr, identity, "data", b"b")

    def test_defaultLocalIdentity(self):
        """
        Without srcid iked uses the host name as FQDN (ikev2_policy2id).
        """
        self.assertEqual(defaultLocalIdentity("gw.example.com"), IKEIdentity.fromFQDN("gw.example.com"))
        self.assertEqual(defaultLocalIdentity().idType, IdType.FQDN)


class ReceivedDataTests(SynchronousTestCase):
    """
    Received ID data is validated strictly (RFC 7296 3.5).
    """

    def test_wellFormed(self):
        for idType, data in [
            (IdType.IPV4_ADDR, b"\x01\x02\x03\x04"),
            (IdType.IPV6_ADDR, b"\x00" * 16),
            (IdType.FQDN, b"a.b"),
            (IdType.RFC822_ADDR, b"a@b"),
            (IdType.DER_ASN1_DN, pki.name(CN="x").public_bytes()),
            (IdType.KEY_ID, b"\x00\xff"),
            (IdType.DER_ASN1_GN, b"\x82\x01a"),
            (IdType.FC_NAME, b"\x01"),
        ]:
            self.assertEqual(IKEIdentity.fromPayload(idType, data).data, data)

    def test_malformed(self):
        dn = pki.name(CN="x").public_bytes()
        for idType, data in [
            (IdType.IPV4_ADDR, b"\x01\x02\x03"),
            (IdType.IPV4_ADDR, b"\x01\x02\x03\x04\x05"),
            (IdType.IPV6_ADDR, b"\x00" * 4),
            (IdType.IPV6_ADDR, b"\x00" * 17),
            (IdType.FQDN, b""),
            (IdType.FQDN, b"a b"),
            (IdType.FQDN, b"a\x00b"),
            (IdType.FQDN, b"h\xc3\xb6st"),
            (IdType.RFC822_ADDR, b"a@b\n"),
            (IdType.DER_ASN1_DN, b""),
            (IdType.DER_ASN1_DN, b"\x30\x00"),
            (IdType.DER_ASN1_DN, dn[:-1]),
            (IdType.DER_ASN1_DN, dn + b"\x00"),
            (IdType.DER_ASN1_DN, b"garbage"),
            (IdType.KEY_ID, b""),
            (IdType.KEY_ID, b"x" * 1025),
            (4, b"\x01\x02\x03\x04\x05\x06\x07\x08"),
            (0, b"x"),
            (200, b"x"),
        ]:
            self.assertRaises(InvalidIdentity, IKEIdentity.fromPayload, idType, data)

    def test_notBytes(self):
        self.assertRaises(InvalidIdentity, IKEIdentity, IdType.FQDN, "text")

    @given(st.integers(min_value=0, max_value=255), st.binary(max_size=64))
    def test_neverAnotherException(self, idType, data):
        """
        Whatever a peer sends, construction either succeeds or raises
        InvalidIdentity.
        """
        try:
            identity = IKEIdentity.fromPayload(idType, data)
        except InvalidIdentity:
            return
        str(identity)
        hash(identity)


class RenderingTests(SynchronousTestCase):
    """
    Identities render like iked's ikev2_print_id.
    """

    def test_render(self):
        self.assertEqual(str(IKEIdentity.fromFQDN("host.example.com")), "FQDN/host.example.com")
        self.assertEqual(str(IKEIdentity.fromAddress("192.0.2.1")), "IPV4/192.0.2.1")
        self.assertEqual(str(IKEIdentity.fromAddress("2001:db8::1")), "IPV6/2001:db8::1")
        self.assertEqual(str(IKEIdentity.fromUFQDN("u@example.com")), "UFQDN/u@example.com")
        self.assertEqual(str(IKEIdentity.fromDN("/C=DE/O=x/CN=y")), "ASN1_DN//C=DE/O=x/CN=y")
        self.assertEqual(str(IKEIdentity.null()), "NULL/")
        self.assertEqual(repr(IKEIdentity.fromFQDN("a")), "IKEIdentity(FQDN/a)")

    def test_pubkeyPath(self):
        """
        iked names trusted keys pubkeys/<lower-case type>/<value>.
        """
        self.assertEqual(IKEIdentity.fromAddress("192.0.2.1").pubkeyPath, "ipv4/192.0.2.1")
        self.assertEqual(IKEIdentity.fromAddress("2001:db8::1").pubkeyPath, "ipv6/2001:db8::1")
        self.assertEqual(IKEIdentity.fromFQDN("a.example").pubkeyPath, "fqdn/a.example")
        self.assertEqual(IKEIdentity.fromUFQDN("u@a").pubkeyPath, "ufqdn/u@a")
        self.assertIsNone(IKEIdentity.fromDN("/CN=x").pubkeyPath)
        self.assertIsNone(IKEIdentity.fromKeyID(b"k").pubkeyPath)


class DNTests(SynchronousTestCase):
    """
    iked's DN text: ca_x509_name_parse and X509_NAME_oneline.
    """

    def test_roundTrip(self):
        for text in [
            "/C=DE/O=x/CN=y",
            "/C=DE/ST=Bavaria/L=Munich/O=Example GmbH/OU=VPN/CN=10.0.0.1/emailAddress=reyk@example.com",
            "/CN=a=b",
            "/DC=org/DC=example/UID=jdoe",
            "/serialNumber=1234/title=x/SN=Doe/GN=John",
            "/1.2.3.4=custom",
        ]:
            self.assertEqual(renderDN(parseDN(text)), text)

    def test_escapes(self):
        """
        '\\' escapes the next character, so a value may hold '/'.
        """
        name = parseDN("/O=a\\/b/CN=c\\\\d")
        self.assertEqual(name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value, "a/b")
        self.assertEqual(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "c\\d")

    def test_longNames(self):
        self.assertEqual(parseDN("/countryName=DE/commonName=x"), parseDN("/C=DE/CN=x"))

    def test_trailingSlash(self):
        self.assertEqual(parseDN("/C=DE/CN=x/"), parseDN("/C=DE/CN=x"))

    def test_parseErrors(self):
        for text in [
            "C=DE",
            "/",
            "/C",
            "/C=",
            "/=DE",
            "/C=DE//CN=x",
            "/C=DEU",
            "/cn=lowercase-short-name-is-unknown",
            "/XX=y",
            "/CN=x\\",
            "",
        ]:
            self.assertRaises(InvalidIdentity, parseDN, text)

    def test_parseErrorReason(self):
        """
        A DN that does not parse raises L{InvalidDN}, whose C{reason} names
        the problem without the text (the configuration's messages use it).
        """
        for text, reason in [
            ("C=DE", "leading '/' missing"),
            ("/C", "missing value"),
            ("/C=", "empty type or value"),
            ("/XX=y", "unknown attribute type 'XX'"),
            ("/", "no attribute"),
            ("/CN=x\\", "'\\' at end"),
        ]:
            e = self.assertRaises(InvalidDN, parseDN, text)
            self.assertEqual((e.reason, e.text), (reason, text))
            self.assertEqual(str(e), "%s in DN %r" % (reason, text))

    def test_stringTypes(self):
        """
        The string types are the ones OpenSSL picks (utf8only mask): C
        PrintableString, emailAddress IA5String, others UTF8String.
        """
        name = parseDN("/C=DE/CN=x/emailAddress=a@b")
        types = [a._type for a in name]
        self.assertEqual(types, [_ASN1Type.PrintableString, _ASN1Type.UTF8String, _ASN1Type.IA5String])

    def test_parseLikeOpenSSL(self):
        """
        parseDN builds the same DER as OpenSSL's own "/type=value" parser
        (openssl req -subj, which iked's ca_x509_name_parse copies).
        """
        openssl = requireExecutable("openssl", "apt-get install openssl")
        text = "/C=DE/ST=Berlin/O=ikedtx test/OU=unit/CN=host.example.com/emailAddress=a@example.com"
        directory = tempfile.mkdtemp()
        keyPath = os.path.join(directory, "k.pem")
        with open(keyPath, "wb") as f:
            f.write(pki.pem(pki.key("dn", "p256")))
        out = subprocess.run(
            [openssl, "req", "-new", "-key", keyPath, "-subj", text, "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        csr = x509.load_der_x509_csr(out)
        self.assertEqual(parseDN(text).public_bytes(), csr.subject.public_bytes())

    def test_renderLikeOpenSSL(self):
        """
        renderDN is X509_NAME_oneline, including escapes of 8-bit octets,
        multi-valued RDNs and unknown OIDs.
        """
        names = [
            pki.name(C="DE", O="Example", CN="host"),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h\u00f6st")]),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tab\there")]),
            x509.Name(
                [
                    x509.RelativeDistinguishedName(
                        [x509.NameAttribute(NameOID.COMMON_NAME, "a"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "b")]
                    )
                ]
            ),
            x509.Name([x509.NameAttribute(x509.ObjectIdentifier("1.2.3.4.5"), "z")]),
            x509.Name([x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "org"), x509.NameAttribute(NameOID.USER_ID, "u")]),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmp", _ASN1Type.BMPString)]),
            x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "42"), x509.NameAttribute(NameOID.SURNAME, "S")]),
        ]
        for name in names:
            self.assertEqual(renderDN(name), opensslOneline(name))


class MatchingTests(SynchronousTestCase):
    """
    Equality is identity matching.
    """

    def test_fqdnCaseInsensitive(self):
        self.assertEqual(IKEIdentity.fromFQDN("Host.Example.COM"), IKEIdentity.fromFQDN("host.example.com"))
        self.assertEqual(
            hash(IKEIdentity.fromFQDN("Host.Example.COM")), hash(IKEIdentity.fromFQDN("host.example.com"))
        )

    def test_ufqdn(self):
        """
        The local part is exact, the domain case-insensitive.
        """
        self.assertEqual(IKEIdentity.fromUFQDN("User@EXAMPLE.com"), IKEIdentity.fromUFQDN("User@example.com"))
        self.assertNotEqual(IKEIdentity.fromUFQDN("User@example.com"), IKEIdentity.fromUFQDN("user@example.com"))

    def test_typeMatters(self):
        self.assertNotEqual(IKEIdentity.fromFQDN("a"), IKEIdentity(IdType.KEY_ID, b"a"))
        self.assertNotEqual(IKEIdentity.fromFQDN("u@a"), IKEIdentity.fromUFQDN("u@a"))

    def test_addresses(self):
        self.assertEqual(IKEIdentity.fromAddress("2001:db8::1"), IKEIdentity.fromAddress("2001:0db8::0001"))
        self.assertNotEqual(IKEIdentity.fromAddress("192.0.2.1"), IKEIdentity.fromAddress("192.0.2.2"))

    def test_dnComparesDecodedNames(self):
        """
        DN equality compares decoded Names as X509_NAME_cmp (RFC 5280 7.1):
        string type, case and white space runs do not matter; order does.
        """
        printable = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Host  Name", _ASN1Type.PrintableString),
            ]
        )
        fromText = IKEIdentity.fromDN("/C=DE/CN= host name ")
        self.assertNotEqual(fromText.data, printable.public_bytes())
        self.assertEqual(fromText, IKEIdentity.fromDN(printable))
        self.assertEqual(hash(fromText), hash(IKEIdentity.fromDN(printable)))
        self.assertNotEqual(IKEIdentity.fromDN("/CN=x/C=DE"), IKEIdentity.fromDN("/C=DE/CN=x"))
        self.assertNotEqual(IKEIdentity.fromDN("/C=DE/CN=x"), IKEIdentity.fromDN("/C=DE/CN=y"))

    def test_namesEqualMultiValued(self):
        """
        A multi-valued RDN is a set.
        """
        a = x509.Name(
            [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "a"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "b")])]
        )
        b = x509.Name(
            [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "B"), x509.NameAttribute(NameOID.COMMON_NAME, "A")])]
        )
        self.assertTrue(namesEqual(a, b))
        self.assertFalse(namesEqual(a, pki.name(CN="a", O="b")))

    def test_namesEqualLikeOpenSSL(self):
        """
        namesEqual agrees with OpenSSL's X509_NAME_cmp on case, white space,
        string type, order and multi-valued variants.
        """

        def attr(oid, value, kind=_ASN1Type.UTF8String):
            return x509.NameAttribute(oid, value, kind)

        CN, O, C = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.COUNTRY_NAME
        names = [
            x509.Name([attr(C, "DE", _ASN1Type.PrintableString), attr(CN, "Host Name")]),
            x509.Name([attr(C, "de", _ASN1Type.PrintableString), attr(CN, "host name")]),
            x509.Name([attr(C, "DE", _ASN1Type.PrintableString), attr(CN, "  host   NAME ", _ASN1Type.PrintableString)]),
            x509.Name([attr(C, "DE", _ASN1Type.PrintableString), attr(CN, "host\tname")]),
            x509.Name([attr(C, "DE", _ASN1Type.PrintableString), attr(CN, "hostname")]),
            x509.Name([attr(CN, "Host Name"), attr(C, "DE", _ASN1Type.PrintableString)]),
            x509.Name([attr(C, "DE", _ASN1Type.PrintableString), attr(CN, "h\u00f6st")]),
            x509.Name([attr(C, "DE", _ASN1Type.PrintableString), attr(CN, "H\u00d6ST")]),
            x509.Name([attr(C, "DE", _ASN1Type.PrintableString), attr(CN, "host name", _ASN1Type.BMPString)]),
            x509.Name([attr(C, "DE", _ASN1Type.PrintableString), attr(CN, "Host Name"), attr(O, "x")]),
            x509.Name([x509.RelativeDistinguishedName([attr(CN, "a"), attr(O, "b")])]),
            x509.Name([x509.RelativeDistinguishedName([attr(O, "B"), attr(CN, "A")])]),
            x509.Name([attr(CN, "a"), attr(O, "b")]),
            x509.Name([attr(NameOID.EMAIL_ADDRESS, "A@B", _ASN1Type.IA5String)]),
            x509.Name([attr(NameOID.EMAIL_ADDRESS, "a@b", _ASN1Type.IA5String)]),
        ]
        for a in names:
            for b in names:
                self.assertEqual(namesEqual(a, b), opensslNamesEqual(a, b), (a, b))

    def test_matches(self):
        self.assertTrue(IKEIdentity.fromFQDN("A").matches(IKEIdentity.fromFQDN("a")))
        self.assertFalse(IKEIdentity.fromFQDN("A").matches(IKEIdentity.fromFQDN("b")))

    def test_otherTypes(self):
        self.assertNotEqual(IKEIdentity.fromFQDN("a"), "FQDN/a")

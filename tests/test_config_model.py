# -*- test-case-name: tests.test_config_model -*-
"""
Tests for L{ikedtx.config.model}: identities, immutability, secrets.
"""

import dataclasses
import operator
from ipaddress import ip_network

from cryptography import x509
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import parseConfig
from ikedtx.config.model import Auth, Config, Identity, Selector, User, inferIdType, parseDistinguishedName
from ikedtx.wire.constants import IdType


class IdInferenceTests(SynchronousTestCase):
    """
    iked's ID type inference for srcid/dstid (iked.conf(5) "srcid").
    """

    def test_types(self):
        for text, idType in [
            ("10.0.0.1", IdType.IPV4_ADDR),
            ("2001:db8::1", IdType.IPV6_ADDR),
            ("::1", IdType.IPV6_ADDR),
            ("host.example.com", IdType.FQDN),
            ("host", IdType.FQDN),
            ("reyk@example.com", IdType.RFC822_ADDR),
            ("/C=DE/CN=10.0.0.1/emailAddress=reyk@example.com", IdType.DER_ASN1_DN),
            ("10.0.0", IdType.FQDN),
        ]:
            self.assertEqual(inferIdType(text), idType, text)

    def test_str(self):
        self.assertEqual(str(Identity.fromString("user@example.com")), "UFQDN/user@example.com")
        self.assertEqual(str(Identity.fromString("10.0.0.1")), "IPV4/10.0.0.1")


class IdentityDataTests(SynchronousTestCase):
    """
    The identification data of the ID payload (RFC 7296 3.5).
    """

    def test_addresses(self):
        self.assertEqual(Identity.fromString("10.0.0.1").data(), b"\x0a\x00\x00\x01")
        self.assertEqual(Identity.fromString("2001:db8::1").data(), bytes.fromhex("20010db8000000000000000000000001"))

    def test_names(self):
        self.assertEqual(Identity.fromString("h\u00f6st.example").data(), "h\u00f6st.example".encode())
        self.assertEqual(Identity.fromString("a@b.example").data(), b"a@b.example")

    def test_distinguishedName(self):
        """
        An ASN1_DN is the DER of the name, one attribute per RDN in the
        written order, with OpenSSL's string types (PrintableString for C,
        IA5String for emailAddress, UTF8String otherwise).
        """
        identity = Identity.fromString("/C=DE/O=foo bar/CN=10.0.0.1/emailAddress=reyk@example.com")
        expected = x509.Name(
            [
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "foo bar")]),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "10.0.0.1")]),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "reyk@example.com")]),
            ]
        )
        self.assertEqual(identity.distinguishedName(), expected)
        der = identity.data()
        self.assertEqual(der, expected.public_bytes())
        self.assertEqual(x509.Name.from_rfc4514_string("emailAddress=reyk@example.com,CN=10.0.0.1,O=foo bar,C=DE", {"emailAddress": NameOID.EMAIL_ADDRESS}).public_bytes(), der)
        self.assertIn(b"\x13\x02DE", der)  # PrintableString "DE"
        self.assertIn(b"\x16\x10reyk@example.com", der)  # IA5String

    def test_escapes(self):
        """
        A backslash escapes a slash or an equals sign in a DN.
        """
        name = parseDistinguishedName(r"/O=a\/b/CN=x\=y")
        self.assertEqual([a.value for a in name], ["a/b", "x=y"])

    def test_longNamesAndOids(self):
        name = parseDistinguishedName("/commonName=x/2.5.4.10=org")
        self.assertEqual([a.oid for a in name], [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME])

    def test_invalid(self):
        for text in ["C=DE", "/C", "/=x", "/FOO=bar", "/CN=x\\"]:
            self.assertRaises(ValueError, parseDistinguishedName, text)


class ImmutabilityTests(SynchronousTestCase):
    """
    The model cannot be changed, and compares by value.
    """

    def setUp(self):
        self.config = parseConfig('user "u" "p"\nikev2 esp from 10.0.0.1 to 10.0.0.2 psk "k"\n')

    def test_frozen(self):
        policy = self.config.policies[0]
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, policy, "name", "x")
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, self.config, "policies", ())
        self.assertRaises(TypeError, operator.setitem, self.config.macros, "a", "b")
        self.assertIsInstance(policy.flows, tuple)
        self.assertIsInstance(policy.ikeProposals[0].transforms, tuple)

    def test_equalAndHashable(self):
        again = parseConfig('user "u" "p"\nikev2 esp from 10.0.0.1 to 10.0.0.2 psk "k"\n')
        self.assertEqual(again, self.config)
        self.assertEqual(hash(again.policies[0]), hash(self.config.policies[0]))

    def test_secretsHidden(self):
        self.assertNotIn("'p'", repr(self.config.users[0]))
        self.assertIn("hidden", repr(User("u", "p")))
        self.assertEqual(repr(Auth("psk", b"k")), "Auth(method='psk', psk=<1 bytes hidden>, eapType=None)")
        self.assertNotIn("b'k'", repr(self.config))

    def test_policyNamed(self):
        self.assertEqual(self.config.policyNamed("policy1"), self.config.policies[0])
        self.assertIsNone(self.config.policyNamed("nope"))

    def test_configDefaults(self):
        self.assertEqual(Config().policies, ())

    def test_selector(self):
        sel = Selector(ip_network("10.0.0.0/8"))
        self.assertEqual((str(sel.address), sel.family, sel.portRange), ("10.0.0.0", 4, (0, 65535)))

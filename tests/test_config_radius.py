"""
Tests for OpenBSD 7.6's RADIUS statements in L{ikedtx.config}: C{radius
[accounting] server|max-tries|max-failovers}, C{radius config}, C{radius
dae}, and C{eap "radius"} in a policy, read and printed.

Debian's openiked is 7.2, which has no RADIUS: it cannot be the oracle
here (tests.test_config_differential parses with the IKED_LINUX profile,
where these words are not keywords).  The expectations follow iked 7.6's
parse.y rule by rule: numeric addresses only, default ports 1812, 1813 and
3799, max-tries > 0, max-failovers >= 0, attribute type 0-255, vendor id
0-0xffffff, no protected-subnet mapping.  iked -n -v prints none of the
radius lines (iked's config_setradserver does nothing under -n), so the
printer prints only the policy's C{eap "RADIUS"}.
"""

from ipaddress import ip_address

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import ConfigError, parseConfig
from ikedtx.config.grammar import Parser
from ikedtx.config.model import RadiusConfigMap, RadiusSettings
from ikedtx.config.printer import renderConfig
from ikedtx.config import transforms as xf
from ikedtx.wire.constants import ConfigurationAttribute as CA

POLICY = 'ikev2 "rw" passive esp from 10.0.0.0/24 to 10.1.0.0/24 peer any eap "radius"\n'


def errors(text):
    try:
        parseConfig(text, filename="f")
    except ConfigError as e:
        return [str(p) for p in e.errors]
    raise AssertionError("no error in %r" % (text,))


class RadiusStatementTests(SynchronousTestCase):
    def test_defaults(self):
        config = parseConfig(POLICY)
        self.assertEqual(config.radius, RadiusSettings())
        self.assertEqual((config.radius.maxTries, config.radius.maxFailovers), (3, 0))

    def test_servers(self):
        config = parseConfig(
            'radius server 192.0.2.10 secret "s3cret"\n'
            "radius server 2001:db8::1 port 11812 secret other\n"
            'radius accounting server 192.0.2.10 secret "acct"\n'
            "radius accounting server 192.0.2.11 port 2000 secret acct2\n" + POLICY
        )
        servers = config.radius.servers
        self.assertEqual([(s.address, s.port, s.secret) for s in servers],
                         [(ip_address("192.0.2.10"), 1812, "s3cret"), (ip_address("2001:db8::1"), 11812, "other")])
        self.assertEqual([(s.address, s.port, s.accounting) for s in config.radius.accountingServers],
                         [(ip_address("192.0.2.10"), 1813, True), (ip_address("192.0.2.11"), 2000, True)])
        self.assertNotIn("s3cret", repr(config.radius))

    def test_triesAndFailovers(self):
        config = parseConfig(
            "radius max-tries 5\nradius max-failovers 2\n"
            "radius accounting max-tries 1\nradius accounting max-failovers 0\n" + POLICY
        )
        r = config.radius
        self.assertEqual((r.maxTries, r.maxFailovers, r.accountingMaxTries, r.accountingMaxFailovers), (5, 2, 1, 0))

    def test_configMaps(self):
        config = parseConfig(
            "radius config address 8\n"
            "radius config inet6 name-server 0x137 0x11\n"
            "radius config none 25\n" + POLICY
        )
        self.assertEqual(config.radius.configMaps, (
            RadiusConfigMap(CA.INTERNAL_IP4_ADDRESS, 0, 8),
            RadiusConfigMap(CA.INTERNAL_IP6_DNS, 311, 17),
            RadiusConfigMap(0, 0, 25),
        ))

    def test_dae(self):
        config = parseConfig(
            "radius dae listen on 127.0.0.1\nradius dae listen on ::1 port 4000\n"
            "radius dae client 192.0.2.20 secret daesecret\n" + POLICY
        )
        self.assertEqual(config.radius.daeListen, ((ip_address("127.0.0.1"), 3799), (ip_address("::1"), 4000)))
        self.assertEqual([(c.address, c.secret) for c in config.radius.daeClients],
                         [(ip_address("192.0.2.20"), "daesecret")])

    def test_refused(self):
        """
        iked 7.6's errors, each on its line.
        """
        cases = [
            ("radius server radius.example.com secret s\n", "could not parse the address: radius.example.com"),
            ("radius max-tries 0\n", "max-tries must a positive value"),
            ("radius accounting max-failovers -1\n", "max-failovers must be 0 or a positive value"),
            ("radius config address 256\n", "attribute type must be in 0-255"),
            ("radius config address 0x1000000 1\n", "vendor-id must be in 0-0xffffff"),
            ("radius config protected-subnet 1\n", "not a valid ikecfg option"),
            ("radius config address zz\n", "`zz' is not a number"),
            ("radius server 192.0.2.1\n", "syntax error"),
            ("radius dae listen 127.0.0.1\n", "syntax error"),
        ]
        for text, message in cases:
            found = errors(text + POLICY)
            self.assertEqual(len(found), 1, (text, found))
            self.assertIn(message, found[0])
            self.assertTrue(found[0].startswith("f: 1: "), found)


class EapRadiusTests(SynchronousTestCase):
    def test_quotedAndKeyword(self):
        for word in ('"radius"', "radius", '"RADIUS"'):
            config = parseConfig(POLICY.replace('"radius"', word))
            auth = config.policies[0].auth
            self.assertEqual((auth.method, auth.eapRadius, auth.eapType), ("eap", True, None))

    def test_printed(self):
        config = parseConfig('radius server 192.0.2.10 secret "s3cret"\n' + POLICY)
        text = renderConfig(config)
        self.assertIn(' eap "RADIUS"', text)
        self.assertNotIn("radius server", text)
        self.assertNotIn("s3cret", text)
        self.assertEqual(len(text.splitlines()), 1)

    def test_openiked72Profile(self):
        """
        With the profile of Debian's openiked 7.2 (no RADIUS), the words
        are not keywords and C{eap "radius"} is refused as 7.2 refuses it.
        """
        parser = Parser((), False, xf.IKED_LINUX)
        with self.assertRaises(ConfigError) as raised:
            parser.parse("f", POLICY)
        self.assertIn("unsupported EAP method: radius", str(raised.exception.errors[0]))
        # "server" is a plain word for 7.2: a valid dstid.
        config = Parser((), False, xf.IKED_LINUX).parse(
            "f", "ikev2 esp from 10.0.0.1 to 10.0.0.2 dstid server psk x\n"
        )
        self.assertEqual(len(config.policies), 1)

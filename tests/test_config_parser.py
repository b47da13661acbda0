# -*- test-case-name: tests.test_config_parser -*-
"""
Tests for L{ikedtx.config.parser}: each keyword of iked.conf(5), each
default iked applies, and what is refused.
"""

import os
import socket
from ipaddress import ip_address, ip_network

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import ConfigError, Identity, parseConfig
from ikedtx.config.model import HostAddress, Proposal, Selector, TransformSpec
from ikedtx.config.parser import splitDefine
from ikedtx.config import transforms as xf
from ikedtx.config.transforms import DEFAULT_ESP, DEFAULT_ESP_AEAD, DEFAULT_IKE, DEFAULT_IKE_AEAD
from ikedtx.wire.constants import (
    ConfigurationAttribute as CA,
    DhId,
    EapType,
    EncrId,
    EsnId,
    IdType,
    IntegId,
    PrfId,
    ProtocolId,
    TransformType as T,
)

H = "from 10.0.0.1 to 10.0.0.2"


def _localhost():
    """
    The first address getaddrinfo() gives for localhost (as iked asks).
    """
    info = socket.getaddrinfo("localhost", None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)
    return ip_address(info[0][4][0])


def policy(text):
    """
    The only policy of C{text}.
    """
    policies = parseConfig(text).policies
    assert len(policies) == 1, policies
    return policies[0]


def errors(text, **kw):
    """
    The error lines of an invalid C{text}.
    """
    try:
        parseConfig(text, filename="f", **kw)
    except ConfigError as e:
        return [str(p) for p in e.errors]
    raise AssertionError("no error in %r" % (text,))


class DefaultsTests(SynchronousTestCase):
    """
    What iked fills in for a minimal policy.
    """

    def setUp(self):
        self.p = policy("ikev2 esp " + H)

    def test_name(self):
        """
        An unnamed policy is C{policyN}, N counting the ikev2 rules (named
        or not) from 1.
        """
        config = parseConfig('ikev2 "a" esp %s\nikev2 esp %s\n' % (H, H))
        self.assertEqual([p.name for p in config.policies], ["a", "policy2"])

    def test_flags(self):
        """
        Passive, tunnel mode, ESP, no IPcomp, no NAT-T forcing, normal
        evaluation.
        """
        p = self.p
        self.assertEqual(
            (p.active, p.mode, p.saProtocol, p.ipcomp, p.natt, p.quick, p.skip, p.default),
            (False, "tunnel", ProtocolId.ESP, False, False, False, False, False),
        )

    def test_localPeerFromFlow(self):
        """
        Without C{local}/C{peer}, a single-host flow gives both, and the
        policy's address family.
        """
        p = self.p
        self.assertEqual((p.local, p.peer, p.af), (ip_network("10.0.0.1/32"), ip_network("10.0.0.2/32"), "inet"))
        self.assertEqual(p.peerAddress, HostAddress(ip_address("10.0.0.2"), 32, False))

    def test_ikeProposals(self):
        """
        Two IKE proposals: AES-GCM first, then CBC ciphers with integrity.
        """
        self.assertEqual(
            self.p.ikeProposals, (Proposal(ProtocolId.IKE, DEFAULT_IKE_AEAD), Proposal(ProtocolId.IKE, DEFAULT_IKE))
        )
        gcm = self.p.ikeProposals[0]
        self.assertEqual(gcm.ofType(T.ENCR), (TransformSpec(T.ENCR, EncrId.AES_GCM_16, 128), TransformSpec(T.ENCR, EncrId.AES_GCM_16, 256)))
        self.assertEqual(
            [t.id for t in gcm.ofType(T.DH)],
            [DhId.CURVE25519, DhId.ECP_521, DhId.ECP_384, DhId.ECP_256, DhId.MODP_4096, DhId.MODP_3072, DhId.MODP_2048, DhId.MODP_1536, DhId.MODP_1024],
        )
        cbc = self.p.ikeProposals[1]
        self.assertEqual([(t.id, t.keyLength) for t in cbc.ofType(T.ENCR)], [(12, 256), (12, 192), (12, 128), (3, None)])
        self.assertEqual([t.id for t in cbc.ofType(T.PRF)], [PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA2_512, PrfId.HMAC_SHA1])
        self.assertEqual(
            [t.id for t in cbc.ofType(T.INTEG)],
            [IntegId.HMAC_SHA2_256_128, IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_512_256, IntegId.HMAC_SHA1_96],
        )

    def test_childProposals(self):
        """
        Two ESP proposals, AES-GCM and AES-CBC with HMAC-SHA2-256/384/512 and
        SHA1; both with DH none and ESN offered.
        """
        self.assertEqual(
            self.p.childProposals, (Proposal(ProtocolId.ESP, DEFAULT_ESP_AEAD), Proposal(ProtocolId.ESP, DEFAULT_ESP))
        )
        esp = self.p.childProposals[1]
        self.assertIn(TransformSpec(T.INTEG, IntegId.HMAC_SHA2_256_128), esp.transforms)
        self.assertEqual(esp.ofType(T.ESN), (TransformSpec(T.ESN, EsnId.ESN), TransformSpec(T.ESN, EsnId.NO_ESN)))
        self.assertEqual(esp.ofType(T.DH), (TransformSpec(T.DH, DhId.NONE),))
        self.assertEqual(self.p.esn, frozenset([EsnId.ESN, EsnId.NO_ESN]))
        self.assertEqual(self.p.pfsGroups, ())

    def test_lifetimes(self):
        """
        No IKE SA rekeying; Child SAs rekey after 3 hours or 4 GiB.
        """
        self.assertEqual((self.p.ikeLifetime, self.p.lifetime, self.p.lifetimeBytes), (0, 10800, 4294967296))

    def test_rest(self):
        """
        Any signature authentication, no IDs, no CP, no tag.
        """
        p = self.p
        self.assertEqual(p.auth.method, "signature")
        self.assertIsNone(p.auth.ianaMethod)
        self.assertEqual(
            (p.srcId, p.dstId, p.configOptions, p.iface, p.tag, p.tap, p.rdomain, p.ipProtocols),
            (None, None, (), None, None, None, None, ()),
        )

    def test_settings(self):
        """
        iked's global defaults.
        """
        s = parseConfig("").settings
        self.assertEqual(
            (s.passive, s.decouple, s.dpdCheckInterval, s.enforceSingleIkeSa, s.fragmentation, s.mobike),
            (False, False, 60, False, False, True),
        )
        self.assertEqual(
            (s.certPartialChain, s.ocspUrl, s.ocspTolerate, s.ocspMaxAge, s.vendorId, s.stickyAddress),
            (False, None, 0, None, True, False),
        )

    def test_noRulesWarning(self):
        """
        A file without users or policies is valid, with a warning.
        """
        config = parseConfig("set passive\n", filename="f")
        self.assertEqual([str(w) for w in config.warnings], ["f: no valid configuration rules found"])


    def test_variableTimeGroupWarning(self):
        """
        A group computed in pure Python (brainpool224, group 27) is accepted
        with a warning that it is not constant-time; a group computed by
        cryptography is not.
        """
        text = ('ikev2 "a" esp from 10.0.0.1 to 10.0.0.2 ikesa enc aes-128 prf hmac-sha2-256 '
                'auth hmac-sha2-256 group %s\n')
        config = parseConfig(text % ("grp27",), filename="f")
        self.assertEqual([str(w) for w in config.warnings],
                         ["f: 1: group grp27 is computed in pure Python, not in constant time: "
                          "its timing may leak the private value"])
        self.assertEqual(parseConfig(text % ("brainpool256",), filename="f").warnings, ())

class SetTests(SynchronousTestCase):
    """
    Every C{set} option.
    """

    def test_each(self):
        for text, attribute, value in [
            ("passive", "passive", True),
            ("active", "passive", False),
            ("decouple", "decouple", True),
            ("couple", "decouple", False),
            ("fragmentation", "fragmentation", True),
            ("nofragmentation", "fragmentation", False),
            ("mobike", "mobike", True),
            ("nomobike", "mobike", False),
            ("enforcesingleikesa", "enforceSingleIkeSa", True),
            ("noenforcesingleikesa", "enforceSingleIkeSa", False),
            ("vendorid", "vendorId", True),
            ("novendorid", "vendorId", False),
            ("stickyaddress", "stickyAddress", True),
            ("nostickyaddress", "stickyAddress", False),
            ("cert_partial_chain", "certPartialChain", True),
            ("dpd_check_interval 30", "dpdCheckInterval", 30),
            ("dpd_check_interval 0", "dpdCheckInterval", 0),
        ]:
            settings = parseConfig("set %s\n" % (text,)).settings
            self.assertEqual(getattr(settings, attribute), value, text)

    def test_lastWins(self):
        self.assertTrue(parseConfig("set active\nset passive\n").settings.passive)

    def test_ocsp(self):
        s = parseConfig('set ocsp "http://ocsp.example/"\n').settings
        self.assertEqual((s.ocspUrl, s.ocspTolerate, s.ocspMaxAge), ("http://ocsp.example/", 0, None))
        s = parseConfig('set ocsp "http://o/" tolerate 5m maxage 1h\n').settings
        self.assertEqual((s.ocspUrl, s.ocspTolerate, s.ocspMaxAge), ("http://o/", 300, 3600))

    def test_errors(self):
        self.assertEqual(errors("set dpd_check_interval -1\n"), ["f: 1: timeout outside range"])
        self.assertEqual(errors("set bogus\n"), ['f: 1: syntax error at "bogus"'])
        self.assertEqual(errors('set ocsp "u" maxage 5\n'), ['f: 1: syntax error at "maxage"'])


class UserTests(SynchronousTestCase):
    def test_user(self):
        config = parseConfig('user "alice" "secret"\nuser bob pw\n')
        self.assertEqual([(u.name, u.password) for u in config.users], [("alice", "secret"), ("bob", "pw")])
        self.assertNotIn("secret", repr(config.users[0]))

    def test_invalid(self):
        self.assertEqual(errors('user "" "x"\n'), ["f: 1: invalid user name"])
        self.assertEqual(errors('user "a" ""\n'), ["f: 1: invalid password"])
        self.assertEqual(errors("user %s x\n" % ("u" * 256,)), ["f: 1: invalid user name"])
        self.assertEqual(errors("user a\n"), ["f: 1: syntax error at end of line"])


class MacroTests(SynchronousTestCase):
    def test_define(self):
        config = parseConfig('gw = "10.0.0.2"\nikev2 esp from 10.0.0.1 to $gw\n')
        self.assertEqual(config.policies[0].peer, ip_network("10.0.0.2/32"))
        self.assertEqual(dict(config.macros), {"gw": "10.0.0.2"})

    def test_severalWords(self):
        """
        An unquoted value of several words is joined with spaces.
        """
        config = parseConfig("x = a b c\n")
        self.assertEqual(config.macros["x"], "a b c")

    def test_reservedWord(self):
        """
        A reserved word cannot be a macro name.
        """
        self.assertEqual(errors('esp = "x"\n'), ['f: 1: syntax error at "esp": reserved word "esp" cannot be a macro name'])
        self.assertEqual(errors('set = "x"\n'), ['f: 1: syntax error at "=": reserved word "set" cannot be a macro name'])
        self.assertEqual(errors("esp\n"), ['f: 1: syntax error at "esp"'])

    def test_whitespaceInName(self):
        self.assertEqual(errors('"a b" = "x"\n'), ["f: 1: macro name cannot contain whitespace"])

    def test_commandLineWins(self):
        """
        C{-D} overrides the file's definition.
        """
        config = parseConfig('gw = "10.0.0.2"\nikev2 esp from 10.0.0.1 to $gw\n', defines=["gw=10.0.0.9"])
        self.assertEqual(config.policies[0].peer, ip_network("10.0.0.9/32"))

    def test_badDefine(self):
        self.assertRaises(ValueError, parseConfig, "", defines=["novalue"])
        self.assertRaises(ValueError, parseConfig, "", defines=["a b=c"])
        self.assertEqual(splitDefine("a=b=c"), ("a", "b=c"))

    def test_ignoredRules(self):
        """
        Lines of IKEv1 and manual keying rules (ipsec.conf) are skipped.
        """
        config = parseConfig("ike esp from a to b\nflow x\nsa y\nfrom z\ntcpmd5 q\nikev2 esp %s\n" % (H,))
        self.assertEqual(len(config.policies), 1)


class FlagTests(SynchronousTestCase):
    """
    The words between C{ikev2} and the flows.
    """

    def test_all(self):
        p = policy('ikev2 "x" quick active ipcomp transport natt ah inet rdomain 3 ' + H)
        self.assertEqual(
            (p.name, p.quick, p.active, p.ipcomp, p.mode, p.natt, p.saProtocol, p.af, p.rdomain),
            ("x", True, True, True, "transport", True, ProtocolId.AH, "inet", 3),
        )

    def test_match(self):
        self.assertTrue(policy("ikev2 skip esp " + H).skip)
        self.assertTrue(policy("ikev2 default esp " + H).default)

    def test_order(self):
        """
        The words come in the grammar's order only.
        """
        self.assertEqual(errors("ikev2 active quick esp " + H), ['f: 1: syntax error at "quick"'])

    def test_inet6(self):
        p = policy("ikev2 esp inet6 from 2001:db8::1 to 2001:db8::2")
        self.assertEqual(p.af, "inet6")

    def test_rdomainRange(self):
        self.assertEqual(errors("ikev2 rdomain 256 " + H), ["f: 1: rdomain outside range"])


class ProtoTests(SynchronousTestCase):
    def test_names(self):
        """
        Protocols by name or number, a list in braces with or without
        commas; a flow for each.
        """
        p = policy("ikev2 esp proto { tcp, udp 47 } from 10.0.0.1 to 10.0.0.2")
        self.assertEqual(p.ipProtocols, (6, 17, 47))
        self.assertEqual([f.ipProtocol for f in p.flows], [6, 17, 47])

    def test_single(self):
        self.assertEqual(policy("ikev2 esp proto icmp " + H).ipProtocols, (1,))

    def test_errors(self):
        self.assertEqual(errors("ikev2 esp proto nosuch " + H), ["f: 1: unknown protocol: nosuch"])
        self.assertEqual(errors("ikev2 esp proto 256 " + H), ["f: 1: protocol outside range"])
        self.assertEqual(errors("ikev2 esp proto esp " + H), ['f: 1: syntax error at "esp"'])
        many = " ".join(str(n) for n in range(1, 18))
        self.assertEqual(errors("ikev2 esp proto { %s } %s\n" % (many, H)), ["f: 1: too many protocols"])


class FlowTests(SynchronousTestCase):
    """
    C{from ... to ...}: ports, C{any}, C{dynamic}, source NAT, lists.
    """

    def test_ports(self):
        p = policy("ikev2 esp proto tcp from 10.0.0.1 port ssh to 10.0.0.2 port 8080")
        flow = p.flows[0]
        self.assertEqual((flow.src.port, flow.dst.port), (22, 8080))
        self.assertEqual(flow.src.portRange, (22, 22))

    def test_portZero(self):
        """
        Port 0 means all ports, as in iked.
        """
        self.assertIsNone(policy("ikev2 esp proto tcp from 10.0.0.1 port 0 to 10.0.0.2").flows[0].src.port)

    def test_networks(self):
        p = policy("ikev2 esp from 10.1.1.5/24 to 10.2.0.0/16 peer 192.168.1.1")
        flow = p.flows[0]
        self.assertEqual(flow.src, Selector(ip_network("10.1.1.0/24"), address=ip_address("10.1.1.5")))
        self.assertEqual(flow.dst.network, ip_network("10.2.0.0/16"))
        self.assertEqual(flow.dst.portRange, (0, 65535))

    def test_any(self):
        """
        C{any} on both sides gives an IPv4 and an IPv6 flow.
        """
        p = policy("ikev2 esp from any to any")
        self.assertEqual(
            [(f.src.network, f.dst.network, f.src.any) for f in p.flows],
            [(ip_network("0.0.0.0/0"), ip_network("0.0.0.0/0"), True), (ip_network("::/0"), ip_network("::/0"), True)],
        )
        self.assertEqual((p.local, p.peer, p.af), (None, None, None))

    def test_anyTakesOtherFamily(self):
        p = policy("ikev2 esp from any port 22 to 2001:db8::1 peer 2001:db8::1")
        self.assertEqual([(f.src.network, f.src.port) for f in p.flows], [(ip_network("::/0"), 22)])

    def test_dynamic(self):
        p = policy("ikev2 esp from dynamic to 172.16.2.0/24 peer 10.0.0.0/8")
        self.assertEqual([(f.src.network, f.src.dynamic) for f in p.flows], [(ip_network("0.0.0.0/32"), True)])

    def test_srcNat(self):
        p = policy("ikev2 esp from 10.10.10.1 (192.168.1.0/24) to 192.168.2.0/24 peer 10.10.20.1")
        self.assertEqual(p.flows[0].srcNat.network, ip_network("192.168.1.0/24"))

    def test_srcNatErrors(self):
        self.assertEqual(
            errors("ikev2 esp from 10.0.0.1 to 10.0.0.2 (192.168.1.0/24) peer 1.1.1.1"),
            ["f: 1: no flow NAT support for destination network: 10.0.0.2"],
        )
        self.assertEqual(
            errors("ikev2 esp from 10.0.0.1 (2001:db8::/32) to 10.0.0.2 peer 1.1.1.1"),
            ["f: 1: Flow NAT address family mismatch"],
        )

    def test_severalAndReversed(self):
        """
        Several C{from}/C{to} pairs, with or without commas, C{to} first or
        C{from} first; flows sorted and deduplicated as iked does.
        """
        config = parseConfig(
            "ikev2 esp from 10.0.0.1 to 10.0.0.2, from 10.0.0.3 to 10.0.0.4 to 10.0.0.6 from 10.0.0.5 "
            "from 10.0.0.1 to 10.0.0.2 peer 1.1.1.1"
        )
        p = config.policies[0]
        self.assertEqual(
            [(str(f.src.address), str(f.dst.address)) for f in p.flows],
            [("10.0.0.1", "10.0.0.2"), ("10.0.0.3", "10.0.0.4"), ("10.0.0.5", "10.0.0.6")],
        )
        self.assertEqual([w.message for w in config.warnings], ["duplicate flow"])

    def test_sortOrder(self):
        """
        iked sorts flows by destination, then source, comparing addresses as
        little-endian words: the last octet first.
        """
        p = policy("ikev2 esp from 1.2.3.4 to 10.0.0.2 from 4.3.2.1 to 10.0.0.2 from 10.0.0.1 to 10.0.0.2 peer 1.1.1.1")
        self.assertEqual([str(f.src.address) for f in p.flows], ["10.0.0.1", "4.3.2.1", "1.2.3.4"])

    def test_mixedFamilies(self):
        self.assertEqual(errors("ikev2 esp from 10.0.0.1 to 2001:db8::1"), ["f: 1: cannot mix different address families."])

    def test_required(self):
        self.assertEqual(errors("ikev2 esp peer 1.2.3.4"), ['f: 1: syntax error at "peer"'])

    def test_portErrors(self):
        self.assertEqual(errors("ikev2 esp from 10.0.0.1 port 70000 to 10.0.0.2"), ["f: 1: port outside range"])
        self.assertEqual(errors("ikev2 esp from 10.0.0.1 port nosuchservice to 10.0.0.2"), ["f: 1: unknown port: nosuchservice"])


class HostTests(SynchronousTestCase):
    """
    Host specifications: numeric, names, interfaces; local and peer.
    """

    def test_peerLocal(self):
        p = policy("ikev2 esp from 10.0.0.1 to 10.0.0.2 peer 10.0.0.7/24 local 10.0.0.9/16")
        self.assertEqual((p.peer, p.local), (ip_network("10.0.0.0/24"), ip_network("10.0.0.0/16")))
        self.assertEqual(p.peerAddress, HostAddress(ip_address("10.0.0.7"), 24, True))
        p = policy("ikev2 esp from 10.0.0.1 to 10.0.0.2 local 10.0.0.9 peer any")
        self.assertEqual((p.local, p.peer), (ip_network("10.0.0.9/32"), None))

    def test_hostName(self):
        """
        A host name resolves when the file is read; the policy keeps the
        name and the address iked would use.
        """
        p = policy("ikev2 esp from 10.0.0.1 to 10.0.0.2 peer localhost")
        self.assertEqual(p.peer, "localhost")
        self.assertEqual(p.peerAddress.name, "localhost")
        self.assertEqual(p.peerAddress.address, _localhost())

    def test_interface(self):
        """
        An interface name stands for its addresses.
        """
        p = policy("ikev2 esp from lo to 10.0.0.1 peer 10.0.0.1")
        self.assertEqual(p.flows[0].src.address, ip_address("127.0.0.1"))

    def test_oldStyleAddresses(self):
        """
        Addresses are read by getaddrinfo() like iked: C{10.1} is 10.0.0.1.
        """
        p = policy("ikev2 esp from 10.1 to 10.0.0.2")
        self.assertEqual(p.flows[0].src.address, ip_address("10.0.0.1"))

    def test_unresolvable(self):
        self.assertEqual(
            errors("ikev2 esp from nonexistent.invalid to 10.0.0.1 peer 10.0.0.1"),
            ["f: 1: could not parse host specification (no IP address found for nonexistent.invalid)"],
        )
        self.assertEqual(
            errors("ikev2 esp from 10.0.0.0/129 to 10.0.0.1"),
            ["f: 1: could not parse host specification (netmask is too large: /129)"],
        )
        self.assertEqual(
            errors("ikev2 esp from 10.0.0.0/33 to 10.0.0.1"),
            ["f: 1: could not parse host specification (netmask is too large for an IPv4 address: /33)"],
        )

    def test_familyMismatch(self):
        self.assertEqual(
            errors("ikev2 esp inet from 10.0.0.1 to 10.0.0.2 peer 2001:db8::1"),
            ["f: 1: policy address family mismatch"],
        )
        self.assertEqual(
            errors("ikev2 esp from 10.0.0.1 to 10.0.0.2 peer 2001:db8::1 local 10.0.0.3"),
            ["f: 1: peer address family mismatch"],
        )

    def test_noLocalPeer(self):
        self.assertEqual(
            errors("ikev2 esp from 10.0.0.1 to 10.0.0.2 from 10.0.0.3 to 10.0.0.4"),
            ["f: 1: could not get local/peer specification"],
        )

    def test_active(self):
        """
        An active policy needs a single peer address (and a single local
        address, if one is given).
        """
        self.assertTrue(policy("ikev2 active esp from 10.0.0.1 to 10.1.0.1").active)
        for text in [
            "ikev2 active esp from 10.0.0.0/24 to 10.1.0.0/24 peer 10.2.0.0/24",
            "ikev2 active esp from 10.0.0.0/24 to 10.1.0.0/24 peer 10.2.0.1 local any",
            "ikev2 active esp from 10.0.0.0/24 to 10.1.0.0/24",
        ]:
            self.assertEqual(errors(text), ["f: 1: active mode requires local/peer address"], text)


class ProposalTests(SynchronousTestCase):
    """
    C{ikesa} and C{childsa}.
    """

    def test_ikesaCustom(self):
        """
        Each C{ikesa} is a proposal; types not named come from the defaults.
        """
        p = policy("ikev2 esp %s ikesa enc aes-128-gcm group ecp256 group curve25519 ikesa enc aes-256 auth hmac-sha2-256 prf hmac-sha2-384 group ecp384" % (H,))
        first, second = p.ikeProposals
        self.assertEqual(
            first.transforms,
            (
                TransformSpec(T.ENCR, EncrId.AES_GCM_16, 128),
                TransformSpec(T.DH, DhId.ECP_256),
                TransformSpec(T.DH, DhId.CURVE25519),
            )
            + DEFAULT_IKE_AEAD[2:6],
        )
        self.assertEqual(
            second.transforms,
            (
                TransformSpec(T.INTEG, IntegId.HMAC_SHA2_256_128),
                TransformSpec(T.ENCR, EncrId.AES_CBC, 256),
                TransformSpec(T.DH, DhId.ECP_384),
                TransformSpec(T.PRF, PrfId.HMAC_SHA2_384),
            ),
        )

    def test_ikesaNoCipher(self):
        """
        An C{ikesa} naming no cipher gives both default proposals, with its
        other transforms.
        """
        p = policy("ikev2 esp %s ikesa group ecp256" % (H,))
        self.assertEqual(len(p.ikeProposals), 2)
        self.assertTrue(all(pr.ofType(T.DH) == (TransformSpec(T.DH, DhId.ECP_256),) for pr in p.ikeProposals))

    def test_childsa(self):
        p = policy("ikev2 esp %s childsa enc aes-128-gcm childsa enc aes-256 auth hmac-sha2-256 group ecp256 noesn" % (H,))
        gcm, cbc = p.childProposals
        self.assertEqual(gcm.transforms, (TransformSpec(T.ENCR, EncrId.AES_GCM_16, 128), TransformSpec(T.DH, DhId.NONE)) + DEFAULT_ESP_AEAD[-2:])
        self.assertEqual(
            cbc.transforms,
            (
                TransformSpec(T.INTEG, IntegId.HMAC_SHA2_256_128),
                TransformSpec(T.ENCR, EncrId.AES_CBC, 256),
                TransformSpec(T.DH, DhId.ECP_256),
                TransformSpec(T.ESN, EsnId.NO_ESN),
            ),
        )
        self.assertEqual(p.pfsGroups, (DhId.ECP_256,))

    def test_everyTransform(self):
        """
        Every name of the CRYPTO TRANSFORMS tables, where it is allowed.
        """
        ike = {
            "3des": (EncrId.TRIPLE_DES, None),
            "aes-128": (EncrId.AES_CBC, 128),
            "aes-192": (EncrId.AES_CBC, 192),
            "aes-256": (EncrId.AES_CBC, 256),
            "aes-128-gcm": (EncrId.AES_GCM_16, 128),
            "aes-256-gcm": (EncrId.AES_GCM_16, 256),
            "aes-128-gcm-12": (EncrId.AES_GCM_12, 128),
            "aes-256-gcm-12": (EncrId.AES_GCM_12, 256),
        }
        esp = {
            "3des": (EncrId.TRIPLE_DES, None),
            "aes-128-ctr": (EncrId.AES_CTR, 128),
            "aes-192-ctr": (EncrId.AES_CTR, 192),
            "aes-256-ctr": (EncrId.AES_CTR, 256),
            "aes-192-gcm": (EncrId.AES_GCM_16, 192),
            "aes-128-gmac": (EncrId.NULL_AUTH_AES_GMAC, 128),
            "aes-192-gmac": (EncrId.NULL_AUTH_AES_GMAC, 192),
            "aes-256-gmac": (EncrId.NULL_AUTH_AES_GMAC, 256),
            "blowfish": (EncrId.BLOWFISH, 160),
            "cast": (EncrId.CAST, 128),
            "chacha20-poly1305": (EncrId.CHACHA20_POLY1305, None),
            "null": (EncrId.NULL, None),
        }
        for name, (ident, keyLength) in ike.items():
            p = policy("ikev2 esp %s ikesa enc %s" % (H, name))
            self.assertEqual(p.ikeProposals[0].ofType(T.ENCR), (TransformSpec(T.ENCR, ident, keyLength),), name)
        for name, (ident, keyLength) in esp.items():
            p = policy("ikev2 esp %s childsa enc %s" % (H, name))
            self.assertEqual(p.childProposals[0].ofType(T.ENCR), (TransformSpec(T.ENCR, ident, keyLength),), name)
        for name, ident in [("hmac-md5", 1), ("hmac-sha1", 2), ("hmac-sha2-256", 12), ("hmac-sha2-384", 13), ("hmac-sha2-512", 14)]:
            p = policy("ikev2 esp %s childsa auth %s" % (H, name))
            self.assertEqual(p.childProposals[0].ofType(T.INTEG), (TransformSpec(T.INTEG, ident),), name)
        for name, ident in [("hmac-md5", 1), ("hmac-sha1", 2), ("hmac-sha2-256", 5), ("hmac-sha2-384", 6), ("hmac-sha2-512", 7)]:
            p = policy("ikev2 esp %s ikesa prf %s" % (H, name))
            self.assertEqual(p.ikeProposals[0].ofType(T.PRF), (TransformSpec(T.PRF, ident),), name)
        groups = {
            "modp768": 1, "grp1": 1, "modp1024": 2, "modp1536": 5, "modp2048": 14, "modp3072": 15,
            "modp4096": 16, "modp6144": 17, "modp8192": 18, "ecp256": 19, "ecp384": 20, "ecp521": 21,
            "ecp192": 25, "ecp224": 26, "brainpool224": 27, "brainpool256": 28, "brainpool384": 29,
            "brainpool512": 30, "grp30": 30, "curve25519": 31, "grp31": 31,
        }  # fmt: skip
        for name, ident in groups.items():
            p = policy("ikev2 esp %s ikesa group %s" % (H, name))
            self.assertEqual(p.ikeProposals[0].ofType(T.DH), (TransformSpec(T.DH, ident),), name)

    def test_prefixNames(self):
        """
        iked takes the first name that starts with what is written.
        """
        p = policy("ikev2 esp %s ikesa enc aes prf hmac group modp" % (H,))
        self.assertEqual(p.ikeProposals[0].ofType(T.ENCR), (TransformSpec(T.ENCR, EncrId.AES_CBC, 128),))
        self.assertEqual(p.ikeProposals[0].ofType(T.PRF), (TransformSpec(T.PRF, PrfId.HMAC_MD5),))
        self.assertEqual(p.ikeProposals[0].ofType(T.DH), (TransformSpec(T.DH, DhId.MODP_768),))

    def test_ikeOnlyEspOnly(self):
        """
        IKE-only ciphers are refused in C{childsa}, ESP-only ones in C{ikesa}.
        """
        for name in ("aes-128-gcm-12", "aes-256-gcm-12"):
            self.assertEqual(errors("ikev2 esp %s childsa enc %s" % (H, name)), ["f: 1: %s not a valid transform" % (name,)])
        for name in ("aes-128-ctr", "aes-192-gcm", "aes-128-gmac", "blowfish", "cast", "null"):
            self.assertEqual(errors("ikev2 esp %s ikesa enc %s" % (H, name)), ["f: 1: %s not a valid transform" % (name,)])

    def test_ikeChaCha(self):
        """
        ikedtx extension: C{ikesa enc chacha20-poly1305} protects IKE with
        RFC 7634's ChaCha20-Poly1305 (no Key Length attribute).
        """
        p = policy("ikev2 esp %s ikesa enc chacha20-poly1305 prf hmac-sha2-256 group ecp384" % (H,))
        self.assertEqual(p.ikeProposals[0].ofType(T.ENCR), (TransformSpec(T.ENCR, EncrId.CHACHA20_POLY1305, None),))

    def test_proposalErrors(self):
        for text, message in [
            ("ikesa group none", 'IKE group can not be "none".'),
            ("ikesa esn", "cannot use ESN with ikesa."),
            ("ikesa enc aes-128-gcm auth hmac-sha1", "authentication is implicit for given encryption transforms"),
            ("childsa enc aes-128-gcm enc aes-128", "cannot mix encryption transforms with implicit and non-implicit authentication"),
            ("ikesa enc nope", "nope not a valid transform"),
            ("ikesa childsa enc aes-128", "ikesa needs at least one of auth, enc, prf, group"),
            ("childsa", "childsa needs at least one of auth, enc, group, esn, noesn"),
        ]:
            self.assertEqual(errors("ikev2 esp %s %s" % (H, text)), ["f: 1: " + message], text)

    def test_sntrupWithoutBinding(self):
        """
        Without the optional sntrup761 binding, C{group sntrup761x25519} is
        refused in ikesa and childsa, saying what to install.
        """
        from ikedtx.crypto import sntrup

        self.patch(xf, "UNSUPPORTED_GROUPS", {xf.SNTRUP761X25519: sntrup.MISSING_REASON})
        for text in ("ikesa group sntrup761x25519", "childsa enc aes-256 group sntrup761x25519"):
            self.assertEqual(errors("ikev2 esp %s %s" % (H, text)), ["f: 1: " + sntrup.MISSING_REASON], text)

    def test_sntrupWithBinding(self):
        """
        With the binding, C{group sntrup761x25519} offers iked's private-use
        transform id 1035.
        """
        from ikedtx.crypto import sntrup

        if not sntrup.AVAILABLE:
            from tests.support import missing

            missing("the sntrup761 binding is not installed (pip install 'ikedtx[pq]')")
        p = policy("ikev2 esp %s ikesa enc aes-256 group sntrup761x25519 childsa enc aes-256 group sntrup761x25519" % (H,))
        self.assertEqual(p.ikeProposals[0].ofType(T.DH), (TransformSpec(T.DH, 1035),))
        self.assertEqual(p.childProposals[0].ofType(T.DH), (TransformSpec(T.DH, 1035),))

    def test_childGroupNone(self):
        p = policy("ikev2 esp %s childsa enc aes-256 group none" % (H,))
        self.assertEqual(p.childProposals[0].ofType(T.DH), (TransformSpec(T.DH, DhId.NONE),))

    def test_childPrfIgnored(self):
        """
        A C{prf} in C{childsa} is read and ignored, as iked does.
        """
        p = policy("ikev2 esp %s childsa enc aes-256 prf hmac-sha1" % (H,))
        self.assertEqual(p.childProposals[0].ofType(T.PRF), ())

    def test_ah(self):
        """
        AH proposals carry integrity, DH and ESN transforms only.
        """
        p = policy("ikev2 ah " + H)
        self.assertEqual(len(p.childProposals), 1)
        self.assertEqual(p.childProposals[0].protocol, ProtocolId.AH)
        self.assertEqual(p.childProposals[0].ofType(T.ENCR), ())
        self.assertEqual(errors("ikev2 ah %s childsa enc aes-128" % (H,)), ["f: 1: enc is not valid with ah: AH only authenticates"])


class IdTests(SynchronousTestCase):
    def test_ids(self):
        p = policy('ikev2 esp %s srcid host.example.com dstid "/C=DE/CN=peer"' % (H,))
        self.assertEqual((p.srcId, p.dstId), (Identity(IdType.FQDN, "host.example.com"), Identity(IdType.DER_ASN1_DN, "/C=DE/CN=peer")))

    def test_order(self):
        self.assertEqual(errors("ikev2 esp %s dstid a srcid b" % (H,)), ['f: 1: syntax error at "srcid"'])

    def test_badDN(self):
        self.assertEqual(
            errors('ikev2 esp %s srcid "/C"' % (H,)),
            ["f: 1: srcid: invalid ASN1_DN /C (missing value)"],
        )


class LifetimeTests(SynchronousTestCase):
    def test_units(self):
        p = policy("ikev2 esp %s ikelifetime 1h lifetime 30m bytes 2g" % (H,))
        self.assertEqual((p.ikeLifetime, p.lifetime, p.lifetimeBytes), (3600, 1800, 2 * 1024**3))
        p = policy("ikev2 esp %s ikelifetime 3Hours lifetime 100 bytes 10K" % (H,))
        self.assertEqual((p.ikeLifetime, p.lifetime, p.lifetimeBytes), (10800, 100, 10240))
        p = policy("ikev2 esp %s lifetime 5M bytes 1m" % (H,))
        self.assertEqual((p.lifetime, p.lifetimeBytes), (300, 1024**2))

    def test_zero(self):
        p = policy("ikev2 esp %s ikelifetime 0 lifetime 0 bytes 0" % (H,))
        self.assertEqual((p.ikeLifetime, p.lifetime, p.lifetimeBytes), (0, 0, 0))

    def test_errors(self):
        for text, message in [
            ("lifetime 100s", "invalid time unit"),
            ("lifetime 100 bytes 5t", "invalid byte unit"),
            ("lifetime h", "invalid time specification: h"),
            ('lifetime "300"', "invalid time specification: 300"),
            ("ikelifetime 99999999999", "ikelifetime outside range"),
        ]:
            self.assertEqual(errors("ikev2 esp %s %s" % (H, text)), ["f: 1: " + message], text)


class AuthTests(SynchronousTestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)

    def test_psk(self):
        p = policy('ikev2 esp %s psk "secret"' % (H,))
        self.assertEqual((p.auth.method, p.auth.psk), ("psk", b"secret"))
        self.assertNotIn("secret", repr(p))
        self.assertNotIn("secret", repr(p.auth))

    def test_pskHex(self):
        self.assertEqual(policy("ikev2 esp %s psk 0x0102AbCd" % (H,)).auth.psk, b"\x01\x02\xab\xcd")
        self.assertEqual(errors("ikev2 esp %s psk 0xzz12" % (H,)), ["f: 1: keys need to be specified in hex digits"])
        self.assertEqual(
            errors("ikev2 esp %s psk 0x123" % (H,)),
            ["f: 1: keys need to be specified in hex digits (an odd number of them was given)"],
        )

    def test_pskFile(self):
        path = os.path.join(self.dir, "key")
        with open(path, "w") as f:
            f.write("abcdef0123\n")
        os.chmod(path, 0o600)
        self.assertEqual(policy('ikev2 esp %s psk file "%s"' % (H, path)).auth.psk, bytes.fromhex("abcdef0123"))
        os.chmod(path, 0o644)
        self.assertEqual(
            errors('ikev2 esp %s psk file "%s"' % (H, path), checkPermissions=True),
            ["f: 1: %s: group writable or world read/writable" % (path,)],
        )
        missing = os.path.join(self.dir, "missing")
        self.assertEqual(
            errors('ikev2 esp %s psk file "%s"' % (H, missing)),
            ["f: 1: open %s: No such file or directory" % (missing,)],
        )

    def test_methods(self):
        for word, method in [
            ("rsa", "rsa"),
            ("ecdsa256", "ecdsa256"),
            ("ecdsa384", "ecdsa384"),
            ("ecdsa521", "ecdsa521"),
            ("rfc7427", "rfc7427"),
            ("signature", "signature"),
            ("ecdsa", "ecdsa256"),
        ]:
            self.assertEqual(policy("ikev2 esp %s %s" % (H, word)).auth.method, method, word)
        self.assertEqual(errors("ikev2 esp %s none" % (H,)), ["f: 1: not a valid authentication mode"])
        self.assertEqual(errors("ikev2 esp %s bogus" % (H,)), ["f: 1: not a valid authentication mode"])

    def test_eap(self):
        for word in ('"mschap-v2"', "MSCHAP_V2", '"MSCHAP-V2"'):
            auth = policy("ikev2 esp %s eap %s" % (H, word)).auth
            self.assertEqual((auth.method, auth.eapType), ("eap", EapType.MSCHAP_V2))
        self.assertEqual(errors("ikev2 esp %s eap md5" % (H,)), ["f: 1: unsupported EAP method: md5"])


class ConfigOptionTests(SynchronousTestCase):
    def test_options(self):
        p = policy(
            "ikev2 esp %s config address 10.0.0.0/24 config netmask 255.255.255.0 "
            "config name-server 2001:db8::53 config protected-subnet 10.9.0.0/16 "
            "config access-server 10.0.0.7 request address any request dhcp-server 10.0.0.6" % (H,)
        )
        o = p.configOptions
        self.assertEqual(
            [(x.kind, x.value, x.request, x.attribute) for x in o],
            [
                ("address", ip_network("10.0.0.0/24"), False, CA.INTERNAL_IP4_ADDRESS),
                ("netmask", ip_address("255.255.255.0"), False, CA.INTERNAL_IP4_NETMASK),
                ("name-server", ip_address("2001:db8::53"), False, CA.INTERNAL_IP6_DNS),
                ("protected-subnet", ip_network("10.9.0.0/16"), False, CA.INTERNAL_IP4_SUBNET),
                ("access-server", ip_address("10.0.0.7"), False, CA.INTERNAL_IP4_SERVER),
                ("address", None, True, CA.INTERNAL_IP4_ADDRESS),
                ("dhcp-server", ip_address("10.0.0.6"), True, CA.INTERNAL_IP4_DHCP),
            ],
        )
        self.assertTrue(o[0].isPool)
        self.assertFalse(o[4].isPool)

    def test_errors(self):
        self.assertEqual(errors("ikev2 esp %s config netmask 2001:db8::1" % (H,)), ["f: 1: not a valid ikecfg option"])
        self.assertEqual(errors("ikev2 esp %s config bogus 1.2.3.4" % (H,)), ["f: 1: not a valid ikecfg option"])


class FilterTests(SynchronousTestCase):
    def test_ifaceTagTap(self):
        p = policy('ikev2 esp %s iface lo tag "ipsec-$domain" tap "enc1"' % (H,))
        self.assertEqual((p.iface, p.tag, p.tap), ("lo", "ipsec-$domain", "enc1"))

    def test_unquotedTagVariable(self):
        """
        An unquoted C{$name} is a macro; inside a word it is not.
        """
        self.assertEqual(policy("ikev2 esp %s tag ipsec-$domain" % (H,)).tag, "ipsec-$domain")
        self.assertEqual(
            errors("ikev2 esp %s tag $name-$id" % (H,)),
            ["f: 1: macro 'name' not defined", "f: 1: syntax error"],
        )

    def test_tapEnc0(self):
        """
        enc0 is the default.
        """
        self.assertIsNone(policy("ikev2 esp %s tap enc0" % (H,)).tap)

    def test_errors(self):
        self.assertEqual(errors("ikev2 esp %s iface nosuch0" % (H,)), ["f: 1: invalid iface"])
        self.assertEqual(errors("ikev2 esp %s tap foo1" % (H,)), ["f: 1: invalid tap interface name: foo1"])
        self.assertEqual(errors('ikev2 esp %s tap "enc"' % (H,)), ["f: 1: invalid tap interface unit: invalid"])
        self.assertEqual(errors("ikev2 esp %s tap enc99999999999" % (H,)), ["f: 1: invalid tap interface unit: too large"])


class ErrorReportingTests(SynchronousTestCase):
    """
    Every error of a file is reported, each on its line, and parsing goes
    on after each.
    """

    def test_allErrors(self):
        text = (
            "ikev2 esp proto nosuch %s\n"
            "ikev2 esp proto nosuch2 %s\n"
            "ikev2 esp proto tcp from 10.0.0.1 port nosuch to 10.0.0.2\n"
            'ikev2 "good" esp %s\n'
            "set dpd_check_interval -5\n" % (H, H, H)
        )
        self.assertEqual(
            errors(text),
            [
                "f: 1: unknown protocol: nosuch",
                "f: 2: unknown protocol: nosuch2",
                "f: 3: unknown port: nosuch",
                "f: 5: timeout outside range",
            ],
        )

    def test_syntaxErrorsNamesToken(self):
        self.assertEqual(errors("\n\nikev2 esp from 10.0.0.1 too 10.0.0.2\n"), ['f: 3: syntax error at "too"'])

    def test_continuedLine(self):
        """
        An error in a continued statement is reported on the physical line
        of the token.
        """
        text = "ikev2 esp %s \\\n   peer 10.0.0.3 \\\n   bogus \\\n   lifetime 4\n" % (H,)
        self.assertEqual(errors(text), ["f: 3: not a valid authentication mode"])

    def test_quietAfterError(self):
        """
        Like iked (bison), a syntax error within three tokens of the previous
        error is not reported again.
        """
        self.assertEqual(errors("foo bar\nbaz\n\nqux quux\n"), ['f: 1: syntax error at "bar"', 'f: 4: syntax error at "quux"'])

    def test_errorThenGoodPolicy(self):
        """
        After an error the next statement is read normally.
        """
        try:
            parseConfig("bogus\n\n\nikev2 esp proto nosuch %s\n" % (H,), filename="f")
        except ConfigError as e:
            self.assertEqual([str(p) for p in e.errors], ["f: 1: syntax error at end of line", "f: 4: unknown protocol: nosuch"])
        else:
            self.fail("no error")

    def test_str(self):
        """
        ConfigError's text is one problem per line.
        """
        try:
            parseConfig("a\nb\n\n\nc\n", filename="x.conf")
        except ConfigError as e:
            self.assertEqual(str(e), "x.conf: 1: syntax error at end of line\nx.conf: 5: syntax error at end of line")

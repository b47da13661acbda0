"""
Tests for L{ikedtx.core.policy}: iked's policy evaluation (iked.conf(5)
"eval": the last match wins, quick, skip, default), peer and local as any,
address, network or FQDN, and the traffic selectors of a policy's flows.
"""

from ipaddress import ip_address

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth.ids import IKEIdentity
from ikedtx.config import parseConfig
from ikedtx.core.policy import PolicyTable, peerAddressOf, selectorsOf

from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase

FLOW = "from 10.0.0.0/24 to 10.1.0.0/24"


def table(text, resolved=None):
    return PolicyTable(parseConfig(text).policies, resolved)


def names(policyTable, local, remote, peerId=None):
    policy = policyTable.lookup(local, remote, peerId)
    return policy.name if policy is not None else None


class LookupTests(SynchronousTestCase):
    def test_lastMatchWins(self):
        """
        Every policy is evaluated; the last that matches is used.
        """
        t = table('ikev2 "all" esp %s peer any\nikev2 "net" esp %s peer 192.168.1.0/24\n'
                  'ikev2 "host" esp %s peer 192.168.1.34' % (FLOW, FLOW, FLOW))
        self.assertEqual(names(t, "192.0.2.1", "192.168.1.34"), "host")
        self.assertEqual(names(t, "192.0.2.1", "192.168.1.35"), "net")
        self.assertEqual(names(t, "192.0.2.1", "203.0.113.9"), "all")

    def test_quick(self):
        """
        A matching quick policy ends the evaluation.
        """
        t = table('ikev2 "q" quick esp %s peer 192.168.1.34\nikev2 "any" esp %s peer any' % (FLOW, FLOW))
        self.assertEqual(names(t, "192.0.2.1", "192.168.1.34"), "q")
        self.assertEqual(names(t, "192.0.2.1", "192.168.1.35"), "any")

    def test_skip(self):
        """
        A skip policy is never matched by an incoming connection (but can
        still be initiated).
        """
        t = table('ikev2 "s" skip active esp %s peer 192.168.1.34' % (FLOW,))
        self.assertIsNone(names(t, "192.0.2.1", "192.168.1.34"))
        self.assertEqual([p.name for p in t.active()], ["s"])

    def test_default(self):
        """
        The default policy is used when no other matches.
        """
        t = table('ikev2 "d" default esp %s peer 198.51.100.1\nikev2 "x" esp %s peer 192.168.1.34' % (FLOW, FLOW))
        self.assertEqual(names(t, "192.0.2.1", "203.0.113.9"), "d")
        self.assertEqual(names(t, "192.0.2.1", "192.168.1.34"), "x")

    def test_local(self):
        """
        C{local} restricts the policy to the address the peer came to.
        """
        t = table('ikev2 "l" esp %s local 192.0.2.1 peer any' % (FLOW,))
        self.assertEqual(names(t, "192.0.2.1", "198.51.100.1"), "l")
        self.assertIsNone(names(t, "192.0.2.9", "198.51.100.1"))

    def test_addressFamily(self):
        t = table('ikev2 "v6" esp inet6 from 2001:db8::/64 to 2001:db8:1::/64 peer any')
        self.assertEqual(names(t, "2001:db8::1", "2001:db8::2"), "v6")
        self.assertIsNone(names(t, "192.0.2.1", "192.0.2.2"))

    def test_fqdnPeer(self):
        """
        An FQDN peer matches the addresses it resolved to.
        """
        t = table('ikev2 "n" esp %s peer localhost' % (FLOW,), resolved={"localhost": [ip_address("127.0.0.1")]})
        self.assertEqual(names(t, "127.0.0.1", "127.0.0.1"), "n")
        self.assertIsNone(names(t, "127.0.0.1", "127.0.0.2"))

    def test_dstid(self):
        """
        Once the peer's identity is known, a policy's dstid must match it.
        """
        t = table('ikev2 "a" esp %s peer any dstid a.example\nikev2 "b" esp %s peer any dstid b.example'
                  % (FLOW, FLOW))
        self.assertEqual(names(t, "192.0.2.1", "198.51.100.1", IKEIdentity.fromFQDN("a.example")), "a")
        self.assertEqual(names(t, "192.0.2.1", "198.51.100.1", IKEIdentity.fromFQDN("b.example")), "b")
        self.assertIsNone(names(t, "192.0.2.1", "198.51.100.1", IKEIdentity.fromFQDN("c.example")))


class AcceptsTests(SynchronousTestCase):
    """
    L{PolicyTable.accepts}, the COOKIE fast path's question: the same
    answer as C{lookup(...) is not None}, remembered for policies for any
    peer.
    """

    CONFIGS = [
        'ikev2 "any" esp %s peer any' % (FLOW,),
        'ikev2 "l" esp %s local 192.0.2.1 peer any' % (FLOW,),
        'ikev2 "h" esp %s peer 192.168.1.34' % (FLOW,),
        'ikev2 "s" skip esp %s peer any\nikev2 "h" esp %s peer 192.168.1.34' % (FLOW, FLOW),
        'ikev2 "d" default esp %s peer 198.51.100.1' % (FLOW,),
        'ikev2 "v6" esp inet6 from 2001:db8::/64 to 2001:db8:1::/64 peer any',
        'ikev2 "v4" esp inet %s peer any' % (FLOW,),
    ]
    PAIRS = [("192.0.2.1", "192.168.1.34"), ("192.0.2.1", "203.0.113.9"), ("192.0.2.9", "203.0.113.9"),
             ("2001:db8::1", "2001:db8::2"), ("2001:db8::1", "192.0.2.7")]

    def test_sameAsLookup(self):
        """
        For each configuration and address pair, twice (the second time
        from what was remembered): C{accepts} is C{lookup(...) is not
        None}.
        """
        for config in self.CONFIGS:
            t = table(config)
            for _ in range(2):
                for local, remote in self.PAIRS:
                    self.assertEqual(t.accepts(local, remote), t.lookup(local, remote) is not None,
                                     (config, local, remote))

    def test_addressObjects(self):
        """
        ipaddress objects are taken as well as strings.
        """
        t = table(self.CONFIGS[5])
        self.assertTrue(t.accepts("2001:db8::1", ip_address("2001:db8::2")))
        self.assertFalse(t.accepts("192.0.2.1", ip_address("192.0.2.2")))


class SelectorTests(SynchronousTestCase):
    def test_flows(self):
        """
        Every from/to pair and every protocol of a C{proto { }} list becomes
        a flow; each side's selectors are deduplicated.
        """
        (p,) = parseConfig('ikev2 esp proto { tcp udp } from 10.0.0.0/24 port 80 to 10.1.0.0/16 '
                           'from 10.0.1.0/24 port 80 to 10.1.0.0/16 peer 192.0.2.9').policies
        self.assertEqual(sorted(str(ts) for ts in selectorsOf(p, local=True)),
                         ["10.0.0.0/24 proto 17 port 80", "10.0.0.0/24 proto 6 port 80",
                          "10.0.1.0/24 proto 17 port 80", "10.0.1.0/24 proto 6 port 80"])
        self.assertEqual(sorted(str(ts) for ts in selectorsOf(p, local=False)), ["10.1.0.0/16 proto 17", "10.1.0.0/16 proto 6"])

    def test_any(self):
        """
        C{any} covers both address families.
        """
        (p,) = parseConfig("ikev2 esp from any to any").policies
        self.assertEqual(sorted(str(ts) for ts in selectorsOf(p)), ["0.0.0.0/0", "::/0"])

    def test_peerAddress(self):
        """
        The peer to initiate to is the peer host, or the destination of a
        host-to-host flow.
        """
        (explicit, hostToHost, network) = parseConfig(
            'ikev2 "e" esp %s peer 192.0.2.7\nikev2 "h" esp from 192.0.2.1 to 192.0.2.9\n'
            'ikev2 "n" esp %s peer 192.0.2.0/24' % (FLOW, FLOW)).policies
        self.assertEqual(peerAddressOf(explicit), ip_address("192.0.2.7"))
        self.assertEqual(peerAddressOf(hostToHost), ip_address("192.0.2.9"))
        self.assertIsNone(peerAddressOf(network))


class ResponderPolicyTests(ExchangeTestCase):
    def test_responderChoosesByIdentity(self):
        """
        The responder picks its policy by address at IKE_SA_INIT and again
        by the peer's identity at IKE_AUTH (two road warriors behind one
        address, each with its own PSK).
        """
        responder = parseConfig(
            'ikev2 "alice" esp from 10.2.0.0/24 to 10.1.0.0/24 peer any srcid b.example dstid alice.example psk "a-psk"\n'
            'ikev2 "bob" esp from 10.2.0.0/24 to 10.1.0.0/24 peer any srcid b.example dstid a.example psk "secret"\n'
            'ikev2 "carol" esp from 10.2.0.0/24 to 10.1.0.0/24 peer any srcid b.example dstid carol.example psk "c"\n')
        a, b, ikeSA = self.establish(responder=responder)
        self.assertEqual(b.ikeSAs[0].policy.name, "bob")

    def test_ipcomp(self):
        """
        RFC 7296 2.22: with ipcomp on both sides, IPCOMP_SUPPORTED carries
        each side's CPI and DEFLATE.
        """
        a, b, ikeSA = self.establish(initiator=parseConfig(
            'ikev2 "ab" active ipcomp esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s psk "secret"' % (A_ADDR, B_ADDR)),
            responder=parseConfig('ikev2 "ba" ipcomp esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s psk "secret"'
                                  % (B_ADDR, A_ADDR)))
        childA, childB = self.assertChildKeysMatch(a, b)
        self.assertIsNotNone(childA.ipcompIn)
        self.assertEqual((childA.ipcompIn, childA.ipcompOut), (childB.ipcompOut, childB.ipcompIn))
        # The datapath gets them: each SA with its direction's IPcomp CPI,
        # and flows whose templates ask for IPcomp.
        inbound, outbound = childA.kernelSAs(ikeSA)
        self.assertEqual((inbound.ipcompCpi, outbound.ipcompCpi), (childA.ipcompIn, childA.ipcompOut))
        self.assertTrue(all(flow.ipcomp for flow in childA.kernelFlows(ikeSA)))

    def test_noIpcompWithoutPeer(self):
        """
        Without ipcomp on the responder, no CPI is kept.
        """
        a, b, ikeSA = self.establish(initiator=parseConfig(
            'ikev2 "ab" active ipcomp esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s psk "secret"'
            % (A_ADDR, B_ADDR)),
            responder=parseConfig('ikev2 "ba" esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s psk "secret"'
                                  % (B_ADDR, A_ADDR)))
        childA, childB = self.assertChildKeysMatch(a, b)
        self.assertEqual((childA.ipcompIn, childA.ipcompOut, childB.ipcompIn), (None, None, None))
        self.assertEqual([sa.ipcompCpi for sa in childA.kernelSAs(ikeSA)], [None, None])
        self.assertFalse(any(flow.ipcomp for flow in childA.kernelFlows(ikeSA)))

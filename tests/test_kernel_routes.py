"""
Tests for the routes of tunnel flows (L{ikedtx.kernel.routes}, used by the
xfrm provider as strongSwan's kernel-netlink installs them): which flows get
routes, when they go, and L{TunnelRoutes} against the real routing tables
of a network namespace on this host (routes need no ESP; the VM run shows
traffic using them).
"""

from ipaddress import ip_address, ip_network

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.kernel import xfrm
from ikedtx.kernel.interfaces import TRAP_REQID_BASE, KernelSelector
from ikedtx.kernel.routes import DEFAULT_TABLE, TunnelRoutes

from tests.test_kernel_xfrm import RecordingChannel, flow

A = ip_address


class FakeTunnelRoutes:
    """
    L{TunnelRoutes} in memory: C{log} records every change.
    """

    def __init__(self, addresses=("10.1.0.1",), table=DEFAULT_TABLE, failing=False):
        self.table = table
        self.addresses = [A(a) for a in addresses]
        self.log = []
        self.rules = set()
        self.failing = failing

    def localAddressIn(self, start, end):
        for address in self.addresses:
            if address.version == start.version and start <= address <= end:
                return address
        return None

    def addRoute(self, network, source, peer):
        if self.failing:
            raise OSError(101, "Network is unreachable")
        self.rules.add(network.version)
        self.log.append(("add", str(network), str(source), str(peer)))

    def deleteRoute(self, network, source, peer):
        self.log.append(("del", str(network), str(source), str(peer)))

    def removeRules(self):
        self.log.append(("rules",))
        self.rules.clear()

    def removeLeftovers(self):
        self.log.append(("leftovers", self.table))
        if self.failing:
            raise OSError(1, "Operation not permitted")
        return 2


class XfrmRouteTests(SynchronousTestCase):
    def setUp(self):
        self.routes = FakeTunnelRoutes()
        self.kernel = xfrm.XfrmKernel(channel=RecordingChannel(), cleanup=False, routes=self.routes)

    def test_outboundTunnelFlow(self):
        """
        The outbound tunnel flow routes the remote network with the local
        inner address as source; the inbound and forward flows add nothing;
        deleting the flow removes the route and, the last one gone, the
        rule.
        """
        for direction in ("out", "in", "fwd"):
            self.successResultOf(self.kernel.addFlow(flow(direction)))
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")])
        for direction in ("out", "in", "fwd"):
            self.successResultOf(self.kernel.deleteFlow(flow(direction)))
        self.assertEqual(self.routes.log[1:], [("del", "10.2.0.0/24", "10.1.0.1", "192.0.2.2"), ("rules",)])

    def test_noLocalInnerAddress(self):
        """
        A local network none of whose addresses is on this host (a gateway
        for others): no route, as strongSwan.
        """
        self.routes.addresses = [A("10.9.0.1")]
        self.successResultOf(self.kernel.addFlow(flow("out")))
        self.assertEqual(self.routes.log, [])

    def test_transport(self):
        self.successResultOf(self.kernel.addFlow(flow("out", mode="transport")))
        self.assertEqual(self.routes.log, [])

    def test_rangeAndPeer(self):
        """
        A range that is no single prefix is routed prefix by prefix; the
        prefix holding the peer itself is left out (IKE and ESP must not go
        into the tunnel).
        """
        f = flow("out", destination=KernelSelector(A("192.0.2.0"), A("192.0.4.255")))
        self.successResultOf(self.kernel.addFlow(f))
        self.assertEqual(self.routes.log, [("add", "192.0.4.0/24", "10.1.0.1", "192.0.2.2")])

    def test_shared(self):
        """
        Two flows to the same network (a rekey overlaps the old and new
        Child SA) share the route; it goes with the last.
        """
        one, two = flow("out"), flow("out", reqid=8)
        self.successResultOf(self.kernel.addFlow(one))
        self.successResultOf(self.kernel.addFlow(two))
        self.successResultOf(self.kernel.deleteFlow(one))
        self.assertEqual([entry[0] for entry in self.routes.log], ["add"])
        self.successResultOf(self.kernel.deleteFlow(two))
        self.assertEqual([entry[0] for entry in self.routes.log], ["add", "del", "rules"])

    def test_sameNetworkOtherSource(self):
        """
        Two policies to the same remote network from different local
        networks: one route (the kernel keys routes by destination), the
        first flow's, removed with the last flow.
        """
        self.routes.addresses = [A("10.1.0.1"), A("10.7.0.1")]
        other = flow("out", source=KernelSelector(A("10.7.0.0"), A("10.7.255.255")), reqid=9)
        self.successResultOf(self.kernel.addFlow(flow("out")))
        self.successResultOf(self.kernel.addFlow(other))
        self.successResultOf(self.kernel.deleteFlow(flow("out")))
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")])
        self.successResultOf(self.kernel.deleteFlow(other))
        self.assertEqual(self.routes.log[1:], [("del", "10.2.0.0/24", "10.1.0.1", "192.0.2.2"), ("rules",)])

    def test_peerMoves(self):
        """
        MOBIKE: the flow with the peer's new address comes, then the old
        one goes; the route follows the new peer (its next hop may be
        another), and goes with the new flow.
        """
        moved = flow("out", peerAddress=A("198.51.100.9"))
        self.successResultOf(self.kernel.addFlow(flow("out")))
        self.successResultOf(self.kernel.addFlow(moved))
        self.successResultOf(self.kernel.deleteFlow(flow("out")))
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2"),
                                           ("add", "10.2.0.0/24", "10.1.0.1", "198.51.100.9")])
        self.successResultOf(self.kernel.deleteFlow(moved))
        self.assertEqual(self.routes.log[2:], [("del", "10.2.0.0/24", "10.1.0.1", "198.51.100.9"), ("rules",)])

    def test_localMoves(self):
        """
        MOBIKE moved this host (same peer, new local address): the route is
        made again, the next hop towards the peer being where the host now
        reaches it.
        """
        moved = flow("out", localAddress=A("198.51.100.1"))
        self.successResultOf(self.kernel.addFlow(flow("out")))
        self.successResultOf(self.kernel.addFlow(moved))
        self.successResultOf(self.kernel.deleteFlow(flow("out")))
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")] * 2)

    def test_localMovesUnderTrap(self):
        """
        An active policy's trap flow routed the network first (same
        endpoints as the Child SA's flow); MOBIKE moves this host: the route
        is made again for the moved flow, which the datapath uses (the
        trap under it keeps the old endpoints), and once the Child SA goes
        it is made again for the trap, which goes last with the route.
        """
        trap = flow("out", reqid=TRAP_REQID_BASE)
        moved = flow("out", localAddress=A("198.51.100.1"))
        for f in (trap, flow("out"), moved):
            self.successResultOf(self.kernel.addFlow(f))
        self.successResultOf(self.kernel.deleteFlow(flow("out")))
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")] * 2)
        self.successResultOf(self.kernel.deleteFlow(moved))
        self.assertEqual(self.routes.log[2:], [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")])
        self.successResultOf(self.kernel.deleteFlow(trap))
        self.assertEqual(self.routes.log[3:], [("del", "10.2.0.0/24", "10.1.0.1", "192.0.2.2"), ("rules",)])

    def test_trapAfterChildSA(self):
        """
        A trap installed after a moved Child SA's flow (ikectl couple, a
        reload) does not take the route back to its own endpoints: the
        datapath keeps the Child SA's flow.
        """
        moved = flow("out", localAddress=A("198.51.100.1"))
        self.successResultOf(self.kernel.addFlow(moved))
        self.successResultOf(self.kernel.addFlow(flow("out", reqid=TRAP_REQID_BASE)))
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")])

    def test_flush(self):
        self.successResultOf(self.kernel.addFlow(flow("out")))
        self.successResultOf(self.kernel.flush())
        self.assertEqual([entry[0] for entry in self.routes.log], ["add", "del", "rules"])

    def test_failedRoute(self):
        """
        A route the host refuses is logged; the flow is installed all the
        same (strongSwan does the same).
        """
        self.routes.failing = True
        self.successResultOf(self.kernel.addFlow(flow("out")))
        self.assertTrue(self.kernel.policies)
        self.assertEqual((self.routes.log, self.kernel._flowRoutes), ([], {}))

    def test_leftoversAtStart(self):
        """
        With C{cleanup}, the provider removes the routes a crashed run left
        (counted with the SAs and policies); a failure to do so is logged
        and the start goes on.
        """
        routes = FakeTunnelRoutes()
        kernel = xfrm.XfrmKernel(channel=RecordingChannel(), routes=routes)
        self.assertEqual(routes.log, [("leftovers", DEFAULT_TABLE)])
        self.assertEqual(kernel.leftoversRemoved, 2)
        routes = FakeTunnelRoutes(failing=True)
        kernel = xfrm.XfrmKernel(channel=RecordingChannel(), routes=routes)
        self.assertEqual(kernel.leftoversRemoved, 0)

    def test_tableZero(self):
        """
        Table 0 (C{--route-table 0}) installs no routes.
        """
        self.routes.table = 0
        self.successResultOf(self.kernel.addFlow(flow("out")))
        self.assertEqual(self.routes.log, [])


class TunnelRoutesNamespaceTests(SynchronousTestCase):
    """
    L{TunnelRoutes} in a network namespace of this host: the route goes
    into table 220 through the next hop towards the peer with the inner
    source, a rule looks the table up, and both go again.
    """

    def setUp(self):
        from ikedtx.testing.lab.netns import Network

        network = Network(self)
        self.a = network.namespace("a")
        self.b = network.namespace("b")
        network.link(self.a, self.b, "192.0.2.1/24", "192.0.2.2/24", "va", "vb")
        self.a.addLoopbackAddress("10.1.0.1/32")
        self.a.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.2")

    def test_routeAndRule(self):
        routes = TunnelRoutes(netns=self.a.netns)
        self.assertEqual(routes.localAddressIn(A("10.1.0.0"), A("10.1.255.255")), A("10.1.0.1"))
        self.assertIsNone(routes.localAddressIn(A("10.7.0.0"), A("10.7.255.255")))
        # A peer on the link, and one behind a router.
        routes.addRoute(ip_network("10.2.0.0/16"), A("10.1.0.1"), A("192.0.2.2"))
        routes.addRoute(ip_network("10.3.0.0/16"), A("10.1.0.1"), A("198.51.100.7"))
        table = self.a.ip("route", "show", "table", "220").stdout
        self.assertIn("10.2.0.0/16 dev va", table)
        self.assertIn("10.3.0.0/16 via 192.0.2.2 dev va", table)
        self.assertEqual(table.count("src 10.1.0.1"), 2, table)
        self.assertIn("220:\tfrom all lookup 220", self.a.ip("rule", "show").stdout)
        self.assertIn("src 10.1.0.1", self.a.ip("route", "get", "10.2.0.9").stdout)
        routes.deleteRoute(ip_network("10.2.0.0/16"), A("10.1.0.1"), A("192.0.2.2"))
        routes.deleteRoute(ip_network("10.3.0.0/16"), A("10.1.0.1"), A("198.51.100.7"))
        routes.removeRules()
        self.assertEqual(self.a.ip("route", "show", "table", "220", check=False).stdout.strip(), "")
        self.assertNotIn("lookup 220", self.a.ip("rule", "show").stdout)

    def test_leftovers(self):
        """
        The routes carry ikedtx's protocol; at start, those a crashed run
        left in the table go, and a route of another protocol (charon's,
        static) in the same table stays, as do other tables' routes.
        """
        crashed = TunnelRoutes(netns=self.a.netns)
        crashed.addRoute(ip_network("10.2.0.0/16"), A("10.1.0.1"), A("192.0.2.2"))
        crashed.addRoute(ip_network("10.3.0.0/16"), A("10.1.0.1"), A("198.51.100.7"))
        self.assertIn("proto 158", self.a.ip("route", "show", "table", "220").stdout)
        self.a.ip("route", "add", "10.4.0.0/16", "dev", "va", "table", "220", "proto", "static")
        self.a.ip("route", "add", "10.5.0.0/16", "dev", "va", "table", "221", "proto", "158")
        self.assertEqual(TunnelRoutes(netns=self.a.netns).removeLeftovers(), 2)
        table = self.a.ip("route", "show", "table", "220").stdout
        self.assertNotIn("10.2.0.0", table)
        self.assertNotIn("10.3.0.0", table)
        self.assertIn("10.4.0.0/16 dev va proto static", table)
        self.assertIn("10.5.0.0/16", self.a.ip("route", "show", "table", "221").stdout)

    def test_deleteOnlyOurs(self):
        """
        deleteRoute removes ikedtx's route only: charon's route to the same
        network (another protocol) is never touched.
        """
        self.a.ip("route", "add", "10.2.0.0/16", "dev", "va", "table", "220", "proto", "static")
        routes = TunnelRoutes(netns=self.a.netns)
        self.assertRaises(Exception, routes.deleteRoute, ip_network("10.2.0.0/16"), A("10.1.0.1"), A("192.0.2.2"))
        self.assertIn("10.2.0.0/16 dev va proto static", self.a.ip("route", "show", "table", "220").stdout)

    def test_leftoversIPv6(self):
        self.a.ip("-6", "address", "add", "fd00::1/64", "dev", "va", "nodad")
        self.a.ip("-6", "address", "add", "fd01::1/128", "dev", "lo")
        routes = TunnelRoutes(netns=self.a.netns)
        routes.addRoute(ip_network("fd02::/64"), A("fd01::1"), A("fd00::2"))
        self.assertIn("fd02::/64", self.a.ip("-6", "route", "show", "table", "220").stdout)
        self.assertEqual(TunnelRoutes(netns=self.a.netns).removeLeftovers(), 1)
        self.assertNotIn("fd02::/64", self.a.ip("-6", "route", "show", "table", "220").stdout)

    def test_foreignRuleStays(self):
        """
        charon's rule for table 220 (same table and priority, its own
        protocol) is there before ikedtx routes a flow: removing ikedtx's
        rules (flow gone, shutdown) leaves charon's in place.
        """
        self.a.ip("rule", "add", "table", "220", "priority", "220", "proto", "static")
        routes = TunnelRoutes(netns=self.a.netns)
        routes.addRoute(ip_network("10.2.0.0/16"), A("10.1.0.1"), A("192.0.2.2"))
        routes.deleteRoute(ip_network("10.2.0.0/16"), A("10.1.0.1"), A("192.0.2.2"))
        routes.removeRules()
        rules = self.a.ip("rule", "show").stdout
        self.assertIn("220:\tfrom all lookup 220 proto static", rules)
        self.assertEqual(rules.count("lookup 220"), 1, rules)

    def test_foreignRuleAddedLater(self):
        """
        charon adds its rule after ikedtx's: each removal takes only its
        own, ikedtx's rule carries ikedtx's protocol.
        """
        routes = TunnelRoutes(netns=self.a.netns)
        routes.addRoute(ip_network("10.2.0.0/16"), A("10.1.0.1"), A("192.0.2.2"))
        self.assertIn("lookup 220 proto 158", self.a.ip("rule", "show").stdout)
        self.a.ip("rule", "add", "table", "220", "priority", "220", "proto", "static")
        routes.removeRules()
        rules = self.a.ip("rule", "show").stdout
        self.assertIn("lookup 220 proto static", rules)
        self.assertNotIn("proto 158", rules)

    def test_leftoverRule(self):
        """
        A rule a crashed run left (ikedtx's protocol) goes at start; a
        foreign one for the same table stays.
        """
        TunnelRoutes(netns=self.a.netns).addRoute(ip_network("10.2.0.0/16"), A("10.1.0.1"), A("192.0.2.2"))
        self.a.ip("rule", "add", "table", "220", "priority", "220", "proto", "static")
        TunnelRoutes(netns=self.a.netns).removeLeftovers()
        rules = self.a.ip("rule", "show").stdout
        self.assertIn("lookup 220 proto static", rules)
        self.assertNotIn("proto 158", rules)

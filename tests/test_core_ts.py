"""
Tests for L{ikedtx.core.ts}: traffic selector values and RFC 7296 2.9
narrowing.
"""

from ipaddress import ip_address

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core.ts import TrafficSelector, isSubsetOf, narrow

TS = TrafficSelector.fromNetwork


class TrafficSelectorTests(SynchronousTestCase):
    def test_fromNetwork(self):
        """
        A network becomes the range from its first to its last address.
        """
        ts = TS("10.1.0.0/24", 6, (80, 80))
        self.assertEqual(
            (ts.version, ts.startAddress, ts.endAddress, ts.ipProtocol, ts.startPort, ts.endPort),
            (4, ip_address("10.1.0.0"), ip_address("10.1.0.255"), 6, 80, 80),
        )

    def test_mixedFamilies(self):
        """
        A range cannot start in IPv4 and end in IPv6.
        """
        self.assertRaises(ValueError, TrafficSelector, 4, ip_address("10.0.0.1"), ip_address("::1"))

    def test_intersect(self):
        """
        Intersection narrows addresses, ports and an unspecified protocol.
        """
        a = TS("10.0.0.0/16")
        b = TS("10.0.5.0/24", 17, (53, 53))
        self.assertEqual(a.intersect(b), b)
        self.assertEqual(b.intersect(a), b)

    def test_intersectDisjoint(self):
        """
        Disjoint addresses, ports, protocols or families share nothing.
        """
        self.assertIsNone(TS("10.0.0.0/24").intersect(TS("10.0.1.0/24")))
        self.assertIsNone(TS("10.0.0.0/24", 6).intersect(TS("10.0.0.0/24", 17)))
        self.assertIsNone(TS("10.0.0.0/24", 6, (1, 10)).intersect(TS("10.0.0.0/24", 6, (11, 20))))
        self.assertIsNone(TS("0.0.0.0/0").intersect(TS("::/0")))

    def test_contains(self):
        self.assertTrue(TS("10.0.0.0/8").contains(TS("10.1.2.3/32", 6)))
        self.assertFalse(TS("10.0.0.0/8", 6).contains(TS("10.1.2.3/32")))
        self.assertFalse(TS("10.1.0.0/16").contains(TS("10.0.0.0/8")))

    def test_str(self):
        self.assertEqual(str(TS("10.1.0.0/24")), "10.1.0.0/24")
        self.assertEqual(str(TS("10.1.0.1/32", 6, (22, 22))), "10.1.0.1 proto 6 port 22")
        self.assertEqual(str(TrafficSelector(4, ip_address("10.0.0.1"), ip_address("10.0.0.5"))), "10.0.0.1-10.0.0.5")

    def test_opaque(self):
        """
        RFC 7296 3.13.1: start 65535 and end 0 mean OPAQUE ports.
        """
        self.assertTrue(TrafficSelector(4, ip_address("10.0.0.1"), ip_address("10.0.0.1"), 6, 65535, 0).isOpaquePorts)


class NarrowTests(SynchronousTestCase):
    def test_narrowToPolicy(self):
        """
        RFC 7296 2.9: a responder whose policy allows less than proposed
        answers with the intersection.
        """
        self.assertEqual(narrow([TS("10.0.0.0/8")], [TS("10.1.0.0/16"), TS("10.2.0.0/16")]),
                         [TS("10.1.0.0/16"), TS("10.2.0.0/16")])

    def test_nothingInCommon(self):
        """
        An empty answer means TS_UNACCEPTABLE.
        """
        self.assertEqual(narrow([TS("192.168.0.0/16")], [TS("10.0.0.0/8")]), [])

    def test_duplicatesRemoved(self):
        """
        Selectors covered by another one in the answer are dropped.
        """
        self.assertEqual(narrow([TS("10.1.0.0/16"), TS("10.1.2.0/24")], [TS("10.0.0.0/8")]), [TS("10.1.0.0/16")])

    def test_isSubsetOf(self):
        """
        RFC 7296 2.9: an initiator accepts only answers within its offer.
        """
        self.assertTrue(isSubsetOf([TS("10.1.2.0/24")], [TS("10.1.0.0/16")]))
        self.assertFalse(isSubsetOf([TS("10.1.0.0/15")], [TS("10.1.0.0/16")]))

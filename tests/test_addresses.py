"""
Tests for L{ikedtx.addresses}.
"""

from ipaddress import IPv4Address, IPv6Address, ip_address

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.addresses import addressOf


class AddressOfTests(SynchronousTestCase):
    def test_strings(self):
        """
        Strings of either family become ipaddress objects.
        """
        self.assertEqual(addressOf("192.0.2.1"), IPv4Address("192.0.2.1"))
        self.assertEqual(addressOf("2001:db8::1"), IPv6Address("2001:db8::1"))

    def test_objects(self):
        """
        An ipaddress object is returned as it is.
        """
        address = ip_address("198.51.100.7")
        self.assertIs(addressOf(address), address)

    def test_invalid(self):
        """
        Text that is no address raises ValueError, as ip_address does.
        """
        self.assertRaises(ValueError, addressOf, "not-an-address")

"""
Tests for L{ikedtx.addresses}.
"""

from ipaddress import IPv4Address, IPv6Address, ip_address

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.addresses import addressOf, packedAddress


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


class PackedAddressTests(SynchronousTestCase):
    def test_sameAsAddressOf(self):
        """
        The bytes are those of the ipaddress object, for strings of either
        family (IPv4-mapped too) and for objects.
        """
        for text in ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", "::", "255.255.255.255"):
            self.assertEqual(packedAddress(text), addressOf(text).packed)
            self.assertEqual(packedAddress(ip_address(text)), ip_address(text).packed)

    def test_scopedFallsBack(self):
        """
        What inet_pton does not take (an IPv6 zone) goes through
        ipaddress, which judges it.
        """
        self.assertEqual(packedAddress("fe80::1%eth0"), addressOf("fe80::1%eth0").packed)
        self.assertRaises(ValueError, packedAddress, "not-an-address")

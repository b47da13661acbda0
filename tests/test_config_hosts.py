# -*- test-case-name: tests.test_config_hosts -*-
"""
Tests for L{ikedtx.config.hosts}' name resolver: blocking at start-up,
through the reactor's L{IHostnameResolver} afterwards.
"""

from ipaddress import ip_address

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ikedtx.config import hosts, parseConfig


@implementer(IHostnameResolver)
class FakeResolver:
    """
    An L{IHostnameResolver} that answers only when the test says.

    @ivar asked: C{(name, port, addressTypes, transport)} of each request.
    @ivar receivers: the receiver of each request, by name.
    """

    def __init__(self):
        self.asked = []
        self.receivers = {}

    def resolveHostName(self, resolutionReceiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        self.asked.append((hostName, portNumber, addressTypes, transportSemantics))
        self.receivers[hostName] = resolutionReceiver
        resolutionReceiver.resolutionBegan(None)
        return None

    def answer(self, name, *addresses):
        receiver = self.receivers.pop(name)
        for address in addresses:
            kind = IPv6Address if ":" in address else IPv4Address
            receiver.addressResolved(kind("UDP", address, 0))
        receiver.resolutionComplete()


class LaterTests(SynchronousTestCase):
    """
    L{hosts.resolveNamesLater} asks the resolver and waits for it: nothing
    blocks.
    """

    def test_resolve(self):
        """
        Each name is asked once (for UDP, any family); the Deferred fires
        when every answer is complete, with the addresses in the
        resolver's order and an empty list for a name that did not resolve.
        """
        resolver = FakeResolver()
        verifyObject(IHostnameResolver, resolver)
        d = hosts.resolveNamesLater(resolver, ["gw.example", "none.example", "gw.example"])
        self.assertEqual(resolver.asked, [("gw.example", 0, None, "UDP"), ("none.example", 0, None, "UDP")])
        self.assertNoResult(d)
        resolver.answer("gw.example", "192.0.2.1", "2001:db8::1")
        self.assertNoResult(d)
        resolver.answer("none.example")
        self.assertEqual(self.successResultOf(d), {"gw.example": [ip_address("192.0.2.1"), ip_address("2001:db8::1")],
                                                   "none.example": []})

    def test_policyNames(self):
        """
        The names a configuration's policies use as peer or local are the
        ones resolved, each once.
        """
        config = parseConfig('ikev2 "a" esp from 10.0.0.1 to 10.0.0.2 local 127.0.0.1 peer localhost\n'
                             'ikev2 "b" esp from 10.0.0.3 to 10.0.0.4 local localhost peer 127.0.0.2\n')
        self.assertEqual(hosts.policyNames(config), ["localhost"])
        resolver = FakeResolver()
        d = hosts.resolvePolicyNamesLater(config, resolver)
        resolver.answer("localhost", "127.0.0.1")
        self.assertEqual(self.successResultOf(d), {"localhost": [ip_address("127.0.0.1")]})

    def test_nothingToResolve(self):
        """
        No names: the Deferred has fired already.
        """
        config = parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2 peer 192.0.2.9\n')
        self.assertEqual(self.successResultOf(hosts.resolvePolicyNamesLater(config, FakeResolver())), {})


class BlockingTests(SynchronousTestCase):
    """
    L{hosts.lookupName}, for start-up and the parser.
    """

    def test_numeric(self):
        self.assertEqual(hosts.lookupName("192.0.2.5"), [ip_address("192.0.2.5")])
        self.assertEqual(hosts.lookupName("2001:db8::5"), [ip_address("2001:db8::5")])

    def test_unresolvable(self):
        """
        A name that does not resolve gives no address, not an exception.
        """
        self.assertEqual(hosts.lookupName("name.invalid"), [])
        self.assertEqual(hosts.lookupName("bad\0name"), [])

    def test_policyNamesAtStartup(self):
        config = parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2 peer localhost\n')
        resolved = hosts.resolvePolicyNames(config)
        self.assertEqual(list(resolved), ["localhost"])
        self.assertIn(ip_address("127.0.0.1"), resolved["localhost"])

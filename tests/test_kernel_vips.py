"""
Tests for L{ikedtx.kernel.vips} and the shell's handling of the core's
virtual address actions (RFC 7296 2.19: the client puts the address it was
lent on an interface while the IKE SA lives).
"""

from ipaddress import ip_address
from types import SimpleNamespace

from twisted.internet import task
from twisted.internet.defer import fail
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core.actions import AddVirtualAddress, RemoveVirtualAddress
from ikedtx.kernel import vips
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.kernel.interfaces import KernelFlow
from ikedtx.net.shell import CoreRunner

from tests.test_net_shell import FakeCore


class TunKernel(DecoupledKernel):
    """
    A datapath with a TUN device, as the user-space one: it opens the
    device when asked where virtual addresses go.
    """

    name = "userspace"

    def __init__(self):
        DecoupledKernel.__init__(self)
        self.opened = 0

    def virtualAddressInterface(self):
        self.opened += 1
        return "ipsec0"


class InterfaceTests(SynchronousTestCase):
    def test_policyIface(self):
        """
        The policy's C{iface} wins over the datapath's choice.
        """
        kernel = TunKernel()
        self.assertEqual(vips.interfaceFor(kernel, "eth1"), "eth1")
        self.assertEqual(kernel.opened, 0)

    def test_tunDevice(self):
        kernel = TunKernel()
        self.assertEqual(vips.interfaceFor(kernel, None), "ipsec0")
        self.assertEqual(kernel.opened, 1)

    def test_loopbackOtherwise(self):
        self.assertEqual(vips.interfaceFor(object(), None), "lo")

    def test_decoupledRecords(self):
        """
        A decoupled datapath (or a runner that is decoupled) only records.
        """
        self.assertIsInstance(vips.addressesFor(DecoupledKernel(), True), vips.RecordedAddresses)
        self.assertIsInstance(vips.addressesFor(TunKernel(), False), vips.RecordedAddresses)
        self.assertIsInstance(vips.addressesFor(TunKernel(), True), vips.NetlinkAddresses)


class RunnerTests(SynchronousTestCase):
    """
    L{CoreRunner} carries out L{AddVirtualAddress}/L{RemoveVirtualAddress}.
    """

    def setUp(self):
        core = FakeCore()
        core.ikeSAs = {}
        self.runner = CoreRunner(core, TunKernel(), task.Clock())
        self.runner.virtualAddresses = vips.RecordedAddresses()

    def test_addRemove(self):
        address = ip_address("10.88.0.1")
        self.runner.execute([AddVirtualAddress(address, None)])
        self.assertEqual(self.runner.virtualAddresses.added, {(address, "ipsec0")})
        self.runner.execute([RemoveVirtualAddress(address, None)])
        self.assertEqual(self.runner.virtualAddresses.added, set())

    def test_decoupledLeavesInterfaces(self):
        """
        After C{ikectl decouple} nothing goes on an interface.
        """
        self.runner.coupled = False
        self.runner.execute([AddVirtualAddress(ip_address("10.88.0.1"), "lo")])
        self.assertEqual(self.runner.virtualAddresses.added, set())

    def test_decoupleRemovesCoupleRestores(self):
        """
        C{ikectl decouple} takes the virtual addresses off their interfaces
        and C{couple} puts them back.
        """
        address = ip_address("10.88.0.1")
        self.runner.execute([AddVirtualAddress(address, "lo")])
        self.successResultOf(self.runner.decouple())
        self.assertEqual(self.runner.virtualAddresses.added, set())
        self.successResultOf(self.runner.couple())
        self.assertEqual(self.runner.virtualAddresses.added, {(address, "lo")})

    def test_receivedWhileDecoupled(self):
        """
        An address received while decoupled goes on its interface at
        C{couple}; one released while decoupled does not.
        """
        kept, released = ip_address("10.88.0.1"), ip_address("10.88.0.2")
        self.runner.coupled = False
        self.runner.execute([AddVirtualAddress(kept, None), AddVirtualAddress(released, "lo")])
        self.runner.execute([RemoveVirtualAddress(released, "lo")])
        self.successResultOf(self.runner.couple())
        self.assertEqual(self.runner.virtualAddresses.added, {(kept, "ipsec0")})

    def test_restoreFailureLogged(self):
        """
        An address the host refuses at C{couple} is logged; the others go
        on and the datapath is coupled.
        """
        good, bad = ip_address("10.88.0.1"), ip_address("10.88.0.2")
        self.runner.execute([AddVirtualAddress(good, "lo"), AddVirtualAddress(bad, "nosuch0")])
        self.successResultOf(self.runner.decouple())
        refusing = self.runner.virtualAddresses
        add = refusing.add

        def addOrRefuse(address, interface):
            if interface == "nosuch0":
                raise vips.KernelError("no interface nosuch0 for virtual address %s" % (address,))
            add(address, interface)

        refusing.add = addOrRefuse
        self.successResultOf(self.runner.couple())
        self.assertTrue(self.runner.coupled)
        self.assertEqual(refusing.added, {(good, "lo")})
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class Recording(vips.RecordedAddresses):
    """
    A keeper of virtual addresses that notes each change in C{log}.
    """

    def __init__(self, log):
        vips.RecordedAddresses.__init__(self)
        self.log = log

    def add(self, address, interface):
        vips.RecordedAddresses.add(self, address, interface)
        self.log.append(("addAddress", (ip_address(address), interface)))

    def remove(self, address, interface):
        vips.RecordedAddresses.remove(self, address, interface)
        self.log.append(("removeAddress", (ip_address(address), interface)))


class RoutingKernel(DecoupledKernel):
    """
    A datapath that routes an outbound flow as xfrm does, with its local
    host selector as the route's source: it refuses the flow while that
    address is on no interface. Virtual addresses are noted in its log
    with the SAs and flows, in order.

    @ivar addresses: the keeper of virtual addresses (L{Recording}).
    """

    name = "xfrm"

    def __init__(self):
        DecoupledKernel.__init__(self)
        self.addresses = Recording(self.log)

    def addFlow(self, flow):
        source = flow.source.startAddress
        if (flow.direction == "out" and source == flow.source.endAddress
                and not any(address == source for address, _ in self.addresses.added)):
            self.log.append(("refusedFlow", flow))
            return fail(vips.KernelError("no route from %s: the address is on no interface" % (source,)))
        return DecoupledKernel.addFlow(self, flow)


class CoupleOrderTests(SynchronousTestCase):
    """
    C{ikectl decouple} and C{couple} with a road-warrior client's Child SA
    on the virtual address it was lent: the address is on its interface
    whenever a flow whose route takes it as the source is in the datapath.
    """

    VIP = ip_address("10.88.0.1")

    def setUp(self):
        from tests.test_privsep_commands import anSA, selector

        self.kernel = RoutingKernel()
        core = FakeCore()
        self.runner = CoreRunner(core, self.kernel, task.Clock())
        self.runner.virtualAddresses = self.kernel.addresses
        ours, theirs = selector(str(self.VIP)), selector("10.2.0.0", "10.2.0.255")
        self.sas = [anSA(selectors=((ours, theirs),)),
                    anSA(spi=0x87654321, inbound=False, source=ip_address("192.0.2.1"),
                         destination=ip_address("192.0.2.2"), selectors=((ours, theirs),))]
        self.flows = [KernelFlow(ours, theirs, "out", 3, "tunnel", ip_address("192.0.2.1"), ip_address("192.0.2.2"),
                                 7),
                      KernelFlow(theirs, ours, "in", 3, "tunnel", ip_address("192.0.2.2"), ip_address("192.0.2.1"),
                                 7)]
        child = SimpleNamespace(kernelRecords=(self.sas, self.flows))
        core.ikeSAs = {b"spi": SimpleNamespace(children=[child])}
        self.runner.execute([AddVirtualAddress(self.VIP, "lo")])
        self.kernel.log.clear()

    def test_decoupleThenCouple(self):
        """
        Decoupled, the flows leave before the address; coupled again, the
        address is back before the SAs' flows, which the datapath takes.
        """
        address = ("addAddress", (self.VIP, "lo"))
        self.successResultOf(self.runner.decouple())
        self.assertEqual(list(self.kernel.log),
                         [("detachSA", self.sas[0]), ("detachSA", self.sas[1]), ("deleteFlow", self.flows[0]),
                          ("deleteFlow", self.flows[1]), ("removeAddress", (self.VIP, "lo"))])
        self.kernel.log.clear()
        self.successResultOf(self.runner.couple())
        self.assertEqual(list(self.kernel.log),
                         [address, ("addSA", self.sas[0]), ("addSA", self.sas[1]), ("addFlow", self.flows[0]),
                          ("addFlow", self.flows[1])])
        self.assertEqual(self.kernel.flows, self.flows)

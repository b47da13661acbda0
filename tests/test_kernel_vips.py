"""
Tests for L{ikedtx.kernel.vips} and the shell's handling of the core's
virtual address actions (RFC 7296 2.19: the client puts the address it was
lent on an interface while the IKE SA lives).
"""

from ipaddress import ip_address

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core.actions import AddVirtualAddress, RemoveVirtualAddress
from ikedtx.kernel import vips
from ikedtx.kernel.decoupled import DecoupledKernel
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

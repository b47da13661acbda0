"""
Tests for L{ikedtx.kernel.decoupled}: the provider that records what would
be installed (iked.conf "set decouple").
"""

from dataclasses import replace
from ipaddress import ip_address

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.kernel.interfaces import IKernel, KernelError, KernelFlow, KernelSA, KernelSAUsage, KernelSelector
from ikedtx.wire.constants import EncrId, ProtocolId

from tests.corehelpers import DeterministicRandom


def sa(spi, inbound=True):
    return KernelSA(spi=spi, protocol=ProtocolId.ESP, inbound=inbound, source=ip_address("192.0.2.2"),
                    destination=ip_address("192.0.2.1"), mode="tunnel", encryption=(EncrId.AES_GCM_16, 128),
                    encryptionKey=b"k" * 20, integrity=None, integrityKey=b"")


class DecoupledKernelTests(SynchronousTestCase):
    def test_interface(self):
        self.assertTrue(verifyObject(IKernel, DecoupledKernel()))

    def test_allocateSpi(self):
        """
        SPIs are above the IANA-reserved 0-255 and never handed out twice.
        """
        kernel = DecoupledKernel(DeterministicRandom(b"spi"))
        spis = [self.successResultOf(kernel.allocateSpi(ProtocolId.ESP, "192.0.2.2", "192.0.2.1")) for _ in range(500)]
        self.assertEqual(len(set(spis)), 500)
        self.assertTrue(all(255 < s < 2 ** 32 for s in spis))

    def test_releaseSpi(self):
        """
        An SPI given back with releaseSpi may be allocated again; one still
        reserved is not.
        """
        values = iter([0x1234, 0x1234, 0x5678, 0x1234])
        kernel = DecoupledKernel(lambda n: next(values).to_bytes(4, "big"))
        self.assertTrue(kernel.spiBlocks)
        self.assertEqual(self.successResultOf(kernel.allocateSpi(ProtocolId.ESP, None, None)), 0x1234)
        self.assertEqual(self.successResultOf(kernel.allocateSpi(ProtocolId.ESP, None, None)), 0x5678)
        kernel.releaseSpi(ProtocolId.ESP, 0x1234)
        self.assertEqual(self.successResultOf(kernel.allocateSpi(ProtocolId.ESP, None, None)), 0x1234)

    def test_records(self):
        """
        SAs and flows are recorded, removed, and flushed; every call is
        logged in order.
        """
        kernel = DecoupledKernel()
        selector = KernelSelector(ip_address("10.1.0.0"), ip_address("10.1.0.255"))
        flow = KernelFlow(selector, selector, "out", ProtocolId.ESP, "tunnel", ip_address("192.0.2.1"),
                          ip_address("192.0.2.2"))
        self.successResultOf(kernel.addSA(sa(0x1000)))
        self.successResultOf(kernel.addFlow(flow))
        self.assertEqual(list(kernel.sas.values()), [sa(0x1000)])
        self.assertEqual(kernel.flows, [flow])
        self.successResultOf(kernel.deleteSA(sa(0x1000)))
        self.successResultOf(kernel.deleteFlow(flow))
        self.assertEqual((kernel.sas, kernel.flows), ({}, []))
        self.successResultOf(kernel.addSA(sa(0x2000)))
        self.successResultOf(kernel.flush())
        self.assertEqual(kernel.sas, {})
        self.assertEqual([op for op, _ in kernel.log], ["addSA", "addFlow", "deleteSA", "deleteFlow", "addSA", "flush"])

    def test_updateAndQuery(self):
        """
        An installed SA can be replaced (MOBIKE moves its addresses) and
        queried (a recording datapath counts nothing); both fail with a
        KernelError for an SA that is not installed.
        """
        kernel = DecoupledKernel()
        old = sa(0x1000)
        new = replace(old, destination=ip_address("198.51.100.1"))
        self.successResultOf(kernel.addSA(old))
        self.successResultOf(kernel.updateSA(old, new))
        self.assertEqual(list(kernel.sas.values()), [new])
        self.assertEqual(self.successResultOf(kernel.querySA(new)), KernelSAUsage(0, 0))
        self.failureResultOf(kernel.querySA(old), KernelError)
        self.failureResultOf(kernel.updateSA(old, new), KernelError)

    def test_eventReceiver(self):
        """
        The receiver given to setEventReceiver is kept for the datapath's
        events.
        """
        kernel = DecoupledKernel()
        receiver = object()
        kernel.setEventReceiver(receiver)
        self.assertIs(kernel.events, receiver)

    def test_keysNotInRepr(self):
        """
        A KernelSA's repr does not show its keys.
        """
        self.assertNotIn("kkkk", repr(sa(1)))

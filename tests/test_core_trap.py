"""
Tests for L{ikedtx.core.trap}: the trap flows of the policies (on-demand
tunnels, as iked's C{type require} flows and strongSwan's C{trap}), the
acquire they lead to, and how a Child SA's flow takes their place in the
xfrm and user-space datapaths.
"""

from ipaddress import ip_address

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import parseConfig
from ikedtx.core.actions import SendDatagram
from ikedtx.core.engine import IKECore
from ikedtx.core.trap import TRAP_REQID_BASE, trapFlows
from ikedtx.kernel import xfrm
from ikedtx.kernel import xfrmmsg as m
from ikedtx.kernel.interfaces import KernelFlow, KernelSelector
from ikedtx.kernel.userspace import UserspaceKernel
from ikedtx.wire.constants import ProtocolId

from tests.corehelpers import DeterministicRandom
from tests.test_kernel_userspace import FakeRoutes, FakeTun, udp
from tests.test_kernel_xfrm import RecordingChannel

A = ip_address


def core(text, local="192.0.2.1"):
    return IKECore(parseConfig(text), now=task.Clock().seconds, randomBytes=DeterministicRandom(b"trap"),
                   localAddressFor=lambda peer: local)


class TrapFlowTests(SynchronousTestCase):
    def test_flows(self):
        """
        One outbound flow per pair of selectors of each policy with a peer,
        with the policy's protocol and mode, from the local address to the
        peer, and a reqid of the trap range per policy.
        """
        c = core('ikev2 "t" passive esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 psk "x"\n'
                 'ikev2 "h" active transport ah proto tcp from 192.0.2.1 to 192.0.2.3 peer 192.0.2.3 psk "x"\n'
                 'ikev2 "any" passive esp from 10.1.0.0/24 to 10.3.0.0/24 psk "x"\n')
        self.assertEqual(trapFlows(c), [
            KernelFlow(KernelSelector(A("10.1.0.0"), A("10.1.0.255")), KernelSelector(A("10.2.0.0"), A("10.2.0.255")),
                       "out", ProtocolId.ESP, "tunnel", A("192.0.2.1"), A("192.0.2.2"), TRAP_REQID_BASE),
            KernelFlow(KernelSelector(A("192.0.2.1"), A("192.0.2.1"), 6), KernelSelector(A("192.0.2.3"),
                       A("192.0.2.3"), 6), "out", ProtocolId.AH, "transport", A("192.0.2.1"), A("192.0.2.3"),
                       TRAP_REQID_BASE + 1),
        ])

    def test_acquireOfTrap(self):
        """
        An acquire with a trap's reqid (no Child SA has it) negotiates the
        policy whose selectors hold the packet's addresses.
        """
        c = core('ikev2 "t" passive esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 psk "x"\n')
        (trap,) = trapFlows(c)
        actions = c.acquire(trap.reqid, KernelSelector(A("10.1.0.7"), A("10.1.0.7"), 1),
                            KernelSelector(A("10.2.0.9"), A("10.2.0.9"), 1))
        (sent,) = [a for a in actions if isinstance(a, SendDatagram)]
        self.assertEqual(sent.remote, ("192.0.2.2", 500))
        (ikeSA,) = c.ikeSAs.values()
        self.assertEqual(ikeSA.policy.name, "t")


def trap(reqid=TRAP_REQID_BASE):
    return KernelFlow(KernelSelector(A("10.1.0.0"), A("10.1.0.255")), KernelSelector(A("10.2.0.0"), A("10.2.0.255")),
                      "out", ProtocolId.ESP, "tunnel", A("192.0.2.1"), A("192.0.2.2"), reqid)


class TrapInDatapathTests(SynchronousTestCase):
    def test_xfrm(self):
        """
        XFRM: the Child SA's flow (same selector) replaces the trap's
        template with its own reqid; when it goes, the trap's is back.
        """
        channel = RecordingChannel()
        kernel = xfrm.XfrmKernel(channel=channel, cleanup=False)
        self.successResultOf(kernel.addFlow(trap()))
        self.successResultOf(kernel.addFlow(trap(reqid=5)))
        self.successResultOf(kernel.deleteFlow(trap(reqid=5)))
        reqids = [msg.get_attr("XFRMA_TMPL")["templates"][0]["reqid"] for t, _, msg in channel.requests
                  if t == m.XFRM_MSG_UPDPOLICY]
        self.assertEqual(reqids, [xfrm.kernelReqid(TRAP_REQID_BASE), xfrm.kernelReqid(5),
                                  xfrm.kernelReqid(TRAP_REQID_BASE)])
        self.assertNotIn(m.XFRM_MSG_DELPOLICY, channel.types())

    def test_userspace(self):
        """
        User space: a packet on the trap alone is an acquire; once a Child
        SA's flow (newer) is there, the packet goes by that flow's SA.
        """
        class Receiver:
            acquires = []

            def acquire(self, reqid, source, destination):
                self.acquires.append(reqid)

        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=FakeRoutes(["10.1.0.1"]),
                                 rawEsp=False)
        receiver = Receiver()
        kernel.setEventReceiver(receiver)
        self.successResultOf(kernel.addFlow(trap()))
        kernel.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(receiver.acquires, [TRAP_REQID_BASE])
        self.successResultOf(kernel.addFlow(trap(reqid=5)))
        kernel.reactor.advance(10)
        kernel.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(receiver.acquires, [TRAP_REQID_BASE, 5])

"""
The datapath providers' events reach the core through the shell (issue 8):
an acquire from the XFRM multicast group or from the user-space datapath
starts a negotiation of the policy whose flow the packet matched
(on-demand); a netlink refusal while installing is logged with the SA and
the kernel's reason, the Child SA is deleted with the peer and the daemon
goes on. Real L{CoreRunner}s and cores over L{tests.test_net_shell.MemoryUDP}.
"""

import errno
import socket
from ipaddress import ip_address

from pyroute2.netlink.exceptions import NetlinkError
from twisted.internet import task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core.errors import NegotiationFailed
from ikedtx.core.states import IKEState
from ikedtx.kernel import xfrm
from ikedtx.kernel import xfrmmsg as m
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.kernel.interfaces import KernelFlow, KernelSelector
from ikedtx.kernel.userspace import UserspaceKernel
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol
from ikedtx.wire.constants import ProtocolId

from tests.test_kernel_userspace import FakeRoutes, FakeTun, udp
from tests.test_kernel_xfrm import RecordingChannel
from tests.test_net_shell import MemoryUDP

A = ip_address


def allocSpiAnswer(spi):
    msg = m.usersa_info()
    msg["id_spi"] = spi
    return [msg]


class EventsTestCase(SynchronousTestCase):
    def startPair(self, kernelA):
        from ikedtx.core.engine import IKECore
        from tests.corehelpers import DeterministicRandom
        from tests.test_core_exchanges import A_ADDR, B_ADDR, initiatorConfig, responderConfig

        self.clock = task.Clock()
        self.udp = MemoryUDP(self.clock)
        self.runners = {}
        self.peer = B_ADDR
        for address, config, kernel in ((A_ADDR, initiatorConfig(), kernelA),
                                        (B_ADDR, responderConfig(), DecoupledKernel())):
            core = IKECore(config, now=self.clock.seconds, randomBytes=DeterministicRandom(address.encode()),
                           localAddressFor=lambda peer, address=address: address)
            runner = CoreRunner(core, kernel, self.clock)
            for number, natt in ((500, False), (4500, True)):
                runner.addPort(self.udp.port(address, number, IKEDatagramProtocol(runner, natt)), natt)
            self.runners[address] = runner
        self.a, self.b = self.runners[A_ADDR], self.runners[B_ADDR]

    def advance(self, seconds):
        for _ in range(int(seconds * 1000)):
            self.clock.advance(0.001)

    def assertNegotiatedOnDemand(self):
        """
        The acquire made the initiator send IKE_SA_INIT to the peer, and
        the IKE SA of policy "ab" came up with its Child SA on both sides.
        """
        self.assertEqual(self.udp.sent[0][2], (self.peer, 500))
        self.advance(0.2)
        (ikeSA,) = self.a.core.ikeSAs.values()
        self.assertEqual((ikeSA.policy.name, ikeSA.state), ("ab", IKEState.VALID))
        self.assertEqual(len(ikeSA.children), 1)
        self.assertEqual(len(self.b.kernel.sas), 2)


class XfrmAcquireTests(EventsTestCase):
    def test_acquireStartsNegotiation(self):
        """
        An XFRM_MSG_ACQUIRE for a flow of policy "ab" (a reqid the core does
        not know: a flow without Child SA) starts the negotiation of "ab";
        a second acquire while it is on its way starts nothing more.
        """
        channel = RecordingChannel({m.XFRM_MSG_ALLOCSPI: allocSpiAnswer(0xC0FFEE)})
        kernel = xfrm.XfrmKernel(channel=channel, cleanup=False)
        self.startPair(kernel)
        self.assertIs(kernel.events, self.a)

        def acquire():
            msg = m.user_acquire()
            msg["header"]["type"] = m.XFRM_MSG_ACQUIRE
            msg["sel_family"] = socket.AF_INET
            msg["sel_saddr"] = A("10.1.0.5").packed + b"\0" * 12
            msg["sel_daddr"] = A("10.2.0.9").packed + b"\0" * 12
            msg["sel_proto"] = 1
            msg["attrs"] = [("XFRMA_TMPL", {"templates": [{"reqid": xfrm.kernelReqid(0xFFF0)}]})]
            msg.encode()
            decoded = m.user_acquire(bytes(msg.data))
            decoded.decode()
            kernel.messageReceived(decoded)

        acquire()
        acquire()
        self.assertEqual(len(self.udp.sent), 1)
        self.assertNegotiatedOnDemand()
        self.assertIn(m.XFRM_MSG_NEWSA, channel.types())


class UserspaceAcquireTests(EventsTestCase):
    def test_acquireStartsNegotiation(self):
        """
        A packet from the TUN device on a flow without SA: the user-space
        datapath's acquire starts the negotiation of the policy.
        """
        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=FakeRoutes(["10.1.0.1"]),
                                 rawEsp=False)
        self.startPair(kernel)
        trap = KernelFlow(KernelSelector(A("10.1.0.0"), A("10.1.0.255")),
                          KernelSelector(A("10.2.0.0"), A("10.2.0.255")), "out", ProtocolId.ESP, "tunnel",
                          A("127.0.0.1"), A(self.peer), 0xFFF0)
        self.successResultOf(kernel.addFlow(trap))
        kernel.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertNegotiatedOnDemand()


class InstallFailureTests(EventsTestCase):
    def test_reportedDeletedAndRunning(self):
        """
        The kernel refuses the Child SA's SA (an algorithm it lacks:
        ENOENT): the shell logs the SA and the kernel's reason, the
        initiate fails, the peer deletes its half (INFORMATIONAL Delete,
        RFC 7296 1.4.1), and both IKE SAs stay up.
        """
        channel = RecordingChannel({m.XFRM_MSG_ALLOCSPI: allocSpiAnswer(0xC0FFEE),
                                    m.XFRM_MSG_NEWSA: NetlinkError(errno.ENOENT)})
        kernel = xfrm.XfrmKernel(channel=channel, cleanup=False)
        self.startPair(kernel)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        d = self.a.initiate("ab")
        self.advance(0.2)
        failure = self.failureResultOf(d, NegotiationFailed)
        self.assertIn("No such file or directory (ENOENT)", str(failure.value))
        (logged,) = [e for e in events if e.get("log_format", "").startswith("installing Child SA")]
        text = str(logged["error"])
        self.assertRegex(text, r"^install of ESP SA [0-9a-f]{8} [0-9.]+ -> [0-9.]+: No such file or directory "
                               r"\(ENOENT\)$")
        self.assertEqual(self.b.kernel.sas, {})
        self.assertEqual([sa.children for sa in self.b.core.ikeSAs.values()], [[]])
        self.assertEqual([sa.state for sa in self.a.core.ikeSAs.values()] +
                         [sa.state for sa in self.b.core.ikeSAs.values()], [IKEState.VALID, IKEState.VALID])
        self.assertEqual(kernel.sas, {})
        self.assertFalse(self.a.stopped)

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

    def test_xfrmTrapAfterChild(self):
        """
        A trap installed after a Child SA's flow for its selector (ikectl
        couple, a reload) leaves the Child SA's template in the kernel and
        takes over only when that flow goes.
        """
        channel = RecordingChannel()
        kernel = xfrm.XfrmKernel(channel=channel, cleanup=False)
        self.successResultOf(kernel.addFlow(trap(reqid=5)))
        self.successResultOf(kernel.addFlow(trap()))
        self.successResultOf(kernel.addFlow(trap(reqid=TRAP_REQID_BASE + 1)))
        self.successResultOf(kernel.deleteFlow(trap(reqid=5)))
        self.successResultOf(kernel.deleteFlow(trap(reqid=TRAP_REQID_BASE + 1)))
        reqids = [msg.get_attr("XFRMA_TMPL")["templates"][0]["reqid"] for t, _, msg in channel.requests
                  if t == m.XFRM_MSG_UPDPOLICY]
        self.assertEqual(reqids, [xfrm.kernelReqid(5), xfrm.kernelReqid(TRAP_REQID_BASE + 1),
                                  xfrm.kernelReqid(TRAP_REQID_BASE)])

    def test_userspaceTrapAfterChild(self):
        """
        User space: a trap installed after a Child SA's flow does not take
        its packets.
        """
        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=FakeRoutes(["10.1.0.1"]),
                                 rawEsp=False)
        acquires = []
        kernel.setEventReceiver(type("Receiver", (), {"acquire": lambda self, reqid, s, d: acquires.append(reqid)})())
        self.successResultOf(kernel.addFlow(trap(reqid=5)))
        self.successResultOf(kernel.addFlow(trap()))
        kernel.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(acquires, [5])
        self.successResultOf(kernel.deleteFlow(trap(reqid=5)))
        kernel.reactor.advance(10)
        kernel.packetFromTun(udp("10.1.0.1", "10.2.0.1"))
        self.assertEqual(acquires, [5, TRAP_REQID_BASE])

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


class TrapRefreshTests(SynchronousTestCase):
    """
    L{CoreRunner.reload} (SIGHUP, ikectl reload) brings the trap flows in
    the datapath in line with the new policies.
    """

    def setUp(self):
        from ikedtx.kernel.decoupled import DecoupledKernel
        from ikedtx.net.shell import CoreRunner

        self.core = core('ikev2 "t" passive esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 psk "x"\n')
        self.kernel = DecoupledKernel()
        self.runner = CoreRunner(self.core, self.kernel, task.Clock())
        self.successResultOf(self.runner.startTraps())

    def test_newPolicy(self):
        """
        A policy the reload adds gets its trap; the one kept keeps its own.
        """
        (kept,) = self.kernel.flows
        config = parseConfig('ikev2 "t" passive esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 psk "x"\n'
                             'ikev2 "u" passive esp from 10.1.0.0/24 to 10.3.0.0/24 peer 192.0.2.3 psk "x"\n')
        self.successResultOf(self.runner.reload(config, {}))
        self.assertEqual(self.kernel.flows, [kept] + [f for f in trapFlows(self.core) if f != kept])
        self.assertEqual([f.peerAddress for f in self.kernel.flows], [A("192.0.2.2"), A("192.0.2.3")])
        self.assertNotIn("deleteFlow", [operation for operation, _ in self.kernel.log])

    def test_removedPolicy(self):
        """
        The trap of a policy the reload removed goes.
        """
        config = parseConfig('ikev2 "u" passive esp from 10.1.0.0/24 to 10.3.0.0/24 peer 192.0.2.3 psk "x"\n')
        self.successResultOf(self.runner.reload(config, {}))
        (flow,) = self.kernel.flows
        self.assertEqual((flow.peerAddress, flow.destination.startAddress), (A("192.0.2.3"), A("10.3.0.0")))

    def test_changedPolicy(self):
        """
        A policy whose selectors changed has the new trap in place before the
        old one goes (no moment without a trap).
        """
        config = parseConfig('ikev2 "t" passive esp from 10.1.0.0/24 to 10.4.0.0/24 peer 192.0.2.2 psk "x"\n')
        self.successResultOf(self.runner.reload(config, {}))
        operations = [(operation, flow.destination.startAddress) for operation, flow in list(self.kernel.log)[-2:]]
        self.assertEqual(operations, [("addFlow", A("10.4.0.0")), ("deleteFlow", A("10.2.0.0"))])
        self.assertEqual([f.destination.startAddress for f in self.kernel.flows], [A("10.4.0.0")])

    def test_noTrapsNoChange(self):
        """
        A runner that keeps no traps (the decoupled datapath of C{set
        decouple}) installs none on reload.
        """
        from ikedtx.kernel.decoupled import DecoupledKernel
        from ikedtx.net.shell import CoreRunner

        kernel = DecoupledKernel()
        runner = CoreRunner(self.core, kernel, task.Clock())
        self.successResultOf(runner.reload(self.core.config, {}))
        self.assertEqual(kernel.flows, [])

    def test_resetPolicy(self):
        """
        ikectl reset policy leaves no trap behind.
        """
        from types import SimpleNamespace

        from ikedtx.control.operations import Operations

        service = SimpleNamespace(core=self.core, runner=self.runner, config=self.core.config, options={})
        Operations(service)._reset_policy(None)
        self.assertEqual(self.kernel.flows, [])


class TrapFollowsMobikeTests(SynchronousTestCase):
    """
    MOBIKE moves an IKE SA whose policy has a trap (issue 8/9): the trap
    follows the IKE SA to its new endpoints, and so does its route, so the
    trap that is back when the Child SA goes has them (the next acquire's
    negotiation and the route table 220 keeps use them).
    """

    def setUp(self):
        from ikedtx.net.shell import CoreRunner
        from tests.corehelpers import Host, Network
        from tests.test_core_exchanges import A_ADDR, B_ADDR, initiatorConfig, responderConfig
        from tests.test_kernel_routes import FakeTunnelRoutes

        self.network = Network()
        self.a = Host(self.network, A_ADDR, initiatorConfig())
        self.b = Host(self.network, B_ADDR, responderConfig())
        self.routes = FakeTunnelRoutes(addresses=("10.1.0.1",))
        from tests.test_kernel_xfrm import decoded

        replay = m.usersa_info()
        replay["attrs"] = [("XFRMA_REPLAY_VAL", {"oseq": 1, "seq": 1, "bitmap": 0})]
        self.channel = RecordingChannel({m.XFRM_MSG_GETSA: [decoded(replay)]})
        self.kernel = xfrm.XfrmKernel(channel=self.channel, cleanup=False, routes=self.routes)
        self.runner = CoreRunner(self.a.core, self.kernel, task.Clock())
        host = self.a
        ownKinds = ("InstallChildSA", "UpdateChildSA", "RemoveChildSA", "IKESAMoved")

        def execute(actions):
            # The runner drives the xfrm datapath, the test host the rest.
            for action in actions:
                if type(action).__name__ in ownKinds:
                    CoreRunner.execute(self.runner, [action])
                else:
                    Host.execute(host, [action])

        self.a.execute = self.runner.execute = execute
        self.successResultOf(self.runner.startTraps())
        self.a.initiate("ab")
        self.network.pump()
        (self.ikeSA,) = self.a.ikeSAs
        self.assertEqual(len(self.ikeSA.children), 1)

    def outboundClaims(self):
        (claims,) = [c for c in self.kernel.policies.values() if c[-1][0].direction == "out"]
        return [flow for flow, _ in claims]

    def lastTemplate(self):
        (msg,) = [msg for t, _, msg in self.channel.requests if t == m.XFRM_MSG_UPDPOLICY
                  and msg["dir"] == m.XFRM_POLICY_OUT][-1:]
        (t,) = msg.get_attr("XFRMA_TMPL")["templates"]
        return (A(bytes(t["saddr"][:4])), A(bytes(t["id_daddr"][:4])), t["reqid"])

    def moveA(self):
        from tests.test_core_exchanges import A_ADDR

        self.a.address = self.MOVED
        self.network.hosts[self.MOVED] = self.a
        self.a.execute(self.a.core.addressChanged(self.MOVED, True))
        self.a.execute(self.a.core.addressChanged(A_ADDR, False))
        self.network.pump()
        self.assertEqual(self.ikeSA.local[0], self.MOVED)

    def deleteChild(self):
        (child,) = self.ikeSA.children
        self.a.execute(self.a.core.deleteChildSA(self.ikeSA, child)[1])
        self.network.pump()
        self.assertEqual(self.ikeSA.children, [])

    MOVED = "192.0.2.99"

    def test_trapAfterChildSAOfMovedIKESA(self):
        """
        The IKE SA moves to a new local address (RFC 4555 3.8), then its
        Child SA is deleted: the trap back in the kernel has the new local
        address in its template, and the route stays the one made for the
        moved tunnel (not made again towards the old endpoints).
        """
        self.moveA()
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")] * 2)
        self.deleteChild()
        self.assertTrapMoved()
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")] * 2)

    def test_trapOnlyIKESAMoves(self):
        """
        An IKE SA whose Child SA went (only the trap holds the selector)
        moves: the trap follows it, and the route is made again from where
        the host now is (the kernel may have dropped it with the old
        address).
        """
        self.deleteChild()
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")])
        self.moveA()
        self.assertTrapMoved()
        self.assertEqual(self.routes.log, [("add", "10.2.0.0/24", "10.1.0.1", "192.0.2.2")] * 2)

    def assertTrapMoved(self):
        (trap,) = self.outboundClaims()
        self.assertEqual((trap.reqid, trap.localAddress, trap.peerAddress),
                         (TRAP_REQID_BASE, A(self.MOVED), A("192.0.2.2")))
        self.assertEqual(self.lastTemplate(), (A(self.MOVED), A("192.0.2.2"), xfrm.kernelReqid(TRAP_REQID_BASE)))
        self.assertEqual(self.runner.traps, [trap])


class TrapFollowsHostAddressTests(SynchronousTestCase):
    """
    The host's addresses change (the address monitor's events,
    L{CoreRunner.addressChanged}) while a policy has no IKE SA: its trap
    takes the local address the host now reaches the peer from, so that
    the negotiation its next acquire starts, and the tunnel template, use
    an address the host has (issue 8).
    """

    def setUp(self):
        from ikedtx.kernel.decoupled import DecoupledKernel
        from ikedtx.net.shell import CoreRunner

        self.source = {"192.0.2.2": "192.0.2.1"}
        self.core = IKECore(
            parseConfig('ikev2 "t" passive esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 psk "x"\n'),
            now=task.Clock().seconds, randomBytes=DeterministicRandom(b"trap"), localAddressFor=self.sourceFor)
        self.kernel = DecoupledKernel()
        self.runner = CoreRunner(self.core, self.kernel, task.Clock())
        self.successResultOf(self.runner.startTraps())
        (self.before,) = self.kernel.flows

    def sourceFor(self, peer):
        if peer not in self.source:
            raise OSError("network unreachable")
        return self.source[peer]

    def test_newAddress(self):
        """
        The host's address changes (the new one added, the old one removed):
        the trap is replaced by one from the new address, the new one in
        place before the old one goes.
        """
        self.source["192.0.2.2"] = "192.0.2.99"
        self.runner.addressChanged(A("192.0.2.99"), True)
        self.runner.addressChanged(A("192.0.2.1"), False)
        (trap,) = self.kernel.flows
        self.assertEqual((trap.reqid, trap.localAddress, trap.peerAddress),
                         (TRAP_REQID_BASE, A("192.0.2.99"), A("192.0.2.2")))
        self.assertEqual(self.runner.traps, [trap])
        operations = [(operation, flow.localAddress) for operation, flow in list(self.kernel.log)
                      if operation in ("addFlow", "deleteFlow")]
        self.assertEqual(operations, [("addFlow", A("192.0.2.1")), ("addFlow", A("192.0.2.99")),
                                      ("deleteFlow", A("192.0.2.1"))])

    def test_acquireAfterMove(self):
        """
        The acquire of the moved trap negotiates from the new address.
        """
        self.source["192.0.2.2"] = "192.0.2.99"
        self.runner.addressChanged(A("192.0.2.99"), True)
        sent = []
        self.runner.execute = sent.extend
        self.runner.acquire(TRAP_REQID_BASE, KernelSelector(A("10.1.0.7"), A("10.1.0.7"), 1),
                            KernelSelector(A("10.2.0.9"), A("10.2.0.9"), 1))
        (datagram,) = [a for a in sent if isinstance(a, SendDatagram)]
        self.assertEqual((datagram.local[0], datagram.remote), ("192.0.2.99", ("192.0.2.2", 500)))

    def test_noAddressKeepsTrap(self):
        """
        The host loses its last address towards the peer: the trap stays
        (nothing goes out in clear when a route comes back before the
        address does), and moves when an address is back.
        """
        del self.source["192.0.2.2"]
        self.runner.addressChanged(A("192.0.2.1"), False)
        self.assertEqual(self.kernel.flows, [self.before])
        self.assertEqual(self.runner.traps, [self.before])
        self.source["192.0.2.2"] = "192.0.2.99"
        self.runner.addressChanged(A("192.0.2.99"), True)
        (trap,) = self.kernel.flows
        self.assertEqual(trap.localAddress, A("192.0.2.99"))

    def test_sameAddress(self):
        """
        An address change that leaves the way to the peer as it was touches
        no trap.
        """
        self.runner.addressChanged(A("192.0.2.50"), True)
        self.assertEqual(self.kernel.flows, [self.before])
        self.assertEqual([operation for operation, _ in self.kernel.log if operation.endswith("Flow")], ["addFlow"])

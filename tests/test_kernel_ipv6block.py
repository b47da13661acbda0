"""
Tests for the IPv6 leak block (iked's default, lifted by C{-6}) in the
three datapaths, in memory: the XFRM policies the xfrm and userspace
providers ask for (through a recording channel), how negotiated IPv6 flows
override them, and their removal. The VM run (L{tests.test_kernel_vm_daemon})
shows the block stopping real IPv6 pings.
"""

import socket
from ipaddress import ip_address

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.kernel import xfrm
from ikedtx.kernel import xfrmmsg as m
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.kernel.interfaces import KernelSelector
from ikedtx.kernel.userspace import UserspaceKernel

from tests.test_kernel_userspace import FakeRoutes, FakeTun
from tests.test_kernel_xfrm import RecordingChannel, decoded, flow

A = ip_address


def flow6(direction="out", **kw):
    base = dict(source=KernelSelector(A("fd01::"), A("fd01::ffff")),
                destination=KernelSelector(A("fd02::"), A("fd02::ffff")), direction=direction,
                localAddress=A("2001:db8::1"), peerAddress=A("2001:db8::2"))
    base.update(kw)
    return flow(**base)


def allOf6(direction="out"):
    return flow6(direction, source=KernelSelector(A("::"), A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
                 destination=KernelSelector(A("::"), A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))


def policies(channel, msgType):
    return [msg for t, _, msg in channel.requests if t == msgType]


class BlockMessagesTests(SynchronousTestCase):
    def test_messages(self):
        """
        ::/0 is blocked in, out and forwarded at a priority every
        negotiated flow beats (lower number wins in XFRM); neighbour
        discovery (ICMPv6 133-137, RFC 4861) is allowed in and out just
        above the block, so that on-link peers and routers stay reachable.
        """
        messages = xfrm.ipv6BlockMessages()
        blocks = [msg for _, msg in messages if msg["action"] == m.XFRM_POLICY_BLOCK]
        passes = [msg for _, msg in messages if msg["action"] == m.XFRM_POLICY_ALLOW]
        self.assertEqual(sorted(msg["dir"] for msg in blocks),
                         [m.XFRM_POLICY_IN, m.XFRM_POLICY_OUT, m.XFRM_POLICY_FWD])
        for msg in blocks:
            self.assertEqual((msg["sel_family"], msg["sel_prefixlen_s"], msg["sel_prefixlen_d"], msg["sel_proto"],
                              msg["priority"]), (socket.AF_INET6, 0, 0, 0, xfrm.BLOCK_PRIORITY))
        nd = [msg for msg in passes if msg["sel_proto"] == 58]
        self.assertEqual(sorted((msg["sel_sport"], msg["dir"]) for msg in nd),
                         sorted((t, d) for t in range(133, 138) for d in (m.XFRM_POLICY_IN, m.XFRM_POLICY_OUT)))
        for msg in nd:
            self.assertEqual((msg["sel_sport_mask"], msg["priority"]), (0xFFFF, xfrm.PASS_PRIORITY))
        # Loopback (::1 to ::1) passes both ways: it never leaves the host.
        loopback = [msg for msg in passes if msg["sel_proto"] == 0]
        self.assertEqual(sorted(msg["dir"] for msg in loopback), [m.XFRM_POLICY_IN, m.XFRM_POLICY_OUT])
        for msg in loopback:
            self.assertEqual((msg["sel_saddr"], msg["sel_prefixlen_s"], msg["sel_daddr"], msg["sel_prefixlen_d"],
                              msg["priority"]), (A("::1").packed, 128, A("::1").packed, 128, xfrm.PASS_PRIORITY))
        self.assertLess(xfrm.PASS_PRIORITY, xfrm.BLOCK_PRIORITY)
        for _, msg in messages:
            self.assertIsNone(decoded(msg).get_attr("XFRMA_TMPL"))
        # The least specific negotiated IPv6 flow still wins over both.
        for _, msg in xfrm.policyMessages(allOf6()):
            self.assertLess(msg["priority"], xfrm.PASS_PRIORITY)


class XfrmBlockTests(SynchronousTestCase):
    def setUp(self):
        self.channel = RecordingChannel()
        self.kernel = xfrm.XfrmKernel(channel=self.channel, cleanup=False)

    def test_blockAndFlush(self):
        """
        blockIPv6 installs the block; flush removes every one of its
        policies.
        """
        self.successResultOf(self.kernel.blockIPv6())
        keys = [key for key, _ in xfrm.ipv6BlockMessages()]
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_UPDPOLICY)), len(keys))
        self.channel.requests.clear()
        self.successResultOf(self.kernel.flush())
        deleted = policies(self.channel, m.XFRM_MSG_DELPOLICY)
        self.assertEqual(sorted((d["dir"], d["sel_proto"], d["sel_sport"]) for d in deleted),
                         sorted((msg["dir"], msg["sel_proto"], msg["sel_sport"]) for _, msg in xfrm.ipv6BlockMessages()))
        self.assertEqual(self.kernel.blocks, {})

    def test_unblock(self):
        """
        unblockIPv6 (ikectl decouple) removes every block policy but the one
        whose selector a ::/0 flow holds, which stays the flow's; a later
        blockIPv6 (couple) puts them back.
        """
        self.successResultOf(self.kernel.blockIPv6())
        self.successResultOf(self.kernel.addFlow(allOf6()))
        self.channel.requests.clear()
        self.successResultOf(self.kernel.unblockIPv6())
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_DELPOLICY)), len(xfrm.ipv6BlockMessages()) - 1)
        self.assertEqual(policies(self.channel, m.XFRM_MSG_UPDPOLICY), [])
        self.channel.requests.clear()
        self.successResultOf(self.kernel.deleteFlow(allOf6()))
        # No block to come back: the flow's policy is deleted.
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_DELPOLICY)), 1)
        self.channel.requests.clear()
        self.successResultOf(self.kernel.blockIPv6())
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_UPDPOLICY)), len(xfrm.ipv6BlockMessages()))

    def test_flowForAllOfIPv6(self):
        """
        A negotiated flow with the block's own selector (::/0 both ways)
        takes its place in the kernel (XFRM keys policies by selector and
        direction); when the flow goes, the block comes back instead of
        nothing.
        """
        self.successResultOf(self.kernel.blockIPv6())
        self.successResultOf(self.kernel.addFlow(allOf6()))
        self.channel.requests.clear()
        self.successResultOf(self.kernel.deleteFlow(allOf6()))
        self.assertEqual(policies(self.channel, m.XFRM_MSG_DELPOLICY), [])
        (restored,) = policies(self.channel, m.XFRM_MSG_UPDPOLICY)
        self.assertEqual((restored["action"], restored["dir"], restored["priority"]),
                         (m.XFRM_POLICY_BLOCK, m.XFRM_POLICY_OUT, xfrm.BLOCK_PRIORITY))

    def test_flowBeforeBlock(self):
        """
        A ::/0 flow installed before the block keeps its place; the block
        policy for that selector goes in when the flow goes.
        """
        self.successResultOf(self.kernel.addFlow(allOf6()))
        self.channel.requests.clear()
        self.successResultOf(self.kernel.blockIPv6())
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_UPDPOLICY)), len(xfrm.ipv6BlockMessages()) - 1)

    def test_leftovers(self):
        """
        The block of a crashed ikedtx is recognised (IPv6, no template,
        ::/0, the block's priorities) and removed at start; another
        template-less policy stays.
        """
        ours = decoded(xfrm.ipv6BlockMessages()[0][1])
        foreign = m.userpolicy_info()
        foreign["sel_family"] = socket.AF_INET6
        foreign["priority"] = 100
        foreign["action"] = m.XFRM_POLICY_BLOCK
        channel = RecordingChannel({m.XFRM_MSG_GETPOLICY: [ours, decoded(foreign)]})
        kernel = xfrm.XfrmKernel(channel=channel, cleanup=False)
        self.assertEqual(kernel.removeLeftovers(), 1)
        (deleted,) = policies(channel, m.XFRM_MSG_DELPOLICY)
        self.assertEqual((deleted["dir"], deleted["sel_family"]), (ours["dir"], socket.AF_INET6))


class UserspaceBlockTests(SynchronousTestCase):
    """
    The user-space datapath blocks IPv6 with the same XFRM policies (the
    host's XFRM works without ESP) and lets each of its IPv6 flows pass
    with a template-less policy at the flow's priority.
    """

    def setUp(self):
        self.channel = RecordingChannel()
        self.kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=FakeRoutes(["fd01::1"]),
                                      rawEsp=False, policyChannel=self.channel)

    def test_block(self):
        self.successResultOf(self.kernel.blockIPv6())
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_UPDPOLICY)), len(xfrm.ipv6BlockMessages()))

    def test_flowPasses(self):
        """
        An IPv6 flow installed under the block gets an allow policy without
        template (no SA asked for: this datapath protects the packets);
        deleting the flow removes it; IPv4 flows need none.
        """
        self.successResultOf(self.kernel.blockIPv6())
        self.channel.requests.clear()
        for direction in ("out", "in", "fwd"):
            self.successResultOf(self.kernel.addFlow(flow6(direction)))
        self.successResultOf(self.kernel.addFlow(flow()))
        added = policies(self.channel, m.XFRM_MSG_UPDPOLICY)
        self.assertEqual(sorted(p["dir"] for p in added), [m.XFRM_POLICY_IN, m.XFRM_POLICY_OUT, m.XFRM_POLICY_FWD])
        for p in added:
            self.assertEqual((p["action"], p["sel_family"]), (m.XFRM_POLICY_ALLOW, socket.AF_INET6))
            self.assertLess(p["priority"], xfrm.PASS_PRIORITY)
            self.assertIsNone(p.get_attr("XFRMA_TMPL"))
        self.channel.requests.clear()
        self.successResultOf(self.kernel.deleteFlow(flow6("out")))
        (deleted,) = policies(self.channel, m.XFRM_MSG_DELPOLICY)
        self.assertEqual(deleted["dir"], m.XFRM_POLICY_OUT)

    def test_flowsBeforeBlock(self):
        """
        Flows installed before the block get their pass policies with it.
        """
        self.successResultOf(self.kernel.addFlow(flow6("in")))
        self.assertEqual(self.channel.requests, [])
        self.successResultOf(self.kernel.blockIPv6())
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_UPDPOLICY)), len(xfrm.ipv6BlockMessages()) + 1)

    def test_unblock(self):
        """
        unblockIPv6 removes the block and the pass policies; the flow stays
        in the datapath, and its deletion asks XFRM for nothing more.
        """
        self.successResultOf(self.kernel.blockIPv6())
        self.successResultOf(self.kernel.addFlow(flow6("in")))
        self.channel.requests.clear()
        self.successResultOf(self.kernel.unblockIPv6())
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_DELPOLICY)), len(xfrm.ipv6BlockMessages()) + 1)
        self.channel.requests.clear()
        self.successResultOf(self.kernel.deleteFlow(flow6("in")))
        self.assertEqual(self.channel.requests, [])

    def test_flush(self):
        """
        flush removes the block and the pass policies.
        """
        self.successResultOf(self.kernel.blockIPv6())
        self.successResultOf(self.kernel.addFlow(flow6("in")))
        self.channel.requests.clear()
        self.successResultOf(self.kernel.flush())
        self.assertEqual(len(policies(self.channel, m.XFRM_MSG_DELPOLICY)), len(xfrm.ipv6BlockMessages()) + 1)
        self.channel.requests.clear()
        self.successResultOf(self.kernel.addFlow(flow6("in")))
        self.assertEqual(self.channel.requests, [])

    def test_noXfrm(self):
        """
        Without XFRM the block cannot be made: a KernelError with the
        kernel's reason (the service logs that IPv6 is not blocked).
        """
        import errno

        from pyroute2.netlink.exceptions import NetlinkError

        from ikedtx.kernel.interfaces import KernelError

        channel = RecordingChannel({m.XFRM_MSG_UPDPOLICY: NetlinkError(errno.EPERM)})
        kernel = UserspaceKernel(reactor=task.Clock(), device=FakeTun(), routes=FakeRoutes(), rawEsp=False,
                                 policyChannel=channel)
        error = self.failureResultOf(kernel.blockIPv6(), KernelError).value
        self.assertIn("IPv6 block (XFRM policies): Operation not permitted", str(error))


class DecoupledBlockTests(SynchronousTestCase):
    def test_recorded(self):
        kernel = DecoupledKernel()
        self.successResultOf(kernel.blockIPv6())
        self.assertTrue(kernel.ipv6Blocked)
        self.assertEqual(kernel.log[-1], ("blockIPv6", None))
        kernel.flush()
        self.assertFalse(kernel.ipv6Blocked)

    def test_unblockRecorded(self):
        kernel = DecoupledKernel()
        self.successResultOf(kernel.blockIPv6())
        self.successResultOf(kernel.unblockIPv6())
        self.assertFalse(kernel.ipv6Blocked)
        self.assertEqual(kernel.log[-1], ("unblockIPv6", None))

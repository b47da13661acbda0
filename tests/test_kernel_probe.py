"""
Tests for L{ikedtx.kernel.probe}: how the daemon finds out which datapath
the host can run, and the default of C{--kernel}.
"""

import errno

from pyroute2.netlink.exceptions import NetlinkError
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.kernel import probe
from ikedtx.kernel import xfrmmsg as m
from ikedtx.kernel.xfrm import kernelReqid

from tests.test_kernel_xfrm import RecordingChannel


class ProbeXfrmEspTests(SynchronousTestCase):
    def test_installsAndDeletes(self):
        """
        The probe installs one ESP SA (AES-CBC with HMAC-SHA2-256, a reqid
        of the provider's range, so that a leftover is cleaned up at start)
        and deletes it again.
        """
        channel = RecordingChannel()
        probe.probeXfrmEsp(channel, randomBytes=lambda n: b"\0\0\x12\x34")
        (newType, _, new), (delType, _, delete) = channel.requests
        self.assertEqual((newType, delType), (m.XFRM_MSG_NEWSA, m.XFRM_MSG_DELSA))
        self.assertEqual((new["id_spi"], new["id_proto"], new["reqid"]),
                         (0x1334, m.IPPROTO_ESP, kernelReqid(probe.PROBE_REQID)))
        self.assertEqual(new.get_attr("XFRMA_ALG_CRYPT")["alg_name"].rstrip(b"\0"), b"cbc(aes)")
        self.assertEqual(new.get_attr("XFRMA_ALG_AUTH_TRUNC")["alg_name"].rstrip(b"\0"), b"hmac(sha256)")
        self.assertEqual((delete["spi"], delete["proto"]), (0x1334, m.IPPROTO_ESP))

    def test_noEsp(self):
        """
        A kernel with XFRM but without ESP refuses the SA with
        EPROTONOSUPPORT ("Requested type not found" in ip(8)): the probe
        says so in one line, with the kernel's reason.
        """
        channel = RecordingChannel({m.XFRM_MSG_NEWSA: NetlinkError(errno.EPROTONOSUPPORT)})
        error = self.assertRaises(probe.DatapathUnusable, probe.probeXfrmEsp, channel)
        self.assertEqual(str(error), "the kernel cannot install an ESP SA: Protocol not supported (EPROTONOSUPPORT)")
        self.assertEqual(channel.types(), [m.XFRM_MSG_NEWSA])

    def test_algorithmMissing(self):
        """
        ENOENT: the kernel has ESP but not the probe's algorithm (nor a way
        to load it); ESP is usable, and an SA with a missing algorithm is
        refused on its own.
        """
        channel = RecordingChannel({m.XFRM_MSG_NEWSA: NetlinkError(errno.ENOENT)})
        self.assertIsNone(probe.probeXfrmEsp(channel))
        self.assertEqual(channel.types(), [m.XFRM_MSG_NEWSA])

    def test_notPermitted(self):
        """
        Without CAP_NET_ADMIN the kernel answers EPERM.
        """
        channel = RecordingChannel({m.XFRM_MSG_NEWSA: NetlinkError(errno.EPERM)})
        error = self.assertRaises(probe.DatapathUnusable, probe.probeXfrmEsp, channel)
        self.assertIn("Operation not permitted (EPERM)", str(error))


class ChooseKernelTests(SynchronousTestCase):
    """
    The default datapath (issue 8): decoupled with C{set decouple}, xfrm
    where the kernel has ESP, else userspace.
    """

    def test_decouple(self):
        """
        C{set decouple} records only; the kernel is not even asked.
        """
        def fail():
            raise AssertionError("probed")

        name, why = probe.chooseKernel(True, fail)
        self.assertEqual(name, "decoupled")
        self.assertIn("set decouple", why)

    def test_esp(self):
        self.assertEqual(probe.chooseKernel(False, lambda: None), ("xfrm", "the kernel has ESP"))

    def test_noEsp(self):
        def noEsp():
            raise probe.DatapathUnusable("the kernel cannot install an ESP SA: Protocol not supported")

        self.assertEqual(probe.chooseKernel(False, noEsp), (
            "userspace", "the kernel has no usable ESP: the kernel cannot install an ESP SA: Protocol not supported"))

    def test_defaultProbe(self):
        """
        Without a probe given, L{probe.probeXfrmEsp} is asked (looked up when
        called, so that it can be replaced).
        """
        calls = []
        self.patch(probe, "probeXfrmEsp", lambda: calls.append(1))
        self.assertEqual(probe.chooseKernel(False)[0], "xfrm")
        self.assertEqual(calls, [1])

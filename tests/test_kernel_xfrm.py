"""
Tests for L{ikedtx.kernel.xfrm}, in memory: what the XFRM provider asks
the kernel for (the messages it builds, through a recording channel in
place of the netlink socket), how it reports the kernel's refusals, and what
it makes of the kernel's acquire and expire messages. The same provider
runs against a real ESP kernel in L{tests.test_kernel_vm}.
"""

import errno
import socket
from ipaddress import ip_address

from pyroute2.netlink.exceptions import NetlinkError
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ikedtx.kernel import xfrm
from ikedtx.kernel import xfrmmsg as m
from ikedtx.kernel.interfaces import IKernel, KernelError, KernelFlow, KernelSA, KernelSAUsage, KernelSelector
from ikedtx.wire.constants import EncrId, IntegId, ProtocolId

A = ip_address


class RecordingChannel:
    """
    Records each request (type, flags, encoded message) and answers from
    C{answers}: a dict message type -> list of replies or an exception.
    """

    def __init__(self, answers=None):
        self.requests = []
        self.answers = answers or {}

    def request(self, msg, msgType, flags):
        msg["header"]["type"] = msgType
        msg["header"]["flags"] = flags
        msg.encode()
        decoded = type(msg)(bytes(msg.data))
        decoded.decode()
        self.requests.append((msgType, flags, decoded))
        answer = self.answers.get(msgType, [])
        if isinstance(answer, Exception):
            raise answer
        return answer

    def types(self):
        return [t for t, _, _ in self.requests]

    def close(self):
        pass


class Receiver:
    def __init__(self):
        self.events = []

    def acquire(self, reqid, source, destination):
        self.events.append(("acquire", reqid, source, destination))

    def expired(self, protocol, spi, destination, hard):
        self.events.append(("expired", protocol, spi, destination, hard))

    def addressChanged(self, address, added):
        self.events.append(("address", address, added))


def gcmSA(**kw):
    base = dict(spi=0x1001, protocol=ProtocolId.ESP, inbound=True, source=A("192.0.2.2"),
                destination=A("192.0.2.1"), mode="tunnel", encryption=(EncrId.AES_GCM_16, 128),
                encryptionKey=bytes(range(20)), integrity=None, integrityKey=b"", reqid=7)
    base.update(kw)
    return KernelSA(**base)


def any4():
    return KernelSelector(A("0.0.0.0"), A("255.255.255.255"))


def flow(direction="out", **kw):
    base = dict(source=KernelSelector(A("10.1.0.0"), A("10.1.255.255")),
                destination=KernelSelector(A("10.2.0.0"), A("10.2.0.255")), direction=direction,
                protocol=ProtocolId.ESP, mode="tunnel", localAddress=A("192.0.2.1"),
                peerAddress=A("192.0.2.2"), reqid=7)
    base.update(kw)
    return KernelFlow(**base)


def decoded(msg):
    """
    C{msg} as the kernel's answer would come: encoded and decoded again.
    """
    msg.encode()
    out = type(msg)(bytes(msg.data))
    out.decode()
    return out


def kernel(answers=None):
    channel = RecordingChannel(answers)
    return xfrm.XfrmKernel(channel=channel, cleanup=False), channel


class AlgorithmTests(SynchronousTestCase):
    """
    IKE transforms become the kernel's algorithm names and lengths.
    """

    def test_gcm(self):
        """
        AES-GCM with a 16-octet ICV is rfc4106(gcm(aes)) with the 4-byte salt
        in the key (RFC 4106 8.1) and a 128-bit ICV.
        """
        (name, attr), = xfrm.algorithmAttributes(gcmSA())
        self.assertEqual((name, attr["alg_name"], attr["alg_key_len"], attr["alg_icv_len"]),
                         ("XFRMA_ALG_AEAD", b"rfc4106(gcm(aes))", 160, 128))
        for encr, icv in ((EncrId.AES_GCM_8, 64), (EncrId.AES_GCM_12, 96)):
            (_, attr), = xfrm.algorithmAttributes(gcmSA(encryption=(encr, 128)))
            self.assertEqual(attr["alg_icv_len"], icv)

    def test_chacha(self):
        """
        ChaCha20-Poly1305 (RFC 7634: 256-bit key, 4-byte salt, no Key
        Length attribute).
        """
        (_, attr), = xfrm.algorithmAttributes(
            gcmSA(encryption=(EncrId.CHACHA20_POLY1305, None), encryptionKey=b"c" * 36))
        self.assertEqual((attr["alg_name"], attr["alg_key_len"], attr["alg_icv_len"]),
                         (b"rfc7539esp(chacha20,poly1305)", 288, 128))

    def test_cbcAndHmac(self):
        """
        A cipher and an integrity algorithm: XFRMA_ALG_CRYPT plus
        XFRMA_ALG_AUTH_TRUNC with the truncation of RFC 4868.
        """
        cases = [(IntegId.HMAC_SHA1_96, b"hmac(sha1)", 96, 20), (IntegId.HMAC_SHA2_256_128, b"hmac(sha256)", 128, 32),
                 (IntegId.HMAC_SHA2_384_192, b"hmac(sha384)", 192, 48),
                 (IntegId.HMAC_SHA2_512_256, b"hmac(sha512)", 256, 64),
                 (IntegId.AES_XCBC_96, b"xcbc(aes)", 96, 16), (IntegId.AES_CMAC_96, b"cmac(aes)", 96, 16)]
        for integ, name, trunc, keylen in cases:
            attrs = xfrm.algorithmAttributes(gcmSA(encryption=(EncrId.AES_CBC, 256), encryptionKey=b"e" * 32,
                                                   integrity=integ, integrityKey=b"a" * keylen))
            self.assertEqual([(n, a["alg_name"], a["alg_key_len"]) for n, a in attrs],
                             [("XFRMA_ALG_CRYPT", b"cbc(aes)", 256), ("XFRMA_ALG_AUTH_TRUNC", name, keylen * 8)])
            self.assertEqual(attrs[1][1]["alg_trunc_len"], trunc)

    def test_otherCiphers(self):
        """
        3DES, AES-CTR (with its 4-byte nonce, RFC 3686) and NULL.
        """
        for encr, key, name in ((EncrId.TRIPLE_DES, 24, b"cbc(des3_ede)"), (EncrId.AES_CTR, 20, b"rfc3686(ctr(aes))"),
                                (EncrId.NULL, 0, b"ecb(cipher_null)")):
            attrs = xfrm.algorithmAttributes(gcmSA(encryption=(encr, 128 if encr == EncrId.AES_CTR else None),
                                                   encryptionKey=b"e" * key, integrity=IntegId.HMAC_SHA1_96,
                                                   integrityKey=b"a" * 20))
            self.assertEqual(attrs[0][1]["alg_name"], name)

    def test_ah(self):
        """
        AH has only the integrity attribute.
        """
        attrs = xfrm.algorithmAttributes(gcmSA(protocol=ProtocolId.AH, encryption=None, encryptionKey=b"",
                                               integrity=IntegId.HMAC_SHA2_256_128, integrityKey=b"a" * 32))
        self.assertEqual([n for n, _ in attrs], ["XFRMA_ALG_AUTH_TRUNC"])

    def test_badKey(self):
        """
        A key of the wrong size for its AEAD cipher is refused before the
        kernel is asked, naming the SA.
        """
        k, channel = kernel()
        failure = self.failureResultOf(k.addSA(gcmSA(encryptionKey=b"short")), KernelError)
        self.assertIn("ESP SA 00001001 192.0.2.2 -> 192.0.2.1", str(failure.value))
        self.assertEqual(channel.requests, [])

    def test_unknownAlgorithm(self):
        """
        An encryption transform XFRM has no name for fails with KernelError.
        """
        k, _ = kernel()
        failure = self.failureResultOf(k.addSA(gcmSA(encryption=(EncrId.DES_IV64, None), encryptionKey=b"x" * 8,
                                                     integrity=IntegId.HMAC_SHA1_96, integrityKey=b"a" * 20)),
                                       KernelError)
        self.assertIn("DES_IV64", str(failure.value))


class SelectorTests(SynchronousTestCase):
    def test_portMasks(self):
        """
        Port ranges split into (port, mask) blocks; the full range is any.
        """
        self.assertEqual(xfrm.portMasks(0, 65535), [(0, 0)])
        self.assertEqual(xfrm.portMasks(443, 443), [(443, 0xFFFF)])
        self.assertEqual(xfrm.portMasks(1024, 2047), [(1024, 0xFC00)])
        self.assertEqual(xfrm.portMasks(5, 8), [(5, 0xFFFF), (6, 0xFFFE), (8, 0xFFFF)])

    def test_ranges(self):
        """
        An address range that is not one prefix needs several selectors
        (RFC 7296 traffic selectors are ranges, XFRM's are prefixes).
        """
        sels = xfrm.kernelSelectors(KernelSelector(A("10.0.0.1"), A("10.0.0.6")),
                                    KernelSelector(A("10.2.0.0"), A("10.2.0.255"), 6, 80, 80))
        self.assertEqual(sorted((s["sel_saddr"][:4], s["sel_prefixlen_s"]) for s in sels),
                         [(bytes([10, 0, 0, n]), p) for n, p in ((1, 32), (2, 31), (4, 31), (6, 32))])
        self.assertEqual({(s["sel_proto"], s["sel_dport"], s["sel_dport_mask"]) for s in sels}, {(6, 80, 0xFFFF)})

    def test_tooMany(self):
        """
        A flow that would need too many kernel policies is refused.
        """
        self.assertRaises(KernelError, xfrm.kernelSelectors,
                          KernelSelector(A("10.0.0.1"), A("10.0.0.254"), 6, 1, 65534),
                          KernelSelector(A("10.0.0.1"), A("10.0.0.254"), 6, 1, 65534))


class ProviderTests(SynchronousTestCase):
    """
    The requests L{xfrm.XfrmKernel} makes, in order.
    """

    def test_interface(self):
        self.assertTrue(verifyObject(IKernel, kernel()[0]))

    def test_addSA(self):
        """
        A tunnel-mode SA: NEWSA (create, exclusive) with the SPI, the
        reqid in the provider's range, the mode, lifetimes (0 seconds means
        none for the kernel), ESN with its replay state, and ESP in UDP.
        """
        k, channel = kernel()
        sa = gcmSA(esn=True, replayWindow=64, lifetimeSeconds=3600, softLifetimeSeconds=3000,
                   lifetimeBytes=10 ** 9, encapsulation=(4500, 4501))
        self.successResultOf(k.addSA(sa))
        (kind, flags, msg), = channel.requests
        self.assertEqual(kind, m.XFRM_MSG_NEWSA)
        self.assertEqual(flags & 0x600, 0x600)
        self.assertEqual((msg["id_spi"], msg["id_proto"], msg["reqid"], msg["mode"], msg["family"]),
                         (0x1001, 50, 0x69000007, m.XFRM_MODE_TUNNEL, socket.AF_INET))
        self.assertEqual(msg["flags"], m.XFRM_STATE_ESN | m.XFRM_STATE_AF_UNSPEC)
        self.assertEqual((msg["lft_hard_add_expires_seconds"], msg["lft_soft_add_expires_seconds"],
                          msg["lft_hard_byte_limit"], msg["lft_soft_byte_limit"], msg["lft_hard_use_expires_seconds"]),
                         (3600, 3000, 10 ** 9, m.XFRM_INF, 0))
        self.assertEqual(msg.get_attr("XFRMA_REPLAY_ESN_VAL")["replay_window"], 64)
        encap = msg.get_attr("XFRMA_ENCAP")
        self.assertEqual((encap["encap_type"], encap["encap_sport"], encap["encap_dport"]), (2, 4500, 4501))
        self.assertEqual(msg["id_daddr"][:4], bytes([192, 0, 2, 1]))
        self.assertEqual(list(k.sas), [(ProtocolId.ESP, 0x1001, A("192.0.2.1"))])

    def test_allocatedSpiUpdates(self):
        """
        An SPI from ALLOCSPI is a larval SA in the kernel: installing it is
        an UPDSA, not a NEWSA.
        """
        answer = m.usersa_info()
        answer["id_spi"] = 0xABCDEF01
        k, channel = kernel({m.XFRM_MSG_ALLOCSPI: [answer]})
        spi = self.successResultOf(k.allocateSpi(ProtocolId.ESP, "192.0.2.2", "192.0.2.1"))
        self.assertEqual(spi, 0xABCDEF01)
        self.successResultOf(k.addSA(gcmSA(spi=spi)))
        self.assertEqual(channel.types(), [m.XFRM_MSG_ALLOCSPI, m.XFRM_MSG_UPDSA])
        self.assertEqual((channel.requests[0][2]["min"], channel.requests[0][2]["id_proto"]), (0x100, 50))

    def test_allocatedCpi(self):
        """
        An IPcomp CPI (the core asks with protocol NONE) is allocated as a
        16-bit SPI of IPPROTO_COMP; the IPcomp SA that comes with the ESP SA
        updates that larval SA, and deleting the SA removes it.
        """
        answer = m.usersa_info()
        answer["id_spi"] = 0x4321
        k, channel = kernel({m.XFRM_MSG_ALLOCSPI: [answer]})
        cpi = self.successResultOf(k.allocateSpi(ProtocolId.NONE, "192.0.2.2", "192.0.2.1"))
        self.assertEqual(cpi, 0x4321)
        request = channel.requests[0][2]
        self.assertEqual((request["id_proto"], request["min"], request["max"]), (m.IPPROTO_COMP, 0x100, 0xFFFF))
        self.successResultOf(k.addSA(gcmSA(ipcompCpi=cpi)))
        self.assertEqual(channel.types(), [m.XFRM_MSG_ALLOCSPI, m.XFRM_MSG_UPDSA, m.XFRM_MSG_NEWSA])
        self.assertEqual(channel.requests[1][2]["id_proto"], m.IPPROTO_COMP)
        self.assertEqual(k.allocated, set())

    def test_larvalExpired(self):
        """
        The kernel removes a larval SA after net.core.xfrm_acq_expires
        seconds: when its UPDSA finds none (ESRCH, a slow negotiation), the
        SA and its IPcomp SA are installed as new ones.
        """
        answer = m.usersa_info()
        answer["id_spi"] = 0x4321
        k, channel = kernel({m.XFRM_MSG_ALLOCSPI: [answer], m.XFRM_MSG_UPDSA: NetlinkError(errno.ESRCH, "")})
        spi = self.successResultOf(k.allocateSpi(ProtocolId.ESP, "192.0.2.2", "192.0.2.1"))
        cpi = self.successResultOf(k.allocateSpi(ProtocolId.NONE, "192.0.2.2", "192.0.2.1"))
        self.successResultOf(k.addSA(gcmSA(spi=spi, ipcompCpi=cpi)))
        self.assertEqual(channel.types(), [m.XFRM_MSG_ALLOCSPI, m.XFRM_MSG_ALLOCSPI, m.XFRM_MSG_UPDSA,
                                           m.XFRM_MSG_NEWSA, m.XFRM_MSG_UPDSA, m.XFRM_MSG_NEWSA])
        self.assertEqual((k.allocated, list(k.sas)), (set(), [(ProtocolId.ESP, spi, A("192.0.2.1"))]))

    def test_unknownProtocol(self):
        """
        An SPI for a protocol the provider does not know is a failed
        Deferred, not an exception.
        """
        k, channel = kernel()
        self.failureResultOf(k.allocateSpi(ProtocolId.IKE, "192.0.2.2", "192.0.2.1"), KernelError)
        self.assertEqual(channel.requests, [])

    def test_kernelRefuses(self):
        """
        A netlink error fails the Deferred with KernelError naming the SA
        and the kernel's reason.
        """
        k, _ = kernel({m.XFRM_MSG_NEWSA: NetlinkError(errno.ENOSYS, "")})
        failure = self.failureResultOf(k.addSA(gcmSA()), KernelError)
        self.assertIn("ESP SA 00001001 192.0.2.2 -> 192.0.2.1", str(failure.value))
        self.assertIn(__import__("os").strerror(errno.ENOSYS), str(failure.value))
        self.assertEqual(k.sas, {})

    def test_ipcomp(self):
        """
        With an IPcomp CPI the IPcomp SA (DEFLATE) carries the tunnel and
        the ESP SA goes in transport mode inside it; the flow's templates
        are IPcomp (optional inbound) then ESP.
        """
        k, channel = kernel()
        self.successResultOf(k.addSA(gcmSA(ipcompCpi=0x4321)))
        comp, esp = [msg for _, _, msg in channel.requests]
        self.assertEqual((comp["id_proto"], comp["id_spi"], comp["mode"]), (108, 0x4321, m.XFRM_MODE_TUNNEL))
        self.assertEqual(comp.get_attr("XFRMA_ALG_COMP")["alg_name"].rstrip(b"\0"), b"deflate")
        self.assertEqual((esp["id_proto"], esp["mode"]), (50, m.XFRM_MODE_TRANSPORT))
        self.successResultOf(k.addFlow(flow("in", ipcomp=True)))
        templates = channel.requests[-1][2].get_attr("XFRMA_TMPL")["templates"]
        self.assertEqual([(t["id_proto"], t["mode"], t["optional"]) for t in templates],
                         [(108, m.XFRM_MODE_TUNNEL, 1), (50, m.XFRM_MODE_TRANSPORT, 0)])

    def test_flowPolicy(self):
        """
        A flow is one policy per selector, direction and template from the
        flow's addresses, every algorithm allowed.
        """
        k, channel = kernel()
        self.successResultOf(k.addFlow(flow("fwd")))
        (kind, _, msg), = channel.requests
        self.assertEqual(kind, m.XFRM_MSG_UPDPOLICY)
        self.assertEqual((msg["dir"], msg["sel_prefixlen_s"], msg["sel_prefixlen_d"], msg["sel_family"]),
                         (m.XFRM_POLICY_FWD, 16, 24, socket.AF_INET))
        (t,) = msg.get_attr("XFRMA_TMPL")["templates"]
        self.assertEqual((t["saddr"][:4], t["id_daddr"][:4], t["reqid"], t["mode"], t["aalgos"]),
                         (bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]), 0x69000007, 1, 0xFFFFFFFF))

    def test_flowMoves(self):
        """
        MOBIKE moves a tunnel flow (the shell adds the flow with the new
        addresses, then deletes the old one): the kernel's policy ends with
        the new template and is never deleted.
        """
        k, channel = kernel()
        self.successResultOf(k.addFlow(flow("out")))
        moved = flow("out", localAddress=A("198.51.100.1"), peerAddress=A("198.51.100.2"))
        self.successResultOf(k.addFlow(moved))
        self.successResultOf(k.deleteFlow(flow("out")))
        self.assertNotIn(m.XFRM_MSG_DELPOLICY, channel.types())
        (t,) = channel.requests[-1][2].get_attr("XFRMA_TMPL")["templates"]
        self.assertEqual((t["saddr"][:4], t["id_daddr"][:4]), (bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])))
        self.successResultOf(k.deleteFlow(moved))
        self.assertEqual(channel.types()[-1], m.XFRM_MSG_DELPOLICY)

    def test_overlappingFlows(self):
        """
        While a Child SA is rekeyed two flows want the same kernel policy:
        deleting the old one puts the new one's template back rather than
        removing the policy; deleting the last removes it.
        """
        k, channel = kernel()
        old, new = flow(reqid=7), flow(reqid=8)
        self.successResultOf(k.addFlow(old))
        self.successResultOf(k.addFlow(new))
        self.successResultOf(k.deleteFlow(old))
        self.assertEqual(channel.types(), [m.XFRM_MSG_UPDPOLICY] * 3)
        self.assertEqual(channel.requests[-1][2].get_attr("XFRMA_TMPL")["templates"][0]["reqid"], 0x69000008)
        self.successResultOf(k.deleteFlow(new))
        self.assertEqual(channel.types()[-1], m.XFRM_MSG_DELPOLICY)
        self.assertEqual(k.policies, {})

    def test_equalFlows(self):
        """
        A rekeyed Child SA keeps its reqid, so its flows equal its
        successor's: deleting the old ones drops one claim and the policy
        stays until the last claim goes.
        """
        k, channel = kernel()
        self.successResultOf(k.addFlow(flow(reqid=7)))
        self.successResultOf(k.addFlow(flow(reqid=7)))
        self.successResultOf(k.deleteFlow(flow(reqid=7)))
        self.assertNotIn(m.XFRM_MSG_DELPOLICY, channel.types())
        self.assertEqual([len(claims) for claims in k.policies.values()], [1])
        self.successResultOf(k.deleteFlow(flow(reqid=7)))
        self.assertEqual(channel.types()[-1], m.XFRM_MSG_DELPOLICY)
        self.assertEqual(k.policies, {})

    def test_queryAndDelete(self):
        """
        querySA reads the lifetime counters of GETSA's answer; deleteSA
        sends DELSA, and an SA the kernel already removed is no error.
        """
        answer = m.usersa_info()
        answer["curlft_bytes"], answer["curlft_packets"] = 1500, 10
        answer["curlft_add_time"], answer["curlft_use_time"] = 1000, 0
        k, channel = kernel({m.XFRM_MSG_GETSA: [answer], m.XFRM_MSG_DELSA: NetlinkError(errno.ESRCH, "")})
        self.successResultOf(k.addSA(gcmSA()))
        usage = self.successResultOf(k.querySA(gcmSA()))
        self.assertEqual(usage, KernelSAUsage(bytes=1500, packets=10, installed=1000.0, lastUsed=None))
        self.successResultOf(k.deleteSA(gcmSA()))
        self.assertEqual(channel.types(), [m.XFRM_MSG_NEWSA, m.XFRM_MSG_GETSA, m.XFRM_MSG_DELSA])
        self.assertEqual(k.sas, {})

    def test_updateKeepsSequenceNumbers(self):
        """
        updateSA (MOBIKE, a NAT mapping change) replaces the SA at its new
        addresses starting from the old one's sequence numbers (GETSA's
        replay state), so that GCM's sequence-derived IVs never repeat.
        """
        answer = m.usersa_info()
        answer["attrs"] = [("XFRMA_REPLAY_ESN_VAL", {"bmp_len": 0, "oseq": 1000, "seq": 7, "oseq_hi": 0,
                                                     "seq_hi": 0, "replay_window": 0})]
        k, channel = kernel({m.XFRM_MSG_GETSA: [decoded(answer)]})
        old = gcmSA(inbound=False, source=A("192.0.2.1"), destination=A("192.0.2.2"))
        new = gcmSA(inbound=False, source=A("192.0.2.1"), destination=A("192.0.2.99"), encapsulation=(4500, 4500))
        self.successResultOf(k.addSA(old))
        self.successResultOf(k.updateSA(old, new))
        self.assertEqual(channel.types(), [m.XFRM_MSG_NEWSA, m.XFRM_MSG_GETSA, m.XFRM_MSG_DELSA, m.XFRM_MSG_NEWSA])
        installed = channel.requests[-1][2]
        state = installed.get_attr("XFRMA_REPLAY_ESN_VAL")
        self.assertEqual((state["oseq"], state["seq"]), (1000, 7))
        self.assertEqual(installed["replay_window"], 0)
        self.assertEqual(list(k.sas.values()), [new])

    def test_updateLegacyReplayState(self):
        """
        A kernel answering with the old XFRMA_REPLAY_VAL is read too.
        """
        answer = m.usersa_info()
        answer["attrs"] = [("XFRMA_REPLAY_VAL", {"oseq": 42, "seq": 3, "bitmap": 0})]
        k, channel = kernel({m.XFRM_MSG_GETSA: [decoded(answer)]})
        old = gcmSA()
        self.successResultOf(k.addSA(old))
        self.successResultOf(k.updateSA(old, gcmSA(source=A("192.0.2.99"))))
        state = channel.requests[-1][2].get_attr("XFRMA_REPLAY_ESN_VAL")
        self.assertEqual((state["oseq"], state["seq"]), (42, 3))

    def test_updateWithoutSequenceNumbers(self):
        """
        When the old SA's sequence numbers cannot be read, updateSA fails
        and leaves the old SA installed.
        """
        k, channel = kernel({m.XFRM_MSG_GETSA: NetlinkError(errno.ESRCH, "")})
        old = gcmSA()
        self.successResultOf(k.addSA(old))
        self.failureResultOf(k.updateSA(old, gcmSA(source=A("192.0.2.99"))), KernelError)
        self.assertEqual(channel.types(), [m.XFRM_MSG_NEWSA, m.XFRM_MSG_GETSA])
        self.assertEqual(list(k.sas.values()), [old])

    def test_flush(self):
        """
        flush removes the policies and SAs this provider installed, and
        nothing else (no FLUSHSA/FLUSHPOLICY, which would take other
        daemons' SAs too).
        """
        k, channel = kernel()
        self.successResultOf(k.addSA(gcmSA()))
        self.successResultOf(k.addFlow(flow()))
        del channel.requests[:]
        self.successResultOf(k.flush())
        self.assertEqual(channel.types(), [m.XFRM_MSG_DELPOLICY, m.XFRM_MSG_DELSA])
        self.assertEqual((k.sas, k.policies), ({}, {}))

    def test_leftovers(self):
        """
        At start the provider deletes SAs and policies with a reqid in its
        range, and leaves the others.
        """
        ours, theirs = m.usersa_info(), m.usersa_info()
        ours["reqid"], theirs["reqid"] = 0x69000003, 3
        ours["id_spi"], ours["id_proto"], ours["family"] = 0x77, 50, 2
        policy = m.userpolicy_info()
        policy["dir"] = 1
        policy["attrs"] = [("XFRMA_TMPL", {"templates": [{"reqid": 0x69000003}]})]
        channel = RecordingChannel({m.XFRM_MSG_GETSA: [decoded(ours), decoded(theirs)],
                                    m.XFRM_MSG_GETPOLICY: [decoded(policy)]})
        xfrm.XfrmKernel(channel=channel)
        self.assertEqual(channel.types(), [m.XFRM_MSG_GETPOLICY, m.XFRM_MSG_GETSA, m.XFRM_MSG_DELPOLICY,
                                           m.XFRM_MSG_DELSA])
        self.assertEqual(channel.requests[-1][2]["spi"], 0x77)
        self.assertEqual(channel.requests[-2][2]["dir"], 1)


class EventTests(SynchronousTestCase):
    """
    Acquires and expires from the kernel reach the receiver.
    """

    def test_acquire(self):
        """
        An acquire for a policy of ours gives the core's reqid and the
        packet's addresses.
        """
        k, _ = kernel()
        receiver = Receiver()
        k.setEventReceiver(receiver)
        msg = m.user_acquire()
        msg["header"]["type"] = m.XFRM_MSG_ACQUIRE
        msg["sel_family"] = 2
        msg["sel_saddr"] = bytes([10, 1, 0, 1]) + b"\0" * 12
        msg["sel_daddr"] = bytes([10, 2, 0, 1]) + b"\0" * 12
        msg["sel_proto"] = 6
        msg["sel_dport"], msg["sel_dport_mask"] = 443, 0xFFFF
        msg["attrs"] = [("XFRMA_TMPL", {"templates": [{"reqid": 0x69000009}]})]
        msg.encode()
        decoded = m.user_acquire(bytes(msg.data))
        decoded.decode()
        k.messageReceived(decoded)
        self.assertEqual(receiver.events, [("acquire", 9, KernelSelector(A("10.1.0.1"), A("10.1.0.1"), 6),
                                            KernelSelector(A("10.2.0.1"), A("10.2.0.1"), 6, 443, 443))])

    def test_expire(self):
        """
        Soft and hard expires of an installed SA; after the hard one the
        provider forgets the SA. Expires of SAs it did not install are not
        passed on.
        """
        k, _ = kernel()
        receiver = Receiver()
        k.setEventReceiver(receiver)
        self.successResultOf(k.addSA(gcmSA()))

        def expire(spi, hard):
            msg = m.user_expire()
            msg["header"]["type"] = m.XFRM_MSG_EXPIRE
            msg["state_id_spi"], msg["state_id_proto"], msg["state_family"] = spi, 50, 2
            msg["state_id_daddr"] = bytes([192, 0, 2, 1]) + b"\0" * 12
            msg["hard"] = hard
            msg.encode()
            decoded = m.user_expire(bytes(msg.data))
            decoded.decode()
            k.messageReceived(decoded)

        expire(0x1001, 0)
        expire(0x9999, 1)
        expire(0x1001, 1)
        self.assertEqual(receiver.events, [("expired", ProtocolId.ESP, 0x1001, A("192.0.2.1"), False),
                                           ("expired", ProtocolId.ESP, 0x1001, A("192.0.2.1"), True)])
        self.assertEqual(k.sas, {})


    def test_larvalExpireAfterInstall(self):
        """
        The hard expire of an allocated SPI's larval SA, read only after the
        SA was installed under that SPI, is not the installed SA's: the
        kernel still holds it, so the SA stays and nothing is passed on.
        """
        installed = m.usersa_info()
        installed["id_spi"], installed["id_proto"] = 0x1001, 50
        k, _ = kernel({m.XFRM_MSG_GETSA: [decoded(installed)]})
        receiver = Receiver()
        k.setEventReceiver(receiver)
        sa = gcmSA()
        self.successResultOf(k.addSA(sa))
        msg = m.user_expire()
        msg["header"]["type"] = m.XFRM_MSG_EXPIRE
        msg["state_id_spi"], msg["state_id_proto"], msg["state_family"] = 0x1001, 50, 2
        msg["state_id_daddr"] = bytes([192, 0, 2, 1]) + b"\0" * 12
        msg["hard"] = 1
        k.messageReceived(decoded(msg))
        self.assertEqual(receiver.events, [])
        self.assertEqual(list(k.sas.values()), [sa])

class SocketTests(SynchronousTestCase):
    def test_socketPolicy(self):
        """
        The per-socket bypass policy is a bare xfrm_userpolicy_info (168
        bytes) allowing everything of the socket's family in one direction.
        """
        data = xfrm.socketPolicy(socket.AF_INET6, "out")
        self.assertEqual(len(data), 168)
        decoded = m.userpolicy_info(b"\0" * 16 + data)
        decoded.decode()
        self.assertEqual((decoded["sel_family"], decoded["dir"], decoded["action"]),
                         (socket.AF_INET6, m.XFRM_POLICY_OUT, m.XFRM_POLICY_ALLOW))


class DetachTests(SynchronousTestCase):
    """
    detachSA (ikectl decouple) and addSA of the same SA (couple): the SA
    goes on with its sequence numbers, or the peer would drop every packet
    it sends as a replay until the numbers catch up, and old packets could
    be replayed to it.
    """

    def answer(self, sa, **replay):
        state = m.usersa_info()
        state["attrs"] = [("XFRMA_REPLAY_ESN_VAL", dict(bmp_len=1, replay_window=32, oseq_hi=0, seq_hi=0, **replay))]
        return decoded(state)

    def replayOf(self, channel):
        (newsa,) = [msg for t, _, msg in channel.requests if t == m.XFRM_MSG_NEWSA][-1:]
        return newsa.get_attr("XFRMA_REPLAY_ESN_VAL")

    def test_esn(self):
        sa = gcmSA(esn=True)
        k, channel = kernel({m.XFRM_MSG_GETSA: [self.answer(sa, oseq=1234, seq=99)]})
        self.successResultOf(k.addSA(sa))
        self.assertEqual((self.replayOf(channel)["oseq"], self.replayOf(channel)["seq"]), (0, 0))
        self.successResultOf(k.detachSA(sa))
        self.assertEqual(channel.types()[-2:], [m.XFRM_MSG_GETSA, m.XFRM_MSG_DELSA])
        self.assertEqual(k.sas, {})
        self.successResultOf(k.addSA(sa))
        replay = self.replayOf(channel)
        self.assertEqual((replay["oseq"], replay["seq"], replay["replay_window"]), (1234, 99, 32))
        # Once only: a later SA with the same SPI starts afresh.
        self.successResultOf(k.deleteSA(sa))
        self.successResultOf(k.addSA(sa))
        self.assertEqual(self.replayOf(channel)["oseq"], 0)

    def test_noEsn(self):
        """
        Without ESN the kernel's replay state (XFRMA_REPLAY_VAL) is read
        too, and the SA comes back from its sequence numbers (in the
        XFRMA_REPLAY_ESN_VAL that updateSA also uses; the window's bitmap
        starts empty).
        """
        sa = gcmSA()
        state = m.usersa_info()
        state["attrs"] = [("XFRMA_REPLAY_VAL", {"oseq": 77, "seq": 5, "bitmap": 0x1F})]
        k, channel = kernel({m.XFRM_MSG_GETSA: [decoded(state)]})
        self.successResultOf(k.addSA(sa))
        self.successResultOf(k.detachSA(sa))
        self.successResultOf(k.addSA(sa))
        replay = self.replayOf(channel)
        self.assertEqual((replay["oseq"], replay["seq"]), (77, 5))

    def test_queryFails(self):
        """
        When the state cannot be read the SA is removed all the same.
        """
        sa = gcmSA()
        k, channel = kernel({m.XFRM_MSG_GETSA: NetlinkError(errno.ESRCH, "")})
        self.successResultOf(k.addSA(sa))
        self.successResultOf(k.detachSA(sa))
        self.assertEqual(k.sas, {})
        self.successResultOf(k.addSA(sa))
        (newsa,) = [msg for t, _, msg in channel.requests if t == m.XFRM_MSG_NEWSA][-1:]
        self.assertIsNone(newsa.get_attr("XFRMA_REPLAY_VAL"))

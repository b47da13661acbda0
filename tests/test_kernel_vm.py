"""
L{ikedtx.kernel.xfrm.XfrmKernel} in a real ESP kernel: tests/vm/xfrm_scenarios.py
runs every scenario in ONE boot of the lab VM (L{ikedtx.testing.lab.vm}; Python is
slow under emulation) and reports JSON; each test here checks its part.

Two network namespaces joined by veth, a provider in each: SA pairs and
flows for AES-GCM (with ESN and a 128-packet window), AES-CBC with
HMAC-SHA2-256, ChaCha20-Poly1305, AH, IPcomp, ESP in UDP, tunnel and
transport, IPv4 and IPv6; pings go through and the SAs count them both in
C{ip -s xfrm state} and in querySA; soft and hard lifetimes, acquires, the
kernel's refusals and the clean-up of what the provider installed.
"""

import json
import os
import re
import sys

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.testing.lab.vm import runInVM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "vm", "xfrm_scenarios.py")
BEGIN = "=====IKEDTX-VM-REPORT-BEGIN====="
END = "=====IKEDTX-VM-REPORT-END====="

_cache = {}


def report():
    """
    The VM's report (booted once for the whole module); a failed run fails
    every test with its output.
    """
    if "report" not in _cache:
        try:
            rc, output, seconds = runInVM(
                ["env", "PYTHONPATH=" + ROOT, sys.executable, "-u", SCRIPT], timeout=400, cwd=ROOT)
            if BEGIN not in output or END not in output:
                raise AssertionError("no report from the VM (exit %d):\n%s" % (rc, output[-4000:]))
            data = json.loads(output.split(BEGIN, 1)[1].split(END, 1)[0])
            data["timings"]["hostSeconds"] = round(seconds, 1)
            data["log"] = [line for line in output.splitlines() if line.startswith("[")]
            _cache["report"] = data
        except BaseException as e:
            _cache["report"] = e
    if isinstance(_cache["report"], BaseException):
        raise _cache["report"]
    return _cache["report"]


def ours(reqid):
    return 0x69000000 <= reqid < 0x6A000000


class XfrmVMTests(SynchronousTestCase):
    def scenario(self, name):
        result = report()["scenarios"][name]
        if "error" in result:
            self.fail("%s: %s\n%s" % (name, result["error"], result.get("traceback", "")))
        return result

    def checkPair(self, name):
        """
        The pings went through; each SA counted them, and querySA says what
        C{ip -s xfrm state} says; flush left nothing in either namespace.
        """
        result = self.scenario(name)
        self.assertEqual(result["ping"]["received"], 3, result["ping"]["output"])
        for ns in ("a", "b"):
            counters = {spi: (octets, packets) for spi, octets, packets in result["ip"][ns]}
            for direction in ("in", "out"):
                usage = result["usage"][ns][direction]
                self.assertGreaterEqual(usage["packets"], 3, (ns, direction, usage))
                self.assertGreater(usage["bytes"], 0)
                self.assertIsNotNone(usage["lastUsed"])
                spi = result["spis"][ns][direction]
                self.assertEqual(counters[spi], (usage["bytes"], usage["packets"]))
            self.assertEqual(result["afterFlush"][ns].strip(), "", (ns, result["afterFlush"][ns]))
        return result

    def test_gcmTunnelIPv4(self):
        """
        AES-GCM-16 (RFC 4106) with ESN and a 128-packet replay window, in
        tunnel mode between inner IPv4 networks: the kernel's SAs have the
        ESN flag and that window (XFRMA_REPLAY_ESN_VAL).
        """
        result = self.checkPair("gcm_tunnel_v4")
        states = result["states"]
        self.assertEqual(len(re.findall(r"flag .*\besn\b", states)), 2, states)
        self.assertEqual(len(re.findall(r"anti-replay esn context", states)), 2, states)
        self.assertEqual(len(re.findall(r"replay_window 128\b", states)), 2, states)

    def test_updateKeepsSequence(self):
        """
        updateSA (used by MOBIKE) replaces both SAs of a GCM tunnel from
        their sequence numbers: after 5 pings, the update and 5 more, a's
        outbound SA is at oseq 10 (with the update re-installing from
        scratch it was at 5: the same GCM IVs sent twice), and the pings
        still pass.
        """
        result = self.scenario("gcm_update_keeps_sequence")
        self.assertEqual(result["before"]["received"], 5, result["before"]["output"])
        self.assertEqual(result["after"]["received"], 5, result["after"]["output"] + result["drops"])
        self.assertRegex(result["states"], r"oseq 0x0*[ab]\b", result["states"])

    def test_cbcSha256TransportIPv4(self):
        """
        AES-CBC with HMAC-SHA2-256-128 (RFC 3602, 4868), transport mode.
        """
        self.checkPair("cbc_sha256_transport_v4")

    def test_chachaTunnelIPv6(self):
        """
        ChaCha20-Poly1305 (RFC 7634), tunnel mode over IPv6.
        """
        self.checkPair("chacha_tunnel_v6")

    def test_gcmTransportIPv6(self):
        self.checkPair("gcm_transport_v6")

    def test_cbcSha256TunnelIPv6(self):
        self.checkPair("cbc_sha256_tunnel_v6")

    def test_espInUdp(self):
        """
        ESP in UDP (RFC 3948) on port 4500 at both ends, the sockets made
        as the daemon makes its NAT-T socket (bypassSocket, enableEspInUdp).
        """
        result = self.checkPair("gcm_transport_v4_espinudp")
        self.assertTrue(result["encapInState"], result["states"])

    def test_ah(self):
        """
        AH with HMAC-SHA2-256-128, transport mode.
        """
        self.checkPair("ah_sha256_transport_v4")

    def test_ipcomp(self):
        """
        IPcomp (DEFLATE) under ESP in tunnel mode, with pings large enough
        to be compressed: the IPcomp SAs are in the kernel (ipcompMessage)
        and the ESP SA inside them is in transport mode.
        """
        result = self.checkPair("ipcomp_gcm_tunnel_v4")
        states = result["states"]
        self.assertEqual(len(re.findall(r"proto comp spi 0x0000[45]008\(", states)), 2, states)
        self.assertEqual(len(re.findall(r"comp deflate", states)), 2, states)
        self.assertRegex(states, r"proto esp spi 0x0000[12]008\(\d+\) reqid \d+\(0x[0-9a-f]+\) mode transport")

    def test_lifetimes(self):
        """
        A 2 s soft lifetime gives expired(hard=False), the 4 s hard one
        expired(hard=True), and the kernel and the provider no longer have
        the SA (RFC 7296 2.8: the soft one starts a rekey).
        """
        result = self.scenario("lifetimes")
        kinds = [(e[2], e[4]) for e in result["events"]]
        self.assertEqual(kinds, [(0x3001, False), (0x3001, True)], result["events"])
        soft, hard = result["events"][0][5], result["events"][1][5]
        self.assertTrue(1 <= soft < hard, result["events"])
        self.assertGreaterEqual(hard, 3)
        self.assertNotIn("spi 0x00003001", result["stateAfter"])
        self.assertIn("No such process", result["queryAfter"])
        self.assertEqual(result["tracked"], 0)

    def test_acquire(self):
        """
        A packet on an outbound flow without SA: the receiver gets
        acquire(reqid, source, destination) with the core's reqid.
        """
        result = self.scenario("acquire")
        self.assertEqual(result["events"], [["acquire", 30, "10.1.0.1", "10.9.0.1"]])

    def test_refusals(self):
        """
        The kernel's refusals fail with KernelError naming the SA and the
        kernel's reason: a key length AES-GCM does not have, an SA that is
        already there.
        """
        result = self.scenario("refusals")
        self.assertIn("ESP SA 00003101 192.0.2.1 -> 192.0.2.2", result["badKeyLength"])
        self.assertIn("Invalid argument", result["badKeyLength"])
        self.assertIn("ESP SA 00003102 192.0.2.1 -> 192.0.2.2", result["duplicate"])
        self.assertIn("File exists", result["duplicate"])
        self.assertNotIn("spi 0x0000310", result["after"])

    def test_cleanup(self):
        """
        A new provider removes what an earlier one left (its reqid range),
        flush removes what it installed, and another daemon's SA and policy
        stay.
        """
        result = self.scenario("cleanup")
        self.assertTrue([r for r in map(int, re.findall(r"reqid (\d+)", result["before"])) if ours(r)])
        self.assertGreaterEqual(result["removedAtStart"], 9)
        after = result["afterStartA"]
        self.assertIn("spi 0x00000999", after)
        self.assertIn("src 10.7.0.0/16 dst 10.8.0.0/16", after)
        self.assertEqual([r for r in map(int, re.findall(r"reqid (\d+)", after)) if ours(r)], [], after)
        self.assertEqual(result["afterFlushB"].strip(), "")


PAIR_SCRIPT = os.path.join(ROOT, "tests", "vm", "ikedtx_pair.sh")


def pairReport():
    """
    The output of tests/vm/ikedtx_pair.sh in its own boot: C{key=value}
    lines and C{NAME_begin}/C{NAME_end} sections.
    """
    if "pair" not in _cache:
        try:
            rc, output, seconds = runInVM(
                ["env", "PYTHONPATH=" + ROOT, PAIR_SCRIPT, sys.executable], timeout=400, cwd=ROOT)
            values = dict(re.findall(r"^(\w+)=(.*)$", output, re.M))
            for name in re.findall(r"^(\w+)_begin$", output, re.M):
                values[name] = output.split(name + "_begin\n", 1)[1].split(name + "_end", 1)[0]
            values["output"] = output
            values["seconds"] = seconds
            _cache["pair"] = values
        except BaseException as e:
            _cache["pair"] = e
    if isinstance(_cache["pair"], BaseException):
        raise _cache["pair"]
    return _cache["pair"]


class IkedtxPairVMTests(SynchronousTestCase):
    """
    Two ikedtx daemons (C{iked -d -f FILE --kernel xfrm}) in the VM
    negotiate a PSK Child SA (RFC 7296 1.2) and protect traffic with the ESP
    SAs they installed.
    """

    def test_pingThroughNegotiatedSA(self):
        """
        The Child SA's SAs and flows are in the kernel (reqid in the
        provider's range), pings between the inner addresses pass, and the
        SAs counted them.
        """
        result = pairReport()
        self.assertEqual(result.get("installed"), "1", result["output"][-3000:])
        self.assertEqual(result.get("received"), "3", result["output"][-3000:])
        states = result["states_a"]
        self.assertEqual(len(re.findall(r"reqid 1761607681\(0x69000001\) mode tunnel", states)), 2, states)
        self.assertIn("aead rfc4106(gcm(aes))", states)
        self.assertEqual(re.findall(r"(\d+)\(packets\)", states)[-2:], ["3", "3"], states)
        policies = result["policies_a"]
        for direction in ("out", "in", "fwd"):
            self.assertIn("dir %s priority" % (direction,), policies)

    def test_stopRemovesEverything(self):
        """
        Stopping the daemons (SIGTERM) deletes their SAs and flows: both
        namespaces are empty.
        """
        result = pairReport()
        self.assertEqual(result.get("after_stop", "missing").strip(), "", result["output"][-3000:])

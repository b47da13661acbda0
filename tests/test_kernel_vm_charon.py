"""
ikedtx's XFRM provider against strongSwan's charon with kernel-netlink (its
ordinary kernel mode) in the ESP-capable VM (L{ikedtx.testing.lab.vm}), PSK:
tests/vm/charon_scenarios.py runs every scenario in ONE boot and reports
JSON; each test here checks its part.

ikedtx (C{--kernel xfrm}) runs in namespace a, charon in namespace b, a
router m between them counts what it forwards (the wire) and masquerades
the NAT scenario's address. Per scenario, one IKE SA between its own pair of
addresses, initiated by ikedtx or by charon: AES-GCM, AES-CBC with
HMAC-SHA2-256 and ChaCha20-Poly1305, tunnel and transport, IPv4 and IPv6,
and ESP in UDP through a real NAT (nftables masquerade). Pings pass, the SAs
of both daemons count them in the kernel, and the router forwards ESP (or
UDP on 4500) and no cleartext ICMP echo. Then SIGTERM to ikedtx leaves no
SA and no policy in its namespace.

ikedtx runs as configured by default (no C{-6}): where it blocks IPv6 as
iked does, the IPv6 scenarios also show that negotiated flows pass the block
and that SIGTERM removes it.
"""

import json
import os
import re
import shutil
import signal
import sys
import tempfile
from ipaddress import ip_network

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.testing.lab.charon import Auth, CharonPeer, Child, Connection, Secret
from ikedtx.testing.lab.vm import runInVM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "vm", "charon_scenarios.py")
BEGIN = "=====IKEDTX-VM-REPORT-BEGIN====="
END = "=====IKEDTX-VM-REPORT-END====="
PSK = "vm-charon-psk-0123456789"
PINGS = 3

#: name -> (charon ESP proposal, ikedtx childsa transforms, the kernel's algorithms in ip xfrm state)
ESP = {
    "gcm": ("aes128gcm16", "childsa enc aes-128-gcm", ["aead rfc4106(gcm(aes))"]),
    "cbc": ("aes256-sha256", "childsa enc aes-256 auth hmac-sha2-256",
            ["auth-trunc hmac(sha256)", "enc cbc(aes)"]),
    "chacha": ("chacha20poly1305", "childsa enc chacha20-poly1305", ["aead rfc7539esp(chacha20,poly1305)"]),
}

#: (name, ESP, mode, IP version, initiator, the host behind the NAT or None)
SCENARIOS = [
    ("gcm_tunnel_v4", "gcm", "tunnel", 4, "ikedtx", None),
    ("cbc_tunnel_v6", "cbc", "tunnel", 6, "ikedtx", None),
    ("chacha_transport_v6", "chacha", "transport", 6, "ikedtx", None),
    ("gcm_transport_v6", "gcm", "transport", 6, "charon", None),
    ("cbc_transport_v4", "cbc", "transport", 4, "charon", None),
    ("chacha_tunnel_v4", "chacha", "tunnel", 4, "charon", None),
    ("natt_gcm_tunnel_v4", "gcm", "tunnel", 4, "ikedtx", "a"),
    ("natt_cbc_tunnel_v4_charon_behind", "cbc", "tunnel", 4, "charon", "b"),
    ("vip_gcm_tunnel_v4", "gcm", "tunnel", 4, "ikedtx", None),
]

#: scenarios where ikedtx is a road warrior: it asks charon for an address
#: (C{request address any}), charon lends the first of a pool, and that
#: address (put on C{lo} by ikedtx) is a's inner address
VIP_POOLS = {"vip_gcm_tunnel_v4": "10.99.0.0/29"}

#: the router's addresses on b's and on a's side: where IKE and ESP from the
#: host behind the NAT come from
NAT_OUTSIDE = "198.51.100.254"
NAT_INSIDE = "192.0.2.254"


def scenarioPlan(n, name, esp, mode, version, initiator, nat):
    if version == 4:
        a, b, aInner, bInner = "192.0.2.%d" % (10 + n,), "198.51.100.%d" % (10 + n,), "10.1.%d.1" % (n,), \
            "10.2.%d.1" % (n,)
    else:
        a, b, aInner, bInner = "2001:db8:1::%d" % (10 + n,), "2001:db8:2::%d" % (10 + n,), "fd00:1::%d" % (n,), \
            "fd00:2::%d" % (n,)
    if name in VIP_POOLS:
        aInner = str(ip_network(VIP_POOLS[name]).network_address + 1)
    return {"name": name, "esp": esp, "mode": mode, "version": version, "initiator": initiator, "nat": nat,
            "a": a, "b": b, "aInner": aInner, "bInner": bInner, "aSeenByB": NAT_OUTSIDE if nat == "a" else a,
            "bSeenByA": NAT_INSIDE if nat == "b" else b, "vip": name in VIP_POOLS}


def ikedtxPolicy(s):
    host = "/32" if s["version"] == 4 else "/128"
    if s["mode"] == "tunnel":
        flow = "from %s%s to %s%s" % (s["aInner"], host, s["bInner"], host)
    else:
        flow = "from %s to %s" % (s["a"], s["b"])
    if s["vip"]:
        flow = "from dynamic to %s%s" % (s["bInner"], host)
    # behind a NAT, charon comes from an address not its own
    peer = "any" if s["nat"] == "b" else s["b"]
    return 'ikev2 "%s" %s %sesp %s local %s peer %s %s srcid %s dstid %s psk "%s"%s\n' % (
        s["name"], "active" if s["initiator"] == "ikedtx" else "passive",
        "transport " if s["mode"] == "transport" else "", flow, s["a"], peer, ESP[s["esp"]][1], s["a"], s["b"], PSK,
        " request address any" if s["vip"] else "")


def charonConnection(s):
    host = "/32" if s["version"] == 4 else "/128"
    if s["mode"] == "tunnel":
        localTs, remoteTs = [s["bInner"] + host], [s["aInner"] + host]
    else:
        localTs, remoteTs = ["dynamic"], ["dynamic"]
    if s["vip"]:
        remoteTs = ["dynamic"]
    return Connection(
        s["name"], local_addrs=[s["b"]], remote_addrs=["%any" if s["nat"] == "a" else s["a"]],
        proposals=["aes128gcm16-prfsha256-x25519"], local=Auth("psk", id=s["b"]), remote=Auth("psk", id=s["a"]),
        children=[Child(s["name"], local_ts=localTs, remote_ts=remoteTs, esp_proposals=[ESP[s["esp"]][0]],
                        mode=s["mode"])], pools=[s["name"]] if s["vip"] else None)


def writePlan(directory):
    """
    The plan for the VM: charon's and ikedtx's configuration files (charon's
    made by L{CharonPeer}, with kernel-netlink and no libipsec) and the
    scenarios.
    """
    scenarios = [scenarioPlan(n, *spec) for n, spec in enumerate(SCENARIOS, 1)]
    charon = CharonPeer(None, os.path.join(directory, "charon"), name="vm-charon")
    for s in scenarios:
        charon.addConnection(charonConnection(s))
        if s["vip"]:
            charon.addPool(s["name"], VIP_POOLS[s["name"]])
        charon.addSecret(Secret(PSK, ids=[s["a"], s["b"]]))
    charon.writeConfig()
    etc = os.path.join(directory, "etc")
    for sub in ("ca", "certs", "crls", "private", "pubkeys"):
        os.makedirs(os.path.join(etc, sub), exist_ok=True)
    conf = os.path.join(directory, "iked.conf")
    with open(conf, "w") as f:
        f.write("".join(ikedtxPolicy(s) for s in scenarios))
    os.chmod(conf, 0o600)
    plan = {"scenarios": scenarios, "charonDir": charon.directory, "charonVici": charon.viciPath,
            "ikedtxConf": conf, "ikedtxEtc": etc, "ikedtxSocket": os.path.join(directory, "ikedtx.sock"),
            "ikedtxLog": os.path.join(directory, "ikedtx.log")}
    path = os.path.join(directory, "plan.json")
    with open(path, "w") as f:
        json.dump(plan, f, indent=1)
    return path


def flowPolicies(text):
    """
    The blocks of C{ip xfrm policy} output that are not per-socket
    policies (C{socket in}/C{socket out}: a daemon's IKE sockets bypassing
    IPsec, gone with the sockets).
    """
    blocks = [b for b in re.split(r"\n(?=src )", text.strip()) if b]
    return [b for b in blocks if not re.search(r"^\s*socket (in|out) ", b, re.M)]


_cache = {}


def runReport(cache, prefix, writePlan, timeout):
    """
    The report of the VM run of C{SCRIPT} on the plan C{writePlan(directory)}
    writes, booted once and kept in C{cache}; a failed run fails every test
    with its output.
    """
    if "report" not in cache:
        directory = tempfile.mkdtemp(prefix=prefix)
        try:
            plan = writePlan(directory)
            rc, output, seconds = runInVM(
                ["env", "PYTHONPATH=" + ROOT, sys.executable, "-u", SCRIPT, plan], timeout=timeout, cwd=ROOT)
            if BEGIN not in output or END not in output:
                raise AssertionError("no report from the VM (exit %d):\n%s" % (rc, output[-4000:]))
            data = json.loads(output.split(BEGIN, 1)[1].split(END, 1)[0])
            data["timings"]["hostSeconds"] = round(seconds, 1)
            data["log"] = "\n".join(line for line in output.splitlines() if line.startswith("["))
            cache["report"] = data
        except BaseException as e:
            cache["report"] = e
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    if isinstance(cache["report"], BaseException):
        raise cache["report"]
    return cache["report"]


def report():
    """
    The VM's report (booted once for the whole module).
    """
    return runReport(_cache, "ikedtx-vmcharon-", writePlan, 500)


class ScenarioChecks:
    """
    The checks of a scenario of C{tests/vm/charon_scenarios.py}'s report,
    for a test case whose module has its own C{scenarios} and C{report}.

    @ivar logNames: how the context names a's and b's logs.
    @ivar checkEncap: whether both sides' SAs of a NAT scenario must say
        espinudp.
    """

    logNames = ("ikedtx", "charon")
    checkEncap = False
    scenarios = SCENARIOS

    def report(self):
        return report()

    def context(self, data):
        return "\n---- VM log ----\n%s\n---- %s log ----\n%s\n---- %s log ----\n%s" % (
            data["log"], self.logNames[0], data["ikedtxLog"][-6000:], self.logNames[1], data["charonLog"][-6000:])

    def scenario(self, name):
        data = self.report()
        if "error" in data:
            self.fail("the VM run failed: %s\n%s%s" % (data["error"], data["traceback"], self.context(data)))
        result = data["scenarios"].get(name)
        if result is None:
            self.fail("scenario %s did not run%s" % (name, self.context(data)))
        if "error" in result:
            self.fail("%s: %s\n%s%s" % (name, result["error"], result.get("traceback", ""), self.context(data)))
        return data, result

    def checkTraffic(self, name):
        """
        Both daemons installed an SA each way with the negotiated algorithm
        and mode; every ping (a to b, then b to a) got its reply; each of
        the four SAs counted at least the pings; the router forwarded ESP
        (ESP in UDP through the NAT) and not one cleartext ICMP echo.
        """
        spec = dict((s[0], s) for s in self.scenarios)[name]
        data, result = self.scenario(name)
        context = json.dumps(result, indent=1) + self.context(data)
        self.assertTrue(result["installed"], context)
        self.assertEqual(result["ping"]["received"], PINGS, context)
        self.assertEqual(result["pingBack"]["received"], PINGS, context)
        for ns in ("a", "b"):
            sas = result["states"][ns]
            self.assertEqual(len(sas), 2, context)
            for sa in sas:
                for algorithm in ESP[spec[1]][2]:
                    self.assertIn(algorithm, sa["text"], context)
                self.assertIn("mode " + spec[2], sa["text"], context)
                self.assertGreaterEqual(sa["packets"], 2 * PINGS, context)
                self.assertGreater(sa["bytes"], 0, context)
        wire = result["wire"]
        self.assertEqual(wire["echo"], 0, context)
        if spec[5]:
            self.assertEqual(wire["esp"], 0, context)
            self.assertGreaterEqual(wire["natt"], 4 * PINGS, context)
            if self.checkEncap:
                for ns in ("a", "b"):
                    for sa in result["states"][ns]:
                        self.assertEqual((sa["encap"] or [None])[0], "espinudp", context)
        else:
            self.assertGreaterEqual(wire["esp"], 4 * PINGS, context)
            self.assertEqual(wire["natt"], 0, context)
        return result


class CharonKernelNetlinkVMTests(ScenarioChecks, SynchronousTestCase):
    def test_gcmTunnelIPv4(self):
        """
        AES-GCM-16 (RFC 4106), tunnel mode, IPv4; ikedtx initiates.
        """
        self.checkTraffic("gcm_tunnel_v4")

    def test_cbcSha256TunnelIPv6(self):
        """
        AES-CBC with HMAC-SHA2-256-128 (RFC 3602, 4868), tunnel mode, IPv6;
        ikedtx initiates.
        """
        self.checkTraffic("cbc_tunnel_v6")

    def test_chachaTransportIPv6(self):
        """
        ChaCha20-Poly1305 (RFC 7634), transport mode, IPv6; ikedtx
        initiates.
        """
        self.checkTraffic("chacha_transport_v6")

    def test_gcmTransportIPv6(self):
        """
        AES-GCM-16, transport mode, IPv6; charon initiates.
        """
        self.checkTraffic("gcm_transport_v6")

    def test_cbcSha256TransportIPv4(self):
        """
        AES-CBC with HMAC-SHA2-256-128, transport mode, IPv4; charon
        initiates.
        """
        self.checkTraffic("cbc_transport_v4")

    def test_chachaTunnelIPv4(self):
        """
        ChaCha20-Poly1305, tunnel mode, IPv4; charon initiates.
        """
        self.checkTraffic("chacha_tunnel_v4")

    def test_nattThroughRealNat(self):
        """
        RFC 3948 / RFC 7296 2.23: ikedtx behind the router's nftables
        masquerade initiates; both move to port 4500 and install UDP
        encapsulated SAs (ikedtx's with the UDP_ENCAP socket on 4500, the
        peer seen at the NAT's outside address), and the pings cross the NAT
        as ESP in UDP.
        """
        result = self.checkNat("natt_gcm_tunnel_v4")
        self.assertEqual([sa["encap"][1:] for sa in result["states"]["a"]], [["4500", "4500"]] * 2)

    def test_virtualIPClient(self):
        """
        ikedtx as road warrior (RFC 7296 2.19) over XFRM: charon lends it the
        first address of its pool, ikedtx's privileged parent puts it on
        C{lo} for the worker and the worker negotiates its Child SA from it; pings pass through ESP both ways; after
        SIGTERM the address is gone from C{lo}.
        """
        self.checkTraffic("vip_gcm_tunnel_v4")
        data, result = self.scenario("vip_gcm_tunnel_v4")
        context = json.dumps(result, indent=1) + self.context(data)
        self.assertIn("10.99.0.1/32", result["lo"], context)
        self.assertNotIn("10.99.0.1", data["stop"]["lo"], context)
        # Privilege-separated (root, the default): the parent put it there
        # for the worker, which has no CAP_NET_ADMIN.
        self.assertIn("privilege separation: worker as _iked", data["ikedtxLog"], context)
        self.assertIn("virtual address 10.99.0.1 on lo (for the worker)", data["ikedtxLog"], context)

    def test_nattResponderCharonBehindNat(self):
        """
        The other way round: charon behind the masquerade initiates to
        ikedtx, whose policy has C{peer any}; ikedtx as responder sees the
        peer at the NAT's address and installs UDP encapsulated SAs.
        """
        self.checkNat("natt_cbc_tunnel_v4_charon_behind")

    def checkNat(self, name):
        """
        L{checkTraffic}, and every SA on both sides is ESP in UDP
        (C{espinudp}) between the local address and the address the peer is
        seen at (the NAT's, for the side outside it).
        """
        result = self.checkTraffic(name)
        plan = [scenarioPlan(n, *spec) for n, spec in enumerate(SCENARIOS, 1) if spec[0] == name][0]
        context = json.dumps(result["states"], indent=1)
        for ns, peer in (("a", plan["bSeenByA"]), ("b", plan["aSeenByB"])):
            self.assertEqual(sorted((sa["src"], sa["dst"]) for sa in result["states"][ns]),
                             sorted([(plan[ns], peer), (peer, plan[ns])]), context)
            for sa in result["states"][ns]:
                self.assertIsNotNone(sa["encap"], context)
                self.assertEqual(sa["encap"][0], "espinudp", context)
        self.assertIn(NAT_OUTSIDE if plan["nat"] == "a" else NAT_INSIDE, (plan["aSeenByB"], plan["bSeenByA"]))
        return result

    def test_sigtermLeavesNothing(self):
        """
        After SIGTERM, ikedtx shuts down (its reactor's main loop ends; as
        twistd does, it then exits with the signal) and its namespace holds
        no SA and no policy (it held both just before).
        """
        data = report()
        if "error" in data:
            self.fail("the VM run failed: %s\n%s%s" % (data["error"], data["traceback"], self.context(data)))
        context = json.dumps(data.get("stop"), indent=1) + self.context(data)
        self.assertIn("src ", data["beforeStop"]["state"], context)
        self.assertIn("dir out", data["beforeStop"]["policy"], context)
        self.assertIn(data["stop"]["exit"], (0, -signal.SIGTERM), context)
        self.assertIn("Main loop terminated.", data["ikedtxLog"], context)
        self.assertEqual(data["stop"]["state"].strip(), "", context)
        self.assertEqual(data["stop"]["policy"].strip(), "", context)

    def test_sigtermDeletesAtPeer(self):
        """
        On its way out ikedtx sends each IKE SA's Delete (RFC 7296 1.4.1):
        charon, which held SAs and policies for every scenario, removes them
        (its IKE sockets' own bypass policies stay) and lists no IKE SA.
        """
        data = report()
        if "error" in data:
            self.fail("the VM run failed: %s\n%s%s" % (data["error"], data["traceback"], self.context(data)))
        context = json.dumps(data.get("peerAfterStop"), indent=1) + self.context(data)
        self.assertEqual(data["peerBeforeStop"]["state"].count("proto esp"), 2 * len(SCENARIOS), context)
        self.assertEqual(data["peerAfterStop"]["state"].strip(), "", context)
        self.assertEqual(flowPolicies(data["peerAfterStop"]["policy"]), [], context)
        self.assertNotIn("ESTABLISHED", data["peerAfterStop"]["sas"], context)

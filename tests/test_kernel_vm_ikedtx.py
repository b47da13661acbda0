"""
ikedtx against ikedtx, both with the XFRM provider, in the ESP-capable VM
(L{ikedtx.testing.lab.vm}), PSK: tests/vm/charon_scenarios.py with a second
ikedtx in namespace b where L{tests.test_kernel_vm_charon} has charon, every
scenario in ONE boot.

Per scenario, one IKE SA between its own pair of addresses, initiated by a
or by b: AES-GCM, AES-CBC with HMAC-SHA2-256 and ChaCha20-Poly1305, tunnel
and transport, IPv4 and IPv6, and ESP in UDP through the router's nftables
masquerade. Pings pass both ways, the four SAs count them in the kernel,
and the router between the namespaces forwards ESP (ESP in UDP through the
NAT) and not one cleartext ICMP echo. Then SIGTERM to a leaves no SA and no
policy there, and b, told by a's Deletes, removes its side.
"""

import json
import os
import re

from twisted.trial.unittest import SynchronousTestCase

from tests.test_kernel_vm_charon import (PSK, ESP, ScenarioChecks, flowPolicies, ikedtxPolicy, runReport,
                                         scenarioPlan)

#: (name, ESP, mode, IP version, initiator: "ikedtx" is a, "peer" is b, the host behind the NAT or None)
SCENARIOS = [
    ("gcm_tunnel_v4", "gcm", "tunnel", 4, "ikedtx", None),
    ("cbc_tunnel_v6", "cbc", "tunnel", 6, "peer", None),
    ("chacha_transport_v6", "chacha", "transport", 6, "ikedtx", None),
    ("gcm_transport_v6", "gcm", "transport", 6, "peer", None),
    ("cbc_transport_v4", "cbc", "transport", 4, "ikedtx", None),
    ("chacha_tunnel_v4", "chacha", "tunnel", 4, "peer", None),
    ("natt_gcm_tunnel_v4", "gcm", "tunnel", 4, "ikedtx", "a"),
]


def peerPolicy(s):
    """
    b's policy for scenario C{s}: a's mirrored, active where b initiates,
    C{peer any} where a is behind the NAT.
    """
    host = "/32" if s["version"] == 4 else "/128"
    if s["mode"] == "tunnel":
        flow = "from %s%s to %s%s" % (s["bInner"], host, s["aInner"], host)
    else:
        flow = "from %s to %s" % (s["b"], s["a"])
    peer = "any" if s["nat"] == "a" else s["a"]
    return 'ikev2 "%s" %s %sesp %s local %s peer %s %s srcid %s dstid %s psk "%s"\n' % (
        s["name"], "active" if s["initiator"] == "peer" else "passive",
        "transport " if s["mode"] == "transport" else "", flow, s["b"], peer, ESP[s["esp"]][1], s["b"], s["a"], PSK)


def writePlan(directory):
    scenarios = [scenarioPlan(n, *spec) for n, spec in enumerate(SCENARIOS, 1)]
    etc = os.path.join(directory, "etc")
    for sub in ("ca", "certs", "crls", "private", "pubkeys"):
        os.makedirs(os.path.join(etc, sub), exist_ok=True)
    plan = {"peer": "ikedtx", "scenarios": scenarios, "ikedtxEtc": etc}
    for key, name, policy in (("ikedtx", "a", ikedtxPolicy), ("peer", "b", peerPolicy)):
        conf = os.path.join(directory, name + ".conf")
        with open(conf, "w") as f:
            f.write("".join(policy(s) for s in scenarios))
        os.chmod(conf, 0o600)
        plan[key + "Conf"] = conf
        plan[key + "Socket"] = os.path.join(directory, name + ".sock")
        plan[key + "Log"] = os.path.join(directory, name + ".log")
    path = os.path.join(directory, "plan.json")
    with open(path, "w") as f:
        json.dump(plan, f, indent=1)
    return path


_cache = {}


def report():
    """
    The VM's report (booted once for the whole module).
    """
    return runReport(_cache, "ikedtx-vmpair-", writePlan, 1800)


class IkedtxKernelVMTests(ScenarioChecks, SynchronousTestCase):
    logNames = ("a's", "b's")
    checkEncap = True
    scenarios = SCENARIOS

    def report(self):
        return report()

    def test_gcmTunnelIPv4(self):
        """
        AES-GCM-16 (RFC 4106), tunnel mode, IPv4; a initiates.
        """
        self.checkTraffic("gcm_tunnel_v4")

    def test_cbcSha256TunnelIPv6(self):
        """
        AES-CBC with HMAC-SHA2-256-128 (RFC 3602, 4868), tunnel mode, IPv6;
        b initiates.
        """
        self.checkTraffic("cbc_tunnel_v6")

    def test_chachaTransportIPv6(self):
        """
        ChaCha20-Poly1305 (RFC 7634), transport mode, IPv6; a initiates.
        """
        self.checkTraffic("chacha_transport_v6")

    def test_gcmTransportIPv6(self):
        """
        AES-GCM-16, transport mode, IPv6; b initiates.
        """
        self.checkTraffic("gcm_transport_v6")

    def test_cbcSha256TransportIPv4(self):
        """
        AES-CBC with HMAC-SHA2-256-128, transport mode, IPv4; a initiates.
        """
        self.checkTraffic("cbc_transport_v4")

    def test_chachaTunnelIPv4(self):
        """
        ChaCha20-Poly1305, tunnel mode, IPv4; b initiates.
        """
        self.checkTraffic("chacha_tunnel_v4")

    def test_nattThroughRealNat(self):
        """
        RFC 3948 / RFC 7296 2.23: a behind the router's masquerade initiates
        to b (C{peer any}); both move to port 4500, install UDP
        encapsulated SAs on 4500, and the pings cross the NAT as ESP in UDP.
        """
        result = self.checkTraffic("natt_gcm_tunnel_v4")
        self.assertEqual([sa["encap"][1:] for sa in result["states"]["a"]], [["4500", "4500"]] * 2)

    def test_sigtermLeavesNothing(self):
        """
        After SIGTERM a holds no SA and no policy (it held both before);
        b, which held SAs and flows for every scenario, removes them on a's
        Deletes (RFC 7296 1.4.1).
        """
        data = report()
        if "error" in data:
            self.fail("the VM run failed: %s\n%s%s" % (data["error"], data["traceback"], self.context(data)))
        context = json.dumps({key: data.get(key) for key in ("stop", "peerAfterStop")}, indent=1) + self.context(data)
        self.assertIn("dir out", data["beforeStop"]["policy"], context)
        self.assertEqual(data["stop"]["state"].strip(), "", context)
        self.assertEqual(data["stop"]["policy"].strip(), "", context)
        self.assertEqual(data["peerBeforeStop"]["state"].count("proto esp"), 2 * len(SCENARIOS), context)
        # b goes on running: its active policies' traps stay, and it may
        # already be trying to reach a again (larval SAs of reqid 0); none
        # of the Child SAs' SAs or flows (reqids 0x69000001...) is left.
        self.assertNotRegex(data["peerAfterStop"]["state"], r"reqid 1761\d{6}\b", context)
        self.assertEqual([p for p in flowPolicies(data["peerAfterStop"]["policy"]) if re.search(r"reqid 1761\d{6}\b", p)],
                         [], context)

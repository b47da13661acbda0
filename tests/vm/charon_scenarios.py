# -*- test-case-name: tests.test_kernel_vm_charon -*-
"""
Runs INSIDE the ESP-capable VM (ikedtx/testing/vm/vmrun.sh): ikedtx with
C{--kernel xfrm} in namespace C{a} against strongSwan's charon with
kernel-netlink (its ordinary kernel mode) in namespace C{b} (or, with
C{"peer": "ikedtx"} in the plan, against a second ikedtx with C{--kernel
xfrm} there: L{tests.test_kernel_vm_ikedtx}), with a router
C{m} between them, every scenario of the plan in one boot, then SIGTERM to
ikedtx. Prints a JSON report between marker lines for
L{tests.test_kernel_vm_charon} to check on the host.

    a (ikedtx) --- to-m | to-a  m (router, nft counters, NAT) to-b | to-m --- b (charon)
    a: 192.0.2.N/24 2001:db8:1::N/64      b: 198.51.100.N/24 2001:db8:2::N/64

The host writes the plan (addresses, which side initiates, charon's
strongswan.conf and swanctl.conf made by L{ikedtx.testing.lab.charon},
ikedtx's iked.conf); this script uses nothing but the standard library,
since Python is slow under emulation. It records what it saw: per scenario
the ping replies, both namespaces' C{ip -s xfrm state} blocks of the
scenario's addresses, and what the router forwarded (cleartext ICMP echoes,
ESP, UDP on 4500); the host decides what passes.

    python3 charon_scenarios.py PLAN.json
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback

START = time.time()
MARK_BEGIN = "=====IKEDTX-VM-REPORT-BEGIN====="
MARK_END = "=====IKEDTX-VM-REPORT-END====="
CHARON = "/usr/lib/ipsec/charon"

#: what the router counts in its forward chain (the wire between a and b):
#: cleartext ICMP echoes, ESP, and ESP in UDP (a non-zero SPI where IKE on
#: 4500 has its zero non-ESP marker and NAT keepalives have one byte,
#: RFC 3948 2.2 and 2.3)
NFT_RULES = """
table inet vmi {
  counter c_echo {}
  counter c_esp {}
  counter c_natt {}
  chain forward {
    type filter hook forward priority 0; policy accept;
    icmp type { echo-request, echo-reply } counter name c_echo
    icmpv6 type { echo-request, echo-reply } counter name c_echo
    meta l4proto esp counter name c_esp
    udp sport 4500 @th,64,32 != 0 counter name c_natt
    udp sport != 4500 udp dport 4500 @th,64,32 != 0 counter name c_natt
  }
}
"""


def log(text):
    sys.stdout.write("[%6.2f] %s\n" % (time.time() - START, text))
    sys.stdout.flush()


def sh(command, check=True, timeout=120):
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode:
        raise RuntimeError("%s: rc %d: %s%s" % (command, result.returncode, result.stdout, result.stderr))
    return result.stdout + result.stderr


def poll(predicate, timeout, interval=0.2):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() > deadline:
            return value
        time.sleep(interval)


def setup(plan):
    sh("modprobe -a xfrm_user esp4 esp6 xfrm4_tunnel xfrm6_tunnel tunnel4 tunnel6 veth authenc echainiv seqiv "
       "gcm ctr chacha20poly1305 sha256_ssse3 sha512_ssse3 aesni_intel ghash_clmulni_intel nf_tables nft_nat "
       "nft_masq nft_counter nf_nat nf_conntrack 2>&1 | grep -v 'not found'", check=False)
    for ns in ("a", "m", "b"):
        sh("ip netns add %s; ip -n %s link set lo up" % (ns, ns))
        for key in ("all.accept_dad", "default.accept_dad"):
            sh("ip netns exec %s sysctl -qw net.ipv6.conf.%s=0" % (ns, key))
    sh("ip link add to-m netns a type veth peer name to-a netns m")
    sh("ip link add to-b netns m type veth peer name to-m netns b")
    sh("ip netns exec m sysctl -qw net.ipv4.ip_forward=1; ip netns exec m sysctl -qw net.ipv6.conf.all.forwarding=1")
    sh("ip -n m addr add 192.0.2.254/24 dev to-a; ip -n m addr add 2001:db8:1::fe/64 dev to-a nodad; "
       "ip -n m addr add 198.51.100.254/24 dev to-b; ip -n m addr add 2001:db8:2::fe/64 dev to-b nodad")
    for s in plan["scenarios"]:
        for ns, dev, key in (("a", "to-m", "a"), ("b", "to-m", "b")):
            prefix = "64" if ":" in s[key] else "24"
            sh("ip -n %s addr add %s/%s dev %s nodad" % (ns, s[key], prefix, dev))
            # A road warrior's inner address is lent by charon at run time.
            if s["mode"] == "tunnel" and not (key == "a" and s.get("vip")):
                sh("ip -n %s addr add %s/%s dev lo" % (ns, s[key + "Inner"], "128" if ":" in s[key] else "32"))
    for ns in ("a", "m", "b"):
        for dev in ("to-a", "to-m", "to-b"):
            sh("ip -n %s link set %s up" % (ns, dev), check=False)
    sh("ip -n a route add default via 192.0.2.254; ip -n a -6 route add default via 2001:db8:1::fe")
    sh("ip -n b route add default via 198.51.100.254; ip -n b -6 route add default via 2001:db8:2::fe")
    rules = NFT_RULES
    # the scenario's host behind the NAT: its packets leave m from m's
    # address on the other side
    masquerade = ['    ip saddr %s oifname "%s" masquerade\n' % (s[s["nat"]], "to-b" if s["nat"] == "a" else "to-a")
                  for s in plan["scenarios"] if s["nat"]]
    if masquerade:
        rules += ("table ip vminat {\n  chain postrouting {\n    type nat hook postrouting priority srcnat;\n"
                  "%s  }\n}\n" % ("".join(masquerade),))
    with open("/tmp/vmi.nft", "w") as f:
        f.write(rules)
    sh("ip netns exec m nft -f /tmp/vmi.nft")
    poll(lambda: "tentative" not in sh("ip -n a addr; ip -n b addr; ip -n m addr"), 5)


def wire():
    """
    The router's counters: {name: packets}.
    """
    out = json.loads(sh("ip netns exec m nft -j list counters table inet vmi"))
    counts = {}
    for item in out["nftables"]:
        if "counter" in item:
            counts[item["counter"]["name"][2:]] = item["counter"]["packets"]
    return counts


def states(ns, a, b):
    """
    The C{ip -s xfrm state} blocks between addresses C{a} and C{b} (either
    way) in C{ns}: [{"src", "dst", "spi", "packets", "bytes", "encap", "text"}].
    """
    out = sh("ip -n %s -s xfrm state" % (ns,))
    found = []
    for block in re.split(r"\n(?=src )", out):
        m = re.match(r"src (\S+) dst (\S+)", block)
        if not m or {m.group(1), m.group(2)} != {a, b}:
            continue
        spi = re.search(r"spi (0x[0-9a-f]+)", block)
        current = re.search(r"lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)", block)
        encap = re.search(r"encap type (\S+) sport (\d+) dport (\d+)", block)
        found.append({"src": m.group(1), "dst": m.group(2), "spi": spi.group(1) if spi else None,
                      "bytes": int(current.group(1)) if current else 0,
                      "packets": int(current.group(2)) if current else 0,
                      "encap": list(encap.groups()) if encap else None, "text": block})
    return found


def ping(ns, source, destination, count=3):
    out = sh("ip netns exec %s ping -n -c %d -i 0.3 -W 3 -I %s %s" % (ns, count, source, destination),
             check=False, timeout=60)
    match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    return {"transmitted": int(match.group(1)) if match else 0, "received": int(match.group(2)) if match else 0,
            "output": out[-400:]}


def startCharon(plan):
    directory = plan["charonDir"]
    env = dict(os.environ, STRONGSWAN_CONF=os.path.join(directory, "strongswan.conf"))
    out = open(os.path.join(directory, "charon.out"), "wb")
    process = subprocess.Popen(
        ["ip", "netns", "exec", "b", "unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs /run && exec "$0"', CHARON],
        stdout=out, stderr=out, env=env)
    if not poll(lambda: os.path.exists(plan["charonVici"]) or process.poll() is not None, 60):
        raise RuntimeError("charon's vici socket did not appear")
    if process.poll() is not None:
        raise RuntimeError("charon exited with %s" % (process.returncode,))
    loaded = swanctl(plan, "--load-all", "--file", os.path.join(directory, "swanctl.conf"))
    log("charon up: " + "; ".join(line for line in loaded.splitlines() if "plugin" not in line))
    return process


def swanctl(plan, *args, timeout=120):
    result = subprocess.run(["swanctl"] + list(args) + ["--uri", "unix://" + plan["charonVici"]],
                            capture_output=True, text=True, timeout=timeout)
    return result.stdout + result.stderr


def startIkedtx(plan, ns="a", conf=None, socket=None, logPath=None):
    out = open(logPath or plan["ikedtxLog"], "wb")
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", "from ikedtx.cli import iked; iked()", "-d",
         "-f", conf or plan["ikedtxConf"], "--kernel", "xfrm", "-s", socket or plan["ikedtxSocket"], "--etc-dir",
         plan["ikedtxEtc"]], stdout=out, stderr=out)


def peerIsIkedtx(plan):
    return plan.get("peer") == "ikedtx"


def startPeer(plan):
    """
    The peer in namespace b: charon, or a second ikedtx (its active
    policies initiate once it runs).
    """
    if peerIsIkedtx(plan):
        return startIkedtx(plan, "b", plan["peerConf"], plan["peerSocket"], plan["peerLog"])
    return startCharon(plan)


def peerLog(plan):
    if peerIsIkedtx(plan):
        return plan["peerLog"]
    return os.path.join(plan["charonDir"], "charon.log")


def hasFlow(ns, source, destination, direction):
    """
    C{ns} has an XFRM policy from C{source} to C{destination} (host
    selectors) in C{direction}.
    """
    out = sh("ip -n %s xfrm policy" % (ns,))
    return re.search(r"^src %s/\d+ dst %s/\d+ *\n(?:\t.*\n)*?\tdir %s " % (
        re.escape(source), re.escape(destination), direction), out, re.M) is not None


def installed(s):
    """
    Both sides hold an SA each way between the scenario's outer addresses
    and the in and out policies of its flow (the SAs go in first).
    """
    inner = ("aInner", "bInner") if s["mode"] == "tunnel" else ("a", "b")
    a, b = s[inner[0]], s[inner[1]]
    return (all(len([x for x in states(ns, peer, s[ns]) if x["spi"]]) >= 2
                for ns, peer in (("a", s["bSeenByA"]), ("b", s["aSeenByB"])))
            and hasFlow("a", a, b, "out") and hasFlow("a", b, a, "in")
            and hasFlow("b", b, a, "out") and hasFlow("b", a, b, "in"))


def tail(path, lines=60):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return str(e)


def main():
    plan = json.load(open(sys.argv[1]))
    report = {"timings": {}, "scenarios": {}}
    charon = ours = None
    try:
        setup(plan)
        report["timings"]["setup"] = round(time.time() - START, 2)
        log("namespaces ready")
        charon = startPeer(plan)
        ours = startIkedtx(plan)
        started = time.time()
        ready = poll(lambda: os.path.exists(plan["ikedtxSocket"]) or ours.poll() is not None, 240, 0.5)
        report["timings"]["ikedtxStart"] = round(time.time() - started, 2)
        if not ready or ours.poll() is not None:
            raise RuntimeError("ikedtx did not start (exit %s)" % (ours.poll(),))
        log("ikedtx up")
        if peerIsIkedtx(plan):
            # Both privilege-separated workers serve peers (the parents
            # bind the control sockets first); b initiates its own active
            # policies.
            for process, path in ((ours, plan["ikedtxLog"]), (charon, plan["peerLog"])):
                if not poll(lambda: re.search(r"loaded \d+ policies", tail(path, 400)) or process.poll() is not None,
                            300, 0.5) or process.poll() is not None:
                    raise RuntimeError("ikedtx (%s) did not start (exit %s)" % (path, process.poll()))
            log("both ikedtx up")
        # ikedtx initiates its active policies at start; charon the others.
        for s in plan["scenarios"]:
            if s["initiator"] == "charon" and not peerIsIkedtx(plan):
                s["initiate"] = swanctl(plan, "--initiate", "--child", s["name"], "--timeout", "30")[-1500:]
                log("charon initiated %s" % (s["name"],))
        # One deadline for all: a run where nothing installs fails in
        # minutes, not once per scenario.
        deadline = time.time() + 120
        for s in plan["scenarios"]:
            result = report["scenarios"][s["name"]] = {}
            try:
                result["installed"] = bool(poll(lambda: installed(s), max(0, deadline - time.time()), 0.5))
                result["initiate"] = s.get("initiate")
                source, destination = (s["aInner"], s["bInner"]) if s["mode"] == "tunnel" else (s["a"], s["b"])
                sh("ip netns exec m nft reset counters table inet vmi")
                result["ping"] = ping("a", source, destination)
                result["pingBack"] = ping("b", destination, source)
                result["wire"] = wire()
                result["lo"] = sh("ip -n a -o addr show dev lo")
                result["states"] = {"a": states("a", s["a"], s["bSeenByA"]), "b": states("b", s["aSeenByB"], s["b"])}
                log("%s: installed %s, %d + %d replies, wire %s" % (
                    s["name"], result["installed"], result["ping"]["received"], result["pingBack"]["received"],
                    result["wire"]))
            except Exception as e:
                result["error"] = repr(e)
                result["traceback"] = traceback.format_exc()
        report["sas"] = "" if peerIsIkedtx(plan) else swanctl(plan, "--list-sas")[-6000:]
        report["beforeStop"] = {"state": sh("ip -n a xfrm state"), "policy": sh("ip -n a xfrm policy")}
        peerBefore = {"state": sh("ip -n b xfrm state"), "policy": sh("ip -n b xfrm policy")}
        # SIGTERM: ikedtx removes everything it installed in a.
        os.kill(ours.pid, signal.SIGTERM)
        stopped = time.time()
        poll(lambda: ours.poll() is not None, 60, 0.2)
        report["stop"] = {"exit": ours.poll(), "seconds": round(time.time() - stopped, 2),
                          "state": sh("ip -n a xfrm state"), "policy": sh("ip -n a xfrm policy"),
                          "lo": sh("ip -n a -o addr show dev lo", check=False)}
        # The Deletes ikedtx sent on its way out reach charon, which removes
        # its side.
        report["peerBeforeStop"] = peerBefore
        poll(lambda: not sh("ip -n b xfrm state").strip(), 15, 0.5)
        report["peerAfterStop"] = {"state": sh("ip -n b xfrm state"), "policy": sh("ip -n b xfrm policy"),
                                   "sas": "" if peerIsIkedtx(plan) else swanctl(plan, "--list-sas")}
        log("ikedtx stopped: %s" % (ours.poll(),))
    except Exception as e:
        report["error"] = repr(e)
        report["traceback"] = traceback.format_exc()
    finally:
        for process in (ours, charon):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        report["ikedtxLog"] = tail(plan["ikedtxLog"], 150)
        report["charonLog"] = tail(peerLog(plan), 150)
        report["timings"]["total"] = round(time.time() - START, 2)
        sys.stdout.write("%s\n%s\n%s\n" % (MARK_BEGIN, json.dumps(report), MARK_END))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

# -*- test-case-name: tests.test_bench -*-
"""
Runs INSIDE the ESP-capable VM for bench/xfrmrate.py (standard library only:
Python is slow under emulation). For each responder in the plan (charon with
kernel-netlink, ikedtx with C{--kernel xfrm}), in fresh namespaces
a (192.0.2.1) and b (192.0.2.2) joined by a veth pair: start the responder
in b, then the same charon initiator in a, whose one connection has N
children (10.1.x.y/32 <-> 10.2.x.y/32) with C{start_action = start}: loading
it starts one IKE SA and N Child SAs (CREATE_CHILD_SA, no PFS, one exchange
at a time). Measured: the seconds from loading until the responder's
namespace holds all 2N SAs (and N outbound policies), and the responder's
CPU seconds in that time. Prints one JSON line per run between markers.

    python3 xfrmrate_vm.py PLAN.json
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

START = time.time()
MARK_BEGIN = "=====XFRMRATE-BEGIN====="
MARK_END = "=====XFRMRATE-END====="
CHARON = "/usr/lib/ipsec/charon"


def log(text):
    sys.stdout.write("[%6.2f] %s\n" % (time.time() - START, text))
    sys.stdout.flush()


def sh(command, check=True):
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    if check and result.returncode:
        raise RuntimeError("%s: rc %d: %s%s" % (command, result.returncode, result.stdout, result.stderr))
    return result.stdout + result.stderr


def poll(predicate, timeout, interval=0.1):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() > deadline:
            return value
        time.sleep(interval)


def cpuSeconds(pid):
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def namespaces():
    for ns in ("a", "b"):
        sh("ip netns del %s 2>/dev/null; true" % (ns,), check=False)
        sh("ip netns add %s; ip -n %s link set lo up" % (ns, ns))
    sh("ip link add to-b netns a type veth peer name to-a netns b")
    sh("ip -n a addr add 192.0.2.1/24 dev to-b; ip -n b addr add 192.0.2.2/24 dev to-a")
    sh("ip -n a link set to-b up; ip -n b link set to-a up")


def charon(ns, directory, vici):
    if os.path.exists(vici):
        os.unlink(vici)
    env = dict(os.environ, STRONGSWAN_CONF=os.path.join(directory, "strongswan.conf"))
    out = open(os.path.join(directory, "charon.out"), "wb")
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs /run && exec "$0"', CHARON],
        stdout=out, stderr=out, env=env)


def swanctl(vici, *args):
    result = subprocess.run(["swanctl"] + list(args) + ["--uri", "unix://" + vici], capture_output=True, text=True,
                            timeout=120)
    return result.stdout + result.stderr


def count(ns):
    """
    (SAs, outbound policies) in C{ns}.
    """
    return (len(re.findall(r"^src ", sh("ip -n %s xfrm state" % (ns,)), re.M)),
            len(re.findall(r"dir out", sh("ip -n %s xfrm policy" % (ns,)))))


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(plan, responder):
    n = plan["n"]
    namespaces()
    initiator = plan["initiator"]
    if responder == "charon":
        process = charon("b", plan["responderCharon"]["dir"], plan["responderCharon"]["vici"])
        ready = poll(lambda: os.path.exists(plan["responderCharon"]["vici"]), 60)
        if ready:
            swanctl(plan["responderCharon"]["vici"], "--load-all", "--file",
                    os.path.join(plan["responderCharon"]["dir"], "swanctl.conf"))
    else:
        if os.path.exists(plan["ikedtx"]["socket"]):
            os.unlink(plan["ikedtx"]["socket"])
        out = open(plan["ikedtx"]["log"], "wb")
        process = subprocess.Popen(
            ["ip", "netns", "exec", "b", sys.executable, "-c", "from ikedtx.cli import iked; iked()", "-d",
             "-f", plan["ikedtx"]["conf"], "--kernel", "xfrm", "-6", "-s", plan["ikedtx"]["socket"],
             "--etc-dir", plan["ikedtx"]["etc"]], stdout=out, stderr=out)
        ready = poll(lambda: os.path.exists(plan["ikedtx"]["socket"]) or process.poll() is not None, 240, 0.3)
        ready = ready and process.poll() is None
    if not ready:
        stop(process)
        return {"responder": responder, "error": "responder did not start"}
    first = charon("a", initiator["dir"], initiator["vici"])
    poll(lambda: os.path.exists(initiator["vici"]), 60)
    cpu0, initiatorCpu0 = cpuSeconds(process.pid), cpuSeconds(first.pid)
    t0 = time.time()
    loaded = swanctl(initiator["vici"], "--load-all", "--file", os.path.join(initiator["dir"], "swanctl.conf"))
    done = poll(lambda: count("b") >= (2 * n, n), plan["timeout"], 0.25)
    seconds = time.time() - t0
    cpu, initiatorCpu = cpuSeconds(process.pid), cpuSeconds(first.pid)
    result = {"responder": responder, "n": n, "complete": bool(done), "seconds": round(seconds, 3),
              "responderCpu": round(cpu - cpu0, 3) if cpu is not None and cpu0 is not None else None,
              "initiatorCpu": round(initiatorCpu - initiatorCpu0, 3) if initiatorCpu is not None else None,
              "responderCounts": count("b"), "initiatorCounts": count("a")}
    if not done:
        result["loaded"] = loaded[-1000:]
    log("%s: %s" % (responder, json.dumps(result)))
    stop(first)
    stop(process)
    return result


def provider(plan):
    """
    ikedtx's XFRM provider alone, in this process (no IKE): per Child SA,
    the inbound and outbound SA (AES-GCM) and the out/in/fwd flows of a
    /32 pair, as the core gives them; then flush. Imports are not timed.
    """
    import ctypes
    from ipaddress import ip_address

    from twisted.internet import reactor

    from ikedtx.kernel.interfaces import KernelFlow, KernelSA, KernelSelector
    from ikedtx.kernel.xfrm import XfrmKernel
    from ikedtx.wire.constants import EncrId, ProtocolId

    n = plan["n"]
    namespaces()
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/b", os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "setns b")
    os.close(fd)
    kernel = XfrmKernel(reactor)
    local, remote = ip_address("192.0.2.2"), ip_address("192.0.2.1")
    work = []
    for i in range(n):
        mine = ip_address("10.2.%d.%d" % (i // 250, i % 250 + 1))
        theirs = ip_address("10.1.%d.%d" % (i // 250, i % 250 + 1))
        common = dict(protocol=ProtocolId.ESP, mode="tunnel", encryption=(EncrId.AES_GCM_16, 128), integrity=None,
                      reqid=i + 1, integrityKey=b"")
        sas = [KernelSA(inbound=True, spi=0x10000 + i, source=remote, destination=local,
                        encryptionKey=os.urandom(20), **common),
               KernelSA(inbound=False, spi=0x20000 + i, source=local, destination=remote,
                        encryptionKey=os.urandom(20), **common)]
        selMine, selTheirs = KernelSelector(mine, mine), KernelSelector(theirs, theirs)
        flows = [KernelFlow(selMine, selTheirs, "out", ProtocolId.ESP, "tunnel", local, remote, i + 1, False),
                 KernelFlow(selTheirs, selMine, "in", ProtocolId.ESP, "tunnel", remote, local, i + 1, False),
                 KernelFlow(selTheirs, selMine, "fwd", ProtocolId.ESP, "tunnel", remote, local, i + 1, False)]
        work.append((sas, flows))
    errors = []
    cpu0, t0 = time.process_time(), time.time()
    for sas, flows in work:
        for d in [kernel.addSA(sa) for sa in sas] + [kernel.addFlow(f) for f in flows]:
            d.addErrback(errors.append)
    seconds, cpu = time.time() - t0, time.process_time() - cpu0
    counts = count("b")
    t1 = time.time()
    kernel.flush().addErrback(errors.append)
    flushSeconds = time.time() - t1
    result = {"responder": "provider", "n": n, "complete": counts >= (2 * n, n) and not errors,
              "seconds": round(seconds, 3), "responderCpu": round(cpu, 3), "initiatorCpu": None,
              "responderCounts": counts, "flushSeconds": round(flushSeconds, 3), "afterFlush": count("b"),
              "errors": [str(e) for e in errors[:5]]}
    log("provider: %s" % (json.dumps(result),))
    return result


def main():
    plan = json.load(open(sys.argv[1]))
    sh("modprobe -a xfrm_user esp4 veth gcm seqiv aesni_intel ghash_clmulni_intel 2>&1 | grep -v 'not found'",
       check=False)
    results = []
    for responder in plan["responders"]:
        try:
            results.append(provider(plan) if responder == "provider" else run(plan, responder))
        except Exception as e:
            results.append({"responder": responder, "error": repr(e)})
    sys.stdout.write("%s\n%s\n%s\n" % (MARK_BEGIN, json.dumps(results), MARK_END))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

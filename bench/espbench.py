#!/usr/bin/env python3
# -*- test-case-name: tests.test_bench -*-
"""
espbench: TCP throughput through user-space ESP tunnels, ikedtx's datapath
(C{--kernel userspace}) next to strongSwan's kernel-libipsec, on one
machine.

    sudo python3 bench/espbench.py [--seconds 5] [--esp gcm,cbc] [--streams 4]
                                   [--pairs ikedtx-charon,charon-charon,ikedtx-ikedtx]
                                   [--before DIR] [--profile DIR] [--repeat N] [--output FILE.md]

Topology: two network namespaces joined by a veth pair (ikedtx.testing.lab.Network:
a = 192.0.2.1 with 10.1.0.1 on lo, b = 192.0.2.2 with 10.2.0.1 on lo). For
each pair of daemons and ESP proposal a fresh pair is started, one PSK
tunnel 10.1.0.1 <-> 10.2.0.1 is set up (ESP in UDP on 4500: libipsec
always encapsulates, ikedtx is told C{natt}), and iperf3 runs one TCP
stream from a to b for --seconds, then the reverse (-R), then --streams
parallel TCP streams from a to b, then a UDP flood of 64-byte datagrams
from a to b (the packets/s column: datagrams received per second). The
figures are iperf3's received bits per second; the CPU seconds used by
each daemon during the runs come from /proc/PID/stat, and give side a's
CPU seconds per GB it carried in the one-stream a->b run and its CPU
microseconds per 64-byte packet received in the UDP flood; each run's JSON
line also has the segments iperf3's TCP senders retransmitted (a->b, b->a,
N streams): what the receiving side lost. Nothing is asserted: the
machine is shared and has two cores, so the figures are indications.

With --repeat N, the pairs run in turn N times (a, b, c, a, b, c, ...)
and each cell of the table is the median of the N runs: on a shared
machine the load moves between runs, and interleaving spreads it evenly
over the daemons compared.

With --before DIR, the daemon name C{before} in --pairs (e.g.
C{before-charon,ikedtx-charon,charon-charon}) is ikedtx run from the source
tree DIR (e.g. C{git archive BASE | tar -x -C DIR}): an older ikedtx next to
this one in the same run, under the same load; --tree NAME=DIR names
more such daemons. With --profile DIR, py-spy
records the daemon on side a of each ikedtx row during its iperf3 runs
(DIR/PAIR-ESP.txt, collapsed stacks for bench/profsummary.py).

Needs root, iperf3 (apt-get install iperf3), strongSwan 5.9 with the
kernel-libipsec plugin.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

A, B = "192.0.2.1", "192.0.2.2"
A_INNER, B_INNER = "10.1.0.1", "10.2.0.1"
PSK = "espbench-psk-0123456789"

#: name -> (charon ESP proposal, ikedtx childsa transforms)
ESP = {
    "gcm": ("aes128gcm16", "childsa enc aes-128-gcm noesn"),
    "cbc": ("aes256-sha256", "childsa enc aes-256 auth hmac-sha2-256 noesn"),
    "chacha": ("chacha20poly1305", "childsa enc chacha20-poly1305 noesn"),
}
PAIRS = ("ikedtx-charon", "charon-charon", "ikedtx-ikedtx")
IKE = ("aes128gcm16-prfsha256-x25519", "ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519")


def cpuSeconds(pid):
    """
    utime + stime of process C{pid}, in seconds.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ikedtxConfig(local, peer, ours, theirs, esp, passive):
    return ('ikev2 "peer" %s natt esp from %s to %s local %s peer %s %s %s srcid %s dstid %s psk "%s"\n' % (
        "passive" if passive else "active", ours, theirs, local, peer, IKE[1], ESP[esp][1], local, peer, PSK))


def startCharon(directory, namespace, name, local, peer, ours, theirs, esp):
    from ikedtx.testing.lab import CharonPeer, Secret, pskConnection

    charon = CharonPeer(namespace, os.path.join(directory, name), name=name, libipsec=True,
                        logLevels={"ike": 1, "knl": 1, "chd": 1, "cfg": 1})
    charon.addConnection(pskConnection("peer", local, peer, [ours + "/32"], [theirs + "/32"], proposals=[IKE[0]],
                                       espProposals=[ESP[esp][0]]))
    charon.addSecret(Secret(PSK, ids=[local, peer]))
    charon.start()
    return charon


def startIkedtx(directory, namespace, name, local, peer, ours, theirs, esp, passive, root=None):
    from ikedtx.testing.lab.ikedtx import IkedtxPeer

    extra = {} if root is None else {"root": os.path.abspath(root)}
    peerObject = IkedtxPeer(namespace, os.path.join(directory, name), ikedtxConfig(local, peer, ours, theirs, esp,
                                                                                    passive),
                            name=name, extraArgs=["--kernel", "userspace", "--listen", local], **extra)
    return peerObject.start()


def iperf(a, b, seconds, reverse=False, streams=1, udp=False, retransmits=None):
    """
    One iperf3 run from a to b (b to a with C{reverse}): TCP with
    C{streams} parallel streams, received bits per second; or with C{udp}
    a flood of 64-byte datagrams, received datagrams per second. For TCP,
    the sender's retransmitted segments are appended to the list
    C{retransmits} if one is given.
    """
    server = b.popen(["iperf3", "-s", "-1", "-B", B_INNER], stdout=open(os.devnull, "wb"),
                     stderr=open(os.devnull, "wb"))
    try:
        time.sleep(0.3)
        argv = ["iperf3", "-c", B_INNER, "-B", A_INNER, "-t", str(seconds), "-J", "-P", str(streams)]
        argv += ["-R"] if reverse else []
        argv += ["-u", "-l", "64", "-b", "0"] if udp else []
        result = a.run(argv, check=False, timeout=seconds + 30)
        if result.returncode != 0:
            raise RuntimeError("iperf3 failed: %s%s" % (result.stdout[-2000:], result.stderr))
        report = json.loads(result.stdout)
        if retransmits is not None and not udp:
            retransmits.append(report["end"].get("sum_sent", {}).get("retransmits"))
        return received(report, udp)
    finally:
        try:
            server.wait(timeout=5)
        except Exception:
            server.kill()


def received(report, udp):
    """
    From iperf3's JSON C{report}: received bits per second (TCP), or
    datagrams received per second (C{udp}).
    """
    end = report["end"]
    if not udp:
        return end["sum_received"]["bits_per_second"]
    total = end["sum"]
    return (total["packets"] - total["lost_packets"]) / total["seconds"]


def runOne(pairName, esp, seconds, streams=4, trees=None, profile=None):
    """
    Throughput both ways and CPU seconds of each daemon for one pair of
    daemons and one ESP proposal.

    @param trees: C{{name: directory}}: daemons that are ikedtx run from
        another source tree.
    @param profile: a directory for a py-spy profile of side a, or L{None}.
    """
    from ikedtx.testing.lab import Network, poll

    trees = trees or {}

    directory = tempfile.mkdtemp(prefix="espbench-")
    network = Network()
    peers = []
    try:
        a, b, _ = network.pair()
        left, right = pairName.split("-")
        for side, namespace, name, addresses in ((left, a, "a", (A, B, A_INNER, B_INNER)),
                                                 (right, b, "b", (B, A, B_INNER, A_INNER))):
            if side == "charon":
                peers.append(startCharon(directory, namespace, name, *addresses, esp))
            elif side == "ikedtx" or side in trees:
                peers.append(startIkedtx(directory, namespace, name, *addresses, esp, passive=True,
                                         root=trees.get(side)))
            else:
                raise RuntimeError("unknown daemon %r" % (side,))
        first = peers[0]
        if left == "charon":
            ok, output = first.initiate(child="net")
            if not ok:
                raise RuntimeError("charon initiate failed:\n" + output)
        else:
            first.initiate("peer")
        poll(lambda: a.run(["ping", "-c", "1", "-W", "1", "-I", A_INNER, B_INNER], check=False).returncode == 0,
             10.0, interval=0.2, what="the tunnel to carry a ping")
        pids = [p.process.pid for p in peers]
        profiler = None
        if profile is not None and left != "charon":
            from bench.introspect import startProfiler

            os.makedirs(profile, exist_ok=True)
            profiler = startProfiler(pids[0], (os.path.join(profile, "%s-%s.txt" % (pairName, esp)), "raw"))
        cpuBefore = [cpuSeconds(pid) for pid in pids]
        # The CPU seconds of each daemon in each run, for the cost per
        # octet and per packet (which the load of a shared machine moves
        # far less than the throughput).
        perRun = []
        # TCP segments the senders retransmitted (what the receivers lost).
        retransmits = []

        def measured(**kwargs):
            start = [cpuSeconds(pid) for pid in pids]
            result = iperf(a, b, seconds, retransmits=retransmits, **kwargs)
            perRun.append([y - x for x, y in zip(start, [cpuSeconds(pid) for pid in pids])])
            return result

        try:
            forward = measured(reverse=False)
            backward = measured(reverse=True)
            parallel = measured(streams=streams)
            pps = measured(udp=True)
        finally:
            cpuAfter = [cpuSeconds(pid) for pid in pids]
            if profiler is not None:
                from bench.introspect import stopProfiler

                stopProfiler(profiler)
        return {"pair": pairName, "esp": esp, "forward": forward, "reverse": backward,
                "parallel": parallel, "streams": streams, "pps": pps,
                "cpu": [round(y - x, 2) for x, y in zip(cpuBefore, cpuAfter)], "seconds": seconds,
                "retransmits": retransmits,
                "cpuPerGB": round(perRun[0][0] / (forward * seconds / 8e9), 2),
                "cpuPerPacket": round(perRun[3][0] / (pps * seconds) * 1e6, 2)}
    finally:
        for p in peers:
            p.stop()
        network.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def medians(runs):
    """
    One row per pair and ESP proposal, in the order first seen: each
    figure the median of its runs that did not fail (a pair whose every
    run failed keeps its first failure).
    """
    import statistics

    groups = {}
    for row in runs:
        groups.setdefault((row["pair"], row["esp"]), []).append(row)
    rows = []
    for (pair, esp), group in groups.items():
        good = [row for row in group if "error" not in row]
        if not good:
            rows.append(group[0])
            continue
        merged = dict(good[0])
        for key in ("forward", "reverse", "parallel", "pps"):
            merged[key] = statistics.median(row[key] for row in good)
        merged["cpu"] = [round(statistics.median(row["cpu"][i] for row in good), 2) for i in (0, 1)]
        for key in ("cpuPerGB", "cpuPerPacket"):
            merged[key] = round(statistics.median(row[key] for row in good), 2)
        merged["runs"] = len(good)
        rows.append(merged)
    return rows


def table(rows):
    lines = ["| daemons (a-b) | ESP | a->b Mbit/s | b->a Mbit/s | a->b N streams Mbit/s | "
             "a->b 64-byte packets/s | CPU s a / b (4 runs) | a: CPU s per GB a->b | a: CPU us per 64-byte packet |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for row in rows:
        if "error" in row:
            lines.append("| %s | %s | failed: %s | | | | | | |" % (
                row["pair"], row["esp"], row["error"].splitlines()[0]))
            continue
        lines.append("| %s | %s | %.1f | %.1f | %.1f (%d) | %d | %s / %s | %s | %s |" % (
            row["pair"], row["esp"], row["forward"] / 1e6, row["reverse"] / 1e6, row["parallel"] / 1e6,
            row["streams"], round(row["pps"]), row["cpu"][0], row["cpu"][1], row.get("cpuPerGB", ""),
            row.get("cpuPerPacket", "")))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="espbench", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--esp", default="gcm,cbc")
    parser.add_argument("--streams", type=int, default=4, help="parallel TCP streams of the third run")
    parser.add_argument("--pairs", default=",".join(PAIRS))
    parser.add_argument("--before", metavar="DIR", help="the source tree of the 'before' daemon")
    parser.add_argument("--tree", metavar="NAME=DIR", action="append", default=[],
                        help="daemon NAME is ikedtx from the source tree DIR (repeatable)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy profiles of side a of the ikedtx rows")
    parser.add_argument("--repeat", type=int, default=1, help="run the pairs in turn N times; report medians")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    if shutil.which("iperf3") is None:
        parser.error("iperf3 is missing (apt-get install iperf3)")
    trees = dict(tree.split("=", 1) for tree in args.tree)
    if args.before:
        trees["before"] = args.before
    runs = []
    for _ in range(args.repeat):
        for pairName in args.pairs.split(","):
            for esp in args.esp.split(","):
                try:
                    row = runOne(pairName, esp, args.seconds, args.streams, trees, args.profile)
                except Exception as e:
                    row = {"pair": pairName, "esp": esp, "error": "%s: %s" % (type(e).__name__, e)}
                runs.append(row)
                sys.stdout.write(json.dumps(row) + "\n")
                sys.stdout.flush()
    text = table(medians(runs))
    sys.stdout.write(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

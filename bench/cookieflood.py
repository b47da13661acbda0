#!/usr/bin/env python3
"""
cookieflood: a flood of spoofed IKE_SA_INIT requests against ikedtx and
against strongSwan's charon as responders, side by side on one machine:
answers (COOKIEs) per second, the responder's CPU, and the time a
legitimate peer takes to connect during the flood.

    sudo python3 bench/cookieflood.py [--rate 20000] [--duration 20]
                                      [--responders ikedtx,charon] [--output FILE.md]

Topology: the lab's two namespaces "gen" (192.0.2.1) and "resp"
(192.0.2.2) joined by a veth pair. The flooder (this script with
--flooder, in "gen") sends through a raw socket (IP_HDRINCL) copies of one
genuine IKE_SA_INIT request (ECP-256, made by an ikedtx core) with a new
SPIi and a source address from 198.18.0.0/15 each (65,536 templates sent in
turn), paced to --rate packets/s. "resp" routes 198.18.0.0/15 back over the
veth, where the answers are counted (the rx counter of gen's end: gen drops
them, they are for no address of its). Each responder runs with a cookie
threshold of 64 half-open IKE SAs (charon: cookie_threshold = 64, its other
DoS settings left at their defaults), so all but the first 64 answers are
COOKIEs.

After --settle seconds of flood, a legitimate peer (this script with
--peer, in "gen" from 192.0.2.1: an ikedtx core with the default
retransmission schedule, 2 s doubling) connects --connects times in turn
(IKE_SA_INIT, with the COOKIE it is asked for, then IKE_AUTH with a Child
SA); each time is measured from initiate to the IKE SA up. The responder's
CPU is utime+stime over the flood. Nothing is asserted: the figures are
printed and, with --output, written as Markdown. The machine has other
jobs: the figures say what one run saw.

Needs root (namespaces, raw sockets) and strongSwan 5.9 (charon with
kernel-libipsec, swanctl) for the charon column.
"""

import argparse
import json
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.suites import GEN_ADDRESS, RESP_ADDRESS, SUITES, generatorConfig  # noqa: E402

SPOOF_NET = "198.18.0.0/15"
TEMPLATES = 65536
SUITE = SUITES["psk-ecp256"]


def genuineRequest():
    """
    A genuine IKE_SA_INIT request of the generator's policy (ECP-256).
    """
    from ikedtx.config import parseConfig
    from ikedtx.core.actions import SendDatagram
    from ikedtx.core.engine import IKECore

    core = IKECore(parseConfig(generatorConfig(SUITE, 1)))
    _, actions = core.initiate("bench0")
    (send,) = [a for a in actions if isinstance(a, SendDatagram)]
    return send.data


def _checksum(header):
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def packets(request, destination, count, seed=1):
    """
    C{count} IPv4/UDP datagrams carrying C{request} with a random SPIi, from
    random addresses of 198.18.0.0/15 port 500 to C{destination} port 500
    (UDP checksum 0: none, allowed over IPv4).
    """
    rng = random.Random(seed)
    dst = socket.inet_aton(destination)
    udpLength = 8 + len(request)
    out = []
    for _ in range(count):
        src = struct.pack("!I", (198 << 24) | (18 << 16) | rng.getrandbits(17))
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udpLength, 0, 0, 64, socket.IPPROTO_UDP, 0, src, dst)
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        udp = struct.pack("!HHHH", 500, 500, udpLength, 0)
        out.append(header + udp + rng.getrandbits(64).to_bytes(8, "big") + request[8:])
    return out


def flooder(args):
    """
    Send the templates in turn at --rate packets/s for --duration s;
    print {"sent": N, "seconds": S}.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    templates = packets(genuineRequest(), args.target, TEMPLATES)
    address = (args.target, 0)
    tick = 0.005
    perTick = args.rate * tick
    sent = 0
    start = time.monotonic()
    end = start + args.duration
    nextTick = start
    i = 0
    send = sock.sendto
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < nextTick:
            time.sleep(nextTick - now)
            continue
        # Catch up after a stall, but never more than a second's worth.
        due = int(min(int((now - start) / tick) + 1, int((now - start + 1.0) / tick)) * perTick) - sent
        for _ in range(max(due, 0)):
            try:
                send(templates[i], address)
            except (BlockingIOError, OSError):
                break
            i = (i + 1) % TEMPLATES
            sent += 1
        nextTick += tick
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - start}))


def peer(args):
    """
    Connect --connects times in turn as a legitimate initiator from
    192.0.2.1; print {"times": [...], "failures": [...]}.
    """
    from ikedtx.config import parseConfig
    from ikedtx.core.actions import AllocateSpi, InstallChildSA, RequestDone, SendDatagram, SetTimer, CancelTimer
    from ikedtx.core.engine import IKECore
    from ikedtx.core.settings import CoreSettings

    socks = {}
    for port in (500, 4500):
        socks[port] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks[port].bind((GEN_ADDRESS, port))
    marker = b"\x00" * 4
    core = IKECore(parseConfig(generatorConfig(SUITE, 1)), settings=CoreSettings())
    timers = {}
    results = {}

    def execute(actions):
        for action in actions:
            if isinstance(action, SendDatagram):
                port = action.local[1]
                socks[port].sendto((marker if port == 4500 else b"") + action.data, tuple(action.remote))
            elif isinstance(action, SetTimer):
                timers[action.key] = time.monotonic() + action.delay
            elif isinstance(action, CancelTimer):
                timers.pop(action.key, None)
            elif isinstance(action, AllocateSpi):
                execute(core.spiAllocated(action.token, random.getrandbits(31) | 0x100))
            elif isinstance(action, InstallChildSA):
                execute(core.childInstalled(action.reqid))
            elif isinstance(action, RequestDone):
                results[action.requestId] = action

    times, failures = [], []
    for _ in range(args.connects):
        start = time.monotonic()
        requestId, actions = core.initiate("bench0")
        execute(actions)
        while requestId not in results:
            now = time.monotonic()
            if now - start > args.peer_timeout:
                break
            for key, when in sorted(timers.items(), key=lambda kv: kv[1]):
                if when <= now:
                    del timers[key]
                    execute(core.timerExpired(key))
            wait = min([w for w in timers.values()] + [now + 0.5]) - now
            ready, _, _ = select.select(list(socks.values()), [], [], max(wait, 0))
            for port, sock in socks.items():
                if sock in ready:
                    data, remote = sock.recvfrom(65536)
                    if port == 4500:
                        if not data.startswith(marker):
                            continue
                        data = data[4:]
                    execute(core.datagramReceived(data, (GEN_ADDRESS, port), remote))
        done = results.get(requestId)
        if done is None or done.error is not None:
            failures.append(str(done.error) if done is not None else "no answer in %ss" % (args.peer_timeout,))
        else:
            times.append(time.monotonic() - start)
            execute(core.deleteIKESA(done.result)[1])
        # A fresh start for the next connection: forget what is left.
        for ikeSA in list(core.ikeSAs.values()):
            core.destroy(ikeSA, "next round")
        timers.clear()
    print(json.dumps({"times": times, "failures": failures}))


def rxPackets(namespace, interface):
    out = namespace.ip("-s", "-j", "link", "show", "dev", interface).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


def udpDrops(namespace):
    """
    The namespace's UDP receive buffer errors (datagrams the kernel dropped
    because the responder did not read them in time) and its other receive
    errors (here: datagrams a socket filter dropped, ikedtx's shedding).
    """
    lines = [line.split() for line in namespace.run(["cat", "/proc/net/snmp"]).stdout.splitlines()
             if line.startswith("Udp:")]
    fields = dict(zip(lines[0], lines[1]))
    return int(fields["RcvbufErrors"]), int(fields["InErrors"]) - int(fields["RcvbufErrors"])


def responderFor(name, namespace, directory, baseline=None):
    from bench.responders import CharonResponder, IkedtxResponder

    if name == "ikedtx":
        return IkedtxResponder(namespace, directory, SUITE, None)
    if name == "ikedtx-baseline":
        return IkedtxResponder(namespace, directory, SUITE, None, root=os.path.abspath(baseline))
    # charon's defaults for its DoS settings (cookie_threshold_ip 3,
    # block_threshold 5, init_limit_half_open 0), but the cookie threshold
    # of ikedtx.
    extra = {"cookie_threshold": 64, "cookie_threshold_ip": 3, "block_threshold": 5, "init_limit_half_open": 0}
    return CharonResponder(namespace, directory, SUITE, None, libipsec=True, extra=extra)


def run(args, gen, resp, interface, name, workdir, log):
    from bench.proc import cpuSeconds, rssKilobytes

    directory = os.path.join(workdir, name)
    os.makedirs(directory, exist_ok=True)
    responder = responderFor(name, resp, directory, args.baseline).start()
    time.sleep(1.0)
    python = [sys.executable, os.path.abspath(__file__)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    rssBefore = rssKilobytes(responder.pid)
    rx0 = rxPackets(gen, interface)
    drops0 = udpDrops(resp)
    cpu0 = cpuSeconds(responder.pid)
    t0 = time.monotonic()
    flood = gen.popen(python + ["--flooder", "--target", RESP_ADDRESS, "--rate", str(args.rate),
                                "--duration", str(args.duration)], stdout=subprocess.PIPE, env=env)
    time.sleep(args.settle)
    peerRun = gen.run(python + ["--peer", "--connects", str(args.connects), "--peer-timeout", str(args.peer_timeout)],
                      env=env, timeout=args.connects * args.peer_timeout + 30)
    peerResult = json.loads(peerRun.stdout.strip().splitlines()[-1])
    floodOut, _ = flood.communicate(timeout=args.duration + 60)
    elapsed = time.monotonic() - t0
    cpu = cpuSeconds(responder.pid) - cpu0
    # The answers still on their way once the flooder stopped.
    time.sleep(1.0)
    answers = rxPackets(gen, interface) - rx0
    drops, filtered = (after - before for after, before in zip(udpDrops(resp), drops0))
    sent = json.loads(floodOut.decode().strip().splitlines()[-1])
    rssAfter = rssKilobytes(responder.pid)
    responder.stop()
    row = {
        "responder": name, "describe": responder.describe(), "offered": args.rate, "sent": sent["sent"],
        "floodSeconds": sent["seconds"], "sentPerSecond": sent["sent"] / sent["seconds"],
        "answers": answers, "answersPerSecond": answers / sent["seconds"],
        "answeredShare": answers / max(sent["sent"], 1),
        "rcvbufDrops": drops, "filterDrops": filtered, "cpuSeconds": cpu, "cpuShare": cpu / elapsed,
        "connectTimes": peerResult["times"], "connectFailures": peerResult["failures"],
        "rssBeforeKiB": rssBefore, "rssAfterKiB": rssAfter,
    }
    log("  %s: sent %d (%.0f/s), answered %d (%.0f/s, %.0f%%), kernel dropped %d unread and %d by filter, "
        "CPU %.0f%% of a core, "
        "connects %s, failures %s" % (
        name, row["sent"], row["sentPerSecond"], answers, row["answersPerSecond"], 100 * row["answeredShare"],
        drops, filtered, 100 * row["cpuShare"], ["%.2f" % t for t in row["connectTimes"]], row["connectFailures"]))
    return row


def markdown(rows, args):
    def connects(row):
        times = sorted(row["connectTimes"])
        if not times:
            return "none connected"
        return "median %.2f s, max %.2f s (%d of %d)" % (times[len(times) // 2], times[-1], len(times), args.connects)

    lines = ["| | " + " | ".join(r["responder"] for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for label, fmt in [
        ("spoofed IKE_SA_INIT sent /s (offered %d)" % (args.rate,), lambda r: "%.0f" % r["sentPerSecond"]),
        ("answers (COOKIEs) /s", lambda r: "%.0f" % r["answersPerSecond"]),
        ("share of the flood answered", lambda r: "%.0f%%" % (100 * r["answeredShare"])),
        ("dropped unread by the kernel (receive buffer full)", lambda r: "%d" % r["rcvbufDrops"]),
        ("dropped by a socket filter (ikedtx's shedding)", lambda r: "%d" % r.get("filterDrops", 0)),
        ("responder CPU (share of one core)", lambda r: "%.0f%%" % (100 * r["cpuShare"])),
        ("legitimate peer connects in", connects),
        ("responder RSS before / after (MiB)", lambda r: "%.1f / %.1f" % (r["rssBeforeKiB"] / 1024,
                                                                        r["rssAfterKiB"] / 1024)),
    ]:
        lines.append("| %s | %s |" % (label, " | ".join(fmt(r) for r in rows)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cookieflood", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rate", type=int, default=20000, help="spoofed IKE_SA_INIT packets per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of flood per responder")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of flood before the peer connects")
    parser.add_argument("--connects", type=int, default=5, help="connections of the legitimate peer, in turn")
    parser.add_argument("--peer-timeout", type=float, default=30.0, help="give up one connection after this")
    parser.add_argument("--responders", default="ikedtx,charon")
    parser.add_argument("--baseline", help="a checkout of an earlier ikedtx (git archive): the responder "
                        "'ikedtx-baseline' runs its code")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    parser.add_argument("--output", help="write the table (Markdown) and the rows (JSON) here")
    parser.add_argument("--flooder", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", default=RESP_ADDRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flooder:
        return flooder(args)
    if args.peer:
        return peer(args)
    if os.geteuid() != 0:
        raise SystemExit("cookieflood needs root (network namespaces, raw sockets)")
    from ikedtx.testing.lab.netns import Network

    def log(text):
        print(text, flush=True)

    workdir = tempfile.mkdtemp(prefix="cookieflood-")
    network = Network()
    rows = []
    try:
        gen = network.namespace("gen")
        resp = network.namespace("resp")
        link = network.link(gen, resp, [GEN_ADDRESS + "/24"], [RESP_ADDRESS + "/24"])
        resp.addRoute(SPOOF_NET, via=GEN_ADDRESS)
        interface = link.interface(gen)
        for name in args.responders.split(","):
            log("%s: %d spoofed IKE_SA_INIT/s for %.0f s ..." % (name, args.rate, args.duration))
            rows.append(run(args, gen, resp, interface, name, workdir, log))
    finally:
        network.cleanup()
        if args.keep:
            log("working directory kept: %s" % (workdir,))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    table = markdown(rows, args)
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n```json\n" + json.dumps(rows, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()

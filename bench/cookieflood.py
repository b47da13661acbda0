#!/usr/bin/env python3
"""
cookieflood: a flood of spoofed IKE_SA_INIT requests against ikedtx and
against strongSwan's charon as responders, side by side on one machine:
answers (COOKIEs) per second, the responder's CPU, and the time a
legitimate peer takes to connect during the flood.

    sudo python3 bench/cookieflood.py [--rate 20000 | --rates 20000,60000,100000,200000]
                                      [--duration 20] [--flooders 1]
                                      [--responders ikedtx,charon] [--output FILE.md]

With --rates each responder is flooded in turn at each rate (a fresh
responder each time), and the output has one table per rate.

Topology: the lab's two namespaces "gen" (192.0.2.1) and "resp"
(192.0.2.2) joined by a veth pair. The flooder (this script with
--flooder, in "gen") sends through a raw socket (IP_HDRINCL) copies of one
genuine IKE_SA_INIT request (ECP-256, made by an ikedtx core) with a new
SPIi and a source address from 198.18.0.0/15 each (65,536 templates,
built before the flood starts and sent in turn with sendmmsg, up to 256 a
system call), paced to --rate packets/s; --flooders N splits the rate over
N processes (their own templates each). What one flooder process can
offer is bounded by the kernel's work per packet, most of it the
receiving namespace's IP and UDP input, which the veth runs in the
sender's context: about 200,000 packets per second of a CPU on this
project's machine, sendmmsg or sendto alike; the JSON rows keep what was
really sent, and the table's "sent /s" says when a flooder fell short. "resp" routes 198.18.0.0/15 back over the
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
CPU is its threads' CPU time (schedstat) over the flood (and per answer); the load average and
the commit of each run are in its table. Nothing is asserted: the figures are
printed and, with --output, written as Markdown. The machine has other
jobs: the figures say what one run saw.

Needs root (namespaces, raw sockets) and strongSwan 5.9 (charon with
kernel-libipsec, swanctl) for the charon column.
"""

import argparse
import ctypes
import json
import os
import random
import resource
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
EXCHANGES = {34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL"}


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


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("nameLength", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                ("iovLength", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controlLength", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("header", _MsgHdr), ("length", ctypes.c_uint)]


class PacketSender:
    """
    sendmmsg(2) of pre-built packets over a raw socket: one system call
    (and one Python call) sends up to L{CHUNK} of them, so that one
    process offers a few hundred thousand packets per second where one
    sendto per packet stops near a hundred thousand.

    @ivar count: how many packets there are, sent in turn.
    """

    CHUNK = 256

    def __init__(self, sock, packets, destination, port=0):
        self._fd = sock.fileno()
        self._sendmmsg = ctypes.CDLL(None, use_errno=True).sendmmsg
        self._sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self.count = len(packets)
        # sockaddr_in: family, port (0 for a raw socket), the address.
        self._name = ctypes.create_string_buffer(struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", port,
                                                             socket.inet_aton(destination)), 16)
        self._buffers = [ctypes.create_string_buffer(p, len(p)) for p in packets]
        self._iov = (_IOVec * self.count)()
        self._messages = (_MMsgHdr * self.count)()
        self._base = ctypes.addressof(self._messages)
        for i, buffer in enumerate(self._buffers):
            self._iov[i].base = ctypes.addressof(buffer)
            self._iov[i].length = len(packets[i])
            header = self._messages[i].header
            header.name = ctypes.addressof(self._name)
            header.nameLength = 16
            header.iov = ctypes.addressof(self._iov) + i * ctypes.sizeof(_IOVec)
            header.iovLength = 1

    def send(self, start, n):
        """
        Send packets C{start} to C{start + n - 1} (without wrapping);
        how many the kernel took.
        """
        sent = self._sendmmsg(self._fd, self._base + start * ctypes.sizeof(_MMsgHdr), n, 0)
        return max(sent, 0)


def flooder(args):
    """
    Send the templates in turn at --rate packets/s for --duration s (this
    process's share: --share of --shares templates, when several flooders
    run); print {"sent": N, "seconds": S}.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sender = PacketSender(sock, packets(genuineRequest(), args.target, TEMPLATES, seed=1 + args.share),
                          args.target)
    tick = 0.005
    perTick = args.rate * tick
    sent = 0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    start = time.monotonic()
    end = start + args.duration
    nextTick = start
    i = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < nextTick:
            time.sleep(nextTick - now)
            continue
        # Catch up after a stall, but never more than a second's worth.
        due = int(min(int((now - start) / tick) + 1, int((now - start + 1.0) / tick)) * perTick) - sent
        while due > 0 and time.monotonic() < end:
            n = sender.send(i, min(due, sender.CHUNK, sender.count - i))
            if n == 0:
                break
            i = (i + n) % sender.count
            sent += n
            due -= n
        nextTick += tick
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - start,
                      "cpuSeconds": usage.ru_utime + usage.ru_stime - cpu0}))


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
                # the exchange type (octet 18 of the IKE header) and when
                sends.append((round(time.monotonic() - start, 3), EXCHANGES.get(action.data[18], action.data[18])))
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

    times, failures, sendLog = [], [], []
    for _ in range(args.connects):
        start = time.monotonic()
        sends = []
        sendLog.append(sends)
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
    print(json.dumps({"times": times, "failures": failures, "sends": sendLog}))


class QueueSampler:
    """
    Samples the receive queue of the responder's UDP socket on port 500
    (rx_queue of /proc/PID/net/udp: the octets waiting unread) every
    C{interval} seconds in a thread, to tell a buffer full all the time
    from one full in bursts.
    """

    def __init__(self, pid, interval=0.002):
        import threading
        self.path = "/proc/%d/net/udp" % (pid,)
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self):
        with open(self.path) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1].endswith(":01F4"):
                    return int(fields[4].split(":")[1], 16)
        return None

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                queued = self._read()
            except OSError:
                return
            if queued is not None:
                self.samples.append(queued)

    def stop(self):
        """
        Stop; return C{{"samples", "medianOctets", "p90Octets", "maxOctets"}}.
        """
        self._stop.set()
        self._thread.join()
        ordered = sorted(self.samples)
        if not ordered:
            return {"samples": 0, "medianOctets": None, "p90Octets": None, "maxOctets": None}
        return {"samples": len(ordered), "medianOctets": ordered[len(ordered) // 2],
                "p90Octets": ordered[int(len(ordered) * 0.9)], "maxOctets": ordered[-1]}


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


def commitOf(root):
    """
    The commit a checkout's ikedtx is at (C{git describe}: a C{-dirty}
    suffix for uncommitted changes), or "unknown" (a git archive).
    """
    try:
        out = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty", "--abbrev=7"],
                             capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def run(args, rate, gen, resp, interface, name, workdir, log):
    from bench.proc import cpuSeconds, rssKilobytes

    directory = os.path.join(workdir, "%s-%d" % (name, rate))
    os.makedirs(directory, exist_ok=True)
    responder = responderFor(name, resp, directory, args.baseline).start()
    time.sleep(1.0)
    python = [sys.executable, os.path.abspath(__file__)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    rssBefore = rssKilobytes(responder.pid)
    rx0 = rxPackets(gen, interface)
    drops0 = udpDrops(resp)
    cpu0 = cpuSeconds(responder.pid)
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    floods = [gen.popen(python + ["--flooder", "--target", RESP_ADDRESS, "--rate", str(rate // args.flooders),
                                  "--duration", str(args.duration), "--share", str(k)],
                        stdout=subprocess.PIPE, env=env) for k in range(args.flooders)]
    sampler = QueueSampler(responder.pid)
    time.sleep(args.settle)
    peerRun = gen.run(python + ["--peer", "--connects", str(args.connects), "--peer-timeout", str(args.peer_timeout)],
                      env=env, timeout=args.connects * args.peer_timeout + 30)
    peerResult = json.loads(peerRun.stdout.strip().splitlines()[-1])
    sents = [json.loads(flood.communicate(timeout=args.duration + 60)[0].decode().strip().splitlines()[-1])
             for flood in floods]
    elapsed = time.monotonic() - t0
    queue = sampler.stop()
    cpu = cpuSeconds(responder.pid) - cpu0
    load1 = os.getloadavg()[0]
    # The answers still on their way once the flooder stopped.
    time.sleep(1.0)
    answers = rxPackets(gen, interface) - rx0
    drops, filtered = (after - before for after, before in zip(udpDrops(resp), drops0))
    sent = {"sent": sum(s["sent"] for s in sents), "seconds": max(s["seconds"] for s in sents)}
    rssAfter = rssKilobytes(responder.pid)
    responder.stop()
    row = {
        "responder": name, "describe": responder.describe(), "offered": rate, "sent": sent["sent"],
        "commit": (args.baseline_commit or commitOf(args.baseline)) if name == "ikedtx-baseline"
        else commitOf(ROOT) if name == "ikedtx" else "strongSwan",
        "flooders": args.flooders, "loadAverage": [load0, load1],
        "floodSeconds": sent["seconds"], "sentPerSecond": sent["sent"] / sent["seconds"],
        "answers": answers, "answersPerSecond": answers / sent["seconds"],
        "answeredShare": answers / max(sent["sent"], 1),
        "rcvbufDrops": drops, "filterDrops": filtered, "cpuSeconds": cpu, "cpuShare": cpu / elapsed,
        "cpuPerAnswerMicroseconds": 1e6 * cpu / max(answers, 1),
        "connectTimes": peerResult["times"], "connectFailures": peerResult["failures"],
        "peerSends": peerResult.get("sends"), "receiveQueue": queue,
        "rssBeforeKiB": rssBefore, "rssAfterKiB": rssAfter,
    }
    log("  %s at %d/s: sent %d (%.0f/s), answered %d (%.0f/s, %.0f%%), kernel dropped %d unread and %d by filter, "
        "CPU %.0f%% of a core (%.1f us an answer), load average %.1f-%.1f, "
        "connects %s (requests sent %s), failures %s, receive queue (KiB median/p90/max) %s" % (
        name, rate, row["sent"], row["sentPerSecond"], answers, row["answersPerSecond"], 100 * row["answeredShare"],
        drops, filtered, 100 * row["cpuShare"], row["cpuPerAnswerMicroseconds"], load0, load1,
        ["%.2f" % t for t in row["connectTimes"]], [s for s in row["peerSends"] or ()], row["connectFailures"],
        _queue(row)))
    return row


def _queue(row):
    queue = row.get("receiveQueue") or {}
    if not queue.get("samples"):
        return "-"
    return "%d / %d / %d" % (queue["medianOctets"] // 1024, queue["p90Octets"] // 1024, queue["maxOctets"] // 1024)


def _connects(row, connects):
    times = sorted(row["connectTimes"])
    if not times:
        return "none connected"
    return "median %.2f s, max %.2f s (%d of %d)" % (times[len(times) // 2], times[-1], len(times), connects)


def markdown(rows, args):
    """
    One table per offered rate, the responders side by side.
    """
    out = []
    for rate in sorted({r["offered"] for r in rows}):
        out.append(table([r for r in rows if r["offered"] == rate], rate, args))
    return "\n".join(out)


def table(rows, rate, args):
    lines = ["#### %d spoofed IKE_SA_INIT/s offered" % (rate,), "",
             "| | " + " | ".join(r["responder"] for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for label, fmt in [
        ("commit", lambda r: r.get("commit", "")),
        ("spoofed IKE_SA_INIT sent /s (offered %d)" % (rate,), lambda r: "%.0f" % r["sentPerSecond"]),
        ("answers (COOKIEs) /s", lambda r: "%.0f" % r["answersPerSecond"]),
        ("share of the flood answered", lambda r: "%.0f%%" % (100 * r["answeredShare"])),
        ("dropped unread by the kernel (receive buffer full)", lambda r: "%d" % r["rcvbufDrops"]),
        ("dropped by a socket filter (ikedtx's shedding)", lambda r: "%d" % r.get("filterDrops", 0)),
        ("responder CPU (share of one core)", lambda r: "%.0f%%" % (100 * r["cpuShare"])),
        ("responder CPU per answer", lambda r: "%.1f us" % r["cpuPerAnswerMicroseconds"]),
        ("legitimate peer connects in", lambda r: _connects(r, args.connects)),
        ("peer requests sent, 4 without a loss: INIT, INIT with COOKIE, AUTH, Delete (each connect)",
         lambda r: ", ".join(str(len(s)) for s in r.get("peerSends") or ())),
        ("port 500 receive queue, KiB unread (median / 90th pct / max of 2 ms samples)", _queue),
        ("responder RSS before / after (MiB)", lambda r: "%.1f / %.1f" % (r["rssBeforeKiB"] / 1024,
                                                                        r["rssAfterKiB"] / 1024)),
        ("load average (1 min) at start / end", lambda r: "%.1f / %.1f" % tuple(r["loadAverage"])),
    ]:
        lines.append("| %s | %s |" % (label, " | ".join(fmt(r) for r in rows)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cookieflood", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rate", type=int, default=20000, help="spoofed IKE_SA_INIT packets per second")
    parser.add_argument("--rates", help="several rates, comma-separated (e.g. 20000,60000,100000,200000): each "
                        "responder in turn at each (overrides --rate)")
    parser.add_argument("--flooders", type=int, default=1, help="flooder processes, each sending its share "
                        "with sendmmsg")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of flood per responder")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of flood before the peer connects")
    parser.add_argument("--connects", type=int, default=5, help="connections of the legitimate peer, in turn")
    parser.add_argument("--peer-timeout", type=float, default=30.0, help="give up one connection after this")
    parser.add_argument("--responders", default="ikedtx,charon")
    parser.add_argument("--baseline", help="a checkout of an earlier ikedtx (git archive): the responder "
                        "'ikedtx-baseline' runs its code")
    parser.add_argument("--baseline-commit", help="the commit --baseline holds, for the table (a git archive "
                        "has no history to ask)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    parser.add_argument("--output", help="write the table (Markdown) and the rows (JSON) here")
    parser.add_argument("--flooder", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", default=RESP_ADDRESS, help=argparse.SUPPRESS)
    parser.add_argument("--share", type=int, default=0, help=argparse.SUPPRESS)
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
        rates = [int(r) for r in args.rates.split(",")] if args.rates else [args.rate]
        for rate in rates:
            for name in args.responders.split(","):
                log("%s: %d spoofed IKE_SA_INIT/s for %.0f s ..." % (name, rate, args.duration))
                rows.append(run(args, rate, gen, resp, interface, name, workdir, log))
    finally:
        network.cleanup()
        if args.keep:
            log("working directory kept: %s" % (workdir,))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = markdown(rows, args)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n```json\n" + json.dumps(rows, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()

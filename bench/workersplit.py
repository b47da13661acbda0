#!/usr/bin/env python3
# -*- test-case-name: tests.test_bench -*-
"""
workersplit: where the CPU of a privilege-separated ikedtx goes, per
process, with one and with several IKE workers (C{--ike-workers N}).

    sudo python3 bench/workersplit.py [--sas 1000] [--responders ikedtx-privsep,ikedtx-w2]
                                      [--tree before=/tmp/main --tree after=.] [--repeat 3]
                                      [--warmup N] [--pin] [--cprofile] [--strace] [--probe]
                                      [--json FILE]

For each run a fresh responder (of each --tree in turn, the order reversed
every other repeat: before and after interleaved) answers charon
(bench/charongen.py, PSK X25519 with a Child SA, window 32); around the
establishment of --sas IKE SAs the benchmark reads, for the parent and each
worker: its CPU time (schedstat), its voluntary context switches (each one a
sleep in epoll_wait and a wake-up: how many times its event loop ran) and
the involuntary ones (preempted), per SA; and for the daemon: C{show stats}
through the control socket (messages received and sent, retransmissions,
COOKIEs: what the workers did), the namespace's UDP receive errors (a
datagram a full socket dropped) and the datagrams that reached a worker
without its IKE SA (C{ikes_msg_rcvd_dropped}, where the tree counts them).
--cprofile counts each process's Python calls per SA (the same work done
by one worker or shared by two shows as the same count, whatever the
machine's load does to the times); --probe runs bench/respcost.py alone
and two copies at once (what two busy Python processes cost this machine,
no ikedtx pool involved). With --strace each process's system calls are
counted too (strace -c: it slows every call down, so its runs give
counts, not times).

Nothing is asserted: figures are printed and, with --json, written.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.charongen import CharonGenerator  # noqa: E402
from bench.measure import ikedtxVariant  # noqa: E402
from bench.proc import cpuSeconds, pin, processTree, waitIdle  # noqa: E402
from bench.responders import IkedtxResponder  # noqa: E402
from bench.suites import GEN_ADDRESS, RESP_ADDRESS, SUITES  # noqa: E402
from ikedtx.testing.lab.netns import Network  # noqa: E402


def contextSwitches(pid):
    """
    C{(voluntary, involuntary, migrations)}: the context switches of every
    live thread of C{pid}, and its moves from one CPU to another
    (/proc/PID/task/TID/sched).
    """
    voluntary = involuntary = migrations = 0
    for tid in os.listdir("/proc/%d/task" % (pid,)):
        try:
            with open("/proc/%d/task/%s/sched" % (pid, tid)) as f:
                for line in f:
                    name, _, value = line.partition(":")
                    name = name.strip()
                    if name == "nr_voluntary_switches":
                        voluntary += int(value)
                    elif name == "nr_involuntary_switches":
                        involuntary += int(value)
                    elif name == "se.nr_migrations":
                        migrations += int(value)
        except FileNotFoundError:
            pass
    return voluntary, involuntary, migrations


def snapshot(pid):
    """
    C{[(pid, cpu seconds, voluntary, involuntary, migrations)]}: the parent first, then
    its workers by pid.
    """
    found = []
    for p in processTree(pid):
        try:
            found.append((p, cpuSeconds(p)) + contextSwitches(p))
        except OSError:
            pass
    return sorted(found, key=lambda row: (row[0] != pid, row[0]))


def udpErrors(namespace):
    lines = [line.split() for line in namespace.run(["cat", "/proc/net/snmp"]).stdout.splitlines()
             if line.startswith("Udp:")]
    fields = dict(zip(lines[0], lines[1]))
    return int(fields["InErrors"])


def showStats(responder, timeout=30):
    """
    The daemon's C{show stats} counters (C{{name: value}}), or C{{}}.
    """
    code = ("import json, sys\n"
            "from twisted.internet import task\n"
            "from ikedtx.control.client import connectControl\n"
            "def main(reactor):\n"
            "    d = connectControl(reactor, sys.argv[1])\n"
            "    d.addCallback(lambda c: c.showStats())\n"
            "    d.addCallback(lambda a: print(json.dumps({c['name']: c['value'] for c in a['counters']})))\n"
            "    return d\n"
            "task.react(main)\n")
    try:
        result = subprocess.run([sys.executable, "-c", code, responder.socketPath], capture_output=True, text=True,
                                timeout=timeout, env=dict(os.environ, PYTHONPATH=responder.root), cwd=responder.root)
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return {}


def dumpProfiles(pid, directory, n, timeout=30.0):
    """
    Have every process of C{pid}'s tree write its cProfile statistics
    (bench/cprofilehook) for the C{n}th time and wait for them.
    """
    pids = processTree(pid)
    for p in pids:
        os.kill(p, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    for p in pids:
        path = os.path.join(directory, "%d.%d" % (p, n))
        while not (os.path.exists(path) and os.path.getsize(path) > 0):
            if time.monotonic() > deadline:
                raise RuntimeError("no profile from %d (%s)" % (p, path))
            time.sleep(0.1)
    time.sleep(1.0)


def profileDelta(directory, pids):
    """
    C{{pid: (calls, [(function, calls, seconds)])}}: what each process did
    between its first and second statistics, the functions by calls.
    """
    import marshal

    found = {}
    for pid in pids:
        stats = []
        for n in (0, 1):
            with open(os.path.join(directory, "%d.%d" % (pid, n)), "rb") as f:
                stats.append(marshal.load(f))
        before, after = stats
        rows = []
        for function, (cc, nc, tt, ct, callers) in after.items():
            was = before.get(function, (0, 0, 0.0, 0.0, {}))
            if nc - was[1]:
                rows.append(("%s:%d(%s)" % (os.path.basename(function[0]), function[1], function[2]), nc - was[1],
                             tt - was[2]))
        rows.sort(key=lambda row: -row[1])
        found[pid] = (sum(row[1] for row in rows), rows)
    return found


def startStrace(pids, directory):
    """
    C{strace -c} attached to each of C{pids}: C{[(pid, process, path)]}.
    """
    tracers = []
    for pid in pids:
        path = os.path.join(directory, "strace-%d.txt" % (pid,))
        process = subprocess.Popen(["strace", "-c", "-f", "-o", path, "-p", str(pid)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tracers.append((pid, process, path))
    time.sleep(1.0)
    return tracers


def stopStrace(tracers):
    """
    C{{pid: {syscall: calls}}} of L{startStrace}'s tracers, stopped.
    """
    counts = {}
    for pid, process, path in tracers:
        process.send_signal(signal.SIGINT)
        process.wait(30)
        calls = {}
        with open(path) as f:
            for line in f:
                fields = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(fields) >= 5 and fields[3].isdigit() and not line.startswith("100.00"):
                    calls[fields[-1]] = int(fields[3])
        counts[pid] = calls
    return counts


def measureOne(network, namespaces, workdir, tree, treeName, responderName, sas, window, ids, traced, log, warmup=0, pinned=False,
               profiled=False):
    gen, resp = namespaces
    suite = SUITES["psk-x25519"]
    directory = tempfile.mkdtemp(prefix="%s-%s-" % (treeName, responderName), dir=workdir)
    privsep, extra = ikedtxVariant(responderName)
    responder = IkedtxResponder(resp, directory, suite, None, privsep=privsep, extraArgs=extra, root=tree,
                                name=responderName)
    generator = None
    if profiled:
        profiles = os.path.join(directory, "cprofile")
        os.makedirs(profiles)
        os.chmod(directory, 0o755)
        os.chmod(profiles, 0o777)
        responder.extraEnv = {"IKEBENCH_CPROFILE": profiles,
                              "PYTHONPATH": os.path.join(ROOT, "bench", "cprofilehook") + ":" + tree}
    try:
        responder.start()
        pid = responder.pid
        if pinned:
            pin(pid, {1})
        waitIdle(pid)
        for p in processTree(pid)[1:]:
            waitIdle(p)
        generator = CharonGenerator(gen, directory, suite, None, window, ids, cpu=0 if pinned else None)
        if warmup:
            # First SAs of each process: whatever it does once (caches,
            # the interpreter's specialisation) is not counted.
            generator.run(warmup, 60 + 0.1 * warmup)
        tracers = startStrace([p for p in processTree(pid)], directory) if traced else None
        statsBefore = showStats(responder)
        errorsBefore = udpErrors(resp)
        if profiled:
            dumpProfiles(pid, profiles, 0)
        before = snapshot(pid)
        done = generator.run(warmup + sas, 60 + 0.1 * sas)
        done["established"] -= warmup
        after = snapshot(pid)
        if profiled:
            dumpProfiles(pid, profiles, 1)
        errors = udpErrors(resp) - errorsBefore
        syscalls = stopStrace(tracers) if tracers else None
        statsAfter = showStats(responder)
        held = max(1, done["established"])
        processes = []
        previous = {row[0]: row for row in before}
        for p, cpu, voluntary, involuntary, migrations in after:
            was = previous.get(p, (p, 0.0, 0, 0, 0))
            entry = {"pid": p, "cpuMsPerSa": round(1000.0 * (cpu - was[1]) / held, 3),
                     "wakeupsPerSa": round((voluntary - was[2]) / held, 2),
                     "preemptedPerSa": round((involuntary - was[3]) / held, 2),
                     "migrationsPerSa": round((migrations - was[4]) / held, 2)}
            if syscalls is not None:
                entry["syscallsPerSa"] = {name: round(n / held, 2) for name, n in sorted(syscalls.get(p, {}).items())
                                          if n >= held // 10}
            processes.append(entry)
        counters = {name: statsAfter.get(name, 0) - statsBefore.get(name, 0) for name in statsAfter
                    if statsAfter.get(name, 0) != statsBefore.get(name, 0)}
        if profiled:
            calls = profileDelta(profiles, [p["pid"] for p in processes])
            for p in processes:
                p["callsPerSa"] = round(calls[p["pid"]][0] / held, 1)
                # (function, calls per SA, ms per SA), the functions called
                # at least once per 10 SAs
                p["functions"] = [(name, round(n / held, 2), round(1000 * t / held, 4))
                                  for name, n, t in calls[p["pid"]][1] if n >= held / 10]
        row = {"tree": treeName, "responder": responderName, "held": done["established"], "warmup": warmup,
               "why": done["why"], "pinned": pinned,
               "elapsed": round(done["elapsed"], 2), "rate": round(done["established"] / done["elapsed"], 1),
               "cpuMsPerSa": round(sum(p["cpuMsPerSa"] for p in processes), 3), "processes": processes,
               "counters": counters, "udpInErrors": errors, "latencyMs": done["latencies"], "strace": traced,
               "loadavg": open("/proc/loadavg").read().split()[:3]}
        log("  %-7s %-15s %5d SAs %5.0f/s CPU ms/SA %.2f = %s; wake-ups/SA %s; preempted/SA %s; CPU moves/SA %s; msgs rcvd/sent per SA "
            "%.2f/%.2f; retransmits %d/%d; cookies %d; dropped (no such IKE SA: a wrong worker) %d; UDP errors %d; "
            "load %s" % (
                treeName, responderName, row["held"], row["rate"], row["cpuMsPerSa"],
                " + ".join("%.2f" % p["cpuMsPerSa"] for p in processes),
                " + ".join("%.1f" % p["wakeupsPerSa"] for p in processes),
                " + ".join("%.1f" % p["preemptedPerSa"] for p in processes),
                " + ".join("%.2f" % p["migrationsPerSa"] for p in processes),
                counters.get("ikes_msg_rcvd", 0) / held, counters.get("ikes_msg_sent", 0) / held,
                counters.get("ikes_retransmit_request", 0), counters.get("ikes_retransmit_response", 0),
                counters.get("ikedtx_cookie_sent", 0), counters.get("ikes_msg_rcvd_dropped", 0), errors, " ".join(row["loadavg"])))
        if profiled:
            log("    Python calls per SA (cProfile): %s" % (" + ".join("%.0f" % p["callsPerSa"] for p in processes),))
        if traced:
            for p in processes:
                log("    %d: %s" % (p["pid"], ", ".join("%s %.1f" % item for item in p["syscallsPerSa"].items())))
        return row
    finally:
        if generator is not None:
            generator.stop()
        responder.stop()


def respcostRuns(tree, sas, parallel):
    """
    C{parallel} copies of bench/respcost.py (the responder's CPU per IKE SA
    in memory: no sockets, no other process) of C{tree} at once: the ms
    per SA of each.
    """
    import re

    argv = [sys.executable, os.path.join(tree, "bench", "respcost.py"), "--sas", str(sas)]
    env = dict(os.environ, PYTHONPATH=tree)
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tree)
            for _ in range(parallel)]
    found = []
    for run in runs:
        out = run.communicate(timeout=600)[0]
        match = re.search(r"([0-9.]+) ms per IKE SA", out)
        found.append(float(match.group(1)) if match else None)
    return found


def probe(tree, sas, log):
    """
    What this machine charges for running two Python processes at once:
    bench/respcost.py alone, then two copies of it at the same time (the
    same work per process). Nothing of ikedtx's pool is involved.
    """
    alone = respcostRuns(tree, sas, 1)
    both = respcostRuns(tree, sas, 2)
    row = {"probe": True, "alone": alone, "twoAtOnce": both, "loadavg": open("/proc/loadavg").read().split()[:3]}
    log("  probe: respcost alone %s ms/SA, two at once %s ms/SA; load %s" % (
        alone, both, " ".join(row["loadavg"])))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(prog="workersplit", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sas", type=int, default=1000)
    parser.add_argument("--responders", default="ikedtx-privsep,ikedtx-w2")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="a checkout whose ikedtx runs (repeatable; default: this one, as 'this')")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0,
                        help="IKE SAs established before the measurement starts (not counted)")
    parser.add_argument("--pin", action="store_true",
                        help="every process of the responder on CPU 1, the generator on CPU 0 (several workers then "
                             "share one core: what they cost without running in parallel)")
    parser.add_argument("--cprofile", action="store_true",
                        help="run the responder's processes under cProfile and count the Python calls of each "
                             "per SA (bench/cprofilehook; slows them down: counts, not times)")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--strace", action="store_true", help="count system calls (strace -c; slows them down)")
    parser.add_argument("--probe", action="store_true",
                        help="before each repeat, run bench/respcost.py (in memory) alone and two copies at once: what "
                             "two busy Python processes cost on this machine without any ikedtx pool")
    parser.add_argument("--json", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, profiles)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("workersplit needs root (network namespaces)")
    trees = [tuple(t.split("=", 1)) for t in args.tree] or [("this", ROOT)]
    trees = [(name, os.path.abspath(path)) for name, path in trees]
    responders = [r for r in args.responders.split(",") if r]

    def log(text):
        print(text, flush=True)

    workdir = tempfile.mkdtemp(prefix="workersplit-")
    network = Network()
    rows = []
    try:
        gen = network.namespace("gen")
        resp = network.namespace("resp")
        network.link(gen, resp, [GEN_ADDRESS + "/24"], [RESP_ADDRESS + "/24"])
        order = [(tree, responder) for responder in responders for tree in trees]
        for repeat in range(args.repeat):
            if args.probe:
                rows.append(probe(trees[-1][1], args.sas, log))
            for (treeName, tree), responderName in (order if repeat % 2 == 0 else order[::-1]):
                try:
                    rows.append(measureOne(network, (gen, resp), workdir, tree, treeName, responderName, args.sas,
                                           args.window, args.ids, args.strace, log, args.warmup, args.pin,
                                           args.cprofile))
                except Exception as e:
                    log("  %s %s failed: %s" % (treeName, responderName, e))
    finally:
        network.cleanup()
        if args.keep:
            log("working directory kept: %s" % (workdir,))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

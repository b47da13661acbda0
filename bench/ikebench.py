#!/usr/bin/env python3
# -*- test-case-name: tests.test_bench -*-
"""
ikebench: IKE SA set-up rate, responder CPU and memory per IKE SA, for
ikedtx and for strongSwan's charon as responder, side by side on one machine.

    sudo python3 bench/ikebench.py [--sas 1000,10000] [--suites psk-ecp256,...]
                                   [--responders ikedtx,charon] [--window 32]

Topology: two network namespaces joined by a veth pair (ikedtx.testing.lab.Network).
The responder under test runs alone in "resp" (192.0.2.2) as its own
process; the load generator (bench/loadgen.py: ikedtx's IKECore as
initiator, W negotiations in flight) runs in "gen" (192.0.2.1). Each IKE SA
comes with its first Child SA (IKE_AUTH). By default the responder is pinned
to CPU 1 and the generator to CPU 0.

For each suite and responder a fresh responder is started; its RSS is read
once it is idle (no SA), then the generator establishes SAs up to each count
of --sas in turn (1,000 then 10,000: the SAs of the first step are kept), and
at each step, with all SAs held, the benchmark reads the responder's CPU time
(/proc/PID/task/*/schedstat, to the nanosecond) and RSS (/proc/PID/status VmRSS) and checks the
count of established IKE SAs in the responder (charon: vici "stats"; ikedtx:
its log). Nothing is asserted about speed: the figures are printed and,
with --output, written as Markdown.

Responders: "ikedtx"; "charon" (strongSwan with kernel-libipsec, so that
its Child SAs are installed, in user space, and kept: this kernel has no
ESP); "charon-netlink" (kernel-netlink only: Child SAs fail to install and
charon keeps the IKE SA; a reference for charon's IKE work alone);
"charon6" (strongSwan 6.1 from the Debian 13 tree that .ci/setup makes,
chrooted, with kernel-libipsec: the suites with RFC 9370 ML-KEM). The SAs
are spread over --ids initiator identities (--cert-ids for certificate
suites). --profile, --gc-stats and --tracemalloc look inside the ikedtx
responder. bench/results-*.md explains the method, its unfairness and the
figures measured.

Needs root (namespaces), strongSwan 5.9 (charon with the kernel-libipsec
plugin, swanctl) for the charon rows, py-spy for --profile.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.introspect import profileFormat  # noqa: E402
from bench.measure import measure  # noqa: E402
from bench.proc import waitForQuietMachine  # noqa: E402
from bench.report import markdown, table  # noqa: E402
from bench.responders import charonVersion  # noqa: E402
from bench.suites import GEN_ADDRESS, GENERATORS, RESPONDERS, RESP_ADDRESS, SUITES  # noqa: E402
from ikedtx.testing.lab.netns import Network  # noqa: E402


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="ikebench", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sas", default="1000,10000", help="IKE SA counts to hold, in increasing order (1000,10000)")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma list of: " + ", ".join(SUITES))
    parser.add_argument("--responders", default="ikedtx,charon",
                        help="comma list of: " + ", ".join(RESPONDERS) + ", ikedtx-privsep (privilege separation: "
                             "the figures cover the parent and its worker), ikedtx-wN (privilege separation with N "
                             "IKE workers, --ike-workers N)")
    parser.add_argument("--ikedtx-args", default="", metavar="ARGS",
                        help="more flags for every ikedtx responder, as one shell-quoted string (e.g. "
                             "'--half-open-max 5000'); the rows say so")
    parser.add_argument("--generators", default="ikedtx",
                        help="comma list of load generators: ikedtx (bench/loadgen.py), charon (bench/charongen.py: "
                             "strongSwan 5.9 initiating over vici, the neutral one), charon6 (the same with charon "
                             "6.1 from the Debian 13 tree, /var/cache/ikedtx-trixie: RFC 9370 ML-KEM)")
    parser.add_argument("--childless", action="store_true",
                        help="IKE SAs without a Child SA (RFC 6023); with the charon generator only")
    parser.add_argument("--window", type=int, default=32,
                        help="negotiations in flight (ikedtx answers with a COOKIE above 64 half-open SAs)")
    parser.add_argument("--ids", type=int, default=100,
                        help="initiator identities the SAs are spread over, in turn (gen<i>.bench.example; default "
                             "100): charon keeps a list of the IKE SAs of each identity pair, which one identity "
                             "makes O(n) per SA")
    parser.add_argument("--cert-ids", type=int, default=10,
                        help="the same for certificate suites (default 10): one certificate per identity; "
                             "ikedtx verifies each chain once and reuses it while it holds (charon caches its issuer "
                             "signature checks), so a larger count measures more of the verification itself; the ikedtx "
                             "generator keeps them all in its certs/ (untrusted intermediates of every chain it "
                             "verifies), which makes its own cost grow with the count")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the responder to CPU 1, the generator to CPU 0")
    parser.add_argument("--output", default=None, help="also write the results as Markdown to this file")
    parser.add_argument("--json", default=None, help="also write the raw results as JSON to this file")
    parser.add_argument("--profile", default=None,
                        help="record a py-spy profile (pip install py-spy) of the first ikedtx responder to this "
                             "file (of ikedtx-privsep to FILE-ikedtx-privsep.EXT, with its worker only when it is not "
                             "chrooted: py-spy reads the worker's binary through its root; --ikedtx-args="
                             "'--privsep-chroot /'): speedscope/raw/flamegraph by extension .json/.txt/.svg")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each suite and responder this many times and keep the run that other load on "
                             "the machine disturbed least")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each measurement wait up to this many seconds for the machine to be idle "
                             "(0: do not wait)")
    parser.add_argument("--charon-log", type=int, default=1, help="charon's file log level (default 1, its default)")
    parser.add_argument("--gc-stats", action="store_true",
                        help="measure the time the ikedtx responder spends in Python's garbage collector (gc "
                             "callbacks: costs a little CPU itself)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace the ikedtx responder's allocations (slow) and print the source lines whose "
                             "memory grew most per SA")
    parser.add_argument("--charon-set", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra charon.KEY = VALUE for strongswan.conf (repeatable); such rows are marked *")
    parser.add_argument("--ikedtx-set", action="append", default=[], metavar="SETTING",
                        help="an extra 'set SETTING' line for ikedtx's iked.conf, e.g. 'dpd_check_interval 0' "
                             "(repeatable; passed to the responder as IKEBENCH_IKEDTX_SET)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (configs, logs)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.charonSettings = {}
    for item in args.charon_set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error("--charon-set wants KEY=VALUE, not %r" % (item,))
        args.charonSettings[key.strip()] = value.strip()
    if args.ikedtx_set:
        os.environ["IKEBENCH_IKEDTX_SET"] = ";".join(args.ikedtx_set)
    args.counts = sorted(int(n) for n in args.sas.split(",") if n)
    args.suiteList = [s for s in args.suites.split(",") if s]
    args.responderList = [r for r in args.responders.split(",") if r]
    args.generatorList = [g for g in args.generators.split(",") if g]
    for g in args.generatorList:
        if g not in GENERATORS:
            parser.error("unknown generator %r (known: %s)" % (g, ", ".join(GENERATORS)))
    if args.childless and not set(args.generatorList) <= {"charon", "charon6"}:
        parser.error("--childless needs --generators charon or charon6")
    for s in args.suiteList:
        if s not in SUITES:
            parser.error("unknown suite %r (known: %s)" % (s, ", ".join(SUITES)))
    import shlex

    from bench.measure import ikedtxVariant

    args.ikedtxArgs = shlex.split(args.ikedtx_args)
    for r in args.responderList:
        if r.startswith("ikedtx-"):
            try:
                ikedtxVariant(r)
            except ValueError:
                parser.error("unknown responder %r (ikedtx-privsep or ikedtx-wN)" % (r,))
            continue
        if r not in RESPONDERS:
            parser.error("unknown responder %r (known: %s)" % (r, ", ".join(RESPONDERS)))
    return args


def run(args, out=sys.stdout):
    """
    Run every measurement of C{args}; return the result rows.
    """
    def log(text):
        if not args.quiet:
            out.write(text + "\n")
            out.flush()

    if os.geteuid() != 0:
        raise SystemExit("ikebench needs root (network namespaces)")
    pinCpus = None if args.no_pin or (os.cpu_count() or 1) < 2 else (0, 1)
    workdir = tempfile.mkdtemp(prefix="ikebench-")
    network = Network()
    rows = []
    try:
        gen = network.namespace("gen")
        resp = network.namespace("resp")
        network.link(gen, resp, [GEN_ADDRESS + "/24"], [RESP_ADDRESS + "/24"])
        for suiteName in args.suiteList:
            suite = SUITES[suiteName]
            for responderName, generatorName in [(r, g) for g in args.generatorList for r in args.responderList]:
                if suite.charonGroup is None and "charon" in (responderName, generatorName):
                    log("%s: charon %s cannot negotiate it, skipped" % (suite.name, charonVersion()))
                    continue
                if "charon6" in (responderName, generatorName) and not suite.charonCan(True):
                    log("%s: charon 6 cannot negotiate it, skipped" % (suite.name,))
                    continue
                log("%s against %s, generator %s (window %d%s) ..." % (
                    suite.name, responderName, generatorName, args.window, ", pinned" if pinCpus else ""))
                profile = None
                if args.profile and responderName.startswith("ikedtx") and not any(
                        r["responder"] == responderName for r in rows):
                    base, ext = os.path.splitext(args.profile)
                    path = args.profile if responderName == "ikedtx" else "%s-%s%s" % (base, responderName, ext)
                    profile = (path, profileFormat(path))
                best = None
                for attempt in range(args.repeat):
                    if args.quiet_wait > 0:
                        waitForQuietMachine(args.quiet_wait, log)
                    try:
                        result, responder, directory = measure(
                            (gen, resp), workdir, suite, responderName, args.counts, args.window, pinCpus,
                            log, profile if attempt == 0 else None, args.charon_log,
                            args.cert_ids if suite.keyType else args.ids, args.gc_stats, args.tracemalloc,
                            args.charonSettings, generatorName, args.childless, args.ikedtxArgs)
                    except Exception as e:
                        log("  %s %s failed: %s" % (responderName, suite.name, e))
                        result = [{"suite": suite.name, "responder": responderName, "generator": generatorName, "held": 0,
                                   "error": str(e)}]
                        responder = None
                    for row in result:
                        row["responderDescription"] = responder.describe() if responder else ""
                        if responderName.startswith("charon") and (args.charonSettings or args.charon_log != 1):
                            row["responder"] += "*"
                        row["attempts"] = args.repeat
                    # keep the complete run that other jobs on the machine disturbed least
                    score = (any("error" in r or r.get("why") != "done" for r in result),
                             max(r.get("otherUtil") or 0.0 for r in result))
                    if best is None or score < best[0]:
                        best = (score, result)
                rows.extend(best[1])
        return rows
    finally:
        network.cleanup()
        if args.keep:
            log("working directory kept: %s" % (workdir,))
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parseArgs(argv)
    args.argv = argv
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = run(args)
    good = [r for r in rows if "error" not in r]
    print()
    print(table(good))
    for r in rows:
        if "error" in r:
            print("%s / %s failed: %s" % (r["suite"], r["responder"], r["error"]))
    if args.output:
        with open(args.output, "w") as f:
            f.write(markdown(args, rows, started))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if good and not any("error" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

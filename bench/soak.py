#!/usr/bin/env python3
# -*- test-case-name: tests.test_core_soak -*-
"""
soak: the full soak of issue 9, too long for the suite (tests.test_core_soak
runs 100 IKE SAs): two in-memory ikedtx cores with 1,000 IKE SAs through a
simulated week on a fake clock, both rekeying on their own jittered timers.

    PYTHONPATH=. python3 bench/soak.py [--sas 1000] [--days 7]
        [--lifetime 43200] [--ikelifetime 64800] [--step 120]

Prints the renewals counted, what each side holds at the end, the memory
traced (tracemalloc, from before the first IKE SA) on each day, with the lines that
grew most from day 2 to the last, and the CPU time; exits 1 if an SA was lost, an
SA or timer was left behind, or memory grew by more than --bound bytes.

The default run takes about 4.5 minutes of CPU on the shared machine
(2026-12-03, on ikedtx.testing.clock.HeapClock: task.Clock re-sorted all
its calls, about 6,000 here, on every callLater and had not finished
after 17 minutes); --sas 20 --days 3 takes a second. Results:
bench/results-2026-12-03-soak.md.
"""

import argparse
import sys
import time

from ikedtx.core.states import ChildState, IKEState

from tests.soak import DAY, Soak


def problems(soak, reqids):
    out = []
    if set(soak.childRenewals) != reqids:
        out.append("Child SA reqids changed")
    for host in (soak.a, soak.b):
        sas = host.ikeSAs
        if len(sas) != soak.count or {sa.state for sa in sas} != {IKEState.VALID}:
            out.append("%s holds %d IKE SAs in %s" % (host.address, len(sas), {sa.state for sa in sas}))
        if [len(sa.children) for sa in sas] != [1] * len(sas) or \
                {c.state for sa in sas for c in sa.children} != {ChildState.INSTALLED}:
            out.append("%s: Child SAs other than one installed per IKE SA" % (host.address,))
        if len(host.kernel.sas) != 2 * soak.count or len(host.core._children) != soak.count:
            out.append("%s: %d SAs in the datapath, %d Child SAs indexed" % (
                host.address, len(host.kernel.sas), len(host.core._children)))
        if host.core._spiRequests or host.core.halfOpenCount():
            out.append("%s: SPI requests or half-open SAs left" % (host.address,))
        active = [key for key, call in host.timers.items() if call.active()]
        if len(active) > 3 * soak.count + 1:
            out.append("%s: %d timers for %d IKE SAs" % (host.address, len(active), soak.count))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sas", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--lifetime", type=int, default=12 * 3600)
    parser.add_argument("--ikelifetime", type=int, default=18 * 3600)
    parser.add_argument("--step", type=int, default=120)
    parser.add_argument("--bound", type=int, default=1024 * 1024)
    args = parser.parse_args(argv)
    started = time.process_time()
    soak = Soak(args.sas, args.ikelifetime, args.lifetime, step=args.step)
    failed = [d for d in soak.establish() if d.error is not None]
    reqids = set(soak.childRenewals)
    print("established %d IKE SAs (%d failed) in %.1f s CPU" % (args.sas, len(failed), time.process_time() - started))
    soak.run(args.days * DAY, measureDays=range(1, args.days + 1))
    renewals = sorted(soak.childRenewals.values())
    print("%d simulated days in %.1f s CPU" % (args.days, time.process_time() - started))
    print("Child SA installs per reqid: min %d, median %d, max %d; IKE SAs up (first and rekeyed): %d" % (
        renewals[0], renewals[len(renewals) // 2], renewals[-1], soak.ikeUps))
    grown = soak.memory[args.days] - soak.memory[2]
    print("traced memory: day 2 %d bytes, day %d %d bytes (%+d)" % (
        soak.memory[2], args.days, soak.memory[args.days], grown))
    print("traced memory by day: %s" % (", ".join("%d: %d" % (day, soak.memory[day]) for day in sorted(soak.memory)),))
    print(soak.growth(2, args.days))
    bad = problems(soak, reqids)
    if failed:
        bad.append("%d IKE SAs failed to establish" % (len(failed),))
    if grown > args.bound:
        bad.append("memory grew by %d bytes" % (grown,))
    for line in bad:
        print("PROBLEM:", line)
    print("OK" if not bad else "FAILED")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

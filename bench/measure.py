# -*- test-case-name: tests.test_bench -*-
"""
One measurement: a fresh responder, the generator establishing SAs up
to each count, and the figures read at each step.
"""

import tempfile
import time

from bench.charongen import CharonGenerator
from bench.generator import Generator
from bench.introspect import startProfiler, stopProfiler, tracemallocGrowth
from bench.proc import (
    cpuSeconds,
    tickCpuSeconds,
    machineBusySeconds,
    pin,
    treeCpuByProcess,
    treeCpuSeconds,
    treeRssKilobytes,
    threadCount,
    waitIdle,
)
from bench.responders import CharonResponder, IkedtxResponder
from bench.suites import Credentials
from ikedtx.testing.lab.chroot import trixieRoot


def ikedtxVariant(name):
    """
    C{(privsep, extra flags)} of an ikedtx responder name: C{ikedtx} (one
    process, --no-privsep), C{ikedtx-privsep} (parent and one worker),
    C{ikedtx-wN} (parent and N workers, --ike-workers N).
    """
    if name == "ikedtx":
        return False, []
    if name == "ikedtx-privsep":
        return True, []
    if name.startswith("ikedtx-w") and name[8:].isdigit():
        return True, ["--ike-workers", name[8:]]
    raise ValueError(name)


def measure(namespaces, workdir, suite, responderName, counts, window, pinCpus, log, profile=None,
            charonLog=1, ids=100, gcStats=False, tracemalloc=False, charonSettings=None, generatorName="ikedtx",
            childless=False, ikedtxArgs=()):
    """
    Start a fresh responder, establish SAs up to each of C{counts}, and
    return one result dict per count.

    @param generatorName: C{"ikedtx"} (bench/loadgen.py), C{"charon"} or
        C{"charon6"} (bench/charongen.py, strongSwan 5.9 or 6 initiating
        over vici).
    @param childless: IKE SAs without a Child SA (RFC 6023; charon
        generator only).
    @param ikedtxArgs: more flags for an ikedtx responder (ikebench
        --ikedtx-args).
    """
    gen, resp = namespaces
    directory = tempfile.mkdtemp(prefix="%s-%s-" % (suite.name, responderName), dir=workdir)
    credentials = Credentials(suite.keyType, ids) if suite.keyType else None
    if responderName == "ikedtx" or responderName.startswith("ikedtx-"):
        privsep, extra = ikedtxVariant(responderName)
        responder = IkedtxResponder(resp, directory, suite, credentials, gcStats=gcStats, tracemalloc=tracemalloc,
                                    privsep=privsep, extraArgs=extra + list(ikedtxArgs), name=responderName)
        gcStats = gcStats or tracemalloc
    elif responderName == "charon":
        responder = CharonResponder(resp, directory, suite, credentials, libipsec=True, logLevel=charonLog,
                                    extra=charonSettings)
    elif responderName == "charon-netlink":
        responder = CharonResponder(resp, directory, suite, credentials, libipsec=False, logLevel=charonLog,
                                    extra=charonSettings)
    elif responderName == "charon6":
        responder = CharonResponder(resp, directory, suite, credentials, libipsec=True, logLevel=charonLog,
                                    extra=charonSettings, root=trixieRoot())
    else:
        raise ValueError(responderName)
    if not responderName.startswith("ikedtx"):
        # --gc-stats and --tracemalloc look inside the ikedtx responder only
        gcStats = tracemalloc = False
    generator = None
    profiler = None
    rows = []
    try:
        responder.start()
        pid = responder.pid
        if pinCpus is not None:
            pin(pid, {pinCpus[1]})
        waitIdle(pid)
        baseRss = treeRssKilobytes(pid)
        if generatorName in ("charon", "charon6"):
            generator = CharonGenerator(gen, directory, suite, credentials, window, ids,
                                        cpu=pinCpus[0] if pinCpus is not None else None, childless=childless,
                                        root=trixieRoot() if generatorName == "charon6" else None)
        else:
            generator = Generator(gen, directory, suite, credentials, window, ids,
                                  cpu=pinCpus[0] if pinCpus is not None else None,
                                  acceptChildless=responderName == "charon-netlink")
        if profile is not None:
            profiler = startProfiler(pid, profile)
        elapsed = cpu = genCpu = busy = gcSeconds = 0.0
        gcCounts = [0, 0, 0]
        previous = None
        for count in counts:
            if previous is not None and count <= previous["held"]:
                continue
            cpuBefore = treeCpuSeconds(pid)
            ticksBefore = treeCpuSeconds(pid, tickCpuSeconds)
            splitBefore = treeCpuByProcess(pid)
            genBefore = cpuSeconds(generator.pid)
            busyBefore = machineBusySeconds()
            gcBefore = responder.gcSnapshot() if gcStats else None
            timeout = 60 + 0.1 * (count - (previous["held"] if previous else 0))
            done = generator.run(count, timeout)
            cpuAfter = treeCpuSeconds(pid)
            ticks = treeCpuSeconds(pid, tickCpuSeconds) - ticksBefore
            if ticks > (cpuAfter - cpuBefore) * 1.05 + 0.03:
                # cpuSeconds counts live threads only
                log("    warning: %s's threads used %.3f s by /proc/PID/stat but the live ones %.3f s: threads "
                    "ended, the CPU figure is too low" % (responderName, ticks, cpuAfter - cpuBefore))
            splitAfter = treeCpuByProcess(pid)
            genAfter = cpuSeconds(generator.pid)
            gcAfter = responder.gcSnapshot() if gcStats else None
            if tracemalloc and gcAfter and gcBefore and "tracemalloc" in gcAfter:
                grown = tracemallocGrowth(gcBefore, gcAfter)
                new = max(1, done["established"] - (previous["held"] if previous else 0))
                log("    tracemalloc: %.1f KB traced per SA; the lines that grew most (KB per SA):" % (
                    (gcAfter["traced"] - gcBefore["traced"]) / 1024.0 / new,))
                for where, size in grown[:20]:
                    log("      %7.2f  %s" % (size / 1024.0 / new, where))
            if gcBefore and gcAfter:
                gcSeconds += sum(gcAfter["seconds"]) - sum(gcBefore["seconds"])
                for g in range(3):
                    gcCounts[g] += gcAfter["count"][g] - gcBefore["count"][g]
            last = count == counts[-1] or done["why"] != "done"
            if profiler is not None and last:
                # the profile covers establishing the SAs, not the checks below
                stopProfiler(profiler)
                profiler = None
            busy += machineBusySeconds() - busyBefore
            elapsed += done["elapsed"]
            cpu += cpuAfter - cpuBefore
            genCpu += genAfter - genBefore
            # all SAs held: let the responder settle, then read its memory
            time.sleep(0.5)
            rss = treeRssKilobytes(pid)
            held = done["established"]
            verified = responder.established()
            # Counting Child SAs through charon's vici (list-sas) or asking
            # ikedtx's control socket makes the responder allocate: only
            # after the last step, whose memory has been read already.
            verifiedChildren = responder.childCount() if last or responder.name.startswith("ikedtx") else None
            control = responder.showSaCount() if last and hasattr(responder, "showSaCount") else None
            row = {
                "suite": suite.name + ("-childless" if childless else ""), "responder": responderName,
                "generator": generatorName, "target": count, "held": held,
                "verified": verified, "verifiedChildren": verifiedChildren, "controlShowSA": control,
                "failed": done["failed"], "why": done["why"],
                "elapsed": elapsed, "rate": held / elapsed if elapsed else 0.0,
                "cpuMsPerSa": 1000.0 * cpu / held if held else None,
                "respUtil": cpu / elapsed if elapsed else None,
                # the rate one core could sustain if only the responder's CPU limited it
                "perCore": held / cpu if cpu else None,
                "rssKb": rss, "baseRssKb": baseRss,
                "kbPerSa": (rss - baseRss) / held if held else None,
                "marginalKbPerSa": ((rss - previous["rssKb"]) / (held - previous["held"])
                                    if previous and held > previous["held"] else None),
                "genCpuMsPerSa": 1000.0 * genCpu / held if held else None,
                "genUtil": genCpu / elapsed if elapsed else None,
                # everything else the machine ran meanwhile (other users' jobs,
                # the kernel's share of our packets not charged to either process)
                "otherUtil": max(0.0, busy - cpu - genCpu) / elapsed if elapsed else None,
                "latencyMs": done["latencies"], "errors": done.get("errors", {}),
                "threads": threadCount(pid), "childless": done.get("childless", 0),
                "profiled": profile is not None,
                "gcShare": gcSeconds / cpu if gcStats and cpu else None,
                "gcCollections": list(gcCounts) if gcStats else None,
                # privilege separation: the parent's share first, then each worker's (ms per SA of this step)
                "cpuMsPerSaByProcess": [round(1000.0 * (splitAfter[p] - splitBefore.get(p, 0.0)) /
                                              max(1, held - (previous["held"] if previous else 0)), 3)
                                        for p in sorted(splitAfter, key=lambda p: (p != pid, p))]
                if len(splitAfter) > 1 else None,
            }
            rows.append(row)
            log("  %s %-16s %6d SAs held (responder: %s IKE, %s Child SAs%s) in %.1f s: %.0f SAs/s, %.2f ms CPU/SA, %.1f KB/SA; "
                "generator %.2f ms CPU/SA (%.0f%% of a core)%s" % (
                    responderName, suite.name, held, verified, verifiedChildren,
                    "" if control is None else "; control socket ShowSA: %s" % (control,), elapsed, row["rate"], row["cpuMsPerSa"] or 0,
                    row["kbPerSa"] or 0, row["genCpuMsPerSa"] or 0, 100 * (row["genUtil"] or 0),
                    "" if done["why"] == "done" else " [%s: %s]" % (done["why"], done.get("errors"))))
            if row["cpuMsPerSaByProcess"]:
                log("    CPU ms per SA, parent then workers: %s" % (
                    " + ".join("%.2f" % (x,) for x in row["cpuMsPerSaByProcess"]),))
            if row["gcShare"] is not None:
                log("    garbage collector: %.1f%% of the responder's CPU; collections per generation %s" % (
                    100 * row["gcShare"], row["gcCollections"]))
            previous = row
            if done["why"] != "done":
                break
        return rows, responder, directory
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
        if generator is not None:
            generator.stop()
        responder.stop()

# -*- test-case-name: tests.test_bench -*-
"""
Looking inside the ikedtx responder: the twistd launchers (one with
Python's garbage collector timed and tracemalloc for --gc-stats and
--tracemalloc, dumped on SIGUSR2) and py-spy for --profile.
"""

import os
import signal
import subprocess
import time


#: twistd as the iked command runs it (ikedtx.cli.runTwistd: the lean
#: start-up of ikedtx.lean, iked as twistd's only plugin); plain twistd in
#: an older checkout (a baseline) without it
_RUN = """
try:
    from ikedtx.cli import runTwistd
except ImportError:
    from twisted.scripts.twistd import run as runTwistd
sys.argv[0] = "twistd"
runTwistd()
"""
TWISTD = "import sys\n" + _RUN

#: the same, with the time spent in Python's garbage collector written to
#: the file named by IKEBENCH_GC_STATS when SIGUSR2 arrives (--gc-stats)
TWISTD_GC = """
import gc, json, os, signal, sys, time
_gc = {"count": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "collected": [0, 0, 0]}
_start = [0.0]
def _callback(phase, info):
    if phase == "start":
        _start[0] = time.process_time()
    else:
        g = info["generation"]
        _gc["count"][g] += 1
        _gc["seconds"][g] += time.process_time() - _start[0]
        _gc["collected"][g] += info["collected"]
gc.callbacks.append(_callback)
if os.environ.get("IKEBENCH_TRACEMALLOC"):
    import tracemalloc
    tracemalloc.start()
def _dump(signum, frame):
    stats = dict(_gc, objects=len(gc.get_objects()))
    if os.environ.get("IKEBENCH_TRACEMALLOC"):
        import tracemalloc
        snapshot = tracemalloc.take_snapshot()
        top = snapshot.statistics("lineno")
        stats["tracemalloc"] = [[str(s.traceback[0]), s.size, s.count] for s in top[:40]]
        stats["traced"] = sum(s.size for s in top)
    with open(os.environ["IKEBENCH_GC_STATS"] + ".tmp", "w") as f:
        json.dump(stats, f)
    os.rename(os.environ["IKEBENCH_GC_STATS"] + ".tmp", os.environ["IKEBENCH_GC_STATS"])
signal.signal(signal.SIGUSR2, _dump)
""" + _RUN


def tracemallocGrowth(before, after):
    old = {where: size for where, size, count in before["tracemalloc"]}
    grown = [(where, size - old.get(where, 0)) for where, size, count in after["tracemalloc"]]
    return sorted(grown, key=lambda item: -item[1])


def profileFormat(path):
    """
    py-spy's output format for a file name: speedscope for .json,
    flamegraph for .svg, raw (collapsed stacks) otherwise.
    """
    return {".json": "speedscope", ".svg": "flamegraph"}.get(os.path.splitext(path)[1], "raw")


def startProfiler(pid, profile):
    """
    Record a py-spy profile of process C{pid} and its children (a
    privilege-separated daemon's workers) (--profile).

    @param profile: (output path, py-spy format).
    @return: the py-spy process; L{stopProfiler} ends it and writes the file.
    """
    profiler = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", profile[1],
                                 "--output", profile[0], "--nonblocking", "--subprocesses"],
                                stdout=subprocess.DEVNULL, stderr=open(profile[0] + ".err", "wb"))
    time.sleep(1.0)
    return profiler


def stopProfiler(profiler):
    """
    Let py-spy write its profile (SIGINT), waiting up to a minute.
    """
    profiler.send_signal(signal.SIGINT)
    profiler.wait(60)

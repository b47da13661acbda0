# -*- test-case-name: tests.test_bench -*-
"""
What the benchmark reads in /proc: the CPU time and RSS of a process,
the machine's busy time, threads, CPU affinity.
"""

import os
import time


def cpuSeconds(pid):
    """
    The CPU time of every live thread of process C{pid}, in seconds, to the
    nanosecond (the first field of /proc/PID/task/TID/schedstat).

    /proc/PID/stat counts utime + stime in clock ticks (10 ms here): a run of
    a few dozen SAs that costs the responder 9 ms read as 0 or 10 ms. Threads
    that exited are not counted (neither daemon measured here ends threads
    while it runs); without schedstat (a kernel without CONFIG_SCHED_INFO)
    this falls back to the ticks.
    """
    if not os.path.exists("/proc/%d/schedstat" % (pid,)):
        return tickCpuSeconds(pid)
    total = 0
    for tid in os.listdir("/proc/%d/task" % (pid,)):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # the thread ended between listdir and open
    return total / 1e9


def tickCpuSeconds(pid):
    """
    utime + stime of every thread of process C{pid} (also the ones that
    ended), in seconds, in clock ticks.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processTree(pid):
    """
    C{pid} and its descendants (a privilege-separated daemon's workers).
    """
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % (name,)) as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def treeCpuSeconds(pid, read=cpuSeconds):
    """
    L{cpuSeconds} (or C{read}) of C{pid} and its live descendants.
    """
    total = 0.0
    for p in processTree(pid):
        try:
            total += read(p)
        except OSError:
            if p == pid:
                raise
    return total


def treeCpuByProcess(pid):
    """
    C{{pid: cpuSeconds}} of C{pid} and its live descendants.
    """
    found = {}
    for p in processTree(pid):
        try:
            found[p] = cpuSeconds(p)
        except OSError:
            pass
    return found


def treeRssKilobytes(pid):
    """
    L{rssKilobytes} of C{pid} and its live descendants (shared pages count
    once per process, as a sum of VmRSS does).
    """
    total = 0
    for p in processTree(pid):
        try:
            total += rssKilobytes(p)
        except (OSError, RuntimeError):
            if p == pid:
                raise
    return total


def rssKilobytes(pid):
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % (pid,))


def machineBusySeconds():
    """
    CPU seconds all CPUs spent busy (not idle, not waiting for I/O) since
    boot, from /proc/stat.
    """
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def waitForQuietMachine(maxWait, log, threshold=0.25, interval=1.0):
    """
    Wait (at most C{maxWait} seconds) until the machine is nearly idle
    (less than C{threshold} of a core busy over two C{interval}s in a
    row): the benchmark shares its two cores with whatever else runs.

    @return: the load seen last, in cores.
    """
    deadline = time.monotonic() + maxWait
    quiet = 0
    load = 0.0
    while True:
        before = machineBusySeconds()
        time.sleep(interval)
        load = (machineBusySeconds() - before) / interval
        quiet = quiet + 1 if load < threshold else 0
        if quiet >= 2:
            return load
        if time.monotonic() >= deadline:
            log("  the machine stays busy (%.2f cores used by others); measuring anyway" % (load,))
            return load


def threadCount(pid):
    return len(os.listdir("/proc/%d/task" % (pid,)))


def pin(pid, cpus):
    """
    Set the CPU affinity of every thread of C{pid} and of its descendants
    (threads and processes made later inherit it from their creator).
    """
    for p in processTree(pid):
        try:
            tids = os.listdir("/proc/%d/task" % (p,))
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass


def waitIdle(pid, quiet=0.3, timeout=10.0):
    """
    Wait until process C{pid} used less than 2 ms of CPU in C{quiet} seconds.
    """
    deadline = time.monotonic() + timeout
    last = cpuSeconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cpuSeconds(pid)
        if now - last < 0.002:
            return
        last = now

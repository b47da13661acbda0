# -*- test-case-name: tests.test_bench_startrss -*-
"""
Start-up memory of the ikedtx daemon: RSS and PSS of each of its processes
once it is up and idle, for one or more checkouts, interleaved run by run.

    python3 bench/startrss.py [--trees DIR,DIR] [--runs 5] [--modes bench,privsep,iked,iked-privsep]
                              [--imports FILE.json]

Modes (all with ikebench's PSK responder configuration, C{--kernel decoupled},
in a fresh network namespace):

  - C{bench}: what ikebench starts (L{bench.responders.IkedtxResponder}):
    C{python -c TWISTD --pidfile= --nodaemon --logger=ikedtx.cli.stderrObserver
    iked -d ... --no-privsep};
  - C{privsep}: the same without C{--no-privsep}: the default deployment as
    root, a parent and its unprivileged worker;
  - C{iked}, C{iked-privsep}: the C{iked -d ...} command (L{ikedtx.cli.iked}),
    with and without C{--no-privsep}.

RSS is VmRSS of /proc/PID/status, PSS the Pss of /proc/PID/smaps_rollup
(pages shared with another process - the parent and its forked worker,
or the shared libraries - counted in proportion).  C{--imports} runs the
first mode once more per tree with L{bench.importrss}'s hook and writes
the per-import records.  Needs root (namespaces).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import ROOT  # noqa: E402
from bench.importrss import PRELUDE  # noqa: E402
from bench.proc import waitIdle  # noqa: E402
from bench.suites import GEN_ADDRESS, RESP_ADDRESS, SUITES, ikedTree, ikedtxResponderConfig  # noqa: E402
from ikedtx.testing.lab._util import writeFile  # noqa: E402

IKED = "import sys; sys.argv[0] = 'iked'; from ikedtx.cli import iked; iked()"

MODES = ("bench", "privsep", "iked", "iked-privsep")


def memory(pid):
    """
    {"rssKb", "pssKb"} of process C{pid}.
    """
    result = {}
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                result["rssKb"] = int(line.split()[1])
    with open("/proc/%d/smaps_rollup" % (pid,)) as f:
        for line in f:
            if line.startswith("Pss:"):
                result["pssKb"] = int(line.split()[1])
    return result


def children(pid):
    found = []
    for task in os.listdir("/proc/%d/task" % (pid,)):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            pass
    return found


def twistdLauncher(tree):
    """
    The C{-c} program ikebench runs the responder with in checkout C{tree}
    (its bench.introspect.TWISTD), so that each checkout is measured as its
    own benchmark starts it.
    """
    namespace = {}
    with open(os.path.join(tree, "bench", "introspect.py")) as f:
        exec(compile(f.read(), "introspect.py", "exec"), namespace)
    return namespace["TWISTD"]


def argvFor(mode, tree, conf, etc, socketPath, prelude=""):
    daemon = ["-d", "-f", conf, "--listen", RESP_ADDRESS, "--kernel", "decoupled", "--etc-dir", etc,
              "-s", socketPath]
    if not mode.endswith("privsep"):
        daemon.append("--no-privsep")
    if mode.startswith("iked"):
        return [sys.executable, "-c", prelude + IKED] + daemon
    return [sys.executable, "-c", prelude + twistdLauncher(tree), "--pidfile=", "--nodaemon",
            "--logger=ikedtx.cli.stderrObserver", "iked"] + daemon


def startOnce(namespace, tree, mode, directory, importsPath=None):
    """
    Start the daemon of checkout C{tree} in C{mode}, wait until it and its
    worker (if any) are idle, read their memory, stop it.

    @return: {"processes": [{"rssKb", "pssKb"}, ...] (parent first),
        "imports": the hook's dump or None}
    """
    conf = os.path.join(directory, "iked.conf")
    writeFile(conf, ikedtxResponderConfig(SUITES["psk-x25519"]), 0o600)
    etc = ikedTree(os.path.join(directory, "etc"), None, None)
    socketPath = os.path.join(directory, "iked.sock")
    logPath = os.path.join(directory, "iked.log")
    env = dict(os.environ, PYTHONPATH=tree)
    env.pop("IKEBENCH_IMPORT_RSS", None)
    if importsPath:
        env["IKEBENCH_IMPORT_RSS"] = importsPath
    argv = argvFor(mode, tree, conf, etc, socketPath, PRELUDE if importsPath else "")
    with open(logPath, "wb") as log:
        process = subprocess.Popen(namespace.execArgv(argv), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, cwd=tree)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("exited with %s:\n%s" % (process.returncode, open(logPath).read()[-3000:]))
            with open(logPath, errors="replace") as f:
                text = f.read()
            if os.path.exists(socketPath) and "loaded 1 policies" in text:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("did not start:\n%s" % (text[-3000:],))
            time.sleep(0.05)
        # ip netns exec runs the daemon as its own child or in its place
        pid = process.pid
        pids = [pid]
        if mode.endswith("privsep"):
            deadline = time.monotonic() + 30
            while not children(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            pids += children(pid)
        for p in pids:
            waitIdle(p, quiet=0.5)
        time.sleep(1.0)
        result = {"processes": [memory(p) for p in pids], "imports": None}
        if importsPath:
            os.kill(pid, signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while not os.path.exists(importsPath) and time.monotonic() < deadline:
                time.sleep(0.05)
            with open(importsPath) as f:
                result["imports"] = json.load(f)
        return result
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", default=ROOT, help="checkouts to measure, comma-separated (default: this one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default="bench", help="comma-separated: " + ", ".join(MODES))
    parser.add_argument("--imports", help="also run each tree once with the import hook; write its records here")
    parser.add_argument("--json", help="write every run's figures here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("startrss needs root (network namespaces)")
    from ikedtx.testing.lab import Network

    trees = [os.path.abspath(t) for t in args.trees.split(",")]
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            raise SystemExit("unknown mode %r" % (mode,))
    workdir = tempfile.mkdtemp(prefix="startrss-")
    network = Network()
    runs = {(tree, mode): [] for tree in trees for mode in modes}
    imports = {}
    try:
        gen = network.namespace("gen")
        resp = network.namespace("resp")
        network.link(gen, resp, [GEN_ADDRESS + "/24"], [RESP_ADDRESS + "/24"])
        n = 0
        for run in range(args.runs):
            for mode in modes:
                for tree in trees:
                    n += 1
                    directory = os.path.join(workdir, str(n))
                    os.makedirs(directory)
                    result = startOnce(resp, tree, mode, directory)
                    runs[(tree, mode)].append(result["processes"])
                    print("run %d %s %s: %s (load %.2f)" % (
                        run + 1, mode, tree, ", ".join("RSS %.1f MB PSS %.1f MB" % (
                            p["rssKb"] / 1024.0, p["pssKb"] / 1024.0) for p in result["processes"]),
                        os.getloadavg()[0]), flush=True)
        if args.imports:
            for tree in trees:
                n += 1
                directory = os.path.join(workdir, str(n))
                os.makedirs(directory)
                result = startOnce(resp, tree, modes[0], directory, os.path.join(directory, "imports.json"))
                imports[tree] = result["imports"]
            with open(args.imports, "w") as f:
                json.dump(imports, f)
    finally:
        network.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print("| mode | tree | process | RSS MB (median of %d) | min-max | PSS MB |" % (args.runs,))
    print("|---|---|---|---:|---:|---:|")
    for (tree, mode), results in runs.items():
        for i in range(len(results[0]) if results else 0):
            rss = [r[i]["rssKb"] / 1024.0 for r in results if len(r) > i]
            pss = [r[i]["pssKb"] / 1024.0 for r in results if len(r) > i]
            print("| %s | %s | %s | %.1f | %.1f-%.1f | %.1f |" % (
                mode, tree, "parent" if i == 0 and len(results[0]) > 1 else ("worker" if i else "daemon"),
                statistics.median(rss), min(rss), max(rss), statistics.median(pss)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"%s %s" % key: value for key, value in runs.items()}, f, indent=1)


if __name__ == "__main__":
    main()

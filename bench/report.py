# -*- test-case-name: tests.test_bench -*-
"""
The results as a table (text or Markdown) and the Markdown report with
the machine, versions and command.
"""

import os
import platform
import subprocess

from bench import ROOT
from bench.responders import charonVersion


COLUMNS = [
    ("suite", "suite", "%s"),
    ("responder", "responder", "%s"),
    ("gen", "generator", "%s"),
    ("SAs", "held", "%d"),
    ("SAs/s", "rate", "%.0f"),
    ("CPU ms/SA", "cpuMsPerSa", "%.2f"),
    ("SAs/s/core", "perCore", "%.0f"),
    ("start MB", "baseRssKb", "%.1f"),
    ("KB/SA", "kbPerSa", "%.1f"),
    ("marg. KB/SA", "marginalKbPerSa", "%.1f"),
    ("resp. core", "respUtil", "%.0f%%"),
    ("gen CPU ms/SA", "genCpuMsPerSa", "%.2f"),
    ("gen core", "genUtil", "%.0f%%"),
    ("other", "otherUtil", "%.0f%%"),
    ("p50/p99 ms", "latencyMs", None),
]


def cell(row, key, fmt):
    value = row.get(key)
    if key == "responder" and row.get("profiled"):
        return value + " (py-spy)"
    if key == "latencyMs":
        if not value or value[0] is None:
            return "-"
        return "%.0f/%.0f" % (value[0], value[2])
    if value is None:
        return "-"
    if key == "baseRssKb":
        return fmt % (value / 1024.0,)
    if fmt.endswith("%%"):
        return fmt % (100 * value,)
    return fmt % (value,)


def table(rows, markdown=False):
    header = [c[0] for c in COLUMNS]
    body = [[cell(r, c[1], c[2]) for c in COLUMNS] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    out += ["  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(b, widths))) for b in body]
    return "\n".join(out)


def machineDescription():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "?"
    try:
        with open("/proc/meminfo") as f:
            memory = "%.0f GiB" % (int(f.readline().split()[1]) / 1024 / 1024,)
    except OSError:
        pass
    import cryptography
    import twisted

    return ("%d x %s, %s RAM, Linux %s; Python %s, Twisted %s, cryptography %s (OpenSSL %s); strongSwan charon %s" % (
        os.cpu_count(), model, memory, platform.release(), platform.python_version(), twisted.__version__,
        cryptography.__version__, _opensslVersion(), charonVersion()))


def _opensslVersion():
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return backend.openssl_version_text().split()[1]
    except Exception:
        return "?"


def gitRevision():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def markdown(args, rows, started):
    lines = [
        "# ikebench results %s" % (started.strftime("%Y-%m-%d"),),
        "",
        "- date: %s" % (started.strftime("%Y-%m-%d %H:%M UTC"),),
        "- machine: %s" % (machineDescription(),),
        "- ikedtx: git %s" % (gitRevision(),),
        "- command: `python3 bench/ikebench.py %s`" % (" ".join(args.argv),),
        "- window: %d negotiations in flight; %d initiator identities (%d for certificate suites); %s" % (
            args.window, args.ids, args.cert_ids, "responder pinned to CPU 1, generator to CPU 0" if not args.no_pin else "not pinned"),
        "- CPU is each process's own CPU time (the threads' /proc/PID/task/*/schedstat, to the nanosecond), not wall clock: the machine's 2 cores "
        "were shared with other jobs (column \"other\")",
        "",
    ]
    descriptions = sorted({(r["responder"], r.get("responderDescription", "")) for r in rows})
    for name, text in descriptions:
        lines.append("- %s: %s" % (name, text))
    lines += ["", table([r for r in rows if "error" not in r], markdown=True), ""]
    errors = [r for r in rows if "error" in r]
    for r in errors:
        lines.append("- %s / %s failed: %s" % (r["suite"], r["responder"], r["error"]))
    return "\n".join(lines) + "\n"

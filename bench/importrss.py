# -*- test-case-name: tests.test_bench_startrss -*-
"""
Where start-up memory goes: an import hook that records, for each module's
first import, the process's RSS before and after it (inclusive of what it
imports in turn, and exclusive of it), from /proc/self/statm.

Used as a prefix of the program it measures (L{bench.startrss} runs
C{python -c PRELUDE + TWISTD}): on SIGUSR1 (or at exit) the records go to
the file named by C{IKEBENCH_IMPORT_RSS}, as JSON
C{{"rssKb": ..., "imports": [[name, depth, inclusiveKb, exclusiveKb], ...]}}.

The figures are page-granular RSS deltas: a module that touches pages an
earlier import mapped but left untouched is charged for them, and what the
allocator keeps after an import counts where it happened. They say where
the megabytes appear, not who owns them.
"""

PRELUDE = r"""
import os as _os, sys as _sys
def _ikedtxImportRss():
    import _frozen_importlib as _bootstrap, json, signal
    page = _os.sysconf("SC_PAGE_SIZE") // 1024
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page
    records = []
    stack = []
    original = _bootstrap._find_and_load
    def findAndLoad(name, import_):
        if name in _sys.modules:
            return original(name, import_)
        before = rss()
        record = [name, len(stack), 0, 0]
        records.append(record)
        stack.append(0)
        try:
            return original(name, import_)
        finally:
            children = stack.pop()
            inclusive = rss() - before
            record[2] = inclusive
            record[3] = inclusive - children
            if stack:
                stack[-1] += inclusive
    _bootstrap._find_and_load = findAndLoad
    def dump(*args):
        path = _os.environ["IKEBENCH_IMPORT_RSS"]
        with open(path + ".tmp", "w") as f:
            json.dump({"rssKb": rss(), "imports": records}, f)
        _os.rename(path + ".tmp", path)
    signal.signal(signal.SIGUSR1, dump)
    import atexit
    atexit.register(dump)
if _os.environ.get("IKEBENCH_IMPORT_RSS"):
    _ikedtxImportRss()
"""


def groups(imports, prefixes):
    """
    Inclusive kB per group: each record is charged to the first prefix of
    C{prefixes} its top-level (depth 0) ancestor's name starts with, else to
    C{"other"}.

    @param imports: the C{"imports"} list of a dump.
    @param prefixes: module name prefixes, most specific first.
    @return: {prefix or "other": kB}
    """
    totals = {}
    for name, depth, inclusive, exclusive in imports:
        if depth:
            continue
        key = next((p for p in prefixes if name == p or name.startswith(p + ".")), "other")
        totals[key] = totals.get(key, 0) + inclusive
    return totals


def heaviest(imports, count=40):
    """
    The C{count} imports that cost most by themselves (exclusive kB), as
    (name, depth, inclusive, exclusive).
    """
    return sorted((tuple(r) for r in imports), key=lambda r: -r[3])[:count]

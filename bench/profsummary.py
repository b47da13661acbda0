#!/usr/bin/env python3
# -*- test-case-name: tests.test_bench -*-
"""
Summarise a py-spy "raw" profile (collapsed stacks: C{frame;frame;... count}
per line, frames as C{function (module/file.py:line)}): the functions with
the largest inclusive and self shares of the samples.

    python3 bench/profsummary.py PROFILE.txt [--top 25] [--markdown]
"""

import argparse
import collections
import re
import sys

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(path):
    for marker in ("site-packages/", "/lib/python3", "/work/"):
        i = path.find(marker)
        if i >= 0:
            path = path[i + len(marker):]
            break
    if path.startswith(".") and "/" in path:
        path = path.split("/", 1)[1]
    return path


def frameName(frame):
    """
    C{"func (path:line)"} -> C{"func (short/path.py)"}: one entry per
    function, whatever the line of the sample.
    """
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return "%s (%s)" % (m.group("func"), _short(m.group("file")))


def load(path):
    stacks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            stacks.append(([frameName(fr) for fr in stack.split(";") if fr], n))
    return stacks


def summarise(stacks, top=25):
    """
    @return: C{(total, inclusive, selfTime)}: the sample count and the
        C{top} functions by inclusive and by self samples, as lists of
        C{(name, samples)}.
    """
    total = sum(n for _, n in stacks)
    inclusive = collections.Counter()
    selfTime = collections.Counter()
    for frames, n in stacks:
        for name in set(frames):
            inclusive[name] += n
        if frames:
            selfTime[frames[-1]] += n
    return total, inclusive.most_common(top), selfTime.most_common(top)


def bucket(stacks, rules):
    """
    Attribute every sample to the first rule (C{(label, substring)}) that
    a frame of its stack matches, innermost frame first; others to
    C{"other"}.
    """
    counts = collections.Counter()
    for frames, n in stacks:
        label = "other"
        for frame in reversed(frames):
            hit = next((lab for lab, sub in rules if sub in frame), None)
            if hit is not None:
                label = hit
                break
        counts[label] += n
    return counts


#: where the responder's time goes, by the innermost frame that matches
#: (frames of libraries not named here, such as cryptography's, count for
#: the ikedtx module that called them)
AREAS = [
    ("logging (twisted.logger)", "twisted/logger/"),
    ("ipaddress objects", "ipaddress.py"),
    ("control socket (AMP)", "twisted/protocols/amp.py"),
    ("key exchange (crypto/kex.py)", "ikedtx/crypto/kex.py"),
    ("signatures (crypto/signature.py)", "ikedtx/crypto/signature.py"),
    ("certificates (auth/store.py)", "ikedtx/auth/store.py"),
    ("PRF and keymat (crypto/prf.py, keymat.py)", "ikedtx/crypto/keymat.py"),
    ("PRF and keymat (crypto/prf.py, keymat.py)", "ikedtx/crypto/prf.py"),
    ("SK encryption (crypto/sk.py)", "ikedtx/crypto/sk.py"),
    ("key derivation glue (core/cryptoglue.py)", "ikedtx/core/cryptoglue.py"),
    ("proposals (core/proposals.py)", "ikedtx/core/proposals.py"),
    ("traffic selectors (core/ts.py)", "ikedtx/core/ts.py"),
    ("policy lookup (core/policy.py)", "ikedtx/core/policy.py"),
    ("IDs (auth/ids.py)", "ikedtx/auth/ids.py"),
    ("wire codec (wire/)", "ikedtx/wire/"),
    ("kernel provider (kernel/)", "ikedtx/kernel/"),
    ("SA objects (core/sa.py)", "ikedtx/core/sa.py"),
    ("exchange tasks (core/tasks/, own code)", "ikedtx/core/tasks/"),
    ("task manager (core/taskmanager.py, own code)", "ikedtx/core/taskmanager.py"),
    ("engine (core/engine.py, own code)", "ikedtx/core/engine.py"),
    ("shell (net/shell.py)", "ikedtx/net/shell.py"),
    ("UDP I/O (net/udp.py)", "ikedtx/net/udp.py"),
    ("reactor (Twisted)", "twisted/internet/"),
]


def render(total, inclusive, selfTime, markdown=False):
    lines = []
    if markdown:
        lines += ["| inclusive | function (module) |", "|---:|---|"]
        lines += ["| %.1f%% | `%s` |" % (100.0 * n / total, name) for name, n in inclusive]
        lines += ["", "| self | function (module) |", "|---:|---|"]
        lines += ["| %.1f%% | `%s` |" % (100.0 * n / total, name) for name, n in selfTime]
    else:
        lines.append("%d samples" % (total,))
        lines.append("inclusive:")
        lines += ["  %5.1f%%  %s" % (100.0 * n / total, name) for name, n in inclusive]
        lines.append("self:")
        lines += ["  %5.1f%%  %s" % (100.0 * n / total, name) for name, n in selfTime]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    stacks = load(args.profile)
    if not stacks:
        print("no samples in %s" % (args.profile,))
        return 1
    print(render(*summarise(stacks, args.top), markdown=args.markdown))
    total = sum(n for _, n in stacks)
    areas = bucket(stacks, AREAS)
    print()
    if args.markdown:
        print("| share | area |\n|---:|---|")
    else:
        print("by area:")
    for label, n in areas.most_common():
        print(("| %.1f%% | %s |" if args.markdown else "  %5.1f%%  %s") % (100.0 * n / total, label))
    return 0


if __name__ == "__main__":
    sys.exit(main())

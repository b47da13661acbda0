#!/usr/bin/env python3
"""
scalecost: whether the cost of one more IKE SA stays flat as the IKE SAs
held grow to 100,000, in memory (load-proof apart from the CPU times).

    PYTHONPATH=. python3 bench/scalecost.py [--steps 1000,10000,50000,100000]
        [--window 1000] [--opcodes 100] [--suite psk-x25519] [--childless]

The responder is the one of C{bench/respcost.py} (the bench's iked.conf,
its Twisted shell L{CoreRunner}, the decoupled kernel, default settings,
info-level logging into /dev/null; C{--response-cache-max} 32 MiB, not
16, for 100,000 IKE_AUTH responses kept); the initiator an in-memory ikedtx core
(C{tests.corehelpers.Host}) with C{--ids} identities (2,000: 50 IKE SAs
each at 100,000, under the responder's C{--ike-sas-per-id} of 100), taken
in turn. Each IKE SA (with one Child SA, unless C{--childless}) is
established before the next is begun, both cores in this process, with
the garbage collector's policy of the daemon (L{FreezePolicy}, its steps
run between two IKE SAs and counted apart).

The SAs are established in steps (C{--steps}); every SA holds its timers
(rekeys, lifetimes, DPD, armed on the cores' clock, which moves 0.1 ms per
SA: none runs out). For the last C{--window} IKE SAs of each step it prints:

- the process CPU ms per IKE SA spent in the responder's
  C{datagramReceived} and in the initiator's C{initiate} and
  C{datagramReceived} (C{time.process_time} around each call);
- p50/p99 of the process CPU one IKE SA took to establish, from
  C{initiate} to the last answer (both cores: they share the process);
- before that window, the Python bytecode instructions per IKE SA of the
  responder and of the initiator over C{--opcodes} IKE SAs
  (C{sys.settrace} with opcode events: the same figure on a loaded machine,
  blind to C work such as the crypto).

It asserts nothing.
"""

import argparse
import gc
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.inmemory import Opcodes, StepReactor  # noqa: E402
from bench.respcost import FakePort  # noqa: E402
from bench.suites import GEN_ADDRESS, RESP_ADDRESS, SUITES, generatorConfig, ikedtxResponderConfig  # noqa: E402

#: Virtual seconds between two IKE SAs: 10 s for 100,000, before any timer.
SPACING = 0.0001


class Scale:
    def __init__(self, suite, childless, ids, responseCacheMax):
        from twisted.logger import globalLogBeginner

        from ikedtx.cli import stderrObserver
        from ikedtx.config import parseConfig
        from ikedtx.control.events import EventHub
        from ikedtx.core.engine import IKECore
        from ikedtx.core.settings import CoreSettings
        from ikedtx.kernel.decoupled import DecoupledKernel
        from ikedtx.net.shell import CoreRunner
        from ikedtx.testing.clock import HeapClock

        from tests.corehelpers import Host, Network

        self.childless = childless
        self.ids = ids
        self.clock = HeapClock()
        self.network = Network(self.clock)
        self.initiator = Host(self.network, GEN_ADDRESS, parseConfig(generatorConfig(suite, ids)),
                              settings=CoreSettings(childless="force" if childless else "never",
                                                    halfOpenMax=1 << 30, ikeSAsPerIdentity=1 << 30))
        # Only what the responder's tasks log is of interest: the initiator's
        # events name its IKE SAs too.
        self.core = IKECore(parseConfig(ikedtxResponderConfig(suite)), None,
                            CoreSettings(responseCacheBytesMax=responseCacheMax), now=self.clock.seconds,
                            localAddressFor=lambda peer: RESP_ADDRESS)
        self.runner = CoreRunner(self.core, DecoupledKernel(), self.clock)
        self.runner.events = EventHub()
        self.outbox = []
        self.runner.addPort(FakePort(500, self.outbox, False), False)
        self.runner.addPort(FakePort(4500, self.outbox, True), True)
        self._devnull = open(os.devnull, "w")
        stderr, sys.stderr = sys.stderr, self._devnull
        try:
            observer = stderrObserver()
        finally:
            sys.stderr = stderr
        globalLogBeginner.beginLoggingTo([observer], discardBuffer=True, redirectStandardIO=False)
        self.made = 0

    def one(self, cpu, opcodes=None):
        """
        Establish one more IKE SA; C{cpu} is C{[responder, initiator]}
        seconds, added to.
        """
        process = time.process_time
        receive = self.runner.datagramReceived
        initiator = self.initiator
        name = "bench%d" % (self.made % self.ids,)
        self.made += 1
        if opcodes is not None:
            opcodes[1].start()
        start = process()
        initiator.initiate(name)
        cpu[1] += process() - start
        if opcodes is not None:
            opcodes[1].stop()
        toResponder = self.network.inFlight
        rounds = 0
        while toResponder:
            rounds += 1
            if self.childless and rounds > 2:
                del toResponder[:]
                break
            batch = toResponder[:]
            del toResponder[:]
            for data, local, remote in batch:
                if opcodes is not None:
                    opcodes[0].start()
                start = process()
                receive(data, remote, local)
                cpu[0] += process() - start
                if opcodes is not None:
                    opcodes[0].stop()
            answers = self.outbox[:]
            del self.outbox[:]
            for data, local, remote in answers:
                if opcodes is not None:
                    opcodes[1].start()
                start = process()
                initiator.receive(data, remote, local)
                cpu[1] += process() - start
                if opcodes is not None:
                    opcodes[1].stop()
        self.clock.advance(SPACING)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="1000,10000,50000,100000")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--opcodes", type=int, default=100)
    parser.add_argument("--ids", type=int, default=2000)
    parser.add_argument("--suite", default="psk-x25519", choices=sorted(s for s in SUITES if s.startswith("psk")))
    parser.add_argument("--childless", action="store_true")
    parser.add_argument("--label", default="")
    parser.add_argument("--response-cache-max", type=int, default=32 << 20,
                        help="the responder's --response-cache-max (octets; its default of 16 MiB holds the last "
                             "IKE_AUTH responses of about 78,000 IKE SAs with a Child SA, and refuses more)")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    scale = Scale(SUITES[args.suite], args.childless, args.ids, args.response_cache_max)
    from ikedtx.net.gcpolicy import FreezePolicy

    gc.collect()
    gc.freeze()
    reactor = StepReactor()
    policy = FreezePolicy(reactor, thawInterval=0)
    policy.start()
    print("%s %s%s, load average %s" % (args.label, args.suite, " childless" if args.childless else " + Child SA",
                                        " ".join(open("/proc/loadavg").read().split()[:3])), flush=True)
    print("| SAs held | resp. ms/SA | init. ms/SA | resp. opcodes/SA | init. opcodes/SA | p50 ms | p99 ms | load |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    process = time.process_time
    for step in steps:
        # The opcodes over --opcodes IKE SAs, then the CPU over --window
        # (less for a first step smaller than both).
        first = max(step - args.window, scale.made + min(args.opcodes, (step - scale.made) // 2))
        counted = max(scale.made, first - args.opcodes)
        while scale.made < counted:
            scale.one([0.0, 0.0])
            reactor.run()
        opcodes = (Opcodes(), Opcodes())
        n = 0
        while scale.made < first:
            scale.one([0.0, 0.0], opcodes)
            reactor.run()
            n += 1
        cpu = [0.0, 0.0]
        each = []
        while scale.made < step:
            start = process()
            scale.one(cpu)
            each.append(process() - start)
            reactor.run()
        up = len(scale.core.ikeSAs)
        children = len(scale.core._children)
        problem = ""
        if up != step or children != (0 if args.childless else step):
            problem = " PROBLEM: %d IKE SAs, %d Child SAs up" % (up, children)
        print("| %d | %.3f | %.3f | %d | %d | %.2f | %.2f | %s |%s" % (
            step, 1000 * cpu[0] / len(each), 1000 * cpu[1] / len(each), opcodes[0].count // max(1, n),
            opcodes[1].count // max(1, n), 1000 * percentile(each, 0.5), 1000 * percentile(each, 0.99),
            " ".join(open("/proc/loadavg").read().split()[:3]), problem), flush=True)
    print("freeze steps %d (%.2f s CPU, not counted above)" % (policy.steps, policy.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

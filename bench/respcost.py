#!/usr/bin/env python3
"""
respcost: the responder's CPU per IKE SA, in memory, free of the noise of
a shared machine.

    PYTHONPATH=. python3 bench/respcost.py [--sas 1000] [--suite psk-x25519]
        [--childless] [--profile OUT.prof] [--repeat 1]

The responder is what C{bench/ikebench.py} runs (the bench's iked.conf,
L{IKECore} under its Twisted shell L{CoreRunner} with the decoupled kernel,
logging at info level through C{ikedtx.cli.stderrObserver} into /dev/null); the initiator is an in-memory ikedtx core with the bench
generator's identities (20, in turn). Datagrams go from one to the other by
hand, and only the responder's C{datagramReceived} calls are timed
(C{time.process_time}): decoding, dispatch, crypto, state, encoding and
logging, without the reactor's and the kernel's UDP work. With
C{--childless} the initiator asks for no Child SA (RFC 6023; a Child SA
it would make next by CREATE_CHILD_SA is not delivered).

C{--opcodes} counts the Python bytecode instructions the responder
executes per IKE SA (C{sys.settrace} with opcode events: slow, and blind
to C work such as the crypto, but the same figure on a loaded machine).

C{--no-gc} keeps the garbage collector off during the runs, which makes
the figures steadier from run to run (the collector's share, which grows
with the SAs held, is then left out).

Prints the responder's CPU ms per IKE SA (the median and the best of
--repeat runs, each on fresh cores: on a loaded machine the best is the
steadier); with --profile, a cProfile of the responder's calls
(C{python -m pstats OUT.prof}), and the top functions.
It asserts nothing.
"""

import argparse
import gc
import os
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.inmemory import Opcodes  # noqa: E402
from bench.suites import GEN_ADDRESS, RESP_ADDRESS, SUITES, generatorConfig, ikedtxResponderConfig  # noqa: E402

IDS = 20
_loggingBegun = False


class _Host:
    def __init__(self, port):
        self.port = port


class FakePort:
    """
    What L{CoreRunner} sends through: a bound UDP port, in memory.
    """

    addressFamily = socket.AF_INET

    def __init__(self, port, outbox, natt):
        self._host = _Host(port)
        self.outbox = outbox
        self.natt = natt

    def getHost(self):
        return self._host

    def writeFrom(self, data, remote, localHost):
        if self.natt:
            # The non-ESP marker (RFC 3948), which the receiving shell strips.
            data = data[4:]
        self.outbox.append((data, (localHost, self._host.port), remote))


class Run:
    """
    One responder (shell and core) and one initiator core, on one clock.
    """

    def __init__(self, suite, childless):
        from twisted.logger import globalLogBeginner, globalLogPublisher

        from ikedtx.config import parseConfig
        from ikedtx.control.events import EventHub
        from ikedtx.core.engine import IKECore
        from ikedtx.core.settings import CoreSettings
        from ikedtx.kernel.decoupled import DecoupledKernel
        from ikedtx.net.shell import CoreRunner
        from ikedtx.cli import stderrObserver
        from ikedtx.testing.clock import HeapClock

        from tests.corehelpers import Host, Network

        self.childless = childless
        self.clock = HeapClock()
        self.network = Network(self.clock)
        self.initiator = Host(self.network, GEN_ADDRESS, parseConfig(generatorConfig(suite, IDS)),
                              settings=CoreSettings(childless="force" if childless else "never",
                                                    halfOpenMax=1 << 30, ikeSAsPerIdentity=1 << 30))
        # The responder as the bench starts it (iked -d ... --no-privsep):
        # default settings, the decoupled kernel, info-level logging.
        self.core = IKECore(parseConfig(ikedtxResponderConfig(suite)), None, CoreSettings(), now=self.clock.seconds,
                            localAddressFor=lambda peer: RESP_ADDRESS)
        self.runner = CoreRunner(self.core, DecoupledKernel(), self.clock)
        # The service's hub of ikectl's counters and monitor events.
        self.runner.events = EventHub()
        self.outbox = []
        self.runner.addPort(FakePort(500, self.outbox, False), False)
        self.runner.addPort(FakePort(4500, self.outbox, True), True)
        self._log = open(os.devnull, "w")
        # What iked -d logs through (ikedtx.cli.stderrObserver), into /dev/null.
        stderr, sys.stderr = sys.stderr, self._log
        try:
            self.observer = stderrObserver()
        finally:
            sys.stderr = stderr
        global _loggingBegun
        if not _loggingBegun:
            # As twistd's logger does (twisted.application.app.AppLogger.start).
            globalLogBeginner.beginLoggingTo([self.observer], discardBuffer=True, redirectStandardIO=False)
            _loggingBegun = True
        else:
            globalLogPublisher.addObserver(self.observer)
        self.cpu = 0.0
        self.requests = 0
        self.opcodes = None
        self._opcodes = None

    def countOpcodes(self):
        """
        Count the Python bytecode instructions the responder executes
        (L{opcodes}, after L{establish}): slow, but the same on a loaded
        machine as on a quiet one (the C work, crypto included, is not
        counted).
        """
        self._opcodes = Opcodes()

    def close(self):
        from twisted.logger import globalLogPublisher

        globalLogPublisher.removeObserver(self.observer)
        self._log.close()

    def establish(self, n, profiler=None):
        from ikedtx.core.actions import SendDatagram

        receive = self.runner.datagramReceived
        clock = process = time.process_time
        for i in range(n):
            self.initiator.initiate("bench%d" % (i % IDS,))
            toResponder = self.network.inFlight
            rounds = 0
            while toResponder:
                rounds += 1
                if self.childless and rounds > 2:
                    # CREATE_CHILD_SA after a childless IKE_AUTH: not asked for.
                    del toResponder[:]
                    break
                batch = toResponder[:]
                del toResponder[:]
                for data, local, remote in batch:
                    self.requests += 1
                    if profiler is not None:
                        profiler.enable()
                    if self._opcodes is not None:
                        self._opcodes.start()
                    start = process()
                    receive(data, remote, local)
                    self.cpu += process() - start
                    if self._opcodes is not None:
                        self._opcodes.stop()
                    if profiler is not None:
                        profiler.disable()
                answers = self.outbox[:]
                del self.outbox[:]
                for data, local, remote in answers:
                    self.initiator.receive(data, remote, local)
            # A little time between SAs (timers armed, none due).
            self.clock.advance(0.001)
        del clock, SendDatagram
        up = len(self.core.ikeSAs)
        children = len(self.core._children)
        if self._opcodes is not None:
            self.opcodes = self._opcodes.count
        return up, children


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sas", type=int, default=1000)
    parser.add_argument("--suite", default="psk-x25519", choices=sorted(s for s in SUITES if s.startswith("psk")))
    parser.add_argument("--childless", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", default=None, help="write a cProfile of the responder's calls here")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--opcodes", action="store_true",
                        help="also count the Python bytecode instructions the responder executes per IKE SA (slow; "
                             "load-proof)")
    parser.add_argument("--no-gc", action="store_true",
                        help="collect no garbage during the runs (steadier figures; the collector's share is "
                             "then left out)")
    args = parser.parse_args(argv)
    suite = SUITES[args.suite]
    results = []
    profiler = None
    if args.profile:
        import cProfile

        # CPU time, not wall time: on a shared machine preemption would
        # land on whichever function was running.
        profiler = cProfile.Profile(time.process_time)
    for _ in range(args.repeat):
        run = Run(suite, args.childless)
        if args.opcodes:
            run.countOpcodes()
        # As the daemon after start-up (ikedtx.service: gc.freeze()).
        gc.collect()
        gc.freeze()
        if args.no_gc:
            gc.disable()
        try:
            up, children = run.establish(args.sas, profiler)
        finally:
            run.close()
            gc.enable()
        if up != args.sas or children != (0 if args.childless else args.sas):
            print("PROBLEM: %d IKE SAs and %d Child SAs up of %d" % (up, children, args.sas))
        results.append(run.cpu)
        if run.opcodes is not None:
            print("%d Python bytecode instructions per IKE SA" % (run.opcodes // args.sas,))
        print("%s%s: %d IKE SAs, %d requests answered, responder CPU %.3f s = %.3f ms per IKE SA" % (
            args.suite, " childless" if args.childless else " + Child SA", up, run.requests, run.cpu,
            1000 * run.cpu / args.sas))
        del run
        gc.unfreeze()
        gc.collect()
    results.sort()
    print("median: %.3f ms per IKE SA; best %.3f" % (
        1000 * results[len(results) // 2] / args.sas, 1000 * results[0] / args.sas))
    if profiler is not None:
        import pstats

        profiler.dump_stats(args.profile)
        stats = pstats.Stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

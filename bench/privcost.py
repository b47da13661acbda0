#!/usr/bin/env python3
"""
privcost: the CPU per IKE SA of privilege separation, the parent's and the
worker's, in memory, free of the noise of a shared machine.

    PYTHONPATH=. python3 bench/privcost.py [--sas 1000] [--suite psk-x25519]
        [--repeat 3] [--profile-parent OUT.prof] [--profile-worker OUT.prof]

As C{bench/respcost.py} (the bench's responder, an in-memory ikedtx
initiator, datagrams moved by hand), but the responder is a worker: its
shell's datapath is the worker's L{RemoteKernel} with the reactor's batches
(here a clock), whose AMP channel reaches the parent's L{WorkerCommands}
(over the decoupled datapath) through two in-memory transports; the
worker's log lines go through the worker's log observer, and what it
writes goes through the parent's relay (L{WorkerProcess}) into the
parent's own log observer (C{ikedtx.cli.stderrObserver}, into /dev/null).

Timed (C{time.process_time}), apart:
  - the worker: the responder's C{datagramReceived}, the end of each turn
    (the batch and the log lines sent), the parent's answers received;
  - the parent: the worker's boxes received and answered, the log lines
    relayed and logged.
Without the reactor, the sockets and the system calls: the Python work of
each side. The figure of the responder alone (no privilege separation) is
C{bench/respcost.py}'s. It asserts nothing.
"""

import argparse
import gc
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.respcost import IDS, FakePort  # noqa: E402
from bench.suites import GEN_ADDRESS, RESP_ADDRESS, SUITES, generatorConfig, ikedtxResponderConfig  # noqa: E402

_loggingBegun = False


class _Timed:
    """
    A transport that keeps what its protocol writes, for the other side.
    """

    def __init__(self):
        from twisted.internet.testing import StringTransport

        self.transport = StringTransport()

    def take(self):
        data = self.transport.value()
        self.transport.clear()
        return data


class _Service:
    """
    What L{WorkerCommands} asks of the parent's service (one worker).
    """

    def __init__(self, config):
        from ikedtx.kernel.decoupled import DecoupledKernel
        from ikedtx.kernel.vips import RecordedAddresses
        from ikedtx.privsep.addresses import AddressGuard

        self.kernel = DecoupledKernel()
        self.installed = set()
        self.addresses = AddressGuard(self.kernel, config, keeper=RecordedAddresses())
        self.worker = None

    def _notify(self, state):
        pass


class _Out:
    """
    The worker's standard output: what it flushes goes to the parent.
    """

    def __init__(self):
        self.chunks = []
        self._written = []

    def write(self, data):
        self._written.append(data)

    def flush(self):
        if self._written:
            self.chunks.append("".join(self._written).encode("utf-8"))
            self._written = []


class Run:
    def __init__(self, suite, blocks=True):
        from twisted.logger import LogLevel, Logger, globalLogBeginner, globalLogPublisher

        from ikedtx.cli import stderrObserver
        from ikedtx.config import parseConfig
        from ikedtx.control.events import EventHub
        from ikedtx.core.engine import IKECore
        from ikedtx.core.settings import CoreSettings
        from ikedtx.net.shell import CoreRunner
        from ikedtx.privsep import worker as W
        from ikedtx.privsep.parent import WorkerCommands, WorkerProcess
        from ikedtx.privsep.workerservice import ParentChannel, RemoteKernel
        from ikedtx.testing.clock import HeapClock

        from tests.corehelpers import Host, Network

        self.clock = HeapClock()
        self.clock.running = True
        self.network = Network(self.clock)
        self.initiator = Host(self.network, GEN_ADDRESS, parseConfig(generatorConfig(suite, IDS)),
                              settings=CoreSettings(childless="never", halfOpenMax=1 << 30,
                                                    ikeSAsPerIdentity=1 << 30))
        config = parseConfig(ikedtxResponderConfig(suite))
        # The parent: its commands over the decoupled datapath.
        self.service = _Service(config)
        self.parent = WorkerCommands(self.service)
        self.parentSide = _Timed()
        self.parent.makeConnection(self.parentSide.transport)
        # The worker: the core and shell over a RemoteKernel.
        try:
            kernel = RemoteKernel("decoupled", reactor=self.clock, spiBlocks=blocks)
        except TypeError:
            # A tree before SPI blocks.
            kernel = RemoteKernel("decoupled", reactor=self.clock)
        self.channel = ParentChannel(kernel, self.clock)
        kernel.channel = self.channel
        self.workerSide = _Timed()
        self.channel.makeConnection(self.workerSide.transport)
        self.core = IKECore(config, None, CoreSettings(), now=self.clock.seconds,
                            localAddressFor=lambda peer: RESP_ADDRESS)
        self.runner = CoreRunner(self.core, kernel, self.clock)
        self.runner.events = EventHub()
        self.outbox = []
        self.runner.addPort(FakePort(500, self.outbox, False), False)
        self.runner.addPort(FakePort(4500, self.outbox, True), True)
        # The worker's log: its observer writes LEVEL<TAB>text lines.
        self.out = _Out()
        try:
            workerObserver = W._logObserver(LogLevel.info, self.clock, self.out)
        except TypeError:
            # A tree whose observer writes to sys.stdout, a line at a time.
            stdout, sys.stdout = sys.stdout, self.out
            try:
                workerObserver = W._logObserver(LogLevel.info)
            finally:
                sys.stdout = stdout
            self._stdout = self.out
        # Not the initiator's lines (the same process here).
        self.initiating = False
        self.workerObserver = lambda event: None if self.initiating else workerObserver(event)
        global _loggingBegun
        if not _loggingBegun:
            globalLogBeginner.beginLoggingTo([self.workerObserver], discardBuffer=True, redirectStandardIO=False)
            _loggingBegun = True
        else:
            globalLogPublisher.addObserver(self.workerObserver)
        # The parent's relay and its own log (iked -d: stderr, /dev/null here).
        self._devnull = open(os.devnull, "w")
        stderr, sys.stderr = sys.stderr, self._devnull
        try:
            parentObserver = stderrObserver()
        finally:
            sys.stderr = stderr
        self.relay = WorkerProcess(self.service, b"")
        self.relay.pid = 4242
        self.relay._log = Logger(namespace="ikedtx.worker", observer=parentObserver)
        self.workerCpu = self.parentCpu = 0.0
        self.parentBoxes = self.logWrites = 0
        self.parentProfile = self.workerProfile = None

    def close(self):
        from twisted.logger import globalLogPublisher

        globalLogPublisher.removeObserver(self.workerObserver)
        self._devnull.close()

    def _worker(self, f, *args):
        start = time.process_time()
        stdout = sys.stdout
        if getattr(self, "_stdout", None) is not None:
            sys.stdout = self._stdout
        if self.workerProfile is not None:
            self.workerProfile.enable()
        try:
            f(*args)
        finally:
            if self.workerProfile is not None:
                self.workerProfile.disable()
            sys.stdout = stdout
        self.workerCpu += time.process_time() - start

    def _settle(self):
        """
        The end of the turn, and the channel until it is quiet.
        """
        while True:
            self._worker(self.clock.advance, 0)
            toParent = self.workerSide.take()
            logs, self.out.chunks = self.out.chunks, []
            if not toParent and not logs:
                return
            self.logWrites += len(logs)
            start = time.process_time()
            if self.parentProfile is not None:
                self.parentProfile.enable()
            if toParent:
                self.parentBoxes += toParent.count(b"\x00\x04_ask")
                self.parent.dataReceived(toParent)
            for chunk in logs:
                self.relay.childDataReceived(1, chunk)
            if self.parentProfile is not None:
                self.parentProfile.disable()
            self.parentCpu += time.process_time() - start
            toWorker = self.parentSide.take()
            if toWorker:
                self._worker(self.channel.dataReceived, toWorker)

    def establish(self, n):
        receive = self.runner.datagramReceived
        for i in range(n):
            self.initiating = True
            self.initiator.initiate("bench%d" % (i % IDS,))
            self.initiating = False
            toResponder = self.network.inFlight
            while toResponder:
                batch = toResponder[:]
                del toResponder[:]
                for data, local, remote in batch:
                    self._worker(receive, data, remote, local)
                    self._settle()
                answers = self.outbox[:]
                del self.outbox[:]
                self.initiating = True
                for data, local, remote in answers:
                    self.initiator.receive(data, remote, local)
                self.initiating = False
            # A little time between SAs, as respcost.py.
            self._worker(self.clock.advance, 0.001)
            self._settle()
        return len(self.core.ikeSAs), len(self.core._children)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sas", type=int, default=1000)
    parser.add_argument("--suite", default="psk-x25519", choices=sorted(s for s in SUITES if s.startswith("psk")))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-blocks", action="store_true", help="the worker asks for each SPI alone")
    parser.add_argument("--profile", default=None, metavar="PREFIX",
                        help="write cProfiles of the parent's and the worker's calls to PREFIX-parent.prof and "
                             "PREFIX-worker.prof, and print their top functions")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    suite = SUITES[args.suite]
    results = []
    profiles = None
    if args.profile:
        import cProfile

        profiles = (cProfile.Profile(time.process_time), cProfile.Profile(time.process_time))
    for _ in range(args.repeat):
        run = Run(suite, blocks=not args.no_blocks)
        if profiles is not None:
            run.parentProfile, run.workerProfile = profiles
        gc.collect()
        gc.freeze()
        try:
            up, children = run.establish(args.sas)
        finally:
            run.close()
        if up != args.sas or children != args.sas:
            print("PROBLEM: %d IKE SAs and %d Child SAs up of %d" % (up, children, args.sas))
        results.append((run.parentCpu, run.workerCpu))
        print("%s: %d IKE SAs; CPU ms per IKE SA, parent %.3f + worker %.3f; per SA %.2f commands to the parent, "
              "%.2f log writes" % (args.suite, up, 1000 * run.parentCpu / args.sas, 1000 * run.workerCpu / args.sas,
                                   run.parentBoxes / args.sas, run.logWrites / args.sas))
        del run
        gc.unfreeze()
        gc.collect()
    parents = sorted(p for p, _w in results)
    workers = sorted(w for _p, w in results)
    print("median CPU ms per IKE SA: parent %.3f + worker %.3f" % (
        1000 * parents[len(parents) // 2] / args.sas, 1000 * workers[len(workers) // 2] / args.sas))
    if profiles is not None:
        import pstats

        for side, profile in zip(("parent", "worker"), profiles):
            path = "%s-%s.prof" % (args.profile, side)
            profile.dump_stats(path)
            print("== %s (%s)" % (side, path))
            pstats.Stats(path).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# -*- test-case-name: tests.test_bench -*-
"""
The load generator of C{bench/ikebench.py}: ikedtx's own sans-IO L{IKECore}
as an initiator that keeps a window of W IKE SA negotiations in flight over
one UDP socket pair (500 and 4500) and holds every IKE SA it established.

Each C{initiate} of the same policy makes a new IKE SA (new SPI) with its
first Child SA. The process is driven over standard input, one command per
line, and answers on standard output with one JSON object per line::

    run N        establish IKE SAs until N are held in total; answers
                 {"event": "done", "established": ..., "failed": ...,
                  "elapsed": s, "cpu": s, "latencies": [p50, p90, p99]}
    stats        {"event": "stats", "held": ..., "cpu": s, "rss": kB}
    quit         exit at once (no Delete is sent: the responder is
                 stopped by the benchmark anyway)

Run by ikebench inside the initiators' network namespace; not meant to be
run by hand.
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from twisted.internet import epollreactor  # noqa: E402

epollreactor.install()

from twisted.internet import reactor, stdio  # noqa: E402
from twisted.internet.defer import succeed  # noqa: E402
from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner, textFileLogObserver  # noqa: E402
from twisted.protocols.basic import LineReceiver  # noqa: E402
from zope.interface import implementer  # noqa: E402

from ikedtx.auth.store import CredentialStore  # noqa: E402
from ikedtx.config import loadConfig  # noqa: E402
from ikedtx.core.engine import IKECore  # noqa: E402
from ikedtx.core.states import ChildState  # noqa: E402
from ikedtx.core.settings import CoreSettings  # noqa: E402
from ikedtx.kernel.interfaces import IKernel, KernelSAUsage  # noqa: E402
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol  # noqa: E402
from ikedtx.net.udp import listenUDPWithPacketInfo  # noqa: E402


def cpuSeconds(pid="self"):
    """
    utime + stime of process C{pid} (all its threads), in seconds, from
    /proc/PID/stat.
    """
    with open("/proc/%s/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat(5)): utime is field 14, stime 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rssKilobytes(pid="self"):
    """
    VmRSS of process C{pid} in kB, from /proc/PID/status.
    """
    with open("/proc/%s/status" % (pid,)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@implementer(IKernel)
class NullKernel:
    """
    The generator installs nothing and records nothing (the decoupled
    kernel keeps a log of every call, which a generator holding 10,000 SAs
    does not need).
    """

    name = "null"

    def setEventReceiver(self, receiver):
        pass

    def allocateSpi(self, protocol, source, destination):
        while True:
            (spi,) = struct.unpack("!I", os.urandom(4))
            if spi > 255:
                return succeed(spi)

    def addSA(self, sa):
        return succeed(None)

    def deleteSA(self, sa):
        return succeed(None)

    def addFlow(self, flow):
        return succeed(None)

    def deleteFlow(self, flow):
        return succeed(None)

    def flush(self):
        return succeed(None)

    def updateSA(self, old, new):
        return succeed(None)

    def detachSA(self, sa):
        return succeed(None)

    def querySA(self, sa):
        # Nothing passes: the DPD checks see an idle Child SA (without
        # this, every check logged an AttributeError).
        return succeed(KernelSAUsage())

    def blockIPv6(self):
        return succeed(None)

    def unblockIPv6(self):
        return succeed(None)


class CountingRunner(CoreRunner):
    """
    A L{CoreRunner} that counts the IKE SAs that are up (whether or not
    their Child SA made it), for C{--accept-childless}.
    """

    up = 0

    def action_IKESAUp(self, action):
        self.up += 1

    def action_IKESADown(self, action):
        if action.established:
            self.up -= 1


def percentiles(values, points=(50, 90, 99)):
    if not values:
        return [None for _ in points]
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in points]


class Generator:
    """
    Keeps C{window} negotiations in flight, of C{policies} in turn, until C{target} IKE
    SAs are held.

    @ivar held: IKE SAs established with their first Child SA.
    @ivar failed: negotiations that failed (they are replaced).
    @ivar childless: negotiations whose IKE SA came up without its Child SA
        (counted as failures: the benchmark wants both).
    """

    def __init__(self, runner, policies, window, out, maxFailures, acceptChildless=False):
        self.runner = runner
        self._next = 0
        self.acceptChildless = acceptChildless
        self.policies = policies
        self.window = window
        self.out = out
        self.maxFailures = maxFailures
        self.held = 0
        self.inflight = 0
        self.failed = 0
        self.childless = 0
        self.target = 0
        self.errors = {}
        self._latencies = []
        self._phase = None
        self._filling = False

    def emit(self, **event):
        self.out.write((json.dumps(event) + "\n").encode())

    def run(self, target, timeout):
        self.target = target
        self._latencies = []
        self._phase = (time.monotonic(), cpuSeconds(), self.failed)
        self._deadline = reactor.callLater(timeout, self.finish, "timeout")
        self.fill()

    def fill(self):
        if self._filling or self._phase is None:
            return
        self._filling = True
        try:
            while (self._phase is not None and self.inflight < self.window
                   and self.held + self.inflight < self.target):
                if self.failed - self._phase[2] > self.maxFailures:
                    self.finish("too many failures")
                    return
                self.inflight += 1
                started = time.monotonic()
                policy = self.policies[self._next % len(self.policies)]
                self._next += 1
                d = self.runner.initiate(policy)
                d.addCallbacks(self.succeeded, self.failedOne, callbackArgs=(started,))
        finally:
            self._filling = False
        if self._phase is not None and self.held >= self.target:
            self.finish("done")

    def succeeded(self, ikesa, started):
        self.inflight -= 1
        if self.acceptChildless or any(c.state == ChildState.INSTALLED for c in ikesa.children):
            self.held += 1
            self._latencies.append(time.monotonic() - started)
        else:
            self.childless += 1
            self.failed += 1
        self.fill()

    def failedOne(self, reason):
        self.inflight -= 1
        if self.acceptChildless and self.runner.up > self.held:
            # the IKE SA is up, only its Child SA failed
            self.held = self.runner.up
            self.childless += 1
            self.fill()
            return
        self.failed += 1
        key = "%s: %s" % (reason.type.__name__, reason.getErrorMessage())
        self.errors[key] = self.errors.get(key, 0) + 1
        self.fill()

    def finish(self, why):
        if self._phase is None:
            return
        if self._deadline.active():
            self._deadline.cancel()
        started, cpu, failedBefore = self._phase
        self._phase = None
        p = percentiles(self._latencies)
        self.emit(event="done", why=why, established=self.held, failed=self.failed - failedBefore,
                  childless=self.childless, inflight=self.inflight, elapsed=time.monotonic() - started,
                  cpu=cpuSeconds() - cpu, latencies=[None if v is None else round(v * 1000, 2) for v in p],
                  errors=dict(sorted(self.errors.items(), key=lambda kv: -kv[1])[:5]))


class Commands(LineReceiver):
    delimiter = b"\n"

    def __init__(self, generator, defaultTimeout):
        self.generator = generator
        self.defaultTimeout = defaultTimeout

    def lineReceived(self, line):
        words = line.decode().split()
        if not words:
            return
        if words[0] == "run":
            target = int(words[1])
            timeout = float(words[2]) if len(words) > 2 else self.defaultTimeout
            self.generator.run(target, timeout)
        elif words[0] == "stats":
            self.generator.emit(event="stats", held=self.generator.held, cpu=cpuSeconds(), rss=rssKilobytes(),
                                sas=len(self.generator.runner.core.ikeSAs))
        elif words[0] == "quit":
            sys.stdout.flush()
            os._exit(0)

    def connectionLost(self, reason):
        # the benchmark went away: do not linger in its namespace
        os._exit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description="ikebench load generator (run by bench/ikebench.py)")
    parser.add_argument("--config", required=True, help="iked.conf of the initiator (one policy)")
    parser.add_argument("--etc-dir", required=True)
    parser.add_argument("--listen", required=True, help="local address")
    parser.add_argument("--policy", default="bench",
                        help="the policy to initiate, or with --ids K the prefix of K policies PREFIX0..PREFIX<K-1> "
                             "used in turn")
    parser.add_argument("--ids", type=int, default=0)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--max-failures", type=int, default=200)
    parser.add_argument("--accept-childless", action="store_true",
                        help="count an IKE SA whose first Child SA failed as held")
    parser.add_argument("--log", default=None, help="write warnings and errors here")
    args = parser.parse_args(argv)

    logFile = open(args.log, "a") if args.log else sys.stderr
    # Without an observer Twisted would buffer the first 65,536 events.
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(logFile), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False)

    config = loadConfig(args.config)
    credentials = CredentialStore(args.etc_dir)
    kernel = NullKernel()
    settings = CoreSettings()
    core = IKECore(config, credentials, settings, now=reactor.seconds,
                   localAddressFor=lambda peer: args.listen)
    runner = CountingRunner(core, kernel, reactor)
    for number, natt in ((settings.ikePort, False), (settings.nattPort, True)):
        port = listenUDPWithPacketInfo(reactor, number, IKEDatagramProtocol(runner, natt), args.listen)
        # room for a whole window of responses even if we fall behind
        port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        runner.addPort(port, natt)
    commands = Commands(None, args.timeout)
    out = stdio.StandardIO(commands)
    policies = [args.policy + str(i) for i in range(args.ids)] if args.ids else [args.policy]
    generator = Generator(runner, policies, args.window, out, args.max_failures, args.accept_childless)
    commands.generator = generator
    generator.emit(event="ready", pid=os.getpid(), cpu=cpuSeconds(), rss=rssKilobytes())
    reactor.run()


if __name__ == "__main__":
    main()

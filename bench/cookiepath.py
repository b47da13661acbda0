#!/usr/bin/env python3
"""
cookiepath: the CPU time of the COOKIE fast path in one process, without
sockets: N spoofed IKE_SA_INIT requests (the genuine request of
bench/cookieflood.py with random SPIi and sources) through
IKEDatagramProtocol and CoreRunner to a port that sends nothing, past the
cookie threshold (0), one by one and in read batches of 1024.

    python3 bench/cookiepath.py [N] [--profile]

Prints microseconds of process CPU time per request, the least of 15
passes (the machine is shared: the least is the least disturbed). Run it
with PYTHONPATH set to another checkout to compare. Nothing is asserted.
"""

import cProfile
import os
import pstats
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    # Last: a PYTHONPATH to another checkout (a baseline) comes first.
    sys.path.append(ROOT)

from twisted.internet.task import Clock  # noqa: E402

from bench.cookieflood import SUITE, genuineRequest  # noqa: E402
from bench.suites import RESP_ADDRESS, ikedtxResponderConfig  # noqa: E402
from ikedtx.config import parseConfig  # noqa: E402
from ikedtx.core.engine import IKECore  # noqa: E402
from ikedtx.core.settings import CoreSettings  # noqa: E402
from ikedtx.kernel.decoupled import DecoupledKernel  # noqa: E402
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol  # noqa: E402


class NullPort:
    addressFamily = 2
    sent = 0

    def writeFrom(self, data, remote, source=None):
        self.sent += 1

    def getHost(self):
        return type("Host", (), {"port": 500})()


def least(f, passes=15):
    times = []
    for _ in range(passes):
        start = time.process_time()
        f()
        times.append(time.process_time() - start)
    return min(times)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    n = int(args[0]) if args else 10000
    core = IKECore(parseConfig(ikedtxResponderConfig(SUITE)), settings=CoreSettings(cookieThreshold=0))
    clock = Clock()
    runner = CoreRunner(core, DecoupledKernel(), clock)
    port = NullPort()
    runner.addPort(port, False)
    protocol = IKEDatagramProtocol(runner, False)
    request = genuineRequest()
    rng = random.Random(1)
    local = (RESP_ADDRESS, 500)
    batch = [(rng.getrandbits(64).to_bytes(8, "big") + request[8:],
              ("198.18.%d.%d" % (rng.getrandbits(8), rng.getrandbits(8)), 500), local) for _ in range(n)]

    def oneByOne():
        for item in batch:
            protocol.packetReceived(*item)

    def batched():
        many = getattr(protocol, "packetsReceived", None)
        if many is None:
            return oneByOne()
        for i in range(0, n, 1024):
            many(batch[i:i + 1024])
            # New requests are answered at the reactor's next turn.
            clock.advance(0)

    print("one by one: %.2f us/request" % (least(oneByOne) / n * 1e6))
    print("batched:    %.2f us/request" % (least(batched) / n * 1e6))
    print("answers sent: %d (ikedtx from %s)" % (port.sent, os.path.dirname(os.path.dirname(
        sys.modules["ikedtx"].__file__))))
    if "--profile" in sys.argv:
        profile = cProfile.Profile()
        profile.runcall(batched)
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()

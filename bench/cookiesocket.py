#!/usr/bin/env python3
"""
cookiesocket: the CPU time of one spoofed IKE_SA_INIT request's COOKIE
answer through real sockets, in one process: a PacketInfoPort bound to
127.0.0.1 with ikedtx's protocol, runner and core (cookie threshold 0),
fed by a plain UDP socket that fills its receive buffer with a burst of
requests (random SPIi), then drained by doRead and the runner's next turn;
the answers go back to the sender's socket (whose small buffer drops most
of them, as a spoofed source's would be lost).

    python3 bench/cookiesocket.py [BURST] [PASSES]

Prints microseconds of this thread's CPU time (user and system: the
system calls and the loopback's delivery are most of it) per request: the
least, the 10th percentile and the median of PASSES bursts. Run it with
PYTHONPATH set to another checkout to compare, interleaved. Nothing is
asserted; bench/cookiepath.py times the same path without sockets.
"""

import os
import random
import select
import socket
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    # Last: a PYTHONPATH to another checkout (a baseline) comes first.
    sys.path.append(ROOT)

from twisted.internet import reactor  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from bench.cookieflood import SUITE, genuineRequest  # noqa: E402
from bench.suites import GEN_ADDRESS, RESP_ADDRESS, ikedtxResponderConfig  # noqa: E402
from ikedtx.config import parseConfig  # noqa: E402
from ikedtx.core.engine import IKECore  # noqa: E402
from ikedtx.core.settings import CoreSettings  # noqa: E402
from ikedtx.kernel.decoupled import DecoupledKernel  # noqa: E402
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol  # noqa: E402
from ikedtx.net.udp import PacketInfoPort  # noqa: E402


def main():
    args = [int(a) for a in sys.argv[1:]]
    burst = args[0] if args else 2000
    passes = args[1] if len(args) > 1 else 40
    config = ikedtxResponderConfig(SUITE).replace(RESP_ADDRESS, "127.0.0.1").replace(GEN_ADDRESS, "127.0.0.2")
    core = IKECore(parseConfig(config), settings=CoreSettings(cookieThreshold=0))
    clock = Clock()
    runner = CoreRunner(core, DecoupledKernel(), clock)
    protocol = IKEDatagramProtocol(runner, False)
    port = PacketInfoPort(0, protocol, "127.0.0.1", 65535, reactor)
    # Bound but not in the reactor: read here.
    port._bindSocket()
    protocol.makeConnection(port)
    runner.addPort(port, False)
    target = ("127.0.0.1", port.getHost().port)
    request = genuineRequest()
    rng = random.Random(1)
    requests = [rng.getrandbits(64).to_bytes(8, "big") + request[8:] for _ in range(burst)]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    sender.setblocking(False)
    samples = []
    answers = 0
    for _ in range(passes):
        for data in requests:
            sender.sendto(data, target)
        start = time.thread_time()
        while True:
            port.doRead()
            clock.advance(0)
            if not select.select([port.socket], [], [], 0)[0]:
                break
        samples.append((time.thread_time() - start) / burst * 1e6)
        try:
            while True:
                sender.recv(2048)
                answers += 1
        except BlockingIOError:
            pass
    samples.sort()
    print("%.2f us/request least, %.2f 10th percentile, %.2f median (%d x %d requests; %d answers came back; "
          "ikedtx from %s)" % (samples[0], samples[len(samples) // 10], statistics.median(samples), passes, burst,
                               answers, os.path.dirname(os.path.dirname(sys.modules["ikedtx"].__file__))))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""
keepalive: what keeping IKE SAs up costs a responder, in memory (two cores
of tests.soak on a fake clock): timers fired, DPD exchanges, rekeys and the
responder core's CPU over some simulated hours at iked's default lifetimes
(ikelifetime 24 h, lifetime 3 h, dpd_check_interval 60 s), with every peer
idle (no ESP counted), DPD done by the responder only (as in ikebench: the
initiator, charon, does none by default). The rates are scaled to 100,000
IKE SAs (they are proportional to the count).

    PYTHONPATH=. python3 bench/keepalive.py [--sas 1000] [--hours 4]
        [--dpd 60] [--jitter 0.25]
"""

import argparse
import collections
import dataclasses
import time

from twisted.logger import globalLogBeginner

from ikedtx.core.settings import CoreSettings
from ikedtx.wire.constants import ExchangeType
from ikedtx.wire.message import Message

from tests.soak import Soak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sas", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--dpd", type=int, default=60)
    parser.add_argument("--jitter", type=float, default=CoreSettings().dpdJitter)
    parser.add_argument("--ikelifetime", type=int, default=86400)
    parser.add_argument("--lifetime", type=int, default=10800)
    options = parser.parse_args(argv)
    globalLogBeginner.beginLoggingTo([lambda event: None], redirectStandardIO=False)
    soak = Soak(options.sas, options.ikelifetime, options.lifetime, dpd=options.dpd, step=1)
    import tracemalloc

    tracemalloc.stop()
    a, b = soak.a, soak.b
    b.core.settings = dataclasses.replace(b.core.settings, dpdJitter=options.jitter)
    # The initiator does no DPD (charon's default).
    a.core.dpd.start = lambda ikeSA, delay=None: None
    soak.establish()
    for key in [key for key in a.timers if key.kind == "dpd"]:
        a._cancel(key)

    fired = collections.Counter()
    cpu = [0.0]
    expired, receive = b._expired, b.receive

    def timedExpired(key):
        fired[key.kind] += 1
        started = time.process_time()
        expired(key)
        cpu[0] += time.process_time() - started

    def timedReceive(data, local, remote):
        started = time.process_time()
        receive(data, local, remote)
        cpu[0] += time.process_time() - started

    b._expired, b.receive = timedExpired, timedReceive
    # Re-aim the clock's calls armed before the wrapping.
    for key, call in list(b.timers.items()):
        when = call.getTime() - b.clock.seconds()
        b._cancel(key)
        b.timers[key] = b.clock.callLater(when, b._expired, key)
    sent = collections.Counter()
    network = soak.network
    deliverOne = network.deliverOne
    perSecond = collections.Counter()

    def counting(duplicate=False):
        data, source, destination = deliverOne(duplicate)
        if source[0] == b.address:
            message = Message.decode(bytes(data)) if data[:4] != b"\0\0\0\0" else Message.decode(bytes(data[4:]))
            if not message.isResponse:
                sent[ExchangeType(message.exchangeType).name] += 1
                if message.exchangeType == ExchangeType.INFORMATIONAL:
                    perSecond[int(network.clock.seconds())] += 1
        return data, source, destination

    network.deliverOne = counting
    seconds = options.hours * 3600
    started = network.clock.seconds()
    soak.run(seconds)
    scale = 100000 / options.sas
    print("%d IKE SAs (each with a Child SA) for %.1f simulated hours, dpd_check_interval %d, jitter %.2f" % (
        options.sas, options.hours, options.dpd, options.jitter))
    print("responder's timers fired per second at 100,000 SAs: %.1f (%s)" % (
        sum(fired.values()) / seconds * scale,
        ", ".join("%s %.1f" % (kind, n / seconds * scale) for kind, n in sorted(fired.items()))))
    print("responder's requests per second at 100,000 SAs: %s" % (
        ", ".join("%s %.1f" % (kind, n / seconds * scale) for kind, n in sorted(sent.items()))))
    print("rekeys per second at 100,000 SAs: IKE SAs %.2f, Child SAs %.2f" % (
        (soak.ikeUps - options.sas) / seconds * scale,
        (sum(soak.childRenewals.values()) - options.sas) / seconds * scale))
    busiest = max(perSecond.values()) if perSecond else 0
    steady = [perSecond.get(int(started) + s, 0) for s in range(int(seconds / 2), int(seconds))]
    print("DPD requests in the busiest second: %d (%.0f at 100,000 SAs); in the second half, per second: "
          "mean %.2f, max %d" % (busiest, busiest * scale, sum(steady) / len(steady), max(steady)))
    print("responder core CPU: %.2f s, %.1f%% of a core at 100,000 SAs" % (
        cpu[0], 100 * cpu[0] / seconds * scale))
    lost = options.sas - len(b.ikeSAs)
    print("IKE SAs held at the end: %d (lost %d)" % (len(b.ikeSAs), lost))


if __name__ == "__main__":
    main()

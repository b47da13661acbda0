#!/usr/bin/env python3
"""
gcscale: what Python's garbage collector costs as IKE SAs pile up, in
memory (two cores of tests.soak, load-proof apart from the CPU times):
every collection is timed (gc.callbacks, process CPU), with CPython's
default policy and with ikedtx.net.gcpolicy.FreezePolicy.

    PYTHONPATH=. python3 bench/gcscale.py [--sas 20000] [--policy default|freeze]

Prints, per 10% of the SAs, the tracked objects, then the collections per
generation, the longest collection and the CPU in all of them. Both cores
(initiator and responder, each IKE SA with one Child SA) live in this
process: a responder alone holds about half the objects.
"""

import argparse
import gc
import time

from twisted.logger import globalLogBeginner

from bench.inmemory import StepReactor
from tests.soak import Soak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sas", type=int, default=20000)
    parser.add_argument("--policy", choices=("default", "freeze"), default="default")
    options = parser.parse_args(argv)
    # Log events are dropped, not buffered (the buffer would keep the SAs
    # its events name).
    globalLogBeginner.beginLoggingTo([lambda event: None], redirectStandardIO=False)
    soak = Soak(options.sas, 86400, 10800)
    import tracemalloc

    tracemalloc.stop()
    gc.collect()
    gc.freeze()
    stats = {"count": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "longest": [0.0, 0.0, 0.0]}
    started = [0.0]

    def timed(phase, info):
        if phase == "start":
            started[0] = time.process_time()
            return
        g = info["generation"]
        spent = time.process_time() - started[0]
        stats["count"][g] += 1
        stats["seconds"][g] += spent
        stats["longest"][g] = max(stats["longest"][g], spent)

    gc.callbacks.append(timed)
    reactor = StepReactor()
    policy = None
    if options.policy == "freeze":
        from ikedtx.net.gcpolicy import FreezePolicy

        policy = FreezePolicy(reactor, thawInterval=0)
        policy.start()
    cpu = time.process_time()
    last = cpu
    overhead = 0.0
    step = max(1, options.sas // 10)
    for n in range(1, options.sas + 1):
        requestId = soak.a.initiate("ab")
        soak.network.pump()
        if soak.a.results[requestId].error is not None:
            raise SystemExit("IKE SA %d failed: %s" % (n, soak.a.results[requestId].error))
        soak._account()
        reactor.run()
        if n % step == 0:
            now = time.process_time()
            print("%7d SAs: %9d objects tracked (%d frozen); %.2f ms CPU per SA pair over the last %d" % (
                n, len(gc.get_objects()), gc.get_freeze_count(), (now - last) * 1000 / step, step), flush=True)
            last = time.process_time()
            overhead += last - now
    cpu = time.process_time() - cpu - overhead
    gc.callbacks.remove(timed)
    print("policy %s, %d IKE SAs (both cores): CPU %.1f s, %.2f ms per SA pair" % (
        options.policy, options.sas, cpu, cpu * 1000 / options.sas))
    print("collections per generation %s; CPU in them %.2f s (%.1f%%); longest per generation %s ms" % (
        stats["count"], sum(stats["seconds"]), 100 * sum(stats["seconds"]) / cpu,
        [round(s * 1000, 1) for s in stats["longest"]]))
    if policy is not None:
        print("freeze steps %d (their CPU %.2f s, included above)" % (policy.steps, policy.seconds))


if __name__ == "__main__":
    main()

"""
The long fuzz run of issue 11: mutated datagrams through the decoder
(L{Message.decode}, and L{decodePayloads} on mutated inner chains) and
through a live responder core (tests.test_core_fuzz's mutations: clear
IKE_SA_INIT requests, and requests sealed with an established IKE SA's real
keys so that they reach the inner decoder and the tasks). What counts as a
failure: the decoder raising anything but
L{ikedtx.wire.errors.MalformedMessage}; the core raising at all, or logging
a critical event (its "internal error" line). The smaller CI run is
tests/test_core_fuzz.py.

    PYTHONPATH=. python bench/fuzz.py --decoder 1000000 --responder 1000000 --output FILE.json

Seeded: the same arguments give the same inputs.
"""

import argparse
import json
import os
import random
import sys
import time
import traceback

from twisted.logger import LogLevel, globalLogPublisher

from ikedtx.wire.constants import ExchangeType
from ikedtx.wire.errors import MalformedMessage
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import encodePayloads
from ikedtx.wire.payloads.chain import decodePayloads

from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase
from tests.test_core_fuzz import mutate, palette, seal

B = (B_ADDR, 500)
A = (A_ADDR, 500)


class _Harness(ExchangeTestCase):
    """
    ExchangeTestCase's pair builder, outside trial.
    """

    def runTest(self):
        pass


def decoderRun(rng, cases, seeds, report):
    """
    C{cases} mutated datagrams and inner chains through the decoder.
    """
    failures = []
    malformed = decoded = 0
    for case in range(cases):
        kind, data, firstType = rng.choice(seeds)
        mutated = mutate(rng, data)
        try:
            if kind == "message":
                message = Message.decode(mutated)
                message.encode()
            else:
                decodePayloads(mutated, firstType if rng.random() < 0.9 else rng.randrange(256))
            decoded += 1
        except MalformedMessage:
            malformed += 1
        except Exception:
            failures.append({"case": case, "kind": kind, "input": mutated.hex(), "error": traceback.format_exc()})
        if case and case % 100000 == 0:
            report("decoder: %d cases" % (case,))
    return {"cases": cases, "decoded": decoded, "malformed": malformed, "failures": failures}


def responderRun(rng, cases, report, checkpoint=lambda done, failures: None):
    """
    C{cases} mutated requests to a live responder core: a fifth clear
    IKE_SA_INIT requests, the rest sealed with an established IKE SA's keys.
    """
    critical, failures = [], []

    def observe(event):
        if event.get("log_level") == LogLevel.critical:
            critical.append(event)

    globalLogPublisher.addObserver(observe)
    harness = _Harness()
    answered = 0
    try:
        a, b, ikeSA = harness.establish()
        chains = [encodePayloads(c) for c in palette(ikeSA.policy)]
        a.initiate("ab")
        initRequest = harness.network.inFlight.pop(0)[0]
        for case in range(cases):
            if not b.ikeSAs or not ikeSA.isEstablished or not any(sa.isEstablished for sa in b.ikeSAs):
                a, b, ikeSA = harness.establish()
            if rng.random() < 0.2:
                data = mutate(rng, rng.randrange(1, 2 ** 64).to_bytes(8, "big") + initRequest[8:])
            else:
                responder = [sa for sa in b.ikeSAs if sa.isEstablished][0]
                firstType, plaintext = rng.choice(chains)
                if rng.random() < 0.75:
                    plaintext = mutate(rng, plaintext)
                exchangeType = rng.choice([ExchangeType.IKE_AUTH, ExchangeType.CREATE_CHILD_SA,
                                           ExchangeType.INFORMATIONAL, ExchangeType.INFORMATIONAL, 38, 43, 44, 99])
                messageId = responder.taskManager.nextPeerRequestId
                data = seal(ikeSA, exchangeType, messageId, firstType if rng.random() < 0.8 else rng.randrange(256),
                            plaintext)
            try:
                b.receive(data, B, A)
            except Exception:
                failures.append({"case": case, "input": data.hex(), "error": traceback.format_exc()})
            if harness.network.inFlight:
                answered += 1
                harness.network.inFlight.clear()
            if critical:
                failures.append({"case": case, "input": data.hex(), "critical": [str(e.get("log_format")) for e in critical]})
                del critical[:]
            if len(b.core.ikeSAs) > 200:
                # The clear IKE_SA_INITs leave half-open IKE SAs: let them expire.
                b.clock.advance(b.core.settings.halfOpenTimeout)
            if case and case % 50000 == 0:
                report("responder: %d cases" % (case,))
                checkpoint(case, failures)
            if case and case % 20000 == 0:
                # A fresh pair now and then: what the fuzz made the IKE SA
                # hold (Child SAs, pool leases) does not pile up.
                a, b, ikeSA = harness.establish()
    finally:
        globalLogPublisher.removeObserver(observe)
    return {"cases": cases, "answered": answered, "failures": failures}


def decoderSeeds():
    """
    Valid datagrams and inner chains to mutate: a genuine IKE SA's
    messages as they went over the (in-memory) wire, and the palette.
    """
    harness = _Harness()
    a, b, ikeSA = harness.establish()
    seeds = [("message", data, None) for data, _, _ in harness.network.delivered]
    for firstType, chain in [encodePayloads(c) for c in palette(ikeSA.policy)]:
        seeds.append(("chain", chain, firstType))
    for data, _, _ in harness.network.delivered:
        message = Message.decode(data)
        if message.sealedPayload is None:
            continue
        cipher = ikeSA.cipherIn if message.isResponse else b.ikeSAs[0].cipherIn
        firstType, chain = encodePayloads(message.decrypt(cipher))
        seeds.append(("chain", chain, firstType))
    return seeds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--decoder", type=int, default=1000000, help="inputs through the decoder")
    parser.add_argument("--responder", type=int, default=1000000, help="inputs through the live responder")
    parser.add_argument("--seed", type=int, default=7296)
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args(argv)
    started = time.time()

    def report(text):
        print("%7.1f s  %s" % (time.time() - started, text), flush=True)

    rng = random.Random(args.seed)
    results = {"seed": args.seed, "commit": os.popen("git rev-parse --short HEAD 2>/dev/null").read().strip()}
    t0 = time.time()
    results["decoder"] = decoderRun(rng, args.decoder, decoderSeeds(), report)
    results["decoder"]["seconds"] = round(time.time() - t0, 1)
    report("decoder done: %d cases, %d failures" % (args.decoder, len(results["decoder"]["failures"])))
    t0 = time.time()
    def checkpoint(done, failures):
        # A run stopped early still leaves the count it reached.
        if args.output:
            partial = dict(results, responder={"cases": done, "partial": True, "failures": failures})
            with open(args.output, "w") as f:
                json.dump(partial, f, indent=1)

    results["responder"] = responderRun(rng, args.responder, report, checkpoint)
    results["responder"]["seconds"] = round(time.time() - t0, 1)
    report("responder done: %d cases, %d failures" % (args.responder, len(results["responder"]["failures"])))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
    failed = len(results["decoder"]["failures"]) + len(results["responder"]["failures"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

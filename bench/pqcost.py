"""
pqcost: the hybrid handshakes (RFC 9370 additional key exchanges with
ML-KEM in IKE_INTERMEDIATE) side by side with their classic twin: CPU per
IKE SA (with its first Child SA) on each side, bytes and datagrams on the
wire, the largest datagram and the fragments (RFC 7383), with and without
C{set fragmentation}.

Two ikedtx cores are pumped against each other in memory (no sockets, no
kernel: SPIs are counted, installs confirmed at once), so the figures are
the protocol's and the crypto's, not the network's.

    python3 bench/pqcost.py [--sas 200]

It asserts nothing; tests/test_bench_pq.py runs it with one SA and checks
the wire figures.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ikedtx.config import parseConfig  # noqa: E402
from ikedtx.core.actions import AllocateSpi, InstallChildSA, RequestDone, SendDatagram  # noqa: E402
from ikedtx.core.engine import IKECore  # noqa: E402
from ikedtx.wire.message import Message  # noqa: E402

A, B = "192.0.2.1", "192.0.2.2"
BASE = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519"
SUITES = [
    ("X25519 (classic)", BASE),
    ("X25519 + ML-KEM-768", BASE + " addke1 mlkem768"),
    ("X25519 + ML-KEM-1024", BASE + " addke1 mlkem1024"),
    ("X25519 + ML-KEM-768 + ML-KEM-1024", BASE + " addke1 mlkem768 addke2 mlkem1024"),
]


def configs(ike, fragmentation):
    settings = "set fragmentation\n" if fragmentation else ""
    a = parseConfig('%sikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s %s '
                    'childsa enc aes-256-gcm srcid a.example dstid b.example psk "bench"' % (settings, A, B, ike))
    b = parseConfig('%sikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s %s '
                    'childsa enc aes-256-gcm srcid b.example dstid a.example psk "bench"' % (settings, B, A, ike))
    return a, b


class Side:
    """
    One core, the CPU it used and the datagrams it sent.
    """

    def __init__(self, config, address):
        self.core = IKECore(config, now=lambda: 0.0, localAddressFor=lambda peer: address)
        self.address = address
        self.cpu = 0.0
        self.spis = 0x1000
        self.done = []

    def run(self, call, *args):
        start = time.process_time()
        actions = call(*args)
        self.cpu += time.process_time() - start
        return actions


class Pair:
    """
    An initiator and a responder core and the datagrams between them.

    @ivar wire: C{[(sender, datagram)]} of every datagram sent.
    """

    def __init__(self, ike, fragmentation):
        configA, configB = configs(ike, fragmentation)
        self.a, self.b = Side(configA, A), Side(configB, B)
        self.wire = []

    def _execute(self, side, actions, queue):
        other = self.b if side is self.a else self.a
        for action in actions:
            if isinstance(action, SendDatagram):
                self.wire.append((side, action.data))
                queue.append((other, action.data, action.remote, action.local))
            elif isinstance(action, AllocateSpi):
                side.spis += 1
                self._execute(side, side.run(side.core.spiAllocated, action.token, side.spis), queue)
            elif isinstance(action, InstallChildSA):
                self._execute(side, side.run(side.core.childInstalled, action.reqid), queue)
            elif isinstance(action, RequestDone):
                side.done.append(action)

    def establish(self):
        """
        One IKE SA with its Child SA; return the initiator's L{IKESA}.
        """
        queue = []
        start = time.process_time()
        requestId, actions = self.a.core.initiate("ab")
        self.a.cpu += time.process_time() - start
        self._execute(self.a, actions, queue)
        while queue:
            side, data, local, remote = queue.pop(0)
            self._execute(side, side.run(side.core.datagramReceived, data, local, remote), queue)
        done = [d for d in self.a.done if d.requestId == requestId]
        if not done or done[0].error is not None:
            raise RuntimeError("negotiation failed: %r" % (done,))
        return done[0].result


def measure(ike, fragmentation, sas):
    """
    Figures of C{sas} handshakes of one suite: CPU ms per SA on each side,
    and per SA the datagrams, bytes, largest datagram and fragments.
    """
    pair = Pair(ike, fragmentation)
    for _ in range(sas):
        pair.establish()
    wire = pair.wire
    fragments = 0
    for _, data in wire:
        if Message.decode(data).isFragment:
            fragments += 1
    return {
        "initiatorMs": 1000.0 * pair.a.cpu / sas,
        "responderMs": 1000.0 * pair.b.cpu / sas,
        "datagrams": len(wire) / sas,
        "bytes": sum(len(d) for _, d in wire) / sas,
        "largest": max(len(d) for _, d in wire),
        "fragments": fragments / sas,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sas", type=int, default=200, help="IKE SAs per suite")
    args = parser.parse_args(argv)
    print("| suite | fragmentation | initiator CPU ms/SA | responder CPU ms/SA | datagrams | bytes | largest | "
          "fragments |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, ike in SUITES:
        for fragmentation in (False, True):
            r = measure(ike, fragmentation, args.sas)
            print("| %s | %s | %.2f | %.2f | %d | %d | %d | %d |" % (
                name, "on" if fragmentation else "off", r["initiatorMs"], r["responderMs"], r["datagrams"],
                r["bytes"], r["largest"], r["fragments"]))
            sys.stdout.flush()


if __name__ == "__main__":
    main()

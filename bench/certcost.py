"""
certcost: what a responder's certificate authentication costs, in memory
(no sockets, no other process): an ikedtx initiator core and a responder
core pumped with tests.corehelpers, IKE_SA_INIT and IKE_AUTH with a Child
SA, certificates under one CA (RFC 7427 signatures).  It prints the
responder's process CPU per IKE SA (time.process_time around its
datagramReceived: other load on the machine shows less than in wall
clock) and the Python function calls per IKE SA of 50 more IKE SAs
(cProfile: deterministic, load shows not at all).

    python3 bench/certcost.py [--kind p256|rsa2048] [--sas 300] [--ids 10]
                              [--profile FILE]

--ids initiator identities, one certificate each, in turn: with --ids
larger than --sas every IKE SA brings a certificate the responder has
not verified yet.  Timers are not run (the harness's clock never advances).
It asserts nothing.
"""

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ikedtx.auth.store import CredentialStore  # noqa: E402
from ikedtx.config import parseConfig  # noqa: E402
from tests import pki  # noqa: E402
from tests.corehelpers import Host, Network  # noqa: E402

INITIATOR, RESPONDER = "192.0.2.1", "192.0.2.2"


class _NoCall:
    def active(self):
        return False

    def cancel(self):
        pass


class _NoClock:
    """
    Timers set but never run: a task.Clock sorts its calls at each
    callLater, which would be the harness's cost, not the core's.
    """

    def callLater(self, *args, **kwargs):
        return _NoCall()


def pair(kind, ids, directory=None):
    ca = pki.Authority.root(kind=kind, keyName="ca-" + kind)
    treeI = pki.IkedTree(tempfile.mkdtemp(prefix="certcost-", dir=directory))
    treeR = pki.IkedTree(tempfile.mkdtemp(prefix="certcost-", dir=directory))
    keyI, keyR = pki.key("i-" + kind, kind), pki.key("r-" + kind, kind)
    for i in range(ids):
        name = "i%d.example" % (i,)
        treeI.addCert(ca.issue(pki.name(CN=name), keyI.public_key(), dns=[name]), "i%d.crt" % (i,))
    treeR.addCert(ca.issue(pki.name(CN="r.example"), keyR.public_key(), dns=["r.example"]))
    for tree, key in ((treeI, keyI), (treeR, keyR)):
        tree.setLocalKey(key)
        tree.addCA(ca.certificate)
    initiator = parseConfig("".join(
        'ikev2 "p%d" active esp from 10.1.%d.%d/32 to 10.2.0.0/24 local %s peer %s srcid i%d.example '
        'dstid r.example rfc7427\n' % (i, i // 250, i % 250, INITIATOR, RESPONDER, i) for i in range(ids)))
    responder = parseConfig('ikev2 "r" passive esp from 10.2.0.0/24 to 0.0.0.0/0 local %s peer %s '
                            'srcid r.example rfc7427' % (RESPONDER, INITIATOR))
    network = Network()
    i = Host(network, INITIATOR, initiator, credentials=CredentialStore(treeI.root), wallClock=lambda: pki.NOW)
    r = Host(network, RESPONDER, responder, credentials=CredentialStore(treeR.root), wallClock=lambda: pki.NOW)
    i.clock = r.clock = _NoClock()
    return network, i, r


def run(kind, sas, ids, profilePath=None, counted=50, directory=None):
    """
    C{sas} IKE SAs timed, then C{counted} more under cProfile.

    @return: (responder CPU ms per IKE SA, function calls per IKE SA).
    """
    network, initiator, responder = pair(kind, ids, directory)
    spent = [0.0]
    profile = cProfile.Profile()
    profiling = [False]
    receive = responder.receive

    def measured(*args):
        if profiling[0]:
            profile.enable()
            receive(*args)
            profile.disable()
            return
        start = time.process_time()
        receive(*args)
        spent[0] += time.process_time() - start

    responder.receive = measured
    for n in range(sas + counted):
        profiling[0] = n >= sas
        initiator.initiate("p%d" % (n % ids,))
        network.pump()
    if len(responder.core.ikeSAs) != sas + counted:
        raise SystemExit("%d IKE SAs established of %d" % (len(responder.core.ikeSAs), sas + counted))
    if profilePath:
        profile.dump_stats(profilePath)
    return spent[0] / sas * 1000, pstats.Stats(profile).total_calls / counted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--kind", default="p256", choices=("p256", "rsa2048"))
    parser.add_argument("--sas", type=int, default=300)
    parser.add_argument("--ids", type=int, default=10)
    parser.add_argument("--profile", default=None, help="also write the responder's cProfile stats here")
    args = parser.parse_args(argv)
    ids = args.ids
    ms, calls = run(args.kind, args.sas, ids, args.profile)
    print("%s, %d IKE SAs, %d identities: responder %.3f ms CPU per IKE SA, "
          "%.0f function calls per IKE SA (50 more, under cProfile)" % (args.kind, args.sas, ids, ms, calls))


if __name__ == "__main__":
    main()

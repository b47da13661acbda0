# -*- test-case-name: tests.test_bench -*-
"""
strongSwan's charon as the load generator: a neutral initiator that
favours neither responder.

One charon in the generator namespace has a connection per initiator
identity (gen<i>.bench.example), with the suite's proposal and either one
Child SA or none (C{childless = force}, RFC 6023). charon is asked over vici
to C{initiate} the connections in turn, without waiting, and each result
is read from charon's C{ike-updown}/C{child-updown} events: C{window}
negotiations are kept in flight.
charon.reuse_ikesa = no makes every initiate a new IKE SA (charon would
otherwise add a Child SA to the IKE SA it has with the same peer).
charon's Child SAs are installed by kernel-libipsec (this kernel has no
ESP), so that it keeps them and deletes nothing at the responder.

It offers L{bench.generator.Generator}'s interface: C{pid} (charon's, whose
CPU is the generator's), C{run(target, timeout)} and C{stop()}.
"""

import collections
import os
import socket
import threading
import time

from bench.suites import GEN_ADDRESS, GEN_NET, PSK, RESP_ADDRESS, RESP_ID, RESP_NET, genId
from bench.responders import BenchCharon
from ikedtx.testing.lab.charon import Auth, Child, Connection, Secret
from ikedtx.testing.lab.vici import EVENT, decode

GEN_INNER = "10.1.0.1/32"


def percentiles(values, points=(50, 90, 99)):
    if not values:
        return [None for _ in points]
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in points]


class CharonGenerator:
    """
    charon initiating IKE SAs over vici, C{window} at a time.

    @ivar childless: whether the IKE SAs come without a Child SA.
    @ivar held: IKE SAs charon reported established so far.
    @ivar noOutcome: seconds after which a negotiation charon reported
        nothing of counts as failed (its slot in the window is free again).
    """

    noOutcome = 120

    def __init__(self, namespace, directory, suite, credentials, window, ids, cpu=None, childless=False,
                 maxFailures=100, root=None):
        self.namespace = namespace
        self.window = window
        self.ids = ids
        self.childless = childless
        self.maxFailures = maxFailures
        self.held = 0
        plugins = ["kernel-libipsec"] + (
            "random nonce openssl pem pkcs1 pkcs8 x509 pubkey constraints curve25519 gmp hmac kdf gcm "
            "aes sha1 sha2 mgf1 drbg kernel-netlink socket-default vici").split()
        settings = {
            "threads": 16,
            "reuse_ikesa": False,
            "install_routes": False,
            "install_virtual_ip": False,
            "ikesa_table_size": 32768,
            "ikesa_table_segments": 16,
            "retransmit_tries": 3,
        }
        self.peer = BenchCharon(namespace, os.path.join(directory, "gen-charon"), name="charon-gen", libipsec=True,
                                plugins=plugins, settings=settings, root=root)
        self.peer.logLevels = {"default": 0}
        if suite.auth == "psk":
            self.peer.addSecret(Secret(PSK, ids=[]))
        else:
            self.peer.addCA(credentials.ca.cert)
        for i in range(ids):
            if suite.auth == "psk":
                local = Auth("psk", id=genId(i))
                remote = Auth("psk", id=RESP_ID)
            else:
                local = Auth("pubkey", id=genId(i), certs=[credentials.gens[i]])
                remote = Auth("pubkey", id=RESP_ID)
            children = [] if childless else [
                Child("net%d" % (i,), local_ts=[GEN_NET], remote_ts=[RESP_NET], esp_proposals=["aes256gcm16"])]
            self.peer.addConnection(Connection(
                "gen%d" % (i,), local_addrs=[GEN_ADDRESS], remote_addrs=[RESP_ADDRESS],
                proposals=[suite.charonProposalFor(root is not None)], local=local, remote=remote, children=children,
                unique="never", mobike=False, childless="force" if childless else None))
        existing = namespace.ip("-o", "addr", "show", "dev", "lo").stdout
        if GEN_INNER.split("/")[0] not in existing:
            namespace.addLoopbackAddress(GEN_INNER)
        self.peer.start(timeout=30)
        self.pid = self.peer.process.pid
        if cpu is not None:
            from bench.proc import pin
            pin(self.pid, {cpu})
        self._next = 0
        self._lock = threading.Lock()

    def _nextName(self):
        with self._lock:
            i = self._next % self.ids
            self._next += 1
        return ("gen%d" % (i,), None) if self.childless else (None, "net%d" % (i,))

    def run(self, target, timeout):
        """
        Initiate until C{target} IKE SAs are held (or C{timeout} s pass, or
        too many fail); return the figures as bench/loadgen.py does.

        Each C{initiate} returns at once (timeout -1); the outcome comes as
        vici events (C{child-updown}, or C{ike-updown} when childless) on a
        second connection, which also paces the window.
        """
        started = time.monotonic()
        deadline = started + timeout
        latencies = []
        errors = collections.Counter()
        pending = collections.defaultdict(collections.deque)
        failed = 0
        why = "done"
        upEvent = "ike-updown" if self.childless else "child-updown"
        swept = started
        with self.peer.vici() as events, self.peer.vici() as command:
            events.sock.settimeout(1.0)
            for name in ("ike-updown", "child-updown"):
                events._register(name)
            inflight = 0
            while self.held < target:
                while inflight < self.window and self.held + inflight < target:
                    ike, child = self._nextName()
                    result = command.request("initiate", {"child": child, "ike": ike, "timeout": -1,
                                                          "init-limits": "no"})
                    if result.get("success") != "yes":
                        failed += 1
                        errors[result.get("errmsg", "initiate failed")] += 1
                        continue
                    pending["gen%s" % ((ike or child)[3:],)].append(time.monotonic())
                    inflight += 1
                if failed > self.maxFailures:
                    why = "failures"
                    break
                now = time.monotonic()
                if now > deadline:
                    why = "timeout"
                    break
                if now - swept > 1.0:
                    # charon reports no event for an IKE SA that never
                    # came up (its IKE_SA_INIT given up after its
                    # retransmissions, about 48 s here): its slot of the
                    # window would be lost for good, and the run would
                    # wait for its deadline with the window empty.
                    swept = now
                    for queue in pending.values():
                        while queue and now - queue[0] > self.noOutcome:
                            queue.popleft()
                            inflight -= 1
                            failed += 1
                            errors["no outcome in %d s" % (self.noOutcome,)] += 1
                try:
                    kind, event, body = events._recv()
                except socket.timeout:
                    continue
                if kind != EVENT:
                    continue
                fields = decode(body)
                up = fields.pop("up", None) == "yes"
                for conn in fields:
                    if event == upEvent and up:
                        self.held += 1
                    elif event == "ike-updown" and not up:
                        failed += 1
                        errors["IKE SA down"] += 1
                    else:
                        continue
                    if pending[conn]:
                        # (Not for the late outcome of one given up above.)
                        inflight -= 1
                        began = pending[conn].popleft()
                        if up:
                            latencies.append(time.monotonic() - began)
        p = percentiles(latencies)
        return {"established": self.held, "failed": failed, "why": why,
                "elapsed": time.monotonic() - started,
                "latencies": [None if x is None else round(x * 1000, 2) for x in p],
                "errors": dict(errors), "childless": self.held if self.childless else 0}

    def stop(self):
        self.peer.stop()

"""
Several IKE workers (C{--ike-workers 2}, L{ikedtx.privsep.pool}) against
charon in namespaces: IKE SAs spread over both workers by their SPIs, and
their later messages (rekeys, deletes, our own initiation's answers) reach
the worker that holds them; the parent's control socket lists and counts
every worker's SAs.
"""

import os

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Auth, Child, Connection, Secret, poll
from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials
from tests.test_privsep_daemon import PrivsepMixin, childrenOf, status

WORKERS = 2
PROPOSAL = "aes128gcm16-prfsha256-x25519"


def owner(spiR):
    """
    The worker whose SPI class C{spiR} (hex, as show sa prints it) is in.
    """
    return int(spiR.replace("0x", "")[-2:], 16) % WORKERS


class PoolCharonTests(PrivsepMixin, TestCase):
    def startCharonPeers(self, credentials, count, unique="never", name=None):
        """
        charon on b with C{count} connections to ikedtx (each initiate is
        a new IKE SA with a new random SPI).
        """
        charon = self.charon(self.b, name=name, libipsec=True)
        charon.addSecret(Secret(PSK, ids=[]))
        for i in range(count):
            children = [Child("net%d" % (i,), local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                              esp_proposals=["aes128gcm16"])]
            charon.addConnection(Connection(
                "peer%d" % (i,), local_addrs=[B], remote_addrs=[A], proposals=[PROPOSAL],
                local=Auth("psk", id="peer%d.example" % (i,)), remote=Auth("psk", id=credentials.idA),
                children=children,
                unique=unique))
        charon.start()
        return charon

    def workers(self, ours):
        pids = []

        def two():
            pids[:] = [p for p in childrenOf(ours.process.pid)
                       if status(p)["Uid"].split()[0] == str(self.user.pw_uid)]
            return len(pids) == WORKERS and all(
                "worker %d serves peers" % (p,) in ours.log() for p in pids)

        poll(two, 30.0, interval=0.1, what=lambda: "two workers\n" + ours.report())
        return pids

    def ourSas(self, ours):
        return {sa["spiI"]: sa for sa in ours.showSa() if sa["state"] == "VALID"}

    def test_spreadRekeyDelete(self):
        """
        charon's IKE SAs land on both workers (the responder SPI of each is
        in its worker's class); show sa through the parent lists them all;
        an IKE SA rekey and a Child SA rekey by charon and our own rekey of
        an IKE SA of each worker are answered (the new SAs stay with the
        old one's worker); charon's deletes reach the owners; ikedtx's
        own initiation comes back to its first worker.
        """
        self.hosts()
        credentials = Credentials("psk")
        total = 16
        charon = self.startCharonPeers(credentials, total)
        # Any peer identity (charon's duplicate check wants one per
        # connection).
        policy = ('ikev2 "peer" passive esp from %s to %s local %s peer %s childsa enc aes-128-gcm srcid %s '
                  'psk "%s"\n' % (A_INNER, B_INNER, A, B, credentials.idA, PSK))
        ours = self.startIkedtx(policy, extraArgs=["--ike-workers", str(WORKERS)])
        ours.start(timeout=90.0)
        pids = self.workers(ours)
        self.assertEqual(len(set(pids)), WORKERS)
        up = 0
        for i in range(total):
            ok, output = charon.initiate(child="net%d" % (i,), timeout=20)
            self.assertTrue(ok, output + charon.report() + ours.report())
            up += 1
            if i >= 5 and len({owner(sa["spiR"]) for sa in self.ourSas(ours).values()}) == WORKERS:
                break
        sas = self.ourSas(ours)
        self.assertEqual(len(sas), up, ours.report())
        self.assertEqual({owner(sa["spiR"]) for sa in sas.values()}, set(range(WORKERS)))
        self.assertTrue(all(sa["children"] for sa in sas.values()))
        # charon's view agrees: every one of its IKE SAs is one of ours.
        theirs = {sa["initiator-spi"]: sa for sa in charon.ikeSas()}
        self.assertEqual({spi.replace("0x", "").lstrip("0") for spi in sas},
                         {spi.lstrip("0") for spi in theirs}, (sas.keys(), theirs.keys()))
        # Each worker logged the SAs it established.
        log = ours.log()
        for pid in pids:
            self.assertIn("worker[%d]: " % (pid,), log)
        byName = {sa["name"]: sa for sa in charon.ikeSas()}
        names = {}
        for name, sa in byName.items():
            mine = sas.get("0x" + sa["initiator-spi"]) or sas.get(sa["initiator-spi"])
            if mine is not None:
                names.setdefault(owner(mine["spiR"]), name)
        self.assertEqual(set(names), set(range(WORKERS)), (byName.keys(), sas.keys()))
        stats = self.stats(ours)
        self.assertEqual(stats["ikes_sa_established_current"], up)

        # charon rekeys an IKE SA held by each worker, and a Child SA.
        for worker, name in names.items():
            old = byName[name]["initiator-spi"]
            charon.swanctl("--rekey", "--ike", name)

            def rekeyed(name=name, old=old):
                sa = [s for s in charon.ikeSas(ike=name)]
                return sa and sa[0]["initiator-spi"] != old and self.ourSpi(ours, sa[0]["initiator-spi"])

            poll(rekeyed, 20.0, interval=0.1, what=lambda: "the IKE SA rekey\n" + charon.report() + ours.report())
            sa = charon.ikeSas(ike=name)[0]
            self.assertEqual(owner(self.ourSpi(ours, sa["initiator-spi"])["spiR"]), worker)
            child = sa["child-sas"]
            child = list(child.values())[0] if isinstance(child, dict) else child[0]
            oldChild = child["spi-in"]
            charon.swanctl("--rekey", "--child", child["name"])

            def childRekeyed(name=name, oldChild=oldChild):
                sa = charon.ikeSas(ike=name)[0]
                children = sa["child-sas"]
                children = list(children.values()) if isinstance(children, dict) else children
                return any(c["spi-in"] != oldChild and c["state"] == "INSTALLED" for c in children)

            poll(childRekeyed, 20.0, interval=0.1, what=lambda: "the Child SA rekey\n" + charon.report())
        self.assertEqual(len(self.ourSas(ours)), up)

        # charon deletes one IKE SA of each worker.
        for worker, name in names.items():
            spi = charon.ikeSas(ike=name)[0]["initiator-spi"]
            charon.terminate(ike=name, timeout=10)
            poll(lambda spi=spi: not self.ourSpi(ours, spi), 20.0, interval=0.1,
                 what=lambda: "the delete\n" + ours.report())
        self.assertEqual(len(self.ourSas(ours)), up - WORKERS)
        self.assertEqual(self.stats(ours)["ikes_sa_established_current"], up - WORKERS)

        # Our own initiation: the first worker's SPI, its answers steered back.
        spiI, _spiR = ours.initiate("peer")
        self.assertEqual(owner(spiI), 0)
        self.assertEqual(len(self.ourSas(ours)), up - WORKERS + 1)

    def test_initialContactAcrossWorkers(self):
        """
        charon restarted (its state lost) comes back with INITIAL_CONTACT:
        when the new IKE SA lands on the other worker than the old one, the
        old one goes all the same (the parent has the other worker forget
        it).
        """
        self.hosts()
        credentials = Credentials("psk")
        policy = ('ikev2 "peer" passive esp from %s to %s local %s peer %s childsa enc aes-128-gcm srcid %s '
                  'psk "%s"\n' % (A_INNER, B_INNER, A, B, credentials.idA, PSK))
        ours = self.startIkedtx(policy, extraArgs=["--ike-workers", str(WORKERS)])
        ours.start(timeout=90.0)
        self.workers(ours)
        charon = None
        for attempt in range(16):
            if charon is not None:
                # Lost, without a Delete to us.
                charon.process.kill()
                charon.process.wait()
                charon.stop()
            # A new charon each time: no IKE SA with us, so INITIAL_CONTACT.
            charon = self.startCharonPeers(credentials, 1, unique="no", name="charon%d" % (attempt,))
            before = self.ourSas(ours)
            ok, output = charon.initiate(child="net0", timeout=20)
            self.assertTrue(ok, output + charon.report() + ours.report())
            new = charon.ikeSas()[0]["initiator-spi"]
            poll(lambda: self.ourSpi(ours, new), 10.0, interval=0.1, what=lambda: "the new SA\n" + ours.report())
            newOwner = owner(self.ourSpi(ours, new)["spiR"])
            # The old IKE SA is gone, whichever worker held it.
            poll(lambda: list(self.ourSas(ours)) == [self.ourSpi(ours, new)["spiI"]], 10.0, interval=0.1,
                 what=lambda: "only the new IKE SA\n" + ours.report())
            if before and {owner(sa["spiR"]) for sa in before.values()} != {newOwner}:
                break
        else:
            self.fail("16 IKE SAs in a row on the same worker")
        # The worker's line reaches the log through the parent, a moment later.
        self.assertIn("reached another worker: deleting this old one",
                      ours.logWith("reached another worker: deleting this old one"))

    def test_killedWorkerAlone(self):
        """
        SIGKILL of the second worker: the parent removes the SAs that worker
        installed and starts another in its place; the first worker's IKE
        SAs stay (show sa), and new IKE SAs land on the new second worker.
        """
        import re
        import signal

        self.hosts()
        credentials = Credentials("psk")
        total = 24
        charon = self.startCharonPeers(credentials, total)
        policy = ('ikev2 "peer" passive esp from %s to %s local %s peer %s childsa enc aes-128-gcm srcid %s '
                  'psk "%s"\n' % (A_INNER, B_INNER, A, B, credentials.idA, PSK))
        ours = self.startIkedtx(policy, extraArgs=["--ike-workers", str(WORKERS)])
        ours.start(timeout=90.0)
        self.workers(ours)
        second = int(re.search(r"worker started: pid (\d+) \(2 of 2\)", ours.log()).group(1))
        i = 0
        while i < total // 2 or len({owner(sa["spiR"]) for sa in self.ourSas(ours).values()}) < WORKERS:
            self.assertLess(i, total // 2 + 4, "no IKE SA on one of the workers\n" + ours.report())
            ok, output = charon.initiate(child="net%d" % (i,), timeout=20)
            self.assertTrue(ok, output + ours.report())
            i += 1
        before = self.ourSas(ours)
        firsts = {spi for spi, sa in before.items() if owner(sa["spiR"]) == 0}
        seconds = len(before) - len(firsts)
        os.kill(second, signal.SIGKILL)
        poll(lambda: "worker %d (2 of 2) died (signal KILL); removing the %d SAs it installed" % (
            second, 2 * seconds) in ours.log(), 20.0, interval=0.1, what=lambda: "the death\n" + ours.report())
        poll(lambda: len(re.findall(r"serves peers as uid \d+ \(2 of 2\)", ours.log())) == 2, 60.0, interval=0.1,
             what=lambda: "the new second worker\n" + ours.report())
        self.assertEqual(set(self.ourSas(ours)), firsts)
        # New IKE SAs reach the new second worker too.
        while i < total:
            ok, output = charon.initiate(child="net%d" % (i,), timeout=20)
            self.assertTrue(ok, output + ours.report())
            i += 1
            if any(owner(sa["spiR"]) == 1 for sa in self.ourSas(ours).values()):
                break
        self.assertIn(1, {owner(sa["spiR"]) for sa in self.ourSas(ours).values()})
        self.assertTrue(firsts <= set(self.ourSas(ours)))

    def test_sighupReloadsEveryWorker(self):
        """
        SIGHUP to the parent of two workers: each worker reads the changed
        file (a second policy) and says so; the IKE SAs of the policy that
        stayed are kept on both workers, and a broken file changes nothing
        (each worker keeps the two policies, the SAs stay).
        """
        import re
        import signal

        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharonPeers(credentials, 12)
        policy = ('ikev2 "peer" passive esp from %s to %s local %s peer %s childsa enc aes-128-gcm srcid %s '
                  'psk "%s"\n' % (A_INNER, B_INNER, A, B, credentials.idA, PSK))
        ours = self.startIkedtx(policy, extraArgs=["--ike-workers", str(WORKERS)])
        ours.start(timeout=90.0)
        workers = self.workers(ours)
        i = 0
        while len({owner(sa["spiR"]) for sa in self.ourSas(ours).values()}) < WORKERS:
            self.assertLess(i, 12, "no IKE SA on one of the workers\n" + ours.report())
            ok, output = charon.initiate(child="net%d" % (i,), timeout=20)
            self.assertTrue(ok, output + ours.report())
            i += 1
        before = set(self.ourSas(ours))

        def reloaded(n, count):
            return len(re.findall(r"reloaded \S+: loaded %d policies" % (n,), ours.log())) >= count

        ours.setConfig(policy + policy.replace('"peer"', '"second"').replace(B, "192.0.2.99"))
        ours.process.send_signal(signal.SIGHUP)
        poll(lambda: reloaded(2, WORKERS), 30.0, interval=0.1, what=lambda: "both workers reloaded\n" + ours.report())
        self.assertEqual(set(self.ourSas(ours)), before)
        self.assertEqual(sorted(childrenOf(ours.process.pid)), sorted(workers))
        ours.setConfig(policy + "ikev2 broken {\n")
        ours.process.send_signal(signal.SIGHUP)
        poll(lambda: ours.log().count("reload failed: keeping the configuration in force") >= WORKERS, 30.0,
             interval=0.1, what=lambda: "both workers refused the broken file\n" + ours.report())
        self.assertEqual(set(self.ourSas(ours)), before)
        self.assertFalse(reloaded(1, 1), ours.report())

    def test_addressPoolShared(self):
        """
        Road warriors (charon, each its own identity asking for an IPv4
        address) on two workers sharing one C{config address} pool: every
        client gets a different address, the first worker's from the
        pool's odd offsets (.1, .3, ...), the second's from the even ones.
        """
        from ipaddress import ip_address

        self.hosts()
        credentials = Credentials("psk")
        charon = self.charon(self.b, libipsec=True)
        charon.addSecret(Secret(PSK, ids=[]))
        count = 10
        for i in range(count):
            charon.addConnection(Connection(
                "rw%d" % (i,), local_addrs=[B], remote_addrs=[A], proposals=[PROPOSAL],
                local=Auth("psk", id="rw%d.example" % (i,)), remote=Auth("psk", id=credentials.idA),
                vips=["0.0.0.0"], unique="never",
                children=[Child("rw%d" % (i,), remote_ts=[A_INNER + "/32"], esp_proposals=["aes128gcm16"])]))
        charon.start()
        policy = ('ikev2 "rw" passive esp from %s to dynamic local %s peer any childsa enc aes-128-gcm '
                  'srcid %s psk "%s" config address 10.77.0.0/24\n' % (A_INNER, A, credentials.idA, PSK))
        ours = self.startIkedtx(policy, extraArgs=["--ike-workers", str(WORKERS)])
        ours.start(timeout=90.0)
        self.workers(ours)
        for i in range(count):
            ok, output = charon.initiate(child="rw%d" % (i,), timeout=20)
            self.assertTrue(ok, output + ours.report())
        lent = {}
        for sa in charon.ikeSas():
            (vip,) = sa["local-vips"]
            lent[vip] = owner(sa["responder-spi"])
        self.assertEqual(len(lent), count, (lent, charon.ikeSas()))
        self.assertEqual(set(lent.values()), {0, 1}, lent)
        for vip, worker in lent.items():
            offset = int(ip_address(vip)) - int(ip_address("10.77.0.1"))
            self.assertEqual(offset % WORKERS, worker, lent)
        self.assertEqual(len(self.ourSas(ours)), count)

    def ourSpi(self, ours, initiatorSpi):
        want = initiatorSpi.replace("0x", "").lstrip("0")
        for sa in ours.showSa():
            if sa["spiI"].replace("0x", "").lstrip("0") == want and sa["state"] == "VALID":
                return sa
        return None

    def stats(self, ours):
        from ikedtx.control.commands import ShowStats

        return {c["name"]: c["value"] for c in ours.call(ShowStats)["counters"]}


class PoolUserspaceTests(PrivsepMixin, TestCase):
    def test_charonPing(self):
        """
        The user-space datapath with two workers: the NAT-T port's group has
        three sockets (two workers, then the parent's ESP socket, which the
        program names for a non-zero marker). ikedtx (its first worker)
        negotiates with charon (kernel-libipsec: IKE and ESP share UDP
        4500), three pings pass each way and the parent's datapath counts
        them, dropping nothing.
        """
        from tests.interop import ikedtxPolicy
        from tests.test_interop_userspace import pingsBothWays

        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.ikedtx(self.a, ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"),
                           extraArgs=["--kernel", "userspace", "--listen", A, "--ike-workers", "2"])
        ours.start(timeout=90.0)
        ours.initiate("peer")
        pingsBothWays(self, ours, self.a, self.b)
        self.assertEqual(len([sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"]), 1)

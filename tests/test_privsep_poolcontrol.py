"""
The parent's side of several IKE workers (L{ikedtx.privsep.pool}) in one
process: the fan-out control protocol over real UNIX sockets to two
in-memory "workers" (control servers on fake services), and the datapath
view that forgets only one worker's SAs.
"""

import os
from types import SimpleNamespace

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.control import commands as C
from ikedtx.control.client import connectControl
from ikedtx.control.server import ControlFactory
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.privsep.pool import MAX_WALKS, FanOutFactory, PoolEvents, SlotKernel, WorkerControlClient, WorkerPoolService
from tests.test_control import fakeService


class FakePool:
    """
    What L{FanOutControl} uses of a L{WorkerPoolService}.
    """

    startWalk = WorkerPoolService.startWalk
    monitorWorkers = lambda self: None  # noqa: E731

    def __init__(self, slots):
        self.slots = slots
        self.walks = {}
        self._nextWalk = 1
        self.events = PoolEvents(self)


class FanOutTests(TestCase):
    def sock(self, name):
        return os.path.join("/tmp", "ikedtx-pool-%d-%d-%s.sock" % (os.getpid(), id(self), name))

    @defer.inlineCallbacks
    def workers(self, services):
        slots = []
        for i, service in enumerate(services):
            path = self.sock("w%d" % (i,))
            port = reactor.listenUNIX(path, ControlFactory(service))
            self.addCleanup(port.stopListening)
            slot = SimpleNamespace(index=i, ready=True, control=None, monitoring=False)
            slot.pool = None
            client = WorkerControlClient(slot)
            yield protocol.ClientCreator(reactor, lambda c=client: c).connectUNIX(path)
            self.addCleanup(client.transport.loseConnection)
            slot.control = client
            slots.append(slot)
        pool = FakePool(slots)
        for slot in slots:
            slot.pool = pool
        path = self.sock("parent")
        port = reactor.listenUNIX(path, FanOutFactory(pool))
        self.addCleanup(port.stopListening)
        client = yield connectControl(reactor, path)
        self.addCleanup(client.close)
        defer.returnValue((pool, client))

    @defer.inlineCallbacks
    def test_showSaMerged(self):
        """
        show sa through the parent lists every worker's SAs, paged (more
        than a page in all), and the walk is dropped when it ends.
        """
        pool, client = yield self.workers([fakeService(70), fakeService(45)])
        sas = yield client.showSA()
        self.assertEqual(len(sas), 115)
        self.assertEqual(pool.walks, {})

    @defer.inlineCallbacks
    def test_showSaPackedAndClassic(self):
        """
        The parent pages a merged walk as the client asks: packed (one JSON
        value per page, as ikectl asks since show sa went packed; the
        parent failed with "unexpected keyword argument 'packed'") or in
        AMP lists of C{SHOW_SA_PAGE}.
        """
        pool, client = yield self.workers([fakeService(70), fakeService(45)])
        packed = yield client.protocol.callRemote(C.ShowSA, packed=True)
        self.assertEqual((len(packed["packed"]), packed["sas"], packed["total"]), (115, [], 115))
        self.assertIsNone(packed.get("next"))
        classic = yield client.protocol.callRemote(C.ShowSA)
        self.assertEqual((len(classic["sas"]), classic["next"], classic.get("packed")), (C.SHOW_SA_PAGE, C.SHOW_SA_PAGE,
                                                                                          None))
        rest = yield client.protocol.callRemote(C.ShowSA, cursor=classic["cursor"], offset=classic["next"], packed=True)
        self.assertEqual(len(rest["packed"]), 115 - C.SHOW_SA_PAGE)
        self.assertEqual(pool.walks, {})

    @defer.inlineCallbacks
    def test_showSaOffsetAndCursor(self):
        """
        A page by offset without a cursor, and an unknown cursor: a clear
        BadArgument.
        """
        pool, client = yield self.workers([fakeService(3), fakeService(4)])
        page = yield client.protocol.callRemote(C.ShowSA, offset=5, limit=10)
        self.assertEqual((len(page["sas"]), page["total"]), (2, 7))
        yield self.assertFailure(client.protocol.callRemote(C.ShowSA, cursor=99, offset=0), C.BadArgument)

    @defer.inlineCallbacks
    def test_statsAdded(self):
        """
        show stats adds up the workers' counters.
        """
        one, two = fakeService(2), fakeService(3)
        for service in (one, two):
            service.core.counters = SimpleNamespace(items=lambda: [("ikes_sa_created", 5)])
            service.core.passive = False
        one.events.stats.count("ikes_sa_established_total", 2)
        two.events.stats.count("ikes_sa_established_total", 3)
        pool, client = yield self.workers([one, two])
        stats = yield client.protocol.callRemote(C.ShowStats)
        counters = {c["name"]: c["value"] for c in stats["counters"]}
        self.assertEqual(counters["ikes_sa_created"], 10)
        self.assertEqual(counters["ikes_sa_established_total"], 5)
        self.assertEqual(counters["ikes_sa_established_current"], 5)

    @defer.inlineCallbacks
    def test_ownerAnswers(self):
        """
        A command naming an IKE SA goes to the workers in turn: the one
        that has it answers; when none has it, the client gets NoSuchSA.
        """
        one, two = fakeService(1), fakeService(1)
        asked = []

        def deleteIKESA(sa):
            asked.append(sa)

        for name, service in (("one", one), ("two", two)):
            service.core.deleteIKESA = lambda sa, name=name: asked.append(name)
            service.runner = SimpleNamespace(command=lambda f, *a: defer.maybeDeferred(f, *a), coupled=True)
        # Only the second worker has 0x0000000000000005.
        del one.core.ikeSAs[b"\0" * 8]
        del two.core.ikeSAs[b"\0" * 8]
        from ikedtx.core.sa import IKESA, IKEState

        sa = IKESA(True, (5).to_bytes(8, "big"), (6).to_bytes(8, "big"), SimpleNamespace(name="p"),
                   ("192.0.2.1", 500), ("192.0.2.2", 500), 0)
        sa.state = IKEState.VALID
        two.core.ikeSAs[sa.localSPI] = sa
        two.core.findIKESA = one.core.findIKESA = None
        pool, client = yield self.workers([one, two])
        yield client.protocol.callRemote(C.DeleteIkeSA, spiI="0x0000000000000005")
        self.assertEqual(asked, ["two"])
        yield self.assertFailure(client.protocol.callRemote(C.DeleteIkeSA, spiI="0x0000000000000009"), C.NoSuchSA)

    @defer.inlineCallbacks
    def test_resetAndModeToAll(self):
        """
        reset sa reaches every worker (the count is the sum), and so do
        passive and the log level.
        """
        services = [fakeService(2), fakeService(3)]
        deleted, levels = [], []
        for service in services:
            service.core.deleteIKESA = lambda sa, reason=None: deleted.append(sa)
            service.core.passive = False
            service.runner = SimpleNamespace(command=lambda f, *a: defer.maybeDeferred(f, *a), coupled=True)
            service.logLevelChanged = levels.append
        pool, client = yield self.workers(services)
        answer = yield client.protocol.callRemote(C.Reset, what="sa")
        self.assertEqual((answer["count"], len(deleted)), (5, 5))
        yield client.protocol.callRemote(C.SetMode, mode="passive")
        self.assertEqual([service.core.passive for service in services], [True, True])
        from ikedtx import tap

        self.addCleanup(tap.setVerbose, tap.isVerbose())
        yield client.protocol.callRemote(C.SetLog, level="verbose")
        self.assertEqual(levels, [True, True])

    @defer.inlineCallbacks
    def test_noWorkerReady(self):
        """
        With no worker ready the parent answers COMMAND_FAILED, try again.
        """
        pool, client = yield self.workers([fakeService(1)])
        pool.slots[0].ready = False
        failure = yield self.assertFailure(client.protocol.callRemote(C.ShowStats), C.CommandFailed)
        self.assertIn("try again in a moment", str(failure))

    @defer.inlineCallbacks
    def test_readOnly(self):
        """
        The parent's read-only socket refuses what is not a show or monitor.
        """
        pool, _client = yield self.workers([fakeService(1)])
        path = self.sock("ro")
        port = reactor.listenUNIX(path, FanOutFactory.forReadOnlySocket(pool))
        self.addCleanup(port.stopListening)
        client = yield connectControl(reactor, path)
        self.addCleanup(client.close)
        yield self.assertFailure(client.protocol.callRemote(C.Reset, what="all"), C.NotPermitted)
        sas = yield client.showSA()
        self.assertEqual(len(sas), 1)

    @defer.inlineCallbacks
    def test_monitorRelayed(self):
        """
        A monitor on the parent gets the workers' events.
        """
        one, two = fakeService(1), fakeService(1)
        pool, client = yield self.workers([one, two])
        got = []
        pool.events.subscribe(got.append)
        # The workers' monitor subscriptions, as monitorWorkers makes them.
        for slot in pool.slots:
            yield slot.control.callRemote(C.Monitor)
        one.events.publish("ike-up", spiI="0x01", policy="p")
        two.events.publish("ike-down", spiI="0x02", policy="p")
        while len(got) < 2:
            yield deferLater(0.01)
        self.assertEqual(sorted(e["kind"] for e in got), ["ike-down", "ike-up"])


def deferLater(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


class WalkLimitTests(SynchronousTestCase):
    def test_walksBounded(self):
        """
        The parent keeps at most MAX_WALKS unfinished show sa walks.
        """
        pool = FakePool([])
        for i in range(MAX_WALKS + 5):
            pool.startWalk([i])
        self.assertEqual(len(pool.walks), MAX_WALKS)
        self.assertEqual(min(pool.walks), 6)


class SlotKernelTests(SynchronousTestCase):
    def test_flushRemovesOwnOnly(self):
        """
        One worker's flush removes the SAs and flows it installed; the other
        worker's stay.
        """
        from tests.test_privsep_commands import aFlow, anSA

        kernel = DecoupledKernel()
        one, two = SlotKernel(kernel), SlotKernel(kernel)
        one.addSA(anSA(spi=0x1001))
        one.addSA(anSA(spi=0x1003))
        self.successResultOf(one.updateSA(anSA(spi=0x1003), anSA(spi=0x1003, reqid=8)))
        two.addSA(anSA(spi=0x2002))
        one.addFlow(aFlow())
        self.assertTrue(one.owns(0x1001))
        self.assertFalse(one.owns(0x2002))
        self.assertEqual(len(kernel.sas), 3)
        self.successResultOf(one.flush())
        self.assertEqual([sa.spi for sa in kernel.sas.values()], [0x2002])
        self.assertEqual(kernel.flows, [])
        self.assertFalse(one.owns(0x1001))
        self.assertEqual(kernel.name, one.name)

    def test_ownsWithoutWalking(self):
        """
        L{SlotKernel.owns} (which routes every datapath expire) looks the
        SPI up instead of walking the worker's SAs, and stays right as SAs
        come and go: two SAs with one SPI (to two destinations), an
        update, a delete, a detach, a flush.
        """
        from ipaddress import ip_address

        from tests.test_privsep_commands import anSA

        class NoWalk(dict):
            def __iter__(self):
                raise AssertionError("owns() walked every SA of the worker")

        kernel = DecoupledKernel()
        one = SlotKernel(kernel)
        one.sas = NoWalk()
        first, second = anSA(spi=0x1001), anSA(spi=0x1001, destination=ip_address("192.0.2.9"))
        one.addSA(first)
        one.addSA(second)
        one.addSA(anSA(spi=0x1003))
        self.assertTrue(one.owns(0x1001))
        self.successResultOf(one.deleteSA(first))
        self.assertTrue(one.owns(0x1001))
        self.successResultOf(one.detachSA(second))
        self.assertFalse(one.owns(0x1001))
        self.successResultOf(one.updateSA(anSA(spi=0x1003), anSA(spi=0x1005)))
        self.assertEqual((one.owns(0x1003), one.owns(0x1005)), (False, True))
        # An SA the worker never installed changes nothing.
        one.deleteSA(anSA(spi=0x1005, destination=ip_address("192.0.2.77"))).addErrback(lambda f: None)
        self.assertTrue(one.owns(0x1005))
        self.successResultOf(one.flush())
        self.assertFalse(one.owns(0x1005))


class WorkerOptionsTests(SynchronousTestCase):
    def test_budgetsShared(self):
        """
        Each of N workers gets 1/N (rounded up) of the daemon-wide budgets,
        given or default; the per-peer and per-identity limits and the rest
        stay as they are.
        """
        from ikedtx.privsep.pool import workerOptions

        given = {"half-open-max": 1000, "cookie-threshold": 0, "half-open-per-peer": 32, "ike-sas-per-id": 100,
                 "verbose": True}
        options = workerOptions(given, 3)
        self.assertEqual((options["half-open-max"], options["cookie-threshold"]), (334, 0))
        self.assertEqual(options["response-cache-max"], -(-(256 << 20) // 3))
        self.assertEqual((options["half-open-per-peer"], options["ike-sas-per-id"], options["verbose"]),
                         (32, 100, True))
        self.assertEqual(given["half-open-max"], 1000)
        self.assertEqual(workerOptions({}, 2)["cookie-threshold"], 32)


class PoolRefusesDAETests(SynchronousTestCase):
    """
    C{radius dae listen} with more than one worker: a Disconnect-Request
    names a session any worker may hold, and no worker is given the DAE
    sockets, so the daemon refuses to start instead of binding a socket
    nobody reads.
    """

    def test_refused(self):
        from ikedtx.config import parseConfig
        from ikedtx.service import StartupError

        config = parseConfig("radius dae listen on 127.0.0.1 port 3799\n")
        pool = WorkerPoolService(config, {"ike-workers": "2", "kernel": "decoupled"})
        pool.exitOnStartupError = False
        error = self.assertRaises(StartupError, pool.startService)
        self.assertEqual(str(error), "radius dae listen needs --ike-workers 1 (it has 2)")
        self.assertEqual((pool.slots, pool._dae), ([], {}))

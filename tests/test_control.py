"""
Tests for L{ikedtx.control}: the AMP control socket, its Python clients
(Twisted and blocking), paging of C{show sa}, and refused commands.
"""

import os
from types import SimpleNamespace

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.control import commands, sync
from ikedtx.control.client import connectControl
from ikedtx.control.events import EventHub
from ikedtx.control.server import ControlFactory
from ikedtx.core.sa import IKESA, IKEState


def fakeService(count):
    policy = SimpleNamespace(name="p")
    sas = {}
    for i in range(count):
        sa = IKESA(True, i.to_bytes(8, "big"), (i + 1).to_bytes(8, "big"), policy, ("192.0.2.1", 500),
                   ("192.0.2.2", 500), 0)
        sa.state = IKEState.VALID
        sas[sa.localSPI] = sa
    core = SimpleNamespace(ikeSAs=sas)
    return SimpleNamespace(core=core, runner=None, kernel=None, events=EventHub(), credentials=None,
                           reload=lambda: (_ for _ in ()).throw(ValueError("f: 1: syntax error")))


class ControlSocketTests(TestCase):
    def listen(self, service):
        path = os.path.join("/tmp", "ikedtx-control-%d-%d.sock" % (os.getpid(), id(service)))
        port = reactor.listenUNIX(path, ControlFactory(service))
        self.addCleanup(port.stopListening)
        return path

    @defer.inlineCallbacks
    def test_showSaPages(self):
        """
        show sa lists every IKE SA, however many: an AMP value holds only
        64 KiB, so the clients ask a page at a time.
        """
        path = self.listen(fakeService(420))
        client = yield connectControl(reactor, path)
        self.addCleanup(client.close)
        sas = yield client.showSA()
        self.assertEqual(len(sas), 420)
        self.assertEqual(len({sa["spiI"] for sa in sas}), 420)
        blocking = yield threads.deferToThread(sync.showSA, path)
        self.assertEqual([sa["spiI"] for sa in blocking], [sa["spiI"] for sa in sas])

    @defer.inlineCallbacks
    def test_refused(self):
        """
        A command the daemon refuses reaches the blocking client as a
        ControlError with the daemon's reason.
        """
        from ikedtx.control.commands import Reload

        path = self.listen(fakeService(0))
        error = yield self.assertFailure(threads.deferToThread(sync.callRemote, path, Reload), sync.ControlError)
        self.assertIn("syntax error", str(error))

    def test_noDaemon(self):
        """
        A socket nobody listens on is a ControlError, not a traceback.
        """
        from ikedtx.control.commands import ShowSA

        self.assertRaises(sync.ControlError, sync.callRemote, "/nonexistent/ikedtx.sock", ShowSA)


class DroppedCommandTests(SynchronousTestCase):
    """
    A daemon that closes the connection without answering (a privsep
    worker killed after it accepted it; SO_PEERCRED refusing the client):
    the blocking client sends a read-only command once more, and tells
    another may not have run (the live case: tests.test_privsep_daemon
    test_commandOfKilledWorker).
    """

    def dropping(self):
        """
        A control socket whose every connection is closed unanswered once
        its request arrived; the list of the requests' command names.
        """
        import socket
        import threading

        path = os.path.join(self.mktemp() + ".d", "c.sock")
        os.makedirs(os.path.dirname(path))
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(path)
        listening.listen(8)
        listening.settimeout(10.0)
        seen = []

        def serve():
            while True:
                try:
                    connection, _ = listening.accept()
                except OSError:
                    return
                with connection:
                    seen.append(sync._readBox(connection)[b"_command"])

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()

        def stop():
            listening.shutdown(socket.SHUT_RDWR)
            listening.close()
            thread.join(10.0)

        self.addCleanup(stop)
        return path, seen

    def test_readOnlySentAgain(self):
        """
        C{show stats} goes twice, then fails as a dropped connection does.
        """
        path, seen = self.dropping()
        error = self.assertRaises(sync.ControlError, sync.showStats, path, timeout=10.0)
        self.assertEqual(seen, [b"ShowStats", b"ShowStats"])
        self.assertIn("closed the connection without answering (it serves only root", str(error))

    def test_changeNotSentAgain(self):
        """
        C{reset sa} goes once; the error says it may not have run.
        """
        path, seen = self.dropping()
        error = self.assertRaises(sync.ControlError, sync.reset, path, "sa", timeout=10.0)
        self.assertEqual(seen, [b"Reset"])
        self.assertIn("the command may not have run", str(error))


class PagingTests(SynchronousTestCase):
    """
    L{commands.showSAPages}: the one paging loop both clients drive.
    """

    def drive(self, answers, pageSize=2):
        pages = commands.showSAPages(pageSize)
        requests = [next(pages)]
        for answer in answers:
            try:
                requests.append(pages.send(answer))
            except StopIteration as done:
                return requests, done.value
        self.fail("the pages did not end: %r" % (requests,))

    def test_pages(self):
        """
        Each request starts where the last page ended; the loop ends when
        C{total} SAs have come.
        """
        requests, sas = self.drive([{"sas": [1, 2], "total": 5}, {"sas": [3, 4], "total": 5},
                                    {"sas": [5], "total": 5}])
        self.assertEqual(requests, [{"offset": 0, "limit": 2}, {"offset": 2, "limit": 2}, {"offset": 4, "limit": 2}])
        self.assertEqual(sas, [1, 2, 3, 4, 5])

    def test_shrinking(self):
        """
        SAs deleted while paging: an empty page ends the loop with what
        came.
        """
        requests, sas = self.drive([{"sas": [1, 2], "total": 5}, {"sas": [], "total": 1}])
        self.assertEqual((len(requests), sas), (2, [1, 2]))

    def test_cursor(self):
        """
        An answer with a C{cursor} is a walk: each request hands back the
        cursor and the C{next} position; an answer without C{next} ends
        the walk (however many SAs came, since SAs come and go).
        """
        requests, sas = self.drive([{"sas": [1, 2], "total": 5, "cursor": 7, "next": 2},
                                    {"sas": [3], "total": 4, "cursor": 7, "next": 5},
                                    {"sas": [], "total": 4, "cursor": 7, "next": 7},
                                    {"sas": [6], "total": 9, "cursor": 7}])
        self.assertEqual(requests, [{"offset": 0, "limit": 2}, {"cursor": 7, "offset": 2, "limit": 2},
                                    {"cursor": 7, "offset": 5, "limit": 2}, {"cursor": 7, "offset": 7, "limit": 2}])
        self.assertEqual(sas, [1, 2, 3, 6])

    def test_defaultPage(self):
        """
        By default a page is L{commands.SHOW_SA_PAGE} SAs.
        """
        self.assertEqual(next(commands.showSAPages()), {"offset": 0, "limit": commands.SHOW_SA_PAGE})


class DeclaredAttributesTests(SynchronousTestCase):
    """
    L{ikedtx.control.operations.Operations} reads the service's runner and
    events and the credential store's contents as declared attributes: a
    service or store without one is a bug that shows, not an empty answer.
    """

    def test_serviceDeclaresThem(self):
        from ikedtx.config import parseConfig
        from ikedtx.service import IkedService

        service = IkedService(parseConfig(""), {})
        self.assertEqual((service.runner, service.credentials), (None, None))
        self.assertIsNotNone(service.events)

    def test_missingEventsShows(self):
        from ikedtx.control.operations import Operations

        service = SimpleNamespace(core=SimpleNamespace(counters=SimpleNamespace(items=lambda: []), ikeSAs={},
                                                       passive=False), runner=None)
        self.assertRaises(AttributeError, Operations(service).stats)

    def test_missingStoreAttributeShows(self):
        from ikedtx.control.operations import Operations

        store = SimpleNamespace(trustedCertificates=[], certificates=[], crls=[], privateKey=None,
                                trustedPublicKeys={}, root="/etc/iked")
        service = SimpleNamespace(credentials=store)
        self.assertRaises(AttributeError, Operations(service).certstore)
        store.loadErrors = [("ca/x.pem", "not a certificate")]
        self.assertEqual(Operations(service).certstore(),
                         {"root": "/etc/iked", "entries": [], "errors": ["ca/x.pem: not a certificate"]})


class CountingTable(dict):
    """
    An SA table that counts the SAs looked at: each key or value iterated
    and each lookup.
    """

    touched = 0

    def _counted(self, items):
        for item in items:
            self.touched += 1
            yield item

    def __iter__(self):
        return self._counted(dict.__iter__(self))

    def keys(self):
        return list(self._counted(dict.keys(self)))

    def values(self):
        return self._counted(dict.values(self))

    def items(self):
        return self._counted(dict.items(self))

    def get(self, key, default=None):
        self.touched += 1
        return dict.get(self, key, default)

    def __getitem__(self, key):
        self.touched += 1
        return dict.__getitem__(self, key)


def spiOf(i):
    return i.to_bytes(8, "big")


def addSA(table, i):
    sa = IKESA(True, spiOf(i), spiOf(i + 1), SimpleNamespace(name="p"), ("192.0.2.1", 500), ("192.0.2.2", 500), 0)
    sa.state = IKEState.VALID
    table[sa.localSPI] = sa


class ShowSAWalkTests(SynchronousTestCase):
    """
    C{show sa} over many IKE SAs: a page costs the daemon the SAs of that
    page (not a listing of the whole table per page), and the pages hold
    every SA that lived through the walk exactly once, even as SAs come
    and go between pages.
    """

    count = 20000

    def setUp(self):
        from ikedtx.control import server

        self.service = fakeService(0)
        self.table = self.service.core.ikeSAs = CountingTable()
        for i in range(self.count):
            addSA(self.table, i * 2)
        self.protocol = ControlFactory(self.service).buildProtocol(None)
        self.rendered = 0
        describe = server.describeIkeSA

        def counting(*args):
            self.rendered += 1
            return describe(*args)

        self.patch(server, "describeIkeSA", counting)

    def walk(self, betweenPages=lambda page: None):
        """
        Drive L{commands.showSAPages} against the responder; every SA and,
        per page, C{(SAs on it, SAs looked at, SAs rendered)}.
        """
        pages = commands.showSAPages()
        request = next(pages)
        costs = []
        self.pageOf = {}
        while True:
            touched, rendered = self.table.touched, self.rendered
            response = self.protocol.showSA(**request)
            costs.append((len(response["sas"]), self.table.touched - touched, self.rendered - rendered))
            for sa in response["sas"]:
                self.pageOf.setdefault(bytes.fromhex(sa["spiI"]), len(costs))
            betweenPages(len(costs))
            try:
                request = pages.send(response)
            except StopIteration as done:
                return done.value, costs

    def test_pageCostsItsSAs(self):
        """
        After the first page (which notes the table's keys once), a page
        looks at and renders only its own SAs; the pages hold every SA
        once.
        """
        sas, costs = self.walk()
        self.assertEqual(sorted(sa["spiI"] for sa in sas), sorted(spi.hex() for spi in self.table))
        self.assertEqual(len(costs), self.count // commands.SHOW_SA_PAGE)
        first, rest = costs[0], costs[1:]
        self.assertEqual(first, (commands.SHOW_SA_PAGE, self.count + commands.SHOW_SA_PAGE, commands.SHOW_SA_PAGE))
        self.assertEqual(set(rest), {(commands.SHOW_SA_PAGE,) * 3})
        self.assertEqual(len(self.protocol.walks), 0)

    def test_churn(self):
        """
        SAs deleted between pages (ahead of the walk and behind it) and
        SAs added meanwhile: no SA comes twice, every SA that lived through
        the walk comes, no SA deleted before its page comes.
        """
        deleted = {}
        lived = set(self.table)
        step = self.count // 100

        def churn(page):
            if page % 10:
                return
            for i in range(page * 7, self.count, step):
                spi = spiOf(i * 2)
                if self.table.pop(spi, None) is not None:
                    deleted[spi] = page
            for i in range(3):
                addSA(self.table, (self.count + page * 3 + i) * 2 + 1)

        sas, costs = self.walk(churn)
        spis = [bytes.fromhex(sa["spiI"]) for sa in sas]
        self.assertEqual(len(spis), len(set(spis)))
        self.assertEqual(lived - set(deleted) - set(spis), set())
        self.assertEqual(set(spis) - lived, set())
        # An SA deleted after page N was served comes on page N at the latest.
        late = {spi: (page, self.pageOf[spi]) for spi, page in deleted.items()
                if spi in self.pageOf and self.pageOf[spi] > page}
        self.assertEqual(late, {})
        # Some SAs were deleted ahead of the walk (and left out), some behind.
        self.assertTrue(set(deleted) - set(spis))
        self.assertTrue(set(deleted) & set(spis))
        # A page skipping deleted SAs still costs no more than its SAs and
        # those skipped.
        self.assertLessEqual(max(touched for _, touched, _ in costs[1:]), commands.SHOW_SA_PAGE + len(deleted))

    def test_unknownCursor(self):
        """
        A cursor that is no walk in progress (ended, dropped, made up) is
        a BadArgument that says to list again.
        """
        error = self.assertRaises(commands.BadArgument, self.protocol.showSA, cursor=12345, offset=50)
        self.assertIn("list again", str(error))

    def test_walksBounded(self):
        """
        Walks that never finish do not pile up: the socket keeps at most
        C{maxWalks}, dropping the least recently paged.
        """
        cursors = [self.protocol.showSA()["cursor"] for _ in range(self.protocol.walks.maxWalks + 3)]
        self.assertEqual(len(self.protocol.walks), self.protocol.walks.maxWalks)
        self.assertRaises(commands.BadArgument, self.protocol.showSA, cursor=cursors[0], offset=50)
        self.assertEqual(len(self.protocol.showSA(cursor=cursors[-1], offset=50)["sas"]), commands.SHOW_SA_PAGE)

    def test_positional(self):
        """
        A request with an offset and no cursor (a client that does not
        walk) still lists from that position of the table as it is now.
        """
        response = self.protocol.showSA(offset=100, limit=10)
        self.assertEqual([sa["spiI"] for sa in response["sas"]], [spiOf(i * 2).hex() for i in range(100, 110)])
        self.assertNotIn("cursor", response)
        self.assertEqual(response["total"], self.count)

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

"""
Tests for L{ikedtx.control}: the AMP control socket, its Python clients
(Twisted and blocking), paging of C{show sa}, and refused commands.
"""

import os
from types import SimpleNamespace

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from ikedtx.control import sync
from ikedtx.control.client import connectControl
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
    return SimpleNamespace(core=core, reload=lambda: (_ for _ in ()).throw(ValueError("f: 1: syntax error")))


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

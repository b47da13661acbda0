# -*- test-case-name: tests.test_control -*-
"""
The Python client of the control socket (what ikectl uses).

    d = connectControl(reactor, "/var/run/iked.sock")
    d.addCallback(lambda client: client.showSA())
"""

from twisted.internet import defer
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.protocols import amp

from ikedtx.control import commands as C


class ControlClient:
    """
    A connected control socket.

    @ivar protocol: the L{amp.AMP} connection.
    """

    def __init__(self, protocol):
        self.protocol = protocol

    @defer.inlineCallbacks
    def showSA(self):
        """
        Fire with a list of dicts, one per IKE SA (see L{C.ShowSA}), asked
        for a page at a time.
        """
        pages = C.showSAPages()
        request = next(pages)
        while True:
            response = yield self.protocol.callRemote(C.ShowSA, **request)
            try:
                request = pages.send(response)
            except StopIteration as done:
                return done.value

    def initiate(self, policy):
        """
        Fire with C{(spiI, spiR)} of the IKE SA once it is up.
        """
        return self.protocol.callRemote(C.Initiate, policy=policy).addCallback(lambda r: (r["spiI"], r["spiR"]))

    def reload(self):
        return self.protocol.callRemote(C.Reload)

    def close(self):
        self.protocol.transport.loseConnection()


def connectControl(reactor, path):
    """
    Connect to the control socket at C{path}; fire with a L{ControlClient}.
    """
    endpoint = UNIXClientEndpoint(reactor, path)
    return connectProtocol(endpoint, amp.AMP()).addCallback(ControlClient)

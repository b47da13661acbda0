# -*- test-case-name: tests.test_control -*-
"""
The Deferred-based client of the control socket: one method per command
of L{ikedtx.control.commands}.

    d = connectControl(reactor, "/var/run/iked.sock")
    d.addCallback(lambda client: client.showSA())

Errors arrive as the command's typed exceptions (L{C.NoSuchSA},
L{C.ConfigRejected}, ...), since AMP maps them back by code.
"""

from twisted.internet import defer
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.protocols import amp

from ikedtx.control import commands as C


class _ClientProtocol(amp.AMP):
    """
    The client's end: it receives monitor L{C.Event}s.

    @ivar eventReceived: called with each event dict, or L{None}.
    """

    eventReceived = None

    @C.Event.responder
    def event(self, **fields):
        if self.eventReceived is not None:
            self.eventReceived({k: v for k, v in fields.items() if v is not None})
        return {}


class ControlClient:
    """
    A connected control socket.

    @ivar protocol: the L{amp.AMP} connection.
    """

    def __init__(self, protocol):
        self.protocol = protocol

    def call(self, command, **arguments):
        return self.protocol.callRemote(command, **arguments)

    @defer.inlineCallbacks
    def showSA(self):
        """
        Fire with a list of dicts, one per IKE SA (see L{C.ShowSA}), asked
        for a page at a time.
        """
        pages = C.showSAPages(C.SHOW_SA_PACKED_PAGE, packed=True)
        request = next(pages)
        while True:
            response = yield self.call(C.ShowSA, **request)
            try:
                request = pages.send(response)
            except StopIteration as done:
                return done.value

    def showStats(self):
        return self.call(C.ShowStats)

    @defer.inlineCallbacks
    def showCertstore(self):
        """
        Fire with the store's C{root}, C{errors} and every one of its
        C{entries}, asked for a page at a time.
        """
        pages = C.showSAPages(C.SHOW_CERTSTORE_PAGE, key="entries")
        request = next(pages)
        while True:
            response = yield self.call(C.ShowCertstore, **request)
            try:
                request = pages.send(response)
            except StopIteration as done:
                return {"root": response["root"], "errors": response["errors"], "entries": done.value}

    def reload(self):
        return self.call(C.Reload)

    def load(self, filename):
        return self.call(C.Load, file=filename)

    def reset(self, what, ikeId=None):
        """
        Fire with how many IKE SAs were deleted.
        """
        arguments = {"what": what}
        if ikeId is not None:
            arguments["ikeId"] = ikeId
        return self.call(C.Reset, **arguments).addCallback(lambda r: r["count"])

    def active(self):
        return self.call(C.SetMode, mode="active")

    def passive(self):
        return self.call(C.SetMode, mode="passive")

    def couple(self):
        return self.call(C.SetMode, mode="couple")

    def decouple(self):
        return self.call(C.SetMode, mode="decouple")

    def log(self, level):
        return self.call(C.SetLog, level=level)

    def monitor(self, eventReceived):
        """
        Call C{eventReceived} with each event dict from now on; fires once
        the daemon has subscribed this connection.
        """
        self.protocol.eventReceived = eventReceived
        return self.call(C.Monitor)

    def initiate(self, policy):
        """
        Fire with C{(spiI, spiR)} of the IKE SA once it is up.
        """
        return self.call(C.Initiate, policy=policy).addCallback(lambda r: (r["spiI"], r["spiR"]))

    def createChildSA(self, spiI):
        return self.call(C.CreateChildSA, spiI=spiI).addCallback(lambda r: (r["spiIn"], r["spiOut"]))

    def deleteChildSA(self, spiIn):
        return self.call(C.DeleteChildSA, spiIn=spiIn)

    def deleteIkeSA(self, spiI):
        return self.call(C.DeleteIkeSA, spiI=spiI)

    def close(self):
        self.protocol.transport.loseConnection()


def connectControl(reactor, path):
    """
    Connect to the control socket at C{path}; fire with a L{ControlClient}.
    """
    endpoint = UNIXClientEndpoint(reactor, path)
    return connectProtocol(endpoint, _ClientProtocol()).addCallback(ControlClient)

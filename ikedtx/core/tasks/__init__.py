# -*- test-case-name: tests.test_core_taskmanager -*-
"""
The tasks of IKEv2 exchanges (after strongSwan's libcharon sa/ikev2/tasks,
sans IO), one module per concern.

A task is made for one role and keeps it. As initiator the task manager
calls C{prepareI} once (a task asks the datapath for SPIs there), then
C{buildI} to add the task's payloads to a request and C{processI} with the
response; as responder C{processR} with the request and C{buildR} to add
to the response. Each of C{processI} and C{buildR} answers L{DONE} (the
task is finished: C{done} is called), L{MORE} (the task takes part in
another round, of the exchange type its C{exchangeType} then names) or,
for C{processI} only, L{RETRY} (the round is sent again from scratch with
the same Message ID). When an exchange fails, every task of it gets
C{failed}.

Errors: an initiator task raises L{NegotiationFailed} to fail its exchange;
a responder task raises L{RemoteProtocolError} to answer with its Notify -
instead of the whole response when the task is C{essential}, next to the
other tasks' payloads when it is not (a Child SA refused in IKE_AUTH).

The responder tasks of a request are made by exchange type, in
L{ikedtx.core.tasks.registry}.
"""

from twisted.logger import Logger

from ikedtx.core.actions import ReleaseSpi, RequestDone
from ikedtx.wire.constants import ProtocolId

DONE = "done"
MORE = "more"
RETRY = "retry"

# Queue priorities of initiator exchanges (lower first): a Delete goes
# before a rekey, a rekey before a liveness check, that before the rest.
PRIORITY_DELETE = 0
PRIORITY_REKEY = 1
PRIORITY_LIVENESS = 2
PRIORITY_OTHER = 3


class Task:
    """
    One concern of an exchange, for one role.

    @cvar exchangeType: the exchange the task takes part in next.
    @cvar priority: its queue priority as initiator.
    @ivar initiator: whether it runs as the initiator of the exchange.
    @ivar requestId: the command waiting for it, or L{None}.
    @ivar status: its answer of the last round (L{DONE}, L{MORE}).
    @ivar prepared: C{prepareI} was called.
    @ivar essential: as responder, whether its refusal is the whole response.
    @ivar refusal: as responder, the L{RemoteProtocolError} it raised in the
        current round, or L{None}.
    @ivar closeAfterResponse: as responder, a reason to delete the IKE SA
        once the response is sent, or L{None}.
    @ivar spis: C{{name: spi}} the datapath allocated for it.
    @ivar spiError: why an SPI allocation failed, or L{None}.
    """

    exchangeType = None
    priority = PRIORITY_OTHER
    _log = Logger()

    # The starting values of the instance variables that are not
    # containers (a dozen tasks are made per IKE SA: class attributes
    # cost nothing until a task sets its own).
    status = None
    prepared = False
    essential = True
    refusal = None
    # An initiator task that held the exchange (L{holding}) and, on
    # what it waited for, fails it: the NegotiationFailed.
    holdFailure = None
    closeAfterResponse = None
    spiError = None

    def __init__(self, initiator, requestId=None):
        self.initiator = initiator
        self.requestId = requestId
        self.spis = {}
        self._spiTokens = {}
        # {name: (protocol, source, destination)} of each SPI asked for.
        self._spiTargets = {}

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, "I" if self.initiator else "R")

    # The datapath

    @property
    def waiting(self):
        """
        Whether the task waits for an SPI from the datapath.
        """
        return bool(self._spiTokens)

    @property
    def holding(self):
        """
        Whether, as responder, the task waits for something the tasks after
        it in the round depend on (the peer's certificate status before
        the IKE SA is authenticated): they read the request only once it
        no longer holds. A holding task is L{waiting} too.
        """
        return False

    def requestSPI(self, core, ikeSA, name, protocol, source, destination):
        """
        Ask the datapath for an inbound SPI, known as C{name} in L{spis}
        once allocated.
        """
        token = core.allocateSPI(self, ikeSA, protocol, source, destination)
        self._spiTokens[token] = name
        self._spiTargets[name] = (protocol, source, destination)

    def releaseSPIs(self, core):
        """
        Give the SPIs in L{spis} back to the datapath (no SA was installed
        with them), the IPcomp CPI with the SPI it came with.
        """
        spis, self.spis = self.spis, {}
        cpi = spis.pop("cpi", None)
        for name, spi in spis.items():
            target = self._spiTargets.get(name)
            if target is None or target[0] == ProtocolId.NONE:
                continue
            protocol, source, destination = target
            core.emit(ReleaseSpi(protocol, spi, source, destination, cpi))
            cpi = None

    def releaseLateSPI(self, core, token, spi):
        """
        The SPI of C{token} came after the exchange was given up: give it
        back at once.
        """
        name = self._spiTokens.pop(token, None)
        target = self._spiTargets.get(name)
        if target is not None and target[0] != ProtocolId.NONE:
            core.emit(ReleaseSpi(target[0], spi, target[1], target[2]))

    def spiAllocated(self, token, spi):
        self.spis[self._spiTokens.pop(token)] = spi

    def spiAllocationFailed(self, token, error):
        self._spiTokens.pop(token)
        self.spiError = error

    # Initiator

    def prepareI(self, core, ikeSA):
        pass

    def buildI(self, core, ikeSA, payloads):
        pass

    def processI(self, core, ikeSA, message, payloads, local, remote):
        return DONE

    def staleResponse(self, core, ikeSA, message, payloads):
        """
        Whether C{message}, with the Message ID of our pending request,
        answers an earlier transmission of it (one we already acted on,
        such as an INVALID_KE_PAYLOAD before the restart it caused): it is
        then dropped and the request keeps waiting.
        """
        return False

    # Responder

    def processR(self, core, ikeSA, message, payloads):
        pass

    def buildR(self, core, ikeSA, payloads):
        return DONE

    def abandoned(self, core, ikeSA):
        """
        As responder, the exchange will not go on: the peer never sent its
        next round (L{ikedtx.core.taskmanager.TaskManager.abandonResponders})
        or the IKE SA is going away. Free what the task holds (SPIs in the
        datapath, key material).
        """

    # Both

    def sent(self, core, ikeSA, datagrams):
        pass

    def done(self, core, ikeSA):
        pass

    def failed(self, core, ikeSA, error):
        self.reportFailure(core, error)

    def succeeded(self, core, result):
        if self.requestId is not None:
            core.emit(RequestDone(self.requestId, result=result))
            self.requestId = None

    def reportFailure(self, core, error):
        if self.requestId is not None:
            core.emit(RequestDone(self.requestId, error=error))
            self.requestId = None

# -*- test-case-name: tests.test_privsep_commands -*-
"""
The parent's gate of a control socket while no worker serves it.

The parent binds and listens on each control socket; a ready worker
accepts its connections. Before the first worker is ready, and while a
dead one is being replaced, the parent accepts them instead and holds
each, unread, for up to L{ControlGate.wait} seconds: if a worker becomes
ready by then it gets the connection (its descriptor, over the AMP
channel, so it checks the client's own credentials and answers the
command); otherwise the parent answers every command on it with
C{COMMAND_FAILED} "the daemon is starting" or "the worker is
restarting".
"""

import socket

from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols import amp

from ikedtx.control.bounded import BoundedBoxes

#: Seconds a command waits for a worker before it is refused.
WAIT = 10.0

#: The most connections a gate holds; more are refused at once.
MAX_HELD = 64


class ControlGate:
    """
    One control socket's gate: a reader of the parent's listening socket
    while it is open (L{open}, L{handOff}).

    @ivar held: C{[(socket, timer)]}: the connections waiting for a worker.
    @ivar why: the refusal's reason ("the daemon is starting", ...).
    """

    _log = Logger()
    wait = WAIT

    def __init__(self, reactor, skt, path, readOnly, clock=None):
        self.reactor, self.skt, self.path, self.readOnly = reactor, skt, path, readOnly
        self.clock = clock or reactor
        self.held = []
        self.reading = False
        self.why = "the daemon is starting"

    def fileno(self):
        return self.skt.fileno()

    def logPrefix(self):
        return "ControlGate"

    def open(self, why):
        """
        Accept (and hold) the socket's connections: no worker serves it.
        """
        self.why = why
        if not self.reading:
            self.reading = True
            self.reactor.addReader(self)

    def handOff(self, adopt):
        """
        A worker is ready: it accepts from now on, and gets the held
        connections, each through C{adopt(skt, readOnly)} (a Deferred).
        """
        self.close()
        held, self.held = self.held, []
        if held:
            self._log.info("control socket {path}: {n} waiting command(s) go to the worker", path=self.path,
                           n=len(held))
        for skt, timer in held:
            timer.cancel()
            d = adopt(skt, self.readOnly)
            # The worker got it (and has its own descriptor); one that did
            # not (it died) waits for the next.
            d.addCallbacks(lambda _, skt=skt: skt.close(), lambda f, skt=skt: self._adoptFailed(skt))

    def _adoptFailed(self, skt):
        """
        The worker died while it took C{skt}: a connection whose request is
        still unread waits for the next worker; one the dead worker may
        have read is closed, so that its client sees it dropped unanswered
        (ikectl sends a read-only command again and says another may not
        have run) instead of waiting for an answer that cannot come.
        """
        try:
            unread = skt.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            unread = b""
        if unread:
            self._hold(skt)
            return
        self._log.info("control socket {path}: the worker died while it took a command: closed unanswered",
                       path=self.path)
        skt.close()

    def close(self):
        if self.reading:
            self.reading = False
            self.reactor.removeReader(self)

    def stop(self):
        """
        The daemon stops: the held connections are dropped.
        """
        self.close()
        held, self.held = self.held, []
        for skt, timer in held:
            timer.cancel()
            skt.close()

    def doRead(self):
        for _ in range(64):
            try:
                skt, _address = self.skt.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._log.warn("control socket {path}: {error}", path=self.path, error=e)
                return
            skt.setblocking(False)
            if len(self.held) >= MAX_HELD:
                self._refuse(skt)
            else:
                self._hold(skt)

    def _hold(self, skt):
        self.held.append((skt, self.clock.callLater(self.wait, self._refuse, skt)))

    def _refuse(self, skt):
        self.held = [held for held in self.held if held[0] is not skt]
        self._log.info("control socket {path}: a command waited {wait:g} s for the worker ({why}): refused",
                       path=self.path, wait=self.wait, why=self.why)
        factory = Factory.forProtocol(lambda: RefusingProtocol(self.why, self.clock, self.wait))
        try:
            self.reactor.adoptStreamConnection(skt.fileno(), socket.AF_UNIX, factory)
        except OSError:
            pass
        skt.close()

    def connectionLost(self, reason):
        self.reading = False


class RefusingProtocol(BoundedBoxes, amp.AMP):
    """
    Answers the connection's command with C{COMMAND_FAILED}: C{why}, and
    closes it (so too if none came within C{wait} seconds).
    """

    def __init__(self, why, clock, wait):
        amp.AMP.__init__(self)
        self.why, self.clock, self.wait = why, clock, wait
        self._timeout = None

    def connectionMade(self):
        amp.AMP.connectionMade(self)
        self._timeout = self.clock.callLater(self.wait, self.transport.loseConnection)

    def connectionLost(self, reason):
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        amp.AMP.connectionLost(self, reason)

    def ampBoxReceived(self, box):
        ask = box.get(b"_ask")
        if ask is None:
            return
        message = "%s: no worker serves commands yet; try again in a moment" % (self.why,)
        self.sendBox(amp.AmpBox(_error=ask, _error_code=b"COMMAND_FAILED",
                                _error_description=message.encode("utf-8")))
        self.transport.loseConnection()

# -*- test-case-name: tests.test_lab_harness -*-
"""
A way for a process running inside a namespace to report back to the test
that started it.

The test listens with L{ReportChannel} on a UNIX socket in its temporary
directory (path-named UNIX sockets work across network namespaces) and
passes L{ReportChannel.env} to the child. The child calls L{report} (or
writes one JSON object per line to the socket named by C{IKEDTX_LAB_REPORT}
with anything else: C{{"event": NAME, ...}}).

Test side::

    channel = ReportChannel(self.mktemp() + ".sock", self)
    proc = ns.spawnPython("ikedtx.testing.lab.udpecho", env=channel.env())
    ready = yield channel.expect("listening", timeout=5)

Child side::

    from ikedtx.testing.lab.report import report
    report("listening", port=500)
"""

import json
import os
import socket

from twisted.internet import defer, protocol
from twisted.protocols.basic import LineOnlyReceiver

ENV = "IKEDTX_LAB_REPORT"


def report(event, **data):
    """
    Child side: send one event to the test, synchronously. Does nothing when
    the process was not started with a report channel.
    """
    path = os.environ.get(ENV)
    if not path:
        return
    message = dict(data, event=event)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(json.dumps(message).encode() + b"\n")


class _ReportProtocol(LineOnlyReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        try:
            message = json.loads(line)
        except ValueError:
            message = {"event": "garbage", "line": line.decode("utf-8", "replace")}
        self.factory.channel._received(message)


class ReportChannel:
    """
    Test side: a listening UNIX socket collecting the events children send.

    @ivar path: the socket's path.
    @ivar events: every event received, in order (dicts with C{"event"}).
    """

    def __init__(self, path, testCase=None, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        from ._util import socketPath

        path = socketPath(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
        self.path = path
        self.events = []
        self._waiting = []
        factory = protocol.Factory.forProtocol(_ReportProtocol)
        factory.channel = self
        if os.path.exists(path):
            os.unlink(path)
        self._port = reactor.listenUNIX(path, factory)
        if testCase is not None:
            testCase.addCleanup(self.close)

    def env(self, base=None):
        """
        An environment (a copy of C{base}, by default this process's) that
        points a child at this channel.
        """
        environment = dict(os.environ if base is None else base)
        environment[ENV] = self.path
        return environment

    def _received(self, message):
        self.events.append(message)
        for entry in list(self._waiting):
            name, d, call = entry
            if message.get("event") == name:
                self._waiting.remove(entry)
                call.cancel()
                d.callback(message)

    def expect(self, event, timeout=10.0):
        """
        A L{Deferred} firing with the first event named C{event} (one that
        already arrived counts) or failing with L{LabError} after
        C{timeout} seconds.
        """
        from ._util import LabError

        for message in self.events:
            if message.get("event") == event:
                return defer.succeed(message)
        d = defer.Deferred()

        def expire():
            entry = [e for e in self._waiting if e[1] is d]
            if entry:
                self._waiting.remove(entry[0])
            d.errback(LabError("no %r report within %ss (got %r)" % (event, timeout, self.events)))

        call = self._reactor.callLater(timeout, expire)
        self._waiting.append((event, d, call))
        return d

    def close(self):
        for name, d, call in self._waiting:
            call.cancel()
        self._waiting = []
        return self._port.stopListening()

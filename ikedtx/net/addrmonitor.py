# -*- test-case-name: tests.test_net_addrmonitor -*-
"""
Local address events from the kernel (rtnetlink RTM_NEWADDR/RTM_DELADDR
over pyroute2), for MOBIKE (RFC 4555 3.8): each address added to or
removed from an interface of this host is passed to a receiver's
C{addressChanged(address, added)} (L{ikedtx.net.shell.CoreRunner}'s).
"""

from twisted.application.service import Service
from twisted.logger import Logger

RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100


def addressEvents(messages):
    """
    C{(address, added)} for each rtnetlink address message in C{messages}
    (pyroute2 messages or dicts of the same shape): the local address
    (IFA_LOCAL, else IFA_ADDRESS) of RTM_NEWADDR (added) and RTM_DELADDR
    (removed); other messages are skipped.
    """
    events = []
    for message in messages:
        kind = message.get("event")
        if kind not in ("RTM_NEWADDR", "RTM_DELADDR"):
            continue
        attrs = dict(message.get("attrs") or ())
        address = attrs.get("IFA_LOCAL") or attrs.get("IFA_ADDRESS")
        if address:
            events.append((address, kind == "RTM_NEWADDR"))
    return events


class AddressMonitor:
    """
    An rtnetlink socket subscribed to address events, read by the reactor.

    @ivar receiver: has C{addressChanged(address, added)}.
    """

    _log = Logger()

    def __init__(self, receiver, reactor, socketFactory=None):
        self.receiver = receiver
        self.reactor = reactor
        self._socketFactory = socketFactory
        self.socket = None

    def start(self):
        if self._socketFactory is None:
            from pyroute2 import IPRoute

            sock = IPRoute()
            sock.bind(groups=RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        else:
            sock = self._socketFactory()
        self.socket = sock
        self.reactor.addReader(self)

    def stop(self):
        sock, self.socket = self.socket, None
        if sock is not None:
            self.reactor.removeReader(self)
            sock.close()

    # IReadDescriptor

    def fileno(self):
        return self.socket.fileno() if self.socket is not None else -1

    def logPrefix(self):
        return "address monitor"

    def connectionLost(self, reason):
        self.socket = None

    def doRead(self):
        try:
            messages = self.socket.get()
        except Exception as e:
            self._log.warn("reading address events: {error}", error=e)
            return
        for address, added in addressEvents(messages):
            try:
                self.receiver.addressChanged(address, added)
            except Exception:
                self._log.failure("after the address event {address}", address=address)


class AddressMonitorService(Service):
    """
    Runs an L{AddressMonitor} for the parent L{ikedtx.service.IkedService}'s
    runner; a host without rtnetlink logs one warning and runs without
    MOBIKE address events.
    """

    _log = Logger()

    def __init__(self, reactor):
        self.reactor = reactor
        self.monitor = None
        self.setName("address monitor")

    def startService(self):
        Service.startService(self)
        monitor = AddressMonitor(self.parent.runner, self.reactor)
        try:
            monitor.start()
        except Exception as e:
            self._log.warn("no local address events (MOBIKE will not follow address changes): {error}", error=e)
            return
        self.monitor = monitor

    def stopService(self):
        Service.stopService(self)
        monitor, self.monitor = self.monitor, None
        if monitor is not None:
            monitor.stop()

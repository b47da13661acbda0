# -*- test-case-name: tests.test_net_addrmonitor -*-
"""
Local address events from the kernel (rtnetlink RTM_NEWADDR/RTM_DELADDR),
for MOBIKE (RFC 4555 3.8): each address added to or removed from an
interface of this host is passed to a receiver's
C{addressChanged(address, added)} (L{ikedtx.net.shell.CoreRunner}'s).

The socket is a plain C{AF_NETLINK} one read by L{addressMessages}, not
pyroute2's: importing pyroute2 costs about 7 MB of RSS, which a gateway
whose datapath needs no netlink (C{--kernel decoupled}, user space) need
not pay.
"""

import socket
import struct

from twisted.application.service import Service
from twisted.logger import Logger

RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100

NETLINK_ROUTE = 0
RTM_NEWADDR = 20
RTM_DELADDR = 21
IFA_ADDRESS = 1
IFA_LOCAL = 2

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_ADDRESS_SIZES = {socket.AF_INET: 4, socket.AF_INET6: 16}


def _align(n):
    return (n + 3) & ~3


def addressMessages(data):
    """
    The RTM_NEWADDR and RTM_DELADDR messages in one read from an rtnetlink
    socket, as the dicts L{addressEvents} reads (C{event}, C{attrs} with
    C{IFA_ADDRESS} and C{IFA_LOCAL} as text); other messages are skipped,
    and a truncated message ends the batch.
    """
    messages = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind = _NLMSGHDR.unpack_from(data, offset)[:2]
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        end = offset + length
        body = offset + _NLMSGHDR.size
        if kind in (RTM_NEWADDR, RTM_DELADDR) and body + _IFADDRMSG.size <= end:
            family = _IFADDRMSG.unpack_from(data, body)[0]
            attrs = []
            at = body + _IFADDRMSG.size
            while at + _RTATTR.size <= end:
                attrLength, attrType = _RTATTR.unpack_from(data, at)
                if attrLength < _RTATTR.size or at + attrLength > end:
                    break
                value = bytes(data[at + _RTATTR.size:at + attrLength])
                if attrType in (IFA_ADDRESS, IFA_LOCAL) and len(value) == _ADDRESS_SIZES.get(family):
                    attrs.append(("IFA_LOCAL" if attrType == IFA_LOCAL else "IFA_ADDRESS",
                                  socket.inet_ntop(family, value)))
                at += _align(attrLength)
            messages.append({"event": "RTM_NEWADDR" if kind == RTM_NEWADDR else "RTM_DELADDR", "attrs": attrs})
        offset += _align(length)
    return messages


class RouteSocket:
    """
    A non-blocking rtnetlink socket subscribed to multicast C{groups}, with
    the C{get()}, C{fileno()} and C{close()} L{AddressMonitor} uses.
    """

    def __init__(self, groups):
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                     NETLINK_ROUTE)
        try:
            self._socket.bind((0, groups))
        except OSError:
            self._socket.close()
            raise

    def fileno(self):
        return self._socket.fileno()

    def get(self):
        try:
            data = self._socket.recv(65536)
        except BlockingIOError:
            return []
        return addressMessages(data)

    def close(self):
        self._socket.close()


def addressEvents(messages):
    """
    C{(address, added)} for each rtnetlink address message in C{messages}
    (L{addressMessages}' dicts, or pyroute2 messages): the local address
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
            sock = RouteSocket(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
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

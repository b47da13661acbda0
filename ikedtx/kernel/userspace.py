# -*- test-case-name: tests.test_kernel_userspace -*-
"""
The user-space ESP datapath: an L{IKernel} for hosts whose kernel has no
ESP (containers, this lab), as strongSwan's kernel-libipsec.

Traffic for the remote side of each outbound flow is routed into a TUN
device (C{ipsec0}); each IP packet read from it is matched against the
outbound flows, protected with the outbound SA of the flow's reqid
(L{ikedtx.kernel.esp}), and sent to the peer in UDP from the IKE NAT-T
socket (RFC 3948), or as raw ESP (IP protocol 50) when the SA is not
encapsulated. ESP from peers comes back the same ways, is opened with the
inbound SA of its SPI, checked against that SA's selectors, and written
to the TUN device, where the host's stack receives the inner packet.

The provider counts bytes and packets per SA, raises soft and hard
expires (seconds from the reactor's clock, bytes from the counters), and
an acquire for outbound traffic that matches a flow with no SA yet.

Tunnel mode only, like libipsec: transport-mode SAs are refused.

Device and routing I/O sit behind L{ITunDevice} and L{IRouteTable} so that
the datapath runs in memory in tests.
"""

import errno
import functools
import os
import select
import socket
import struct
import threading
from collections import Counter
from ipaddress import ip_address, summarize_address_range

from twisted.internet.defer import fail, succeed
from twisted.python.failure import Failure
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from ikedtx.kernel import esp
from ikedtx.kernel.esp import EspError, EspSA
from ikedtx.kernel.interfaces import IKernel, KernelError, KernelSAUsage, KernelSelector, claimPosition
from ikedtx.wire.constants import ProtocolId

#: Next Header / IP protocol numbers the selectors look into.
_PORTED = frozenset((6, 17, 132, 136))
_ICMP = frozenset((1, 58))
_IPV6_EXTENSIONS = frozenset((0, 43, 60))

#: Drop reasons of the provider itself (the codec's are in L{esp}).
NO_SA = "no-sa"
NO_FLOW = "no-flow"
NO_TRANSPORT = "no-transport"
TUN_FULL = "tun-full"

#: How long an acquire for one reqid holds back the next (seconds).
ACQUIRE_HOLD = 5.0

IPPROTO_ESP = 50


class ITunDevice(Interface):
    """
    A TUN device: whole IP packets in and out (no packet information
    header).
    """

    name = Attribute("The interface name, e.g. C{ipsec0}.")

    def open():
        """
        Create or attach the device and bring it up; return its file
        descriptor (non-blocking), or L{None} if it has none (in memory).
        """

    def read():
        """
        One packet the host sent into the device, or L{None} when there is
        none now.
        """

    def write(packet):
        """
        Hand C{packet} to the host's stack as if it arrived on the device;
        return C{False} if it was dropped (the device's queue is full).
        """

    def close():
        """
        Close the device (it disappears with its routes).
        """


class IRouteTable(Interface):
    """
    The host's routing table, as far as the datapath needs it.
    """

    def addRoute(network, device, source):
        """
        Route C{network} (an C{ipaddress} network) through interface
        C{device}, with preferred source address C{source} (or L{None}).
        """

    def deleteRoute(network, device, source):
        """
        Remove the route that L{addRoute} added.
        """

    def localAddressIn(start, end):
        """
        An address of this host between C{start} and C{end} (C{ipaddress}
        objects), or L{None}.
        """


TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


@implementer(ITunDevice)
class TunDevice:
    """
    A Linux TUN device (C{/dev/net/tun}, C{TUNSETIFF} with C{IFF_TUN |
    IFF_NO_PI}), brought up with an MTU that leaves room for ESP in UDP.

    @ivar fd: the file descriptor while open.
    """

    _log = Logger()

    def __init__(self, name="ipsec0", mtu=1400, maxPacket=65535):
        self.name = name
        self.mtu = mtu
        self.maxPacket = maxPacket
        self.fd = None

    def open(self):
        import fcntl

        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", self.name.encode("ascii"), IFF_TUN | IFF_NO_PI))
            from pyroute2 import IPRoute

            self._noLinkLocal()
            with IPRoute() as ipr:
                index = ipr.link_lookup(ifname=self.name)[0]
                ipr.link("set", index=index, mtu=self.mtu, state="up")
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return fd

    def _noLinkLocal(self):
        # Without an IPv6 link-local address the host sends no router
        # solicitations or MLD reports into the tunnel; routes through the
        # device still work.
        try:
            with open("/proc/sys/net/ipv6/conf/%s/addr_gen_mode" % (self.name,), "w") as f:
                f.write("1")
        except OSError as e:
            self._log.debug("{name}: addr_gen_mode not set: {error}", name=self.name, error=e)

    def read(self):
        try:
            return os.read(self.fd, self.maxPacket)
        except BlockingIOError:
            return None

    def write(self, packet):
        try:
            os.write(self.fd, packet)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.ENOBUFS, errno.EINVAL):
                return False
            raise
        return True

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@implementer(IRouteTable)
class NetlinkRoutes:
    """
    Routes through pyroute2's C{IPRoute}, in table C{table}.
    """

    def __init__(self, table=254):
        self.table = table

    def _route(self, command, network, device, source):
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=device)[0]
            kwargs = dict(dst=str(network), oif=index, table=self.table)
            if source is not None:
                kwargs["prefsrc"] = str(source)
            ipr.route(command, **kwargs)

    def addRoute(self, network, device, source):
        self._route("replace", network, device, source)

    def deleteRoute(self, network, device, source):
        self._route("del", network, device, source)

    def localAddressIn(self, start, end):
        from pyroute2 import IPRoute

        family = socket.AF_INET6 if start.version == 6 else socket.AF_INET
        with IPRoute() as ipr:
            for message in ipr.get_addr(family=family):
                address = ip_address(message.get_attr("IFA_ADDRESS"))
                if start <= address <= end:
                    return address
        return None


class _Selector:
    """
    A L{KernelSelector} compiled for per-packet matching: integer bounds.
    """

    __slots__ = ("version", "low", "high", "protocol", "startPort", "endPort")

    def __init__(self, selector):
        self.version = selector.startAddress.version
        self.low = int(selector.startAddress)
        self.high = int(selector.endAddress)
        self.protocol = selector.ipProtocol
        self.startPort = selector.startPort
        self.endPort = selector.endPort

    def matches(self, version, address, protocol, port):
        if version != self.version or not self.low <= address <= self.high:
            return False
        if self.protocol and protocol != self.protocol:
            return False
        if port is None:
            # No port to see (not TCP/UDP/SCTP/ICMP, or a non-first fragment):
            # only a selector for any port matches (RFC 4301 4.4.1.1 OPAQUE).
            return self.startPort == 0 and self.endPort == 65535
        return self.startPort <= port <= self.endPort


_IPV4_HEADER = struct.Struct("!B5xHxB2xII")
_PORTS = struct.Struct("!HH")
_FRAGMENT = struct.Struct("!H")
_SPI = struct.Struct("!I")
_NON_ESP_MARKER = bytes(4)


def parsePacket(packet):
    """
    C{(version, source, destination, protocol, sourcePort,
    destinationPort)} of the IP packet C{packet}, addresses as integers and
    ports L{None} where there are none; L{None} if it is not a whole IPv4 or
    IPv6 header.
    """
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            return None
        first, fragment, protocol, source, destination = _IPV4_HEADER.unpack_from(packet)
        offset = (first & 0x0F) * 4
        if offset < 20 or len(packet) < offset:
            return None
        if fragment & 0x1FFF:
            return 4, source, destination, protocol, None, None
    elif version == 6:
        if len(packet) < 40:
            return None
        protocol = packet[6]
        source = int.from_bytes(packet[8:24], "big")
        destination = int.from_bytes(packet[24:40], "big")
        offset = 40
        while protocol in _IPV6_EXTENSIONS and len(packet) >= offset + 2:
            protocol, offset = packet[offset], offset + (packet[offset + 1] + 1) * 8
        if protocol == 44:
            # A fragment header: the ports are in the first fragment only.
            if len(packet) < offset + 8:
                return None
            protocol = packet[offset]
            if _FRAGMENT.unpack_from(packet, offset + 2)[0] & 0xFFF8:
                return version, source, destination, protocol, None, None
            offset += 8
    else:
        return None
    if protocol in _PORTED and len(packet) >= offset + 4:
        sourcePort, destinationPort = _PORTS.unpack_from(packet, offset)
    elif protocol in _ICMP and len(packet) >= offset + 2:
        # RFC 7296 3.13.1: ICMP type and code in the port field.
        sourcePort = destinationPort = (packet[offset] << 8) | packet[offset + 1]
    else:
        sourcePort = destinationPort = None
    return version, source, destination, protocol, sourcePort, destinationPort


#: How many packet headers (L{parsePacket}'s tuples) the flow and selector
#: caches remember before they start again.
CACHE_SIZE = 4096


class _InstalledSA:
    """
    One installed SA: its record, codec, counters and lifetime timers.
    """

    __slots__ = ("sa", "codec", "bytes", "packets", "installed", "lastUsed", "timers", "softDone", "selectors",
                 "local", "remote", "allowed", "segments", "spent")

    def __init__(self, sa, codec, now):
        self.sa = sa
        self.codec = codec
        self.bytes = 0
        self.packets = 0
        self.installed = now
        self.lastUsed = None
        self.timers = []
        self.softDone = False
        self.selectors = [(_Selector(ours), _Selector(theirs)) for ours, theirs in sa.selectors]
        # Inbound: the headers (parsePacket tuples) seen to match the
        # selectors, so that a stream's packets are checked once.
        self.allowed = set()
        # Outbound: whether sealed packets may leave in one UDP GSO send.
        self.segments = True
        # Inbound: the hard byte lifetime was reached in the inbound thread
        # (nothing more is opened while the reactor's thread removes it).
        self.spent = False
        self._endpoints()

    def _endpoints(self):
        sa = self.sa
        if sa.encapsulation is not None:
            self.local = (str(sa.source), sa.encapsulation[0])
            self.remote = (str(sa.destination), sa.encapsulation[1])
        else:
            self.local = (str(sa.source), 0)
            self.remote = (str(sa.destination), 0)


class _OutFlow:
    __slots__ = ("flow", "source", "destination", "routes")

    def __init__(self, flow):
        self.flow = flow
        self.source = _Selector(flow.source)
        self.destination = _Selector(flow.destination)
        self.routes = []


def _now(f, *args, **kwargs):
    """
    Call C{f} now: what C{_later} is without an outbound thread.
    """
    f(*args, **kwargs)


def _locked(method):
    """
    Run C{method} holding the provider's locks, the outbound one and then
    the inbound one (see the outbound and inbound threads).
    """

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock, self._inLock:
            return method(self, *args, **kwargs)

    return locked


class _InboundLogger:
    """
    The logger of an inbound SA's codec while the inbound thread runs: in
    that thread a debug line waits in the provider's batch of lines for
    the reactor's thread (L{UserspaceKernel._inboundDebug}) and a failure
    goes there at once (its exception captured here); in the reactor's
    thread (raw ESP, the IKE port's ESP) lines go out directly.
    """

    def __init__(self, kernel, log):
        self._kernel = kernel
        self._log = log

    def debug(self, format, **kwargs):
        kernel = self._kernel
        if kernel._inThread is not None and threading.current_thread() is kernel._inThread:
            kernel._inboundDebug(self._log, format, kwargs)
        else:
            self._log.debug(format, **kwargs)

    def failure(self, format, failure=None, **kwargs):
        kernel = self._kernel
        if kernel._inThread is not None and threading.current_thread() is kernel._inThread:
            kernel._inLater(self._log.failure, format, failure if failure is not None else Failure(), **kwargs)
        else:
            self._log.failure(format, failure, **kwargs)


@implementer(IKernel)
class UserspaceKernel:
    """
    The user-space ESP datapath.

    @ivar sendUdp: C{callable(data, local, remote)} that sends a datagram
        from the NAT-T socket of C{local} (C{(host, port)}) to C{remote};
        the service sets it once its ports are open.
    @ivar sendUdpSegments: L{None}, or C{callable(buffers, size, local,
        remote)} that sends C{buffers} (each C{size} octets, the last at
        most) as that many datagrams in one UDP GSO send (C{UDP_SEGMENT});
        it raises C{OSError} when the host cannot. The packets read from
        the TUN device in one wake-up go out this way, a run of equal sizes
        to one peer at a time.
    @ivar device: the L{ITunDevice}.
    @ivar routes: the L{IRouteTable}.
    @ivar drops: a C{Counter} of packets dropped by the provider, by reason
        (the codec's own drops are added in L{dropCounts}).
    @ivar events: the L{IDatapathEvents} receiver, or L{None}.
    """

    name = "userspace"
    _log = Logger()

    def __init__(self, sendUdp=None, reactor=None, device=None, routes=None, deviceName="ipsec0",
                 randomBytes=os.urandom, replayWindow=128, rawEsp=True, policyChannel=None, outboundThread=False,
                 inboundThread=False):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.sendUdp = sendUdp
        self.sendUdpSegments = None
        self.device = device if device is not None else TunDevice(deviceName)
        self.routes = routes if routes is not None else NetlinkRoutes()
        self.events = None
        self.drops = Counter()
        self.replayWindow = replayWindow
        self._randomBytes = randomBytes
        self._reserved = set()
        self._sas = {}
        self._inbound = {}
        self._outbound = {}
        self._flows = []
        # parsePacket tuple -> the _OutFlow that carries it (emptied when
        # the flows change).
        self._flowCache = {}
        # While the packets of one TUN wake-up are sealed: the run of
        # packets waiting for one GSO send, [entry, size, buffers, octets].
        self._batching = False
        self._run = None
        self._inFlows = []
        self._routeUsers = Counter()
        self._acquired = {}
        self._deadCodecs = Counter()
        # Where detached SAs' sequence numbers and replay windows stood
        # (detachSA), until they are installed again.
        self._detached = {}
        self._opened = False
        self._reader = None
        self._wantRawEsp = rawEsp
        self._raw = {}
        self._dump = None
        self._policyChannel = policyChannel
        self._blocks = {}
        self._passes = Counter()
        # With outboundThread, a thread of its own reads the TUN device and
        # seals and sends what it reads (the reactor's thread opens ESP),
        # so that the two directions' system calls, where the kernel does
        # most of the work and Python's GIL is released, overlap. The lock
        # is held by that thread for each batch it reads and by every
        # method that changes the SAs or flows; what the thread must tell
        # the core (acquires, expires) or log goes through _later.
        self._lock = threading.RLock()
        self._wantThread = outboundThread
        self._thread = None
        self._wake = None
        self._stopping = False
        self._later = _now
        # Drops counted in the outbound thread (self.drops is the reactor
        # thread's), merged by dropCounts.
        self._threadDrops = Counter()
        # With inboundThread, the sockets given to receiveEspOn are read by
        # a thread of its own, which opens the ESP and writes to the device
        # holding _inLock for each batch (the outbound thread holds _lock,
        # so the two directions run side by side; what changes the SAs
        # holds both). The inbound SAs' replay windows and counters belong
        # to whichever thread opens ESP: the inbound thread, or the
        # reactor's (raw ESP, the IKE port's ESP) holding _inLock too.
        self._inLock = threading.RLock()
        self._wantInThread = inboundThread
        self._inThread = None
        self._inWake = None
        self._inSockets = []
        self._inStopping = False
        self._inLater = _now
        self._inDrops = Counter()
        # The inbound thread's debug lines of one batch, for the reactor's
        # thread to log in one go (one hand-over a batch, not one a drop).
        self._inLines = []

    # Device and sockets

    def virtualAddressInterface(self):
        """
        Where a virtual address from a configuration payload goes: the TUN
        device (opened now, as the Child SA that uses the address is
        installed right after).
        """
        self._open()
        return self.device.name

    def _open(self):
        if self._opened:
            return
        fd = self.device.open()
        self._opened = True
        if fd is not None and self._wantThread:
            self._startThread(fd)
        elif fd is not None:
            self._reader = _FileDescriptorReader(fd, self._tunReadable, "tun " + self.device.name)
            self.reactor.addReader(self._reader)
        if self._wantRawEsp:
            for family in (socket.AF_INET, socket.AF_INET6):
                try:
                    raw = socket.socket(family, socket.SOCK_RAW, IPPROTO_ESP)
                except OSError as e:
                    self._log.info("no raw ESP socket for {family}: {error}; ESP goes in UDP only",
                                   family=family.name, error=e)
                    continue
                raw.setblocking(False)
                self._bypass(raw)
                reader = _FileDescriptorReader(raw.fileno(), lambda raw=raw, family=family: self._rawReadable(
                    raw, family), "raw ESP")
                self._raw[family] = (raw, reader)
                self.reactor.addReader(reader)

    def _bypass(self, sock):
        # ESP to the peers must pass the IPv6 block's XFRM policies.
        from ikedtx.kernel.xfrm import bypassSocket

        try:
            bypassSocket(sock)
        except OSError as e:
            self._log.debug("no XFRM bypass for the raw ESP socket: {error}", error=e)

    def _startThread(self, fd):
        self._wake = os.pipe()
        self._stopping = False
        self._later = self.reactor.callFromThread
        self._thread = threading.Thread(target=self._outboundLoop, args=(fd, self._wake[0]),
                                        name="ikedtx-esp-out", daemon=True)
        self._thread.start()

    def _outboundLoop(self, fd, wake):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wake, select.POLLIN)
        while not self._stopping:
            try:
                poller.poll()
            except InterruptedError:
                continue
            if self._stopping:
                break
            try:
                self._tunReadable()
            except Exception:
                # Whatever goes wrong, the thread goes on: a dead thread
                # would silently stop all outbound traffic.
                self._later(self._log.failure, "userspace: error in the outbound thread", failure=Failure())

    def _stopThread(self):
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        os.write(self._wake[1], b"x")
        thread.join(5)
        for end in self._wake:
            os.close(end)
        self._wake = None
        self._later = _now

    # The inbound thread

    def receiveEspOn(self, sock):
        """
        Read ESP in UDP from C{sock}, a bound non-blocking UDP socket the
        host's kernel hands ESP only (the privilege-separated parent's end
        of a NAT-T port), in the inbound thread.

        @return: L{True} if the inbound thread reads it now; L{False}
            without one (the caller reads it and calls L{espReceived}).
        """
        if not self._wantInThread:
            return False
        self._inSockets.append(sock)
        if self._inThread is None:
            self._inWake = os.pipe()
            self._inStopping = False
            self._inLater = self.reactor.callFromThread
            self._inThread = threading.Thread(target=self._inboundLoop, args=(self._inWake[0],),
                                              name="ikedtx-esp-in", daemon=True)
            self._inThread.start()
        else:
            os.write(self._inWake[1], b"x")
        return True

    def stopReceivingEsp(self):
        """
        Stop the inbound thread (before its sockets are closed).
        """
        thread, self._inThread = self._inThread, None
        self._inSockets = []
        if thread is None:
            return
        self._inStopping = True
        os.write(self._inWake[1], b"x")
        thread.join(5)
        for end in self._inWake:
            os.close(end)
        self._inWake = None
        self._inLater = _now

    def _inboundLoop(self, wake):
        poller = select.poll()
        poller.register(wake, select.POLLIN)
        sockets = {}
        while not self._inStopping:
            for sock in self._inSockets:
                fd = sock.fileno()
                if fd >= 0 and fd not in sockets:
                    sockets[fd] = sock
                    poller.register(fd, select.POLLIN)
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            if self._inStopping:
                break
            for fd, event in events:
                if fd == wake:
                    os.read(wake, 64)
                    continue
                sock = sockets.get(fd)
                if sock is None:
                    continue
                if event & select.POLLNVAL:
                    # Closed under us: forget it.
                    poller.unregister(fd)
                    del sockets[fd]
                    if sock in self._inSockets:
                        self._inSockets.remove(sock)
                    continue
                try:
                    self._espReadable(sock)
                except Exception:
                    # As the outbound thread: whatever goes wrong, it goes on.
                    self._inLater(self._log.failure, "userspace: error in the inbound thread", failure=Failure())

    def _inboundDebug(self, log, format, kwargs):
        # In the inbound thread: a debug line for the end of the batch.
        self._inLines.append((log, format, kwargs))

    def _emitLines(self, lines):
        # In the reactor's thread: the debug lines of one inbound batch.
        for log, format, kwargs in lines:
            log.debug(format, **kwargs)

    def _espReadable(self, sock):
        # Bounded, as the TUN device's reads, so that the SAs can change.
        try:
            self._espBatch(sock)
        finally:
            if self._inLines:
                lines, self._inLines = self._inLines, []
                self._inLater(self._emitLines, lines)

    def _espBatch(self, sock):
        recvfrom = sock.recvfrom
        handle = self._inboundPacket
        with self._inLock:
            for _ in range(256):
                try:
                    data, remote = recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:
                    # An ICMP error for an earlier send, reported once.
                    self._inboundDebug(self._log, "userspace: ESP socket: {error}", {"error": e})
                    return
                if len(data) < 4 or data.startswith(_NON_ESP_MARKER):
                    # Not ESP in UDP (RFC 3948 2.2): the host's kernel steers
                    # IKE and keepalives to the worker's socket.
                    continue
                try:
                    handle(data, remote)
                except Exception:
                    self._inDrops["error"] += 1
                    self._inLater(self._log.failure, "userspace: error handling ESP from {remote}", failure=Failure(),
                                  remote=remote)

    def close(self):
        """
        Stop reading and close the device and raw sockets.
        """
        if self._dump is not None and self._dump.running:
            self._dump.stop()
        self._stopThread()
        self.stopReceivingEsp()
        if self._reader is not None:
            self.reactor.removeReader(self._reader)
            self._reader = None
        for raw, reader in self._raw.values():
            self.reactor.removeReader(reader)
            raw.close()
        self._raw.clear()
        if self._opened:
            self.device.close()
            self._opened = False

    def _tunReadable(self):
        # Bounded, so that a flood on the device leaves time for IKE.
        read = self.device.read
        handle = self._outboundPacket
        with self._lock:
            self._batching = self.sendUdpSegments is not None
            try:
                for _ in range(256):
                    try:
                        packet = read()
                    except OSError as e:
                        self._later(self._log.error, "userspace: reading {device} failed: {error}",
                                    device=self.device.name, error=e)
                        return
                    if packet is None:
                        return
                    try:
                        handle(packet)
                    except Exception:
                        self._outboundDrop("error", "")
                        self._later(self._log.failure, "userspace: error sending a packet from {device}",
                                    failure=Failure(), device=self.device.name)
            finally:
                self._batching = False
                if self._run is not None:
                    self._flushRun()

    def _rawReadable(self, raw, family):
        for _ in range(256):
            try:
                data, (host, *_) = raw.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._log.debug("raw ESP socket: {error}", error=e)
                return
            if family == socket.AF_INET:
                # IPv4 raw sockets deliver the IP header too.
                if len(data) < 20:
                    continue
                data = data[(data[0] & 0x0F) * 4:]
            self.espReceived(data, (host, 0), None)

    # IKernel

    def setEventReceiver(self, receiver):
        self.events = receiver

    def allocateSpi(self, protocol, source, destination):
        """
        A random SPI, answered at once: above 255 and neither reserved nor
        in use by an inbound SA.
        """
        while True:
            (spi,) = struct.unpack("!I", self._randomBytes(4))
            # SPIs 0-255 are reserved by IANA (RFC 4303 2.1).
            if spi > 255 and spi not in self._reserved and spi not in self._inbound:
                self._reserved.add(spi)
                return succeed(spi)

    #: Its SPIs do not depend on the addresses: a privilege-separated
    #: parent may lend a worker a block of them (L{ikedtx.privsep.commands.
    #: AllocateSpis}).
    spiBlocks = True

    @_locked
    def releaseSpi(self, protocol, spi):
        """
        Give back an SPI of L{allocateSpi} that no SA installed.
        """
        self._reserved.discard(spi)

    @_locked
    def addSA(self, sa):
        if sa.protocol != ProtocolId.ESP:
            return fail(KernelError("SA %08x: the user-space datapath does ESP only" % (sa.spi,)))
        if sa.mode != "tunnel":
            return fail(KernelError("SA %08x: the user-space datapath does tunnel mode only" % (sa.spi,)))
        if sa.ipcompCpi is not None:
            # The peer would compress what this datapath cannot expand.
            return fail(KernelError("SA %08x: the user-space datapath does no IPcomp" % (sa.spi,)))
        key = (sa.protocol, sa.spi, sa.destination)
        if key in self._sas:
            return fail(KernelError("SA %08x to %s: already installed" % (sa.spi, sa.destination)))
        try:
            codec = EspSA.fromKernelSA(sa, replayWindow=max(self.replayWindow, sa.replayWindow))
        except EspError as e:
            return fail(KernelError("SA %08x: %s" % (sa.spi, e)))
        sequences = self._detached.pop(key, None)
        if sequences is not None:
            # Where ikectl decouple left it (detachSA).
            codec.seq, codec.window.top, codec.window.bitmap, codec.exhausted = sequences
        try:
            self._open()
        except OSError as e:
            return fail(KernelError("SA %08x: cannot open the TUN device %s: %s" % (sa.spi, self.device.name, e)))
        if sa.inbound and self._wantInThread:
            # Opened in the inbound thread: it logs through the reactor's.
            codec._log = _InboundLogger(self, codec._log)
        entry = _InstalledSA(sa, codec, self.reactor.seconds())
        self._sas[key] = entry
        if sa.inbound:
            self._reserved.discard(sa.spi)
            self._inbound[sa.spi] = entry
        else:
            self._outbound.setdefault(sa.reqid, []).append(entry)
            self._acquired.pop(sa.reqid, None)
        for seconds, hard in ((sa.softLifetimeSeconds, False), (sa.lifetimeSeconds, True)):
            if seconds:
                entry.timers.append(self.reactor.callLater(seconds, self._expire, entry, hard))
        self._log.debug("userspace: SA {spi:08x} {src} -> {dst} installed ({direction}, reqid {reqid})", spi=sa.spi,
                        src=sa.source, dst=sa.destination, direction="in" if sa.inbound else "out", reqid=sa.reqid)
        return succeed(None)

    @_locked
    def updateSA(self, old, new):
        entry = self._sas.pop((old.protocol, old.spi, old.destination), None)
        if entry is None:
            return fail(KernelError("update of SA %08x: no such SA" % (old.spi,)))
        # Same keys, new addresses or ports: the codec keeps its sequence
        # numbers and replay window (MOBIKE, NAT mapping changes).
        entry.sa = new
        entry._endpoints()
        self._sas[(new.protocol, new.spi, new.destination)] = entry
        return succeed(None)

    @_locked
    def deleteSA(self, sa):
        entry = self._sas.get((sa.protocol, sa.spi, sa.destination))
        self._detached.pop((sa.protocol, sa.spi, sa.destination), None)
        self._reserved.discard(sa.spi)
        if entry is not None:
            self._remove(entry)
        return succeed(None)

    def _remove(self, entry):
        sa = entry.sa
        self._sas.pop((sa.protocol, sa.spi, sa.destination), None)
        for call in entry.timers:
            if call.active():
                call.cancel()
        entry.timers = []
        self._deadCodecs.update(entry.codec.drops)
        if sa.inbound:
            if self._inbound.get(sa.spi) is entry:
                del self._inbound[sa.spi]
        else:
            entries = self._outbound.get(sa.reqid, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._outbound.pop(sa.reqid, None)

    @_locked
    def detachSA(self, sa):
        """
        Take C{sa} out of the datapath (ikectl decouple), keeping its
        outbound sequence number and inbound replay window for its next
        L{addSA}: the peer's replay window takes what it sends after
        couple, and a packet seen before is still a replay (as xfrm).
        """
        key = (sa.protocol, sa.spi, sa.destination)
        entry = self._sas.get(key)
        if entry is None:
            return succeed(None)
        codec = entry.codec
        self._remove(entry)
        self._detached[key] = (codec.seq, codec.window.top, codec.window.bitmap, codec.exhausted)
        return succeed(None)

    def querySA(self, sa):
        entry = self._sas.get((sa.protocol, sa.spi, sa.destination))
        if entry is None:
            return fail(KernelError("query of SA %08x: no such SA" % (sa.spi,)))
        return succeed(KernelSAUsage(bytes=entry.bytes, packets=entry.packets, installed=entry.installed,
                                     lastUsed=entry.lastUsed))

    @_locked
    def addFlow(self, flow):
        if self._blocks:
            try:
                self._pass(flow)
            except Exception as e:
                return fail(KernelError("flow to %s-%s: no way through the IPv6 block: %s" % (
                    flow.destination.startAddress, flow.destination.endAddress, e)))
        if flow.direction != "out":
            self._inFlows.append(flow)
            return succeed(None)
        try:
            self._open()
        except OSError as e:
            return fail(KernelError("flow to %s: cannot open the TUN device %s: %s" % (
                flow.destination.startAddress, self.device.name, e)))
        entry = _OutFlow(flow)
        try:
            self._addRoutes(entry)
        except Exception as e:
            self._deleteRoutes(entry)
            return fail(KernelError("flow to %s-%s: route through %s failed: %s" % (
                flow.destination.startAddress, flow.destination.endAddress, self.device.name, e)))
        # The newest flow for a packet wins, a trap never over a Child SA's.
        self._flows.insert(claimPosition([e.flow for e in self._flows], flow), entry)
        self._flowCache.clear()
        return succeed(None)

    def _addRoutes(self, entry):
        flow = entry.flow
        source = self.routes.localAddressIn(flow.source.startAddress, flow.source.endAddress)
        peer = ip_address(flow.peerAddress) if isinstance(flow.peerAddress, str) else flow.peerAddress
        for network in summarize_address_range(flow.destination.startAddress, flow.destination.endAddress):
            if peer is not None and peer.version == network.version and peer in network:
                # Routing the peer's own address into the tunnel would send
                # IKE and ESP into it too; libipsec excludes it the same way.
                self._log.warn("userspace: not routing {network} through {device}: it holds the peer {peer}",
                               network=network, device=self.device.name, peer=peer)
                continue
            route = (network, source)
            if self._routeUsers[route] == 0:
                self.routes.addRoute(network, self.device.name, source)
                self._log.info("userspace: {network} routed through {device} (source {source})", network=network,
                               device=self.device.name, source=source)
            self._routeUsers[route] += 1
            entry.routes.append(route)

    def _deleteRoutes(self, entry):
        for route in entry.routes:
            self._routeUsers[route] -= 1
            if self._routeUsers[route] <= 0:
                del self._routeUsers[route]
                try:
                    self.routes.deleteRoute(route[0], self.device.name, route[1])
                except Exception as e:
                    self._log.warn("userspace: removing the route to {network} failed: {error}", network=route[0],
                                   error=e)
        entry.routes = []

    @_locked
    def deleteFlow(self, flow):
        if self._blocks:
            self._unpass(flow)
        if flow.direction != "out":
            if flow in self._inFlows:
                self._inFlows.remove(flow)
            return succeed(None)
        for entry in self._flows:
            if entry.flow == flow:
                self._flows.remove(entry)
                self._flowCache.clear()
                self._deleteRoutes(entry)
                break
        return succeed(None)

    # IPv6 leak block. The host's XFRM policy table works without ESP in
    # the kernel: IPv6 no flow covers is blocked there, as with the xfrm
    # provider, and each IPv6 flow of this datapath gets a policy that lets
    # its packets pass (to and from the TUN device) without an SA.

    def _policies(self):
        if self._policyChannel is None:
            from ikedtx.kernel.xfrm import NetlinkChannel

            self._policyChannel = NetlinkChannel()
        return self._policyChannel

    def blockIPv6(self):
        from ikedtx.kernel import xfrm

        try:
            channel = self._policies()
            for key, msg in xfrm.ipv6BlockMessages():
                if not self._passes[key]:
                    channel.request(msg, xfrm.m.XFRM_MSG_UPDPOLICY, xfrm._NETLINK_ACK)
                self._blocks[key] = msg
            for flow in [entry.flow for entry in self._flows] + self._inFlows:
                self._pass(flow)
        except Exception as e:
            return fail(xfrm._kernelError("IPv6 block (XFRM policies)", e))
        self._log.info("userspace: IPv6 blocked unless a flow covers it (-6 lifts this)")
        return succeed(None)

    def unblockIPv6(self):
        if self._blocks:
            self._unblock()
        return succeed(None)

    def _pass(self, flow):
        from ikedtx.kernel import xfrm

        if ip_address(flow.source.startAddress).version != 6:
            return
        for key, msg in xfrm.passMessages(flow):
            if not self._passes[key]:
                self._policies().request(msg, xfrm.m.XFRM_MSG_UPDPOLICY, xfrm._NETLINK_ACK)
            self._passes[key] += 1

    def _unpass(self, flow):
        from ikedtx.kernel import xfrm

        if ip_address(flow.source.startAddress).version != 6:
            return
        for key, _ in xfrm.passMessages(flow):
            if not self._passes[key]:
                continue
            self._passes[key] -= 1
            if self._passes[key]:
                continue
            del self._passes[key]
            try:
                if key in self._blocks:
                    self._policies().request(self._blocks[key], xfrm.m.XFRM_MSG_UPDPOLICY, xfrm._NETLINK_ACK)
                else:
                    self._policies().request(xfrm.policyIdMessage(key), xfrm.m.XFRM_MSG_DELPOLICY,
                                             xfrm._NETLINK_ACK)
            except Exception as e:
                self._log.warn("userspace: removing the IPv6 pass policy of a flow failed: {error}", error=e)

    def _unblock(self):
        from ikedtx.kernel import xfrm

        keys = set(self._passes) | set(self._blocks)
        self._passes.clear()
        self._blocks.clear()
        for key in keys:
            try:
                self._policies().request(xfrm.policyIdMessage(key), xfrm.m.XFRM_MSG_DELPOLICY, xfrm._NETLINK_ACK)
            except Exception as e:
                if getattr(e, "code", None) != errno.ENOENT:
                    self._log.warn("userspace: removing an IPv6 block policy failed: {error}", error=e)

    @_locked
    def flush(self):
        if self._blocks:
            self._unblock()
        for entry in list(self._flows):
            self._deleteRoutes(entry)
        self._flows = []
        self._flowCache.clear()
        self._inFlows = []
        for entry in list(self._sas.values()):
            self._remove(entry)
        self._reserved.clear()
        self._acquired.clear()
        self._detached.clear()
        return succeed(None)

    # Counters

    def startDump(self, path, interval=0.5):
        """
        For tests and debugging: every C{interval} seconds, write the
        installed SAs (keys included: the file is a secret, mode 0600),
        their counters and the drop counts to C{path} as JSON.
        """
        from twisted.internet.task import LoopingCall

        self._dump = LoopingCall(self._writeDump, path)
        self._dump.clock = self.reactor
        self._dump.start(interval, now=True).addErrback(
            lambda f: self._log.failure("userspace: writing {path} failed", f, path=path))

    def _writeDump(self, path):
        import json

        sas = []
        for entry in self._sas.values():
            sa = entry.sa
            sas.append({
                "spi": "%08x" % (sa.spi,), "inbound": sa.inbound, "source": str(sa.source),
                "destination": str(sa.destination), "encryption": sa.encryption[0], "keyLength": sa.encryption[1],
                "encryptionKey": bytes(sa.encryptionKey).hex(), "integrity": sa.integrity,
                "integrityKey": bytes(sa.integrityKey).hex(), "esn": sa.esn, "encapsulation": sa.encapsulation,
                "reqid": sa.reqid,
                "bytes": entry.bytes, "packets": entry.packets, "seq": entry.codec.seq,
            })
        text = json.dumps({"sas": sas, "drops": dict(self.dropCounts())})
        temporary = path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(temporary, path)

    @_locked
    def dropCounts(self):
        """
        Every drop so far, by reason: the provider's, and its SAs' (those
        installed now and those removed).
        """
        total = Counter(self.drops)
        total.update(self._threadDrops)
        total.update(self._inDrops)
        total.update(self._deadCodecs)
        for entry in self._sas.values():
            total.update(entry.codec.drops)
        return total

    # Lifetimes

    @_locked
    def _expire(self, entry, hard):
        sa = entry.sa
        if self._sas.get((sa.protocol, sa.spi, sa.destination)) is not entry:
            return
        if not hard:
            if entry.softDone:
                return
            entry.softDone = True
        else:
            self._remove(entry)
        self._log.info("userspace: SA {spi:08x} reached its {kind} lifetime", spi=sa.spi,
                       kind="hard" if hard else "soft")
        if self.events is not None:
            try:
                self.events.expired(sa.protocol, sa.spi, sa.destination, hard)
            except Exception:
                self._log.failure("the expire event of SA {spi:08x} failed", spi=sa.spi)

    def _count(self, entry, length):
        # Inbound; the expire is the reactor's to run.
        entry.bytes += length
        entry.packets += 1
        entry.lastUsed = self.reactor.seconds()
        sa = entry.sa
        if sa.lifetimeBytes and entry.bytes >= sa.lifetimeBytes:
            entry.spent = True
            self._inLater(self._expire, entry, True)
        elif sa.softLifetimeBytes and entry.bytes >= sa.softLifetimeBytes and not entry.softDone:
            self._inLater(self._expire, entry, False)

    # Outbound: TUN -> ESP

    def _dropped(self, reason, detail=""):
        self.drops[reason] += 1
        self._log.debug("userspace: dropped a packet ({reason}) {detail}", reason=reason, detail=detail)

    def packetFromTun(self, packet):
        """
        Protect and send one IP packet the host routed into the device.
        """
        try:
            self._outboundPacket(packet)
        except Exception:
            self.drops["error"] += 1
            self._log.failure("userspace: error sending a packet from {device}", device=self.device.name)

    def _outboundDrop(self, reason, detail):
        # A drop on the way out: counted where the thread that reads the
        # device counts (one writer per Counter), logged in the reactor's.
        (self._threadDrops if self._thread is not None else self.drops)[reason] += 1
        self._later(self._log.debug, "userspace: dropped a packet ({reason}) {detail}", reason=reason,
                    detail=detail)

    def _outboundPacket(self, packet):
        parsed = parsePacket(packet)
        if parsed is None:
            return self._outboundDrop(esp.BAD_INNER, "from the TUN device")
        entry = self._flowCache.get(parsed)
        if entry is None:
            entry = self._flowFor(parsed)
            if entry is None:
                return self._outboundDrop(NO_FLOW, "to %s" % (_addressText(parsed[0], parsed[2]),))
        sas = self._outbound.get(entry.flow.reqid)
        if not sas:
            self._acquire(entry.flow, *parsed)
            return self._outboundDrop(NO_SA, "for reqid %d" % (entry.flow.reqid,))
        # The newest SA of the reqid carries the traffic (after a rekey both
        # are installed until the old one is deleted).
        installed = sas[-1]
        codec = installed.codec
        data = codec.seal(packet, esp.NEXT_HEADER_IPV4 if parsed[0] == 4 else esp.NEXT_HEADER_IPV6)
        if data is None:
            # Sequence numbers used up: the SA is dead (RFC 4303 3.3.3).
            self._later(self._expire, installed, True)
            return None
        if self._batching and installed.segments and installed.sa.encapsulation is not None:
            self._queue(installed, data)
        else:
            self._send(installed, data)
        installed.bytes += len(packet)
        installed.packets += 1
        installed.lastUsed = self.reactor.seconds()
        sa = installed.sa
        if sa.lifetimeBytes and installed.bytes >= sa.lifetimeBytes:
            self._later(self._expire, installed, True)
        elif ((sa.softLifetimeBytes and installed.bytes >= sa.softLifetimeBytes and not installed.softDone)
              or codec.seq == codec.softSeq):
            # Time to rekey, before the counter runs out.
            self._later(self._expire, installed, False)

    def _flowFor(self, parsed):
        """
        The L{_OutFlow} that carries a packet with the header C{parsed}
        (remembered in the flow cache), or L{None}.
        """
        version, source, destination, protocol, sourcePort, destinationPort = parsed
        # The newest flow wins, as in XFRM: a Child SA's flow over the trap
        # flow of its policy, a rekeyed Child SA's over the old one's.
        for entry in reversed(self._flows):
            if (entry.source.matches(version, source, protocol, sourcePort)
                    and entry.destination.matches(version, destination, protocol, destinationPort)):
                cache = self._flowCache
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
                cache[parsed] = entry
                return entry
        return None

    def _queue(self, entry, data):
        """
        Add the sealed packet C{data} of the outbound SA C{entry} to the run
        for one GSO send: a run holds packets of one size to one peer,
        ended by a shorter one (UDP_SEGMENT's rule), at most 64 of them and
        64,000 octets.
        """
        size = len(data)
        run = self._run
        if run is not None:
            if run[0] is entry and size <= run[1] and run[3] + size <= 64000:
                buffers = run[2]
                buffers.append(data)
                run[3] += size
                if size < run[1] or len(buffers) >= 64:
                    self._flushRun()
                return
            self._flushRun()
        self._run = [entry, size, [data], size]

    def _flushRun(self):
        entry, size, buffers, _ = self._run
        self._run = None
        if len(buffers) == 1:
            self._send(entry, buffers[0])
            return
        try:
            self.sendUdpSegments(buffers, size, entry.local, entry.remote)
        except OSError as e:
            # No GSO here (an old kernel, a device without it, a path MTU
            # below the packets): one datagram each, from now on for this SA.
            entry.segments = False
            self._later(self._log.info, "userspace: SA {spi:08x}: no UDP GSO ({error}); one datagram per packet",
                        spi=entry.sa.spi, error=e)
            for data in buffers:
                self._send(entry, data)

    def _send(self, entry, data):
        if entry.sa.encapsulation is not None:
            if self.sendUdp is None:
                return self._outboundDrop(NO_TRANSPORT, "(no UDP socket)")
            self.sendUdp(data, entry.local, entry.remote)
            return None
        family = socket.AF_INET6 if entry.sa.destination.version == 6 else socket.AF_INET
        raw = self._raw.get(family)
        if raw is None:
            return self._outboundDrop(NO_TRANSPORT, "(no raw ESP socket)")
        try:
            raw[0].sendto(data, (entry.remote[0], 0))
        except OSError as e:
            self._outboundDrop(NO_TRANSPORT, "(raw ESP: %s)" % (e,))
        return None

    def _acquire(self, flow, version, source, destination, protocol, sourcePort, destinationPort):
        now = self.reactor.seconds()
        last = self._acquired.get(flow.reqid)
        if last is not None and now - last < ACQUIRE_HOLD:
            return
        self._acquired[flow.reqid] = now
        if self.events is None:
            return
        src, dst = _address(version, source), _address(version, destination)
        self._later(self._acquireEvent, flow, src, dst, protocol, sourcePort, destinationPort)

    def _acquireEvent(self, flow, src, dst, protocol, sourcePort, destinationPort):
        try:
            self.events.acquire(flow.reqid, _acquired(src, protocol, sourcePort, flow.source),
                                _acquired(dst, protocol, destinationPort, flow.destination))
        except Exception:
            self._log.failure("the acquire event for reqid {reqid} failed", reqid=flow.reqid)

    # Inbound: ESP -> TUN

    def espReceived(self, data, remote, local):
        """
        An ESP packet from C{remote} (a C{(host, port)}): from the NAT-T
        socket (the shell's C{espHandler}) or the raw ESP socket. Never
        raises.
        """
        try:
            with self._inLock:
                self._inboundPacket(data, remote)
        except Exception:
            self.drops["error"] += 1
            self._log.failure("userspace: error handling ESP from {remote}", remote=remote)

    def _inboundDrop(self, reason, detail):
        # A drop on the way in: counted where the thread that opens counts
        # (one writer per Counter), logged in the reactor's.
        if self._inThread is not None and threading.current_thread() is self._inThread:
            self._inDrops[reason] += 1
            self._inboundDebug(self._log, "userspace: dropped a packet ({reason}) {detail}",
                               {"reason": reason, "detail": detail})
        else:
            self._dropped(reason, detail)

    def _inboundPacket(self, data, remote):
        if len(data) < 8:
            return self._inboundDrop(esp.TRUNCATED, "from %s" % (remote,))
        spi = _SPI.unpack_from(data)[0]
        entry = self._inbound.get(spi)
        if entry is None or entry.spent:
            return self._inboundDrop(esp.UNKNOWN_SPI, "%08x from %s" % (spi, remote))
        opened = entry.codec.open(data)
        if opened is None:
            return None
        nextHeader, inner, _ = opened
        if nextHeader == esp.NEXT_HEADER_NONE:
            # A dummy packet (RFC 4303 2.6): authentic, to be discarded.
            return None
        parsed = parsePacket(inner)
        if parsed is None or nextHeader != (esp.NEXT_HEADER_IPV4 if parsed[0] == 4 else esp.NEXT_HEADER_IPV6):
            return self._inboundDrop(esp.BAD_INNER, "in SA %08x" % (spi,))
        if parsed not in entry.allowed:
            version, source, destination, protocol, sourcePort, destinationPort = parsed
            for ours, theirs in entry.selectors:
                if (theirs.matches(version, source, protocol, sourcePort)
                        and ours.matches(version, destination, protocol, destinationPort)):
                    break
            else:
                # RFC 4301 5.2: a packet that does not match the SA's selectors.
                return self._inboundDrop(esp.POLICY, "in SA %08x: %s -> %s" % (
                    spi, _addressText(version, source), _addressText(version, destination)))
            if len(entry.allowed) >= CACHE_SIZE:
                entry.allowed.clear()
            entry.allowed.add(parsed)
        self._count(entry, len(inner))
        if not self.device.write(inner):
            self._inboundDrop(TUN_FULL, "")
        return None


class _FileDescriptorReader:
    """
    An C{IReadDescriptor} for one file descriptor.
    """

    def __init__(self, fd, readable, prefix):
        self._fd = fd
        self._readable = readable
        self._prefix = prefix

    def fileno(self):
        return self._fd

    def doRead(self):
        self._readable()

    def connectionLost(self, reason):
        pass

    def logPrefix(self):
        return self._prefix


def _acquired(address, protocol, port, selector):
    """
    The L{KernelSelector} of one side of a packet that caused an acquire:
    its address, and its port where the flow's selector has ports.
    """
    if port is None or (selector.startPort, selector.endPort) == (0, 65535):
        return KernelSelector(address, address, protocol)
    return KernelSelector(address, address, protocol, port, port)


def _address(version, value):
    return ip_address(value) if version == 4 else ip_address(value.to_bytes(16, "big"))


def _addressText(version, value):
    return str(_address(version, value))



# -*- test-case-name: tests.test_net_shell -*-
"""
UDP ports that know which local address a datagram arrived on and can choose
the source address of a datagram they send (IP_PKTINFO / IPV6_PKTINFO).

IKE needs both: NAT detection hashes the addresses the packet really carried
(RFC 7296 2.23), and a reply must leave from the address the request came to,
even when the daemon listens on the wildcard address of a multi-homed host.
"""

import socket
import struct
from errno import EAGAIN, ECONNREFUSED, EINTR, EINVAL, EIO, EMSGSIZE, ENOPROTOOPT, EOPNOTSUPP, EWOULDBLOCK
from ipaddress import ip_address

from twisted.internet import udp
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

_IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
_IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_CMSG_SPACE = socket.CMSG_SPACE(32)
_IGNORED_READ_ERRORS = (EAGAIN, EWOULDBLOCK, EINTR, ECONNREFUSED)
_UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
_SOL_UDP = getattr(socket, "SOL_UDP", 17)
#: Errors that say UDP GSO cannot be used (as opposed to a lost send).
_NO_SEGMENTS = (EINVAL, EIO, ENOPROTOOPT, EOPNOTSUPP, EMSGSIZE)
_WILDCARDS = ("", "0.0.0.0", "::", None)


def _localFromAncillary(family, ancillary):
    for level, kind, data in ancillary:
        if family == socket.AF_INET and level == socket.IPPROTO_IP and kind == _IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntop(socket.AF_INET, data[8:12])
        if family == socket.AF_INET6 and level == socket.IPPROTO_IPV6 and kind == _IPV6_PKTINFO and len(data) >= 20:
            return socket.inet_ntop(socket.AF_INET6, data[:16])
    return None


def _setReceiveBuffer(skt, size):
    try:
        skt.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), size)
    except OSError:
        skt.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def _sourceAncillary(family, source):
    if source is None:
        return []
    packed = socket.inet_pton(family, str(source))
    if family == socket.AF_INET:
        return [(socket.IPPROTO_IP, _IP_PKTINFO, struct.pack("=I4s4s", 0, packed, b"\0" * 4))]
    return [(socket.IPPROTO_IPV6, _IPV6_PKTINFO, packed + struct.pack("=I", 0))]


class PacketInfoPort(udp.Port):
    """
    A UDP port whose protocol is told the local address of each datagram.

    The protocol must have C{packetReceived(data, remote, local)}, where
    C{remote} and C{local} are C{(host, port)} tuples; C{writeFrom} sends
    from a chosen local address.

    @ivar v6only: for an IPv6 port, whether to refuse IPv4-mapped traffic
        (the daemon binds IPv4 separately).
    """

    _log = Logger()
    v6only = True
    # Room for the bursts of a flood while the reactor is busy or not
    # scheduled (SO_RCVBUFFORCE as root, else up to net.core.rmem_max).
    receiveBuffer = 1 << 20
    # Datagrams read in one wakeup, at most (about what the receive buffer
    # holds of a flood's IKE_SA_INIT requests).
    readBatch = 1024
    readOctets = 4 << 20

    def __init__(self, *args, **kwargs):
        udp.Port.__init__(self, *args, **kwargs)
        # {source address: ancillary data choosing it}: a daemon has few.
        self._ancillary = {}
        # The buffer a port bound to one address reads into.
        self._readBuffer = None

    def createInternetSocket(self):
        skt = udp.Port.createInternetSocket(self)
        _setReceiveBuffer(skt, self.receiveBuffer)
        if self.addressFamily == socket.AF_INET6:
            skt.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if self.v6only else 0)
            skt.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVPKTINFO, 1)
        else:
            skt.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        return skt

    def doRead(self):
        """
        Read what the socket holds (at most L{readBatch} datagrams or about
        L{readOctets} octets, so the reactor's other descriptors get their
        turn and the batch's memory is bounded), then hand the batch
        to the protocol: one with C{packetsReceived(batch)} (a list of
        C{(data, remote, local)}) chooses the order, others get each
        datagram in turn. One wakeup under a flood reads the whole backlog before
        anything is answered, so a protocol that puts a legitimate peer's
        datagram first answers it after one batch of reads, not after the
        flood's requests queued ahead of it.
        """
        fixed = self._fixedLocal()
        if fixed is not None:
            batch, error = self._readFixed(fixed)
        else:
            batch, error = self._readWildcard()
        if batch:
            many = getattr(self.protocol, "packetsReceived", None)
            if many is not None:
                try:
                    many(batch)
                except BaseException:
                    self._log.failure("unhandled error for a batch of {n} datagrams", n=len(batch))
            else:
                for data, remote, local in batch:
                    try:
                        self.protocol.packetReceived(data, remote, local)
                    except BaseException:
                        # The protocol must not raise; if it does, one datagram is lost, not the port.
                        self._log.failure("unhandled error for a datagram from {remote}", remote=remote)
        if error is not None:
            raise error

    def _readWildcard(self):
        """
        A wildcard port's batch: the local address of each datagram from
        its IP_PKTINFO.
        """
        batch = []
        recvmsg = self.socket.recvmsg
        size = self.maxPacketSize
        family = self.addressFamily
        error = None
        octets = 0
        for _ in range(self.readBatch):
            try:
                data, ancillary, _flags, remote = recvmsg(size, _CMSG_SPACE)
            except OSError as e:
                if e.args[0] not in _IGNORED_READ_ERRORS:
                    error = e
                break
            local = (_localFromAncillary(family, ancillary) or self.interface, self._realPortNumber)
            batch.append((data, remote[:2], local))
            octets += len(data)
            if octets >= self.readOctets:
                break
        return batch, error

    def _readFixed(self, local):
        """
        The batch of a port bound to one address (C{local} for every
        datagram): C{recvfrom_into} one reused buffer, without ancillary
        data, and one copy of each datagram's octets (a flood's requests
        are read here one by one: the cheapest read Python has).
        """
        batch = []
        append = batch.append
        recv = self.socket.recvfrom_into
        buffer = self._readBuffer
        if buffer is None or len(buffer) < self.maxPacketSize:
            buffer = self._readBuffer = bytearray(self.maxPacketSize)
        view = memoryview(buffer)
        error = None
        octets = 0
        limit = self.readOctets
        v6 = self.addressFamily == socket.AF_INET6
        for _ in range(self.readBatch):
            try:
                n, remote = recv(buffer)
            except OSError as e:
                if e.args[0] not in _IGNORED_READ_ERRORS:
                    error = e
                break
            append((bytes(view[:n]), remote[:2] if v6 else remote, local))
            octets += n
            if octets >= limit:
                break
        view.release()
        return batch, error

    def _fixedLocal(self):
        """
        The local address of every datagram of a port bound to one address
        (no ancillary data to look at), or L{None} for a wildcard port.
        """
        if self.interface in _WILDCARDS:
            return None
        return (self.interface, self._realPortNumber)

    def writeFrom(self, datagram, remote, source=None):
        """
        Send C{datagram} to C{remote} (a C{(host, port)} tuple) from local
        address C{source} (L{None}: let the kernel choose).
        """
        host, port = remote
        # A flood's answers go to ever new addresses: the kernel parses a
        # textual address; only other forms are normalized here.
        address = (host if type(host) is str else str(ip_address(host)), port)
        ancillary = self._ancillary.get(source)
        if ancillary is None:
            ancillary = self._ancillary[source] = self._sourceAncillary(source)
        try:
            if not ancillary:
                return self.socket.sendto(datagram, address)
            return self.socket.sendmsg([datagram], ancillary, 0, address)
        except OSError as e:
            if e.args[0] == EINTR:
                return self.writeFrom(datagram, remote, source)
            # A send error (no route, message too long) loses this datagram;
            # IKE's retransmissions cover for it.
            self._log.warn("sending {size} bytes to {remote} failed: {error}", size=len(datagram), remote=remote, error=e)
            return None


    def _sourceAncillary(self, source):
        """
        The ancillary data that sends from C{source}: none on a port bound
        to that address (the kernel takes it from the bind).
        """
        if source is not None and self.interface not in _WILDCARDS:
            try:
                if socket.inet_pton(self.addressFamily, str(source)) == socket.inet_pton(self.addressFamily,
                                                                                          self.interface):
                    return []
            except OSError:
                pass
        return _sourceAncillary(self.addressFamily, source)

    def writeSegments(self, buffers, size, remote, source=None):
        """
        Send C{buffers} (each C{size} octets, the last at most) as that
        many datagrams to C{remote} from C{source}, in one C{sendmsg} with
        C{UDP_SEGMENT} (UDP GSO, Linux 4.18): the kernel cuts them apart.

        @raise OSError: the host cannot (no GSO, a datagram larger than the
            path allows); a send that is merely lost (a full buffer) is
            logged as by L{writeFrom}.
        """
        host, port = remote
        address = (host if type(host) is str else str(ip_address(host)), port)
        key = (source, size)
        ancillary = self._ancillary.get(key)
        if ancillary is None:
            ancillary = self._ancillary[key] = _sourceAncillary(self.addressFamily, source) + [
                (_SOL_UDP, _UDP_SEGMENT, struct.pack("=H", size))]
        try:
            return self.socket.sendmsg(buffers, ancillary, 0, address)
        except OSError as e:
            if e.args[0] == EINTR:
                return self.writeSegments(buffers, size, remote, source)
            if e.args[0] in _NO_SEGMENTS:
                raise
            self._log.warn("sending {count} datagrams to {remote} failed: {error}", count=len(buffers),
                           remote=remote, error=e)
            return None


def listenUDPWithPacketInfo(reactor, port, protocol, interface="", maxPacketSize=65535):
    """
    Like C{reactor.listenUDP}, with a L{PacketInfoPort}.
    """
    p = PacketInfoPort(port, protocol, interface, maxPacketSize, reactor)
    p.startListening()
    return p


def checkUDPPort(reactor, port, interface=""):
    """
    Whether a L{PacketInfoPort} could listen on C{interface}, C{port} now:
    bind a socket made the same way and close it again.

    @raise CannotListenError: it could not.
    """
    probe = PacketInfoPort(port, None, interface, reactor=reactor)
    skt = probe.createInternetSocket()
    try:
        skt.bind((interface, port))
    except OSError as e:
        raise CannotListenError(interface, port, e)
    finally:
        skt.close()

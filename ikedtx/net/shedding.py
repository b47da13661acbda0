# -*- test-case-name: tests.test_net_shedding -*-
"""
Load shedding of new IKE_SA_INIT requests in the kernel, under a flood.

When the daemon cannot keep up (a read finds a full batch: the socket's
receive buffer is not drained), the kernel drops what does not fit in the
buffer, whoever sent it: a legitimate peer's IKE_SA_INIT retried with its
COOKIE, or a message of an established IKE SA, is as likely to be lost as a
spoofed request, and the peer waits for its retransmission (2 s, then 4...).

A classic BPF socket filter (SO_ATTACH_FILTER) on the IKE socket drops a
random fraction of the datagrams that look like a new peer's first
IKE_SA_INIT request (the same fixed-offset look as
L{ikedtx.net.shell.isNewInitRequest}: exchange IKE_SA_INIT, Initiator flag,
no responder SPI, no COOKIE Notify first) before they are queued, and lets
every other datagram through. L{Shedder} sets the fraction from what the
reads see: up while the receive buffer fills between reads, back down (to no
filter) once it stays nearly empty, so the requests admitted are about what the
daemon answers and the buffer keeps room for the rest. A new request is
answered with the same probability as without the filter (what the daemon
has CPU for), but what follows it (the COOKIE retry, IKE_AUTH) is not lost
to the flood.

Linux runs a UDP socket's filter on the datagram from its UDP header on
(offset 0: the UDP header; 8: the IKE header, or the non-ESP marker on the
NAT-T port).
"""

import ctypes
import socket
import struct

from twisted.logger import Logger

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)

# Classic BPF opcodes (linux/filter.h).
_LD_W_ABS, _LD_H_ABS, _LD_B_ABS, _LD_W_LEN = 0x20, 0x28, 0x30, 0x80
_JEQ_K, _JGE_K = 0x15, 0x35
_ALU_AND_K = 0x54
_RET_K = 0x06
_SKF_AD_RANDOM = -0x1000 + 56
_KEEP = 0x40000
_UDP_HEADER = 8
_COOKIE = 16390


def _insn(code, jt, jf, k):
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def program(natt, dropBelow):
    """
    The filter: drop a new IKE_SA_INIT request when a random 32-bit number
    is below C{dropBelow} (a fraction of 2**32), keep everything else.

    @param natt: whether the socket is a NAT-T port (the IKE header after
        a four-byte zero non-ESP marker; ESP and keepalives are kept).
    """
    o = _UDP_HEADER + (4 if natt else 0)
    # (code, true, false, k); jumps name a label or "next"; "@label" marks
    # the instruction that follows it.
    listing = [(_LD_W_LEN, None, None, 0), (_JGE_K, "next", "keep", o + 36)]
    if natt:
        listing += [(_LD_W_ABS, None, None, o - 4), (_JEQ_K, "next", "keep", 0)]
    listing += [
        (_LD_B_ABS, None, None, o + 18), (_JEQ_K, "next", "keep", 34),
        (_LD_B_ABS, None, None, o + 19), (_ALU_AND_K, None, None, 0x28), (_JEQ_K, "next", "keep", 0x08),
        (_LD_W_ABS, None, None, o + 8), (_JEQ_K, "next", "keep", 0),
        (_LD_W_ABS, None, None, o + 12), (_JEQ_K, "next", "keep", 0),
        (_LD_B_ABS, None, None, o + 16), (_JEQ_K, "next", "random", 41),
        (_LD_H_ABS, None, None, o + 34), (_JEQ_K, "keep", "next", _COOKIE),
        "@random", (_LD_W_ABS, None, None, _SKF_AD_RANDOM), (_JGE_K, "keep", "drop", dropBelow),
        "@keep", (_RET_K, None, None, _KEEP),
        "@drop", (_RET_K, None, None, 0),
    ]
    labels, instructions = {}, []
    for item in listing:
        if isinstance(item, str):
            labels[item[1:]] = len(instructions)
        else:
            instructions.append(item)
    out = []
    for index, (code, jt, jf, k) in enumerate(instructions):
        if jt is None:
            out.append(_insn(code, 0, 0, k))
        else:
            out.append(_insn(code, *[(index + 1 if label == "next" else labels[label]) - index - 1
                                     for label in (jt, jf)], k))
    return b"".join(out)


def attach(skt, code):
    """
    Attach the classic BPF C{code} (from L{program}) to C{skt}.
    """
    count = len(code) // 8
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", count, ctypes.addressof(buffer))
    skt.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def detach(skt):
    try:
        skt.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError:
        # ENOENT: no filter attached.
        pass


def bufferFill(skt):
    """
    How full C{skt}'s receive buffer is (0 to 1: SO_MEMINFO's queued
    octets over the buffer's size, both as the kernel accounts them).
    """
    rmemAlloc, rcvbuf = struct.unpack_from("=II", skt.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))
    return rmemAlloc / rcvbuf if rcvbuf else 0.0


class Shedder:
    """
    Sets the share of new IKE_SA_INIT requests the kernel drops on one
    socket from how full its receive buffer is when a read begins
    (L{beforeRead}): more than half full, the daemon fell behind since the
    last read and the share goes up; under a tenth, it comes down, and the
    filter goes once it is 0.

    @ivar fraction: the share dropped now (0: no filter).
    @ivar interval: seconds between two changes.
    """

    _log = Logger()
    interval = 0.05
    high, low = 0.5, 0.1
    #: The most of them ever dropped: some still get a COOKIE.
    ceiling = 0.95
    step = 0.2

    def __init__(self, natt, clock):
        self.natt = natt
        self.clock = clock
        self.fraction = 0.0
        self._changed = None
        self._failed = False

    def beforeRead(self, skt):
        """
        A read of C{skt} begins.
        """
        if self._failed:
            return
        try:
            fill = bufferFill(skt)
        except OSError as e:
            return self._giveUp(e)
        if fill < self.high and (fill >= self.low or self.fraction == 0.0):
            return
        now = self.clock.seconds()
        if self._changed is not None and now - self._changed < self.interval:
            return
        if fill >= self.high:
            fraction = min(self.ceiling, self.fraction + (1.0 - self.fraction) * self.step)
        else:
            fraction = self.fraction - self.step / 4
            if fraction < 0.02:
                fraction = 0.0
        if fraction == self.fraction:
            return
        self._changed = now
        try:
            if fraction == 0.0:
                detach(skt)
            else:
                attach(skt, program(self.natt, int(fraction * 0xFFFFFFFF)))
        except OSError as e:
            return self._giveUp(e)
        if self.fraction == 0.0:
            self._log.info("flood: the kernel drops {percent:.0f}% of new IKE_SA_INIT requests (more arrive than "
                           "are answered)", percent=100 * fraction)
        elif fraction == 0.0:
            self._log.info("flood over: no new IKE_SA_INIT request dropped by the kernel")
        self.fraction = fraction

    def _giveUp(self, error):
        self._failed = True
        self._log.warn("no load shedding of IKE_SA_INIT floods: {error}", error=error)

# -*- test-case-name: tests.test_privsep_steering -*-
"""
Several IKE workers behind one port (C{--ike-workers N}): which worker's
socket the kernel hands each datagram.

Every worker has its own socket on each IKE and NAT-T address, all of an
address in one C{SO_REUSEPORT} group, in worker order (the parent binds
them, L{ikedtx.privsep.pool}); a classic BPF program attached to the group
(C{SO_ATTACH_REUSEPORT_CBPF}) returns the index of the socket that gets
the datagram. It steers by the SPI of the receiving side: every worker
allocates its IKE SPIs from its own residue class (L{ownSpi}: the SPI's
last octet modulo N is the worker's index, the other 61 or so bits stay
random), so any message of an IKE SA, whatever address or port it comes
from (MOBIKE, a NAT's new mapping), reaches the worker that holds the SA:

- Initiator flag set (the peer is the original initiator, our SPI is the
  responder's, octets 8-15): by the responder SPI when it is not zero;
  when it is (IKE_SA_INIT) by the initiator SPI, the peer's random one, so
  that a retransmission or the retry with a COOKIE or another KE reaches
  the same worker (its cookie secret, its half-open SA).
- Initiator flag clear (we initiated, our SPI is the initiator's, octets
  0-7): by the initiator SPI.

On a NAT-T port the IKE header follows the four-octet non-ESP marker; a
non-zero marker (ESP in UDP) goes to the socket C{esp} (the parent's, of
the user-space datapath; with XFRM any socket will do: its ESP-in-UDP
encapsulation takes it), a datagram shorter than the marker (a NAT
keepalive) to the first worker, like anything too short to have an IKE
header (it drops it as malformed).

L{workerOf} is the same decision in Python (the tests run the program
against it, L{runProgram}).
"""

import ctypes
import socket
import struct

#: SO_ATTACH_REUSEPORT_CBPF (linux/asm-generic/socket.h).
SO_ATTACH_REUSEPORT_CBPF = 51

#: The most workers (the SPI's last octet carries the index).
MAX_WORKERS = 16

#: The IKE header's Initiator flag (RFC 7296 3.1, in the flags octet 19).
INITIATOR_FLAG = 0x08


def ownSpi(spi, index, count):
    """
    C{spi} (8 random octets) moved into worker C{index}'s residue class of
    C{count}: its last octet modulo C{count} is C{index}; only those bits
    are fixed, the rest of C{spi} is kept.
    """
    if count <= 1:
        return spi
    last = spi[7] - spi[7] % count + index
    if last > 255:
        last -= count
    return spi[:7] + bytes([last])


def workerOf(datagram, count, natt=False, esp=0):
    """
    The index of the socket the steering program picks for the UDP payload
    C{datagram} among C{count} workers (L{steeringProgram}).
    """
    offset = 0
    if natt:
        if len(datagram) < 4:
            return 0
        if datagram[:4] != b"\0\0\0\0":
            return esp
        offset = 4
    if len(datagram) < offset + 20:
        return 0
    flags = datagram[offset + 19]
    if flags & INITIATOR_FLAG and datagram[offset + 8:offset + 16] != b"\0" * 8:
        octet = datagram[offset + 15]
    else:
        octet = datagram[offset + 7]
    return octet % count


# Classic BPF opcodes (linux/filter.h).
_LD_W_ABS, _LD_B_ABS = 0x20, 0x30
_JEQ_K, _JSET_K, _JA = 0x15, 0x45, 0x05
_MOD_K = 0x94
_RET_K, _RET_A = 0x06, 0x16


def steeringProgram(count, natt=False, esp=0):
    """
    The classic BPF program of L{workerOf}: a list of C{(code, jt, jf, k)}.

    A load past the datagram's end ends a classic program with 0: the first
    socket, which is what L{workerOf} answers for a short datagram.
    """
    o = 4 if natt else 0
    program = []
    if natt:
        program += [
            (_LD_W_ABS, 0, 0, 0),  # the non-ESP marker (a keepalive is shorter: 0)
            (_JEQ_K, 1, 0, 0),
            (_RET_K, 0, 0, esp),  # ESP in UDP
        ]
    program += [
        (_LD_B_ABS, 0, 0, o + 19),  # flags
        (_JSET_K, 0, 4, INITIATOR_FLAG),  # clear: to "initiator SPI"
        (_LD_W_ABS, 0, 0, o + 8),  # the responder SPI, zero in IKE_SA_INIT?
        (_JEQ_K, 0, 4, 0),  # not zero: to "responder SPI"
        (_LD_W_ABS, 0, 0, o + 12),
        (_JEQ_K, 0, 2, 0),
        (_LD_B_ABS, 0, 0, o + 7),  # initiator SPI
        (_JA, 0, 0, 1),
        (_LD_B_ABS, 0, 0, o + 15),  # responder SPI
        (_MOD_K, 0, 0, count),
        (_RET_A, 0, 0, 0),
    ]
    return program


def assemble(program):
    return b"".join(struct.pack("HBBI", *instruction) for instruction in program)


def attachProgram(skt, program):
    """
    Join C{skt}, not bound yet, to a reuseport group steered by C{program}
    (the kernel keeps a copy).

    @raise OSError: the kernel refused it (SO_ATTACH_REUSEPORT_CBPF came in
        Linux 4.5).
    """
    code = assemble(program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    skt.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


class _OutOfBounds(Exception):
    pass


def runProgram(program, data):
    """
    Interpret the classic BPF C{program} over C{data} as the kernel does
    (the subset L{steeringProgram} uses): the value it returns.
    """
    a = 0
    pc = 0

    def load(k, size):
        if k + size > len(data):
            raise _OutOfBounds()
        return int.from_bytes(data[k:k + size], "big")

    try:
        while True:
            code, jt, jf, k = program[pc]
            pc += 1
            if code == _LD_W_ABS:
                a = load(k, 4)
            elif code == _LD_B_ABS:
                a = load(k, 1)
            elif code == _JEQ_K:
                pc += jt if a == k else jf
            elif code == _JSET_K:
                pc += jt if a & k else jf
            elif code == _JA:
                pc += k
            elif code == _MOD_K:
                a = a % k
            elif code == _RET_K:
                return k
            elif code == _RET_A:
                return a
            else:
                raise ValueError("opcode %#x" % (code,))
    except _OutOfBounds:
        return 0

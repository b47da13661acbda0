#!/usr/bin/env python3
# -*- test-case-name: tests.test_bench_esp -*-
"""
espmicro: the per-packet cost of the user-space ESP datapath in memory,
without sockets or a reactor: two L{UserspaceKernel}s back to back, a
1400-octet (or --size) IPv4/UDP packet read from A's TUN device, sealed,
handed to B as an ESP-in-UDP datagram through the NAT-T protocol
(C{IKEDatagramProtocol.packetReceived}, as the shell does), opened and
written to B's TUN device.

    python3 bench/espmicro.py [--esp gcm,chacha,cbc] [--size 1400] [--packets 50000] [--repeat 3]
                              [--profile] [--socket]

Prints the CPU microseconds per packet (process time, the best of --repeat
runs: the machine is shared) for the outbound half (TUN -> ESP) and the
inbound half (ESP -> TUN) separately; with --profile, cProfile's top
functions of each. With --socket, the inbound half through a real UDP
socket instead: the privsep parent's reactor port (as before the inbound
thread) against the inbound thread's loop, taking turns, medians of
--repeat rounds of up to 2000 packets (system calls included). Nothing is
asserted; the figures are indications (the machine is shared).
"""

import argparse
import os
import struct
import sys
import time
from ipaddress import ip_address, ip_network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

A, B = ip_address("192.0.2.1"), ip_address("192.0.2.2")
A_NET, B_NET = ip_network("10.1.0.0/24"), ip_network("10.2.0.0/24")


class _Clock:
    def seconds(self):
        return 0.0

    def callLater(self, *args, **kwargs):
        raise AssertionError("no timers in espmicro")


class _Tun:
    name = "ipsec0"

    def __init__(self):
        self.pending = []
        self.written = 0

    def open(self):
        return None

    def read(self):
        return self.pending.pop() if self.pending else None

    def write(self, packet):
        self.written += 1
        return True

    def close(self):
        pass


class _Routes:
    def addRoute(self, network, device, source):
        pass

    def deleteRoute(self, network, device, source):
        pass

    def localAddressIn(self, start, end):
        return None


def _ipv4(src, dst, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, 17, 0, src.packed, dst.packed)
    return header + payload


def _kernels(kind):
    from ikedtx.kernel.interfaces import KernelFlow, KernelSA, KernelSelector
    from ikedtx.kernel.userspace import UserspaceKernel
    from ikedtx.wire.constants import EncrId, IntegId, ProtocolId

    encryption, integrity, keyLength, integLength = {
        "gcm": ((EncrId.AES_GCM_16, 128), None, 20, 0),
        "chacha": ((EncrId.CHACHA20_POLY1305, 256), None, 36, 0),
        "cbc": ((EncrId.AES_CBC, 256), IntegId.HMAC_SHA2_256_128, 32, 32),
    }[kind]

    def selector(network):
        return KernelSelector(network[0], network[-1], 0, 0, 65535)

    wire = []
    a = UserspaceKernel(lambda data, local, remote: wire.append(data), _Clock(), _Tun(), _Routes(), rawEsp=False)
    b = UserspaceKernel(None, _Clock(), _Tun(), _Routes(), rawEsp=False)
    common = dict(protocol=ProtocolId.ESP, mode="tunnel", encryption=encryption, integrity=integrity, reqid=1,
                  encryptionKey=bytes(range(keyLength)), integrityKey=bytes(range(integLength)),
                  encapsulation=(4500, 4500))
    out = KernelSA(spi=0x1000, inbound=False, source=A, destination=B, selectors=((selector(A_NET),
                                                                                   selector(B_NET)),), **common)
    into = KernelSA(spi=0x1000, inbound=True, source=A, destination=B, selectors=((selector(B_NET),
                                                                                    selector(A_NET)),), **common)
    a.addSA(out)
    a.addFlow(KernelFlow(selector(A_NET), selector(B_NET), "out", ProtocolId.ESP, "tunnel", A, B, 1))
    b.addSA(into)
    return a, b, wire


def measure(kind, size, packets, profile=False):
    """
    C{(outbound, inbound)} microseconds per packet for C{packets} packets
    of C{size} octets under ESP C{kind}.
    """
    from ikedtx.net.shell import IKEDatagramProtocol

    a, b, wire = _kernels(kind)
    inner = _ipv4(ip_address("10.1.0.1"), ip_address("10.2.0.1"),
                  struct.pack("!HHHH", 1234, 5678, size - 20, 0) + bytes(size - 28))

    class Runner:
        espReceived = staticmethod(b.espReceived)

    protocol = IKEDatagramProtocol(Runner(), natt=True)
    a.device.pending = [inner] * packets
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    start = time.process_time()
    if profiler:
        profiler.enable()
    while a.device.pending:
        a._tunReadable()
    if profiler:
        profiler.disable()
        _show(profiler, "outbound %s" % (kind,))
    middle = time.process_time()
    remote, local = ("192.0.2.1", 4500), ("192.0.2.2", 4500)
    received = protocol.packetReceived
    if profiler:
        profiler = cProfile.Profile()
        profiler.enable()
    middle = time.process_time()
    for data in wire:
        received(data, remote, local)
    end = time.process_time()
    if profiler:
        profiler.disable()
        _show(profiler, "inbound %s" % (kind,))
    if b.device.written != packets or a.dropCounts() or b.dropCounts():
        raise RuntimeError("packets lost: %d of %d written, drops %r %r" % (
            b.device.written, packets, dict(a.dropCounts()), dict(b.dropCounts())))
    return (middle - start) / packets * 1e6, (end - middle) / packets * 1e6


def measureSocket(kind, size, packets, rounds=5):
    """
    C{(port, thread)}: microseconds per packet to drain C{packets} sealed
    packets of C{size} octets from a real UDP socket (127.0.0.1) into B,
    the median of C{rounds}, taking turns: the way the privsep parent's
    reactor read its ESP socket (C{PacketInfoPort.doRead} with
    C{EspPortProtocol}), and the inbound thread's loop
    (C{UserspaceKernel._espReadable}, called here in this thread). The
    C{recvmsg}/C{recvfrom} system calls are in both figures.
    """
    import socket
    import statistics

    from twisted.internet import reactor

    from ikedtx.net.udp import PacketInfoPort, _setReceiveBuffer
    from ikedtx.privsep.parent import EspPortProtocol

    a, b, wire = _kernels(kind)
    inner = _ipv4(ip_address("10.1.0.1"), ip_address("10.2.0.1"),
                  struct.pack("!HHHH", 1234, 5678, size - 20, 0) + bytes(size - 28))
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = None
    try:
        _setReceiveBuffer(rx, 8 << 20)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        port = PacketInfoPort._fromListeningDescriptor(reactor, rx.fileno(), socket.AF_INET, EspPortProtocol(b),
                                                       65535)
        port.interface = "127.0.0.1"
        port.startListening()
        port.stopReading()
        drain = {"port": port.doRead, "thread": lambda: b._espReadable(rx)}
        results = {"port": [], "thread": []}
        for _ in range(rounds):
            for name in ("port", "thread"):
                a.device.pending = [inner] * packets
                while a.device.pending:
                    a._tunReadable()
                for data in wire:
                    tx.sendto(data, rx.getsockname())
                del wire[:]
                before = b.device.written
                start = time.process_time()
                while b.device.written - before < packets:
                    written = b.device.written
                    drain[name]()
                    if b.device.written == written:
                        raise RuntimeError("packets lost: %d of %d written, drops %r" % (
                            b.device.written - before, packets, dict(b.dropCounts())))
                results[name].append((time.process_time() - start) / packets * 1e6)
        return statistics.median(results["port"]), statistics.median(results["thread"])
    finally:
        if port is not None:
            port.stopListening()
        rx.close()
        tx.close()


def _show(profiler, title):
    import pstats

    sys.stdout.write("--- %s\n" % (title,))
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(14)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="espmicro", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--esp", default="gcm,chacha,cbc")
    parser.add_argument("--size", type=int, default=1400)
    parser.add_argument("--packets", type=int, default=50000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--socket", action="store_true",
                        help="inbound through a real UDP socket: the reactor's port against the inbound thread's loop")
    args = parser.parse_args(argv)
    if args.socket:
        for kind in args.esp.split(","):
            port, thread = measureSocket(kind, args.size, min(args.packets, 2000), args.repeat)
            sys.stdout.write("%-6s %5d octets from a UDP socket: reactor port %.2f us/packet, inbound thread "
                             "%.2f us/packet\n" % (kind, args.size, port, thread))
        return 0
    for kind in args.esp.split(","):
        runs = [measure(kind, args.size, args.packets, args.profile) for _ in range(args.repeat)]
        outbound, inbound = min(r[0] for r in runs), min(r[1] for r in runs)
        sys.stdout.write("%-6s %5d octets: outbound %.2f us/packet, inbound %.2f us/packet\n" % (
            kind, args.size, outbound, inbound))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

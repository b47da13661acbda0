"""
Tests for L{ikedtx.privsep.steering}: the reuseport program that spreads
IKE datagrams over several workers by SPI, and the SPIs each worker keeps.
"""

import random
import socket
import struct

from twisted.trial import unittest

from ikedtx.privsep import steering as S


def ikeHeader(spiI, spiR, flags, exchange=34, messageId=0, body=b"x" * 12):
    return spiI + spiR + struct.pack("!BBBBII", 33, 0x20, exchange, flags, messageId, 28 + len(body)) + body


class OwnSpiTests(unittest.TestCase):
    def test_residueClass(self):
        """
        ownSpi keeps seven octets and moves the last into the worker's class
        (modulo the count), for every count and every last octet.
        """
        for count in range(2, S.MAX_WORKERS + 1):
            for index in range(count):
                for last in range(256):
                    spi = bytes([9, 8, 7, 6, 5, 4, 3, last])
                    own = S.ownSpi(spi, index, count)
                    self.assertEqual(own[:7], spi[:7])
                    self.assertEqual(own[7] % count, index)
                    self.assertLess(abs(own[7] - last), count)

    def test_oneWorker(self):
        """
        With one worker the SPI is untouched.
        """
        self.assertEqual(S.ownSpi(b"\xff" * 8, 0, 1), b"\xff" * 8)

    def test_coreUsesFilter(self):
        """
        The core's new IKE SPIs go through its spiFilter.
        """
        from ikedtx.config.model import Config
        from ikedtx.core.engine import IKECore

        core = IKECore(Config(policies=[]))
        core.spiFilter = lambda spi: S.ownSpi(spi, 2, 3)
        spis = {core.newIKESPI() for _ in range(50)}
        self.assertEqual({spi[7] % 3 for spi in spis}, {2})
        self.assertEqual(len(spis), 50)


class SteeringTests(unittest.TestCase):
    def check(self, count, natt, esp, datagram):
        program = S.steeringProgram(count, natt, esp)
        self.assertEqual(S.runProgram(program, datagram), S.workerOf(datagram, count, natt, esp), datagram.hex())
        return S.workerOf(datagram, count, natt, esp)

    def test_responderSpi(self):
        """
        A request or answer from the original initiator (Initiator flag) with a
        responder SPI goes to the owner of the responder SPI.
        """
        for count in (2, 3, 4):
            for index in range(count):
                ours = S.ownSpi(bytes(random.randrange(256) for _ in range(8)), index, count)
                theirs = bytes(random.randrange(256) for _ in range(8))
                for natt, prefix in ((False, b""), (True, b"\0\0\0\0")):
                    self.assertEqual(self.check(count, natt, count, prefix + ikeHeader(theirs, ours, 0x08, 35)),
                                     index)

    def test_initiatorSpi(self):
        """
        What the original responder sends us (no Initiator flag) goes to the
        owner of the initiator SPI: the worker that initiated.
        """
        for count in (2, 3, 5):
            for index in range(count):
                ours = S.ownSpi(bytes(random.randrange(256) for _ in range(8)), index, count)
                theirs = bytes(random.randrange(1, 256) for _ in range(8))
                for exchange, flags in ((34, 0x20), (35, 0x20), (37, 0x00)):
                    self.assertEqual(self.check(count, False, 0, ikeHeader(ours, theirs, flags, exchange)), index)
                    self.assertEqual(self.check(count, True, 0, b"\0" * 4 + ikeHeader(ours, theirs, flags, exchange)),
                                     index)

    def test_saInitByInitiatorSpi(self):
        """
        An IKE_SA_INIT request (responder SPI zero) goes by the peer's
        initiator SPI: its retransmission and its COOKIE retry reach the
        same worker; different initiators spread over all of them.
        """
        seen = set()
        for _ in range(200):
            spiI = bytes(random.randrange(256) for _ in range(8))
            first = self.check(4, False, 0, ikeHeader(spiI, b"\0" * 8, 0x08, 34, body=b"a" * 40))
            retry = self.check(4, False, 0, ikeHeader(spiI, b"\0" * 8, 0x08, 34, body=b"cookie" * 10))
            self.assertEqual(first, retry)
            self.assertEqual(self.check(4, True, 4, b"\0" * 4 + ikeHeader(spiI, b"\0" * 8, 0x08, 34)), first)
            seen.add(first)
        self.assertEqual(seen, {0, 1, 2, 3})

    def test_espAndKeepalive(self):
        """
        On a NAT-T port ESP in UDP (a non-zero marker) goes to the ESP
        socket; a keepalive (one octet 0xff) and short or truncated IKE to
        the first worker.
        """
        self.assertEqual(self.check(3, True, 3, b"\x12\x34\x56\x78" + b"\0" * 40), 3)
        self.assertEqual(self.check(3, True, 3, b"\xff"), 0)
        self.assertEqual(self.check(3, True, 3, b"\0\0\0\0" + b"\x01" * 10), 0)
        self.assertEqual(self.check(3, False, 0, b""), 0)
        self.assertEqual(self.check(3, False, 0, b"\x01" * 19), 0)

    def test_randomDatagrams(self):
        """
        The program and its Python twin agree on random datagrams of every
        length around the header's.
        """
        rng = random.Random(13)
        for _ in range(3000):
            size = rng.randrange(0, 40)
            data = bytes(rng.choice((0, 0, 8, rng.randrange(256))) for _ in range(size))
            count = rng.randrange(2, S.MAX_WORKERS + 1)
            natt = rng.random() < 0.5
            self.check(count, natt, count, (b"\0\0\0\0" if natt and rng.random() < 0.7 else b"") + data)

    def test_kernelAcceptsProgram(self):
        """
        The kernel takes the program on a UDP socket (the same check it makes
        for the daemon's sockets).
        """
        for natt in (False, True):
            skt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(skt.close)
            S.attachProgram(skt, S.steeringProgram(4, natt, 4))
            skt.bind(("127.0.0.1", 0))

    def test_kernelSteers(self):
        """
        In the kernel, three workers' sockets and an ESP socket in one group
        on a NAT-T port: each datagram lands on the socket workerOf names.
        """
        count = 3
        program = S.steeringProgram(count, True, count)
        sockets = []
        port = 0
        for i in range(count + 1):
            skt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(skt.close)
            if i == 0:
                S.attachProgram(skt, program)
            else:
                skt.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            skt.bind(("127.0.0.1", port))
            port = skt.getsockname()[1]
            skt.settimeout(2)
            sockets.append(skt)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        rng = random.Random(7)
        for n in range(60):
            index = n % count
            ours = S.ownSpi(bytes(rng.randrange(256) for _ in range(8)), index, count)
            theirs = bytes(rng.randrange(1, 256) for _ in range(8))
            cases = [(b"\0\0\0\0" + ikeHeader(theirs, ours, 0x08, 37, n), index),
                     (b"\0\0\0\0" + ikeHeader(ours, theirs, 0x20, 36, n), index),
                     (b"\xde\xad\xbe\xef" + bytes(40), count)]
            for datagram, expected in cases:
                sender.sendto(datagram, ("127.0.0.1", port))
                self.assertEqual(sockets[expected].recv(2048), datagram)

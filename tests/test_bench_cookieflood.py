"""
Tests for bench/cookieflood.py in memory: the spoofed datagrams it sends
and its table (the flood itself needs root and charon, and is not part of
the suite).
"""

import socket
import struct
from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase

from bench import cookieflood
from ikedtx.core import cookies


class PacketTests(SynchronousTestCase):
    def test_spoofed(self):
        """
        Each datagram is IPv4/UDP from 198.18.0.0/15 port 500 to the target
        port 500, with a valid header checksum, carrying a first IKE_SA_INIT
        request the responder's quick look accepts, each with its own SPIi.
        """
        request = cookieflood.genuineRequest()
        datagrams = cookieflood.packets(request, "192.0.2.2", 50)
        spis = set()
        for data in datagrams:
            header = data[:20]
            total = sum(struct.unpack("!10H", header))
            while total >> 16:
                total = (total & 0xFFFF) + (total >> 16)
            self.assertEqual(total, 0xFFFF)
            self.assertEqual(struct.unpack("!H", header[2:4])[0], len(data))
            source = struct.unpack("!I", header[12:16])[0]
            self.assertEqual(source >> 17, (198 << 24 | 18 << 16) >> 17)
            self.assertEqual(header[16:20], socket.inet_aton("192.0.2.2"))
            self.assertEqual(struct.unpack("!HHH", data[20:26]), (500, 500, len(data) - 20))
            look = cookies.quickLook(data[28:])
            self.assertIsNotNone(look)
            spis.add(look.spiI)
        self.assertEqual(len(spis), 50)


class PacketSenderTests(SynchronousTestCase):
    def test_sendsInTurn(self):
        """
        L{cookieflood.PacketSender} sends the packets from the index asked,
        as many as asked, each whole and in order, in one sendmmsg (here
        over UDP on loopback instead of the flooder's raw socket).
        """
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(receiver.close)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        packets = [b"packet %d " % (i,) * (1 + i % 7) for i in range(300)]
        flood = cookieflood.PacketSender(sender, packets, "127.0.0.1", receiver.getsockname()[1])
        self.assertEqual(flood.count, 300)
        self.assertEqual(flood.send(290, 10), 10)
        self.assertEqual(flood.send(0, 3), 3)
        self.assertEqual([receiver.recv(100) for _ in range(13)], packets[290:] + packets[:3])


class TableTests(SynchronousTestCase):
    def test_markdown(self):
        """
        One table per offered rate, the responders side by side, with the
        commit, CPU per answer and the load average of each run.
        """
        row = {"responder": "ikedtx", "offered": 20000, "commit": "abc1234", "sentPerSecond": 19999.6,
               "answersPerSecond": 19650.2, "answeredShare": 0.98, "rcvbufDrops": 7018, "cpuShare": 0.37,
               "cpuPerAnswerMicroseconds": 13.25, "connectTimes": [0.012, 0.01, 0.3], "rssBeforeKiB": 54272,
               "rssAfterKiB": 56524, "loadAverage": [1.25, 2.0]}
        failed = dict(row, responder="charon", connectTimes=[], commit="strongSwan")
        faster = dict(row, offered=100000, answersPerSecond=70123.4)
        text = cookieflood.markdown([faster, row, failed], SimpleNamespace(connects=3))
        lines = text.splitlines()
        self.assertEqual(lines[0], "#### 20000 spoofed IKE_SA_INIT/s offered")
        self.assertEqual(lines[2], "| | ikedtx | charon |")
        self.assertIn("| commit | abc1234 | strongSwan |", lines)
        self.assertIn("| answers (COOKIEs) /s | 19650 | 19650 |", lines)
        self.assertIn("| responder CPU per answer | 13.2 us | 13.2 us |", lines)
        self.assertIn("| legitimate peer connects in | median 0.01 s, max 0.30 s (3 of 3) | none connected |", lines)
        self.assertIn("| responder RSS before / after (MiB) | 53.0 / 55.2 | 53.0 / 55.2 |", lines)
        self.assertIn("| load average (1 min) at start / end | 1.2 / 2.0 | 1.2 / 2.0 |", lines)
        second = lines.index("#### 100000 spoofed IKE_SA_INIT/s offered")
        self.assertEqual(lines[second + 2], "| | ikedtx |")
        self.assertIn("| answers (COOKIEs) /s | 70123 |", lines[second:])

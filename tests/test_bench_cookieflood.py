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


class TableTests(SynchronousTestCase):
    def test_markdown(self):
        row = {"responder": "ikedtx", "sentPerSecond": 19999.6, "answersPerSecond": 19650.2, "answeredShare": 0.98,
               "rcvbufDrops": 7018, "cpuShare": 0.37, "connectTimes": [0.012, 0.01, 0.3],
               "rssBeforeKiB": 54272, "rssAfterKiB": 56524}
        failed = dict(row, responder="charon", connectTimes=[])
        text = cookieflood.markdown([row, failed], SimpleNamespace(rate=20000, connects=3))
        lines = text.splitlines()
        self.assertEqual(lines[0], "| | ikedtx | charon |")
        self.assertIn("| answers (COOKIEs) /s | 19650 | 19650 |", lines)
        self.assertIn("| legitimate peer connects in | median 0.01 s, max 0.30 s (3 of 3) | none connected |", lines)
        self.assertIn("| responder RSS before / after (MiB) | 53.0 / 55.2 | 53.0 / 55.2 |", lines)

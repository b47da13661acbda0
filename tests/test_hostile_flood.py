# -*- test-case-name: tests.test_hostile_flood -*-
"""
A flood of IKE_SA_INIT requests from many addresses (127.0.1.0/24 on
loopback) against a live daemon started with C{--cookie-threshold}: past the
threshold every request is answered with a COOKIE and keeps no state, the
log does not grow a line per request, and a legitimate peer still connects
(with a COOKIE) while the half-open IKE SAs are still there.
"""

import os
import socket

from twisted.trial.unittest import TestCase

from ikedtx.core.states import IKEState
from ikedtx.wire.constants import NotifyType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify

from tests.hostile import GUARD, PSK, HostilePeer, LiveDaemon

# A responder for any address of 127/8.
RESPONDER_ANY = ('ikev2 "victim" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local 127.0.0.1 peer any '
                 'srcid b.example dstid a.example psk "%s"\n' % (PSK,))
THRESHOLD = 4
SOURCES = 200
BATCH = 25


class CookieFloodTests(TestCase):
    def setUp(self):
        self.daemon = LiveDaemon(self, RESPONDER_ANY, extraArgs=["--cookie-threshold", str(THRESHOLD)])
        self.peer = HostilePeer(self, self.daemon)

    def spoofers(self):
        """
        One UDP socket on each of C{SOURCES} loopback addresses.
        """
        sockets = []
        for n in range(SOURCES):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(s.close)
            s.bind(("127.0.1.%d" % (n + 1,), 0))
            s.settimeout(GUARD)
            sockets.append(s)
        return sockets

    def flood(self):
        """
        A copy of a genuine IKE_SA_INIT request with a new SPIi from each
        spoofer, in batches (so that no socket buffer overflows); the
        answers, decoded, in order.
        """
        genuine = self.peer.initRequest().encode()
        answers = []
        sockets = self.spoofers()
        for start in range(0, len(sockets), BATCH):
            batch = sockets[start:start + BATCH]
            for s in batch:
                s.sendto(os.urandom(8) + genuine[8:], self.daemon.address)
            for s in batch:
                answers.append(Message.decode(s.recvfrom(65536)[0]))
        return answers

    def test_floodGetsCookiesAndPeerConnects(self):
        answers = self.flood()
        cookies = [m for m in answers
                   if [getattr(p, "notifyType", None) for p in m.payloads] == [NotifyType.COOKIE]]
        full = [m for m in answers if m.spiR != b"\x00" * 8]
        self.assertEqual((len(full), len(cookies)), (THRESHOLD, SOURCES - THRESHOLD))
        # The fast path leaves no line per request above debug level.
        cookieLines = [line for line in self.daemon.log().splitlines() if "COOKIE" in line]
        self.assertLess(len(cookieLines), 10, "\n".join(cookieLines))
        # A legitimate peer, with the flood's half-open IKE SAs still there:
        # it is asked for a cookie, repeats IKE_SA_INIT with it, connects.
        ikeSA = self.peer.establish()
        self.assertEqual(ikeSA.state, IKEState.VALID)
        self.assertIsNotNone(ikeSA.cookie)
        self.daemon.assertCleanLog(self)

    def test_cookieRepeatedFromSpoofer(self):
        """
        A spoofer that does own its address and repeats the COOKIE gets
        its IKE SA's answer (the cookie proves the address).
        """
        self.flood()
        genuine = Message.decode(self.peer.initRequest().encode())
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.bind(("127.0.2.1", 0))
        s.settimeout(GUARD)
        s.sendto(genuine.encode(), self.daemon.address)
        demand = Message.decode(s.recvfrom(65536)[0])
        self.assertEqual([p.notifyType for p in demand.payloads], [NotifyType.COOKIE])
        genuine.payloads.insert(0, Notify(NotifyType.COOKIE, data=demand.payloads[0].data))
        s.sendto(genuine.encode(), self.daemon.address)
        answer = Message.decode(s.recvfrom(65536)[0])
        self.assertNotEqual(answer.spiR, b"\x00" * 8)
        self.daemon.assertCleanLog(self)

"""
Tests for L{ikedtx.core.cookies}: the COOKIE fast path under a flood of
IKE_SA_INIT requests, its threshold, the limits on half-open IKE SAs, and
the core's tables emptying once the flood's half-open SAs expire.
"""

from twisted.logger import LogLevel, globalLogPublisher

from ikedtx.core import cookies
from ikedtx.core.settings import CoreSettings
from ikedtx.core.timers import TimerKey
from ikedtx.wire.constants import ExchangeType, HeaderFlag, NotifyType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify

from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, responderConfig

B = (B_ADDR, 500)


def spoofed(n):
    """
    The C{n}th spoofed source: a different address each time.
    """
    return ("198.51.%d.%d" % (n // 250 % 250, n % 250 + 1), 500)


class FloodTestCase(ExchangeTestCase):
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def responder(self, **settings):
        """
        A responder that takes IKE SAs from any address, and a genuine
        IKE_SA_INIT request of the initiator to copy spoofed ones from.
        """
        a, b = self.makePair(responder=responderConfig(peer="any"), settingsB=CoreSettings(**settings))
        a.initiate("ab")
        self.request, _, _ = self.network.drop()
        return a, b

    def spoofedRequest(self, n):
        """
        The genuine request with SPIi C{n}.
        """
        return n.to_bytes(8, "big") + self.request[8:]

    def flood(self, b, count, source=spoofed):
        """
        C{count} spoofed IKE_SA_INIT requests; returns the answers.
        """
        before = len(self.network.inFlight)
        for n in range(1, count + 1):
            b.receive(self.spoofedRequest(n), B, source(n))
        answers = self.network.inFlight[before:]
        del self.network.inFlight[before:]
        return [Message.decode(d) for d, _, _ in answers]

    def notifyTypes(self, answers):
        return [[getattr(p, "notifyType", None) for p in m.payloads][:1] for m in answers]

    def infoLines(self):
        return [e for e in self.events if e.get("log_level", LogLevel.debug) >= LogLevel.info
                and e.get("log_namespace", "").startswith("ikedtx.core")]


class ThresholdTests(FloodTestCase):
    def test_belowThreshold(self):
        """
        Below the threshold every request gets a new half-open IKE SA and a
        full answer, no cookie.
        """
        a, b = self.responder(cookieThreshold=8)
        answers = self.flood(b, 8)
        self.assertEqual(b.core.halfOpenCount(), 8)
        self.assertEqual(len(answers), 8)
        self.assertEqual([m.spiR for m in answers if m.spiR == b"\x00" * 8], [])

    def test_atThreshold(self):
        """
        From C{cookieThreshold} half-open IKE SAs on, requests are answered
        with a COOKIE and keep no state.
        """
        a, b = self.responder(cookieThreshold=4)
        answers = self.flood(b, 20)
        self.assertEqual(b.core.halfOpenCount(), 4)
        self.assertEqual(len(b.ikeSAs), 4)
        cookieAnswers = [m for m in answers if len(m.payloads) == 1 and m.payloads[0].notifyType == NotifyType.COOKIE]
        self.assertEqual(len(cookieAnswers), 16)
        self.assertEqual({m.spiR for m in cookieAnswers}, {b"\x00" * 8})

    def test_zeroAlways(self):
        """
        A threshold of 0 asks every request for a cookie.
        """
        a, b = self.responder(cookieThreshold=0)
        answers = self.flood(b, 3)
        self.assertEqual(self.notifyTypes(answers), [[NotifyType.COOKIE]] * 3)
        self.assertEqual(b.ikeSAs, [])

    def test_floodNotLoggedAtInfo(self):
        """
        Cookie answers of the fast path log nothing at info level or above.
        """
        a, b = self.responder(cookieThreshold=2)
        self.flood(b, 2)
        del self.events[:]
        self.flood(b, 200)
        self.assertEqual(self.infoLines(), [])

    def test_legitimatePeerConnectsDuringFlood(self):
        """
        With the half-open table past the threshold, a genuine initiator
        repeats IKE_SA_INIT with its COOKIE and gets its IKE SA.
        """
        a, b = self.responder(cookieThreshold=4)
        self.flood(b, 50)
        self.network.inFlight.append((self.request, (A_ADDR, 500), B))
        self.network.pump()
        up = [sa for sa in a.ikeSAs if sa.isEstablished]
        self.assertEqual(len(up), 1)
        self.assertEqual(len([sa for sa in b.ikeSAs if sa.isEstablished]), 1)

    def test_retransmissionOfHalfOpen(self):
        """
        A retransmitted request of an IKE SA already half open is answered
        from the response cache, not with a COOKIE.
        """
        a, b = self.responder(cookieThreshold=1)
        b.receive(self.spoofedRequest(1), B, spoofed(1))
        (first, _, _) = self.network.inFlight.pop()
        b.receive(self.spoofedRequest(1), B, spoofed(1))
        (again, _, _) = self.network.inFlight.pop()
        self.assertEqual(again, first)
        self.assertNotEqual(Message.decode(again).spiR, b"\x00" * 8)


class SameCookieTests(FloodTestCase):
    def test_fastEqualsFull(self):
        """
        The fast path answers byte for byte the COOKIE the full decode
        would.
        """
        a, b = self.responder(cookieThreshold=0)
        fast = self.flood(b, 1)[0].encode()
        self.patch(cookies, "fastCookie", lambda *args: None)
        full = self.flood(b, 1)[0].encode()
        self.assertEqual(fast, full)
        self.assertEqual(Message.decode(fast).payloads[0].notifyType, NotifyType.COOKIE)

    def test_cookieResponseEncoding(self):
        """
        L{cookies.cookieResponse} is what L{Message.encode} makes of a
        COOKIE-only IKE_SA_INIT response.
        """
        spi, cookie = b"\x07" * 8, b"\x00\x00\x00\x01" + b"c" * 32
        message = Message(spi, b"\x00" * 8, ExchangeType.IKE_SA_INIT, HeaderFlag.RESPONSE, 0,
                          payloads=[Notify(NotifyType.COOKIE, data=cookie)])
        self.assertEqual(cookies.cookieResponse(spi, cookie), message.encode())

    def test_validCookieGoesFullPath(self):
        """
        A request whose first payload is a valid COOKIE is not answered
        by the fast path.
        """
        a, b = self.responder(cookieThreshold=0)
        data = self.spoofedRequest(1)
        look = cookies.quickLook(data)
        cookie = b.core.cookieFor(look.nonce, spoofed(1)[0], look.spiI)
        withCookie = Message.decode(data)
        withCookie.payloads.insert(0, Notify(NotifyType.COOKIE, data=cookie))
        encoded = withCookie.encode()
        self.assertIsNone(cookies.fastCookie(b.core, encoded, B, spoofed(1)))
        self.assertIsNotNone(cookies.fastCookie(b.core, encoded, B, spoofed(2)))
        b.receive(encoded, B, spoofed(1))
        self.assertEqual(b.core.halfOpenCount(), 1)

    def test_quickLookRefuses(self):
        """
        What the quick look cannot judge is left to the full decode.
        """
        self.responder()
        good = self.spoofedRequest(1)
        self.assertIsNotNone(cookies.quickLook(good))
        self.assertIsNone(cookies.quickLook(good[:27]))
        self.assertIsNone(cookies.quickLook(good[:-1]))
        self.assertIsNone(cookies.quickLook(good + b"\x00"))
        self.assertIsNone(cookies.quickLook(b"\x00" * 8 + good[8:]))
        response = bytearray(good)
        response[19] |= HeaderFlag.RESPONSE
        self.assertIsNone(cookies.quickLook(bytes(response)))
        message = Message.decode(good)
        for p in message.payloads:
            if p.payloadType == 40:
                p.data = b"n" * 8
        self.assertIsNone(cookies.quickLook(message.encode()))


class BatchTests(FloodTestCase):
    """
    L{IKECore.cookieAnswers}: the COOKIE answers of a read's batch of new
    IKE_SA_INIT requests (issue 11: the fast path's cost per request), the
    same as L{IKECore.cookieAnswer} gives one by one.
    """

    def test_sameAsOneByOne(self):
        """
        Past the threshold every well-formed request is answered with the
        COOKIE L{cookies.fastCookie} gives it, byte for byte, to its source
        and from its local endpoint; what the quick look refuses, a
        retransmission of a half-open SA's request and a request with a
        valid COOKIE are left for the full path, in their order.
        """
        a, b = self.responder(cookieThreshold=1)
        self.flood(b, 1)
        self.assertEqual(b.core.halfOpenCount(), 1)
        halfOpen = (self.spoofedRequest(1), spoofed(1), B)
        look = cookies.quickLook(self.spoofedRequest(5))
        cookie = b.core.cookieFor(look.nonce, spoofed(5)[0], look.spiI)
        withCookie = Message.decode(self.spoofedRequest(5))
        withCookie.payloads.insert(0, Notify(NotifyType.COOKIE, data=cookie))
        valid = (withCookie.encode(), spoofed(5), B)
        garbage = (b"garbage" * 10, spoofed(6), B)
        good = [(self.spoofedRequest(n), spoofed(n), B) for n in (2, 3, 4)]
        items = [good[0], halfOpen, garbage, good[1], valid, good[2]]
        answers, rest = b.core.cookieAnswers(items)
        self.assertEqual(rest, [halfOpen, garbage, valid])
        self.assertEqual(answers, [(cookies.fastCookie(b.core, data, local, remote), remote, local)
                                   for data, remote, local in good])
        self.assertEqual(self.notifyTypes([Message.decode(cookie) for cookie, _, _ in answers]),
                         [[NotifyType.COOKIE]] * 3)
        self.assertEqual(b.core.counters["ikedtx_cookie_sent"], 3)
        self.assertEqual(b.core.halfOpenCount(), 1)

    def test_belowThresholdAllFull(self):
        """
        Below the threshold (and for a passive core) the batch goes the
        full way, in order.
        """
        a, b = self.responder(cookieThreshold=2)
        items = [(self.spoofedRequest(n), spoofed(n), B) for n in (1, 2, 3)]
        self.assertEqual(b.core.cookieAnswers(items), ([], items))
        b.core.passive = True
        a, b = self.responder(cookieThreshold=0)
        b.core.passive = True
        self.assertEqual(b.core.cookieAnswers(items), ([], items))

    def test_noPolicyFullPath(self):
        """
        A request to a local address no policy takes goes the full way
        (which drops it), as in L{cookies.fastCookie}.
        """
        a, b = self.responder(cookieThreshold=0)
        item = (self.spoofedRequest(1), spoofed(1), ("203.0.113.9", 500))
        self.assertIsNone(cookies.fastCookie(b.core, item[0], item[2], item[1]))
        self.assertEqual(b.core.cookieAnswers([item]), ([], [item]))

    def test_logRateLimited(self):
        """
        The debug lines of a batch's answers keep to the rate of the one
        by one path: the rest are counted as suppressed.
        """
        a, b = self.responder(cookieThreshold=0)
        quiet = b.core._cookieLog
        before = len(self.infoLines())
        items = [(self.spoofedRequest(n), spoofed(n), B) for n in range(1, quiet.burst + 21)]
        answers, rest = b.core.cookieAnswers(items)
        self.assertEqual((len(answers), rest), (len(items), []))
        self.assertEqual(quiet.suppressed, 20)
        logged = [e for e in self.events if "answered with a COOKIE" in str(e.get("why"))]
        self.assertEqual([e["log_level"] for e in logged], [LogLevel.debug] * quiet.burst)
        self.assertEqual(len(self.infoLines()), before)


class LimitTests(FloodTestCase):
    def test_perPeer(self):
        """
        Past C{halfOpenPerPeer} from one address, its oldest half-open IKE
        SA is given up for the new one; other addresses are not touched.
        """
        a, b = self.responder(cookieThreshold=100, halfOpenPerPeer=3)
        b.receive(self.spoofedRequest(99), B, spoofed(1))
        answers = self.flood(b, 5, source=lambda n: spoofed(0))
        self.assertEqual(len(answers), 5)
        self.assertEqual(b.core.halfOpenCount(), 4)
        kept = sorted(int.from_bytes(sa.spiI, "big") for sa in b.ikeSAs)
        self.assertEqual(kept, [3, 4, 5, 99])

    def test_perPeerLetsLegitimateIn(self):
        """
        A legitimate peer behind an address that already has
        C{halfOpenPerPeer} half-open IKE SAs still connects.
        """
        a, b = self.responder(cookieThreshold=100, halfOpenPerPeer=3)
        self.flood(b, 10, source=lambda n: (A_ADDR, 500))
        self.network.inFlight[:] = [(self.request, (A_ADDR, 500), B)]
        self.network.pump()
        self.assertEqual(len([sa for sa in b.ikeSAs if sa.isEstablished]), 1)
        self.assertEqual(len(b.core._limits.perPeer[A_ADDR]), 2)

    def test_global(self):
        """
        Past C{halfOpenMax} in all, new requests are dropped.
        """
        a, b = self.responder(cookieThreshold=100, halfOpenMax=5)
        answers = self.flood(b, 8)
        self.assertEqual(len(answers), 5)
        self.assertEqual(b.core.halfOpenCount(), 5)

    def test_countsFollowSAs(self):
        """
        The per-peer count drops when a half-open IKE SA is destroyed or
        established.
        """
        a, b = self.responder(cookieThreshold=100, halfOpenPerPeer=1)
        self.flood(b, 1, source=lambda n: (A_ADDR, 500))
        self.assertEqual(list(b.core._limits.perPeer), [A_ADDR])
        for sa in b.ikeSAs:
            b.execute(b.core.deleteIKESA(sa)[1])
        self.assertEqual(b.core._limits.perPeer, {})
        self.network.inFlight[:] = [(self.request, (A_ADDR, 500), B)]
        self.network.pump()
        self.assertEqual([sa.isEstablished for sa in b.ikeSAs], [True])
        self.assertEqual(b.core._limits.perPeer, {})


class MemoryTests(FloodTestCase):
    def test_tablesEmptyAfterFlood(self):
        """
        Many spoofed IKE_SA_INITs, then time passes: the half-open IKE SAs
        expire and the core's tables are empty again.
        """
        a, b = self.responder(cookieThreshold=64)
        b.execute(b.core.startup())
        answers = self.flood(b, 2000)
        self.assertEqual(len(answers), 2000)
        self.assertEqual(b.core.halfOpenCount(), 64)
        b.clock.advance(b.core.settings.halfOpenTimeout)
        self.assertEqual(b.core.ikeSAs, {})
        self.assertEqual(b.core._halfOpen, {})
        self.assertEqual(b.core._limits.perPeer, {})
        self.assertEqual(b.core._spiRequests, {})
        self.assertEqual(list(b.timers), [TimerKey.cookieSecret()])


class LogTests(FloodTestCase):
    def test_malformedRateLimited(self):
        """
        "Dropped a malformed message" is an info line, at most a burst of
        them a minute, whoever sends them.
        """
        a, b = self.responder()
        garbage = self.spoofedRequest(1)[:28] + b"\xff" * 20
        garbage = garbage[:24] + len(garbage).to_bytes(4, "big") + garbage[28:]
        for n in range(100):
            b.receive(garbage, B, spoofed(n))
        lines = [e for e in self.infoLines() if "malformed" in e.get("why", "")]
        self.assertEqual(len(lines), 10)
        b.clock.advance(60)
        b.receive(garbage, B, spoofed(1))
        lines = [e for e in self.infoLines() if "malformed" in e.get("why", "")]
        self.assertEqual(lines[-1]["more"], " (and 90 more not logged)")


class FragmentBudgetTests(ExchangeTestCase):
    """
    The fragments held for reassembly over all IKE SAs are bounded
    (C{fragmentBytesMax}) and freed with their IKE SA.
    """

    def fragmentedPair(self, **settings):
        from ikedtx.config import parseConfig

        init = parseConfig('set fragmentation\nikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s '
                           'srcid %s dstid b.example psk "secret"' % (A_ADDR, B_ADDR, "a" * 300 + ".example"))
        resp = responderConfig(settings="set fragmentation", ids=False, extra="srcid b.example")
        a, b = self.makePair(initiator=init, responder=resp, settingsA=CoreSettings(fragmentSize=200),
                             settingsB=CoreSettings(fragmentSize=200, **settings))
        a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        fragments = list(self.network.inFlight)
        self.assertGreater(len(fragments), 2)
        self.assertTrue(all(Message.decode(d).isFragment for d, _, _ in fragments))
        return a, b, fragments

    def test_heldThenFreed(self):
        """
        Fragments of an IKE_AUTH that never completes are counted, and
        freed when the half-open IKE SA expires.
        """
        a, b, fragments = self.fragmentedPair()
        self.network.inFlight[:] = fragments[:-1]
        self.network.pump()
        self.assertGreater(b.core._fragments.held, 0)
        b.clock.advance(b.core.settings.halfOpenTimeout)
        self.assertEqual(b.ikeSAs, [])
        self.assertEqual(b.core._fragments.held, 0)

    def test_overBudget(self):
        """
        A fragment that would take the sum past C{fragmentBytesMax} is
        dropped; nothing is held.
        """
        a, b, fragments = self.fragmentedPair(fragmentBytesMax=10)
        self.network.pump()
        self.assertEqual(b.core._fragments.held, 0)
        self.assertEqual([sa.isEstablished for sa in b.ikeSAs], [False])

    def test_completeFreesIt(self):
        """
        A reassembled message leaves nothing held.
        """
        a, b, fragments = self.fragmentedPair()
        self.network.pump()
        self.assertEqual([sa.isEstablished for sa in b.ikeSAs], [True])
        self.assertEqual(b.core._fragments.held, 0)

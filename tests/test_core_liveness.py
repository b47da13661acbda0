"""
Tests for keeping IKE SAs alive under loss: stale and duplicated answers,
re-initiation of active policies, dead peer detection and INITIAL_CONTACT
(two in-memory cores pumped with a fake clock).
"""

from ikedtx.config import parseConfig
from ikedtx.core.actions import IKESADown, InstallChildSA, QuerySAUsage, RemoveChildSA
from ikedtx.core.errors import TrafficSelectorsUnacceptable
from ikedtx.core.retransmit import RetransmitSchedule, jitterOf
from ikedtx.core.sa import ChildSA, IKEState
from ikedtx.core.settings import CoreSettings
from ikedtx.core.tasks.child import ChildCreateTask
from ikedtx.core.timers import BackoffPolicy, TimerKey
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType
from ikedtx.wire.message import Message

from tests.corehelpers import Host
from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, initiatorConfig, responderConfig


def _decode(data):
    return Message.decode(data)


class StaleAnswerTests(ExchangeTestCase):
    def test_duplicatedInvalidKe(self):
        """
        A duplicated INVALID_KE_PAYLOAD answer reaches the initiator after
        it restarted IKE_SA_INIT with the group asked for: it answers the
        old request and is ignored; the IKE SA is established.
        """
        a, b = self.makePair(
            initiator=initiatorConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 group ecp256"),
            responder=responderConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group ecp256"))
        requestId = a.initiate("ab")
        self.network.deliverOne()
        answer = _decode(self.network.inFlight[0][0])
        self.assertEqual([p.notifyType for p in answer.payloads], [NotifyType.INVALID_KE_PAYLOAD])
        self.network.deliverOne(duplicate=True)
        self.network.pump()
        ikeSA = self.assertSucceeded(a, requestId)
        self.assertEqual(ikeSA.proposal.dhGroup, DhId.ECP_256)
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID])

    def test_retransmittedInvalidKeLate(self):
        """
        The INVALID_KE_PAYLOAD answer to a retransmission of the first
        request arrives after the restarted request went out: ignored.
        """
        a, b = self.makePair(
            initiator=initiatorConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 group ecp256"),
            responder=responderConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group ecp256"))
        requestId = a.initiate("ab")
        first = self.network.inFlight[0]
        self.network.deliverOne()
        # The first request again (a retransmission), answered again.
        self.network.inFlight.append(first)
        self.network.deliverOne()
        self.network.deliverOne()
        # The restarted request is in flight, the second answer behind it.
        self.assertEqual(len(self.network.inFlight), 2)
        self.network.inFlight.reverse()
        self.network.pump()
        self.assertSucceeded(a, requestId)

    def test_duplicatedCookie(self):
        """
        A duplicated COOKIE answer after the initiator repeated IKE_SA_INIT
        with that cookie is ignored, not another restart.
        """
        a, b = self.makePair(settingsB=CoreSettings(cookieThreshold=0))
        requestId = a.initiate("ab")
        self.network.deliverOne()
        answer = _decode(self.network.inFlight[0][0])
        self.assertEqual([p.notifyType for p in answer.payloads], [NotifyType.COOKIE])
        self.network.deliverOne(duplicate=True)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        inits = [m for m in (_decode(d) for d, _, _ in self.network.delivered)
                 if m.exchangeType == ExchangeType.IKE_SA_INIT and not m.isResponse]
        self.assertEqual(len(inits), 2)


class DuplicateFragmentTests(ExchangeTestCase):
    def test_duplicatedAuthResponseFragment(self):
        """
        RFC 7383 2.6.2: a duplicated fragment of the IKE_AUTH response is
        dropped; the IKE SA is established on both sides.
        """
        settings = "set fragmentation"
        init = initiatorConfig(settings=settings, ids=False, extra="srcid a.example")
        resp = responderConfig(settings=settings, ids=False, extra="srcid %s.example" % ("b" * 300,))
        a, b = self.makePair(initiator=init, responder=resp, settingsA=CoreSettings(fragmentSize=200),
                             settingsB=CoreSettings(fragmentSize=200))
        requestId = a.initiate("ab")
        duplicated = 0
        while self.network.inFlight:
            message = _decode(self.network.inFlight[0][0])
            if message.isResponse and message.isFragment and message.sealedPayload.fragmentNumber == 1:
                duplicated += 1
                self.network.deliverOne(duplicate=True)
            else:
                self.network.deliverOne()
        self.assertEqual(duplicated, 1)
        ikeSA = self.assertSucceeded(a, requestId)
        self.assertEqual(ikeSA.state, IKEState.VALID)
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID])
        self.assertEqual(len(ikeSA.children), 1)


class ReinitiationTests(ExchangeTestCase):
    def makeActivePair(self):
        backoff = BackoffPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.0)
        # No DPD: the tests below lose every datagram for minutes.
        initiator = initiatorConfig(settings="set dpd_check_interval 0")
        responder = parseConfig('set dpd_check_interval 0\nikev2 "ba" active esp from 10.2.0.0/24 to 10.1.0.0/24 '
                                'local %s peer %s srcid b.example dstid a.example psk "secret"' % (B_ADDR, A_ADDR))
        return self.makePair(initiator=initiator, responder=responder, settingsA=CoreSettings(reinitiate=backoff),
                             settingsB=CoreSettings(reinitiate=backoff))

    def test_responderSAOfActivePolicyDeleted(self):
        """
        The peer initiated the IKE SA of our active policy while our own
        attempt was failing; when the peer deletes it, we initiate again.
        """
        a, b = self.makeActivePair()
        a.execute(a.core.startup())
        # Our first attempt is lost; the peer's command gets through.
        self.network.inFlight.clear()
        requestId = b.initiate("ba")
        self.network.pump()
        self.assertSucceeded(b, requestId)
        # Our attempt gives up (its request was lost) and the retry timer
        # finds the peer's IKE SA up.
        for _ in range(200):
            self.network.inFlight.clear()
            a.clock.advance(1)
        self.assertEqual([(sa.initiator, sa.state) for sa in a.ikeSAs], [(False, IKEState.VALID)])
        b.command(b.core.deleteIKESA, b.ikeSAs[0])
        self.network.pump()
        self.assertEqual(a.ikeSAs, [])
        a.clock.advance(1.0)
        self.network.pump()
        self.assertEqual([(sa.initiator, sa.state) for sa in a.ikeSAs], [(True, IKEState.VALID)])

    def test_acquiredSAOfActivePolicyDeleted(self):
        """
        An active policy's IKE SA started by a command (or an acquire) is
        kept up too when the peer deletes it.
        """
        a, b = self.makeActivePair()
        requestId = a.initiate("ab")
        self.network.pump()
        self.assertSucceeded(a, requestId)
        b.command(b.core.deleteIKESA, b.ikeSAs[0])
        self.network.pump()
        self.assertEqual(a.ikeSAs, [])
        a.clock.advance(1.0)
        self.network.pump()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID])

    def test_abandonedHalfOpenNotReinitiated(self):
        """
        A peer's IKE_SA_INIT for our active policy that never authenticates
        is forgotten without initiating that policy: strangers must not
        drive (or keep postponing) our re-initiation.
        """
        a, b = self.makeActivePair()
        b.initiate("ba")
        self.network.deliverOne()
        self.assertEqual(len(a.ikeSAs), 1)
        for _ in range(130):
            self.network.inFlight.clear()
            a.clock.advance(0.5)
        self.assertEqual(a.ikeSAs, [])
        self.assertNotIn(TimerKey.reinitiate("ab"), a.timers)

    def test_halfOpenPeerSAAtRetryTime(self):
        """
        When our retry comes due while a peer's IKE SA for the policy is
        still half open, the retry is not given up for that SA (which may
        never authenticate): our own attempts go on.
        """
        a, b = self.makeActivePair()
        a.execute(a.core.startup())
        while TimerKey.reinitiate("ab") not in a.timers:
            self.network.inFlight.clear()
            a.clock.advance(0.5)
        b.initiate("ba")
        self.network.deliverOne()
        self.assertEqual([(sa.initiator, sa.state) for sa in a.ikeSAs], [(False, IKEState.SA_INIT)])
        self.network.inFlight.clear()
        a.clock.advance(2.0)
        self.assertEqual(sorted(sa.initiator for sa in a.ikeSAs), [False, True])

    def test_invalidKeFailureReinitiated(self):
        """
        An active policy whose IKE_SA_INIT fails for good (the responder
        wants a group we did not offer) is still tried again, with backoff.
        """
        backoff = BackoffPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.0)
        a, b = self.makePair(
            initiator=initiatorConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519"),
            responder=responderConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group ecp256"),
            settingsA=CoreSettings(reinitiate=backoff))
        a.execute(a.core.startup())
        self.network.pump()
        self.assertEqual(a.ikeSAs, [])
        for attempt in range(4):
            delay = a.timers[TimerKey.reinitiate("ab")].getTime() - a.clock.seconds()
            self.assertEqual(delay, 2.0 ** attempt)
            a.clock.advance(delay)
            self.assertEqual(len(self.network.inFlight), 1)
            self.network.pump()
        self.assertIn(TimerKey.reinitiate("ab"), a.timers)


def _exchanges(network, kind):
    return [m for m in (_decode(d) for d, _, _ in network.delivered) if m.exchangeType == kind]


class DeadPeerDetectionTests(ExchangeTestCase):
    def establishWithDpd(self, interval=10, settingsA=None):
        """
        A with DPD every C{interval} seconds, without the timers' jitter
        (L{DPDJitterTests}) unless C{settingsA} says otherwise.
        """
        settings = "set dpd_check_interval %d" % (interval,)
        backoff = BackoffPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.0)
        return self.establish(initiator=initiatorConfig(settings=settings),
                              responder=responderConfig(settings="set dpd_check_interval 0"),
                              settingsA=settingsA or CoreSettings(reinitiate=backoff, dpdJitter=0.0))

    def test_lateAnswerWithinSchedule(self):
        """
        RFC 7296 2.4: the peer is dead only when the retransmissions went
        unanswered. A peer that answers the first transmission of the check
        late, after three retransmissions of it, keeps its IKE SA: the
        retransmissions stop and the next check is an interval later.
        """
        a, b, ikeSA = self.establishWithDpd()
        a.clock.advance(10)
        (first,) = list(self.network.inFlight)
        held = []
        for _ in range(3):
            held.append(self.network.drop())
            a.clock.advance(a.timers[TimerKey.retransmit(ikeSA.localSPI)].getTime() - a.clock.seconds())
        self.assertEqual(len(self.network.inFlight), 1)
        self.network.drop()
        self.assertEqual(held[0], first)
        # The peer answers the first transmission now.
        self.network.inFlight.append(first)
        self.network.pump()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID])
        self.assertNotIn(TimerKey.retransmit(ikeSA.localSPI), a.timers)
        a.clock.advance(200)
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID])
        self.assertEqual(a.eventsOf(IKESADown), [])

    def test_answerAfterScheduleTooLate(self):
        """
        The other side of the rule: an answer after the last retransmission
        timed out comes too late, the IKE SA is already gone.
        """
        a, b, ikeSA = self.establishWithDpd()
        a.clock.advance(10)
        first = self.network.drop()
        while a.ikeSAs and a.clock.seconds() < 200:
            self.network.inFlight.clear()
            a.clock.advance(0.5)
        self.assertEqual(a.ikeSAs, [])
        self.network.inFlight.append(first)
        self.network.pump()
        self.assertEqual(a.ikeSAs, [])
        (down,) = a.eventsOf(IKESADown)
        self.assertEqual(down.reason, "peer not responding")

    def test_peerGone(self):
        """
        The peer vanishes: after C{dpd_check_interval} seconds without a
        word from it an empty INFORMATIONAL goes out, is retransmitted on
        the schedule, and after the last one the IKE SA is deleted, its
        Child SA removed from the datapath, and the active policy initiated
        again.
        """
        a, b, ikeSA = self.establishWithDpd()
        (child,) = ikeSA.children
        self.assertIn(TimerKey.dpd(ikeSA.localSPI), a.timers)
        a.clock.advance(9.5)
        self.assertEqual(self.network.inFlight, [])
        a.clock.advance(0.5)
        (check,) = [_decode(d) for d, _, _ in self.network.inFlight]
        self.assertEqual((check.exchangeType, check.isResponse), (ExchangeType.INFORMATIONAL, False))
        sent = []
        while a.ikeSAs and a.clock.seconds() < 200:
            sent += [self.network.drop() for _ in list(self.network.inFlight)]
            a.clock.advance(0.5)
        self.assertEqual(len(sent), a.core.settings.retransmit.tries)
        self.assertEqual(len({d for d, _, _ in sent}), 1)
        self.assertEqual(a.ikeSAs, [])
        (removed,) = a.eventsOf(RemoveChildSA)
        self.assertEqual({sa.spi for sa in removed.sas}, {child.spiIn, child.spiOut})
        (down,) = a.eventsOf(IKESADown)
        self.assertEqual((down.reason, down.established), ("peer not responding", True))
        self.assertNotIn(TimerKey.dpd(ikeSA.localSPI), a.timers)
        # The active policy is negotiated again.
        self.assertIn(TimerKey.reinitiate("ab"), a.timers)
        self.network.inFlight.clear()
        a.clock.advance(1.0)
        (init,) = [_decode(d) for d, _, _ in self.network.inFlight]
        self.assertEqual(init.exchangeType, ExchangeType.IKE_SA_INIT)

    def test_manySAsNothingLeft(self):
        """
        Twenty IKE SAs (of a passive policy, so none comes back) to a peer
        that vanishes: every one is found dead and deleted, and no timer,
        query or counter of theirs is left behind.
        """
        config = parseConfig('set dpd_check_interval 10\nikev2 "ab" passive esp from 10.1.0.0/24 to 10.2.0.0/24 '
                             'local %s peer %s srcid a.example dstid b.example psk "secret"' % (A_ADDR, B_ADDR))
        a, b = self.makePair(initiator=config, responder=responderConfig(settings="set dpd_check_interval 0"))
        for _ in range(20):
            requestId = a.initiate("ab")
            self.network.pump()
            self.assertSucceeded(a, requestId)
        self.assertEqual(len(a.ikeSAs), 20)
        while a.ikeSAs and a.clock.seconds() < 300:
            self.network.inFlight.clear()
            a.clock.advance(0.5)
        self.assertEqual(a.ikeSAs, [])
        self.assertEqual(len(a.eventsOf(IKESADown)), 20)
        self.assertEqual(a.timers, {})
        self.assertEqual(a.core.dpd._queries, {})
        self.assertEqual(len(a.core.dpd._packets), 0)

    def test_peerAlive(self):
        """
        A live peer answers the check; the IKE SA stays and is checked again
        an interval later.
        """
        a, b, ikeSA = self.establishWithDpd()
        before = len(self.network.delivered)
        for _ in range(3):
            a.clock.advance(10)
            self.network.pump()
        checks = _exchanges(self.network, ExchangeType.INFORMATIONAL)
        self.assertEqual([m.isResponse for m in checks], [False, True] * 3)
        self.assertEqual(len(self.network.delivered) - before, 6)
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID])
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID])

    def test_recentRequestDefers(self):
        """
        An authenticated request from the peer counts as liveness: the
        check waits a full interval after it.
        """
        a, b, ikeSA = self.establishWithDpd()
        a.clock.advance(6)
        b.command(b.core.checkLiveness, b.ikeSAs[0])
        self.network.pump()
        before = len(self.network.delivered)
        a.clock.advance(9.5)
        self.assertEqual(self.network.inFlight, [])
        a.clock.advance(6.5)
        self.assertEqual(len(self.network.inFlight), 1)
        self.network.pump()
        self.assertEqual(len(self.network.delivered) - before, 2)

    def test_espCountsAsTraffic(self):
        """
        Packets the datapath counted on the inbound SA since the last check
        are traffic from the peer: no INFORMATIONAL while they grow.
        """
        a, b, ikeSA = self.establishWithDpd()
        (child,) = ikeSA.children
        before = len(self.network.delivered)
        for n in range(1, 4):
            a.packets[child.spiIn] = 100 * n
            a.clock.advance(10)
            self.assertEqual(self.network.inFlight, [])
        queries = a.eventsOf(QuerySAUsage)
        self.assertEqual(len(queries), 3)
        self.assertEqual([sa.spi for sa in queries[0].sas], [child.spiIn])
        # The counter stops: the next check goes on the wire.
        a.clock.advance(10)
        self.assertEqual(len(self.network.inFlight), 1)
        self.network.pump()
        self.assertEqual(len(self.network.delivered) - before, 2)

    def test_datapathNeverAnswers(self):
        """
        A datapath that never answers the usage query cannot stop DPD: the
        next check is armed anyway, and the unanswered query forgotten.
        """
        a, b, ikeSA = self.establishWithDpd()
        a.execute = lambda actions, execute=a.execute: execute(
            [action for action in actions if not isinstance(action, QuerySAUsage)])
        for _ in range(3):
            a.clock.advance(10)
        self.assertIn(TimerKey.dpd(ikeSA.localSPI), a.timers)
        self.assertEqual(len(a.core.dpd._queries), 1)

    def test_disabled(self):
        """
        C{set dpd_check_interval 0}: no DPD timer, nothing sent.
        """
        a, b, ikeSA = self.establishWithDpd(interval=0)
        self.assertNotIn(TimerKey.dpd(ikeSA.localSPI), a.timers)
        a.clock.advance(3600)
        self.assertEqual(self.network.inFlight, [])

    def test_reload(self):
        """
        A reload that changes C{dpd_check_interval} applies to the IKE SAs
        already up: from off to 5 s, then off again.
        """
        a, b, ikeSA = self.establishWithDpd(interval=0)
        a.execute(a.core.reload(initiatorConfig(settings="set dpd_check_interval 5")))
        a.clock.advance(5)
        self.assertEqual(len(self.network.inFlight), 1)
        self.network.pump()
        a.execute(a.core.reload(initiatorConfig(settings="set dpd_check_interval 0")))
        self.assertNotIn(TimerKey.dpd(ikeSA.localSPI), a.timers)
        a.clock.advance(3600)
        self.assertEqual(self.network.inFlight, [])

    def test_retransmitLimit(self):
        """
        The retransmission limit is configurable: with two tries the dead
        peer is given up after two transmissions of the check.
        """
        backoff = BackoffPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.0)
        a, b, ikeSA = self.establishWithDpd(settingsA=CoreSettings(
            reinitiate=backoff, retransmit=RetransmitSchedule(tries=2)))
        a.clock.advance(10)
        sent = []
        while a.ikeSAs and a.clock.seconds() < 100:
            sent += [self.network.drop() for _ in list(self.network.inFlight)]
            a.clock.advance(0.5)
        self.assertEqual(len(sent), 2)
        self.assertEqual(a.ikeSAs, [])


class DPDJitterTests(ExchangeTestCase):
    """
    The DPD timers are jittered (C{CoreSettings.dpdJitter}): IKE SAs
    established together are checked spread over a part of the interval,
    never before a full interval without traffic (RFC 7296 2.4).
    """

    def establishMany(self, n, jitter=0.25):
        config = parseConfig('set dpd_check_interval 60\nikev2 "ab" passive esp from 10.1.0.0/24 to 10.2.0.0/24 '
                             'local %s peer %s srcid a.example dstid b.example psk "secret"' % (A_ADDR, B_ADDR))
        a, b = self.makePair(initiator=config, responder=responderConfig(settings="set dpd_check_interval 0"),
                             settingsA=CoreSettings(dpdJitter=jitter, ikeSAsPerIdentity=n))
        for _ in range(n):
            requestId = a.initiate("ab")
            self.network.pump()
            self.assertSucceeded(a, requestId)
        return a, b

    def deadlines(self, host):
        return sorted(call.getTime() - host.clock.seconds() for key, call in host.timers.items()
                      if key.kind == "dpd")

    def test_spread(self):
        """
        Forty IKE SAs established in the same second: their checks are due
        between 60 and 75 seconds later (an interval plus up to a quarter
        of it), at forty different times spread over that span; none is
        checked before 60 s.
        """
        a, b = self.establishMany(40)
        deadlines = self.deadlines(a)
        self.assertEqual(len(deadlines), 40)
        self.assertEqual(len(set(deadlines)), 40)
        self.assertGreaterEqual(deadlines[0], 60)
        self.assertLess(deadlines[-1], 75)
        # Spread, not bunched: both halves of the span are used.
        self.assertLess(deadlines[0], 64)
        self.assertGreater(deadlines[-1], 71)
        before = len(self.network.delivered)
        a.clock.advance(59.9)
        self.assertEqual(self.network.inFlight, [])
        a.clock.advance(15.2)
        checks = [m for m in (_decode(d) for d, _, _ in self.network.inFlight)]
        self.assertEqual(len(checks), 40)
        self.assertEqual({m.exchangeType for m in checks}, {ExchangeType.INFORMATIONAL})
        self.network.pump()
        self.assertEqual(len(self.network.delivered) - before, 80)

    def test_rearmedJittered(self):
        """
        After an answered check, the next one is again an interval plus a
        jitter drawn anew: each IKE SA's second wait differs from its
        first, so SAs drift apart instead of keeping a common beat.
        """
        a, b = self.establishMany(10)
        start = a.clock.seconds()
        first = {key: call.getTime() for key, call in a.timers.items() if key.kind == "dpd"}
        while a.clock.seconds() < start + 76:
            a.clock.advance(0.125)
            self.network.pump()
        second = {key: call.getTime() for key, call in a.timers.items() if key.kind == "dpd"}
        self.assertEqual(set(second), set(first))
        waits = [second[key] - first[key] for key in first]
        # Each check went out (and was answered) within a step of its
        # deadline, and the next waits an interval plus up to a quarter.
        self.assertTrue(all(60 <= w < 75 + 0.125 for w in waits), waits)
        jitters = [first[key] - start - 60 for key in first]
        self.assertLess(sum(abs(w - j - 60) < 0.2 for w, j in zip(waits, jitters)), 3, (waits, jitters))

    def test_noJitter(self):
        """
        C{dpdJitter=0}: every check exactly an interval after establishment.
        """
        a, b = self.establishMany(5, jitter=0.0)
        self.assertEqual(self.deadlines(a), [60.0] * 5)


class RetransmitScheduleTests(ExchangeTestCase):
    def test_jitter(self):
        """
        RFC 7296 2.1: the timeouts grow exponentially up to the cap, each
        shortened by up to C{jitter} of itself; after C{tries} the peer is
        dead.
        """
        schedule = RetransmitSchedule(initial=2.0, base=2.0, cap=32.0, tries=6, jitter=0.25)
        self.assertEqual([schedule.timeout(n) for n in range(7)], [2.0, 4.0, 8.0, 16.0, 32.0, 32.0, None])
        self.assertEqual(schedule.timeout(1, 0.5), 3.5)
        self.assertEqual(schedule.timeout(5, 0.999), 32.0 - 32.0 * 0.25 * 0.999)

    def test_jitterVaries(self):
        """
        The jitter is drawn per request and attempt, within [0, 1).
        """
        values = {jitterOf(b"request %d" % (n,), attempt) for n in range(20) for attempt in range(3)}
        self.assertEqual(len(values), 60)
        self.assertTrue(all(0 <= v < 1 for v in values))

    def test_retransmissionsJittered(self):
        """
        The timer of a request is the schedule's, less the jitter of that
        request.
        """
        a, b = self.makePair()
        a.initiate("ab")
        data = self.network.inFlight[0][0]
        delay = a.timers[TimerKey.retransmit(a.ikeSAs[0].localSPI)].getTime() - a.clock.seconds()
        schedule = a.core.settings.retransmit
        self.assertEqual(delay, schedule.timeout(0, jitterOf(data, 0)))
        self.assertLess(delay, schedule.timeout(0))


class InitialContactTests(ExchangeTestCase):
    def restartA(self):
        """
        A reboots: a new core at the same address, which knows no SA.
        """
        self.network.hosts.pop(A_ADDR)
        return Host(self.network, A_ADDR, initiatorConfig(), seed="rebooted")

    def test_rebootedPeerReplacesStaleSA(self):
        """
        The peer rebooted and initiates with INITIAL_CONTACT: the responder
        deletes its old IKE SA and Child SA of that identity (out of the
        datapath) and keeps only the new one.
        """
        a, b, old = self.establish()
        (staleB,) = b.ikeSAs
        (staleChild,) = staleB.children
        a = self.restartA()
        requestId = a.initiate("ab")
        self.network.pump()
        new = self.assertSucceeded(a, requestId)
        (kept,) = b.ikeSAs
        self.assertEqual(kept.spiI, new.spiI)
        self.assertEqual(kept.state, IKEState.VALID)
        self.assertEqual(staleB.state, IKEState.CLOSED)
        (removed,) = b.eventsOf(RemoveChildSA)
        self.assertEqual({sa.spi for sa in removed.sas}, {staleChild.spiIn, staleChild.spiOut})
        (down,) = b.eventsOf(IKESADown)
        self.assertEqual(down.reason, "replaced: the peer sent INITIAL_CONTACT")
        # The old SA went before the new Child SA was installed.
        kinds = [type(e) for e in b.events if isinstance(e, (InstallChildSA, RemoveChildSA))]
        self.assertEqual(kinds, [InstallChildSA, RemoveChildSA, InstallChildSA])

    def test_secondSAWithoutInitialContact(self):
        """
        A second IKE SA to a peer we have one with carries no
        INITIAL_CONTACT: the peer keeps both.
        """
        a, b, first = self.establish()
        requestId = a.initiate("ab")
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID, IKEState.VALID])
        self.assertEqual(b.eventsOf(RemoveChildSA), [])

    def test_concurrentSAsOneInitialContact(self):
        """
        Two active policies to one peer start together: only the first IKE
        SA to reach IKE_AUTH says INITIAL_CONTACT, so the peer keeps both.
        """
        nets = [("10.1.%d.0/24" % n, "10.2.%d.0/24" % n) for n in (1, 2)]
        a, b = self.makePair(initiator=_policies("a", [("ab%d" % n, o, t) for n, (o, t) in enumerate(nets, 1)]),
                             responder=_policies("b", [("ba%d" % n, t, o) for n, (o, t) in enumerate(nets, 1)]))
        a.execute(a.core.startup())
        self.network.pump()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID, IKEState.VALID])
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID, IKEState.VALID])
        self.assertEqual(b.eventsOf(RemoveChildSA), [])

    def test_otherIdentityKept(self):
        """
        INITIAL_CONTACT deletes only the IKE SAs of the same identities.
        """
        responder = parseConfig('ikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s '
                                'srcid b.example psk "secret"' % (B_ADDR, A_ADDR))
        a, b = self.makePair(responder=responder)
        requestId = a.initiate("ab")
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.network.hosts.pop(A_ADDR)
        other = Host(self.network, A_ADDR, parseConfig(
            'ikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s srcid c.example '
            'dstid b.example psk "secret"' % (A_ADDR, B_ADDR)), seed="other")
        requestId = other.initiate("ab")
        self.network.pump()
        self.assertSucceeded(other, requestId)
        self.assertEqual(sorted(str(sa.peerId) for sa in b.ikeSAs), ["FQDN/a.example", "FQDN/c.example"])
        self.assertEqual(b.eventsOf(RemoveChildSA), [])


def _policies(side, names):
    """
    One policy per C{(name, ours, theirs)} to the other host, with the
    same identities.
    """
    local, peer = (A_ADDR, B_ADDR) if side == "a" else (B_ADDR, A_ADDR)
    ids = "srcid a.example dstid b.example" if side == "a" else "srcid b.example dstid a.example"
    mode = "active" if side == "a" else "passive"
    return parseConfig("\n".join(
        'ikev2 "%s" %s esp from %s to %s local %s peer %s %s psk "secret"'
        % (name, mode, ours, theirs, local, peer, ids)
        for name, ours, theirs in names))


class SeveralPoliciesTests(ExchangeTestCase):
    def makeThree(self):
        nets = [("10.1.%d.0/24" % n, "10.2.%d.0/24" % n) for n in (1, 2, 3)]
        a = _policies("a", [("ab%d" % n, ours, theirs) for n, (ours, theirs) in enumerate(nets, 1)])
        b = _policies("b", [("ba%d" % n, theirs, ours) for n, (ours, theirs) in enumerate(nets, 1)])
        return self.makePair(initiator=a, responder=b)

    def test_childrenOfSeveralPolicies(self):
        """
        The peer (charon with three children) creates its first Child SA in
        IKE_AUTH and the others with CREATE_CHILD_SA on the same IKE SA:
        each falls under the responder's policy with those flows, whatever
        policy the IKE SA was bound to.
        """
        a, b = self.makeThree()
        requestId = a.initiate("ab1")
        self.network.pump()
        ikeSA = self.assertSucceeded(a, requestId)
        for name in ("ab2", "ab3"):
            task = ChildCreateTask(True, a.core._newRequestId(), policy=a.core.policies.byName(name))
            a.execute(a.core.queueTask(ikeSA, task))
            self.network.pump()
            self.assertIsInstance(self.assertSucceeded(a, max(a.results)), ChildSA)
        (ikeSAB,) = b.ikeSAs
        self.assertEqual(len(ikeSA.children), 3)
        self.assertEqual(sorted(str(c.localTS[0]) for c in ikeSAB.children),
                         ["10.2.1.0/24", "10.2.2.0/24", "10.2.3.0/24"])
        self.assertEqual(sorted(c.policy.name for c in ikeSAB.children), ["ba1", "ba2", "ba3"])
        self.assertEqual(sorted(c.policy.name for c in ikeSA.children), ["ab1", "ab2", "ab3"])

    def test_flowsOfNoPolicyRefused(self):
        """
        Flows that no policy of the peer has are still refused with
        TS_UNACCEPTABLE.
        """
        a, b = self.makeThree()
        requestId = a.initiate("ab1")
        self.network.pump()
        ikeSA = self.assertSucceeded(a, requestId)
        stranger = _policies("a", [("x", "10.9.0.0/24", "10.8.0.0/24")]).policies[0]
        requestId = a.core._newRequestId()
        a.execute(a.core.queueTask(ikeSA, ChildCreateTask(True, requestId, policy=stranger)))
        self.network.pump()
        error = self.assertFailedWith(a, requestId, TrafficSelectorsUnacceptable)
        self.assertEqual(error.notify, NotifyType.TS_UNACCEPTABLE)
        self.assertEqual(len(b.ikeSAs[0].children), 1)

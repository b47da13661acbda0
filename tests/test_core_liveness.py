"""
Tests for keeping IKE SAs alive under loss: stale and duplicated answers,
re-initiation of active policies, dead peer detection and INITIAL_CONTACT
(two in-memory cores pumped with a fake clock).
"""

from ikedtx.config import parseConfig
from ikedtx.core.sa import IKEState
from ikedtx.core.settings import CoreSettings
from ikedtx.core.timers import BackoffPolicy, TimerKey
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType
from ikedtx.wire.message import Message

from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, initiatorConfig, responderConfig


def _decode(data):
    return Message.decode(data)


def elapse(clock, seconds, step=0.5):
    """
    Advance C{clock} by C{seconds} in small steps, so that the timers armed
    on the way fire too.
    """
    for _ in range(int(seconds / step)):
        clock.advance(step)


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
        initiator = initiatorConfig()
        responder = parseConfig('ikev2 "ba" active esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s '
                                'srcid b.example dstid a.example psk "secret"' % (B_ADDR, A_ADDR))
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

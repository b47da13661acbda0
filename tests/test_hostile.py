# -*- test-case-name: tests.test_hostile -*-
"""
Hostile messages sent to a live daemon (a real C{iked} process on
loopback UDP ports): each test asserts the answer (a Notify, or silence
proved by a probe answered first), that the daemon's log holds no
traceback, and that a legitimate peer still connects afterwards.
"""

from twisted.trial.unittest import TestCase

from ikedtx.control.sync import showSA
from ikedtx.core.errors import NegotiationFailed, TrafficSelectorsUnacceptable
from ikedtx.core.states import IKEState
from ikedtx.wire.constants import DhId, ExchangeType, HeaderFlag, NotifyType, ProtocolId
from ikedtx.wire.fragments import fragmentMessage
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import (
    Delete, KeyExchange, Nonce, Notify, TrafficSelector, TrafficSelectorsInitiator, UnknownPayload)

from tests.hostile import HostilePeer, LiveDaemon


class HostileTestCase(TestCase):
    def setUp(self):
        self.daemon = LiveDaemon(self)
        self.peer = HostilePeer(self, self.daemon)

    def assertStillServes(self):
        """
        No traceback in the log, and a new legitimate IKE SA comes up.
        """
        self.daemon.assertCleanLog(self)
        ikeSA = HostilePeer(self, self.daemon).establish()
        self.assertEqual(ikeSA.state, IKEState.VALID)
        self.daemon.assertCleanLog(self)

    def assertNotifies(self, payloads, notifyType):
        self.assertEqual([(p.notifyType) for p in payloads if isinstance(p, Notify)], [notifyType])


class PlainMessageTests(HostileTestCase):
    """
    RFC 7296 3.14: every message after IKE_SA_INIT is protected; one in
    the clear on a known SA is dropped, quietly.
    """

    def plain(self, ikeSA, exchangeType, messageId):
        message = Message(ikeSA.spiI, ikeSA.spiR, exchangeType, HeaderFlag.INITIATOR, messageId,
                          payloads=[Notify(NotifyType.INITIAL_CONTACT)])
        return message.encode()

    def test_plainInformational(self):
        """
        A plain INFORMATIONAL on an established SA: no answer, the window
        stays where it was, nothing in the log above debug.
        """
        ikeSA = self.peer.establish()
        for _ in range(3):
            self.peer.send(self.plain(ikeSA, ExchangeType.INFORMATIONAL, 2))
        self.assertEqual(self.peer.probe(ikeSA, 2)[:3], (ExchangeType.INFORMATIONAL, 2, True))
        self.assertNotIn("message has no SK", self.daemon.log())
        self.assertStillServes()

    def test_plainAuth(self):
        """
        A plain IKE_AUTH on a half-open SA: dropped; the real IKE_AUTH then
        succeeds.
        """
        ikeSA = self.peer.initOnly()
        self.peer.send(self.plain(ikeSA, ExchangeType.IKE_AUTH, 1))
        self.peer.finishAuth()
        self.assertEqual(ikeSA.state, IKEState.VALID)
        self.assertStillServes()


class TrafficSelectorTests(HostileTestCase):
    """
    A traffic selector whose start address is above its end selects
    nothing: the Child SA is refused with TS_UNACCEPTABLE (RFC 7296 2.9)
    and the Message ID window moves on.
    """

    def invert(self, payloads):
        out = []
        for p in payloads:
            if isinstance(p, TrafficSelectorsInitiator):
                p = TrafficSelectorsInitiator([TrafficSelector("10.1.0.255", "10.1.0.0")])
            out.append(p)
        return out

    def test_inAuth(self):
        """
        In IKE_AUTH: the IKE SA comes up, its Child SA is refused.
        """
        self.peer.tamper(ExchangeType.IKE_AUTH, self.invert)
        requestId, actions = self.peer.core.initiate("attacker")
        self.peer.execute(actions)
        error = self.peer.runUntil(requestId, TrafficSelectorsUnacceptable)
        self.assertEqual(error.notify, NotifyType.TS_UNACCEPTABLE)
        (ikeSA,) = self.peer.core.ikeSAs.values()
        self.assertEqual(self.peer.probe(ikeSA, 2)[:3], (ExchangeType.INFORMATIONAL, 2, True))
        self.assertStillServes()

    def test_inCreateChildSA(self):
        """
        In CREATE_CHILD_SA: TS_UNACCEPTABLE, and the next request is
        answered.
        """
        ikeSA = self.peer.establish()
        self.peer.tamper(ExchangeType.CREATE_CHILD_SA, self.invert)
        requestId, actions = self.peer.core.createChildSA(ikeSA)
        self.peer.execute(actions)
        error = self.peer.runUntil(requestId, TrafficSelectorsUnacceptable)
        self.assertEqual(error.notify, NotifyType.TS_UNACCEPTABLE)
        self.assertEqual(self.peer.probe(ikeSA, 3)[:3], (ExchangeType.INFORMATIONAL, 3, True))
        self.assertStillServes()


class CriticalPayloadTests(HostileTestCase):
    """
    RFC 7296 2.5: an IKE_SA_INIT request with a payload we do not know and
    whose critical bit is set is answered UNSUPPORTED_CRITICAL_PAYLOAD
    naming its type, in the clear and without state.
    """

    def assertRefused(self, payloadType):
        request = self.peer.initRequest()
        request.payloads.append(UnknownPayload(payloadType, b"hostile", critical=True))
        self.peer.send(request.encode())
        answer = self.peer.receiveMessage()
        self.assertEqual((answer.spiI, answer.spiR, answer.isResponse, answer.exchangeType),
                         (request.spiI, b"\0" * 8, True, ExchangeType.IKE_SA_INIT))
        self.assertEqual([(n.notifyType, bytes(n.data)) for n in answer.payloads],
                         [(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, bytes([payloadType]))])

    def test_unknownType(self):
        self.assertRefused(200)
        self.assertStillServes()

    def test_ikev1Types(self):
        """
        IKEv1's payload types (1 to 13) are unknown to IKEv2.
        """
        for payloadType in (1, 5, 8, 13):
            self.assertRefused(payloadType)
        self.assertStillServes()

    def test_proposalAtTopLevel(self):
        """
        A Proposal substructure (2) is no payload of its own.
        """
        self.assertRefused(2)
        self.assertStillServes()

    def test_notCritical(self):
        """
        Without the critical bit the unknown payload is skipped and the
        request answered as usual.
        """
        request = self.peer.initRequest()
        request.payloads.append(UnknownPayload(200, b"ignored"))
        self.peer.send(request.encode())
        answer = self.peer.receiveMessage()
        self.assertEqual(answer.spiI, request.spiI)
        self.assertNotEqual(answer.spiR, b"\0" * 8)


class PreAuthenticationTests(HostileTestCase):
    """
    Until IKE_AUTH has authenticated the peer only IKE_AUTH is taken:
    an INFORMATIONAL (a Delete, CVE-2019-12312) or a CREATE_CHILD_SA
    (CVE-2014-2338) on a half-open SA is dropped without taking its Message
    ID, so that the real IKE_AUTH with that ID then succeeds.
    """

    def assertDroppedBeforeAuth(self, exchangeType, payloads):
        ikeSA = self.peer.initOnly()
        self.peer.sendProtected(ikeSA, exchangeType, payloads, 1)
        self.peer.finishAuth()
        self.assertEqual(ikeSA.state, IKEState.VALID)
        self.assertStillServes()

    def test_deleteBeforeAuth(self):
        self.assertDroppedBeforeAuth(ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE)])

    def test_emptyInformationalBeforeAuth(self):
        self.assertDroppedBeforeAuth(ExchangeType.INFORMATIONAL, [])

    def test_createChildBeforeAuth(self):
        self.assertDroppedBeforeAuth(ExchangeType.CREATE_CHILD_SA, [Nonce(b"n" * 32)])


class InitRequestTests(HostileTestCase):
    """
    RFC 7296 3.1: the initiator's SPI of an IKE_SA_INIT request is never
    zero; such a request is dropped without an answer.
    """

    def test_zeroInitiatorSpi(self):
        request = self.peer.initRequest()
        request.spiI = b"\0" * 8
        self.peer.send(request.encode())
        genuine = self.peer.initRequest()
        self.peer.send(genuine.encode())
        answer = self.peer.receiveMessage()
        self.assertEqual(answer.spiI, genuine.spiI)
        self.assertStillServes()
        self.assertNotIn(b"\0" * 8, [sa["spiI"] for sa in showSA(self.daemon.socketPath)])


class FragmentTests(HostileTestCase):
    """
    RFC 7383 2.5: SKF fragments are taken only once both peers announced
    IKEV2_FRAGMENTATION_SUPPORTED; else they are dropped, not reassembled.
    """

    def test_fragmentsNotNegotiated(self):
        ikeSA = self.peer.initOnly()
        self.assertFalse(ikeSA.peerFragmentation)
        auth = Message(ikeSA.spiI, ikeSA.spiR, ExchangeType.IKE_AUTH, HeaderFlag.INITIATOR, 1,
                       encrypted=[Notify(NotifyType.INITIAL_CONTACT), Nonce(b"x" * 200)])
        for fragment in fragmentMessage(auth, ikeSA.cipherOut, 160):
            self.peer.send(fragment)
        self.peer.finishAuth()
        self.assertEqual(ikeSA.state, IKEState.VALID)
        self.assertStillServes()


class StrayKeyExchangeTests(HostileTestCase):
    """
    RFC 7296 1.3.1: a CREATE_CHILD_SA with a KE payload when no proposal
    has a key exchange is refused (INVALID_SYNTAX), not ignored.
    """

    def test_keWithoutGroup(self):
        ikeSA = self.peer.establish()

        def addKe(payloads):
            return payloads + [KeyExchange(DhId.MODP_2048, b"\x01" * 256)]

        self.peer.tamper(ExchangeType.CREATE_CHILD_SA, addKe)
        requestId, actions = self.peer.core.createChildSA(ikeSA)
        self.peer.execute(actions)
        error = self.peer.runUntil(requestId, NegotiationFailed)
        self.assertEqual(error.notify, NotifyType.INVALID_SYNTAX)
        self.assertEqual(self.peer.probe(ikeSA, 3)[:3], (ExchangeType.INFORMATIONAL, 3, True))
        self.assertStillServes()

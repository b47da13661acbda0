# -*- test-case-name: tests.test_hostile -*-
"""
Hostile messages sent to a live daemon (a real C{iked} process on
loopback UDP ports): each test asserts the answer (a Notify, or silence
proved by a probe answered first), that the daemon's log holds no
traceback, and that a legitimate peer still connects afterwards.
"""

import socket

from twisted.trial.unittest import TestCase

from ikedtx.control.sync import showSA
from ikedtx.core.errors import NegotiationFailed, TrafficSelectorsUnacceptable
from ikedtx.core.states import IKEState
from ikedtx.wire.constants import DhId, ExchangeType, HeaderFlag, NotifyType, ProtocolId
from ikedtx.wire.fragments import fragmentMessage
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import (
    Delete, KeyExchange, Nonce, Notify, TrafficSelector, TrafficSelectorsInitiator, UnknownPayload)

from tests.hostile import INITIATOR, RESPONDER, HostilePeer, LiveDaemon


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
        self.assertNotIn("message has no SK", self.daemon.settledLog())
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


class RegressionListTests(HostileTestCase):
    """
    The patterns of strongSwan's, openiked's and libreswan's security
    advisories, against the live daemon.
    """

    def assertInitAnswered(self, request, notifyType, data=None):
        """
        C{request} (an IKE_SA_INIT L{Message}) is answered with
        C{notifyType} alone, in the clear, keeping no state.
        """
        self.peer.send(request.encode())
        answer = self.peer.receiveMessage()
        self.assertEqual((answer.spiI, answer.spiR, answer.isResponse), (request.spiI, b"\0" * 8, True))
        self.assertEqual([n.notifyType for n in answer.payloads], [notifyType])
        if data is not None:
            self.assertEqual(bytes(answer.payloads[0].data), data)
        self.assertEqual(showSA(self.daemon.socketPath), [])

    def assertInitDropped(self, data):
        """
        The datagram C{data} gets no answer: a genuine IKE_SA_INIT sent
        after it is the first one answered.
        """
        self.peer.send(data)
        genuine = self.peer.initRequest()
        self.peer.send(genuine.encode())
        self.assertEqual(self.peer.receiveMessage().spiI, genuine.spiI)

    def test_malformedLengths(self):
        """
        Header and payload lengths that disagree with the datagram
        (CVE-2018-10811 pattern): dropped.
        """
        data = self.peer.initRequest().encode()
        self.assertInitDropped(data[:24] + (len(data) + 100).to_bytes(4, "big") + data[28:])
        self.assertInitDropped(data[:-5])
        self.assertInitDropped(data[:30] + b"\xff\xff" + data[32:])
        self.assertStillServes()

    def test_missingKeyExchange(self):
        """
        IKE_SA_INIT without KE: INVALID_SYNTAX.
        """
        request = self.peer.initRequest()
        request.payloads = [p for p in request.payloads if not isinstance(p, KeyExchange)]
        self.assertInitAnswered(request, NotifyType.INVALID_SYNTAX)
        self.assertStillServes()

    def test_oversizedKeyExchange(self):
        """
        A KE of the right group but thousands of octets (CVE-2023-41913
        pattern): INVALID_SYNTAX, nothing computed on it.
        """
        request = self.peer.initRequest()
        request.payloads = [KeyExchange(p.group, b"\x42" * 4000) if isinstance(p, KeyExchange) else p
                            for p in request.payloads]
        self.assertInitAnswered(request, NotifyType.INVALID_SYNTAX)
        self.assertStillServes()

    def test_unknownGroup(self):
        """
        A KE of a group nobody offered: INVALID_KE_PAYLOAD naming ours.
        """
        request = self.peer.initRequest()
        ours = next(p.group for p in request.payloads if isinstance(p, KeyExchange))
        request.payloads = [KeyExchange(0x7777, b"\x01" * 32) if isinstance(p, KeyExchange) else p
                            for p in request.payloads]
        self.assertInitAnswered(request, NotifyType.INVALID_KE_PAYLOAD, ours.to_bytes(2, "big"))
        self.assertStillServes()

    def test_authWithoutAuthPayload(self):
        """
        IKE_AUTH without AUTH: refused, the half-open SA goes, and the
        legitimate initiator still connects.
        """
        ikeSA = self.peer.initOnly()
        self.peer.sendProtected(ikeSA, ExchangeType.IKE_AUTH, [Notify(NotifyType.INITIAL_CONTACT)], 1)
        message, payloads = self.peer.receiveProtected(ikeSA)
        self.assertEqual((message.exchangeType, message.messageId, message.isResponse),
                         (ExchangeType.IKE_AUTH, 1, True))
        self.assertIn([p.notifyType for p in payloads if isinstance(p, Notify)],
                      ([NotifyType.INVALID_SYNTAX], [NotifyType.AUTHENTICATION_FAILED]))
        self.assertStillServes()

    def test_badIntegrity(self):
        """
        A protected request whose ICV does not verify: dropped, the window
        is where it was.
        """
        ikeSA = self.peer.establish()
        data = bytearray(self.peer.protect(ikeSA, ExchangeType.INFORMATIONAL, [], 2))
        data[-1] ^= 1
        self.peer.send(bytes(data))
        self.assertEqual(self.peer.probe(ikeSA, 2)[:3], (ExchangeType.INFORMATIONAL, 2, True))
        self.assertStillServes()

    def test_bogusDelete(self):
        """
        A Delete naming an ESP SPI we never made (CVE-2019-10155 family):
        answered, nothing of ours deleted.
        """
        ikeSA = self.peer.establish()
        self.peer.sendProtected(ikeSA, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.ESP, [b"\xde\xad\xbe\xef"])], 2)
        message, payloads = self.peer.receiveProtected(ikeSA)
        self.assertEqual((message.messageId, message.isResponse), (2, True))
        self.assertEqual([p for p in payloads if isinstance(p, Delete)], [])
        (sa,) = showSA(self.daemon.socketPath)
        self.assertEqual((sa["state"], len(sa["children"])), ("VALID", 1))
        self.assertStillServes()

    def test_replayedRequest(self):
        """
        An old request replayed after the window moved: dropped (the
        response cache only answers the last request).
        """
        ikeSA = self.peer.establish()
        old = self.peer.protect(ikeSA, ExchangeType.INFORMATIONAL, [], 2)
        self.peer.send(old)
        self.peer.receiveProtected(ikeSA)
        self.assertEqual(self.peer.probe(ikeSA, 3)[:2], (ExchangeType.INFORMATIONAL, 3))
        self.peer.send(old)
        self.assertEqual(self.peer.probe(ikeSA, 4)[:2], (ExchangeType.INFORMATIONAL, 4))
        self.assertStillServes()

    def test_spoofedSourceWithoutMobike(self):
        """
        RFC 7296 2.11, 2.23: a valid request from another address or port
        is answered there, but without NAT the IKE SA does not move to it.
        """
        ikeSA = self.peer.establish()
        before = showSA(self.daemon.socketPath)[0]["remote"]
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(other.close)
        other.bind(("127.0.0.1", 0))
        other.settimeout(20)
        other.sendto(self.peer.protect(ikeSA, ExchangeType.INFORMATIONAL, [], 2), self.daemon.address)
        answer = Message.decode(other.recvfrom(65536)[0])
        self.assertEqual((answer.messageId, answer.isResponse), (2, True))
        self.assertEqual(showSA(self.daemon.socketPath)[0]["remote"], before)
        self.assertStillServes()



class NegotiatedFragmentTests(TestCase):
    """
    RFC 7383 with fragmentation negotiated: a forged fragment (bad ICV)
    and one announcing more fragments than the limit are dropped, and the
    real IKE_AUTH, in fragments, then completes.
    """

    def test_fragmentAbuse(self):
        daemon = LiveDaemon(self, "set fragmentation\n" + RESPONDER)
        peer = HostilePeer(self, daemon, "set fragmentation\n" + INITIATOR, fragmentSize=300)
        ikeSA = peer.initOnly()
        self.assertTrue(ikeSA.peerFragmentation)
        self.assertGreater(len(peer._held), 1)
        forged = bytearray(peer._held[0].data)
        forged[-1] ^= 1
        peer.send(bytes(forged))
        tooMany = bytearray(peer._held[0].data)
        # SKF: generic header, Fragment Number, Total Fragments.
        tooMany[34:36] = (5000).to_bytes(2, "big")
        peer.send(bytes(tooMany))
        peer.finishAuth()
        self.assertEqual(ikeSA.state, IKEState.VALID)
        daemon.assertCleanLog(self)
        self.assertEqual(HostilePeer(self, daemon, "set fragmentation\n" + INITIATOR).establish().state,
                         IKEState.VALID)

    def test_forgedFirstFragmentDoesNotPoisonTheCache(self):
        """
        RFC 7383 2.6.1: the response cache is keyed on the first fragment
        of the request; a forged first fragment (bad ICV) sent while the
        real one is being reassembled must not replace it, or the real
        initiator's retransmission would go unanswered.
        """
        daemon = LiveDaemon(self, "set fragmentation\n" + RESPONDER)
        peer = HostilePeer(self, daemon, "set fragmentation\n" + INITIATOR, fragmentSize=300)
        ikeSA = peer.initOnly()
        fragments = [action.data for action in peer._held]
        forged = bytearray(fragments[0])
        forged[-1] ^= 1
        peer.send(fragments[0])
        peer.send(bytes(forged))
        peer._held = peer._held[1:]
        peer.finishAuth()
        self.assertEqual(ikeSA.state, IKEState.VALID)
        for data in fragments:
            peer.send(data)
        again = peer.receiveMessage()
        self.assertEqual((again.exchangeType, again.messageId, again.isResponse), (ExchangeType.IKE_AUTH, 1, True))
        daemon.assertCleanLog(self)


class LogFloodTests(HostileTestCase):
    """
    Whoever sees an IKE SA's SPIs can send messages for it: forged ones
    (bad ICV, wrong Initiator flag, no SK, Message IDs outside the window
    or of an answered request) leave no line at info level, so they cannot
    fill the log.
    """

    def test_forgeriesAreQuiet(self):
        ikeSA = self.peer.establish()
        before = len(self.daemon.settledLog().splitlines())
        forged = bytearray(self.peer.protect(ikeSA, ExchangeType.INFORMATIONAL, [], 2))
        forged[-1] ^= 1
        wrongFlag = self.peer.protect(ikeSA, ExchangeType.INFORMATIONAL, [], 2, flags=0)
        plain = Message(ikeSA.spiI, ikeSA.spiR, ExchangeType.INFORMATIONAL, HeaderFlag.INITIATOR, 2).encode()
        outOfWindow = self.peer.protect(ikeSA, ExchangeType.INFORMATIONAL, [], 9)
        notTheAnswered = self.peer.protect(ikeSA, ExchangeType.INFORMATIONAL, [Notify(NotifyType.INITIAL_CONTACT)], 1)
        for _ in range(50):
            for data in (bytes(forged), wrongFlag, plain, outOfWindow, notTheAnswered):
                self.peer.send(data)
        self.assertEqual(self.peer.probe(ikeSA, 2)[:3], (ExchangeType.INFORMATIONAL, 2, True))
        self.assertEqual(self.daemon.settledLog().splitlines()[before:], [])
        self.assertStillServes()


class LiveInitFuzzTests(HostileTestCase):
    """
    Mutated IKE_SA_INIT requests (and mutated protected requests on an
    established SA, with a bad ICV or none) thrown at the live daemon:
    nothing but codec errors, and a legitimate peer connects afterwards.
    """

    def test_mutatedInitRequests(self):
        import random

        from tests.test_core_fuzz import CASES, mutate

        rng = random.Random(2)
        ikeSA = self.peer.establish()
        genuine = [self.peer.initRequest().encode() for _ in range(4)]
        # From a socket of its own, so that the answers (never read) do not
        # crowd the probe's.
        fuzz = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(fuzz.close)
        fuzz.bind(("127.0.0.1", 0))
        for batch in range(max(CASES // 50, 1)):
            # A new probe each batch (a cached response is sent again only
            # so often, core.limits): a mutation that changes nothing is
            # the probe itself, and the probe then a retransmission,
            # answered from the cache all the same.
            messageId = 2 + batch
            protected = self.peer.protect(ikeSA, ExchangeType.INFORMATIONAL, [], messageId)
            for case in range(50):
                fuzz.sendto(mutate(rng, rng.choice(genuine + [protected])), self.daemon.address)
            # The batch was handled once the probe is answered (and the
            # daemon's socket buffer never overflows).
            self.peer.send(protected)
            message, payloads = self.peer.receiveProtected(ikeSA)
            self.assertEqual((message.exchangeType, message.messageId, message.isResponse),
                             (ExchangeType.INFORMATIONAL, messageId, True))
        self.assertStillServes()

"""
Tests for IKE_FOLLOWUP_KE (RFC 9370 2.2.3, L{ikedtx.core.tasks.followup}):
a Child SA made with CREATE_CHILD_SA whose proposal has additional key
exchanges, two in-memory cores pumped one datagram at a time.
"""

import hashlib
import hmac

from ikedtx.core import cryptoglue
from ikedtx.core.actions import InstallChildSA
from ikedtx.core.errors import NegotiationFailed, NoProposalChosen
from ikedtx.wire.constants import DhId, ExchangeType, HeaderFlag, NotifyType, PayloadType, TransformType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import KeyExchange, Notify

from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, initiatorConfig, responderConfig

IKE = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519"
ONE = IKE + " childsa enc aes-256-gcm group curve25519 addke1 mlkem768"
TWO = IKE + " childsa enc aes-256-gcm group curve25519 addke1 mlkem768 addke2 mlkem1024"
NOKE = IKE + " childsa enc aes-256-gcm addke1 mlkem768"
CLASSIC = IKE + " childsa enc aes-256-gcm group curve25519"
OPTIONAL = IKE + " childsa enc aes-256-gcm group curve25519 addke1 mlkem768 addke1 none"

CREATE, FOLLOWUP = ExchangeType.CREATE_CHILD_SA, ExchangeType.IKE_FOLLOWUP_KE


class FollowupTestCase(ExchangeTestCase):
    def pair(self, initiator, responder):
        a, b, ikeSA = self.establish(initiator=initiatorConfig(extra=initiator),
                                     responder=responderConfig(extra=responder))
        self.network.delivered.clear()
        return a, b, ikeSA

    def exchanges(self):
        return [(Message.decode(d).exchangeType, Message.decode(d).isResponse) for d, _, _ in self.network.delivered]

    def inner(self, index, ikeSA, sender):
        """
        The decrypted payloads of delivered message C{index}, sent by the
        initiator or the responder (C{sender}) of C{ikeSA}'s IKE SA.
        """
        message = Message.decode(self.network.delivered[index][0])
        cipher = ikeSA.cipherOut if sender == "a" else ikeSA.cipherIn
        return message.decrypt(cipher)

    def peerOf(self, b, child):
        return [c for c in b.ikeSAs[0].children if c.spiIn == child.spiOut][0]


class FollowupTests(FollowupTestCase):
    def test_oneStepByStep(self):
        """
        RFC 9370 2.2.3: the CREATE_CHILD_SA response carries
        ADDITIONAL_KEY_EXCHANGE; the IKE_FOLLOWUP_KE request sends its data
        back with the ML-KEM-768 KE; neither side installs the Child SA
        after CREATE_CHILD_SA, only with the IKE_FOLLOWUP_KE exchange, and
        both install the same keys.
        """
        a, b, ikeSA = self.pair(ONE, ONE)
        requestId = a.command(a.core.createChildSA, ikeSA)
        installsA, installsB = len(a.eventsOf(InstallChildSA)), len(b.eventsOf(InstallChildSA))
        self.network.deliverOne()  # CREATE_CHILD_SA request
        self.network.deliverOne()  # its response
        self.assertEqual((len(a.eventsOf(InstallChildSA)), len(b.eventsOf(InstallChildSA))), (installsA, installsB))
        response = self.inner(1, ikeSA, "b")
        links = [bytes(p.data) for p in response if isinstance(p, Notify)
                 and p.notifyType == NotifyType.ADDITIONAL_KEY_EXCHANGE]
        self.assertEqual([len(link) for link in links], [16])
        self.network.deliverOne()  # IKE_FOLLOWUP_KE request
        request = self.inner(2, ikeSA, "a")
        self.assertEqual([(p.group, len(p.data)) for p in request if isinstance(p, KeyExchange)],
                         [(DhId.ML_KEM_768, 1184)])
        self.assertIn(links[0], [bytes(p.data) for p in request if isinstance(p, Notify)])
        # The responder installs once its last response is built; the
        # initiator once that response arrives.
        self.assertEqual(len(b.eventsOf(InstallChildSA)), installsB + 1)
        self.assertEqual(len(a.eventsOf(InstallChildSA)), installsA)
        self.network.deliverOne()  # IKE_FOLLOWUP_KE response
        self.assertEqual(len(a.eventsOf(InstallChildSA)), installsA + 1)
        child = self.assertSucceeded(a, requestId)
        peer = self.peerOf(b, child)
        self.assertEqual((child.keyOut, child.keyIn), (peer.keyIn, peer.keyOut))
        self.assertEqual(child.proposal.additionalKeyExchanges, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertEqual(self.exchanges(), [(CREATE, False), (CREATE, True), (FOLLOWUP, False), (FOLLOWUP, True)])
        self.assertEqual([Message.decode(d).messageId for d, _, _ in self.network.delivered], [2, 2, 3, 3])

    def test_keymat(self):
        """
        RFC 9370 2.2.4 checked with hmac: KEYMAT = prf+(SK_d, SK(0) | Ni |
        Nr | SK(1) | SK(2)), SK(0) = g^ir, the secrets of the CREATE_CHILD_SA and of the
        two IKE_FOLLOWUP_KE exchanges in that order; the initiator's
        outbound AES-GCM-256 key and salt are its first 36 bytes.
        """
        secrets = []
        real = cryptoglue.deriveChildKeys

        def record(ikeSA, child, shared, initiator, nonces=None):
            if initiator:
                secrets.extend(bytes(s) for s in shared)
            return real(ikeSA, child, shared, initiator, nonces)

        a, b, ikeSA = self.pair(TWO, TWO)
        self.patch(cryptoglue, "deriveChildKeys", record)
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        self.assertEqual([len(s) for s in secrets], [32, 32, 32])
        self.assertEqual(self.exchanges(), [(CREATE, False), (CREATE, True), (FOLLOWUP, False), (FOLLOWUP, True),
                                            (FOLLOWUP, False), (FOLLOWUP, True)])
        ni, nr = child.nonces
        seed = secrets[0] + ni + nr + secrets[1] + secrets[2]
        t = hmac.new(bytes(ikeSA.keys.skD), seed + b"\x01", hashlib.sha256).digest()
        t += hmac.new(bytes(ikeSA.keys.skD), t + seed + b"\x02", hashlib.sha256).digest()
        self.assertEqual(bytes(child.keyOut[0]), t[:36])
        self.assertEqual(bytes(self.peerOf(b, child).keyIn[0]), t[:36])

    def test_withoutKeInCreateChildSA(self):
        """
        A childsa proposal without a group (KE NONE) but with ADDKE1: the
        KEYMAT is prf+(SK_d, Ni | Nr | SK(1)) (SK(0) empty); both ends agree.
        """
        secrets = []
        real = cryptoglue.deriveChildKeys

        def record(ikeSA, child, shared, initiator, nonces=None):
            if initiator:
                secrets.extend(bytes(s) for s in shared)
            return real(ikeSA, child, shared, initiator, nonces)

        a, b, ikeSA = self.pair(NOKE, NOKE)
        self.patch(cryptoglue, "deriveChildKeys", record)
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        self.assertEqual([len(s) for s in secrets], [0, 32])
        ni, nr = child.nonces
        seed = ni + nr + secrets[1]
        t = hmac.new(bytes(ikeSA.keys.skD), seed + b"\x01", hashlib.sha256).digest()
        t += hmac.new(bytes(ikeSA.keys.skD), t + seed + b"\x02", hashlib.sha256).digest()
        self.assertEqual(bytes(child.keyOut[0]), t[:36])
        self.assertEqual(child.pfsGroup, 0)
        peer = self.peerOf(b, child)
        self.assertEqual((child.keyOut, child.keyIn), (peer.keyIn, peer.keyOut))
        self.assertEqual(self.exchanges()[2:], [(FOLLOWUP, False), (FOLLOWUP, True)])

    def test_ikeAuthChildUnaffected(self):
        """
        The first Child SA, made in IKE_AUTH, takes no key exchange, so no
        IKE_FOLLOWUP_KE either (RFC 7296 1.2; RFC 9370 2.2.3).
        """
        a, b, ikeSA = self.pair(ONE, ONE)
        self.assertEqual(len(ikeSA.children), 1)
        self.assertEqual(ikeSA.children[0].proposal.additionalKeyExchanges, [])

    def test_optionalDeclined(self):
        """
        ADDKE1 NONE beside ML-KEM-768 lets a responder without additional
        key exchanges answer CREATE_CHILD_SA alone.
        """
        a, b, ikeSA = self.pair(OPTIONAL, CLASSIC)
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        self.assertEqual(child.proposal.additionalKeyExchanges, [])
        self.assertEqual(self.exchanges(), [(CREATE, False), (CREATE, True)])

    def test_requiredMismatch(self):
        """
        A required additional key exchange the responder's childsa lacks is
        NO_PROPOSAL_CHOSEN; the IKE SA stays.
        """
        a, b, ikeSA = self.pair(ONE, CLASSIC)
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        self.assertFailedWith(a, requestId, NoProposalChosen)
        self.assertEqual(len(ikeSA.children), 1)
        self.assertTrue(ikeSA.isEstablished)

    def test_lossOfEach(self):
        """
        Losing any of the four messages is recovered by retransmission; the
        responder installs the Child SA once.
        """
        for index in range(4):
            a, b, ikeSA = self.pair(ONE, ONE)
            installs = len(b.eventsOf(InstallChildSA))
            requestId = a.command(a.core.createChildSA, ikeSA)
            step = 0
            while self.network.inFlight:
                if step == index:
                    self.network.drop()
                    a.clock.advance(2.0)
                else:
                    self.network.deliverOne()
                step += 1
            child = self.assertSucceeded(a, requestId)
            peer = self.peerOf(b, child)
            self.assertEqual((child.keyOut, child.keyIn), (peer.keyIn, peer.keyOut))
            self.assertEqual(len(b.eventsOf(InstallChildSA)), installs + 1)


class FollowupErrorTests(FollowupTestCase):
    def test_wrongLink(self):
        """
        RFC 9370 2.2.3: an IKE_FOLLOWUP_KE whose ADDITIONAL_KEY_EXCHANGE
        data is not the responder's is answered STATE_NOT_FOUND; nothing is
        installed and the IKE SA stays.
        """
        a, b, ikeSA = self.pair(ONE, ONE)
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.deliverOne()
        self.network.deliverOne()
        installs = len(b.eventsOf(InstallChildSA))
        self.network.inFlight.pop(0)
        ke = cryptoglue.keyExchangeMethod(DhId.ML_KEM_768).generate(a.core.randomBytes)
        datagrams = a.core.encode(ikeSA, FOLLOWUP, [KeyExchange(DhId.ML_KEM_768, ke.publicData),
                                                    Notify.additionalKeyExchange(b"\x00" * 16)], 3, response=False)
        b.receive(datagrams[0], (B_ADDR, 500), (A_ADDR, 500))
        (answer,) = self.network.inFlight
        payloads = Message.decode(answer[0]).decrypt(ikeSA.cipherIn)
        self.assertEqual([p.notifyType for p in payloads], [NotifyType.STATE_NOT_FOUND])
        self.assertEqual(len(b.eventsOf(InstallChildSA)), installs)
        self.assertTrue(b.ikeSAs[0].isEstablished)
        self.assertNotIn(requestId, a.results)

    def test_orphan(self):
        """
        An IKE_FOLLOWUP_KE when no CREATE_CHILD_SA waits for one is answered
        STATE_NOT_FOUND.
        """
        a, b, ikeSA = self.pair(ONE, ONE)
        datagrams = a.core.encode(ikeSA, FOLLOWUP, [Notify.additionalKeyExchange(b"x" * 16)], 2, response=False)
        b.receive(datagrams[0], (B_ADDR, 500), (A_ADDR, 500))
        (answer,) = self.network.inFlight
        payloads = Message.decode(answer[0]).decrypt(ikeSA.cipherIn)
        self.assertEqual([p.notifyType for p in payloads], [NotifyType.STATE_NOT_FOUND])

    def test_responseWithoutLink(self):
        """
        A CREATE_CHILD_SA response that chose additional key exchanges but
        has no ADDITIONAL_KEY_EXCHANGE fails the request; nothing is
        installed.
        """
        a, b, ikeSA = self.pair(ONE, ONE)
        installs = len(a.eventsOf(InstallChildSA))
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.deliverOne()
        data, _, _ = self.network.inFlight.pop(0)
        saB = b.ikeSAs[0]
        inner = Message.decode(data).decrypt(saB.cipherOut)
        stripped = [p for p in inner if not (isinstance(p, Notify)
                                             and p.notifyType == NotifyType.ADDITIONAL_KEY_EXCHANGE)]
        forged = Message(saB.spiI, saB.spiR, CREATE, HeaderFlag.RESPONSE, 2, encrypted=stripped)
        a.receive(forged.encode(saB.cipherOut), (A_ADDR, 500), (B_ADDR, 500))
        error = self.assertFailedWith(a, requestId, NegotiationFailed)
        self.assertIn("ADDITIONAL_KEY_EXCHANGE", str(error))
        self.assertEqual(len(a.eventsOf(InstallChildSA)), installs)
        self.assertTrue(ikeSA.isEstablished)
        self.assertIn(PayloadType.KE, [p.payloadType for p in stripped])


class InterleavedTests(FollowupTestCase):
    def test_informationalBetween(self):
        """
        RFC 9370 2.2.3 ties IKE_FOLLOWUP_KE to its CREATE_CHILD_SA by the
        link data, not by adjacency: an INFORMATIONAL request the initiator
        sends in between is answered, and the IKE_FOLLOWUP_KE after it still
        finds the responder's pending Child SA.
        """
        a, b, ikeSA = self.pair(ONE, ONE)
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.deliverOne()  # CREATE_CHILD_SA request; B answers (Message ID 2)
        response = self.network.inFlight.pop(0)
        # A peer's INFORMATIONAL (an empty liveness check) with Message ID 3.
        datagrams = a.core.encode(ikeSA, ExchangeType.INFORMATIONAL, [], 3, response=False)
        b.receive(datagrams[0], (B_ADDR, 500), (A_ADDR, 500))
        (answer,) = self.network.inFlight
        self.assertEqual(Message.decode(answer[0]).decrypt(ikeSA.cipherIn), [])
        self.network.inFlight.pop(0)
        ikeSA.taskManager.nextRequestId = 3  # so that IKE_FOLLOWUP_KE goes out as 4
        self.network.inFlight.append(response)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        peer = self.peerOf(b, child)
        self.assertEqual((child.keyOut, child.keyIn), (peer.keyIn, peer.keyOut))
        self.assertEqual(Message.decode(self.network.delivered[-2][0]).messageId, 4)

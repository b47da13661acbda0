"""
Tests for L{ikedtx.core.tasks.intermediate}: IKE_INTERMEDIATE (RFC 9242)
carrying RFC 9370 additional key exchanges, two in-memory cores pumped
one datagram at a time with a fake clock.
"""

from ikedtx.core.actions import IKESAUp, InstallChildSA
from ikedtx.core.errors import NegotiationFailed, NoProposalChosen
from ikedtx.core.sa import IKEState
from ikedtx.core.tasks.common import offersFromConfig, offersFromWire, supported
from ikedtx.core.proposals import select
from ikedtx.core import cryptoglue
from ikedtx.wire.constants import DhId, ExchangeType, HeaderFlag, NotifyType, PayloadType, TransformType
from ikedtx.wire.message import Message
from ikedtx.wire.fragments import fragmentSizeFor
from ikedtx.wire.payloads import Notify, Proposal, SecurityAssociation, Transform

from tests.corehelpers import CoreTestCase, Host, Network
from tests.test_core_auth import SignatureTestCase
from tests.test_core_exchanges import A_ADDR, B_ADDR, initiatorConfig, responderConfig

ONE = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768"
TWO = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768 addke2 mlkem1024"
OPTIONAL = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768 addke1 none"
CLASSIC = "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519"

INIT, INTERMEDIATE, AUTH = ExchangeType.IKE_SA_INIT, ExchangeType.IKE_INTERMEDIATE, ExchangeType.IKE_AUTH


class IntermediateTestCase(CoreTestCase):
    def makePair(self, initiator, responder, settings=""):
        self.network = Network()
        self.a = Host(self.network, A_ADDR, initiatorConfig(extra=initiator, settings=settings))
        self.b = Host(self.network, B_ADDR, responderConfig(extra=responder, settings=settings))
        return self.a, self.b

    def establish(self, initiator, responder, settings=""):
        a, b = self.makePair(initiator, responder, settings)
        requestId = a.initiate("ab")
        self.network.pump()
        return a, b, self.assertSucceeded(a, requestId)

    def exchanges(self):
        """
        (exchange type, response) of every whole message delivered (the
        fragments of a message count once).
        """
        out = []
        for data, _, _ in self.network.delivered:
            message = Message.decode(data)
            if message.isFragment and message.sealedPayload.fragmentNumber != 1:
                continue
            out.append((message.exchangeType, message.isResponse))
        return out

    def assertSameKeys(self, a, b):
        (saA,), (saB,) = a.ikeSAs, b.ikeSAs
        for name in ("skD", "skAi", "skAr", "skEi", "skEr", "skPi", "skPr"):
            self.assertEqual(bytes(getattr(saA.keys, name)), bytes(getattr(saB.keys, name)), name)
        (childA,), (childB,) = saA.children, saB.children
        self.assertEqual(childA.keyOut, childB.keyIn)
        self.assertEqual(childA.keyIn, childB.keyOut)
        return saA, saB


class AdditionalKeyExchangeTests(IntermediateTestCase):
    def test_oneStepByStep(self):
        """
        RFC 9242 2, RFC 9370 2.2: both IKE_SA_INIT messages announce
        INTERMEDIATE_EXCHANGE_SUPPORTED, the responder chooses ADDKE1
        ML-KEM-768, one IKE_INTERMEDIATE exchange carries its KE payloads,
        then IKE_AUTH runs under the updated keys and both ends agree.
        """
        a, b = self.makePair(ONE, ONE)
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        (saA,), (saB,) = a.ikeSAs, b.ikeSAs
        for data, _, _ in self.network.delivered:
            notifies = [p.notifyType for p in Message.decode(data).payloads if isinstance(p, Notify)]
            self.assertIn(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED, notifies)
        self.assertEqual(saA.proposal.additionalKeyExchanges, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertEqual(saA.state, IKEState.AUTH_REQUEST)
        initialD = bytes(saA.keys.skD)
        self.assertEqual(initialD, bytes(saB.keys.skD))

        self.network.deliverOne()  # IKE_INTERMEDIATE request
        self.assertEqual(bytes(saA.keys.skD), initialD, "the initiator changes keys only with the response")
        self.assertNotEqual(bytes(saB.keys.skD), initialD, "the responder changes keys once its response is out")
        self.network.deliverOne()  # IKE_INTERMEDIATE response
        self.assertEqual(bytes(saA.keys.skD), bytes(saB.keys.skD))
        self.assertNotEqual(bytes(saA.keys.skD), initialD)
        self.assertTrue(saA.intermediate.complete)
        self.assertEqual(saA.intermediate.intAuth(), saB.intermediate.intAuth())
        self.assertEqual(saA.intermediate.intAuth()[-4:], b"\x00\x00\x00\x02")

        self.network.pump()
        self.assertIs(self.assertSucceeded(a, requestId), saA)
        self.assertEqual(self.exchanges(), [(INIT, False), (INIT, True), (INTERMEDIATE, False), (INTERMEDIATE, True),
                                            (AUTH, False), (AUTH, True)])
        request = Message.decode(self.network.delivered[2][0])
        self.assertEqual(request.messageId, 1)
        self.assertEqual(Message.decode(self.network.delivered[4][0]).messageId, 2)
        self.assertSameKeys(a, b)
        self.assertEqual(len(b.eventsOf(IKESAUp)), 1)

    def test_kePayloads(self):
        """
        RFC 9370 2.2.1: the IKE_INTERMEDIATE request carries the
        initiator's ML-KEM-768 encapsulation key (1184 bytes) and the
        response the ciphertext (1088 bytes), each in a KE payload of that
        method.
        """
        a, b = self.makePair(ONE, ONE)
        a.initiate("ab")
        for _ in range(2):
            self.network.deliverOne()
        request = self.network.inFlight[0]
        payloads = Message.decode(request[0]).decrypt(a.ikeSAs[0].cipherOut)
        ke = [p for p in payloads if p.payloadType == PayloadType.KE]
        self.assertEqual([(k.group, len(k.data)) for k in ke], [(DhId.ML_KEM_768, 1184)])
        cipherIn = b.ikeSAs[0].cipherIn
        self.network.deliverOne()
        response = self.network.inFlight[0]
        payloads = Message.decode(response[0]).decrypt(a.ikeSAs[0].cipherIn)
        ke = [p for p in payloads if p.payloadType == PayloadType.KE]
        self.assertEqual([(k.group, len(k.data)) for k in ke], [(DhId.ML_KEM_768, 1088)])
        self.assertIsNotNone(cipherIn)

    def test_several(self):
        """
        RFC 9370 2.2: two additional key exchanges (ADDKE1 ML-KEM-768,
        ADDKE2 ML-KEM-1024) are two IKE_INTERMEDIATE exchanges in type
        order, the keys updated after each; IKE_AUTH's Message ID is 3.
        """
        a, b, ikeSA = self.establish(TWO, TWO)
        self.assertEqual(self.exchanges(), [(INIT, False), (INIT, True), (INTERMEDIATE, False), (INTERMEDIATE, True),
                                            (INTERMEDIATE, False), (INTERMEDIATE, True), (AUTH, False), (AUTH, True)])
        self.assertEqual(ikeSA.intermediate.done, [(TransformType.ADDKE1, DhId.ML_KEM_768),
                                                   (TransformType.ADDKE2, DhId.ML_KEM_1024)])
        self.assertEqual(ikeSA.intermediate.intAuth()[-4:], b"\x00\x00\x00\x03")
        self.assertSameKeys(a, b)

    def test_optionalTaken(self):
        """
        RFC 9370 2.2.1: an initiator that lists ADDKE1 NONE beside
        ML-KEM-768 gets the exchange when the responder requires it.
        """
        a, b, ikeSA = self.establish(OPTIONAL, ONE)
        self.assertEqual(ikeSA.proposal.additionalKeyExchanges, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertIn((INTERMEDIATE, True), self.exchanges())
        self.assertSameKeys(a, b)

    def test_optionalDeclined(self):
        """
        A responder without additional key exchanges picks ADDKE1 NONE of
        an optional proposal: no IKE_INTERMEDIATE, IKE_AUTH without IntAuth.
        """
        a, b, ikeSA = self.establish(OPTIONAL, CLASSIC)
        self.assertEqual(ikeSA.proposal.additionalKeyExchanges, [])
        self.assertEqual(self.exchanges(), [(INIT, False), (INIT, True), (AUTH, False), (AUTH, True)])
        self.assertIsNone(ikeSA.intermediate)
        self.assertSameKeys(a, b)

    def test_responderOptional(self):
        """
        A responder whose proposal makes ML-KEM optional takes it from an
        initiator that offers it, and goes without it with one that does not.
        """
        a, b, ikeSA = self.establish(ONE, OPTIONAL)
        self.assertEqual(ikeSA.proposal.additionalKeyExchanges, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertSameKeys(a, b)
        a, b, ikeSA = self.establish(CLASSIC, OPTIONAL)
        self.assertEqual(ikeSA.proposal.additionalKeyExchanges, [])
        self.assertEqual(self.exchanges(), [(INIT, False), (INIT, True), (AUTH, False), (AUTH, True)])
        notifies = [p.notifyType for p in Message.decode(self.network.delivered[1][0]).payloads
                    if isinstance(p, Notify)]
        self.assertNotIn(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED, notifies)

    def test_requiredMismatch(self):
        """
        RFC 9370 2.2.1: a required additional key exchange the peer does
        not offer is NO_PROPOSAL_CHOSEN, in both directions, and neither
        side keeps an IKE SA.
        """
        for initiator, responder in [(ONE, CLASSIC), (CLASSIC, ONE),
                                     (ONE, CLASSIC.replace("curve25519", "curve25519 addke1 mlkem1024"))]:
            a, b = self.makePair(initiator, responder)
            requestId = a.initiate("ab")
            self.network.pump()
            error = self.assertFailedWith(a, requestId, NoProposalChosen)
            self.assertEqual(error.notify, NotifyType.NO_PROPOSAL_CHOSEN)
            self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))
            self.assertEqual(self.exchanges(), [(INIT, False), (INIT, True)])

    def test_lossOfEach(self):
        """
        RFC 7296 2.1 applied to IKE_INTERMEDIATE: losing any one message
        (the IKE_INTERMEDIATE request or response included) is recovered by
        the initiator's retransmission; the responder answers a repeated
        IKE_INTERMEDIATE request from its cache, under the keys of that
        exchange, and changes its keys only once.
        """
        for index in range(8):
            a, b = self.makePair(TWO, TWO)
            requestId = a.initiate("ab")
            step = 0
            while self.network.inFlight:
                if step == index:
                    self.network.drop()
                    self.assertEqual(self.network.inFlight, [])
                    a.clock.advance(2.0)
                else:
                    self.network.deliverOne()
                step += 1
            self.assertSucceeded(a, requestId)
            self.assertSameKeys(a, b)
            self.assertEqual(len(b.eventsOf(InstallChildSA)), 1)
            self.assertEqual(b.ikeSAs[0].intermediate.done, a.ikeSAs[0].intermediate.done)

    def test_duplicatedRequest(self):
        """
        An IKE_INTERMEDIATE request delivered twice is answered twice with
        the same response and processed once.
        """
        a, b = self.makePair(ONE, ONE)
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        self.network.deliverOne(duplicate=True)
        self.assertEqual(len(self.network.inFlight), 2)
        self.assertEqual(self.network.inFlight[0][0], self.network.inFlight[1][0])
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertSameKeys(a, b)

    def test_fragmented(self):
        """
        RFC 9242 3.4 and RFC 7383: with fragmentation on both sides the
        ML-KEM-1024 KE payloads go in fragments no larger than the
        fragment size, and the IntAuth of a fragmented message is that of
        the whole message (both ends agree on AUTH).
        """
        a, b, ikeSA = self.establish(TWO, TWO, settings="set fragmentation")
        fragments = [Message.decode(d) for d, _, _ in self.network.delivered]
        intermediate = [m for m in fragments if m.exchangeType == INTERMEDIATE]
        self.assertTrue(any(m.isFragment for m in intermediate))
        size = fragmentSizeFor(a.core.settings, ikeSA)
        # RFC 7383 2.5.1 as iked: a 576-octet IPv4 datagram, on port 4500 with the non-ESP marker.
        self.assertEqual((ikeSA.local[1], size), (a.core.settings.nattPort, 576 - 20 - 8 - 4))
        self.assertTrue(all(len(d) <= size for d, _, _ in self.network.delivered))
        self.assertEqual(self.exchanges(), [(INIT, False), (INIT, True), (INTERMEDIATE, False), (INTERMEDIATE, True),
                                            (INTERMEDIATE, False), (INTERMEDIATE, True), (AUTH, False), (AUTH, True)])
        self.assertSameKeys(a, b)

    def test_intAuthBindsMessages(self):
        """
        RFC 9242 3.3.2: AUTH covers the IKE_INTERMEDIATE messages. A
        responder whose IntAuth chain differs (here: one byte of its
        record of the initiator's message changed) refuses the initiator's
        AUTH with AUTHENTICATION_FAILED.
        """
        a, b = self.makePair(ONE, ONE)
        requestId = a.initiate("ab")
        for _ in range(4):
            self.network.deliverOne()
        saB = b.ikeSAs[0]
        chain = bytearray(saB.intermediate.chainI)
        chain[0] ^= 1
        saB.intermediate.chainI = bytes(chain)
        self.network.pump()
        error = self.assertFailedWith(a, requestId, NegotiationFailed)
        self.assertEqual(error.notify, NotifyType.AUTHENTICATION_FAILED)
        self.assertEqual(b.ikeSAs, [])


class ProtocolErrorTests(IntermediateTestCase):
    def test_earlyAuthRefused(self):
        """
        An IKE_AUTH request before the negotiated additional key exchange
        is refused with INVALID_SYNTAX and the responder forgets the SA.
        """
        a, b = self.makePair(ONE, ONE)
        a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        saA = a.ikeSAs[0]
        saA.intermediate.rounds = []
        # Send IKE_AUTH now, skipping IKE_INTERMEDIATE.
        self.network.inFlight.pop(0)
        datagrams = a.core.encode(saA, AUTH, [Notify(NotifyType.INITIAL_CONTACT)], 1, response=False)
        b.receive(datagrams[0], (B_ADDR, 500), (A_ADDR, 500))
        (answer,) = self.network.inFlight
        payloads = Message.decode(answer[0]).decrypt(saA.cipherIn)
        self.assertEqual([p.notifyType for p in payloads], [NotifyType.INVALID_SYNTAX])
        self.assertEqual(b.ikeSAs, [])

    def test_wrongMethodRefused(self):
        """
        RFC 9370 2.2.1: a KE payload of another method than the negotiated
        one in IKE_INTERMEDIATE is answered INVALID_SYNTAX; the initiator
        fails and both sides forget the IKE SA.
        """
        a, b = self.makePair(ONE, ONE)
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        saA = a.ikeSAs[0]
        self.network.inFlight.pop(0)
        from ikedtx.wire.payloads import KeyExchange
        wrong = cryptoglue.keyExchangeMethod(DhId.CURVE25519).generate(a.core.randomBytes)
        datagrams = a.core.encode(saA, INTERMEDIATE, [KeyExchange(DhId.CURVE25519, wrong.publicData)], 1,
                                  response=False)
        b.receive(datagrams[0], (B_ADDR, 500), (A_ADDR, 500))
        (answer,) = self.network.inFlight
        payloads = Message.decode(answer[0]).decrypt(saA.cipherIn)
        self.assertEqual([p.notifyType for p in payloads], [NotifyType.INVALID_SYNTAX])
        self.assertEqual(b.ikeSAs, [])
        self.assertNotIn(requestId, a.results)

    def _sendIntermediate(self, payloads):
        """
        Run IKE_SA_INIT, then send the responder an IKE_INTERMEDIATE
        request of C{payloads} instead of the initiator's own; return the
        responder's answer, decrypted.
        """
        a, b = self.makePair(ONE, ONE)
        self.requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        saA = a.ikeSAs[0]
        self.network.inFlight.pop(0)
        datagrams = a.core.encode(saA, INTERMEDIATE, payloads, 1, response=False)
        b.receive(datagrams[0], (B_ADDR, 500), (A_ADDR, 500))
        (answer,) = self.network.inFlight
        return Message.decode(answer[0]).decrypt(saA.cipherIn)

    def test_shortEncapsulationKeyRefused(self):
        """
        An ML-KEM-768 KE payload of the wrong length (FIPS 203 7.2's input
        check) is answered INVALID_SYNTAX and the responder forgets the SA.
        """
        from ikedtx.wire.payloads import KeyExchange
        payloads = self._sendIntermediate([KeyExchange(DhId.ML_KEM_768, b"\x01" * 1183)])
        self.assertEqual([p.notifyType for p in payloads], [NotifyType.INVALID_SYNTAX])
        self.assertEqual(self.b.ikeSAs, [])

    def test_noKeRefused(self):
        """
        An IKE_INTERMEDIATE request without a KE payload while an
        additional key exchange is due is answered INVALID_SYNTAX.
        """
        payloads = self._sendIntermediate([Notify(NotifyType.INITIAL_CONTACT)])
        self.assertEqual([p.notifyType for p in payloads], [NotifyType.INVALID_SYNTAX])
        self.assertEqual(self.b.ikeSAs, [])

    def test_badResponseFails(self):
        """
        A response whose ML-KEM ciphertext has the wrong length, or that
        has no KE payload, fails the initiator's negotiation cleanly: the
        command fails, the IKE SA is gone, nothing escapes the core.
        """
        from ikedtx.wire.payloads import KeyExchange
        for answer in ([KeyExchange(DhId.ML_KEM_768, b"\x02" * 1000)], [Notify(NotifyType.INITIAL_CONTACT)]):
            a, b = self.makePair(ONE, ONE)
            requestId = a.initiate("ab")
            self.network.deliverOne()
            self.network.deliverOne()
            saB = b.ikeSAs[0]
            # The keys the response goes under: the responder moves on once
            # its own response is out.
            cipher = saB.cipherOut
            self.network.deliverOne()
            self.network.inFlight.pop(0)
            forged = Message(saB.spiI, saB.spiR, INTERMEDIATE, HeaderFlag.RESPONSE, 1, encrypted=answer)
            a.receive(forged.encode(cipher), (A_ADDR, 500), (B_ADDR, 500))
            error = self.assertFailedWith(a, requestId, NegotiationFailed)
            self.assertIn("KE", str(error))
            self.assertEqual(a.ikeSAs, [])

    def test_unexpectedIntermediate(self):
        """
        An IKE_INTERMEDIATE request on an IKE SA without additional key
        exchanges is answered INVALID_SYNTAX (no task takes it).
        """
        a, b = self.makePair(CLASSIC, CLASSIC)
        a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        saA = a.ikeSAs[0]
        self.network.inFlight.pop(0)
        datagrams = a.core.encode(saA, INTERMEDIATE, [], 1, response=False)
        b.receive(datagrams[0], (B_ADDR, 500), (A_ADDR, 500))
        (answer,) = self.network.inFlight
        payloads = Message.decode(answer[0]).decrypt(saA.cipherIn)
        self.assertEqual([p.notifyType for p in payloads], [NotifyType.INVALID_SYNTAX])

    def test_responderRefusesWithoutNotify(self):
        """
        RFC 9370 2.2.1: an initiator that proposes additional key exchanges
        without announcing INTERMEDIATE_EXCHANGE_SUPPORTED gets
        NO_PROPOSAL_CHOSEN.
        """
        from ikedtx.core.tasks import intermediate
        a, b = self.makePair(ONE, ONE)
        self.patch(intermediate, "offersAdditionalKeyExchanges", lambda offers: False)
        requestId = a.initiate("ab")
        self.network.pump()
        error = self.assertFailedWith(a, requestId, NoProposalChosen)
        self.assertEqual(error.notify, NotifyType.NO_PROPOSAL_CHOSEN)
        self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))


class StrongSwanProposalTests(IntermediateTestCase):
    def test_strongSwanSixProposal(self):
        """
        strongSwan 6's C{aes256gcm16-prfsha256-x25519-ke1_mlkem768} arrives
        as one IKE proposal with a type 6 (ADDKE1) transform 36; a
        responder with C{addke1 mlkem768} chooses it, keeping ADDKE1 in its
        answer (RFC 7296 3.3.6: one transform of each type proposed).
        """
        sa = SecurityAssociation([Proposal(1, 1, [
            Transform(TransformType.ENCR, 20, keyLength=256), Transform(TransformType.PRF, 5),
            Transform(TransformType.DH, DhId.CURVE25519), Transform(TransformType.ADDKE1, DhId.ML_KEM_768)])])
        ours = offersFromConfig(responderConfig(extra=ONE).policies[0].ikeProposals)
        chosen = select(ours, offersFromWire(sa), supported, cryptoglue.isAead)
        self.assertEqual(chosen.additionalKeyExchanges, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertIn(TransformType.ADDKE1, {t.type for t in chosen.asOffer(b"").transforms})
        classic = offersFromConfig(responderConfig(extra=CLASSIC).policies[0].ikeProposals)
        self.assertIsNone(select(classic, offersFromWire(sa), supported, cryptoglue.isAead))

    def test_strongSwanOptional(self):
        """
        strongSwan's C{ke1_mlkem768-ke1_none} (ADDKE1 36 and 0 in one
        proposal) is taken with ML-KEM by an ikedtx responder that has it
        and without by one that does not.
        """
        sa = SecurityAssociation([Proposal(1, 1, [
            Transform(TransformType.ENCR, 20, keyLength=256), Transform(TransformType.PRF, 5),
            Transform(TransformType.DH, DhId.CURVE25519), Transform(TransformType.ADDKE1, DhId.ML_KEM_768),
            Transform(TransformType.ADDKE1, DhId.NONE)])])
        for extra, expected in [(ONE, [(TransformType.ADDKE1, DhId.ML_KEM_768)]), (CLASSIC, [])]:
            ours = offersFromConfig(responderConfig(extra=extra).policies[0].ikeProposals)
            chosen = select(ours, offersFromWire(sa), supported, cryptoglue.isAead)
            self.assertEqual(chosen.additionalKeyExchanges, expected)


def _hmac(key, data):
    import hashlib
    import hmac

    return hmac.new(bytes(key), bytes(data), hashlib.sha256).digest()


def _prfPlus(key, seed, length):
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = _hmac(key, t + seed + bytes([n]))
        out += t
        n += 1
    return out[:length]


def _keys(skeyseed, ni, nr, spiI, spiR):
    # AES-GCM-256 (key and 4-byte salt) with HMAC-SHA2-256 as PRF: SK_d 32,
    # no SK_a, SK_e 36, SK_p 32 (RFC 7296 2.14, RFC 5282 7.1).
    material = _prfPlus(skeyseed, ni + nr + spiI + spiR, 32 + 36 + 36 + 32 + 32)
    sizes = [("skD", 32), ("skEi", 36), ("skEr", 36), ("skPi", 32), ("skPr", 32)]
    keys, offset = {}, 0
    for name, size in sizes:
        keys[name] = material[offset:offset + size]
        offset += size
    return keys


def _open(datagram, key):
    """
    Decrypt an unfragmented message protected with AES-GCM-16 (RFC 5282)
    without ikedtx's SK code: C{(A, P, innerType)} as RFC 9242 3.3.2
    defines them (lengths adjusted) and the plaintext inner chain.
    """
    import struct

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    (nextPayload,) = struct.unpack_from("!B", datagram, 16)
    assert nextPayload == 46, "one SK payload, first"
    innerType = datagram[28]
    body = datagram[32:]
    iv, sealed = body[:8], body[8:]
    aad = datagram[:32]
    plaintext = AESGCM(key[:32]).decrypt(key[32:] + iv, sealed, aad)
    inner = plaintext[:-(plaintext[-1] + 1)]
    adjusted = (aad[:24] + struct.pack("!I", 28 + 4 + len(inner)) + aad[28:30]
                + struct.pack("!H", 4 + len(inner)))
    return adjusted, inner, innerType


def _payloads(chain, firstType):
    import struct

    out, kind, offset = [], firstType, 0
    while kind:
        following, _, length = struct.unpack_from("!BBH", chain, offset)
        out.append((kind, chain[offset + 4:offset + length]))
        kind, offset = following, offset + length
    return out


class KeyScheduleTests(IntermediateTestCase):
    def test_independentComputation(self):
        """
        RFC 9370 2.2.2 and RFC 9242 3.3.2 checked step by step against a
        computation made here with hmac and hashlib (and AES-GCM from
        cryptography to open the messages): SKEYSEED(0) and SK_*(0) from
        IKE_SA_INIT, SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) after
        each ML-KEM exchange, each IKE_INTERMEDIATE message opened with
        the keys of its exchange, the IntAuth chains over them, and the
        initiator's PSK AUTH over RealMessage1 | Nr | MACedIDForI | IntAuth.
        """
        secrets = []
        realDerive, realUpdate = cryptoglue.deriveIKEKeys, cryptoglue.updateIKEKeys

        def recordDerive(core, ikeSA, shared):
            if ikeSA.initiator:
                secrets.append(bytes(shared))
            return realDerive(core, ikeSA, shared)

        def recordUpdate(core, ikeSA, shared):
            if ikeSA.initiator:
                secrets.append(bytes(shared))
            return realUpdate(core, ikeSA, shared)

        self.patch(cryptoglue, "deriveIKEKeys", recordDerive)
        self.patch(cryptoglue, "updateIKEKeys", recordUpdate)
        a, b, ikeSA = self.establish(TWO, TWO)
        self.assertEqual([len(s) for s in secrets], [32, 32, 32])
        ni, nr, spiI, spiR = ikeSA.nonceI, ikeSA.nonceR, ikeSA.spiI, ikeSA.spiR

        stages = [_keys(_hmac(ni + nr, secrets[0]), ni, nr, spiI, spiR)]
        for shared in secrets[1:]:
            stages.append(_keys(_hmac(stages[-1]["skD"], shared + ni + nr), ni, nr, spiI, spiR))
        for name in ("skD", "skEi", "skEr", "skPi", "skPr"):
            self.assertEqual(bytes(getattr(ikeSA.keys, name)), stages[2][name], name)
        self.assertEqual(bytes(ikeSA.keys.skAi), b"")

        delivered = [d for d, _, _ in self.network.delivered]
        chainI = chainR = b""
        for n in range(2):
            request, response = delivered[2 + 2 * n], delivered[3 + 2 * n]
            keys = stages[n]
            aI, pI, typeI = _open(request, keys["skEi"])
            aR, pR, typeR = _open(response, keys["skEr"])
            self.assertEqual([k for k, _ in _payloads(pI, typeI)], [PayloadType.KE])
            self.assertEqual([k for k, _ in _payloads(pR, typeR)], [PayloadType.KE])
            chainI = _hmac(keys["skPi"], chainI + aI + pI)
            chainR = _hmac(keys["skPr"], chainR + aR + pR)
        intAuth = chainI + chainR + b"\x00\x00\x00\x03"
        self.assertEqual(ikeSA.intermediate.intAuth(), intAuth)
        self.assertEqual(b.ikeSAs[0].intermediate.intAuth(), intAuth)

        authRequest = delivered[6]
        _, inner, innerType = _open(authRequest, stages[2]["skEi"])
        payloads = dict(_payloads(inner, innerType))
        idBody = payloads[PayloadType.IDi]
        authData = payloads[PayloadType.AUTH][4:]
        octets = delivered[0] + nr + _hmac(stages[2]["skPi"], idBody) + intAuth
        self.assertEqual(authData, _hmac(_hmac(b"secret", b"Key Pad for IKEv2"), octets))
        self.assertNotEqual(authData, _hmac(_hmac(b"secret", b"Key Pad for IKEv2"), octets[:-len(intAuth)]))


class DescribeTests(IntermediateTestCase):
    def test_showSaNamesAdditionalKeyExchanges(self):
        """
        The control socket's proposal text (ikectl show sa) names the
        additional key exchanges by type and method and leaves out NONE.
        """
        from ikedtx.control.server import describeProposal

        a, b, ikeSA = self.establish(TWO, TWO)
        self.assertEqual(describeProposal(ikeSA.proposal).split()[-2:], ["ADDKE1=ML_KEM_768", "ADDKE2=ML_KEM_1024"])
        a, b, ikeSA = self.establish(OPTIONAL, CLASSIC)
        self.assertNotIn("ADDKE", describeProposal(ikeSA.proposal))


class RetryTests(IntermediateTestCase):
    def test_cookie(self):
        """
        RFC 7296 2.6 before RFC 9370: a responder demanding a COOKIE gets
        IKE_SA_INIT again with INTERMEDIATE_EXCHANGE_SUPPORTED and the
        ADDKE proposal; then IKE_INTERMEDIATE runs as usual.
        """
        from ikedtx.core.settings import CoreSettings

        self.network = Network()
        self.a = Host(self.network, A_ADDR, initiatorConfig(extra=ONE))
        self.b = Host(self.network, B_ADDR, responderConfig(extra=ONE), settings=CoreSettings(cookieThreshold=0))
        requestId = self.a.initiate("ab")
        self.network.pump()
        ikeSA = self.assertSucceeded(self.a, requestId)
        self.assertEqual(self.exchanges(), [(INIT, False), (INIT, True), (INIT, False), (INIT, True),
                                            (INTERMEDIATE, False), (INTERMEDIATE, True), (AUTH, False), (AUTH, True)])
        retried = Message.decode(self.network.delivered[2][0])
        self.assertIn(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED,
                      [p.notifyType for p in retried.payloads if isinstance(p, Notify)])
        self.assertEqual(ikeSA.intermediate.done, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertSameKeys(self.a, self.b)

    def test_invalidKe(self):
        """
        RFC 7296 1.2: INVALID_KE_PAYLOAD for the IKE_SA_INIT group leaves
        the additional key exchanges as they were.
        """
        initiator = ONE.replace("group curve25519", "group curve25519 group ecp256")
        responder = ONE.replace("group curve25519", "group ecp256")
        a, b, ikeSA = self.establish(initiator, responder)
        self.assertEqual(ikeSA.proposal.dhGroup, DhId.ECP_256)
        self.assertEqual(ikeSA.intermediate.done, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertEqual(self.exchanges()[:4], [(INIT, False), (INIT, True), (INIT, False), (INIT, True)])
        self.assertSameKeys(a, b)


class SignatureTests(SignatureTestCase):
    def test_ecdsaCertificates(self):
        """
        RFC 9242 3.3.2 with signatures: ECDSA certificates on both sides,
        IntAuth in both signed octets, the peer's signature verifies.
        """
        from ikedtx.auth.store import CredentialStore
        from ikedtx.config import parseConfig
        from tests import pki

        treeA, treeB = self.withCertificates("p256")
        a = parseConfig('ikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s %s '
                        'srcid a.example dstid b.example ecdsa256' % (A_ADDR, B_ADDR, ONE))
        b = parseConfig('ikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s %s '
                        'srcid b.example dstid a.example ecdsa256' % (B_ADDR, A_ADDR, ONE))
        self.network = Network()
        self.a = Host(self.network, A_ADDR, a, credentials=CredentialStore(treeA.root), wallClock=lambda: pki.NOW)
        self.b = Host(self.network, B_ADDR, b, credentials=CredentialStore(treeB.root), wallClock=lambda: pki.NOW)
        requestId = self.a.initiate("ab")
        self.network.pump()
        ikeSA = self.assertSucceeded(self.a, requestId)
        self.assertEqual(str(ikeSA.peerId), "FQDN/b.example")
        self.assertEqual(self.exchangeTypes()[2:4], [(INTERMEDIATE, False), (INTERMEDIATE, True)])
        self.assertEqual(ikeSA.intermediate.done, [(TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertChildKeysMatch(self.a, self.b)


class FragmentLossTests(IntermediateTestCase):
    def test_lostFragment(self):
        """
        RFC 7383 2.6 in IKE_INTERMEDIATE: one lost fragment of the
        ML-KEM-1024 request is recovered by the retransmission of all its
        fragments; the responder completes the message once and answers it
        once.
        """
        a, b = self.makePair(TWO.replace("addke1 mlkem768 addke2 mlkem1024", "addke1 mlkem1024"),
                             TWO.replace("addke1 mlkem768 addke2 mlkem1024", "addke1 mlkem1024"),
                             settings="set fragmentation")
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        fragments = len(self.network.inFlight)
        self.assertGreater(fragments, 1)
        self.network.inFlight.pop(1)  # the second fragment is lost
        for _ in range(fragments - 1):
            self.network.deliverOne()
        self.assertEqual(self.network.inFlight, [])
        a.clock.advance(2.0)
        self.assertEqual(len(self.network.inFlight), fragments)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertSameKeys(a, b)
        self.assertEqual(len(b.eventsOf(InstallChildSA)), 1)

# -*- test-case-name: tests.test_core_fuzz -*-
"""
Mutated requests, protected with the IKE SA's real keys (so that they get
past the ICV to the inner decoder and the tasks), fed to an established
responder core: whatever they hold, the core never fails inside (no
critical log event), and the IKE SA keeps answering legitimate requests.
A seeded generator makes every run the same; bench/ can run it longer
(IKEDTX_FUZZ_CASES).
"""

import os
import random

from twisted.logger import LogLevel, globalLogPublisher

from ikedtx.wire.constants import ExchangeType, HeaderFlag, IdType, NotifyType, PayloadType, ProtocolId
from ikedtx.wire.header import packHeader
from ikedtx.wire.payloads import (
    EAP, Authentication, Configuration, ConfigurationAttribute, Delete, IdentificationInitiator, KeyExchange, Nonce,
    Notify, TrafficSelector, TrafficSelectorsInitiator, TrafficSelectorsResponder, UnknownPayload, VendorID,
    encodePayloads)

from ikedtx.core.states import IKEState
from ikedtx.core.tasks.common import offersFromConfig, saPayload

from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase

CASES = int(os.environ.get("IKEDTX_FUZZ_CASES", "1500"))


def palette(policy):
    """
    Valid payload chains to mutate.
    """
    sa = saPayload(offersFromConfig(policy.childProposals, b"\x01\x02\x03\x04", True))
    ts = [TrafficSelectorsInitiator([TrafficSelector("10.1.0.0", "10.1.0.255")]),
          TrafficSelectorsResponder([TrafficSelector("10.2.0.0", "10.2.0.255")])]
    return [
        [],
        [Notify(NotifyType.INITIAL_CONTACT)],
        [Delete(ProtocolId.ESP, [b"\x00\x00\x10\x00"])],
        [sa, Nonce(b"n" * 32)] + ts,
        [Notify.rekeySa(ProtocolId.ESP, b"\x00\x00\x10\x00"), sa, Nonce(b"n" * 32), KeyExchange(14, b"\x02" * 256)] + ts,
        [Configuration(1, [ConfigurationAttribute(1), ConfigurationAttribute(3)])],
        [IdentificationInitiator(IdType.FQDN, b"a.example"), Authentication(2, b"\x00" * 32), sa] + ts,
        [EAP(2, 1, 1, b"identity")],
        [VendorID(b"v"), UnknownPayload(99, b"x")],
        [Notify(NotifyType.UPDATE_SA_ADDRESSES), Notify(NotifyType.COOKIE2, data=b"c" * 16)],
    ]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        choice = rng.randrange(6)
        if choice == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice == 1 and data:
            del data[rng.randrange(len(data)):]
        elif choice == 2:
            at = rng.randrange(len(data) + 1)
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif choice == 3 and len(data) >= 4:
            # A payload length field somewhere.
            at = rng.randrange(len(data) - 3)
            data[at + 2:at + 4] = rng.choice([0, 1, 3, 4, 0xFFFF, len(data), rng.randrange(65536)]).to_bytes(2, "big")
        elif choice == 4 and data:
            data[0] = rng.choice([0, 1, 2, 33, 34, 35, 36, 39, 40, 41, 42, 44, 45, 46, 47, 48, 53, 200])
        elif choice == 5 and len(data) >= 2:
            data[1] ^= 0x80
    return bytes(data)


def seal(ikeSA, exchangeType, messageId, firstType, plaintext, flags=HeaderFlag.INITIATOR):
    """
    An SK-protected request (or, with C{flags}, response) of C{ikeSA}'s
    side with C{plaintext} as its inner chain.
    """
    cipher = ikeSA.cipherOut
    sealedLength = cipher.sealedLength(len(plaintext))
    header = packHeader(ikeSA.spiI, ikeSA.spiR, PayloadType.SK, 0, exchangeType, flags, messageId,
                        28 + 4 + sealedLength)
    skHeader = bytes([firstType, 0]) + (4 + sealedLength).to_bytes(2, "big")
    return header + skHeader + cipher.seal(header + skHeader, plaintext)


class EstablishedResponderFuzzTests(ExchangeTestCase):
    def test_mutatedProtectedRequests(self):
        """
        RFC 7296 2.21, 3.2: malformed inner payloads are answered or dropped,
        never an internal error; the SA goes on answering.
        """
        critical = []

        def observe(event):
            if event.get("log_level") == LogLevel.critical:
                critical.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        rng = random.Random(int(os.environ.get("IKEDTX_FUZZ_SEED", "7296")))
        a, b, ikeSA = self.establish()
        chains = [encodePayloads(c) for c in palette(ikeSA.policy)]
        for case in range(CASES):
            if not b.ikeSAs or not ikeSA.isEstablished:
                a, b, ikeSA = self.establish()
            responder = b.ikeSAs[0]
            firstType, plaintext = rng.choice(chains)
            if rng.random() < 0.75:
                plaintext = mutate(rng, plaintext)
            exchangeType = rng.choice([ExchangeType.IKE_AUTH, ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL,
                                       ExchangeType.INFORMATIONAL, 38, 43, 44, 99])
            messageId = responder.taskManager.nextPeerRequestId
            data = seal(ikeSA, exchangeType, messageId, firstType if rng.random() < 0.8 else rng.randrange(256),
                        plaintext)
            b.receive(data, (B_ADDR, 500), (A_ADDR, 500))
            self.network.inFlight.clear()
            self.assertEqual(critical, [], "case %d: %r" % (case, critical[:1]))
            if responder.taskManager.answering is not None:
                # Waiting for an SPI: the decoupled kernel answers at once,
                # so nothing may wait.
                self.fail("case %d: request %d left waiting" % (case, messageId))
        if b.ikeSAs and ikeSA.isEstablished:
            # Our side's window is behind what the fuzz consumed.
            ikeSA.taskManager.nextRequestId = b.ikeSAs[0].taskManager.nextPeerRequestId
            requestId = a.command(a.core.checkLiveness, ikeSA)
            self.network.pump()
            self.assertSucceeded(a, requestId)


class HalfOpenResponderFuzzTests(ExchangeTestCase):
    def test_mutatedAuthRequests(self):
        """
        Mutated IKE_AUTH requests (with the half-open SA's real keys) are
        refused or dropped, never an internal error.
        """
        from ikedtx.wire.payloads import Certificate, CertificateRequest

        critical = []

        def observe(event):
            if event.get("log_level") == LogLevel.critical:
                critical.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        rng = random.Random(int(os.environ.get("IKEDTX_FUZZ_SEED", "7296")) + 1)
        ikeSA = None
        for case in range(max(CASES // 5, 50)):
            if ikeSA is None or not self.b.ikeSAs or self.b.ikeSAs[0].state != IKEState.SA_INIT:
                self.makePair()
                self.a.initiate("ab")
                self.network.deliverOne()
                self.network.deliverOne()
                self.network.inFlight.clear()
                (ikeSA,) = self.a.ikeSAs
                sa = saPayload(offersFromConfig(ikeSA.policy.childProposals, b"\x01\x02\x03\x04", False))
                ts = [TrafficSelectorsInitiator([TrafficSelector("10.1.0.0", "10.1.0.255")]),
                      TrafficSelectorsResponder([TrafficSelector("10.2.0.0", "10.2.0.255")])]
                chains = [encodePayloads(c) for c in [
                    [IdentificationInitiator(IdType.FQDN, b"a.example"), Authentication(2, b"\x00" * 32), sa] + ts,
                    [IdentificationInitiator(IdType.FQDN, b"a.example"), Certificate(4, b"\x30\x03\x02\x01\x00"),
                     CertificateRequest(4, b"\x00" * 20), Authentication(14, b"\x05\x30\x03\x06\x01\x00" + b"s" * 64),
                     sa] + ts,
                    [IdentificationInitiator(IdType.IPV4_ADDR, b"\xc0\x00\x02\x01"), Authentication(9, b"\x00" * 64),
                     Configuration(1, [ConfigurationAttribute(1)]), Notify(NotifyType.MOBIKE_SUPPORTED)],
                    [IdentificationInitiator(IdType.FQDN, b"a.example"), EAP(2, 1, 1, b"me")],
                ]]
            firstType, plaintext = rng.choice(chains)
            data = seal(ikeSA, ExchangeType.IKE_AUTH, 1, firstType, mutate(rng, plaintext))
            self.b.receive(data, (B_ADDR, 500), (A_ADDR, 500))
            self.network.inFlight.clear()
            self.assertEqual(critical, [], "case %d: %r" % (case, critical[:1]))


class InitiatorFuzzTests(ExchangeTestCase):
    def test_mutatedResponses(self):
        """
        A malicious responder: mutated IKE_SA_INIT responses, and mutated
        IKE_AUTH responses sealed with the responder's real keys, reach the
        initiator; it fails the negotiation or ignores them, never with an
        internal error.
        """
        from ikedtx.wire.message import Message

        critical = []

        def observe(event):
            if event.get("log_level") == LogLevel.critical:
                critical.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        rng = random.Random(int(os.environ.get("IKEDTX_FUZZ_SEED", "7296")) + 2)
        authCases = 0
        for case in range(max(CASES // 5, 50)):
            self.makePair()
            self.a.initiate("ab")
            self.network.deliverOne()
            (initResponse, source, destination) = self.network.inFlight.pop(0)
            if rng.random() < 0.4:
                self.a.receive(mutate(rng, initResponse), destination, source)
                self.assertEqual(critical, [], "case %d (IKE_SA_INIT): %r" % (case, critical[:1]))
                continue
            self.a.receive(initResponse, destination, source)
            self.network.deliverOne()
            if not self.network.inFlight:
                continue
            (authResponse, source, destination) = self.network.inFlight.pop(0)
            (ikeSA,) = self.a.ikeSAs
            responder = self.b.ikeSAs[0] if self.b.ikeSAs else None
            if responder is None:
                continue
            message = Message.decode(authResponse)
            firstType, plaintext = encodePayloads(message.decrypt(ikeSA.cipherIn))
            data = seal(responder, message.exchangeType, message.messageId, firstType, mutate(rng, plaintext),
                        HeaderFlag.RESPONSE)
            self.a.receive(data, destination, source)
            authCases += 1
            self.network.inFlight.clear()
            self.assertEqual(critical, [], "case %d (IKE_AUTH): %r" % (case, critical[:1]))
        self.assertGreater(authCases, 0)

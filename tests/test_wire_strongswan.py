# -*- test-case-name: tests.test_wire_strongswan -*-
"""
A real exchange recorded from strongSwan 5.9.8 (tests/data/
strongswan-exchange.pcap, made by tests/data/capture-strongswan.sh) decodes,
re-encodes byte for byte, and has the structure strongSwan logged for it.

The capture holds two IKE SAs between two charons: "plain" over IPv4
through a NAT (IKE_SA_INIT on 500, everything after on 4500 behind the
non-ESP marker, ESP in UDP, NAT keepalives, a Child SA rekey, an IKE SA
rekey, MOBIKE, Deletes) and "frag" over IPv6 with IKE_AUTH fragmented both
ways (RFC 7383) and a configuration payload.  The charons' SK_e/SK_a keys
(tests/data/strongswan-keys.txt) let the test open every SK and SKF payload
with the AES-CBC/HMAC-SHA2-256-128 test cipher: its ICV check passing on
strongSwan's messages confirms the aad the codec hands a cipher.
"""

import ipaddress
import os

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire import payloads as P
from ikedtx.wire.constants import (
    ConfigurationAttribute as CA,
    ConfigurationType,
    DhId,
    EncrId,
    ExchangeType as X,
    IdType,
    IntegId,
    NotifyType as N,
    PayloadType as T,
    PrfId,
    ProtocolId,
    TransformType,
)
from ikedtx.wire.fragments import Reassembler
from ikedtx.wire.message import Message
from ikedtx.wire.natt import NattKind, classifyNattDatagram, natDetectionHash

from .wirehelpers import CbcHmacCipher, IntegrityError, readPcap, udpPayloads

DATA = os.path.join(os.path.dirname(__file__), "data")
PCAP = os.path.join(DATA, "strongswan-exchange.pcap")
KEYS = os.path.join(DATA, "strongswan-keys.txt")

KEEPALIVE, ESP = "keepalive", "esp"
SA, KE, NO, SK, SKF = T.SA, T.KE, T.NONCE, T.SK, T.SKF
IDI, IDR, AUTH, TSI, TSR, D, CP = T.IDi, T.IDr, T.AUTH, T.TSi, T.TSr, T.DELETE, T.CP

# Datagram by datagram: exchange, Message ID, response?, outer payloads,
# inner payloads (Notify as its type), the key set (line of the keys file).
# These are the lists charon logged ("generating IKE_AUTH request 1 [ IDi
# N(INIT_CONTACT) IDr AUTH SA TSi TSr ... ]").
INIT_Q = [SA, KE, NO, N.NAT_DETECTION_SOURCE_IP, N.NAT_DETECTION_DESTINATION_IP,
          N.SIGNATURE_HASH_ALGORITHMS, N.REDIRECT_SUPPORTED]
INIT_R = [SA, KE, NO, N.NAT_DETECTION_SOURCE_IP, N.NAT_DETECTION_DESTINATION_IP,
          N.SIGNATURE_HASH_ALGORITHMS, N.CHILDLESS_IKEV2_SUPPORTED, N.MULTIPLE_AUTH_SUPPORTED]
AUTH_TAIL = [N.MULTIPLE_AUTH_SUPPORTED, N.EAP_ONLY_AUTHENTICATION, N.IKEV2_MESSAGE_ID_SYNC_SUPPORTED]
EXPECTED = [
    (X.IKE_SA_INIT, 0, False, INIT_Q, None, None),
    (X.IKE_SA_INIT, 0, True, INIT_R, None, None),
    (X.IKE_AUTH, 1, False, [SK],
     [IDI, N.INITIAL_CONTACT, IDR, AUTH, SA, TSI, TSR, N.MOBIKE_SUPPORTED, N.ADDITIONAL_IP6_ADDRESS] + AUTH_TAIL, 0),
    (X.IKE_AUTH, 1, True, [SK], [IDR, AUTH, SA, TSI, TSR, N.MOBIKE_SUPPORTED, N.ADDITIONAL_IP6_ADDRESS], 0),
    ESP, ESP,
    (X.INFORMATIONAL, 0, False, [SK], [N.ADDITIONAL_IP6_ADDRESS], 0),
    (X.INFORMATIONAL, 0, True, [SK], [], 0),
    ESP, ESP,
    (X.CREATE_CHILD_SA, 2, False, [SK], [N.REKEY_SA, SA, NO, TSI, TSR], 0),
    (X.CREATE_CHILD_SA, 2, True, [SK], [SA, NO, TSI, TSR], 0),
    (X.INFORMATIONAL, 3, False, [SK], [D], 0),
    (X.INFORMATIONAL, 3, True, [SK], [D], 0),
    (X.INFORMATIONAL, 4, False, [SK], [N.ADDITIONAL_IP6_ADDRESS], 0),
    (X.INFORMATIONAL, 4, True, [SK], [], 0),
    (X.CREATE_CHILD_SA, 5, False, [SK], [SA, NO, KE], 0),
    (X.CREATE_CHILD_SA, 5, True, [SK], [SA, NO, KE], 0),
    (X.INFORMATIONAL, 6, False, [SK], [D], 0),
    (X.INFORMATIONAL, 6, True, [SK], [], 0),
    KEEPALIVE, KEEPALIVE,
    (X.INFORMATIONAL, 0, False, [SK], [N.NAT_DETECTION_SOURCE_IP, N.NAT_DETECTION_DESTINATION_IP], 1),
    (X.INFORMATIONAL, 0, True, [SK], [N.NAT_DETECTION_SOURCE_IP, N.NAT_DETECTION_DESTINATION_IP], 1),
    KEEPALIVE, KEEPALIVE,
    (X.IKE_SA_INIT, 0, False, INIT_Q[:5] + [N.IKEV2_FRAGMENTATION_SUPPORTED] + INIT_Q[5:], None, None),
    (X.IKE_SA_INIT, 0, True, INIT_R[:5] + [N.IKEV2_FRAGMENTATION_SUPPORTED] + INIT_R[5:], None, None),
    (X.IKE_AUTH, 1, False, [SKF], None, 2),
    (X.IKE_AUTH, 1, False, [SKF],
     [IDI, N.INITIAL_CONTACT, IDR, AUTH, CP, SA, TSI, TSR, N.MOBIKE_SUPPORTED, N.ADDITIONAL_IP4_ADDRESS] + AUTH_TAIL, 2),
    (X.IKE_AUTH, 1, True, [SKF], None, 2),
    (X.IKE_AUTH, 1, True, [SKF], [IDR, AUTH, CP, SA, TSI, TSR, N.MOBIKE_SUPPORTED, N.ADDITIONAL_IP4_ADDRESS], 2),
    (X.INFORMATIONAL, 1, False, [SK], [D], 1),
    (X.INFORMATIONAL, 1, True, [SK], [D], 1),
    (X.INFORMATIONAL, 2, False, [SK], [D], 1),
    (X.INFORMATIONAL, 2, True, [SK], [], 1),
    (X.INFORMATIONAL, 2, False, [SK], [D], 2),
    (X.INFORMATIONAL, 2, True, [SK], [], 2),
]


def shape(payloads):
    return [p.notifyType if p.payloadType == T.NOTIFY else p.payloadType for p in payloads]


def loadKeys():
    keys = []
    with open(KEYS) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                keys.append([bytes.fromhex(k) for k in line.split()])
    return keys


class Datagram:
    """
    One UDP datagram of the capture and what the codec made of it.
    """

    def __init__(self, source, destination, sourcePort, destinationPort, data):
        self.source = source
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.data = data
        self.kind = None
        self.ike = None
        self.message = None
        self.inner = None
        self.plaintext = None


class StrongSwanCaptureTests(SynchronousTestCase):
    """
    The recorded exchange, datagram by datagram.
    """

    def setUp(self):
        self.keys = loadKeys()
        self.datagrams = [Datagram(*d) for d in udpPayloads(readPcap(PCAP))]
        reassembler = Reassembler()
        for d in self.datagrams:
            if 4500 in (d.sourcePort, d.destinationPort):
                d.kind, body = classifyNattDatagram(d.data)
            else:
                d.kind, body = NattKind.IKE, d.data
            if d.kind is not NattKind.IKE:
                d.payload = body
                continue
            d.ike = bytes(body)
            d.message = Message.decode(body)
            if d.message.sealedPayload is None:
                continue
            ei, er, ai, ar = self.keys[self.keyIndex(d)]
            if d.message.isInitiator:
                cipher = CbcHmacCipher(ei, ai)
            else:
                cipher = CbcHmacCipher(er, ar)
            if d.message.isFragment:
                d.plaintext = cipher.open(d.message.aad, d.message.sealedPayload.sealed)
                whole = reassembler.add(d.message, cipher)
                if whole is not None:
                    d.inner = whole.encrypted
            else:
                d.plaintext = cipher.open(d.message.aad, d.message.sealedPayload.body)
                d.inner = d.message.decrypt(cipher)

    def keyIndex(self, d):
        return EXPECTED[self.datagrams.index(d)][5]

    def test_count(self):
        """
        The capture holds the datagrams listed in EXPECTED.
        """
        self.assertEqual(len(self.datagrams), len(EXPECTED))

    def test_reencodeIdentical(self):
        """
        Every IKE datagram re-encodes to exactly the octets strongSwan sent,
        SK and SKF payloads included.
        """
        count = 0
        for d in self.datagrams:
            if d.message is not None:
                self.assertEqual(d.message.encode(), d.ike)
                count += 1
        self.assertEqual(count, 30)

    def test_structure(self):
        """
        Exchange, Message ID, response flag, outer and inner payloads of
        each datagram are the ones strongSwan logged.
        """
        for d, expected in zip(self.datagrams, EXPECTED):
            if expected == ESP:
                self.assertIs(d.kind, NattKind.ESP)
                continue
            if expected == KEEPALIVE:
                self.assertIs(d.kind, NattKind.KEEPALIVE)
                self.assertEqual(d.data, b"\xff")
                continue
            exchange, messageId, response, outer, inner, _ = expected
            m = d.message
            self.assertEqual((m.exchangeType, m.messageId, m.isResponse), (exchange, messageId, response))
            self.assertEqual(m.isInitiator, str(d.source) in ("192.0.2.1", "2001:db8:a::1"))
            self.assertEqual(shape(m.payloads), outer)
            if inner is not None:
                self.assertEqual(shape(d.inner), inner)

    def test_natTraversal(self):
        """
        RFC 7296 2.23 / RFC 3948: IKE_SA_INIT on 500 without a marker,
        then IKE on 4500 behind the non-ESP marker alongside ESP-in-UDP and
        one-octet keepalives from the side behind the NAT.
        """
        for d in self.datagrams:
            if d.sourcePort == 500:
                self.assertEqual(d.message.exchangeType, X.IKE_SA_INIT)
            elif d.kind is NattKind.IKE:
                self.assertEqual(d.data[:4], b"\x00\x00\x00\x00")
                self.assertEqual(d.data[4:], d.ike)
            elif d.kind is NattKind.KEEPALIVE:
                self.assertEqual(str(d.source), "192.0.2.1")

    def test_ikeSaInit(self):
        """
        The IKE proposal strongSwan was configured with
        (aes256-sha256-x25519), a 32-octet X25519 KE, 32-octet nonce, 20-octet
        NAT-D hashes and RFC 7427 hash algorithms.
        """
        request = self.datagrams[0].message
        sa, ke, nonce = request.payloads[:3]
        [proposal] = sa.proposals
        self.assertEqual((proposal.number, proposal.protocolId, proposal.spi), (1, ProtocolId.IKE, b""))
        self.assertEqual(
            [(t.transformType, t.transformId, t.keyLength) for t in proposal.transforms],
            [
                (TransformType.ENCR, EncrId.AES_CBC, 256),
                (TransformType.INTEG, IntegId.HMAC_SHA2_256_128, None),
                (TransformType.PRF, PrfId.HMAC_SHA2_256, None),
                (TransformType.DH, DhId.CURVE25519, None),
            ],
        )
        self.assertEqual((ke.group, len(ke.data)), (DhId.CURVE25519, 32))
        self.assertEqual(len(nonce.data), 32)
        self.assertEqual(request.spiR, bytes(8))
        self.assertEqual(len(request.payloads[3].natDetectionHash), 20)
        self.assertEqual(request.payloads[5].hashAlgorithms, [2, 3, 4, 5])
        response = self.datagrams[1].message
        self.assertEqual(response.spiI, request.spiI)
        self.assertNotEqual(response.spiR, bytes(8))

    def test_natDetection(self):
        """
        RFC 7296 2.23: NAT_DETECTION_DESTINATION_IP is SHA-1 of the SPIs and
        the peer's address and port as the sender saw them: the initiator
        hashed the responder's address, the responder the NAT's public
        address.  (strongSwan's NAT_DETECTION_SOURCE_IP here is a random
        address of its own, which is why both sides report a NAT.)
        """
        request = self.datagrams[0].message
        self.assertEqual(
            request.payloads[4].natDetectionHash,
            natDetectionHash(request.spiI, request.spiR, "198.51.100.2", 500),
        )
        response = self.datagrams[1].message
        self.assertEqual(
            response.payloads[4].natDetectionHash,
            natDetectionHash(response.spiI, response.spiR, "198.51.100.254", 500),
        )
        request6 = self.datagrams[26].message
        self.assertEqual(
            request6.payloads[4].natDetectionHash,
            natDetectionHash(request6.spiI, request6.spiR, "2001:db8:b::2", 500),
        )

    def test_ikeAuth(self):
        """
        IKE_AUTH inside SK: identities, the ESP proposal with its SPI, and
        the traffic selectors; the ESP-in-UDP packets carry the SPIs the two
        proposals named.
        """
        request, response = self.datagrams[2].inner, self.datagrams[3].inner
        self.assertEqual((request[0].idType, request[0].text), (IdType.RFC822_ADDR, "plain@a.example"))
        self.assertEqual(request[2].address, ipaddress.ip_address("198.51.100.2"))
        self.assertEqual(request[3].method, 2)
        [proposal] = request[4].proposals
        self.assertEqual(proposal.protocolId, ProtocolId.ESP)
        self.assertEqual(
            [(t.transformType, t.transformId) for t in proposal.transforms],
            [(1, EncrId.AES_CBC), (3, IntegId.HMAC_SHA2_256_128), (5, 0)],
        )
        self.assertEqual(
            [(s.startAddress, s.endAddress, s.ipProtocol, s.startPort, s.endPort) for s in request[5].selectors],
            [(ipaddress.ip_address("10.1.0.1"), ipaddress.ip_address("10.1.0.1"), 0, 0, 65535)],
        )
        self.assertEqual(request[6].selectors[0].startAddress, ipaddress.ip_address("10.2.0.1"))
        espSpis = {bytes(d.payload[:4]) for d in self.datagrams[4:10] if d.kind is NattKind.ESP}
        self.assertEqual(espSpis, {proposal.spi, response[2].proposals[0].spi})

    def test_rekeys(self):
        """
        CREATE_CHILD_SA: REKEY_SA names the old inbound ESP SPI, the Delete
        that follows removes it; the IKE SA rekey's 8-octet SPIs are the
        header SPIs of the messages protected with the second key set.
        """
        rekey = self.datagrams[10].inner[0]
        self.assertEqual((rekey.protocolId, len(rekey.spi)), (ProtocolId.ESP, 4))
        delete = self.datagrams[12].inner[0]
        self.assertEqual((delete.protocolId, delete.spis), (ProtocolId.ESP, [rekey.spi]))
        spiI = self.datagrams[16].inner[0].proposals[0].spi
        spiR = self.datagrams[17].inner[0].proposals[0].spi
        self.assertEqual((len(spiI), len(spiR)), (8, 8))
        self.assertEqual(self.datagrams[17].inner[2].group, DhId.CURVE25519)
        new = self.datagrams[22].message
        self.assertEqual((new.spiI, new.spiR), (spiI, spiR))
        ikeDelete = self.datagrams[18].inner[0]
        self.assertEqual((ikeDelete.protocolId, ikeDelete.spiSize, ikeDelete.spis), (ProtocolId.IKE, 0, []))

    def test_fragments(self):
        """
        RFC 7383: fragment 1 names the first inner payload, the others 0;
        fragments fit charon's fragment_size (400 octets of IPv6 datagram);
        the reassembled IKE_AUTH carries the CP request and reply and IPv4
        and IPv6 selectors.
        """
        fragments = [d for d in self.datagrams if d.message is not None and d.message.isFragment]
        self.assertEqual(len(fragments), 4)
        for d in fragments:
            f = d.message.sealedPayload
            self.assertEqual(f.totalFragments, 2)
            self.assertEqual(f.innerType, T.IDi if f.fragmentNumber == 1 and not d.message.isResponse
                             else T.IDr if f.fragmentNumber == 1 else 0)
            self.assertLessEqual(40 + 8 + len(d.data), 400)
        request, response = fragments[1].inner, fragments[3].inner
        self.assertEqual(request[4].cfgType, ConfigurationType.CFG_REQUEST)
        self.assertEqual(
            [(a.attributeType, a.value) for a in request[4].attributes],
            [(CA.INTERNAL_IP4_ADDRESS, b""), (CA.INTERNAL_IP6_ADDRESS, b"")],
        )
        reply = response[2]
        self.assertEqual(reply.cfgType, ConfigurationType.CFG_REPLY)
        self.assertEqual(
            [(a.attributeType, a.address) for a in reply.attributes[:2]],
            [
                (CA.INTERNAL_IP4_ADDRESS, ipaddress.ip_address("10.3.0.1")),
                (CA.INTERNAL_IP6_ADDRESS, ipaddress.ip_address("2001:db8:3::1")),
            ],
        )
        self.assertEqual(
            [str(s.startAddress) for s in response[5].selectors], ["10.2.0.1", "2001:db8:2::1"]
        )

    def test_innerReencode(self):
        """
        Every decrypted inner chain re-encodes to the plaintext strongSwan
        encrypted (padding aside), and the reassembled fragments to the
        concatenation of the fragments' plaintexts.
        """
        pieces = []
        for d in self.datagrams:
            if d.plaintext is None:
                continue
            sealed = d.message.sealedPayload
            if d.message.isFragment:
                pieces.append(d.plaintext)
                if sealed.fragmentNumber == 1:
                    innerType = sealed.innerType
                if d.inner is not None:
                    self.assertEqual(P.encodePayloads(d.inner), (innerType, b"".join(pieces)))
                    pieces = []
            else:
                self.assertEqual(P.encodePayloads(d.inner), (sealed.innerType, d.plaintext))

    def test_wrongKeyFails(self):
        """
        The ICV check is real: the other direction's keys fail.
        """
        d = self.datagrams[2]
        ei, er, ai, ar = self.keys[0]
        self.assertRaises(IntegrityError, d.message.decrypt, CbcHmacCipher(er, ar))

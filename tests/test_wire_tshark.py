# -*- test-case-name: tests.test_wire_tshark -*-
"""
An independent decoder checks what the codec builds: messages are written
to a pcap (our own UDP/IP framing) and dissected by Wireshark's tshark,
which also decrypts the SK/SKF payloads with the test cipher's keys and
verifies their ICVs (RFC 7296 3.14), then the fields it reports are compared
with what we encoded.
"""

import os
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire import payloads as P
from ikedtx.wire.constants import (
    NAT_KEEPALIVE,
    AuthMethod,
    CertEncoding,
    ConfigurationAttribute as CA,
    ConfigurationType,
    DhId,
    EapCode,
    EapType,
    EncrId,
    ExchangeType,
    HeaderFlag,
    IdType,
    IntegId,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformType,
)
from ikedtx.wire.fragments import fragmentMessage
from ikedtx.wire.message import Message
from ikedtx.wire.natt import addNonEspMarker

from .support import requireExecutable
from .wirehelpers import CbcHmacCipher, udpFrame, writePcap

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes.fromhex("1112131415161718")
SK_EI, SK_ER, SK_AI, SK_AR = (bytes([n]) * 32 for n in (1, 2, 3, 4))
I = HeaderFlag.INITIATOR
R = HeaderFlag.RESPONSE

FIELDS = [
    "frame.number",
    "isakmp.ispi",
    "isakmp.rspi",
    "isakmp.exchangetype",
    "isakmp.messageid",
    "isakmp.typepayload",
    "isakmp.tf.type",
    "isakmp.tf.id.encr",
    "isakmp.tf.id.prf",
    "isakmp.tf.id.integ",
    "isakmp.tf.id.dh",
    "isakmp.tf.id.esn",
    "isakmp.ike2.attr.key_length",
    "isakmp.spi",
    "isakmp.key_exchange.dh_group",
    "isakmp.nonce",
    "isakmp.notify.msgtype",
    "isakmp.notify.data.signature_hash_algorithms",
    "isakmp.notify.data.accepted_dh_group",
    "isakmp.id.type",
    "isakmp.id.data.fqdn",
    "isakmp.auth.method",
    "isakmp.certreq.type",
    "isakmp.vid_bytes",
    "isakmp.ts.number",
    "isakmp.ts.type",
    "isakmp.ts.protoid",
    "isakmp.ts.start_port",
    "isakmp.ts.end_port",
    "isakmp.ts.start_ipv4",
    "isakmp.ts.end_ipv4",
    "isakmp.ts.start_ipv6",
    "isakmp.ts.end_ipv6",
    "isakmp.delete.protoid",
    "isakmp.spinum",
    "isakmp.delete.spi",
    "isakmp.cfg.type",
    "isakmp.cfg.attr.type",
    "isakmp.cfg.attr.internal_ip4_address",
    "isakmp.cfg.attr.internal_ip6_address",
    "eap.code",
    "eap.id",
    "eap.type",
    "eap.identity",
    "isakmp.frag.number",
    "isakmp.frag.total",
    "isakmp.enc.icd",
    "_ws.col.Info",
    "_ws.expert.message",
    "_ws.malformed",
]


def ikeSaInit():
    return Message(
        SPI_I,
        bytes(8),
        ExchangeType.IKE_SA_INIT,
        I,
        0,
        [
            P.SecurityAssociation(
                [
                    P.Proposal(
                        1,
                        ProtocolId.IKE,
                        [
                            P.Transform(TransformType.ENCR, EncrId.AES_CBC, keyLength=256),
                            P.Transform(TransformType.PRF, PrfId.HMAC_SHA2_256),
                            P.Transform(TransformType.INTEG, IntegId.HMAC_SHA2_256_128),
                            P.Transform(TransformType.DH, DhId.CURVE25519),
                        ],
                    ),
                    P.Proposal(
                        2,
                        ProtocolId.IKE,
                        [
                            P.Transform(TransformType.ENCR, EncrId.AES_GCM_16, keyLength=128),
                            P.Transform(TransformType.PRF, PrfId.HMAC_SHA2_384),
                            P.Transform(TransformType.DH, DhId.ECP_256),
                        ],
                    ),
                ]
            ),
            P.KeyExchange(DhId.CURVE25519, b"\x09" * 32),
            P.Nonce(b"\x07" * 32),
            P.Notify.natDetectionSourceIP(b"\x05" * 20),
            P.Notify.natDetectionDestinationIP(b"\x06" * 20),
            P.Notify.fragmentationSupported(),
            P.Notify.signatureHashAlgorithms([2, 3, 4]),
            P.VendorID(b"ikedtx-wire-test"),
        ],
    )


def ikeSaInitResponse():
    return Message(
        SPI_I,
        SPI_R,
        ExchangeType.IKE_SA_INIT,
        R,
        0,
        [
            P.SecurityAssociation(
                [
                    P.Proposal(
                        1,
                        ProtocolId.IKE,
                        [
                            P.Transform(TransformType.ENCR, EncrId.AES_CBC, keyLength=256),
                            P.Transform(TransformType.PRF, PrfId.HMAC_SHA2_256),
                            P.Transform(TransformType.INTEG, IntegId.HMAC_SHA2_256_128),
                            P.Transform(TransformType.DH, DhId.CURVE25519),
                        ],
                    )
                ]
            ),
            P.KeyExchange(DhId.CURVE25519, b"\x0a" * 32),
            P.Nonce(b"\x08" * 32),
            P.CertificateRequest.fromAuthorities([b"\x11" * 20]),
            P.Notify.natDetectionSourceIP(b"\x05" * 20),
            P.Notify.natDetectionDestinationIP(b"\x06" * 20),
        ],
    )


def ikeAuth():
    return Message(
        SPI_I,
        SPI_R,
        ExchangeType.IKE_AUTH,
        I,
        1,
        encrypted=[
            P.IDi.fromFQDN("a.example"),
            P.Notify.initialContact(),
            P.Authentication(AuthMethod.SHARED_KEY_MIC, b"\xaa" * 32),
            P.Configuration(
                ConfigurationType.CFG_REQUEST,
                [P.ConfigurationAttribute(CA.INTERNAL_IP4_ADDRESS), P.ConfigurationAttribute(CA.INTERNAL_IP6_ADDRESS)],
            ),
            P.SecurityAssociation(
                [
                    P.Proposal(
                        1,
                        ProtocolId.ESP,
                        [
                            P.Transform(TransformType.ENCR, EncrId.AES_GCM_16, keyLength=256),
                            P.Transform(TransformType.ESN, 0),
                        ],
                        spi=b"\xca\xfe\x00\x01",
                    )
                ]
            ),
            P.TSi(
                [
                    P.TrafficSelector("10.1.0.0", "10.1.0.255"),
                    P.TrafficSelector("2001:db8:1::", "2001:db8:1::ffff", 6, 80, 443),
                ]
            ),
            P.TSr([P.TrafficSelector("10.2.0.1", "10.2.0.1", 17, 53, 53)]),
            P.Notify.useTransportMode(),
            P.Notify.mobikeSupported(),
            P.EAP(EapCode.RESPONSE, 5, EapType.IDENTITY, b"alice"),
        ],
    )


def informationalDelete():
    return Message(
        SPI_I,
        SPI_R,
        ExchangeType.INFORMATIONAL,
        R,
        2,
        encrypted=[P.Delete(ProtocolId.ESP, [b"\xca\xfe\x00\x01", b"\xca\xfe\x00\x02"])],
    )


def createChildSa():
    return Message(
        SPI_I,
        SPI_R,
        ExchangeType.CREATE_CHILD_SA,
        I,
        3,
        encrypted=[
            P.Notify.rekeySa(ProtocolId.ESP, b"\xca\xfe\x00\x01"),
            P.SecurityAssociation(
                [P.Proposal(1, ProtocolId.ESP, [P.Transform(TransformType.ENCR, EncrId.AES_GCM_16, keyLength=128)], spi=b"\xca\xfe\x00\x03")]
            ),
            P.Nonce(b"\x0b" * 32),
            P.KeyExchange(DhId.ECP_256, b"\x04" + b"\x01" * 64),
            P.TSi([P.TrafficSelector.fromNetwork("2001:db8:a::/48")]),
            P.TSr([P.TrafficSelector.fromNetwork("10.9.0.0/16")]),
        ],
    )


def authResponse():
    return Message(
        SPI_I,
        SPI_R,
        ExchangeType.IKE_AUTH,
        R,
        1,
        encrypted=[
            P.IDr.fromAddress("192.0.2.2"),
            P.Authentication(AuthMethod.SHARED_KEY_MIC, b"\xbb" * 32),
            P.Configuration(
                ConfigurationType.CFG_REPLY,
                [
                    P.ConfigurationAttribute.fromAddress(CA.INTERNAL_IP4_ADDRESS, "10.3.0.1"),
                    P.ConfigurationAttribute.fromAddress(CA.INTERNAL_IP6_ADDRESS, "2001:db8:3::1", 64),
                ],
            ),
            P.TSi([P.TrafficSelector("10.3.0.1", "10.3.0.1")]),
            P.TSr([P.TrafficSelector("10.2.0.0", "10.2.255.255")]),
        ],
    )


def payloadTypes(message, inner=None):
    """
    The payload types tshark lists for a message, without proposals and
    transforms.
    """
    types = [p.payloadType for p in message.payloads]
    if message.encrypted is not None:
        types.append(PayloadType.SK)
    if inner is not None:
        types += [p.payloadType for p in inner]
    return types


class TsharkTests(SynchronousTestCase):
    """
    tshark's reading of what the codec writes.
    """

    def setUp(self):
        self.tshark = requireExecutable("tshark", "apt-get install tshark")

    def dissect(self, frames, extra=()):
        path = self.mktemp()
        writePcap(path, frames)
        table = ",".join(
            [
                SPI_I.hex(),
                SPI_R.hex(),
                SK_EI.hex(),
                SK_ER.hex(),
                '"AES-CBC-256 [RFC3602]"',
                SK_AI.hex(),
                SK_AR.hex(),
                '"HMAC_SHA2_256_128 [RFC4868]"',
            ]
        )
        command = [
            self.tshark,
            "-n",
            "-r",
            path,
            "-d",
            "udp.port==7500,isakmp",
            "-o",
            "uat:ikev2_decryption_table:" + table,
            "-T",
            "fields",
            "-E",
            "aggregator=|",
            "-E",
            "occurrence=a",
        ]
        for field in FIELDS:
            command += ["-e", field]
        output = subprocess.run(
            command + list(extra),
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, HOME=os.path.dirname(os.path.abspath(path))),
        ).stdout
        rows = []
        for line in output.splitlines():
            values = line.split("\t")
            row = {}
            for name, value in zip(FIELDS, values):
                row[name] = value.split("|") if value else []
            rows.append(row)
        self.assertEqual(len(rows), len(frames), output)
        return rows

    def assertHeader(self, row, message):
        self.assertEqual(row["isakmp.ispi"], [message.spiI.hex()])
        self.assertEqual(row["isakmp.rspi"], [message.spiR.hex()])
        self.assertEqual(row["isakmp.exchangetype"], [str(message.exchangeType)])
        self.assertEqual(int(row["isakmp.messageid"][0], 16), message.messageId)
        self.assertEqual(row["_ws.malformed"], [])

    def assertPayloadTypes(self, row, expected):
        self.assertEqual(
            [int(t) for t in row["isakmp.typepayload"] if t not in ("2", "3")],
            [int(t) for t in expected],
        )

    def assertIcvCorrect(self, row, count=1):
        self.assertEqual(len(row["isakmp.enc.icd"]), count)
        for message in row["_ws.expert.message"]:
            self.assertNotIn("ncorrect", message)
            self.assertNotIn("alformed", message)

    def test_ikeSaInit(self):
        """
        IKE_SA_INIT request and response: header, payload order, proposals
        and transforms with key length, KE group, nonce, NAT-D, fragmentation
        and signature hash notifies, Vendor ID, CERTREQ.
        """
        request, response = ikeSaInit(), ikeSaInitResponse()
        rows = self.dissect(
            [
                udpFrame("192.0.2.1", "192.0.2.2", 500, 500, request.encode()),
                udpFrame("192.0.2.2", "192.0.2.1", 500, 500, response.encode()),
            ]
        )
        row = rows[0]
        self.assertHeader(row, request)
        self.assertPayloadTypes(row, payloadTypes(request))
        self.assertEqual(row["isakmp.tf.type"], ["1", "2", "3", "4", "1", "2", "4"])
        self.assertEqual(row["isakmp.tf.id.encr"], ["12", "20"])
        self.assertEqual(row["isakmp.tf.id.prf"], ["5", "6"])
        self.assertEqual(row["isakmp.tf.id.integ"], ["12"])
        self.assertEqual(row["isakmp.tf.id.dh"], ["31", "19"])
        self.assertEqual(row["isakmp.ike2.attr.key_length"], ["256", "128"])
        self.assertEqual(row["isakmp.key_exchange.dh_group"], ["31"])
        self.assertEqual(row["isakmp.nonce"], ["07" * 32])
        self.assertEqual(
            row["isakmp.notify.msgtype"],
            [str(int(t)) for t in (NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP,
                                   NotifyType.IKEV2_FRAGMENTATION_SUPPORTED, NotifyType.SIGNATURE_HASH_ALGORITHMS)],
        )
        self.assertEqual(row["isakmp.notify.data.signature_hash_algorithms"], ["2", "3", "4"])
        self.assertEqual(row["isakmp.vid_bytes"], [b"ikedtx-wire-test".hex()])

        row = rows[1]
        self.assertHeader(row, response)
        self.assertPayloadTypes(row, payloadTypes(response))
        self.assertEqual(row["isakmp.certreq.type"], [str(int(CertEncoding.X509_CERT_SIGNATURE))])

    def test_encrypted(self):
        """
        IKE_AUTH, CREATE_CHILD_SA and INFORMATIONAL (the last on 4500 behind
        the non-ESP marker): tshark verifies every ICV, decrypts, and sees
        our inner payloads: IDi, AUTH, CP request, ESP proposal with SPI,
        IPv4 and IPv6 selectors, EAP, REKEY_SA, Delete.
        """
        toResponder = CbcHmacCipher(SK_EI, SK_AI)
        toInitiator = CbcHmacCipher(SK_ER, SK_AR)
        auth, child, delete = ikeAuth(), createChildSa(), informationalDelete()
        rows = self.dissect(
            [
                udpFrame("192.0.2.1", "192.0.2.2", 500, 500, auth.encode(toResponder)),
                udpFrame("192.0.2.1", "192.0.2.2", 500, 500, child.encode(toResponder)),
                udpFrame("192.0.2.2", "192.0.2.1", 4500, 4500, addNonEspMarker(delete.encode(toInitiator))),
                udpFrame("192.0.2.1", "192.0.2.2", 4500, 4500, NAT_KEEPALIVE),
            ]
        )
        row = rows[0]
        self.assertHeader(row, auth)
        self.assertIcvCorrect(row)
        self.assertPayloadTypes(row, payloadTypes(auth, auth.encrypted))
        self.assertEqual(row["isakmp.id.type"], [str(int(IdType.FQDN))])
        self.assertEqual(row["isakmp.id.data.fqdn"], ["a.example"])
        self.assertEqual(row["isakmp.auth.method"], ["2"])
        self.assertEqual(row["isakmp.cfg.type"], ["1"])
        self.assertEqual(row["isakmp.cfg.attr.type"], ["1", "8"])
        self.assertEqual(row["isakmp.spi"], ["cafe0001"])
        self.assertEqual(row["isakmp.tf.id.encr"], ["20"])
        self.assertEqual(row["isakmp.tf.id.esn"], ["0"])
        self.assertEqual(row["isakmp.ts.number"], ["2", "1"])
        self.assertEqual(row["isakmp.ts.type"], ["7", "8", "7"])
        self.assertEqual(row["isakmp.ts.protoid"], ["0", "6", "17"])
        self.assertEqual(row["isakmp.ts.start_port"], ["0", "80", "53"])
        self.assertEqual(row["isakmp.ts.end_port"], ["65535", "443", "53"])
        self.assertEqual(row["isakmp.ts.start_ipv4"], ["10.1.0.0", "10.2.0.1"])
        self.assertEqual(row["isakmp.ts.end_ipv4"], ["10.1.0.255", "10.2.0.1"])
        self.assertEqual(row["isakmp.ts.start_ipv6"], ["2001:db8:1::"])
        self.assertEqual(row["isakmp.ts.end_ipv6"], ["2001:db8:1::ffff"])
        self.assertEqual(
            row["isakmp.notify.msgtype"],
            ["16384", str(int(NotifyType.USE_TRANSPORT_MODE)), str(int(NotifyType.MOBIKE_SUPPORTED))],
        )
        self.assertEqual(
            (row["eap.code"], row["eap.id"], row["eap.type"], row["eap.identity"]),
            (["2"], ["5"], ["1"], ["alice"]),
        )

        row = rows[1]
        self.assertHeader(row, child)
        self.assertIcvCorrect(row)
        self.assertPayloadTypes(row, payloadTypes(child, child.encrypted))
        self.assertEqual(row["isakmp.notify.msgtype"], [str(int(NotifyType.REKEY_SA))])
        self.assertEqual(row["isakmp.spi"], ["cafe0001", "cafe0003"])
        self.assertEqual(row["isakmp.key_exchange.dh_group"], ["19"])
        self.assertEqual(row["isakmp.ts.start_ipv6"], ["2001:db8:a::"])
        self.assertEqual(row["isakmp.ts.end_ipv6"], ["2001:db8:a:ffff:ffff:ffff:ffff:ffff"])
        self.assertEqual(row["isakmp.ts.end_ipv4"], ["10.9.255.255"])

        row = rows[2]
        self.assertHeader(row, delete)
        self.assertIcvCorrect(row)
        self.assertPayloadTypes(row, payloadTypes(delete, delete.encrypted))
        self.assertEqual(row["isakmp.delete.protoid"], ["3"])
        self.assertEqual(row["isakmp.spinum"], ["2"])
        self.assertEqual(row["isakmp.delete.spi"], ["cafe0001", "cafe0002"])

        self.assertEqual(rows[3]["_ws.col.Info"], ["NAT-keepalive"])

    def test_fragments(self):
        """
        RFC 7383: tshark checks each fragment's ICV, numbers them, and
        reassembles our fragments into the inner payloads (IDr, AUTH, CP
        reply with addresses, TSi, TSr).
        """
        message = authResponse()
        fragments = fragmentMessage(message, CbcHmacCipher(SK_ER, SK_AR), 120)
        self.assertGreater(len(fragments), 2)
        rows = self.dissect(
            [udpFrame("2001:db8::2", "2001:db8::1", 500, 500, f) for f in fragments]
        )
        for number, row in enumerate(rows, 1):
            self.assertHeader(row, message)
            self.assertIcvCorrect(row)
            self.assertEqual(row["isakmp.frag.number"], [str(number)])
            self.assertEqual(row["isakmp.frag.total"], [str(len(fragments))])
        self.assertPayloadTypes(rows[-1], [PayloadType.SKF] + [p.payloadType for p in message.encrypted])
        self.assertEqual(rows[-1]["isakmp.cfg.attr.internal_ip4_address"], ["10.3.0.1"])
        self.assertEqual(rows[-1]["isakmp.cfg.attr.internal_ip6_address"], ["2001:db8:3::1"])

    def test_badIcvNoticed(self):
        """
        The ICV check above is real: tshark flags one bit flipped in the
        ciphertext.
        """
        data = bytearray(informationalDelete().encode(CbcHmacCipher(SK_ER, SK_AR)))
        data[40] ^= 1
        [row] = self.dissect([udpFrame("192.0.2.2", "192.0.2.1", 500, 500, bytes(data))])
        self.assertTrue(any("ncorrect" in m for m in row["_ws.expert.message"]), row)

    def test_otherPort(self):
        """
        C{-d udp.port==N,isakmp} decodes a non-standard port the same way.
        """
        message = ikeSaInit()
        [row] = self.dissect([udpFrame("192.0.2.1", "192.0.2.2", 7500, 7500, message.encode())])
        self.assertHeader(row, message)
        self.assertPayloadTypes(row, payloadTypes(message))

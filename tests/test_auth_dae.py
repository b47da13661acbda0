"""
Tests for L{ikedtx.auth.dae}: RADIUS Dynamic Authorization (RFC 5176) as
iked 7.6's C{radius dae} serves it, in memory with pyrad building the
clients' requests; the live test (FreeRADIUS's radclient against the
daemon) is tests.test_interop_eap_radius.
"""

import hashlib
import struct

from pyrad import packet as pyradPacket
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth import dae, radius

SECRET = b"dae-s3cret"
CLIENT = ("127.0.0.1", 40000)


class FakeUDP:
    def __init__(self):
        self.written = []

    def write(self, data, addr):
        self.written.append((bytes(data), addr))


def request(code=pyradPacket.DisconnectRequest, secret=SECRET, messageAuthenticator=False, ident=9, **attributes):
    packet = pyradPacket.CoAPacket(code, ident, secret, dict=radius.radiusDictionary(),
                                   message_authenticator=messageAuthenticator)
    for name, value in attributes.items():
        packet.AddAttribute(name.replace("_", "-"), value)
    return packet.RequestPacket()


class DAEServerTests(SynchronousTestCase):
    def setUp(self):
        self.disconnected = []
        self.sessions = [
            dae.DAESession(b"\x01" * 8, b"\x02" * 8, "alice", ["10.77.0.1"], "sa1"),
            dae.DAESession(b"\x03" * 8, b"\x04" * 8, "alice", ["10.77.0.2"], "sa2"),
            dae.DAESession(b"\x05" * 8, b"\x06" * 8, "bob", ["10.77.0.3"], "sa3"),
        ]
        self.server = dae.DynamicAuthorizationServer({"127.0.0.1": "dae-s3cret"}, lambda: self.sessions,
                                                     self.disconnected.append, radius.radiusDictionary())
        self.udp = self.server.transport = FakeUDP()
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def send(self, data, addr=CLIENT):
        self.server.datagramReceived(data, addr)
        if not self.udp.written:
            return None
        raw, to = self.udp.written.pop()
        self.assertEqual(to, addr)
        # RFC 5176 3.5: the Response Authenticator over the request's.
        code, ident, length = struct.unpack("!BBH", raw[:4])
        self.assertEqual(ident, data[1])
        self.assertEqual(raw[4:20], hashlib.md5(raw[:4] + data[4:20] + raw[20:length] + SECRET).digest())
        return pyradPacket.CoAPacket(secret=SECRET, dict=radius.radiusDictionary(), packet=raw)

    def assertAnswer(self, answer, code, cause=None):
        self.assertIsNotNone(answer, "no answer")
        self.assertEqual(answer.code, code)
        self.assertEqual(answer.get("Error-Cause"), None if cause is None else [cause])

    def test_bySessionId(self):
        """
        Acct-Session-Id (ours, spiI-spiR) names one IKE SA: deleted, ACK.
        """
        answer = self.send(request(Acct_Session_Id="0101010101010101-0202020202020202"))
        self.assertAnswer(answer, pyradPacket.DisconnectACK)
        self.assertEqual(self.disconnected, ["sa1"])

    def test_byIkedSessionId(self):
        """
        iked's Acct-Session-Id (the initiator's SPI in hex) names it too.
        """
        self.assertAnswer(self.send(request(Acct_Session_Id="0505050505050505")), pyradPacket.DisconnectACK)
        self.assertEqual(self.disconnected, ["sa3"])

    def test_byUserName(self):
        """
        User-Name alone: every IKE SA of that EAP identity.
        """
        self.assertAnswer(self.send(request(User_Name="alice")), pyradPacket.DisconnectACK)
        self.assertEqual(self.disconnected, ["sa1", "sa2"])

    def test_byFramedAddress(self):
        self.assertAnswer(self.send(request(Framed_IP_Address="10.77.0.3")), pyradPacket.DisconnectACK)
        self.assertEqual(self.disconnected, ["sa3"])

    def test_userNameMismatch(self):
        """
        A session id with someone else's User-Name: NAK 407, nothing
        deleted.
        """
        answer = self.send(request(Acct_Session_Id="0101010101010101-0202020202020202", User_Name="bob"))
        self.assertAnswer(answer, pyradPacket.DisconnectNAK, dae.ERROR_INVALID_ATTRIBUTE_VALUE)
        self.assertEqual(self.disconnected, [])

    def test_notFound(self):
        """
        No such session: NAK with Error-Cause 503.
        """
        self.assertAnswer(self.send(request(User_Name="carol")), pyradPacket.DisconnectNAK,
                          dae.ERROR_SESSION_NOT_FOUND)
        self.assertAnswer(self.send(request()), pyradPacket.DisconnectNAK, dae.ERROR_SESSION_NOT_FOUND)
        self.assertEqual(self.disconnected, [])

    def test_nasIdentifierMismatch(self):
        self.assertAnswer(self.send(request(User_Name="alice", NAS_Identifier="other-nas")),
                          pyradPacket.DisconnectNAK, dae.ERROR_NAS_IDENTIFICATION_MISMATCH)
        self.assertEqual(self.disconnected, [])

    def test_coaRefused(self):
        """
        CoA-Request: CoA-NAK, Administratively Prohibited (iked's answer).
        """
        self.assertAnswer(self.send(request(pyradPacket.CoARequest, User_Name="alice")), pyradPacket.CoANAK,
                          dae.ERROR_ADMINISTRATIVELY_PROHIBITED)
        self.assertEqual(self.disconnected, [])

    def test_messageAuthenticator(self):
        """
        A request with a right Message-Authenticator is served; one whose
        Message-Authenticator is wrong is dropped.
        """
        data = request(User_Name="bob", messageAuthenticator=True)
        self.assertAnswer(self.send(data), pyradPacket.DisconnectACK)
        index = data.index(bytes([80, 18]))
        bad = bytearray(data)
        bad[index + 2] ^= 1
        # The Request Authenticator covers the attributes: recompute it so
        # that only the Message-Authenticator is wrong.
        bad[4:20] = hashlib.md5(bytes(bad[:4]) + b"\x00" * 16 + bytes(bad[20:]) + SECRET).digest()
        self.assertIsNone(self.send(bytes(bad)))
        self.assertEqual(self.disconnected, ["sa3"])

    def test_dropped(self):
        """
        Nothing is answered and nothing deleted for an unknown client, a
        wrong secret, a malformed datagram or another code; each is logged
        and nothing escapes.
        """
        good = request(User_Name="alice")
        self.assertIsNone(self.send(good, ("192.0.2.66", 3799)))
        self.assertIsNone(self.send(request(secret=b"wrong", User_Name="alice")))
        self.assertIsNone(self.send(good[:19]))
        self.assertIsNone(self.send(good[:2] + struct.pack("!H", 200) + good[4:]))
        self.assertIsNone(self.send(good[:20] + b"\x01\x00"))
        overrun = bytearray(good)
        overrun[21] = 200
        self.assertIsNone(self.send(bytes(overrun)))
        self.assertIsNone(self.send(request(pyradPacket.AccessRequest, User_Name="alice")))
        self.assertIsNone(self.send(b"\xff" * 4096))
        self.assertEqual(self.disconnected, [])
        self.assertEqual(self.server.dropped, 8)
        texts = [formatEvent(e) for e in self.logged]
        self.assertTrue([t for t in texts if "not a radius dae client" in t])
        self.assertTrue([t for t in texts if "Request Authenticator does not verify" in t])
        self.assertFalse([e for e in self.logged if e.get("log_failure") is not None])

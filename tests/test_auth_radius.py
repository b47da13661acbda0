"""
Tests for L{ikedtx.auth.radius}: the RADIUS client in memory (task.Clock and
a fake UDP transport: retransmits, failover, malformed answers), and
EAP-MSCHAPv2 and accounting through a real FreeRADIUS started by the test
(L{ikedtx.testing.lab.freeradius}).
"""

import hashlib
import hmac
import struct

from pyrad import packet as pyradPacket
from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.auth import eap, radius
from ikedtx.auth.radius import (
    EAPStep,
    RadiusAccounting,
    RadiusClient,
    RadiusEAPBackend,
    RadiusServer,
    AccountingSession,
)

SECRET = b"testing123"


class FakeUDP:
    """
    A transport that records what is written.
    """

    def __init__(self):
        self.written = []

    def write(self, data, addr):
        self.written.append((bytes(data), addr))


class LogCapture:
    def __init__(self, case):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def texts(self, level=None):
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events if level is None or e.get("log_level") == level]


def makeClient(servers=None, **kw):
    clock = task.Clock()
    servers = servers or [RadiusServer("192.0.2.1", 1812, SECRET)]
    client = RadiusClient(servers, reactor=clock, timeout=3, **kw)
    udp = FakeUDP()
    client.transport = udp
    return client, clock, udp


def answer(raw, code, secret=SECRET, attributes=(), messageAuthenticator=True, mangle=None):
    """
    Build a server's answer to request C{raw} as FreeRADIUS would.
    """
    request = pyradPacket.AuthPacket(secret=secret, dict=radius.radiusDictionary(), packet=raw)
    reply = request.CreateReply()
    reply.code = code
    if not messageAuthenticator:
        reply.message_authenticator = False
        dict.pop(reply, 80, None)
    for key, value in attributes:
        reply.AddAttribute(key, value)
    data = reply.ReplyPacket()
    if mangle is not None:
        data = mangle(data)
    return data


def signedAnswer(raw, code, attrs, secret=SECRET):
    """
    An answer to request C{raw} with the attribute octets C{attrs} as given
    (malformed or not), after a Message-Authenticator, and both
    authenticators right.
    """
    requestAuthenticator = raw[4:20]
    body = bytes([80, 18]) + b"\x00" * 16 + attrs
    header = bytes([code, raw[1]]) + struct.pack("!H", 20 + len(body))
    mac = hmac.new(secret, header + requestAuthenticator + body, "md5").digest()
    body = bytes([80, 18]) + mac + attrs
    auth = hashlib.md5(header + requestAuthenticator + body + secret).digest()
    return header + auth + body


def mppeEncrypt(secret, requestAuthenticator, key, salt=b"\x80\x01"):
    """
    RFC 2548 2.4.2 encryption, written out here independently of pyrad.
    """
    plain = bytes([len(key)]) + key
    plain += b"\x00" * (-len(plain) % 16)
    out, last = b"", requestAuthenticator + salt
    for i in range(0, len(plain), 16):
        b = hashlib.md5(secret + last).digest()
        c = bytes(x ^ y for x, y in zip(plain[i : i + 16], b))
        out += c
        last = c
    return salt + out


def vsa(vendor, vtype, value):
    return struct.pack("!LBB", vendor, vtype, 2 + len(value)) + value


class CodecTests(SynchronousTestCase):
    def test_splitEAP(self):
        packet = bytes(range(256)) * 3
        parts = radius.splitEAP(packet)
        self.assertEqual([len(p) for p in parts], [253, 253, 253, 9])
        self.assertEqual(b"".join(parts), packet)

    def test_mppeDecrypt(self):
        """
        The MS-MPPE keys of an Access-Accept (encrypted here by hand, RFC
        2548 2.4.2) decrypt with the Request Authenticator; the MSK is
        Recv || Send padded to 64 octets.
        """
        client, clock, udp = makeClient()
        session = RadiusEAPBackend(client).newSession(None, b"peer")
        self.successResultOf(session.start())
        d = session.receive(eap.EAPPacket(eap.RESPONSE, 0, eap.TYPE_IDENTITY, b"alice").encode())
        raw = udp.written[-1][0]
        authenticator = raw[4:20]
        recv, send = bytes(range(16)), bytes(range(100, 116))
        attrs = bytes([26, 2 + 6 + 34]) + vsa(311, 17, mppeEncrypt(SECRET, authenticator, recv))
        attrs += bytes([26, 2 + 6 + 34]) + vsa(311, 16, mppeEncrypt(SECRET, authenticator, send, b"\x80\x02"))
        client.datagramReceived(signedAnswer(raw, pyradPacket.AccessAccept, attrs), ("192.0.2.1", 1812))
        step = self.successResultOf(d)
        self.assertIs(step.outcome, True)
        self.assertEqual(step.msk, recv + send + b"\x00" * 32)
        self.assertEqual(eap.EAPPacket.decode(step.packet).code, eap.SUCCESS)

    def test_mppeMalformed(self):
        decoded = pyradPacket.AuthPacket(secret=SECRET, dict=radius.radiusDictionary())
        decoded.request_authenticator = b"\x00" * 16
        dict.__setitem__(decoded, (311, 17), [b"\x80\x01" + b"\x00" * 5])
        dict.__setitem__(decoded, (311, 16), [b"\x80\x01" + b"\x00" * 16])
        self.assertRaises(radius.RadiusError, radius.mskFromAccept, decoded)


class ClientTests(SynchronousTestCase):
    """
    Retransmits, failover and malformed answers in memory.
    """

    def setUp(self):
        self.logs = LogCapture(self)

    def sendOne(self, client):
        session = RadiusEAPBackend(client).newSession(None, b"peer")
        self.successResultOf(session.start())
        return session, session.receive(eap.EAPPacket(eap.RESPONSE, 7, eap.TYPE_IDENTITY, b"alice").encode())

    def test_requestCarriesEAPAndMessageAuthenticator(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw, addr = udp.written[0]
        self.assertEqual(addr, ("192.0.2.1", 1812))
        request = pyradPacket.AuthPacket(secret=SECRET, dict=radius.radiusDictionary(), packet=raw)
        self.assertEqual(raw[0], pyradPacket.AccessRequest)
        self.assertEqual(request[79], [eap.EAPPacket(eap.RESPONSE, 7, eap.TYPE_IDENTITY, b"alice").encode()])
        self.assertEqual(request["User-Name"], ["alice"])
        self.assertTrue(request.verify_message_authenticator(secret=SECRET))
        self.assertNoResult(d)

    def test_retransmitsThenFails(self):
        client, clock, udp = makeClient(maxTries=3)
        session, d = self.sendOne(client)
        clock.advance(3)
        clock.advance(3)
        self.assertEqual(len(udp.written), 3)
        self.assertEqual(len({w[0] for w in udp.written}), 1, "a retransmit is the same packet")
        self.assertNoResult(d)
        clock.advance(3)
        step = self.successResultOf(d)
        self.assertEqual(step.outcome, False)
        self.assertEqual(eap.EAPPacket.decode(step.packet).code, eap.FAILURE)
        self.assertEqual(len(udp.written), 3)
        self.assertTrue(any("timed out" in t for t in self.logs.texts()))

    def test_failover(self):
        servers = [RadiusServer("192.0.2.1", 1812, SECRET), RadiusServer("192.0.2.2", 1812, b"other")]
        client, clock, udp = makeClient(servers, maxTries=2)
        session, d = self.sendOne(client)
        clock.advance(3)
        clock.advance(3)
        self.assertEqual([w[1] for w in udp.written], [("192.0.2.1", 1812)] * 2 + [("192.0.2.2", 1812)])
        # The request to the second server is signed with its secret.
        raw = udp.written[-1][0]
        request = pyradPacket.AuthPacket(secret=b"other", dict=radius.radiusDictionary(), packet=raw)
        self.assertTrue(request.verify_message_authenticator(secret=b"other"))
        client.datagramReceived(
            answer(raw, pyradPacket.AccessReject, secret=b"other"), ("192.0.2.2", 1812)
        )
        step = self.successResultOf(d)
        self.assertEqual(step.outcome, False)
        self.assertTrue(any("failing over" in t for t in self.logs.texts()))
        # The next request starts at the server that answered.
        session2, d2 = self.sendOne(client)
        self.assertEqual(udp.written[-1][1], ("192.0.2.2", 1812))

    def assertDroppedThenTimeout(self, client, clock, d, count, words):
        self.assertNoResult(d)
        self.assertEqual(client.dropped, count)
        self.assertTrue(any(words in t for t in self.logs.texts()), self.logs.texts())
        clock.pump([3, 3, 3])
        self.assertEqual(self.successResultOf(d).outcome, False)

    def test_badLength(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw = udp.written[0][0]
        good = answer(raw, pyradPacket.AccessReject)
        client.datagramReceived(good[:2] + struct.pack("!H", len(good) + 10) + good[4:], ("192.0.2.1", 1812))
        client.datagramReceived(good[:19], ("192.0.2.1", 1812))
        client.datagramReceived(good[:2] + struct.pack("!H", 19) + good[4:], ("192.0.2.1", 1812))
        self.assertDroppedThenTimeout(client, clock, d, 3, "Length")

    def test_badAttributeLength(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw = udp.written[0][0]
        good = answer(raw, pyradPacket.AccessReject)
        bad = good[:20] + b"\x12\x01" + good[22:]
        client.datagramReceived(bad, ("192.0.2.1", 1812))
        # Signed correctly, but the last attribute overruns the Length
        # (pyrad alone would truncate it and accept the packet).
        client.datagramReceived(signedAnswer(raw, pyradPacket.AccessReject, b"\x12\x09x"), ("192.0.2.1", 1812))
        # A single octet left after the last attribute.
        client.datagramReceived(signedAnswer(raw, pyradPacket.AccessReject, b"\x12"), ("192.0.2.1", 1812))
        self.assertDroppedThenTimeout(client, clock, d, 3, "malformed")
        texts = " ".join(self.logs.texts())
        self.assertIn("attribute 18 of Length 9", texts)
        self.assertIn("truncated attribute header", texts)

    def test_badAuthenticator(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw = udp.written[0][0]
        flipped = answer(raw, pyradPacket.AccessReject, mangle=lambda b: b[:4] + bytes([b[4] ^ 1]) + b[5:])
        client.datagramReceived(flipped, ("192.0.2.1", 1812))
        wrongSecret = answer(raw, pyradPacket.AccessAccept, secret=b"wrong")
        client.datagramReceived(wrongSecret, ("192.0.2.1", 1812))
        self.assertDroppedThenTimeout(client, clock, d, 2, "does not verify")

    def test_missingMessageAuthenticator(self):
        """
        An Access answer without Message-Authenticator is dropped
        (BlastRADIUS), even with a right Response Authenticator.
        """
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw = udp.written[0][0]
        client.datagramReceived(
            answer(raw, pyradPacket.AccessAccept, messageAuthenticator=False), ("192.0.2.1", 1812)
        )
        self.assertDroppedThenTimeout(client, clock, d, 1, "does not verify")

    def test_unknownCode(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw = udp.written[0][0]
        client.datagramReceived(answer(raw, 42), ("192.0.2.1", 1812))
        client.datagramReceived(answer(raw, pyradPacket.AccountingResponse), ("192.0.2.1", 1812))
        self.assertDroppedThenTimeout(client, clock, d, 2, "is no answer")

    def test_wrongSourceOrIdentifier(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw = udp.written[0][0]
        good = answer(raw, pyradPacket.AccessReject)
        client.datagramReceived(good, ("192.0.2.9", 1812))
        client.datagramReceived(good[:1] + bytes([good[1] ^ 0xFF]) + good[2:], ("192.0.2.1", 1812))
        self.assertDroppedThenTimeout(client, clock, d, 2, "no request with identifier")

    def test_garbageNeverRaises(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        for junk in (b"", b"\x02", b"\x02" * 20, bytes(4096), b"\x0b\x00\x00\x14" + bytes(16)):
            client.datagramReceived(junk, ("192.0.2.1", 1812))
        self.assertNoResult(d)

    def test_challengeStateEchoedAndReject(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw = udp.written[0][0]
        challenge = eap.EAPPacket(eap.REQUEST, 8, eap.TYPE_MSCHAPV2, b"\x01\x08\x00\x1a\x10" + bytes(16) + b"x").encode()
        client.datagramReceived(
            answer(raw, pyradPacket.AccessChallenge, attributes=[("EAP-Message", challenge), ("State", b"st8")]),
            ("192.0.2.1", 1812),
        )
        step = self.successResultOf(d)
        self.assertEqual(step, EAPStep(challenge, identity="alice"))
        d2 = session.receive(eap.EAPPacket(eap.RESPONSE, 8, eap.TYPE_NAK, b"\x1a").encode())
        raw2 = udp.written[-1][0]
        request2 = pyradPacket.AuthPacket(secret=SECRET, dict=radius.radiusDictionary(), packet=raw2)
        self.assertEqual(request2["State"], [b"st8"])
        client.datagramReceived(answer(raw2, pyradPacket.AccessReject), ("192.0.2.1", 1812))
        step2 = self.successResultOf(d2)
        self.assertEqual(step2.outcome, False)
        self.assertIsNone(step2.msk)

    def test_acceptWithoutKeysFails(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        raw = udp.written[0][0]
        client.datagramReceived(answer(raw, pyradPacket.AccessAccept), ("192.0.2.1", 1812))
        step = self.successResultOf(d)
        self.assertEqual(step.outcome, False)
        self.assertTrue(any("without a usable MSK" in t for t in self.logs.texts()))

    def test_abortCancels(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        session.abort()
        self.assertEqual(self.successResultOf(d).outcome, False)
        clock.advance(100)
        self.assertEqual(len(udp.written), 1, "no retransmit after abort")
        self.assertEqual(client._outstanding, {})

    def test_failureIdentifierMatchesResponse(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        client.datagramReceived(answer(udp.written[0][0], pyradPacket.AccessReject), ("192.0.2.1", 1812))
        failure = eap.EAPPacket.decode(self.successResultOf(d).packet)
        self.assertEqual((failure.code, failure.identifier), (eap.FAILURE, 7))

    def test_oneRequestAtATime(self):
        client, clock, udp = makeClient()
        session, d = self.sendOne(client)
        self.assertRaises(RuntimeError, session.receive, eap.EAPPacket(eap.RESPONSE, 7, eap.TYPE_NAK, b"\x1a").encode())
        self.assertEqual(len(udp.written), 1)

    def test_clientsFromConfig(self):
        from ikedtx.config import parseConfig

        config = parseConfig(
            'radius server 192.0.2.1 secret "a"\nradius server 192.0.2.2 port 1645 secret "b"\n'
            "radius max-tries 2\nradius max-failovers 1\n"
            'ikev2 "rw" passive esp from 10.0.0.0/24 to 10.1.0.0/24 peer any eap "radius"\n'
        )
        auth, acct = radius.clientsFor(config.radius, reactor=task.Clock())
        self.assertIsNone(acct)
        self.assertEqual(auth.servers, (RadiusServer("192.0.2.1", 1812, b"a"), RadiusServer("192.0.2.2", 1645, b"b")))
        self.assertEqual((auth.maxTries, auth.maxFailovers), (2, 1))

    def test_firstResponseMustBeIdentity(self):
        client, clock, udp = makeClient()
        session = RadiusEAPBackend(client).newSession(None, b"peer")
        step = self.successResultOf(session.receive(eap.EAPPacket(eap.RESPONSE, 1, eap.TYPE_NAK, b"\x1a").encode()))
        self.assertEqual(step.outcome, False)
        self.assertEqual(udp.written, [])

    def test_accountingRetransmitAndFailover(self):
        servers = [RadiusServer("192.0.2.1", 1813, SECRET), RadiusServer("192.0.2.2", 1813, SECRET)]
        client, clock, udp = makeClient(servers, maxTries=1)
        acct = RadiusAccounting(client)
        session = AccountingSession("sid-1", "alice")
        d = acct.start(session)
        clock.advance(3)
        self.assertEqual([w[1] for w in udp.written], [("192.0.2.1", 1813), ("192.0.2.2", 1813)])
        raw = udp.written[-1][0]
        request = pyradPacket.AcctPacket(secret=SECRET, dict=radius.radiusDictionary(), packet=raw)
        self.assertTrue(request.VerifyAcctRequest())
        self.assertEqual(request["Acct-Status-Type"], [1])
        self.assertEqual(request["Acct-Session-Id"], ["sid-1"])
        reply = request.CreateReply()
        client.datagramReceived(reply.ReplyPacket(), ("192.0.2.2", 1813))
        self.assertIs(self.successResultOf(d), True)
        clock.advance(122)  # 125 s after the Start at 0
        d = acct.stop(session, inputOctets=1000, outputOctets=2000, inputPackets=10, outputPackets=20)
        raw = udp.written[-1][0]
        request = pyradPacket.AcctPacket(secret=SECRET, dict=radius.radiusDictionary(), packet=raw)
        self.assertEqual(request["Acct-Status-Type"], [2])
        self.assertEqual(request["Acct-Session-Time"], [125])
        self.assertEqual(request["Acct-Input-Octets"], [1000])
        self.assertEqual(request["Acct-Output-Packets"], [20])
        clock.advance(3)
        clock.advance(3)
        self.assertIs(self.successResultOf(d), False)


class ConfigFromAcceptTests(SynchronousTestCase):
    """
    iked's C{radius config}: the Access-Accept attributes that become CP
    attributes (L{radius.configFromAccept}).
    """

    def accept(self, attrs):
        body = bytes([8, 6]) + bytes([10, 78, 0, 5]) + bytes([9, 6]) + bytes([255, 255, 255, 0]) + attrs
        raw = bytes([2, 1]) + struct.pack("!H", 20 + len(body)) + b"\x00" * 16 + body
        return pyradPacket.AuthPacket(secret=SECRET, dict=radius.radiusDictionary(), packet=raw)

    def test_defaults(self):
        """
        Without C{radius config} lines, iked's maps: Framed-IP-Address,
        Framed-IP-Netmask and Microsoft's DNS/NBNS servers; a value of the
        wrong size is skipped.
        """
        from ipaddress import ip_address

        reply = self.accept(bytes([26, 12]) + vsa(311, 28, bytes([10, 9, 9, 9])) +
                            bytes([26, 11]) + vsa(311, 30, bytes([10, 9, 9])))
        self.assertEqual(radius.configFromAccept(reply),
                         ((1, ip_address("10.78.0.5")), (2, ip_address("255.255.255.0")), (3, ip_address("10.9.9.9"))))

    def test_configured(self):
        """
        With C{radius config} lines only they map; C{none} maps nothing.
        """
        from ipaddress import ip_address

        from ikedtx.config import parseConfig

        config = parseConfig('radius server 192.0.2.1 secret "a"\n'
                             'radius config name-server 311 28\nradius config none 8\n'
                             'ikev2 "rw" passive esp from 10.0.0.0/24 to 10.1.0.0/24 peer any eap "radius"\n')
        reply = self.accept(bytes([26, 12]) + vsa(311, 28, bytes([10, 9, 9, 9])))
        self.assertEqual(radius.configFromAccept(reply, config.radius.configMaps), ((3, ip_address("10.9.9.9")),))


class AccountingRecordTests(SynchronousTestCase):
    def test_stopFromSession(self):
        """
        The Stop carries the counters the session gathered and, in Start
        and Stop, the session's own NAS-IP-Address (the IKE SA's local
        address) and Framed-IP-Address.
        """
        client, clock, udp = makeClient([RadiusServer("192.0.2.1", 1813, SECRET)])
        acct = RadiusAccounting(client)
        session = AccountingSession("sid-2", "alice", framedAddress="10.77.0.1", nasAddress="192.0.2.7")
        acct.start(session)
        session.inputOctets, session.outputOctets, session.inputPackets, session.outputPackets = 11, 22, 3, 4
        clock.advance(1)
        acct.stop(session)
        requests = [pyradPacket.AcctPacket(secret=SECRET, dict=radius.radiusDictionary(), packet=raw)
                    for raw, _ in udp.written]
        start, stop = requests[0], requests[-1]
        self.assertEqual(start["NAS-IP-Address"], ["192.0.2.7"])
        self.assertEqual(stop["Acct-Status-Type"], [2])
        self.assertEqual((stop["NAS-IP-Address"], stop["Framed-IP-Address"]), (["192.0.2.7"], ["10.77.0.1"]))
        self.assertEqual((stop["Acct-Input-Octets"], stop["Acct-Output-Octets"], stop["Acct-Input-Packets"],
                          stop["Acct-Output-Packets"]), ([11], [22], [3], [4]))


class FreeRadiusTests(TestCase):
    """
    EAP-MSCHAPv2 and accounting through a real FreeRADIUS.
    """

    timeout = 120

    def setUp(self):
        from ikedtx.testing.lab.freeradius import FreeRadius

        self.server = FreeRadius(self.mktemp(), SECRET, {"alice": "correct horse"})
        self.server.start()
        self.addCleanup(self.server.stop)
        self.logs = LogCapture(self)

    def client(self, servers=None, **kw):
        servers = servers or [RadiusServer("127.0.0.1", self.server.authPort, SECRET)]
        client = RadiusClient(servers, reactor=reactor, **kw)
        port = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return client

    @defer.inlineCallbacks
    def converse(self, client, password, user="alice"):
        """
        Run an EAP-MSCHAPv2 peer against the RADIUS backend; return the
        final step and the peer.
        """
        backend = RadiusEAPBackend(client)
        session = backend.newSession(None, b"peer.example")
        peer = eap.MSCHAPv2Client(user, password)
        step = yield session.start()
        rounds = 0
        while step.outcome is None:
            rounds += 1
            self.assertLess(rounds, 10)
            response = peer.receive(step.packet)
            self.assertIsNotNone(response)
            step = yield session.receive(response)
        if step.packet is not None and peer.state not in (eap.SUCCEEDED, eap.FAILED):
            peer.receive(step.packet)
        defer.returnValue((step, peer))

    @defer.inlineCallbacks
    def test_accept(self):
        """
        EAP-MSCHAPv2 through FreeRADIUS reaches Access-Accept; the MSK from
        the MS-MPPE keys equals the one the peer computes.
        """
        step, peer = yield self.converse(self.client(), "correct horse")
        self.assertIs(step.outcome, True)
        self.assertEqual(peer.state, eap.SUCCEEDED)
        self.assertEqual(len(step.msk), 64)
        self.assertEqual(step.msk, peer.msk)

    @defer.inlineCallbacks
    def test_wrongPassword(self):
        step, peer = yield self.converse(self.client(), "wrong horse")
        self.assertIs(step.outcome, False)
        self.assertIsNone(step.msk)
        self.assertEqual(eap.EAPPacket.decode(step.packet).code, eap.FAILURE)
        self.assertIn("Access-Reject", " ".join(self.logs.texts()))

    @defer.inlineCallbacks
    def test_wrongSecret(self):
        """
        With a wrong shared secret FreeRADIUS's answers (if any) do not
        verify: dropped and logged, then the request times out.
        """
        client = self.client([RadiusServer("127.0.0.1", self.server.authPort, b"not-the-secret")],
                             timeout=0.5, maxTries=2)
        step, peer = yield self.converse(client, "correct horse")
        self.assertIs(step.outcome, False)
        self.assertTrue(any("timed out" in t for t in self.logs.texts()), self.logs.texts())
        # FreeRADIUS refuses each try (it cannot verify our
        # Message-Authenticator) and answers nothing; answers signed with
        # another secret are dropped by ClientTests.test_badAuthenticator.
        self.assertEqual(self.server.log().count("invalid Message-Authenticator"), 2)

    @defer.inlineCallbacks
    def test_failover(self):
        """
        A dead first server: retransmits, then the second (FreeRADIUS)
        answers.
        """
        from ikedtx.testing.lab.freeradius import freeUDPPorts

        (dead,) = freeUDPPorts(1)
        client = self.client(
            [RadiusServer("127.0.0.1", dead, SECRET), RadiusServer("127.0.0.1", self.server.authPort, SECRET)],
            timeout=1.0,
            maxTries=2,
        )
        step, peer = yield self.converse(client, "correct horse")
        self.assertIs(step.outcome, True)
        self.assertEqual(step.msk, peer.msk)
        texts = " ".join(self.logs.texts())
        self.assertIn("retransmitting", texts)
        self.assertIn("failing over", texts)

    @defer.inlineCallbacks
    def test_accounting(self):
        """
        Start and Stop reach FreeRADIUS's detail file with the session id,
        time and counts.
        """
        client = self.client([RadiusServer("127.0.0.1", self.server.acctPort, SECRET)])
        clock = [1000.0]
        acct = RadiusAccounting(client, nasIdentifier="ikedtx-test", clock=lambda: clock[0])
        session = AccountingSession(radius.sessionIdFor(b"\x01" * 8, b"\x02" * 8), "alice",
                                    framedAddress="10.9.0.5")
        ok = yield acct.start(session)
        self.assertIs(ok, True)
        clock[0] += 42
        ok = yield acct.stop(session, inputOctets=1234, outputOctets=5678, inputPackets=9, outputPackets=11)
        self.assertIs(ok, True)
        records = self.server.detailRecords()
        self.assertEqual([r.get("Acct-Status-Type") for r in records], ["Start", "Stop"])
        for r in records:
            self.assertEqual(r["Acct-Session-Id"], "0101010101010101-0202020202020202")
            self.assertEqual(r["User-Name"], "alice")
            self.assertEqual(r["NAS-Identifier"], "ikedtx-test")
            self.assertEqual(r["Framed-IP-Address"], "10.9.0.5")
        stop = records[1]
        self.assertEqual(stop["Acct-Session-Time"], "42")
        self.assertEqual(stop["Acct-Input-Octets"], "1234")
        self.assertEqual(stop["Acct-Output-Octets"], "5678")
        self.assertEqual(stop["Acct-Input-Packets"], "9")
        self.assertEqual(stop["Acct-Output-Packets"], "11")

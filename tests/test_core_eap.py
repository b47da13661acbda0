"""
Tests for EAP in IKE_AUTH (RFC 7296 2.16), L{ikedtx.core.tasks.eap}: an
ikedtx initiator with C{eap "mschap-v2"} against an ikedtx responder that
authenticates with its certificate and checks C{user} lines, in memory;
and every way either side refuses.
"""

import dataclasses

from twisted.internet.defer import Deferred, fail
from twisted.logger import formatEvent, globalLogPublisher
from zope.interface import implementer

from ikedtx.auth import eap as mschap
from ikedtx.auth.eapbackend import EAPStep, IEAPBackend, IEAPSession
from ikedtx.auth.store import CredentialStore
from ikedtx.config import parseConfig
from ikedtx.core.errors import AuthenticationFailed
from ikedtx.core.tasks import eap as eaptask
from ikedtx.wire.constants import AuthMethod, NotifyType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Authentication

from tests import pki
from tests.corehelpers import Host, Network
from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase

PASSWORD = "c0rrect-h0rse"


def configs(clientUser="alice", clientPassword=PASSWORD, serverUsers=(("alice", PASSWORD),), serverExtra="",
            clientExtra="", serverPeer=A_ADDR):
    a = parseConfig('user "%s" "%s"\nikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s '
                    'srcid %s@example.org dstid b.example eap "mschap-v2" %s' % (
                        clientUser, clientPassword, A_ADDR, B_ADDR, clientUser, clientExtra))
    users = "".join('user "%s" "%s"\n' % u for u in serverUsers)
    b = parseConfig('%sikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s '
                    'srcid b.example eap "mschap-v2" %s' % (users, B_ADDR, serverPeer, serverExtra))
    return a, b


class EAPTestCase(ExchangeTestCase):
    def setUp(self):
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def negotiate(self, users=None, settingsB=None, **kw):
        a, b = configs(**kw)
        if users is not None:
            a = dataclasses.replace(a, users=users)
        treeA, treeB = pki.IkedTree(self.mktemp()), pki.IkedTree(self.mktemp())
        ca = self.ca = pki.Authority.root(kind="p256", keyName="ca-p256")
        keyB = pki.key("b-p256", "p256")
        treeB.setLocalKey(keyB)
        treeB.addCert(ca.issue(pki.name(CN="b.example"), keyB.public_key(), dns=["b.example"]))
        treeB.addCA(ca.certificate)
        treeA.addCA(ca.certificate)
        self.network = Network()
        self.a = Host(self.network, A_ADDR, a, credentials=CredentialStore(treeA.root), wallClock=lambda: pki.NOW)
        self.b = Host(self.network, B_ADDR, b, credentials=CredentialStore(treeB.root), wallClock=lambda: pki.NOW,
                      settings=settingsB)
        return self.a.initiate("ab")

    def run_(self, **kw):
        requestId = self.negotiate(**kw)
        self.network.pump()
        return requestId

    def ikeAuthMessages(self):
        return [d for d, _, _ in self.network.delivered if Message.decode(d).exchangeType == 35]

    def assertRefused(self, requestId, serverCounts=True):
        """
        The initiator's request failed with AUTHENTICATION_FAILED, neither
        side keeps an IKE SA, the failure was counted, and no log line
        holds the password.
        """
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual(self.a.ikeSAs, [])
        if not serverCounts:
            # The client's AUTHENTICATION_FAILED cannot reach a responder
            # that has not authenticated it; its half-open SA times out.
            self.assertEqual([sa.isEstablished for sa in self.b.ikeSAs], [False])
            self.network.clock.advance(600)
        self.assertEqual(self.b.ikeSAs, [])
        self.assertEqual(self.b.kernel.sas, {})
        counters = self.b.core.counters if serverCounts else self.a.core.counters
        self.assertEqual(counters["ikedtx_eap_failures"], 1)
        self.assertEqual(counters["ikedtx_eap_success"], 0)
        self.assertTrue([e for e in self.logged if "EAP authentication failed" in formatEvent(e)])
        self.assertNoSecretsLogged()

    def assertNoSecretsLogged(self):
        hashes = (mschap.ntPasswordHash(PASSWORD).hex(), mschap.ntPasswordHash(PASSWORD).hex().upper())
        for event in self.logged:
            text = formatEvent(event) + repr(event)
            self.assertNotIn(PASSWORD, text)
            for h in hashes:
                self.assertNotIn(h, text)


class SuccessTests(EAPTestCase):
    def test_mschapv2(self):
        """
        IKE_AUTH without AUTH, the server's certificate AUTH with the
        EAP-Identity Request, the MS-CHAPv2 Challenge, Success Request, EAP
        Success, then both AUTHs from the MSK: five IKE_AUTH exchanges, a
        Child SA with matching keys, both sides counting one success.
        """
        requestId = self.run_()
        self.assertSucceeded(self.a, requestId)
        self.assertChildKeysMatch(self.a, self.b)
        self.assertEqual(len(self.ikeAuthMessages()), 10)
        self.assertEqual(self.b.core.counters["ikedtx_eap_success"], 1)
        self.assertEqual(self.a.core.counters["ikedtx_eap_success"], 1)
        (server,) = self.b.ikeSAs
        self.assertEqual(server.eapIdentity, "alice")
        self.assertEqual(str(server.peerId), "UFQDN/alice@example.org")
        self.assertIsNone(server.eap.msk)
        self.assertNoSecretsLogged()

    def test_identityAskedEvenWhenKnown(self):
        """
        The EAP-Identity round is kept, as iked keeps it (ikev2.c
        ikev2_resp_ike_auth always starts with eap_identity_request):
        even a peer whose IDi names a C{user} line exactly is asked first
        for its EAP identity, and the identity it gives (not its IDi) is
        the one authenticated.
        """
        received = []
        base = mschap.MSCHAPv2Client

        class Recording(base):
            def receive(self, packet):
                received.append(mschap.EAPPacket.decode(packet))
                return base.receive(self, packet)

        self.patch(mschap, "MSCHAPv2Client", Recording)
        requestId = self.run_(serverUsers=(("alice", PASSWORD), ("alice@example.org", "other")))
        self.assertSucceeded(self.a, requestId)
        self.assertEqual((received[0].code, received[0].type), (mschap.REQUEST, mschap.TYPE_IDENTITY))
        (server,) = self.b.ikeSAs
        self.assertEqual(str(server.peerId), "UFQDN/alice@example.org")
        self.assertEqual(server.eapIdentity, "alice")

    def test_leaseKeyedByEAPUser(self):
        """
        With a pool, the address is lent to the EAP user (not to the IDi,
        which Windows clients fill with their IP address) and the client
        gets it.
        """
        requestId = self.run_(serverExtra="config address 10.77.0.0/29",
                              clientExtra="request address any")
        self.assertSucceeded(self.a, requestId)
        (pool,) = self.b.core.pools._pools.values()
        (lease,) = pool.leases.values()
        self.assertEqual((str(lease.address), lease.identity), ("10.77.0.1", "eap:alice"))

    def test_serverSignsFirst(self):
        """
        The first IKE_AUTH response carries the server's IDr, CERT and a
        signature AUTH next to the EAP Request; no Child SA payloads until
        the last.
        """
        self.negotiate()
        for _ in range(4):
            self.network.deliverOne()
        firstResponse = Message.decode(self.network.delivered[3][0])
        inner = firstResponse.decrypt(self.a.ikeSAs[0].cipherIn)
        names = [type(p).__name__ for p in inner]
        self.assertEqual(names, ["IdentificationResponder", "Certificate", "Authentication", "EAP"])
        self.assertNotEqual(inner[2].method, AuthMethod.SHARED_KEY_MIC)

    def test_asynchronousBackend(self):
        """
        A backend whose Deferreds fire later (RADIUS): the responder waits
        and answers when the step comes.
        """
        requestId = self.negotiate()
        backend = DelayedBackend(eaptask.LocalMSCHAPv2Backend({"alice": PASSWORD}))
        self.b.core.eapBackend = backend
        for _ in range(10):
            self.network.pump()
            if not backend.pending:
                break
            backend.pending.pop(0).callback(backend.answers.pop(0))
        self.assertSucceeded(self.a, requestId)
        self.assertGreater(backend.calls, 3)


@implementer(IEAPBackend)
class PerIdentityCapTests(EAPTestCase):
    """
    C{--ike-sas-per-id} with EAP: the identity that counts is the EAP
    identity (the IDi of EAP clients is often their address, or one name
    shared by all), so the cap applies once EAP succeeded.
    """

    def users(self):
        return (("alice", PASSWORD), ("bob", PASSWORD))

    def connect(self, host, policy="ab"):
        requestId = host.initiate(policy)
        self.network.pump()
        return requestId

    def secondClient(self, user, srcid, address="192.0.2.77"):
        config = parseConfig('user "%s" "%s"\nikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s '
                             'peer %s srcid %s dstid b.example eap "mschap-v2"' % (
                                 user, PASSWORD, address, B_ADDR, srcid))
        tree = pki.IkedTree(self.mktemp())
        tree.addCA(self.ca.certificate)
        return Host(self.network, address, config, credentials=CredentialStore(tree.root), wallClock=lambda: pki.NOW)

    def test_capCountsEAPIdentity(self):
        """
        At the cap, another IKE SA of the same EAP user is refused with
        AUTHENTICATION_FAILED after EAP (counted as a per-identity
        refusal); the established one stays.
        """
        from ikedtx.core.settings import CoreSettings

        requestId = self.run_(settingsB=CoreSettings(ikeSAsPerIdentity=1), serverUsers=self.users(), serverPeer="any")
        self.assertSucceeded(self.a, requestId)
        error = self.assertFailedWith(self.a, self.connect(self.a), AuthenticationFailed)
        self.assertEqual(error.notify, NotifyType.AUTHENTICATION_FAILED)
        self.network.clock.advance(60)
        self.assertEqual([(sa.isEstablished, sa.eapIdentity) for sa in self.b.ikeSAs], [(True, "alice")])
        self.assertEqual(self.b.core.counters["ikedtx_sa_refused_per_id"], 1)
        self.assertEqual(self.b.core.counters["ikedtx_eap_success"], 1)
        self.assertNoSecretsLogged()

    def test_capFollowsEAPUserNotIDi(self):
        """
        The cap of 1 follows the EAP user, not the IDi: alice again from
        another host with another IDi is refused; bob, another EAP user,
        gets in.
        """
        from ikedtx.core.settings import CoreSettings

        requestId = self.run_(settingsB=CoreSettings(ikeSAsPerIdentity=1), serverUsers=self.users(), serverPeer="any")
        self.assertSucceeded(self.a, requestId)
        laptop = self.secondClient("alice", "laptop@example.org")
        self.assertFailedWith(laptop, self.connect(laptop), AuthenticationFailed)
        bob = self.secondClient("bob", "bob@example.org", address="192.0.2.78")
        self.assertSucceeded(bob, self.connect(bob))
        self.network.clock.advance(60)
        self.assertEqual(sorted(sa.eapIdentity for sa in self.b.ikeSAs if sa.isEstablished), ["alice", "bob"])
        self.assertEqual(self.b.core.counters["ikedtx_sa_refused_per_id"], 1)


    def test_rekeyedKeepsEAPIdentity(self):
        """
        An IKE SA rekey hands the EAP identity on to the new IKE SA (for
        C{ikectl show sa}, RADIUS and the cap): at a cap of 1, alice's
        rekeyed IKE SA still counts as alice's, and alice again is
        refused.
        """
        from ikedtx.core.settings import CoreSettings
        from ikedtx.core.timers import TimerKey

        requestId = self.run_(settingsB=CoreSettings(ikeSAsPerIdentity=1), serverUsers=self.users(), serverPeer="any")
        self.assertSucceeded(self.a, requestId)
        (old,) = self.b.ikeSAs
        self.b.execute(self.b.core.timerExpired(TimerKey.ikeRekey(old.localSPI)))
        self.network.pump()
        (new,) = [sa for sa in self.b.ikeSAs if sa.isEstablished]
        self.assertIsNot(new, old)
        self.assertEqual(new.eapIdentity, "alice")
        laptop = self.secondClient("alice", "laptop@example.org")
        self.assertFailedWith(laptop, self.connect(laptop), AuthenticationFailed)
        self.assertEqual(self.b.core.counters["ikedtx_sa_refused_per_id"], 1)


class DelayedBackend:
    def __init__(self, inner):
        self.inner = inner
        self.pending = []
        self.answers = []
        self.calls = 0

    def newSession(self, policy, peerIdentity):
        return DelayedSession(self, self.inner.newSession(policy, peerIdentity))


@implementer(IEAPSession)
class DelayedSession:
    def __init__(self, backend, inner):
        self.backend, self.inner = backend, inner

    def _later(self, d):
        self.backend.calls += 1
        d.addCallback(self.backend.answers.append)
        later = Deferred()
        self.backend.pending.append(later)
        return later

    def start(self):
        return self._later(self.inner.start())

    def receive(self, packet):
        return self._later(self.inner.receive(packet))

    def abort(self):
        self.inner.abort()


@implementer(IEAPBackend)
class ScriptedBackend:
    """
    A backend answering from a function of (round, packet).
    """

    def __init__(self, script):
        self.script = script
        self.sessions = []

    def newSession(self, policy, peerIdentity):
        session = ScriptedSession(self.script)
        self.sessions.append(session)
        return session


@implementer(IEAPSession)
class ScriptedSession:
    def __init__(self, script):
        self.script = script
        self.round = 0
        self.aborted = False

    def start(self):
        return self.receive(None)

    def receive(self, packet):
        self.round += 1
        step = self.script(self.round, packet)
        if isinstance(step, Exception):
            return fail(step)
        from twisted.internet.defer import succeed

        return succeed(step)

    def abort(self):
        self.aborted = True


def clientPatch(**overrides):
    """
    An MSCHAPv2Client whose answers can be replaced: C{overrides} maps an
    op (C{"challenge"}, C{"identity"}) to a function of (client, eap).
    """

    base = mschap.MSCHAPv2Client

    class Client(base):
        def receive(self, packet):
            eap = mschap.EAPPacket.decode(packet)
            if eap.code == mschap.REQUEST and eap.type == mschap.TYPE_MSCHAPV2 and "challenge" in overrides:
                if eap.data[0] == mschap.OP_CHALLENGE:
                    self.state = mschap.SUCCESS_REQUEST
                    return overrides["challenge"](self, eap)
            return base.receive(self, packet)

    return Client


class ServerRefusalTests(EAPTestCase):
    def test_wrongPassword(self):
        self.assertRefused(self.run_(clientPassword="wrong"))

    def test_unknownUser(self):
        self.assertRefused(self.run_(clientUser="mallory"))

    def test_nak(self):
        """
        The peer answers the MS-CHAPv2 Challenge with a Nak.
        """
        nak = lambda client, eap: mschap.EAPPacket(mschap.RESPONSE, eap.identifier, mschap.TYPE_NAK, b"\x04").encode()
        self.patch(mschap, "MSCHAPv2Client", clientPatch(challenge=nak))
        self.assertRefused(self.run_())

    def test_malformedResponse(self):
        """
        An MS-CHAPv2 Response whose MS-Length is wrong.
        """
        def bad(client, eap):
            data = bytes([mschap.OP_RESPONSE, eap.data[1], 0xFF, 0xFF]) + b"\x31" + b"\x00" * 49
            return mschap.EAPPacket(mschap.RESPONSE, eap.identifier, mschap.TYPE_MSCHAPV2, data).encode()

        self.patch(mschap, "MSCHAPv2Client", clientPatch(challenge=bad))
        self.assertRefused(self.run_())

    def test_shortResponse(self):
        """
        An MS-CHAPv2 Response with a Value-Size of 49 but fewer octets.
        """
        def short(client, eap):
            body = bytes([49]) + b"\x00" * 10
            data = bytes([mschap.OP_RESPONSE, eap.data[1]]) + (4 + len(body)).to_bytes(2, "big") + body
            return mschap.EAPPacket(mschap.RESPONSE, eap.identifier, mschap.TYPE_MSCHAPV2, data).encode()

        self.patch(mschap, "MSCHAPv2Client", clientPatch(challenge=short))
        self.assertRefused(self.run_())

    def test_earlySuccessResponse(self):
        """
        CVE-2015-8023: the peer answers the Challenge with an MS-CHAPv2
        Success Response, skipping the proof of its password.
        """
        early = lambda client, eap: mschap.EAPPacket(
            mschap.RESPONSE, eap.identifier, mschap.TYPE_MSCHAPV2, bytes([mschap.OP_SUCCESS])).encode()
        self.patch(mschap, "MSCHAPv2Client", clientPatch(challenge=early))
        self.assertRefused(self.run_())

    def test_authBeforeEAPFinished(self):
        """
        The peer sends AUTH (from an all-zero MSK) instead of its
        MS-CHAPv2 Response: refused, no Child SA.
        """
        def authInstead(task, core, ikeSA, payloads):
            payloads.append(Authentication(AuthMethod.SHARED_KEY_MIC, b"\x00" * 32))

        self.patch(eaptask, "buildI", authInstead)
        self.assertRefused(self.run_())
        self.assertEqual(self.b.kernel.sas, {})

    def test_authWithEAPResponse(self):
        """
        The peer sends an AUTH next to its EAP Response (before EAP
        Success): refused.
        """
        original = eaptask.buildI

        def withAuth(task, core, ikeSA, payloads):
            original(task, core, ikeSA, payloads)
            if not any(isinstance(p, Authentication) for p in payloads):
                payloads.append(Authentication(AuthMethod.SHARED_KEY_MIC, b"\x00" * 32))

        self.patch(eaptask, "buildI", withAuth)
        self.assertRefused(self.run_())

    def test_authInFirstRequest(self):
        """
        A certificate-less AUTH in the first IKE_AUTH to an EAP policy is
        no way around EAP.
        """
        from ikedtx.core.tasks import auth

        original = auth.AuthTask._buildEAP

        def withAuth(self_, core, ikeSA, payloads):
            original(self_, core, ikeSA, payloads)
            payloads.append(Authentication(AuthMethod.SHARED_KEY_MIC, b"\x00" * 32))

        self.patch(auth.AuthTask, "_buildEAP", withAuth)
        self.assertRefused(self.run_())

    def test_wrongMSKAuth(self):
        """
        The final AUTH not made from the MSK.
        """
        original = eaptask.buildI

        def wrongKey(task, core, ikeSA, payloads):
            original(task, core, ikeSA, payloads)
            last = payloads[-1]
            if isinstance(last, Authentication):
                payloads[-1] = Authentication(AuthMethod.SHARED_KEY_MIC, bytes(32))

        self.patch(eaptask, "buildI", wrongKey)
        self.assertRefused(self.run_())

    def test_tooManyRounds(self):
        """
        A conversation that never ends is cut after MAX_ROUNDS.
        """
        notification = lambda n, packet: EAPStep(
            packet=mschap.EAPPacket(mschap.REQUEST, n & 0xFF, mschap.TYPE_NOTIFICATION, b"hi").encode())
        requestId = self.negotiate()
        backend = self.b.core.eapBackend = ScriptedBackend(notification)
        self.network.pump()
        self.assertRefused(requestId)
        self.assertEqual(backend.sessions[0].round, eaptask.MAX_ROUNDS + 1)

    def test_backendFails(self):
        """
        The backend's Deferred fails (a RADIUS server that is gone).
        """
        requestId = self.negotiate()
        self.b.core.eapBackend = ScriptedBackend(
            lambda n, packet: EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 0, mschap.TYPE_IDENTITY).encode())
            if n == 1 else RuntimeError("RADIUS unreachable"))
        self.network.pump()
        self.assertRefused(requestId)

    def test_abortedWhenIKESAGoes(self):
        """
        The IKE SA deleted while EAP runs aborts the backend's session.
        """
        self.negotiate()
        backend = self.b.core.eapBackend = ScriptedBackend(
            lambda n, packet: EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, n, mschap.TYPE_IDENTITY).encode()))
        for _ in range(4):
            self.network.deliverOne()
        (ikeSA,) = self.b.ikeSAs
        self.b.core.destroy(ikeSA, "test")
        self.b.execute(self.b.core._drain())
        self.assertTrue(backend.sessions[0].aborted)

    def test_noEAPPolicyWithoutAuth(self):
        """
        IKE_AUTH without AUTH to a policy without EAP is refused as before.
        """
        a, _ = configs()
        b = parseConfig('ikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s srcid b.example '
                        'psk "x"' % (B_ADDR, A_ADDR))
        self.network = Network()
        tree = pki.IkedTree(self.mktemp())
        self.a = Host(self.network, A_ADDR, a, credentials=CredentialStore(tree.root), wallClock=lambda: pki.NOW)
        self.b = Host(self.network, B_ADDR, b, wallClock=lambda: pki.NOW)
        requestId = self.a.initiate("ab")
        self.network.pump()
        self.assertFailedWith(self.a, requestId, Exception)
        self.assertEqual(self.b.ikeSAs, [])


class EAPFailureTests(EAPTestCase):
    """
    RFC 3748 4.2 and RFC 7296 2.16, 2.21.2: a failed EAP authentication is
    answered with an EAP Failure in the IKE_AUTH response, then
    AUTHENTICATION_FAILED, and the client takes the Failure cleanly.
    """

    def recordResponses(self):
        """
        Record C{(exchange type, payload classes, EAP codes)} of every
        response and of every request sent once (the AUTHENTICATION_FAILED
        of RFC 7296 2.21.2), by host address.
        """
        from ikedtx.core import taskmanager
        from ikedtx.wire.payloads import EAP, Notify

        sent = []
        originalRespond = taskmanager.TaskManager.respond
        originalEncode = self.b.core.encode

        def describe(payloads):
            return ([type(p).__name__ for p in payloads],
                    [p.message[0] for p in payloads if isinstance(p, EAP)],
                    [p.notifyType for p in payloads if isinstance(p, Notify)])

        def respond(manager, exchangeType, messageId, hashValue, payloads, local, remote):
            sent.append((manager.core is self.b.core and "b" or "a", "response", exchangeType) + describe(payloads))
            return originalRespond(manager, exchangeType, messageId, hashValue, payloads, local, remote)

        def encode(ikeSA, exchangeType, payloads, messageId, response=False, **kw):
            if not response:
                sent.append(("b", "request", exchangeType) + describe(payloads))
            return originalEncode(ikeSA, exchangeType, payloads, messageId, response=response, **kw)

        self.patch(taskmanager.TaskManager, "respond", respond)
        self.b.core.encode = encode
        return sent

    def test_wrongPasswordSendsEAPFailure(self):
        """
        The server answers a wrong password with an EAP Failure (code 4)
        in the IKE_AUTH response, without a Notify that would make the
        client stop reading before the EAP payload (strongSwan's charon
        checks error Notifies first), then says AUTHENTICATION_FAILED in
        an INFORMATIONAL of its own, sent once, and deletes the IKE SA.
        """
        from ikedtx.wire.constants import NotifyType

        requestId = self.negotiate(clientPassword="wrong")
        sent = self.recordResponses()
        self.network.pump()
        self.assertRefused(requestId)
        ikeAuth = [s for s in sent if s[0] == "b" and s[2] == 35]
        self.assertEqual(ikeAuth[-1][3:], (["EAP"], [mschap.FAILURE], []))
        informational = [s for s in sent if s[0] == "b" and s[2] == 37]
        self.assertEqual(informational, [("b", "request", 37, ["Notify"], [], [NotifyType.AUTHENTICATION_FAILED])])

    def test_clientTakesEAPFailure(self):
        """
        As client, a received EAP Failure is logged as such, the IKE SA is
        gone, no AUTHENTICATION_FAILED of ours follows (the server refused
        us, it knows), and the active policy is initiated again after a
        backoff.
        """
        from ikedtx.core.timers import TimerKey

        requestId = self.run_(clientPassword="wrong")
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual(self.a.ikeSAs, [])
        self.assertEqual(self.a.core.counters["ikedtx_eap_failures"], 1)
        self.assertTrue([e for e in self.logged if "received EAP Failure" in formatEvent(e)])
        fromA = [Message.decode(d) for d, source, _ in self.network.delivered if source[0] == A_ADDR]
        self.assertNotIn(37, [m.exchangeType for m in fromA])
        self.assertIn(TimerKey.reinitiate("ab"), self.a.timers)
        self.assertNoSecretsLogged()

    def test_clientAcknowledgesMSCHAPv2Failure(self):
        """
        A server that says MS-CHAPv2 Failure Request (E=691, as charon and
        RADIUS servers do) gets the client's Failure Response (RFC 2759
        draft-kamath-pppext-eap-mschapv2 2.5), then ends with EAP Failure:
        the client logs the EAP Failure received and sends no
        AUTHENTICATION_FAILED of its own.
        """
        seen = []

        def script(n, packet):
            seen.append(packet)
            if n == 1:
                return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 1, mschap.TYPE_IDENTITY).encode())
            if n == 2:
                data = bytes([mschap.OP_CHALLENGE, 2, 0, 4 + 17 + 1]) + bytes([16]) + b"C" * 16 + b"s"
                return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 2, mschap.TYPE_MSCHAPV2, data).encode())
            if n == 3:
                body = b"E=691 R=0 C=" + b"0" * 32 + b" V=3 M=refused"
                data = bytes([mschap.OP_FAILURE, 2]) + (4 + len(body)).to_bytes(2, "big") + body
                return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 3, mschap.TYPE_MSCHAPV2, data).encode())
            return EAPStep(packet=mschap.EAPPacket(mschap.FAILURE, 3).encode(), outcome=False, reason="refused")

        requestId = self.scripted(script)
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual(self.a.ikeSAs, [])
        self.assertEqual(self.b.ikeSAs, [])
        failureResponse = mschap.EAPPacket.decode(seen[3])
        self.assertEqual((failureResponse.code, failureResponse.type, failureResponse.data),
                         (mschap.RESPONSE, mschap.TYPE_MSCHAPV2, bytes([mschap.OP_FAILURE])))
        self.assertTrue([e for e in self.logged if "received EAP Failure" in formatEvent(e)])
        fromA = [Message.decode(d) for d, source, _ in self.network.delivered if source[0] == A_ADDR]
        self.assertNotIn(37, [m.exchangeType for m in fromA])

    def scripted(self, script):
        requestId = self.negotiate()
        self.b.core.eapBackend = ScriptedBackend(script)
        self.network.pump()
        return requestId

    def test_backendFailureWithoutPacket(self):
        """
        A backend that fails without an EAP packet (a RADIUS server gone)
        still gets the peer an EAP Failure answering its last Response.
        """
        requestId = self.negotiate()
        self.b.core.eapBackend = ScriptedBackend(
            lambda n, packet: EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 7, mschap.TYPE_IDENTITY).encode())
            if n == 1 else RuntimeError("RADIUS unreachable"))
        sent = self.recordResponses()
        self.network.pump()
        self.assertRefused(requestId)
        ikeAuth = [s for s in sent if s[0] == "b" and s[2] == 35]
        self.assertEqual(ikeAuth[-1][3:5], (["EAP"], [mschap.FAILURE]))


class ClientRefusalTests(EAPTestCase):
    def scripted(self, script):
        requestId = self.negotiate()
        self.b.core.eapBackend = ScriptedBackend(script)
        self.network.pump()
        return requestId

    def test_earlyEAPSuccess(self):
        """
        CVE-2015-8023's mirror: a server that says EAP Success right after
        the Identity, without proving it knows the password, is refused.
        """
        def script(n, packet):
            if n == 1:
                return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 1, mschap.TYPE_IDENTITY).encode())
            return EAPStep(packet=mschap.EAPPacket(mschap.SUCCESS, 1).encode(), outcome=True, msk=b"\x00" * 64)

        self.assertRefused(self.scripted(script), serverCounts=False)

    def test_shortFailureRequest(self):
        """
        CVE-2025-62291: an MS-CHAPv2 Failure Request shorter than its
        header (strongSwan's client read past it) is refused cleanly.
        """
        def script(n, packet):
            if n == 1:
                return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 1, mschap.TYPE_IDENTITY).encode())
            if n == 2:
                data = bytes([mschap.OP_CHALLENGE, 2, 0, 4 + 17 + 1]) + bytes([16]) + b"C" * 16 + b"s"
                return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 2, mschap.TYPE_MSCHAPV2, data).encode())
            return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 3, mschap.TYPE_MSCHAPV2,
                                                   bytes([mschap.OP_FAILURE, 3, 0])).encode())

        self.assertRefused(self.scripted(script), serverCounts=False)

    def test_wrongAuthenticatorResponse(self):
        """
        A server that does not know the password (its S= is wrong).
        """
        def script(n, packet):
            if n == 1:
                return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 1, mschap.TYPE_IDENTITY).encode())
            if n == 2:
                data = bytes([mschap.OP_CHALLENGE, 2, 0, 4 + 17 + 1]) + bytes([16]) + b"C" * 16 + b"s"
                return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 2, mschap.TYPE_MSCHAPV2, data).encode())
            body = b"S=" + b"0" * 40
            data = bytes([mschap.OP_SUCCESS, 2, 0, 4 + len(body)]) + body
            return EAPStep(packet=mschap.EAPPacket(mschap.REQUEST, 3, mschap.TYPE_MSCHAPV2, data).encode())

        self.assertRefused(self.scripted(script), serverCounts=False)

    def test_wrongServerAuth(self):
        """
        A responder whose final AUTH is not made from the MSK.
        """
        original = eaptask.continueR

        def wrongAuth(task, core, ikeSA, payloads):
            done = original(task, core, ikeSA, payloads)
            if done:
                task.answer = [Authentication(AuthMethod.SHARED_KEY_MIC, bytes(32))]
            return done

        self.patch(eaptask, "continueR", wrongAuth)
        requestId = self.run_()
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual(self.a.ikeSAs, [])
        self.assertEqual(self.a.core.counters["ikedtx_eap_failures"], 1)

    def test_noUserLine(self):
        """
        An initiator with EAP and no user line for its srcid cannot start.
        """
        requestId = self.run_(users=())
        self.assertFailedWith(self.a, requestId, Exception)


class ClientOCSPTests(EAPTestCase):
    """
    As EAP client with C{set ocsp}, the EAP server's certificate status is
    asked once its chain verified (L{ikedtx.core.ocsp}), before any EAP
    Response goes out: EAP runs only for a good status.
    """

    OCSP = 'set ocsp "http://ocsp.test:8888/"'

    def start(self):
        requestId = self.negotiate(clientExtra="")
        self.a.core.config = dataclasses.replace(
            self.a.core.config, settings=dataclasses.replace(self.a.core.config.settings, ocspUrl="http://ocsp.test:8888/"))
        self.network.pump()
        return requestId

    def asked(self):
        from ikedtx.core.actions import CheckCertificateStatus

        return [e for e in self.a.events if isinstance(e, CheckCertificateStatus)]

    def answer(self, good, reason="good"):
        self.a.execute(self.a.core.certificateStatus(self.asked()[-1].token, good, reason))
        self.network.pump()

    def test_asksBeforeEAP(self):
        """
        The server's certificate is asked about (with its issuer) and
        nothing more is sent until the answer: no EAP Response yet.
        """
        requestId = self.start()
        [action] = self.asked()
        self.assertEqual(action.certificate.subject.rfc4514_string(), "CN=b.example")
        self.assertEqual(action.url, "http://ocsp.test:8888/")
        self.assertNotIn(requestId, self.a.results)
        self.assertEqual(len(self.ikeAuthMessages()), 2)

    def test_good(self):
        """
        A good status: EAP goes on and both sides are up.
        """
        requestId = self.start()
        self.answer(True)
        self.assertSucceeded(self.a, requestId)
        self.assertChildKeysMatch(self.a, self.b)
        self.assertEqual(len(self.ikeAuthMessages()), 10)

    def test_revoked(self):
        """
        A revoked server certificate: no EAP Response (the password proof
        never goes to that server), AUTHENTICATION_FAILED reported, no SA.
        """
        requestId = self.start()
        self.answer(False, "certificate revoked")
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual(self.a.ikeSAs, [])
        fromA = [Message.decode(d) for d, source, _ in self.network.delivered if source[0] == A_ADDR]
        self.assertEqual([m.exchangeType for m in fromA], [34, 35, 37])
        self.assertTrue([e for e in self.logged if "certificate revoked" in formatEvent(e)])


@implementer(IEAPBackend)
class ConfiguringBackend:
    """
    The local user table, whose success also carries configuration
    attributes (as a RADIUS Access-Accept's do, L{ikedtx.auth.radius}).
    """

    def __init__(self, users, config):
        from ikedtx.auth.eapbackend import LocalMSCHAPv2Backend

        self.inner = LocalMSCHAPv2Backend(users)
        self.config = config

    def newSession(self, policy, peerIdentity):
        return ConfiguringSession(self.inner.newSession(policy, peerIdentity), self.config)


@implementer(IEAPSession)
class ConfiguringSession:
    def __init__(self, inner, config):
        self.inner = inner
        self.config = config

    def start(self):
        return self.inner.start()

    def receive(self, packet):
        return self.inner.receive(packet).addCallback(
            lambda step: dataclasses.replace(step, config=self.config) if step.outcome else step)

    def abort(self):
        self.inner.abort()


class RadiusConfigTests(EAPTestCase):
    """
    The configuration attributes an EAP backend gives with its success
    (iked's C{radius config} maps of an Access-Accept) in the CFG_REPLY:
    the address given replaces the pool's, the others add to the policy's
    C{config} lines, which win for the same attribute (iked's radius.c).
    """

    def connect(self, config):
        from ipaddress import ip_address as ip

        requestId = self.negotiate(clientExtra="request address any request name-server any "
                                               "request netbios-server any",
                                   serverExtra="config address 10.77.0.0/29 config name-server 10.2.0.53")
        self.b.core.eapBackend = ConfiguringBackend({"alice": PASSWORD},
                                                    tuple((t, ip(a)) for t, a in config))
        self.network.pump()
        self.assertSucceeded(self.a, requestId)
        (client,) = self.a.ikeSAs
        (server,) = self.b.ikeSAs
        return client, server

    def test_addressAndAttributes(self):
        from ikedtx.core.actions import AddVirtualAddress
        from ikedtx.wire.constants import ConfigurationAttribute as CfgAttr

        client, server = self.connect([(CfgAttr.INTERNAL_IP4_ADDRESS, "10.78.0.5"),
                                       (CfgAttr.INTERNAL_IP4_NETMASK, "255.255.255.0"),
                                       (CfgAttr.INTERNAL_IP4_DNS, "10.9.9.9"),
                                       (CfgAttr.INTERNAL_IP4_NBNS, "10.9.9.10")])
        self.assertEqual([str(a) for a in server.peerVirtualIPs], ["10.78.0.5"])
        self.assertEqual([e.address for e in self.a.eventsOf(AddVirtualAddress)], [server.peerVirtualIPs[0]])
        self.assertEqual(sorted((name, str(address)) for name, address, _ in client.peerConfig),
                         [("INTERNAL_IP4_DNS", "10.2.0.53"), ("INTERNAL_IP4_NBNS", "10.9.9.10"),
                          ("INTERNAL_IP4_NETMASK", "255.255.255.0")])
        # Nothing was lent from the pool.
        self.assertEqual(self.b.core.pools.release(server), [])

    def test_nasChoosesAddress(self):
        """
        Framed-IP-Address 255.255.255.254 ("the NAS should select", RFC
        2865 5.8): the pool's address, and no netmask without a RADIUS
        address.
        """
        from ikedtx.wire.constants import ConfigurationAttribute as CfgAttr

        client, server = self.connect([(CfgAttr.INTERNAL_IP4_ADDRESS, "255.255.255.254"),
                                       (CfgAttr.INTERNAL_IP4_NETMASK, "255.255.255.0")])
        self.assertEqual([str(a) for a in server.peerVirtualIPs], ["10.77.0.1"])
        self.assertEqual(sorted(name for name, _, _ in client.peerConfig), ["INTERNAL_IP4_DNS"])

"""
Tests for the OCSP check of the core (L{ikedtx.core.ocsp}): a responder
with C{set ocsp} asks the shell for the status of the initiator's
certificate after its chain verified, and its IKE_AUTH round (and the
tasks after authentication: CP, the Child SA) waits for the answer.
"""

from ikedtx.auth.store import CredentialStore
from ikedtx.config import parseConfig
from ikedtx.core.actions import AllocateSpi, CheckCertificateStatus, InstallChildSA
from ikedtx.core.errors import AuthenticationFailed
from ikedtx.core.states import IKEState
from ikedtx.wire.constants import ExchangeType, NotifyType, PayloadType
from ikedtx.wire.message import Message
from tests import pki
from tests.corehelpers import Host, Network
from tests.test_core_auth import SignatureTestCase
from tests.test_core_exchanges import A_ADDR, B_ADDR


def ocspPolicies(ocsp='set ocsp "http://ocsp.test:8888/" tolerate 60 maxage 3600\n', auth="ecdsa256"):
    a = parseConfig('ikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s '
                    'srcid a.example dstid b.example %s' % (A_ADDR, B_ADDR, auth))
    b = parseConfig(ocsp + 'ikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s '
                    'srcid b.example dstid a.example %s' % (B_ADDR, A_ADDR, auth))
    return a, b


class OCSPCoreTests(SignatureTestCase):
    def start(self, ocsp=None):
        treeA, treeB = self.withCertificates("p256")
        a, b = ocspPolicies() if ocsp is None else ocspPolicies(ocsp)
        self.network = Network()
        self.a = Host(self.network, A_ADDR, a, credentials=CredentialStore(treeA.root), wallClock=lambda: pki.NOW)
        self.b = Host(self.network, B_ADDR, b, credentials=CredentialStore(treeB.root), wallClock=lambda: pki.NOW)
        requestId = self.a.initiate("ab")
        self.network.pump()
        return requestId

    def asked(self):
        return [e for e in self.b.events if isinstance(e, CheckCertificateStatus)]

    def answer(self, good, reason="good", token=None):
        if token is None:
            token = self.asked()[-1].token
        self.b.execute(self.b.core.certificateStatus(token, good, reason))
        self.network.pump()

    def test_asks(self):
        """
        With C{set ocsp}, the responder asks about the initiator's
        certificate (and its issuer) with the configured URL and times,
        and answers nothing until the status is known: no Child SA, no SPI
        allocated yet, the IKE SA not authenticated.
        """
        requestId = self.start()
        [action] = self.asked()
        self.assertEqual(action.certificate.subject.rfc4514_string(), "CN=a.example")
        self.assertEqual(action.issuer, self.ca.certificate)
        self.assertEqual((action.url, action.tolerate, action.maxAge), ("http://ocsp.test:8888/", 60, 3600))
        self.assertNotIn(requestId, self.a.results)
        self.assertEqual([e for e in self.b.events if isinstance(e, (AllocateSpi, InstallChildSA))], [])
        self.assertNotEqual(self.b.ikeSAs[0].state, IKEState.VALID)

    def test_good(self):
        """
        A good status: the IKE_AUTH response goes out, both sides are up
        with their Child SA.
        """
        requestId = self.start()
        self.answer(True)
        self.assertSucceeded(self.a, requestId)
        self.assertEqual([sa.state for sa in self.b.ikeSAs], [IKEState.VALID])
        self.assertEqual(len([e for e in self.b.events if isinstance(e, InstallChildSA)]), 1)

    def test_revoked(self):
        """
        A revoked certificate: AUTHENTICATION_FAILED alone in the response,
        no SA left on either side, no SPI allocated, no Child SA.
        """
        requestId = self.start()
        self.answer(False, "revoked at 2025-05-31T12:00:00+00:00")
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual((self.a.ikeSAs, self.b.ikeSAs), ([], []))
        self.assertEqual([e for e in self.b.events if isinstance(e, (AllocateSpi, InstallChildSA))], [])
        response = [d for d, source, _ in self.network.delivered if source[0] == B_ADDR][-1]
        message = Message.decode(response)
        self.assertEqual(message.exchangeType, ExchangeType.IKE_AUTH)

    def test_refusedNotify(self):
        """
        The IKE_AUTH response to a refused certificate carries only the
        AUTHENTICATION_FAILED notify.
        """
        self.start()
        cipherIn = self.a.ikeSAs[0].cipherIn
        self.answer(False, "responder unreachable")
        data = [d for d, source, _ in self.network.delivered if source[0] == B_ADDR][-1]
        inner = Message.decode(data).decrypt(cipherIn)
        self.assertEqual([(p.payloadType, p.notifyType) for p in inner],
                         [(PayloadType.NOTIFY, NotifyType.AUTHENTICATION_FAILED)])

    def test_retransmissionWhileWaiting(self):
        """
        The initiator's IKE_AUTH retransmitted while the responder waits
        is not answered twice nor processed again; the answer then
        completes the exchange once.
        """
        requestId = self.start()
        self.network.clock.advance(10)
        self.network.pump()
        self.assertEqual(len(self.asked()), 1)
        self.answer(True)
        self.assertSucceeded(self.a, requestId)
        self.assertEqual(len([e for e in self.b.events if isinstance(e, InstallChildSA)]), 1)

    def test_answeredTwiceOrLate(self):
        """
        An answer for an unknown token, a second answer, and an answer
        after the IKE SA is gone change nothing and raise nothing.
        """
        requestId = self.start()
        token = self.asked()[-1].token
        self.assertEqual(self.b.core.certificateStatus(token + 1000, True, "good"), [])
        self.network.clock.advance(3600)
        self.network.pump()
        self.assertEqual(self.b.ikeSAs, [])
        sent = len(self.network.delivered)
        self.answer(True, token=token)
        self.answer(True, token=token)
        self.assertEqual(self.b.ikeSAs, [])
        self.assertEqual(len(self.network.delivered), sent)
        self.assertNotIn(requestId, [r for r, done in self.a.results.items() if done.error is None])

    def test_withoutSetOcsp(self):
        """
        Without C{set ocsp}, no status is asked (as iked).
        """
        requestId = self.start(ocsp="")
        self.assertEqual(self.asked(), [])
        self.assertSucceeded(self.a, requestId)

    def test_pskNotAsked(self):
        """
        A pre-shared key peer has no certificate to ask about.
        """
        a, b = ocspPolicies(auth='psk "secret"')
        self.network = Network()
        self.a = Host(self.network, A_ADDR, a)
        self.b = Host(self.network, B_ADDR, b)
        requestId = self.a.initiate("ab")
        self.network.pump()
        self.assertEqual(self.asked(), [])
        self.assertSucceeded(self.a, requestId)


class OCSPRoadWarriorTests(SignatureTestCase):
    """
    A road warrior with a certificate asks for an address: the CP task
    reads the request only once the certificate status is known.
    """

    def start(self):
        treeA, treeB = self.withCertificates("p256")
        a = parseConfig('ikev2 "ab" active esp from dynamic to 10.2.0.0/24 local %s peer %s '
                        'srcid a.example dstid b.example ecdsa256 request address any' % (A_ADDR, B_ADDR))
        b = parseConfig('set ocsp "http://ocsp.test/"\nikev2 "ba" passive esp from 10.2.0.0/24 to dynamic local %s '
                        'srcid b.example ecdsa256 config address 10.77.0.0/29' % (B_ADDR,))
        self.network = Network()
        self.a = Host(self.network, A_ADDR, a, credentials=CredentialStore(treeA.root), wallClock=lambda: pki.NOW)
        self.b = Host(self.network, B_ADDR, b, credentials=CredentialStore(treeB.root), wallClock=lambda: pki.NOW)
        requestId = self.a.initiate("ab")
        self.network.pump()
        [action] = [e for e in self.b.events if isinstance(e, CheckCertificateStatus)]
        return requestId, action.token

    def leases(self):
        return {str(network): dict(pool.leases) for network, pool in self.b.core.pools._pools.items()}

    def test_good(self):
        """
        Good: the client gets the pool's first address.
        """
        requestId, token = self.start()
        self.assertEqual([lease for pool in self.leases().values() for lease in pool], [])
        self.b.execute(self.b.core.certificateStatus(token, True, "good"))
        self.network.pump()
        ikeSA = self.assertSucceeded(self.a, requestId)
        self.assertEqual([str(a) for a in ikeSA.localVirtualIPs], ["10.77.0.1"])

    def test_revoked(self):
        """
        Revoked: no address is lent.
        """
        requestId, token = self.start()
        self.b.execute(self.b.core.certificateStatus(token, False, "revoked"))
        self.network.pump()
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual([lease for pool in self.leases().values() for lease in pool], [])


class OCSPInitiatorTests(SignatureTestCase):
    """
    The initiator with C{set ocsp} asks about the responder's certificate
    once the IKE_AUTH response verified; the tasks after authentication
    (the Child SA) read the response only once the answer came.
    """

    def start(self):
        treeA, treeB = self.withCertificates("p256")
        a = parseConfig('set ocsp "http://ocsp.test/"\nikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 '
                        'local %s peer %s srcid a.example dstid b.example ecdsa256' % (A_ADDR, B_ADDR))
        b = parseConfig('ikev2 "ba" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s '
                        'srcid b.example dstid a.example ecdsa256' % (B_ADDR, A_ADDR))
        self.network = Network()
        self.a = Host(self.network, A_ADDR, a, credentials=CredentialStore(treeA.root), wallClock=lambda: pki.NOW)
        self.b = Host(self.network, B_ADDR, b, credentials=CredentialStore(treeB.root), wallClock=lambda: pki.NOW)
        requestId = self.a.initiate("ab")
        self.network.pump()
        return requestId

    def asked(self):
        return [e for e in self.a.events if isinstance(e, CheckCertificateStatus)]

    def answer(self, good, reason="good"):
        self.a.execute(self.a.core.certificateStatus(self.asked()[-1].token, good, reason))
        self.network.pump()

    def test_asks(self):
        """
        The initiator asks about the responder's certificate and waits: no
        Child SA installed, the request not finished, the IKE SA not
        authenticated.
        """
        requestId = self.start()
        [action] = self.asked()
        self.assertEqual(action.certificate.subject.rfc4514_string(), "CN=b.example")
        self.assertEqual(action.issuer, self.ca.certificate)
        self.assertNotIn(requestId, self.a.results)
        self.assertEqual([e for e in self.a.events if isinstance(e, InstallChildSA)], [])
        self.assertNotEqual(self.a.ikeSAs[0].state, IKEState.VALID)

    def test_good(self):
        """
        Good: the IKE SA and its Child SA are up on our side.
        """
        requestId = self.start()
        self.answer(True)
        self.assertSucceeded(self.a, requestId)
        self.assertEqual([sa.state for sa in self.a.ikeSAs], [IKEState.VALID])
        self.assertEqual(len([e for e in self.a.events if isinstance(e, InstallChildSA)]), 1)

    def test_revoked(self):
        """
        Revoked: the request fails with AuthenticationFailed, we tell the
        responder in an INFORMATIONAL with AUTHENTICATION_FAILED (it drops
        its IKE SA), and no Child SA is installed on our side.
        """
        requestId = self.start()
        cipherIn = self.b.ikeSAs[0].cipherIn
        self.answer(False, "revoked")
        self.assertFailedWith(self.a, requestId, AuthenticationFailed)
        self.assertEqual(self.a.ikeSAs, [])
        self.assertEqual([e for e in self.a.events if isinstance(e, InstallChildSA)], [])
        informational = [d for d, source, _ in self.network.delivered if source[0] == A_ADDR][-1]
        message = Message.decode(informational)
        self.assertEqual(message.exchangeType, ExchangeType.INFORMATIONAL)
        inner = message.decrypt(cipherIn)
        self.assertIn(NotifyType.AUTHENTICATION_FAILED, [p.notifyType for p in inner])
        self.assertEqual(self.b.ikeSAs, [])

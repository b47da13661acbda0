"""
Tests for L{ikedtx.pki.ocsp}: the judgement of OCSP responses (good,
revoked, and every kind of bad answer) and the HTTP client with its cache,
its timeout and its bound on the body, in memory.
"""

import datetime

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509ocsp
from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone

from ikedtx.pki import ocsp
from tests import pki
from tests.ocsphelpers import response, responderCertificate


class _Setup:
    def setUp(self):
        self.ca = pki.Authority.root(kind="p256", keyName="ocsp-root")
        self.peer = self.ca.issue(pki.name(CN="peer"), pki.key("ocsp-peer", "p256").public_key(), dns=["peer"])
        self.issuer = self.ca.certificate


class EvaluateTests(_Setup, SynchronousTestCase):
    def evaluate(self, data, tolerate=0, maxAge=None, now=pki.NOW):
        return ocsp.evaluate(data, self.peer, self.issuer, now, tolerate, maxAge)

    def test_goodFromCA(self):
        """
        A good status signed by the issuing CA lets the certificate through
        and may be cached until its nextUpdate.
        """
        verdict = self.evaluate(response(self.peer, self.issuer, self.ca.key))
        self.assertEqual((verdict.good, verdict.status), (True, "good"))
        self.assertEqual(verdict.validUntil, pki.NOW + pki.DAY)

    def test_goodByName(self):
        """
        A responder named by its subject (not its key hash) is found too.
        """
        verdict = self.evaluate(response(self.peer, self.issuer, self.ca.key, byName=True))
        self.assertTrue(verdict.good)

    def test_revoked(self):
        """
        A revoked status refuses the certificate.
        """
        verdict = self.evaluate(response(self.peer, self.issuer, self.ca.key, status=x509ocsp.OCSPCertStatus.REVOKED))
        self.assertEqual((verdict.good, verdict.status), (False, "revoked"))
        self.assertIn("revoked at", verdict.reason)

    def test_unknown(self):
        """
        "unknown" refuses the certificate (iked: only good is valid).
        """
        verdict = self.evaluate(response(self.peer, self.issuer, self.ca.key, status=x509ocsp.OCSPCertStatus.UNKNOWN))
        self.assertEqual((verdict.good, verdict.status), (False, "unknown"))

    def test_delegated(self):
        """
        A responder the CA issued with id-kp-OCSPSigning may sign.
        """
        cert, key = responderCertificate(self.ca)
        verdict = self.evaluate(response(self.peer, self.issuer, key, cert, include=[cert]))
        self.assertTrue(verdict.good, verdict)

    def test_delegatedWithoutOCSPSigning(self):
        """
        A responder certificate of the CA without id-kp-OCSPSigning may not.
        """
        cert, key = responderCertificate(self.ca, keyName="not-ocsp", ocspSigning=False)
        verdict = self.evaluate(response(self.peer, self.issuer, key, cert, include=[cert]))
        self.assertEqual(verdict.status, "error")
        self.assertIn("OCSPSigning", verdict.reason)

    def test_delegatedByAnotherCA(self):
        """
        A responder certificate another CA issued is refused.
        """
        other = pki.Authority.root(kind="p256", keyName="ocsp-other", cn="Other CA")
        cert, key = responderCertificate(other, keyName="other-responder")
        verdict = self.evaluate(response(self.peer, self.issuer, key, cert, include=[cert]))
        self.assertEqual(verdict.status, "error")
        self.assertIn("not issued by", verdict.reason)

    def test_trustedResponder(self):
        """
        A responder certificate of iked's ocsp/responder.crt signs as it
        is (OCSP_TRUSTOTHER): here one of another CA without
        id-kp-OCSPSigning, refused unless trusted.
        """
        other = pki.Authority.root(kind="p256", keyName="ocsp-other", cn="Other CA")
        cert, key = responderCertificate(other, keyName="trusted-responder", ocspSigning=False)
        data = response(self.peer, self.issuer, key, cert)
        self.assertEqual(self.evaluate(data).status, "error")
        verdict = ocsp.evaluate(data, self.peer, self.issuer, pki.NOW, trusted=[cert])
        self.assertTrue(verdict.good, verdict)

    def test_wrongSigner(self):
        """
        A response naming the CA but signed with another key does not
        verify; one naming an unknown responder is refused.
        """
        rogue = pki.Authority(self.ca.subject, pki.key("ocsp-rogue", "p256"), None)
        imposter = rogue.issue(self.ca.subject, rogue.key.public_key())
        verdict = self.evaluate(response(self.peer, self.issuer, rogue.key, imposter, byName=True))
        self.assertEqual(verdict.status, "error")
        self.assertIn("signature does not verify", verdict.reason)
        cert, key = responderCertificate(self.ca, keyName="absent")
        verdict = self.evaluate(response(self.peer, self.issuer, key, cert))
        self.assertIn("unknown responder", verdict.reason)

    def test_wrongCertificate(self):
        """
        A response about another certificate (same CA) is no answer.
        """
        other = self.ca.issue(pki.name(CN="other"), pki.key("ocsp-other-peer", "p256").public_key())
        verdict = self.evaluate(response(other, self.issuer, self.ca.key))
        self.assertEqual(verdict.status, "error")
        self.assertIn("no status for serial", verdict.reason)

    def test_garbage(self):
        """
        Bytes that are no OCSP response, an empty body and a truncated
        response are refused, nothing raised.
        """
        good = response(self.peer, self.issuer, self.ca.key)
        for data in (b"", b"<html>not found</html>", good[:len(good) // 2], b"\x30\x03\x0a\x01\x00"):
            verdict = self.evaluate(data)
            self.assertEqual((verdict.good, verdict.status), (False, "error"), data)

    def test_unsuccessful(self):
        """
        An unsuccessful responseStatus (tryLater, unauthorized) is refused.
        """
        data = x509ocsp.OCSPResponseBuilder.build_unsuccessful(
            x509ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(Encoding.DER)
        verdict = self.evaluate(data)
        self.assertEqual(verdict.status, "error")
        self.assertIn("TRY_LATER", verdict.reason)

    def test_staleWithTolerate(self):
        """
        With tolerate, a nextUpdate further in the past than tolerate, a
        thisUpdate further in the future, or (with maxage) older than
        maxage, is refused; within the bounds it passes.
        """
        hour = datetime.timedelta(hours=1)
        stale = response(self.peer, self.issuer, self.ca.key, thisUpdate=pki.NOW - 3 * pki.DAY,
                         nextUpdate=pki.NOW - 2 * hour)
        self.assertIn("nextUpdate", self.evaluate(stale, tolerate=3600).reason)
        self.assertTrue(self.evaluate(stale, tolerate=3 * 3600).good)
        future = response(self.peer, self.issuer, self.ca.key, thisUpdate=pki.NOW + 2 * hour)
        self.assertIn("future", self.evaluate(future, tolerate=3600).reason)
        old = response(self.peer, self.issuer, self.ca.key, thisUpdate=pki.NOW - 5 * hour)
        self.assertIn("maxage", self.evaluate(old, tolerate=60, maxAge=3600).reason)
        self.assertTrue(self.evaluate(old, tolerate=60).good)

    def test_tolerateZeroChecksNoTimes(self):
        """
        tolerate 0 (iked's default) verifies no times at all.
        """
        stale = response(self.peer, self.issuer, self.ca.key, thisUpdate=pki.NOW - 3 * pki.DAY,
                         nextUpdate=pki.NOW - 2 * pki.DAY)
        self.assertTrue(self.evaluate(stale, tolerate=0).good)


class ResponderUrlTests(_Setup, SynchronousTestCase):
    def test_fallback(self):
        """
        Without AIA in the certificate or its issuer, C{set ocsp}'s URL.
        """
        self.assertEqual(ocsp.responderUrl(self.peer, self.issuer, "http://ocsp.example/"), "http://ocsp.example/")
        self.assertIsNone(ocsp.responderUrl(self.peer, self.issuer, None))

    def test_aia(self):
        """
        The certificate's own AIA OCSP URL comes first.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import AuthorityInformationAccessOID

        key = pki.key("ocsp-peer", "p256")
        cert = (x509.CertificateBuilder().subject_name(pki.name(CN="aia")).issuer_name(self.ca.subject)
                .public_key(key.public_key()).serial_number(7).not_valid_before(pki.NOW - pki.DAY)
                .not_valid_after(pki.NOW + pki.DAY)
                .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://aia.example/ocsp"))]),
                    critical=False)
                .sign(self.ca.key, hashes.SHA256()))
        self.assertEqual(ocsp.responderUrl(cert, self.issuer, "http://fallback/"), "http://aia.example/ocsp")


class FakeResponse:
    def __init__(self, code, chunks, length=None):
        self.code = code
        self.chunks = chunks
        self.length = length if length is not None else sum(len(c) for c in chunks)
        self.stopped = False

    def deliverBody(self, protocol):
        protocol.makeConnection(self)
        for chunk in self.chunks:
            if self.stopped:
                break
            protocol.dataReceived(chunk)
        protocol.connectionLost(Failure(ResponseDone()))

    def stopProducing(self):
        self.stopped = True


class FakeAgent:
    """
    An IAgent answering each request with the next of C{answers} (a
    Deferred, or a response).
    """

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        self.requests.append((method, uri, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Deferred):
            return answer
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)


class ClientTests(_Setup, SynchronousTestCase):
    def client(self, *answers, **kw):
        self.clock = task.Clock()
        self.clock.advance((pki.NOW - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds())
        self.agent = FakeAgent(*answers)
        return ocsp.OCSPClient(self.clock, self.agent, **kw)

    def check(self, client, url="http://ocsp.test/", **kw):
        return self.successResultOf(client.check(self.peer, self.issuer, url, **kw))

    def test_goodCached(self):
        """
        A good answer is asked with a POST of an OCSP request and cached
        until its nextUpdate; then asked again.
        """
        good = response(self.peer, self.issuer, self.ca.key, nextUpdate=pki.NOW + datetime.timedelta(hours=2))
        client = self.client(FakeResponse(200, [good]), FakeResponse(200, [good]))
        self.assertTrue(self.check(client).good)
        method, uri, headers = self.agent.requests[0]
        self.assertEqual((method, uri), (b"POST", b"http://ocsp.test/"))
        self.assertEqual(headers.getRawHeaders(b"Content-Type"), [b"application/ocsp-request"])
        self.assertTrue(self.check(client).good)
        self.assertEqual(len(self.agent.requests), 1)
        self.clock.advance(3 * 3600)
        self.check(client)
        self.assertEqual(len(self.agent.requests), 2)

    def test_failureNotCached(self):
        """
        An error is not cached: the next check asks again.
        """
        client = self.client(FakeResponse(500, [b"oops"]), FakeResponse(200, [response(self.peer, self.issuer, self.ca.key)]))
        verdict = self.check(client)
        self.assertEqual(verdict.status, "error")
        self.assertIn("HTTP status 500", verdict.reason)
        self.assertTrue(self.check(client).good)

    def test_unreachable(self):
        """
        A refused connection is an error verdict, not an exception.
        """
        verdict = self.check(self.client(ConnectionRefusedError()))
        self.assertEqual((verdict.good, verdict.status), (False, "error"))
        self.assertIn("ocsp.test", verdict.reason)

    def test_timeout(self):
        """
        A responder that never answers is given up after the timeout.
        """
        client = self.client(Deferred(), timeout=30)
        d = client.check(self.peer, self.issuer, "http://ocsp.test/")
        self.assertNoResult(d)
        self.clock.advance(30)
        verdict = self.successResultOf(d)
        self.assertEqual(verdict.status, "error")

    def test_bodyNeverEnds(self):
        """
        A responder that sends part of a body and stops is given up after
        the timeout; the connection is stopped, and its late end changes
        nothing.
        """
        class Stalled(FakeResponse):
            def deliverBody(self, protocol):
                self.protocol = protocol
                protocol.makeConnection(self)
                protocol.dataReceived(b"\x30\x82")

        stalled = Stalled(200, [])
        client = self.client(stalled, timeout=30)
        d = client.check(self.peer, self.issuer, "http://ocsp.test/")
        self.assertNoResult(d)
        self.clock.advance(30)
        self.assertEqual(self.successResultOf(d).status, "error")
        self.assertTrue(stalled.stopped)
        stalled.protocol.connectionLost(Failure(ResponseDone()))

    def test_hugeBody(self):
        """
        A body larger than the bound is cut off and refused, announced
        (Content-Length) or not.
        """
        big = [b"x" * 1000] * 10
        client = self.client(FakeResponse(200, big), FakeResponse(200, big, length=100), maxBody=5000)
        self.assertIn("larger than", self.check(client).reason)
        self.assertIn("larger than", self.check(client).reason)

    def test_respondersFile(self):
        """
        The responder certificates file (PEM) is read at each check: a
        response its certificate signed is good; a missing file trusts
        nothing, an unreadable one is logged and trusts nothing.
        """
        import os

        from cryptography.hazmat.primitives.serialization import Encoding as E

        other = pki.Authority.root(kind="p256", keyName="ocsp-other", cn="Other CA")
        cert, key = responderCertificate(other, keyName="trusted-responder", ocspSigning=False)
        data = response(self.peer, self.issuer, key, cert, nextUpdate=False)
        path = os.path.abspath(self.mktemp())
        client = self.client(*[FakeResponse(200, [data]) for _ in range(3)], respondersFile=path)
        self.assertIn("unknown responder", self.check(client).reason)
        with open(path, "wb") as f:
            f.write(cert.public_bytes(E.PEM))
        self.assertTrue(self.check(client).good)
        with open(path, "wb") as f:
            f.write(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        self.assertIn("unknown responder", self.check(client).reason)

    def test_noUrl(self):
        """
        No URL anywhere, or an https one (iked: not supported), is an error.
        """
        client = self.client()
        self.assertIn("no OCSP responder URL", self.check(client, url=None).reason)
        self.assertIn("not supported", self.check(client, url="https://ocsp.test/").reason)
        self.assertEqual(self.agent.requests, [])


class _StatusCore:
    def __init__(self):
        self.answers = []

    def certificateStatus(self, token, good, reason):
        self.answers.append((token, good, reason))
        return []


class ShellTests(_Setup, SynchronousTestCase):
    """
    L{ikedtx.net.shell.CoreRunner} carries out L{CheckCertificateStatus}:
    the responder URL chosen, the verdict fed back into the core.
    """

    def runAction(self, *answers):
        from ikedtx.core.actions import CheckCertificateStatus
        from ikedtx.kernel.decoupled import DecoupledKernel
        from ikedtx.net.shell import CoreRunner

        self.core = _StatusCore()
        clock = task.Clock()
        clock.advance((pki.NOW - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds())
        runner = CoreRunner(self.core, DecoupledKernel(), clock)
        self.agent = FakeAgent(*answers)
        runner.ocsp = ocsp.OCSPClient(clock, self.agent)
        runner.execute([CheckCertificateStatus(5, self.peer, self.issuer, "http://fallback.test/", 0, None)])
        return self.core.answers

    def test_good(self):
        """
        A good answer from the fallback URL reaches the core as good.
        """
        answers = self.runAction(FakeResponse(200, [response(self.peer, self.issuer, self.ca.key)]))
        self.assertEqual(answers, [(5, True, "good")])
        self.assertEqual(self.agent.requests[0][1], b"http://fallback.test/")

    def test_revoked(self):
        """
        A revoked answer reaches the core as not good, with its reason.
        """
        answers = self.runAction(FakeResponse(200, [response(self.peer, self.issuer, self.ca.key,
                                                       status=x509ocsp.OCSPCertStatus.REVOKED)]))
        [(token, good, reason)] = answers
        self.assertEqual((token, good), (5, False))
        self.assertIn("revoked", reason)

    def test_unreachable(self):
        """
        An unreachable responder reaches the core as not good.
        """
        [(token, good, reason)] = self.runAction(ConnectionRefusedError())
        self.assertFalse(good)

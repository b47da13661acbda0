# -*- test-case-name: tests.test_pki_ocsp -*-
"""
OCSP (RFC 6960) for the peer's certificate, as iked does it with
C{set ocsp URL [tolerate TIME [maxage TIME]]}.

What iked does (sbin/iked/ca.c, ocsp.c), and so what this does:

  - only with C{set ocsp} configured, and only for the peer's end-entity
    certificate once its chain verified;
  - the responder asked is the one named in the issuing CA's Authority
    Information Access, else the configured URL (here the end entity's own
    AIA comes first, as RFC 6960 intends; then the CA's, then C{set ocsp});
    plain HTTP only;
  - the request carries the certificate's CertID and no nonce; a response
    nonce is not checked;
  - the response must be signed by a certificate of
    /etc/iked/ocsp/responder.crt (trusted as it is, as iked's
    OCSP_TRUSTOTHER), or - where iked would refuse - by the issuing CA or a
    responder the CA delegated to (a certificate it issued with
    id-kp-OCSPSigning, sent in the response), as RFC 6960 4.2.2.2 allows;
  - C{tolerate} 0 (the default) checks no times at all; otherwise
    C{thisUpdate} may be at most C{tolerate} in the future, C{nextUpdate}
    at most C{tolerate} in the past, and with C{maxage} C{thisUpdate} at most
    C{maxage} in the past (OpenSSL's OCSP_check_validity);
  - only "good" lets the certificate through: "revoked", "unknown", an
    unreachable responder (30 seconds, as iked's OCSP_TIMEOUT), an HTTP
    error, a body that does not parse or verify - all refuse the peer
    (iked answers IMSG_CERTINVALID for each), and each is logged.

Unlike iked, answers are cached per certificate (issuer key hash and
serial) until their C{nextUpdate}; failures are not cached.

L{evaluate} and L{buildRequest} are pure; L{OCSPClient} fetches over HTTP
with Twisted's L{Agent}.
"""

import datetime
from io import BytesIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.web.client import FileBodyProducer, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.logger import Logger
from twisted.web.http_headers import Headers

#: iked's OCSP_TIMEOUT, seconds for the whole exchange here.
TIMEOUT = 30

#: the largest response body read; a larger one is cut off and refused.
MAX_BODY = 64 * 1024


class Verdict:
    """
    What became of one status check.

    @ivar good: whether the certificate may be used.
    @ivar status: C{"good"}, C{"revoked"}, C{"unknown"} or C{"error"}.
    @ivar reason: for logs: why, in words.
    @ivar validUntil: how long the answer may be cached (an aware
        datetime), or L{None}: not at all.
    """

    def __init__(self, status, reason, validUntil=None):
        self.good = status == "good"
        self.status = status
        self.reason = reason
        self.validUntil = validUntil

    def __repr__(self):
        return "<Verdict %s: %s>" % (self.status, self.reason)


def _error(reason):
    return Verdict("error", reason)


def _aiaUrls(certificate):
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def responderUrl(certificate, issuer, fallback):
    """
    The responder to ask about C{certificate}: its own AIA OCSP URL, else
    its issuer's (iked), else C{fallback} (C{set ocsp URL}).
    """
    for candidate in (certificate, issuer):
        urls = _aiaUrls(candidate)
        if urls:
            return urls[0]
    return fallback


def buildRequest(certificate, issuer, algorithm=None):
    """
    The DER OCSP request for C{certificate} (SHA-1 CertID, as OpenSSL's
    default and iked's; no nonce).
    """
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm or hashes.SHA1())
    return builder.build().public_bytes(Encoding.DER)


def _certId(certificate, issuer, algorithm):
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash


def _keyHash(certificate):
    # The SHA-1 of the subjectPublicKey bits, as a CertID's issuerKeyHash
    # and a ResponderID byKey hold it.
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, certificate, hashes.SHA1()).build()
    return request.issuer_key_hash


def _verifySignature(publicKey, signature, data, algorithm):
    if isinstance(publicKey, rsa.RSAPublicKey):
        publicKey.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(publicKey, ec.EllipticCurvePublicKey):
        publicKey.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(publicKey, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        publicKey.verify(signature, data)
    else:
        raise InvalidSignature("unsupported responder key")


def _names(response):
    if response.responder_name is not None:
        return lambda c: c.subject == response.responder_name
    keyHash = response.responder_key_hash
    return lambda c: _keyHash(c) == keyHash


def _signer(response, issuer, now, trusted=()):
    """
    The certificate that signed C{response}: one of C{trusted}, the issuer,
    or a delegated responder it issued for OCSP signing; or a reason it has
    none.
    """
    isSigner = _names(response)
    for candidate in trusted:
        if isSigner(candidate):
            return candidate, None
    if isSigner(issuer):
        return issuer, None
    for candidate in response.certificates:
        if not isSigner(candidate):
            continue
        try:
            candidate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            return None, "responder certificate %s not issued by %s" % (
                candidate.subject.rfc4514_string(), issuer.subject.rfc4514_string())
        try:
            usages = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (x509.ExtensionNotFound, ValueError):
            usages = []
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            return None, "responder certificate %s lacks id-kp-OCSPSigning" % (candidate.subject.rfc4514_string(),)
        if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
            return None, "responder certificate %s is not valid now" % (candidate.subject.rfc4514_string(),)
        return candidate, None
    return None, "response signed by an unknown responder"


def _timesRefused(single, now, tolerate, maxAge):
    if not tolerate:
        return None
    slack = datetime.timedelta(seconds=tolerate)
    thisUpdate, nextUpdate = single.this_update_utc, single.next_update_utc
    if thisUpdate > now + slack:
        return "thisUpdate %s is in the future" % (thisUpdate.isoformat(),)
    if maxAge is not None and thisUpdate < now - datetime.timedelta(seconds=maxAge):
        return "thisUpdate %s is older than maxage" % (thisUpdate.isoformat(),)
    if nextUpdate is not None:
        if nextUpdate < now - slack:
            return "nextUpdate %s has passed" % (nextUpdate.isoformat(),)
        if nextUpdate < thisUpdate:
            return "nextUpdate is before thisUpdate"
    return None


def evaluate(data, certificate, issuer, now, tolerate=0, maxAge=None, trusted=()):
    """
    Judge the DER OCSP response C{data} about C{certificate} (issued by
    C{issuer}) at C{now} (an aware datetime). Never raises on bad input.

    @param trusted: responder certificates trusted as signers as they are
        (iked's ocsp/responder.crt).

    @rtype: L{Verdict}
    """
    try:
        response = ocsp.load_der_ocsp_response(bytes(data))
    except ValueError as e:
        return _error("response does not parse: %s" % (e,))
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return _error("responder answered %s" % (response.response_status.name,))
    try:
        signer, why = _signer(response, issuer, now, trusted)
        if signer is None:
            return _error(why)
        try:
            _verifySignature(signer.public_key(), response.signature, response.tbs_response_bytes,
                             response.signature_hash_algorithm)
        except (InvalidSignature, TypeError, ValueError):
            return _error("response signature does not verify with %s" % (signer.subject.rfc4514_string(),))
        single = None
        for candidate in response.responses:
            if candidate.serial_number != certificate.serial_number:
                continue
            if (candidate.issuer_name_hash, candidate.issuer_key_hash) == _certId(certificate, issuer,
                                                                                  candidate.hash_algorithm):
                single = candidate
                break
        if single is None:
            return _error("response has no status for serial %x" % (certificate.serial_number,))
        refused = _timesRefused(single, now, tolerate, maxAge)
        if refused is not None:
            return _error(refused)
        status = single.certificate_status
        validUntil = single.next_update_utc
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType) as e:
        # cryptography parses parts of a response lazily.
        return _error("malformed response: %s" % (e,))
    except Exception as e:  # cryptography's lazy parsing raises other types for odd encodings
        return _error("unusable response: %s: %s" % (type(e).__name__, e))
    if status == ocsp.OCSPCertStatus.GOOD:
        return Verdict("good", "good", validUntil)
    if status == ocsp.OCSPCertStatus.REVOKED:
        return Verdict("revoked", "revoked at %s" % (single.revocation_time_utc.isoformat(),), validUntil)
    return Verdict("unknown", "the responder does not know the certificate")


class _BoundedBody(Protocol):
    """
    Collect a response body of at most L{MAX_BODY} bytes.
    """

    def __init__(self, finished, limit):
        self.finished = finished
        self.limit = limit
        self.parts = []
        self.size = 0

    def dataReceived(self, data):
        if self.finished is None:
            return
        self.size += len(data)
        if self.size > self.limit:
            finished, self.finished = self.finished, None
            self.transport.stopProducing()
            finished.errback(ValueError("response body larger than %d bytes" % (self.limit,)))
            return
        self.parts.append(data)

    def cancel(self, finished):
        # The timeout: stop reading; the Deferred fails with CancelledError.
        self.finished = None
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        if self.finished is None:
            return
        finished, self.finished = self.finished, None
        if reason.check(ResponseDone, PotentialDataLoss):
            finished.callback(b"".join(self.parts))
        else:
            finished.errback(reason)


class OCSPClient:
    """
    Fetch and judge certificate status over HTTP, with a cache.

    @ivar agent: an L{twisted.web.iweb.IAgent}.
    @ivar cache: C{{(issuer key hash, serial): Verdict}}.
    """

    _log = Logger()

    def __init__(self, reactor, agent=None, timeout=TIMEOUT, maxBody=MAX_BODY, respondersFile=None, responders=None):
        if agent is None:
            from twisted.web.client import Agent
            agent = Agent(reactor, connectTimeout=timeout)
        self.reactor = reactor
        self.agent = agent
        self.timeout = timeout
        self.maxBody = maxBody
        self.respondersFile = respondersFile
        self._responders = responders
        self.cache = {}

    def responders(self):
        """
        The trusted responder certificates: what the C{responders} callable
        given returns (the credential store's, read at start and reload: a
        privilege-separated worker cannot read the file), else those of
        L{respondersFile} (PEM), read at each check as iked does; none when
        it is absent or unreadable (logged).
        """
        if self._responders is not None:
            return list(self._responders())
        if self.respondersFile is None:
            return []
        try:
            with open(self.respondersFile, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        except OSError as e:
            self._log.warn("OCSP responder certificates {path}: {error}", path=self.respondersFile, error=e)
            return []
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as e:
            self._log.warn("OCSP responder certificates {path}: {error}", path=self.respondersFile, error=e)
            return []

    def now(self):
        return datetime.datetime.fromtimestamp(self.reactor.seconds(), datetime.timezone.utc)

    def check(self, certificate, issuer, url, tolerate=0, maxAge=None):
        """
        The L{Verdict} on C{certificate} from the responder at C{url}.

        @return: a Deferred that never fails.
        """
        key = (_keyHash(issuer), certificate.serial_number)
        cached = self.cache.get(key)
        if cached is not None:
            if cached.validUntil is not None and self.now() < cached.validUntil:
                return succeed(cached)
            del self.cache[key]
        if url is None:
            return succeed(_error("no OCSP responder URL"))
        if not url.startswith("http://"):
            return succeed(_error("OCSP over %s is not supported: %s" % (url.split(":", 1)[0], url)))
        try:
            body = FileBodyProducer(BytesIO(buildRequest(certificate, issuer)))
            d = self.agent.request(b"POST", url.encode("ascii"),
                                   Headers({b"Content-Type": [b"application/ocsp-request"]}), body)
        except Exception as e:
            return succeed(_error("cannot ask %s: %s" % (url, e)))
        d.addCallback(self._read)
        d.addTimeout(self.timeout, self.reactor)

        def judged(data):
            verdict = evaluate(data, certificate, issuer, self.now(), tolerate, maxAge, self.responders())
            if verdict.status in ("good", "revoked") and verdict.validUntil is not None:
                self.cache[key] = verdict
            return verdict

        d.addCallback(judged)
        d.addErrback(lambda f: _error("responder %s: %s" % (url, f.getErrorMessage() or f.type.__name__)))
        return d

    def _read(self, response):
        if response.code != 200:
            response.deliverBody(_Discard())
            raise ValueError("HTTP status %d" % (response.code,))
        if isinstance(response.length, int) and response.length > self.maxBody:
            response.deliverBody(_Discard())
            raise ValueError("response body of %d bytes is larger than %d" % (response.length, self.maxBody))
        body = _BoundedBody(None, self.maxBody)
        body.finished = finished = Deferred(body.cancel)
        response.deliverBody(body)
        return finished


class _Discard(Protocol):
    def dataReceived(self, data):
        self.transport.stopProducing()

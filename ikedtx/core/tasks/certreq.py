# -*- test-case-name: tests.test_core_auth -*-
"""
The CERTREQ task (RFC 7296 3.7): the authorities we trust, sent by a
responder in IKE_SA_INIT and by an initiator in IKE_AUTH; the peer's
CERTREQ of IKE_SA_INIT names the authorities our certificate should chain
to (a hint: a malformed one is ignored).
"""

from twisted.logger import Logger

from ikedtx.auth.errors import MalformedCertificateRequest
from ikedtx.auth.store import parseCertificateRequest
from ikedtx.core.tasks import DONE, MORE, Task
from ikedtx.core.tasks.common import allOf
from ikedtx.wire.constants import CertEncoding, ExchangeType
from ikedtx.wire.payloads import CertificateRequest


def usesCertificates(policy):
    return policy.auth.method != "psk"


def certreqPayloads(core, ikeSA):
    if not usesCertificates(ikeSA.policy) or core.credentials is None:
        return []
    authorities = core.credentials.certificateRequestAuthorities()
    return [CertificateRequest(CertEncoding.X509_CERT_SIGNATURE, b"".join(authorities))]


class CertreqTask(Task):
    """
    CERTREQ both ways. As initiator it spans two rounds: it reads the
    responder's CERTREQ in IKE_SA_INIT and sends ours in IKE_AUTH.
    """

    exchangeType = ExchangeType.IKE_SA_INIT
    _log = Logger()

    def __init__(self, initiator):
        Task.__init__(self, initiator)
        self.exchangeType = ExchangeType.IKE_SA_INIT

    def _learn(self, ikeSA, payloads):
        ikeSA.certreqAuthorities = []
        for certreq in allOf(payloads, CertificateRequest):
            if certreq.encoding == CertEncoding.X509_CERT_SIGNATURE:
                try:
                    ikeSA.certreqAuthorities.extend(parseCertificateRequest(certreq.data))
                except MalformedCertificateRequest as e:
                    # Only a hint for choosing our certificate: ignored.
                    self._log.info("{ikeSA}: {error}", ikeSA=ikeSA, error=e)

    def buildI(self, core, ikeSA, payloads):
        if self.exchangeType == ExchangeType.IKE_AUTH:
            payloads += certreqPayloads(core, ikeSA)

    def processI(self, core, ikeSA, message, payloads, local, remote):
        if self.exchangeType == ExchangeType.IKE_SA_INIT:
            self._learn(ikeSA, payloads)
            self.exchangeType = ExchangeType.IKE_AUTH
            return MORE
        return DONE

    def processR(self, core, ikeSA, message, payloads):
        self._learn(ikeSA, payloads)

    def buildR(self, core, ikeSA, payloads):
        payloads += certreqPayloads(core, ikeSA)
        return DONE

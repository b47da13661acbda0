"""
OCSP responses for tests, made with cryptography's builder: a good or
revoked answer signed by the CA or by a delegated responder.
"""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests import pki


def responderCertificate(ca, keyName="ocsp-responder", ocspSigning=True, issuerKey=None):
    """
    A delegated responder's certificate issued by C{ca} (with
    id-kp-OCSPSigning unless told otherwise) and its key.
    """
    key = pki.key(keyName, "p256")
    usages = [ExtendedKeyUsageOID.OCSP_SIGNING] if ocspSigning else [ExtendedKeyUsageOID.SERVER_AUTH]
    builder = (x509.CertificateBuilder()
               .subject_name(pki.name(O="ikedtx test", CN="OCSP responder " + keyName))
               .issuer_name(ca.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(pki.NOW - 10 * pki.DAY)
               .not_valid_after(pki.NOW + 100 * pki.DAY)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    return builder.sign(issuerKey or ca.key, hashes.SHA256()), key


def response(certificate, issuer, signerKey, signerCertificate=None, status=ocsp.OCSPCertStatus.GOOD,
             thisUpdate=None, nextUpdate=None, byName=False, include=()):
    """
    The DER OCSP response on C{certificate}.

    @param signerCertificate: names the responder (default: C{issuer}).
    """
    thisUpdate = thisUpdate or pki.NOW - datetime.timedelta(hours=1)
    nextUpdate = nextUpdate if nextUpdate is not None else pki.NOW + pki.DAY
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=certificate, issuer=issuer, algorithm=hashes.SHA1(), cert_status=status,
        this_update=thisUpdate, next_update=nextUpdate or None,
        revocation_time=pki.NOW - pki.DAY if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None)
    encoding = ocsp.OCSPResponderEncoding.NAME if byName else ocsp.OCSPResponderEncoding.HASH
    builder = builder.responder_id(encoding, signerCertificate or issuer)
    if include:
        builder = builder.certificates(list(include))
    return builder.sign(signerKey, hashes.SHA256()).public_bytes(Encoding.DER)

# -*- test-case-name: tests.test_auth_store -*-
"""
A small test PKI built with cryptography: CAs, intermediates, end-entity
certificates with subjectAltNames, CRLs, and an iked-style /etc/iked tree
written into a temporary directory.

Key generation is the slow part (RSA especially), so keys are cached per
process by a name; certificates are cheap and made fresh by each test.

(The lab engineer keeps a similar helper in ikedtx/testing/lab/; this one is the
auth layer's and will be merged later.)
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A fixed "now" the tests verify at, so that validity windows never depend
# on the wall clock.
NOW = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)

_keyCache = {}


def key(name, kind="rsa2048"):
    """
    Return the private key named C{name}, generating it once per process.

    @param kind: C{"rsa2048"}, C{"rsa1024"} (fast, for tests that only need
        "some other RSA key"), C{"p256"}, C{"p384"}, C{"p521"} or
        C{"ed25519"}.
    """
    cacheKey = (name, kind)
    if cacheKey not in _keyCache:
        if kind.startswith("rsa"):
            k = rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
        elif kind == "p256":
            k = ec.generate_private_key(ec.SECP256R1())
        elif kind == "p384":
            k = ec.generate_private_key(ec.SECP384R1())
        elif kind == "p521":
            k = ec.generate_private_key(ec.SECP521R1())
        elif kind == "ed25519":
            k = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(kind)
        _keyCache[cacheKey] = k
    return _keyCache[cacheKey]


def name(**attributes):
    """
    Build an x509.Name from keyword arguments in the order given, e.g.
    C{name(C="DE", O="Example", CN="host")}.
    """
    oids = {
        "C": NameOID.COUNTRY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
        "L": NameOID.LOCALITY_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "CN": NameOID.COMMON_NAME,
        "emailAddress": NameOID.EMAIL_ADDRESS,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attributes.items()])


def _signingHash(signer):
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA256()


class Authority:
    """
    A certificate authority: its key, its certificate, the certificates it
    revoked.

    @ivar key: the private key.
    @ivar certificate: the x509.Certificate.
    @ivar revoked: list of (serial, revocation time).
    """

    def __init__(self, subject, signingKey, certificate):
        self.subject = subject
        self.key = signingKey
        self.certificate = certificate
        self.revoked = []

    @classmethod
    def root(cls, cn="Test Root CA", keyName="root", kind="rsa2048", notBefore=None, notAfter=None):
        """
        A self-signed root CA.
        """
        k = key(keyName, kind)
        subject = name(C="DE", O="ikedtx test", CN=cn)
        cert = _build(
            subject=subject,
            issuer=subject,
            publicKey=k.public_key(),
            signer=k,
            notBefore=notBefore or NOW - 365 * DAY,
            notAfter=notAfter or NOW + 3650 * DAY,
            ca=True,
            issuerKey=k.public_key(),
        )
        return cls(subject, k, cert)

    def intermediate(self, cn="Test Intermediate CA", keyName="intermediate", kind="p256"):
        """
        An intermediate CA signed by this one.
        """
        k = key(keyName, kind)
        subject = name(C="DE", O="ikedtx test", CN=cn)
        cert = _build(
            subject=subject,
            issuer=self.subject,
            publicKey=k.public_key(),
            signer=self.key,
            notBefore=NOW - 300 * DAY,
            notAfter=NOW + 1000 * DAY,
            ca=True,
            issuerKey=self.key.public_key(),
        )
        return Authority(subject, k, cert)

    def issue(
        self,
        subject,
        publicKey,
        dns=(),
        ips=(),
        emails=(),
        notBefore=None,
        notAfter=None,
        serial=None,
    ):
        """
        Issue an end-entity certificate.

        @param subject: an x509.Name.
        @param publicKey: the subject's public key.
        @param dns: dNSName SANs; C{ips}: iPAddress SANs (strings);
            C{emails}: rfc822Name SANs.
        """
        sans = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        sans += [x509.RFC822Name(e) for e in emails]
        return _build(
            subject=subject,
            issuer=self.subject,
            publicKey=publicKey,
            signer=self.key,
            notBefore=notBefore or NOW - 30 * DAY,
            notAfter=notAfter or NOW + 365 * DAY,
            ca=False,
            sans=sans,
            serial=serial,
            issuerKey=self.key.public_key(),
        )

    def revoke(self, certificate, when=None):
        self.revoked.append((certificate.serial_number, when or NOW - DAY))

    def crl(self, lastUpdate=None, nextUpdate=None):
        """
        This CA's CRL listing what it revoked.
        """
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.subject)
            .last_update(lastUpdate or NOW - 2 * DAY)
            .next_update(nextUpdate or NOW + 30 * DAY)
        )
        for serial, when in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        return builder.sign(self.key, _signingHash(self.key))


def _build(subject, issuer, publicKey, signer, notBefore, notAfter, ca, sans=(), serial=None, issuerKey=None):
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(publicKey)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(notBefore)
        .not_valid_after(notAfter)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
    )
    if issuerKey is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuerKey), critical=False
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(signer, _signingHash(signer))


def pem(obj):
    """
    PEM bytes of a certificate, CRL, private key (PKCS#8) or public key (SPKI).
    """
    if isinstance(obj, (x509.Certificate, x509.CertificateRevocationList)):
        return obj.public_bytes(serialization.Encoding.PEM)
    if hasattr(obj, "private_bytes"):
        return obj.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return obj.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def der(obj):
    """
    DER bytes of a certificate, CRL or public key (SPKI).
    """
    if isinstance(obj, (x509.Certificate, x509.CertificateRevocationList)):
        return obj.public_bytes(serialization.Encoding.DER)
    return obj.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class IkedTree:
    """
    An /etc/iked layout in a directory: ca/, certs/, crls/, private/,
    pubkeys/{ipv4,ipv6,fqdn,ufqdn}/.
    """

    SUBDIRS = ("ca", "certs", "crls", "private", "pubkeys/ipv4", "pubkeys/ipv6", "pubkeys/fqdn", "pubkeys/ufqdn")

    def __init__(self, root):
        self.root = os.path.abspath(root)
        for d in self.SUBDIRS:
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        os.chmod(os.path.join(self.root, "private"), 0o700)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def write(self, relative, data, mode=0o644):
        p = self.path(relative)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        return p

    def addCA(self, certificate, fileName=None):
        return self.write("ca/" + (fileName or "ca%x.crt" % certificate.serial_number), pem(certificate))

    def addCert(self, certificate, fileName=None):
        return self.write("certs/" + (fileName or "%x.crt" % certificate.serial_number), pem(certificate))

    def addCRL(self, crl, fileName="ca.crl"):
        return self.write("crls/" + fileName, pem(crl))

    def setLocalKey(self, privateKey, data=None, mode=0o600):
        """
        Write private/local.key (PKCS#8 PEM unless C{data} is given) and
        local.pub.
        """
        self.write("private/local.key", data if data is not None else pem(privateKey), mode)
        self.write("local.pub", pem(privateKey.public_key()))

    def addPubkey(self, kind, idName, publicKey, data=None):
        """
        Trust C{publicKey} for the ID C{idName} of C{kind} (ipv4, ipv6,
        fqdn, ufqdn).
        """
        return self.write("pubkeys/%s/%s" % (kind, idName), data if data is not None else pem(publicKey))

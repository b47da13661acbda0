# -*- test-case-name: tests.test_lab_harness -*-
"""
Keys, certificates and CRLs for the lab, made with C{cryptography} (no
openssl CLI, a few milliseconds for ECDSA).

    ca = CertificateAuthority("ikedtx lab CA")
    moon = ca.issue("moon", keyType="ecdsa-p256", ips=["192.0.2.1"],
                    dns=["moon.example"], emails=["moon@example"])
    moon.certPEM, moon.key.privatePEM, ca.cert.certPEM, ca.crl([moon]).pem

Objects carry every encoding the peers want: PEM and DER, PKCS#8 and
traditional private keys, SubjectPublicKeyInfo public keys.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_TYPES = ("rsa-2048", "rsa-3072", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519")

def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class KeyPair:
    """
    A private key and its public half.

    @ivar keyType: one of L{KEY_TYPES}.
    @ivar private: the C{cryptography} private key object.
    """

    def __init__(self, private, keyType):
        self.private = private
        self.keyType = keyType

    @classmethod
    def generate(cls, keyType="ecdsa-p256"):
        """
        A fresh key of C{keyType} (C{"rsa-2048"}, C{"ecdsa-p256"}, ...).
        """
        if keyType.startswith("rsa-"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=int(keyType[4:]))
        elif keyType.startswith("ecdsa-p"):
            curve = {"256": ec.SECP256R1, "384": ec.SECP384R1, "521": ec.SECP521R1}[keyType[7:]]
            key = ec.generate_private_key(curve())
        elif keyType == "ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError("unknown key type %r" % (keyType,))
        return cls(key, keyType)

    @property
    def public(self):
        return self.private.public_key()

    @property
    def privatePEM(self):
        """
        PKCS#8 PEM (C{BEGIN PRIVATE KEY}).
        """
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def privateDER(self):
        """
        PKCS#8 DER.
        """
        return self.private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def traditionalPEM(self):
        """
        PKCS#1 (C{BEGIN RSA PRIVATE KEY}) or SEC1 (C{BEGIN EC PRIVATE KEY})
        PEM, the form C{ikectl ca} writes; Ed25519 has only PKCS#8.
        """
        fmt = serialization.PrivateFormat.PKCS8 if self.keyType == "ed25519" else serialization.PrivateFormat.TraditionalOpenSSL
        return self.private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())

    @property
    def publicPEM(self):
        """
        SubjectPublicKeyInfo PEM (C{BEGIN PUBLIC KEY}).
        """
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def publicDER(self):
        return self.public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def signatureHash(key):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA256()


def _name(subject):
    """
    C{"moon"} -> CN=moon; a full C{x509.Name} or an RFC 4514 string with
    C{=} is used as it is.
    """
    if isinstance(subject, x509.Name):
        return subject
    if "=" in subject:
        return x509.Name.from_rfc4514_string(subject)
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikedtx lab"), x509.NameAttribute(NameOID.COMMON_NAME, subject)])


class Certificate:
    """
    An X.509 certificate and its key.

    @ivar cert: the C{cryptography} certificate.
    @ivar key: its L{KeyPair}.
    @ivar issuer: the issuing L{CertificateAuthority}, or C{None}
        (self-signed).
    """

    def __init__(self, cert, key, issuer=None):
        self.cert = cert
        self.key = key
        self.issuer = issuer

    @property
    def certPEM(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def certDER(self):
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def subject(self):
        """
        The subject as an RFC 4514 string (C{CN=moon,O=ikedtx lab}).
        """
        return self.cert.subject.rfc4514_string()

    @property
    def subjectIKE(self):
        """
        The subject as iked and strongSwan write an ASN.1 DN ID, in
        C{/O=.../CN=...} (iked) form.
        """
        return "".join("/%s=%s" % (a.rfc4514_attribute_name, a.value) for rdn in self.cert.subject.rdns for a in rdn)

    @property
    def serial(self):
        return self.cert.serial_number


class CRL:
    """
    A certificate revocation list.

    @ivar crl: the C{cryptography} CRL.
    """

    def __init__(self, crl):
        self.crl = crl

    @property
    def pem(self):
        return self.crl.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self):
        return self.crl.public_bytes(serialization.Encoding.DER)


class CertificateAuthority:
    """
    A self-signed CA that issues host certificates and CRLs.

    @ivar cert: the CA's own L{Certificate}.
    @ivar key: its L{KeyPair}.
    @ivar revoked: serial numbers revoked so far (L{revoke}).
    """

    def __init__(self, subject="ikedtx lab CA", keyType="ecdsa-p256", days=30, key=None):
        self.key = key or KeyPair.generate(keyType)
        name = _name(subject)
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public), critical=False)
            .sign(self.key.private, signatureHash(self.key.private))
        )
        self.cert = Certificate(cert, self.key)
        self.revoked = []

    def issue(self, subject, keyType="ecdsa-p256", ips=(), dns=(), emails=(), days=30, key=None,
              notBefore=None, notAfter=None, serverAuth=True, ca=False, extraUsages=()):
        """
        Issue a host certificate.

        @param subject: a common name (C{"moon"} -> C{O=ikedtx lab, CN=moon})
            or an RFC 4514 string.
        @param ips, dns, emails: subjectAltName entries (IP, FQDN, RFC 822).
        @param key: a L{KeyPair} to certify; by default a new C{keyType} key.
        @param notBefore, notAfter: override the validity (e.g. an expired
            certificate).
        @param ca: issue an intermediate CA certificate instead.
        @param extraUsages: further extended key usage OIDs (dotted strings),
            e.g. the IKE intermediate 1.3.6.1.5.5.8.2.2 Windows wants.
        @return: a L{Certificate}.
        """
        key = key or KeyPair.generate(keyType)
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(self.cert.cert.subject)
            .public_key(key.public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(notBefore or now - datetime.timedelta(hours=1))
            .not_valid_after(notAfter or now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public), critical=False)
        )
        sans = (
            [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
            + [x509.DNSName(d) for d in dns]
            + [x509.RFC822Name(e) for e in emails]
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if serverAuth and not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                                      + [x509.ObjectIdentifier(oid) for oid in extraUsages]),
                critical=False,
            )
        cert = builder.sign(self.key.private, signatureHash(self.key.private))
        return Certificate(cert, key, issuer=self)

    def subordinate(self, subject, keyType="ecdsa-p256", days=30):
        """
        An intermediate L{CertificateAuthority} issued by this one; its
        C{cert} carries this CA as issuer.
        """
        certificate = self.issue(subject, keyType=keyType, days=days, ca=True)
        sub = CertificateAuthority.__new__(CertificateAuthority)
        sub.key = certificate.key
        sub.cert = certificate
        sub.revoked = []
        return sub

    def revoke(self, certificate):
        """
        Add C{certificate} to the revoked list of the next L{crl}.
        """
        self.revoked.append(certificate.serial)

    def crl(self, revoked=(), days=7):
        """
        A CRL listing L{revoked} plus the L{Certificate}s in C{revoked}.
        """
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.cert.subject)
            .last_update(now - datetime.timedelta(minutes=5))
            .next_update(now + datetime.timedelta(days=days))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public), critical=False)
            .add_extension(x509.CRLNumber(1), critical=False)
        )
        for serial in list(self.revoked) + [c.serial for c in revoked]:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - datetime.timedelta(minutes=1)).build()
            )
        return CRL(builder.sign(self.key.private, signatureHash(self.key.private)))

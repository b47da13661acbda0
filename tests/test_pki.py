"""
Tests for L{ikedtx.pki.ca}: ikectl(8)'s certificate authority in a
temporary directory, with a fixed clock.  Certificates and CRLs are read
back with C{cryptography}, and the installed tree is loaded by ikedtx's own
L{CredentialStore}, which must accept a host certificate for its ID and
refuse it once revoked.
"""

import datetime
import ipaddress
import os
import stat
import tarfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth import keys
from ikedtx.auth.errors import AuthenticationFailed
from ikedtx.auth.ids import IKEIdentity
from ikedtx.auth.store import CredentialStore
from ikedtx.pki import ca as caModule
from ikedtx.pki.ca import IKE_INTERMEDIATE, CAError, CertificateAuthority, subjectAltNameFor
from ikedtx.wire.constants import CertEncoding

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class Clock:
    """
    A settable clock for L{CertificateAuthority.now}.
    """

    def __init__(self, now=NOW):
        self.current = now

    def __call__(self):
        return self.current

    def advance(self, delta):
        self.current += delta


class CATestMixin:
    """
    A CA directory under a temporary SSL directory; EC keys unless a test
    asks for RSA (RSA-2048 generation is the slow part).
    """

    keyType = "ecdsa256"

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        self.sslDir = os.path.join(self.base, "ssl")
        os.makedirs(self.sslDir)
        self.etc = os.path.join(self.base, "etc")
        self.clock = Clock()

    def makeCA(self, name="vpn", create=True, **kw):
        ca = CertificateAuthority(name, sslDir=self.sslDir, now=self.clock, hostname="gw.example.com")
        if create:
            kw.setdefault("keyType", self.keyType)
            ca.create(**kw)
        return ca

    def issue(self, ca, host, **kw):
        kw.setdefault("keyType", self.keyType)
        return ca.issueCertificate(host, **kw)


def extension(certificate, kind):
    return certificate.extensions.get_extension_for_class(kind)


class CreateTests(CATestMixin, SynchronousTestCase):
    """
    C{ca NAME create}: the directory, the CA key and certificate, serial,
    index and the first (empty) CRL.
    """

    def test_defaultRSA(self):
        """
        By default the CA key is RSA-2048 as ikectl's C{genrsa 2048}; the
        certificate is self-signed, a CA (basicConstraints critical, keyCertSign
        and cRLSign), valid 4500 days from now, signed with SHA-256.
        """
        ca = self.makeCA(keyType="rsa")
        cert = ca.certificate()
        self.assertIsInstance(cert.public_key(), rsa.RSAPublicKey)
        self.assertEqual(cert.public_key().key_size, 2048)
        self.assertEqual(cert.subject, cert.issuer)
        cert.verify_directly_issued_by(cert)
        self.assertEqual(cert.signature_hash_algorithm.name, "sha256")
        basic = extension(cert, x509.BasicConstraints)
        self.assertTrue(basic.critical)
        self.assertTrue(basic.value.ca)
        usage = extension(cert, x509.KeyUsage).value
        self.assertTrue(usage.key_cert_sign and usage.crl_sign)
        self.assertEqual(cert.not_valid_before_utc, NOW)
        self.assertEqual(cert.not_valid_after_utc, NOW + 4500 * DAY)
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "VPN CA")
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value, "vpn")

    def test_files(self):
        """
        The CA directory and private/ are 0700, the keys 0600; serial.txt
        starts at 01 and index.txt is empty, as openssl ca wants them.
        """
        ca = self.makeCA()
        self.assertEqual(mode(ca.path), 0o700)
        self.assertEqual(mode(os.path.join(ca.path, "private")), 0o700)
        self.assertEqual(mode(ca.keyPath), 0o600)
        with open(ca.serialPath) as f:
            self.assertEqual(f.read(), "01\n")
        with open(ca.indexPath) as f:
            self.assertEqual(f.read(), "")
        self.assertFalse(os.path.exists(ca.passwordPath))
        with open(ca.keyPath, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        self.assertTrue(keys.samePublicKey(key, ca.certificate().public_key()))

    def test_emptyCRL(self):
        """
        create writes a CRL (ikectl's ca_revoke(ca, NULL)): no entries,
        CRL number 1, signed by the CA.
        """
        ca = self.makeCA()
        crl = ca.crl()
        self.assertEqual(len(list(crl)), 0)
        self.assertEqual(extension(crl, x509.CRLNumber).value.crl_number, 1)
        self.assertTrue(crl.is_signature_valid(ca.certificate().public_key()))
        self.assertEqual(crl.issuer, ca.certificate().subject)
        self.assertEqual(crl.next_update_utc, NOW + 365 * DAY)

    def test_password(self):
        """
        With a password the CA key is encrypted with it, and the password
        is kept in ikeca.passwd (0600) for later signing, as ikectl does.
        """
        ca = self.makeCA(password="s3cret")
        with open(ca.keyPath, "rb") as f:
            data = f.read()
        self.assertIn(b"ENCRYPTED", data)
        self.assertRaises(TypeError, serialization.load_pem_private_key, data, None)
        self.assertRaises(ValueError, serialization.load_pem_private_key, data, b"wrong")
        serialization.load_pem_private_key(data, b"s3cret")
        self.assertEqual(mode(ca.passwordPath), 0o600)
        cert = self.issue(ca, "192.0.2.1")
        cert.verify_directly_issued_by(ca.certificate())

    def test_passwordLost(self):
        """
        Without ikeca.passwd (or with an empty one) an encrypted CA key
        cannot be read: one clear error, no certificate.
        """
        ca = self.makeCA(password="s3cret")
        os.unlink(ca.passwordPath)
        error = self.assertRaises(CAError, self.issue, ca, "192.0.2.1")
        self.assertTrue(str(error).startswith("cannot read the key of CA 'vpn': "), str(error))
        self.assertEqual(len(str(error).splitlines()), 1)
        with open(ca.passwordPath, "wb"):
            pass
        self.assertRaises(CAError, self.issue, ca, "192.0.2.1")
        self.assertEqual(ca.hosts(), [])
        self.assertFalse(ca.hasKey("192.0.2.1"))

    def test_ecdsa(self):
        """
        C{keytype ecdsa384} makes an EC CA key on P-384.
        """
        ca = self.makeCA(keyType="ecdsa384")
        key = ca.certificate().public_key()
        self.assertIsInstance(key, ec.EllipticCurvePublicKey)
        self.assertEqual(key.curve.name, "secp384r1")

    def test_unknownKeyType(self):
        ca = self.makeCA(create=False)
        error = self.assertRaises(CAError, ca.create, keyType="dsa")
        self.assertIn("unknown key type 'dsa'", str(error))
        self.assertFalse(os.path.exists(ca.path))

    def test_exists(self):
        """
        Creating a CA that exists is refused and leaves it alone.
        """
        ca = self.makeCA()
        before = ca.certificate()
        error = self.assertRaises(CAError, self.makeCA)
        self.assertEqual(str(error), "CA 'vpn' already exists (%s)" % (ca.path,))
        self.assertEqual(ca.certificate(), before)

    def test_delete(self):
        ca = self.makeCA()
        self.issue(ca, "192.0.2.1")
        ca.delete()
        self.assertFalse(os.path.exists(ca.path))
        self.assertEqual(str(self.assertRaises(CAError, ca.delete)), "CA 'vpn' does not exist")

    def test_badNames(self):
        """
        CA and host names become file names: nothing that leaves the
        directory.
        """
        for name in ("", ".", "..", "a/b", "-x"):
            self.assertRaises(CAError, CertificateAuthority, name, sslDir=self.sslDir)
        ca = self.makeCA()
        for host in ("../x", "a/b", ".."):
            self.assertRaises(CAError, ca.issueCertificate, host)
            self.assertRaises(CAError, ca.createKey, host)

    def test_unknownCA(self):
        """
        Every operation on a CA that does not exist says so.
        """
        ca = self.makeCA(create=False)
        for call in (lambda: ca.certificate(), lambda: ca.issueCertificate("192.0.2.1"), lambda: ca.revoke("x"),
                     lambda: ca.createKey("x"), lambda: ca.install(self.etc), lambda: ca.export(self.base),
                     lambda: ca.describe()):
            self.assertEqual(str(self.assertRaises(CAError, call)), "CA 'vpn' does not exist")


class IssueTests(CATestMixin, SynchronousTestCase):
    """
    C{ca NAME certificate HOST create [server|client|ocsp]}.
    """

    def setUp(self):
        CATestMixin.setUp(self)
        self.ca = self.makeCA()

    def sans(self, certificate):
        return list(extension(certificate, x509.SubjectAlternativeName).value)

    def test_subjectAltNameTypes(self):
        """
        HOST goes into the subjectAltName with the type of the iked ID it
        is: an iPAddress for IPv4 and IPv6, a dNSName for a name, an
        rfc822Name for user@host; the subject is CN=HOST.
        """
        cases = [
            ("192.0.2.1", x509.IPAddress(ipaddress.ip_address("192.0.2.1"))),
            ("2001:db8::1", x509.IPAddress(ipaddress.ip_address("2001:db8::1"))),
            ("moon.example.com", x509.DNSName("moon.example.com")),
            ("carol@example.com", x509.RFC822Name("carol@example.com")),
        ]
        for host, expected in cases:
            cert = self.issue(self.ca, host)
            self.assertEqual(self.sans(cert), [expected])
            self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, host)

    def test_local(self):
        """
        C{local} stands for the host name (ikectl's gethostname), in a
        certificate still stored as local.crt.
        """
        cert = self.issue(self.ca, "local")
        self.assertEqual(self.sans(cert), [x509.DNSName("gw.example.com")])
        self.assertTrue(os.path.exists(os.path.join(self.ca.path, "local.crt")))

    def test_invalidHosts(self):
        """
        A HOST that is no address, host name or user@host is refused before
        anything is written.
        """
        for host in ("bad host", "a!b", "x@", "@x", "fe80::1%eth0", "h..example", "caf\xe9.example"):
            error = self.assertRaises(CAError, self.ca.issueCertificate, host)
            self.assertIn("is not an address, a host name or user@host", str(error))
        self.assertEqual(self.ca.index(), [])
        self.assertEqual(os.listdir(os.path.join(self.ca.path, "private")), ["ca.key"])

    def test_extendedKeyUsage(self):
        """
        The default is serverAuth and clientAuth (ikectl(8)); C{server},
        C{client} and C{ocsp} restrict it.  Server certificates also carry
        the IKE intermediate usage Windows wants (RFC 4945 5.1.3.12).
        """
        expected = {
            None: [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH, IKE_INTERMEDIATE],
            "server": [ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE],
            "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
            "ocsp": [ExtendedKeyUsageOID.OCSP_SIGNING],
        }
        for i, (usage, oids) in enumerate(expected.items()):
            cert = self.issue(self.ca, "192.0.2.%d" % (i + 1,), usage=usage)
            eku = extension(cert, x509.ExtendedKeyUsage)
            self.assertFalse(eku.critical)
            self.assertEqual(list(eku.value), oids)

    def test_keyUsageRSA(self):
        """
        Key usage as ikectl sets it for RSA keys: server (and default)
        digitalSignature+keyEncipherment, client digitalSignature+
        keyAgreement, ocsp nonRepudiation+digitalSignature+keyEncipherment;
        never a CA.
        """
        expected = {
            None: ("digital_signature", "key_encipherment"),
            "server": ("digital_signature", "key_encipherment"),
            "client": ("digital_signature", "key_agreement"),
            "ocsp": ("digital_signature", "content_commitment", "key_encipherment"),
        }
        names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign")
        # One RSA key for every certificate: generation is the slow part.
        self.ca.createKey("rsa-host", "rsa")
        with open(self.ca.hostKeyPath("rsa-host"), "rb") as f:
            rsaKey = f.read()
        for i, (usage, flags) in enumerate(expected.items()):
            host = "192.0.2.%d" % (i + 1,)
            with open(os.path.join(self.base, "k.pem"), "wb") as f:
                f.write(rsaKey)
            self.ca.importKey(host, os.path.join(self.base, "k.pem"))
            cert = self.ca.issueCertificate(host, usage=usage)
            self.assertIsInstance(cert.public_key(), rsa.RSAPublicKey)
            ku = extension(cert, x509.KeyUsage)
            self.assertTrue(ku.critical)
            self.assertEqual(tuple(n for n in names if getattr(ku.value, n)), flags, usage)
            self.assertFalse(extension(cert, x509.BasicConstraints).value.ca)

    def test_keyUsageEC(self):
        """
        An EC key never gets keyEncipherment (RFC 5480 3): keyAgreement
        instead.
        """
        ku = extension(self.issue(self.ca, "192.0.2.1", usage="server"), x509.KeyUsage).value
        self.assertTrue(ku.digital_signature and ku.key_agreement)
        self.assertFalse(ku.key_encipherment)

    def test_defaultHostKeyRSA(self):
        """
        Without a key type the host key is RSA-2048, as ikectl's genrsa.
        """
        cert = self.ca.issueCertificate("192.0.2.1")
        self.assertEqual(cert.public_key().key_size, 2048)
        with open(self.ca.hostKeyPath("192.0.2.1"), "rb") as f:
            self.assertTrue(f.read().startswith(b"-----BEGIN PRIVATE KEY-----"))
        self.assertEqual(mode(self.ca.hostKeyPath("192.0.2.1")), 0o600)

    def test_validityAndSignature(self):
        """
        Valid from now for 365 days, issued and signed (SHA-256) by the CA,
        with the CA's key identifier.
        """
        self.clock.advance(3 * DAY)
        cert = self.issue(self.ca, "192.0.2.1")
        self.assertEqual(cert.not_valid_before_utc, NOW + 3 * DAY)
        self.assertEqual(cert.not_valid_after_utc, NOW + 368 * DAY)
        caCert = self.ca.certificate()
        cert.verify_directly_issued_by(caCert)
        self.assertEqual(cert.issuer, caCert.subject)
        aki = extension(cert, x509.AuthorityKeyIdentifier).value
        self.assertEqual(aki.key_identifier, extension(caCert, x509.SubjectKeyIdentifier).value.digest)

    def test_serialsIncrement(self):
        """
        Serials come from serial.txt: 1, 2, 3, each recorded as valid in
        index.txt in openssl ca's format.
        """
        hosts = ["192.0.2.1", "moon.example", "carol@example.com"]
        serials = [self.issue(self.ca, h).serial_number for h in hosts]
        self.assertEqual(serials, [1, 2, 3])
        with open(self.ca.serialPath) as f:
            self.assertEqual(f.read(), "04\n")
        with open(self.ca.indexPath) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines, [
            "V\t270301120000Z\t\t%02X\tunknown\t/CN=%s" % (i + 1, h) for i, h in enumerate(hosts)])

    def test_existingHost(self):
        """
        A second certificate for a HOST with a valid one is refused, and
        nothing changes.
        """
        first = self.issue(self.ca, "192.0.2.1")
        error = self.assertRaises(CAError, self.issue, self.ca, "192.0.2.1")
        self.assertEqual(str(error), "certificate for '192.0.2.1' already exists in CA 'vpn'")
        self.assertEqual(self.ca.hostCertificate("192.0.2.1"), first)
        self.assertEqual(len(self.ca.index()), 1)

    def test_reissueAfterRevoke(self):
        """
        Once revoked, HOST can have a new certificate, with the next serial
        and the same key (ikectl keeps a host's key).
        """
        first = self.issue(self.ca, "192.0.2.1")
        self.ca.revoke("192.0.2.1")
        second = self.issue(self.ca, "192.0.2.1")
        self.assertEqual(second.serial_number, first.serial_number + 1)
        self.assertTrue(keys.samePublicKey(first.public_key(), second.public_key()))
        self.assertEqual([e.status for e in self.ca.index()], ["R", "V"])

    def test_reissueAfterDelete(self):
        """
        certificate delete removes the certificate and key; a new
        certificate then has a new key.
        """
        first = self.issue(self.ca, "192.0.2.1")
        self.ca.deleteCertificate("192.0.2.1")
        self.assertFalse(os.path.exists(self.ca.hostCertificatePath("192.0.2.1")))
        self.assertFalse(self.ca.hasKey("192.0.2.1"))
        second = self.issue(self.ca, "192.0.2.1")
        self.assertFalse(keys.samePublicKey(first.public_key(), second.public_key()))
        error = self.assertRaises(CAError, self.ca.deleteCertificate, "192.0.2.9")
        self.assertEqual(str(error), "no certificate or key for '192.0.2.9' in CA 'vpn'")

    def test_unknownUsage(self):
        self.assertRaises(CAError, self.ca.issueCertificate, "192.0.2.1", usage="both")

    def test_unreadableCAKey(self):
        """
        A CA whose key is gone cannot sign: one clear error.
        """
        os.unlink(self.ca.keyPath)
        error = self.assertRaises(CAError, self.issue, self.ca, "192.0.2.1")
        self.assertIn("CA 'vpn' has no key", str(error))


class RevokeTests(CATestMixin, SynchronousTestCase):
    """
    C{ca NAME certificate HOST revoke}: the index and a new CRL each time.
    """

    def setUp(self):
        CATestMixin.setUp(self)
        self.ca = self.makeCA()
        self.moon = self.issue(self.ca, "192.0.2.1")
        self.sun = self.issue(self.ca, "192.0.2.2")

    def test_crl(self):
        """
        The new CRL lists the revoked serial with the revocation time, has
        the next CRL number, and is signed by the CA; the other
        certificate is not in it.
        """
        self.clock.advance(DAY)
        self.ca.revoke("192.0.2.1")
        crl = self.ca.crl()
        self.assertEqual([r.serial_number for r in crl], [self.moon.serial_number])
        self.assertEqual(list(crl)[0].revocation_date_utc, NOW + DAY)
        self.assertEqual(extension(crl, x509.CRLNumber).value.crl_number, 2)
        self.assertEqual(crl.last_update_utc, NOW + DAY)
        self.assertTrue(crl.is_signature_valid(self.ca.certificate().public_key()))
        self.assertIsNone(crl.get_revoked_certificate_by_serial_number(self.sun.serial_number))
        self.assertEqual(self.ca.status(self.moon), "revoked")
        self.assertEqual(self.ca.status(self.sun), "valid")
        with open(self.ca.indexPath) as f:
            self.assertEqual(f.read().splitlines()[0], "R\t270301120000Z\t260302120000Z\t01\tunknown\t/CN=192.0.2.1")

    def test_accumulates(self):
        """
        Each revoke writes a CRL with every revocation so far.
        """
        self.ca.revoke("192.0.2.1")
        self.ca.revoke("192.0.2.2")
        crl = self.ca.crl()
        self.assertEqual(sorted(r.serial_number for r in crl), [1, 2])
        self.assertEqual(extension(crl, x509.CRLNumber).value.crl_number, 3)

    def test_twice(self):
        self.ca.revoke("192.0.2.1")
        crl = self.ca.crl()
        error = self.assertRaises(CAError, self.ca.revoke, "192.0.2.1")
        self.assertEqual(str(error), "certificate for '192.0.2.1' is already revoked")
        self.assertEqual(self.ca.crl(), crl)

    def test_unknownHost(self):
        error = self.assertRaises(CAError, self.ca.revoke, "192.0.2.9")
        self.assertEqual(str(error), "no certificate for '192.0.2.9' in CA 'vpn'")


class KeyTests(CATestMixin, SynchronousTestCase):
    """
    C{ca NAME key HOST create | install | delete | import}.
    """

    def setUp(self):
        CATestMixin.setUp(self)
        self.ca = self.makeCA()

    def test_createOnce(self):
        """
        key create makes a key (0600) only if there is none.
        """
        self.assertTrue(self.ca.createKey("192.0.2.1", "ecdsa256"))
        with open(self.ca.hostKeyPath("192.0.2.1"), "rb") as f:
            first = f.read()
        self.assertEqual(mode(self.ca.hostKeyPath("192.0.2.1")), 0o600)
        self.assertFalse(self.ca.createKey("192.0.2.1", "ecdsa256"))
        with open(self.ca.hostKeyPath("192.0.2.1"), "rb") as f:
            self.assertEqual(f.read(), first)

    def test_certificateUsesCreatedKey(self):
        self.ca.createKey("192.0.2.1", "ecdsa521")
        cert = self.ca.issueCertificate("192.0.2.1")
        self.assertTrue(keys.samePublicKey(cert.public_key(), self.ca.hostKey("192.0.2.1")))
        self.assertEqual(cert.public_key().curve.name, "secp521r1")

    def test_install(self):
        """
        key install writes private/local.key (0600, in a 0700 private/)
        and local.pub, its public key.
        """
        self.ca.createKey("192.0.2.1", "ecdsa256")
        written = self.ca.installKey("192.0.2.1", self.etc)
        local = os.path.join(self.etc, "private", "local.key")
        public = os.path.join(self.etc, "local.pub")
        self.assertEqual(written, [local, public])
        self.assertEqual(mode(local), 0o600)
        self.assertEqual(mode(os.path.join(self.etc, "private")), 0o700)
        with open(local, "rb") as f:
            key = keys.loadPrivateKey(f.read())
        with open(public, "rb") as f:
            self.assertTrue(keys.samePublicKey(keys.loadPublicKey(f.read()), key))
        self.assertTrue(keys.samePublicKey(key, self.ca.hostKey("192.0.2.1")))

    def test_installMissing(self):
        error = self.assertRaises(CAError, self.ca.installKey, "192.0.2.1", self.etc)
        self.assertEqual(str(error), "key for '192.0.2.1' does not exist")
        self.assertFalse(os.path.exists(os.path.join(self.etc, "private", "local.key")))

    def test_import(self):
        """
        key import copies a private key file in, 0600; a certificate then
        certifies that key.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        source = os.path.join(self.base, "k.pem")
        with open(source, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
        self.ca.importKey("192.0.2.1", source)
        self.assertEqual(mode(self.ca.hostKeyPath("192.0.2.1")), 0o600)
        cert = self.ca.issueCertificate("192.0.2.1")
        self.assertTrue(keys.samePublicKey(cert.public_key(), key))

    def test_importBad(self):
        """
        A missing file, or one that holds no usable private key, is refused.
        """
        error = self.assertRaises(CAError, self.ca.importKey, "h", os.path.join(self.base, "missing"))
        self.assertIn("could not access keyfile", str(error))
        source = os.path.join(self.base, "junk")
        with open(source, "wb") as f:
            f.write(b"not a key\n")
        error = self.assertRaises(CAError, self.ca.importKey, "h", source)
        self.assertTrue(str(error).startswith(source + ": "), str(error))
        self.assertFalse(self.ca.hasKey("h"))

    def test_delete(self):
        self.ca.createKey("h", "ecdsa256")
        self.ca.deleteKey("h")
        self.assertFalse(self.ca.hasKey("h"))
        error = self.assertRaises(CAError, self.ca.deleteKey, "h")
        self.assertEqual(str(error), "key for 'h' does not exist")


class InstallTests(CATestMixin, SynchronousTestCase):
    """
    C{ca NAME install} and C{ca NAME certificate HOST install}, into an
    iked tree that ikedtx's L{CredentialStore} then loads.
    """

    def setUp(self):
        CATestMixin.setUp(self)
        self.ca = self.makeCA()

    def test_installCA(self):
        written = self.ca.install(self.etc)
        self.assertEqual(written, [os.path.join(self.etc, "ca", "ca.crt"), os.path.join(self.etc, "crls", "ca.crl")])
        with open(written[0], "rb") as f:
            self.assertEqual(x509.load_pem_x509_certificate(f.read()), self.ca.certificate())
        with open(written[1], "rb") as f:
            self.assertEqual(x509.load_pem_x509_crl(f.read()), self.ca.crl())
        for sub in ("ca", "certs", "crls"):
            self.assertEqual(mode(os.path.join(self.etc, sub)), 0o755)

    def test_installCertificate(self):
        cert = self.issue(self.ca, "192.0.2.1")
        written = self.ca.installCertificate("192.0.2.1", self.etc)
        self.assertEqual(written[0], os.path.join(self.etc, "certs", "192.0.2.1.crt"))
        with open(written[0], "rb") as f:
            self.assertEqual(x509.load_pem_x509_certificate(f.read()), cert)
        self.assertEqual(mode(os.path.join(self.etc, "private", "local.key")), 0o600)

    def test_installMissingCertificate(self):
        self.ca.createKey("192.0.2.1", "ecdsa256")
        error = self.assertRaises(CAError, self.ca.installCertificate, "192.0.2.1", self.etc)
        self.assertEqual(str(error), "no certificate for '192.0.2.1' in CA 'vpn'")

    def storeFor(self, host):
        """
        An iked tree with the CA and C{host}'s certificate installed, loaded
        by ikedtx's credential store.
        """
        etc = os.path.join(self.base, "etc-" + host)
        self.ca.install(etc)
        self.ca.installCertificate(host, etc)
        store = CredentialStore(etc, hostname="gw.example.com")
        self.assertEqual(store.loadErrors, [])
        return store

    def assertStoreRoundTrip(self, host, identity):
        """
        The tree installed for C{host} gives it a local credential with its
        certificate for C{identity}; a peer's tree (the CA only) accepts that
        certificate for C{identity}, and refuses it once revoked and the new
        CRL is installed.
        """
        cert = self.issue(self.ca, host)
        mine = self.storeFor(host)
        credential = mine.localCredential(srcId=identity, now=NOW + DAY)
        self.assertEqual(credential.certificate, cert)
        peerEtc = os.path.join(self.base, "peer-" + host)
        self.ca.install(peerEtc)
        peer = CredentialStore(peerEtc, hostname="peer.example.com")
        payloads = [(CertEncoding(e), d) for e, d in credential.certificatePayloads()]
        verified = peer.verifyPeer(identity, payloads, now=NOW + DAY)
        self.assertEqual(verified.certificate, cert)
        self.assertEqual(verified.chain, [cert, self.ca.certificate()])

        self.ca.revoke(host)
        self.ca.install(peerEtc)
        peer.reload()
        error = self.assertRaises(AuthenticationFailed, peer.verifyPeer, identity, payloads, now=NOW + DAY)
        self.assertIn("certificate revoked", str(error))

    def test_storeIPv4(self):
        self.assertStoreRoundTrip("192.0.2.1", IKEIdentity.fromAddress("192.0.2.1"))

    def test_storeIPv6(self):
        self.assertStoreRoundTrip("2001:db8::1", IKEIdentity.fromAddress("2001:db8::1"))

    def test_storeFQDN(self):
        self.assertStoreRoundTrip("moon.example.com", IKEIdentity.fromFQDN("moon.example.com"))

    def test_storeUFQDN(self):
        self.assertStoreRoundTrip("carol@example.com", IKEIdentity.fromUFQDN("carol@example.com"))

    def test_storeOtherIdentity(self):
        """
        The certificate is for its HOST only: the store refuses it for
        another ID.
        """
        self.issue(self.ca, "192.0.2.1")
        self.ca.installCertificate("192.0.2.1", self.etc)
        self.ca.install(self.etc)
        store = CredentialStore(self.etc, hostname="gw.example.com")
        payloads = [(CertEncoding.X509_CERT_SIGNATURE,
                     self.ca.hostCertificate("192.0.2.1").public_bytes(serialization.Encoding.DER))]
        error = self.assertRaises(AuthenticationFailed, store.verifyPeer, IKEIdentity.fromAddress("192.0.2.2"),
                                  payloads, now=NOW + DAY)
        self.assertIn("not in the subjectAltName", str(error))


class ExportTests(CATestMixin, SynchronousTestCase):
    """
    C{ca NAME [certificate HOST] export [peer P] [password P]}: a tarball
    that unpacks into /etc/iked.
    """

    def setUp(self):
        CATestMixin.setUp(self)
        self.ca = self.makeCA()
        self.out = os.path.join(self.base, "out")
        os.makedirs(self.out)

    def members(self, path):
        with tarfile.open(path, "r:gz") as archive:
            return {m.name: (m, archive.extractfile(m).read() if m.isfile() else None) for m in archive.getmembers()}

    def test_host(self):
        """
        A host's tarball holds the CA certificate and CRL, the host's
        certificate, its key both as HOST.key and as private/local.key
        (0600), local.pub, peer.txt and the PKCS#12 files, encrypted with
        the password, all owned by root.
        """
        cert = self.issue(self.ca, "192.0.2.1")
        path = self.ca.export(self.out, host="192.0.2.1", peer="192.0.2.254", password="export-pw")
        self.assertEqual(path, os.path.join(self.out, "192.0.2.1.tgz"))
        self.assertEqual(mode(path), 0o600)
        members = self.members(path)
        self.assertEqual(sorted(members), sorted([
            ".", "./ca", "./ca/ca.crt", "./certs", "./certs/192.0.2.1.crt", "./crls", "./crls/ca.crl", "./export",
            "./export/ca.pfx", "./export/192.0.2.1.pfx", "./export/peer.txt", "./local.pub", "./private",
            "./private/192.0.2.1.key", "./private/local.key"]))
        for name, (info, data) in members.items():
            self.assertEqual((info.uid, info.gid, info.uname), (0, 0, "root"), name)
        self.assertEqual(stat.S_IMODE(members["./private"][0].mode), 0o700)
        self.assertEqual(stat.S_IMODE(members["./private/local.key"][0].mode), 0o600)
        key = keys.loadPrivateKey(members["./private/local.key"][1])
        self.assertTrue(keys.samePublicKey(key, cert.public_key()))
        self.assertTrue(keys.samePublicKey(keys.loadPublicKey(members["./local.pub"][1]), key))
        self.assertEqual(x509.load_pem_x509_certificate(members["./certs/192.0.2.1.crt"][1]), cert)
        self.assertEqual(x509.load_pem_x509_certificate(members["./ca/ca.crt"][1]), self.ca.certificate())
        self.assertEqual(x509.load_pem_x509_crl(members["./crls/ca.crl"][1]), self.ca.crl())
        self.assertEqual(members["./export/peer.txt"][1], b"192.0.2.254")

        pfx = members["./export/192.0.2.1.pfx"][1]
        self.assertRaises(ValueError, pkcs12.load_key_and_certificates, pfx, b"wrong")
        pfxKey, pfxCert, pfxCAs = pkcs12.load_key_and_certificates(pfx, b"export-pw")
        self.assertTrue(keys.samePublicKey(pfxKey, cert.public_key()))
        self.assertEqual((pfxCert, pfxCAs), (cert, [self.ca.certificate()]))
        caPfx = pkcs12.load_key_and_certificates(members["./export/ca.pfx"][1], b"export-pw")
        self.assertEqual(caPfx, (None, None, [self.ca.certificate()]))

    def test_unpacksIntoStore(self):
        """
        Unpacked into an empty directory, the host tarball is an iked tree
        that ikedtx's store loads without complaint and authenticates with.
        """
        cert = self.issue(self.ca, "moon.example.com")
        path = self.ca.export(self.out, host="moon.example.com")
        with tarfile.open(path, "r:gz") as archive:
            archive.extractall(self.etc, filter="data")
        store = CredentialStore(self.etc, hostname="gw.example.com")
        self.assertEqual(store.loadErrors, [])
        credential = store.localCredential(srcId=IKEIdentity.fromFQDN("moon.example.com"), now=NOW)
        self.assertEqual(credential.certificates, [cert])

    def test_noPassword(self):
        """
        Without a password the PKCS#12 files are not encrypted (ikectl
        would prompt for one).
        """
        cert = self.issue(self.ca, "192.0.2.1")
        members = self.members(self.ca.export(self.out, host="192.0.2.1"))
        self.assertNotIn("./export/peer.txt", members)
        self.assertEqual(pkcs12.load_key_and_certificates(members["./export/192.0.2.1.pfx"][1], None)[1], cert)

    def test_colons(self):
        """
        An IPv6 host's files are named with underscores for colons (not
        valid in Windows file names), as ikectl does; the key keeps its name.
        """
        self.issue(self.ca, "2001:db8::1")
        path = self.ca.export(self.out, host="2001:db8::1")
        self.assertEqual(os.path.basename(path), "2001_db8__1.tgz")
        members = self.members(path)
        self.assertIn("./export/2001_db8__1.pfx", members)
        self.assertIn("./certs/2001:db8::1.crt", members)

    def test_ca(self):
        """
        The CA's own tarball holds its certificate, CRL and ca.pfx, and no
        private key.
        """
        path = self.ca.export(self.out, peer="vpn.example.com")
        self.assertEqual(os.path.basename(path), "ca.tgz")
        members = self.members(path)
        files = sorted(n for n, (info, _) in members.items() if info.isfile())
        self.assertEqual(files, ["./ca/ca.crt", "./crls/ca.crl", "./export/ca.pfx", "./export/peer.txt"])

    def test_missingHost(self):
        error = self.assertRaises(CAError, self.ca.export, self.out, host="192.0.2.1")
        self.assertEqual(str(error), "no certificate for '192.0.2.1' in CA 'vpn'")
        self.assertEqual(os.listdir(self.out), [])


class DescribeTests(CATestMixin, SynchronousTestCase):
    """
    What C{show ca NAME certificates [HOST]} prints.
    """

    def test_listing(self):
        ca = self.makeCA()
        self.issue(ca, "192.0.2.1")
        self.issue(ca, "moon.example.com")
        ca.revoke("192.0.2.1")
        text = "\n".join(ca.describe())
        blocks = text.split("\n\n")
        self.assertEqual([b.splitlines()[0] for b in blocks if b], [
            "subject=/OU=vpn/CN=VPN CA", "subject=/CN=192.0.2.1", "subject=/CN=moon.example.com"])
        self.assertIn("serial=01\nstatus=revoked", blocks[1])
        self.assertIn("serial=02\nstatus=valid", blocks[2])
        self.assertIn("notAfter=Mar 01 12:00:00 2027 GMT", blocks[2])

    def test_details(self):
        ca = self.makeCA()
        cert = self.issue(ca, "moon.example.com", usage="client")
        lines = ca.describe("moon.example.com")
        self.assertIn("subjectAltName=DNS:moon.example.com", lines)
        self.assertIn("extendedKeyUsage=clientAuth", lines)
        self.assertIn("key=ECDSA P-256", lines)
        self.assertEqual(lines[-1], cert.public_bytes(serialization.Encoding.PEM).decode("ascii").rstrip("\n"))
        self.assertRaises(CAError, ca.describe, "sun.example.com")


class IndexTests(SynchronousTestCase):
    def test_roundTrip(self):
        line = "R\t270301120000Z\t260302120000Z\t0A\tunknown\t/CN=x\n"
        entry = caModule.IndexEntry.parse(line)
        self.assertEqual((entry.status, entry.serial, entry.subject), ("R", 10, "/CN=x"))
        self.assertEqual(entry.format(), line)

    def test_malformed(self):
        self.assertRaises(ValueError, caModule.IndexEntry.parse, "V\tjunk\n")

    def test_subjectAltNameFor(self):
        self.assertEqual(subjectAltNameFor("local", "h.example"), x509.DNSName("h.example"))

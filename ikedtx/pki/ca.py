# -*- test-case-name: tests.test_pki -*-
"""
The certificate authority of C{ikectl ca ...}: one directory per CA, laid
out as ikectl(8) lays out C{/etc/ssl/NAME}::

    NAME/                 0700
      ca.crt              the self-signed CA certificate (PEM)
      ca.crl              the current CRL (PEM; written at create and at
                          every revoke)
      crlnumber           the next CRL number (hex, as openssl ca keeps it)
      serial.txt          the next certificate serial (hex, starts at 01)
      index.txt           openssl ca's database: one line per certificate
                          issued, V (valid) or R (revoked)
      ikeca.passwd        the CA key's password (0600), when it has one
      HOST.crt            host certificates (PEM)
      private/            0700
        ca.key            the CA key (PKCS#8 PEM, encrypted when created
                          with a password)
        HOST.key          host keys (PKCS#8 PEM, unencrypted: iked reads
                          them as private/local.key)
        HOST.pfx          the PKCS#12 made by the last export of HOST

What ikectl does and this module does too: RSA-2048 keys by default, the
CA valid 4500 days with SHA-256 signatures, host keys reused when present,
a certificate's subjectAltName naming HOST (an IP address, a DNS name, or
an rfc822Name for user@host, so that iked's IDs match it), C{server},
C{client} and C{ocsp} choosing the extended key usage (both serverAuth and
clientAuth by default), an empty CRL at create and a new one at each
revoke, installing into an iked tree (ca/ca.crt, crls/ca.crl,
certs/HOST.crt, private/local.key, local.pub), and exports whose tarball
unpacks into /etc/iked with PKCS#12 files for Windows in export/.

Where it differs, and why:
  - No prompts: without a password the CA key is stored unencrypted, and
    an export without a password writes unencrypted PKCS#12 files (ikectl
    asks for both on the terminal).
  - EC keys on request (C{ecdsa256}, C{ecdsa384}, C{ecdsa521}, iked.conf's
    names), besides C{rsa}.
  - Server certificates (C{server}, and the default) also carry the IKE
    intermediate extended key usage (1.3.6.1.5.5.8.2.2, RFC 4945 5.1.3.12)
    that Windows wants on VPN server certificates; ikectl 7.2 does not add
    it.  No Netscape certificate type extension.
  - The key usage follows ikectl (server: digitalSignature and
    keyEncipherment; client: digitalSignature and keyAgreement; ocsp:
    nonRepudiation, digitalSignature and keyEncipherment), except that an
    EC key never gets keyEncipherment (RFC 5480 3), keyAgreement instead.
  - C{ca NAME export} packs the CA certificate, CRL and ca.pfx (the tree a
    peer unpacks into /etc/iked); ikectl 7.2 packs the whole CA directory,
    CA key included.
  - A certificate is refused for a HOST that already has a valid one
    (openssl ca's unique subject rule, said in one line); after revoke or
    delete it can be issued again.
"""

import datetime
import ipaddress
import os
import shutil
import socket
import tarfile
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ikedtx.auth import keys
from ikedtx.auth.errors import InvalidIdentity, InvalidKey
from ikedtx.auth.ids import inferIdentity
from ikedtx.wire.constants import IdType

DEFAULT_SSL_DIR = "/etc/ssl"
DEFAULT_ETC_DIR = "/etc/iked"

CA_DAYS = 4500
CERTIFICATE_DAYS = 365
CRL_DAYS = 365

# iked.conf's names for the key types it signs with.
KEY_TYPES = ("rsa", "ecdsa256", "ecdsa384", "ecdsa521")
_CURVES = {"ecdsa256": ec.SECP256R1, "ecdsa384": ec.SECP384R1, "ecdsa521": ec.SECP521R1}
RSA_BITS = 2048

USAGES = ("server", "client", "ocsp")
IKE_INTERMEDIATE = ObjectIdentifier("1.3.6.1.5.5.8.2.2")

# openssl ca's index.txt time format.
_INDEX_TIME = "%y%m%d%H%M%SZ"


class CAError(Exception):
    """
    A C{ca} command cannot be done; the message is one line for the user.
    """


def generateKey(keyType="rsa"):
    """
    A new private key: C{"rsa"} (RSA-2048, as ikectl) or C{"ecdsa256"},
    C{"ecdsa384"}, C{"ecdsa521"}.

    @raise CAError: an unknown key type.
    """
    if keyType == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if keyType in _CURVES:
        return ec.generate_private_key(_CURVES[keyType]())
    raise CAError("unknown key type '%s' (one of %s)" % (keyType, ", ".join(KEY_TYPES)))


def subjectAltNameFor(host, hostname=None):
    """
    The subjectAltName entry for C{host}, of the type an iked ID of that
    text has (iked.conf's srcid rules, L{ikedtx.auth.ids.inferIdentity}):
    an IP address, an rfc822Name for C{user@host}, otherwise a DNS name.
    C{local} stands for the host name, as in ikectl.

    @param hostname: the host name for C{local} (default: the system's).
    @raise CAError: C{host} is not a valid ID.
    """
    name = host
    if host == "local":
        name = hostname if hostname is not None else socket.gethostname()
    try:
        identity = inferIdentity(name)
    except InvalidIdentity as e:
        raise CAError("'%s' is not an address, a host name or user@host: %s" % (host, e))
    if identity.idType in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        return x509.IPAddress(ipaddress.ip_address(name))
    if identity.idType == IdType.RFC822_ADDR:
        local, _, domain = name.rpartition("@")
        if local and _isDomain(domain) and all(33 <= ord(c) < 127 for c in local):
            return x509.RFC822Name(name)
    elif identity.idType == IdType.FQDN and _isDomain(name):
        return x509.DNSName(name)
    raise CAError("'%s' is not an address, a host name or user@host" % (host,))


_DOMAIN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _isDomain(text):
    labels = text.split(".")
    return bool(text) and len(text) <= 253 and all(
        label and len(label) <= 63 and set(label) <= _DOMAIN_CHARACTERS for label in labels)


def checkName(name, what):
    """
    C{name} (a CA or host name) becomes a file name: refuse what would
    leave the directory.

    @raise CAError: empty, C{.} or C{..}, or containing C{/} or NUL.
    """
    if not name or name in (".", "..") or "/" in name or "\0" in name or name.startswith("-"):
        raise CAError("invalid %s name '%s'" % (what, name))
    return name


def _keyUsage(usage, key):
    ec_ = isinstance(key, ec.EllipticCurvePublicKey)
    digital, commitment, encipherment, agreement = True, False, True, False
    if usage == "client":
        encipherment, agreement = False, True
    elif usage == "ocsp":
        commitment = True
    if ec_ and encipherment:
        encipherment, agreement = False, True
    return x509.KeyUsage(
        digital_signature=digital, content_commitment=commitment, key_encipherment=encipherment,
        data_encipherment=False, key_agreement=agreement, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


def _extendedKeyUsage(usage):
    if usage == "server":
        oids = [ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE]
    elif usage == "client":
        oids = [ExtendedKeyUsageOID.CLIENT_AUTH]
    elif usage == "ocsp":
        oids = [ExtendedKeyUsageOID.OCSP_SIGNING]
    else:
        oids = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH, IKE_INTERMEDIATE]
    return x509.ExtendedKeyUsage(oids)


def _hashFor(key):
    return hashes.SHA256()


def _pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM)


def _privatePEM(key, password=None):
    encryption = serialization.NoEncryption()
    if password:
        encryption = serialization.BestAvailableEncryption(password.encode("utf-8"))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _publicPEM(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def writeFile(path, data, mode=0o644):
    """
    Write C{data} to C{path} atomically with C{mode} (set before the data
    is written, so a key is never readable by others, even briefly).
    """
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".ikectl-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _makeDirectory(path, mode):
    os.makedirs(path, mode=mode, exist_ok=True)
    os.chmod(path, mode)


def makeIkedTree(root):
    """
    The directories of an iked tree that ikectl creates (ca_hier): C{root},
    ca/, certs/, crls/ (0755) and private/ (0700).
    """
    for sub, mode in (("", 0o755), ("ca", 0o755), ("certs", 0o755), ("crls", 0o755), ("private", 0o700)):
        path = os.path.join(root, sub) if sub else root
        if not os.path.isdir(path):
            os.makedirs(path, mode=mode, exist_ok=True)
            os.chmod(path, mode)


class IndexEntry:
    """
    One line of index.txt (openssl ca's database).

    @ivar status: C{"V"} or C{"R"}.
    @ivar expires: the certificate's notAfter (aware datetime).
    @ivar revoked: the revocation time, or C{None}.
    @ivar serial: the serial number (int).
    @ivar subject: the subject as openssl writes it (C{/CN=host}).
    """

    def __init__(self, status, expires, revoked, serial, subject):
        self.status = status
        self.expires = expires
        self.revoked = revoked
        self.serial = serial
        self.subject = subject

    @classmethod
    def parse(cls, line):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 6 or fields[0] not in ("V", "R", "E"):
            raise ValueError("not an index line: %r" % (line,))
        revoked = None
        if fields[2]:
            revoked = _parseIndexTime(fields[2].split(",", 1)[0])
        return cls(fields[0], _parseIndexTime(fields[1]), revoked, int(fields[3], 16), fields[5])

    def format(self):
        revoked = self.revoked.strftime(_INDEX_TIME) if self.revoked is not None else ""
        return "%s\t%s\t%s\t%s\tunknown\t%s\n" % (
            self.status, self.expires.strftime(_INDEX_TIME), revoked, _hexSerial(self.serial), self.subject)


def _parseIndexTime(text):
    return datetime.datetime.strptime(text, _INDEX_TIME).replace(tzinfo=datetime.timezone.utc)


def _hexSerial(serial):
    text = "%X" % (serial,)
    return text if len(text) % 2 == 0 else "0" + text


def _subjectText(name):
    return "".join("/%s=%s" % (a.rfc4514_attribute_name, a.value) for rdn in name.rdns for a in rdn)


class CertificateAuthority:
    """
    One CA directory (C{SSLDIR/NAME}).

    @ivar name: the CA's name.
    @ivar path: its directory.
    @ivar now: a callable returning the current time (aware datetime).
    @ivar hostname: the host name C{local} stands for, or C{None} for the
        system's.
    """

    def __init__(self, name, sslDir=DEFAULT_SSL_DIR, now=None, hostname=None):
        self.name = checkName(name, "CA")
        self.path = os.path.join(sslDir, name)
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.hostname = hostname

    def __repr__(self):
        return "<CertificateAuthority %s at %s>" % (self.name, self.path)

    # -- paths -------------------------------------------------------------

    def _file(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def certificatePath(self):
        return self._file("ca.crt")

    @property
    def keyPath(self):
        return self._file("private", "ca.key")

    @property
    def crlPath(self):
        return self._file("ca.crl")

    @property
    def indexPath(self):
        return self._file("index.txt")

    @property
    def serialPath(self):
        return self._file("serial.txt")

    @property
    def passwordPath(self):
        return self._file("ikeca.passwd")

    def hostCertificatePath(self, host):
        return self._file(checkName(host, "host") + ".crt")

    def hostKeyPath(self, host):
        return self._file("private", checkName(host, "host") + ".key")

    def exists(self):
        return os.path.exists(self.certificatePath)

    def _requireExists(self):
        if not self.exists():
            raise CAError("CA '%s' does not exist" % (self.name,))

    def _now(self):
        return self.now().replace(microsecond=0)

    # -- the CA itself -----------------------------------------------------

    def create(self, password=None, keyType="rsa"):
        """
        Create the CA: its directory, key (encrypted with C{password} if
        given, which is then kept in ikeca.passwd as ikectl does),
        self-signed certificate, serial, index and an empty CRL.

        @raise CAError: the CA exists already.
        """
        if os.path.exists(self.path):
            raise CAError("CA '%s' already exists (%s)" % (self.name, self.path))
        key = generateKey(keyType)
        _makeDirectory(self.path, 0o700)
        _makeDirectory(self._file("private"), 0o700)
        if password:
            writeFile(self.passwordPath, (password + "\n").encode("utf-8"), 0o600)
        writeFile(self.keyPath, _privatePEM(key, password), 0o600)
        now = self._now()
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.name),
            x509.NameAttribute(NameOID.COMMON_NAME, "VPN CA"),
        ])
        public = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, _hashFor(key))
        )
        writeFile(self.certificatePath, _pem(certificate))
        writeFile(self.serialPath, b"01\n")
        writeFile(self._file("crlnumber"), b"01\n")
        writeFile(self.indexPath, b"")
        self.writeCRL()
        return certificate

    def delete(self):
        """
        Remove the CA's directory and everything in it.
        """
        if not os.path.isdir(self.path):
            raise CAError("CA '%s' does not exist" % (self.name,))
        shutil.rmtree(self.path)

    def certificate(self):
        """
        The CA certificate.
        """
        self._requireExists()
        with open(self.certificatePath, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())

    def _key(self):
        password = None
        if os.path.exists(self.passwordPath):
            with open(self.passwordPath, "rb") as f:
                lines = f.read().splitlines()
            password = lines[0] if lines else None
        try:
            with open(self.keyPath, "rb") as f:
                return serialization.load_pem_private_key(f.read(), password)
        except FileNotFoundError:
            raise CAError("CA '%s' has no key (%s)" % (self.name, self.keyPath))
        except (ValueError, TypeError) as e:
            raise CAError("cannot read the key of CA '%s': %s" % (self.name, _firstLine(e)))

    def _readCounter(self, path):
        try:
            with open(path) as f:
                return int(f.read().strip(), 16)
        except (OSError, ValueError):
            raise CAError("cannot read %s" % (path,))

    def index(self):
        """
        The index.txt entries (L{IndexEntry}), in issue order.
        """
        try:
            with open(self.indexPath) as f:
                lines = [line for line in f if line.strip()]
        except FileNotFoundError:
            return []
        try:
            return [IndexEntry.parse(line) for line in lines]
        except ValueError as e:
            raise CAError("%s: %s" % (self.indexPath, e))

    def _writeIndex(self, entries):
        writeFile(self.indexPath, "".join(e.format() for e in entries).encode("ascii"))

    # -- keys --------------------------------------------------------------

    def hasKey(self, host):
        return os.path.exists(self.hostKeyPath(host))

    def hostKey(self, host):
        """
        The private key of C{host}.

        @raise CAError: there is none, or it cannot be read.
        """
        path = self.hostKeyPath(host)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CAError("key for '%s' does not exist" % (host,))
        try:
            return keys.loadPrivateKey(data)
        except InvalidKey as e:
            raise CAError("%s: %s" % (path, e))

    def createKey(self, host, keyType="rsa"):
        """
        Create a private key for C{host} unless it has one.

        @return: C{True} if a key was made, C{False} if one existed.
        """
        self._requireExists()
        path = self.hostKeyPath(host)
        if os.path.exists(path):
            return False
        writeFile(path, _privatePEM(generateKey(keyType)), 0o600)
        return True

    def importKey(self, host, source):
        """
        Make the private key in file C{source} the key of C{host}.

        @raise CAError: the file cannot be read or holds no usable
            unencrypted private key.
        """
        self._requireExists()
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CAError("could not access keyfile %s: %s" % (source, e.strerror or e))
        try:
            keys.loadPrivateKey(data)
        except InvalidKey as e:
            raise CAError("%s: %s" % (source, e))
        writeFile(self.hostKeyPath(host), data, 0o600)

    def deleteKey(self, host):
        """
        Delete the private key of C{host}.
        """
        self._requireExists()
        try:
            os.unlink(self.hostKeyPath(host))
        except FileNotFoundError:
            raise CAError("key for '%s' does not exist" % (host,))

    def installKey(self, host, etcDir=DEFAULT_ETC_DIR):
        """
        Install the key of C{host} as the iked tree's private/local.key
        (0600) and its public half as local.pub.

        @return: the paths written.
        """
        self._requireExists()
        key = self.hostKey(host)
        with open(self.hostKeyPath(host), "rb") as f:
            data = f.read()
        makeIkedTree(etcDir)
        local = os.path.join(etcDir, "private", "local.key")
        public = os.path.join(etcDir, "local.pub")
        writeFile(local, data, 0o600)
        writeFile(public, _publicPEM(key))
        return [local, public]

    # -- certificates ------------------------------------------------------

    def hostCertificate(self, host):
        """
        The certificate of C{host}.

        @raise CAError: there is none.
        """
        try:
            with open(self.hostCertificatePath(host), "rb") as f:
                return x509.load_pem_x509_certificate(f.read())
        except FileNotFoundError:
            raise CAError("no certificate for '%s' in CA '%s'" % (host, self.name))
        except ValueError as e:
            raise CAError("%s: %s" % (self.hostCertificatePath(host), _firstLine(e)))

    def status(self, certificate):
        """
        C{"valid"}, C{"revoked"} or C{"unknown"} (not in the index) for a
        certificate of this CA.
        """
        for entry in self.index():
            if entry.serial == certificate.serial_number:
                return "revoked" if entry.status == "R" else "valid"
        return "unknown"

    def issueCertificate(self, host, usage=None, keyType="rsa", days=CERTIFICATE_DAYS):
        """
        Issue a certificate for C{host}, with its key (made now unless it
        exists) and the next serial.

        @param usage: C{None} (server and client), C{"server"},
            C{"client"} or C{"ocsp"}.
        @param keyType: the type of a new key; an existing key of HOST is
            reused whatever its type, as ikectl does.
        @raise CAError: C{host} has a valid certificate already, or is not
            an address, host name or user@host.
        """
        if usage is not None and usage not in USAGES:
            raise CAError("unknown certificate usage '%s' (one of %s)" % (usage, ", ".join(USAGES)))
        self._requireExists()
        san = subjectAltNameFor(host, self.hostname)
        path = self.hostCertificatePath(host)
        if os.path.exists(path) and self.status(self.hostCertificate(host)) != "revoked":
            raise CAError("certificate for '%s' already exists in CA '%s'" % (host, self.name))
        caCertificate = self.certificate()
        caKey = self._key()
        self.createKey(host, keyType)
        hostKey = self.hostKey(host)
        serial = self._readCounter(self.serialPath)
        now = self._now()
        public = hostKey.public_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(caCertificate.subject)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_keyUsage(usage, public), critical=True)
            .add_extension(_extendedKeyUsage(usage), critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()), critical=False)
            .sign(caKey, _hashFor(caKey))
        )
        entries = self.index()
        entries.append(IndexEntry("V", certificate.not_valid_after_utc, None, serial, _subjectText(subject)))
        self._writeIndex(entries)
        writeFile(self.serialPath, (_hexSerial(serial + 1) + "\n").encode("ascii"))
        writeFile(path, _pem(certificate))
        return certificate

    def deleteCertificate(self, host):
        """
        Delete the certificate of C{host}, its key and its PKCS#12 export
        (ikectl's ca_delkey); the index keeps its record.
        """
        self._requireExists()
        found = False
        for path in (self.hostCertificatePath(host), self.hostKeyPath(host),
                     self._file("private", host + ".csr"), self._file("private", _exportName(host) + ".pfx")):
            try:
                os.unlink(path)
                found = True
            except FileNotFoundError:
                pass
        if not found:
            raise CAError("no certificate or key for '%s' in CA '%s'" % (host, self.name))

    def installCertificate(self, host, etcDir=DEFAULT_ETC_DIR):
        """
        Install the certificate of C{host} as certs/HOST.crt of the iked
        tree, and its key (L{installKey}).

        @return: the paths written.
        """
        self._requireExists()
        certificate = self.hostCertificate(host)
        written = self.installKey(host, etcDir)
        target = os.path.join(etcDir, "certs", host + ".crt")
        writeFile(target, _pem(certificate))
        return [target] + written

    def revoke(self, host):
        """
        Revoke the certificate of C{host} and write a new CRL.

        @return: the revoked certificate.
        @raise CAError: C{host} has no certificate, or it is revoked already.
        """
        self._requireExists()
        certificate = self.hostCertificate(host)
        entries = self.index()
        now = self._now()
        for entry in entries:
            if entry.serial == certificate.serial_number:
                if entry.status == "R":
                    raise CAError("certificate for '%s' is already revoked" % (host,))
                entry.status, entry.revoked = "R", now
                break
        else:
            entries.append(IndexEntry("R", certificate.not_valid_after_utc, now, certificate.serial_number,
                                      _subjectText(certificate.subject)))
        self._writeIndex(entries)
        self.writeCRL()
        return certificate

    def crl(self):
        """
        The current CRL.
        """
        self._requireExists()
        try:
            with open(self.crlPath, "rb") as f:
                return x509.load_pem_x509_crl(f.read())
        except FileNotFoundError:
            raise CAError("CA '%s' has no CRL" % (self.name,))

    def writeCRL(self, days=CRL_DAYS):
        """
        Sign a new CRL listing every revoked certificate of the index, with
        the next CRL number, and write it to ca.crl.
        """
        caCertificate = self.certificate()
        caKey = self._key()
        numberPath = self._file("crlnumber")
        number = self._readCounter(numberPath) if os.path.exists(numberPath) else 1
        now = self._now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(caCertificate.subject)
            .last_update(now)
            .next_update(now + datetime.timedelta(days=days))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()), critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for entry in self.index():
            if entry.status == "R":
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked).build()
                )
        crl = builder.sign(caKey, _hashFor(caKey))
        writeFile(self.crlPath, _pem(crl))
        writeFile(numberPath, (_hexSerial(number + 1) + "\n").encode("ascii"))
        return crl

    def hosts(self):
        """
        The hosts with a certificate file, sorted.
        """
        self._requireExists()
        return sorted(n[:-4] for n in os.listdir(self.path) if n.endswith(".crt") and n != "ca.crt")

    # -- install and export ------------------------------------------------

    def install(self, etcDir=DEFAULT_ETC_DIR):
        """
        Install the CA certificate as ca/ca.crt and the CRL as crls/ca.crl
        of the iked tree C{etcDir}.

        @return: the paths written.
        """
        self._requireExists()
        makeIkedTree(etcDir)
        written = [os.path.join(etcDir, "ca", "ca.crt")]
        writeFile(written[0], _pem(self.certificate()))
        if os.path.exists(self.crlPath):
            written.append(os.path.join(etcDir, "crls", "ca.crl"))
            writeFile(written[1], _pem(self.crl()))
        return written

    def export(self, outDir, host=None, peer=None, password=None):
        """
        Write C{ca.tgz} (or C{HOST.tgz}, colons made underscores) into
        C{outDir}: a tree to unpack into /etc/iked (C{tar -C /etc/iked
        -xzpf}) with ca/ca.crt, crls/ca.crl, export/ca.pfx (the CA
        certificate for Windows), export/peer.txt (C{peer}, the gateway to
        connect to) and, for a host, certs/HOST.crt, private/HOST.key,
        private/local.key, local.pub and export/HOST.pfx (key, certificate
        and CA certificate).  The PKCS#12 files are encrypted with
        C{password} (AES-256, PBES2), or not at all without one.

        @return: the tarball's path.
        """
        self._requireExists()
        caCertificate = self.certificate()
        if host is not None:
            certificate = self.hostCertificate(host)
            key = self.hostKey(host)
        encryption = serialization.NoEncryption()
        if password:
            encryption = serialization.BestAvailableEncryption(password.encode("utf-8"))
        oname = _exportName(host) if host is not None else "ca"
        caPfx = pkcs12.serialize_key_and_certificates(
            self.name.encode("utf-8"), None, None, [caCertificate], encryption)
        staging = tempfile.mkdtemp(prefix="ikectl.")
        try:
            os.chmod(staging, 0o755)
            for sub, mode in (("ca", 0o755), ("certs", 0o755), ("crls", 0o755), ("export", 0o755),
                              ("private", 0o700)):
                _makeDirectory(os.path.join(staging, sub), mode)
            if peer is not None:
                writeFile(os.path.join(staging, "export", "peer.txt"), peer.encode("utf-8"))
            writeFile(os.path.join(staging, "export", "ca.pfx"), caPfx)
            writeFile(os.path.join(staging, "ca", "ca.crt"), _pem(caCertificate))
            if os.path.exists(self.crlPath):
                writeFile(os.path.join(staging, "crls", "ca.crl"), _pem(self.crl()))
            if host is not None:
                pfx = pkcs12.serialize_key_and_certificates(
                    host.encode("utf-8"), key, certificate, [caCertificate], encryption)
                writeFile(self._file("private", oname + ".pfx"), pfx, 0o600)
                writeFile(os.path.join(staging, "export", oname + ".pfx"), pfx)
                with open(self.hostKeyPath(host), "rb") as f:
                    keyData = f.read()
                writeFile(os.path.join(staging, "private", host + ".key"), keyData, 0o600)
                writeFile(os.path.join(staging, "private", "local.key"), keyData, 0o600)
                writeFile(os.path.join(staging, "certs", host + ".crt"), _pem(certificate))
                writeFile(os.path.join(staging, "local.pub"), _publicPEM(key))
            tarball = os.path.join(outDir, oname + ".tgz")
            fd, temporary = tempfile.mkstemp(dir=outDir, prefix=".ikectl-")
            os.close(fd)
            try:
                with tarfile.open(temporary, "w:gz") as archive:
                    archive.add(staging, arcname=".", filter=_rootOwned)
                os.chmod(temporary, 0o600 if host is not None else 0o644)
                os.replace(temporary, tarball)
            except BaseException:
                if os.path.exists(temporary):
                    os.unlink(temporary)
                raise
        finally:
            shutil.rmtree(staging)
        return os.path.abspath(tarball)

    # -- listing -----------------------------------------------------------

    def describe(self, host=None):
        """
        Lines describing every certificate (the CA's first), or C{host}'s
        certificate in detail: what C{show ca NAME certificates [HOST]}
        prints.
        """
        self._requireExists()
        if host is not None:
            return _details(self.hostCertificate(host), self.status(self.hostCertificate(host)))
        lines = []
        certificates = [("ca", self.certificate(), "CA")]
        certificates += [(h, self.hostCertificate(h), None) for h in self.hosts()]
        for name, certificate, status in certificates:
            lines += _summary(certificate, status or self.status(certificate))
            lines.append("")
        return lines


def _exportName(host):
    # ikectl: colons are not valid characters in Windows file names.
    return host.replace(":", "_")


def _rootOwned(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _firstLine(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _fingerprint(certificate):
    return ":".join("%02X" % b for b in certificate.fingerprint(hashes.SHA256()))


def _summary(certificate, status):
    return [
        "subject=%s" % (_subjectText(certificate.subject),),
        "serial=%s" % (_hexSerial(certificate.serial_number),),
        "status=%s" % (status,),
        "SHA256 Fingerprint=%s" % (_fingerprint(certificate),),
        "notBefore=%s" % (certificate.not_valid_before_utc.strftime("%b %d %H:%M:%S %Y GMT"),),
        "notAfter=%s" % (certificate.not_valid_after_utc.strftime("%b %d %H:%M:%S %Y GMT"),),
    ]


def _generalName(name):
    if isinstance(name, x509.IPAddress):
        return "IP:%s" % (name.value,)
    if isinstance(name, x509.DNSName):
        return "DNS:%s" % (name.value,)
    if isinstance(name, x509.RFC822Name):
        return "email:%s" % (name.value,)
    return str(name.value)


def _details(certificate, status):
    lines = _summary(certificate, status)
    lines.insert(1, "issuer=%s" % (_subjectText(certificate.issuer),))
    lines.append("key=%s" % (keys.describeKey(certificate.public_key()),))
    for extension in certificate.extensions:
        value = extension.value
        if isinstance(value, x509.SubjectAlternativeName):
            lines.append("subjectAltName=%s" % (", ".join(_generalName(n) for n in value),))
        elif isinstance(value, x509.ExtendedKeyUsage):
            lines.append("extendedKeyUsage=%s" % (", ".join(
                getattr(o, "_name", None) if getattr(o, "_name", "Unknown OID") != "Unknown OID"
                else o.dotted_string for o in value),))
        elif isinstance(value, x509.KeyUsage):
            names = [n for n in ("digital_signature", "content_commitment", "key_encipherment",
                                 "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
                     if getattr(value, n)]
            lines.append("keyUsage=%s" % (", ".join(names),))
        elif isinstance(value, x509.BasicConstraints):
            lines.append("basicConstraints=CA:%s" % ("TRUE" if value.ca else "FALSE",))
    lines.append(_pem(certificate).decode("ascii").rstrip("\n"))
    return lines

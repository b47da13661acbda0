# -*- test-case-name: tests.test_auth_store -*-
"""
The credential store: iked's /etc/iked tree, and the decisions made with it.

Layout (iked(8) FILES; every path is relative to C{root}):
  - ca/            trusted CA certificates (PEM, several per file allowed;
                   DER accepted too, which iked 7.2 does not)
  - certs/         local certificates, and peers' certificates
  - crls/          CRLs (PEM or DER)
  - private/local.key  the local private key: RSA, EC P-256/P-384/P-521 or
                   Ed25519; PEM or DER; PKCS#8, PKCS#1 or SEC1; unencrypted;
                   owned by us or root and not accessible by group or others
  - local.pub      the local public key, for copying to peers (iked derives
                   its public key from local.key; we only warn if local.pub
                   does not match it)
  - pubkeys/{ipv4,ipv6,fqdn,ufqdn}/<ID>  trusted raw public keys, named by
                   the peer's ID (PEM SubjectPublicKeyInfo or PKCS#1 RSA)

Everything is read by L{CredentialStore.reload} (at start and on
C{ikectl reload}); a file that cannot be read or parsed, or a private key
with loose permissions, is logged with its path and skipped (also listed in
L{CredentialStore.loadErrors}); it never stops the daemon.  Unlike iked,
which opens pubkeys/ files when a peer authenticates, pubkeys/ is read at
reload too.

Decisions (all synchronous and local), following iked 7.2's ca.c:

Local credential (L{CredentialStore.localCredential}): the local ID is the
policy's srcid, else the host name as FQDN (ids.defaultLocalIdentity).  A
local certificate is a certificate in certs/ that matches the ID (ASN1_DN:
the subject; other types: a subjectAltName entry) and holds local.key's
public key.  Among several, one issued (directly or through intermediates)
by a CA named in the peer's CERTREQ wins, in the CERTREQ's order; then one
valid now; then file order.  The chain sent is the certificate and its
intermediates from certs/ and ca/ (not the self-signed root).  Without a
matching certificate we authenticate with the raw public key, as iked does.

Peer verification (L{CredentialStore.verifyPeer}):
  1. if the policy has a dstid, the peer's ID must match it;
  2. an X.509 CERT payload (the first CERT payload; later X.509 ones are
     intermediates):
     a. if its public key is the trusted raw key in pubkeys/ for the
        peer's ID, it is accepted as is (iked: "in public key file, ok");
     b. the peer's ID must be in the certificate: ASN1_DN equal to the
        subject, IPV4/IPV6/FQDN/UFQDN present in the subjectAltName (iked
        does not look at the subject's CN for these, nor at the
        subjectAltName for a DN);
     c. the chain must verify with OpenSSL (pyOpenSSL's X509Store) to a
        certificate in ca/, at the given time, with the peer's other
        certificates and certs/ as untrusted intermediates;
        cert_partial_chain (PARTIAL_CHAIN) lets any certificate in ca/,
        even an intermediate or the peer's own, end the chain.
     CRLs: as iked, revocation is checked only once at least one CRL is
     loaded, and then for every certificate of every chain (CRL_CHECK and
     CRL_CHECK_ALL): a CA without a CRL then fails verification
     ("unable to get certificate CRL"), as does an expired CRL.  Fail
     closed, the same as iked: install a CRL for every CA, or none.
  3. no CERT payload, or a raw public key (RAW_RSA_KEY 11, iked's ECDSA 201
     or RAW_PUBLIC_KEY 15): the key in pubkeys/ for the peer's ID (IPV4,
     IPV6, FQDN and UFQDN only); a raw key sent must equal it.
  Every refusal raises L{AuthenticationFailed} with the reason.

What is worked out once (per reload, which drops it all): the CERTREQ
authorities; per local ID, the certificates that can stand for it and
their paths to trust (the choice by CERTREQ and time is made at each use);
the OpenSSL store of ca/ and crls/ (one per verification second: OpenSSL
keeps the first time a store is given); and the chains verified, keyed by
the SHA-256 of the CERT payloads sent (L{MAX_VERIFIED_CHAINS} of them).  A
verified chain is reused only while no notBefore/notAfter of a certificate
of ca/, certs/ or the peer's, and no lastUpdate/nextUpdate of a CRL, lies
between the time it was verified and now: every time check OpenSSL makes
then comes out the same; the ID and pubkeys/ checks are made each time.
A change of cert_partial_chain drops the verified chains too.

Not copied from iked 7.2: it trusts a certificate in certs/ that matches
the peer's ID without validating it, whatever the peer sent; here certs/
only supplies intermediates and everything the peer presents is verified.
Use pubkeys/ to pin a peer's key.  HASH_URL CERT payloads are refused.
"""

import bisect
import datetime
import hashlib
import os
import socket

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.logger import Logger

from ikedtx.auth import keys, strength
from ikedtx.auth.errors import (
    AuthenticationFailed,
    InvalidIdentity,
    InvalidKey,
    KeyMethodMismatch,
    MalformedCertificateRequest,
    NoPrivateKey,
    UnsupportedCertificateEncoding,
)
from ikedtx.auth.ids import PUBKEY_DIRECTORIES, IKEIdentity, defaultLocalIdentity, namesEqual, renderDN
from ikedtx.files import PRIVATE_KEY, secrecyProblem
from ikedtx.wire.constants import CertEncoding, IdType

SHA1_LENGTH = 20
# A seam for tests: files that cannot be read, even by root.
_open = open
_SHA256 = SHA256()
MAX_PEER_CERTIFICATES = 16

# ikeauth keywords that mean "authenticate with a signature"; "eap" is the
# responder's side of EAP (it signs, the initiator does EAP).
_ANY_SIGNATURE = ("signature", "eap", None)


def spkiHash(certificate):
    """
    The CERTREQ authority value of a CA certificate: SHA-1 of its DER
    SubjectPublicKeyInfo (RFC 7296 3.7).
    """
    return hashlib.sha1(keys.subjectPublicKeyInfo(certificate.public_key())).digest()


def parseCertificateRequest(data):
    """
    Split the Certification Authority field of an X.509 CERTREQ payload
    into its SHA-1 hashes.

    @raise MalformedCertificateRequest: the length is not a multiple of 20.
    """
    data = bytes(data)
    if len(data) % SHA1_LENGTH:
        raise MalformedCertificateRequest(
            "CERTREQ authority data of %d octets is not a list of SHA-1 hashes" % (len(data),)
        )
    return [data[i : i + SHA1_LENGTH] for i in range(0, len(data), SHA1_LENGTH)]


def encodeCertificateRequest(authorities):
    """
    The Certification Authority field of a CERTREQ payload: the hashes
    concatenated.
    """
    for a in authorities:
        if len(a) != SHA1_LENGTH:
            raise ValueError("a CERTREQ authority is a 20-octet SHA-1 hash")
    return b"".join(authorities)


def subjectAltNameIdentities(certificate):
    """
    The IKE identities a certificate's subjectAltName holds, in order:
    dNSName as FQDN, rfc822Name as UFQDN, iPAddress as IPV4/IPV6 (what
    iked's ca_x509_subjectaltname_do considers).  Entries that are not valid
    IDs are left out.

    @raise ValueError: the extension is malformed.
    """
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    identities = []
    for entry in extension.value:
        try:
            if isinstance(entry, x509.DNSName):
                identities.append(IKEIdentity.fromFQDN(entry.value))
            elif isinstance(entry, x509.RFC822Name):
                identities.append(IKEIdentity.fromUFQDN(entry.value))
            elif isinstance(entry, x509.IPAddress) and not hasattr(entry.value, "network_address"):
                identities.append(IKEIdentity.fromAddress(entry.value))
        except InvalidIdentity:
            continue
    return identities


def certificateMatchesIdentity(certificate, identity):
    """
    Whether C{identity} is in C{certificate} as iked requires: an ASN1_DN
    must equal the subject; an IPV4, IPV6, FQDN or UFQDN must be in the
    subjectAltName; no other ID type matches a certificate.
    """
    if identity.idType == IdType.DER_ASN1_DN:
        return namesEqual(identity.name, certificate.subject)
    if identity.idType not in PUBKEY_DIRECTORIES:
        return False
    try:
        return identity in subjectAltNameIdentities(certificate)
    except ValueError:
        return False


def _describe(certificate):
    return renderDN(certificate.subject) or "<empty subject>"


def _isSelfIssued(certificate):
    return certificate.issuer == certificate.subject


def _issuedBy(certificate, issuer):
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _utc(now):
    if now is None:
        return None
    if now.tzinfo is None:
        return now.replace(tzinfo=datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc)


def _certificatePayloads(certificates):
    return [(CertEncoding.X509_CERT_SIGNATURE, c.public_bytes(Encoding.DER)) for c in certificates]


# Local identities whose certificates L{CredentialStore} keeps worked out;
# they come from the configuration, this only bounds a surprise.
_MAX_CACHED_IDENTITIES = 256


class _LocalChain:
    """
    A local certificate and what choosing and sending it takes.

    @ivar certificates: the certificate, then its intermediates.
    @ivar authorities: the SHA-1 CERTREQ hashes of its issuers up to the
        trust anchor, nearest first.
    @ivar notBefore: the certificate's notBefore (aware).
    @ivar notAfter: its notAfter.
    @ivar payloads: the CERT payloads sending it, as (encoding, DER).
    """

    __slots__ = ("certificates", "authorities", "notBefore", "notAfter", "payloads")

    def __init__(self, certificates, authorities):
        self.certificates = certificates
        self.authorities = authorities
        self.notBefore = certificates[0].not_valid_before_utc
        self.notAfter = certificates[0].not_valid_after_utc
        self.payloads = tuple(_certificatePayloads(certificates))


class _LocalCandidates:
    """
    The local certificates for one identity (L{CredentialStore._localCandidates}).

    @ivar privateKey: the local key they were chosen for.
    @ivar chains: L{_LocalChain}s, in certs/ order.
    @ivar otherKey: the subjects of the certificates naming the identity
        with another key (logged at each use, as before the cache).
    """

    __slots__ = ("privateKey", "chains", "otherKey")

    def __init__(self, privateKey, chains, otherKey):
        self.privateKey = privateKey
        self.chains = chains
        self.otherKey = otherKey


class LocalCredential:
    """
    What we authenticate with: the private key, the ID to send, and the
    certificates to send (none for raw public key authentication).

    @ivar identity: the L{IKEIdentity} to put in IDi/IDr.
    @ivar privateKey: the cryptography private key (never logged).
    @ivar certificates: list of x509.Certificate: the end-entity certificate
        first, then intermediates; empty for raw public key authentication.
    @ivar keyDescription: e.g. C{"RSA-2048"}, C{"ECDSA P-256"}.
    @ivar authMethod: the AUTH method for this key without RFC 7427
        (AuthMethod.RSA_SIG, ECDSA_SHA*_P*, or DIGITAL_SIGNATURE for
        Ed25519, which has no other).
    @ivar policyMethod: the policy's ikeauth keyword this was made for.
    """

    def __init__(self, identity, privateKey, certificates, policyMethod, payloads=None):
        """
        @param payloads: the certificates' CERT payloads, when the caller
            has them already (L{_LocalChain}).
        """
        self.identity = identity
        self.privateKey = privateKey
        self.certificates = list(certificates)
        self.keyDescription = keys.describeKey(privateKey)
        self.authMethod = keys.legacyAuthMethod(privateKey)
        self.policyMethod = policyMethod
        self._payloads = payloads

    @property
    def certificate(self):
        """
        The end-entity certificate, or C{None} for raw public key
        authentication.
        """
        return self.certificates[0] if self.certificates else None

    @property
    def publicKey(self):
        return self.privateKey.public_key()

    def certificatePayloads(self, rawKeyEncoding=None, sendRawKey=True):
        """
        The CERT payloads to send, as (encoding, data) pairs: each
        certificate as X509_CERT_SIGNATURE DER, or, without certificates,
        the raw public key (iked's encodings unless C{rawKeyEncoding} asks
        for another, see L{keys.encodeRawPublicKey}); nothing at all if
        C{sendRawKey} is false.
        """
        if self.certificates:
            if self._payloads is not None:
                return list(self._payloads)
            return _certificatePayloads(self.certificates)
        if not sendRawKey:
            return []
        return [keys.encodeRawPublicKey(self.privateKey, rawKeyEncoding)]

    def __repr__(self):
        return "<LocalCredential %s %s %s>" % (
            self.identity,
            self.keyDescription,
            ("certificate " + _describe(self.certificate)) if self.certificates else "raw public key",
        )


class PeerCredential:
    """
    A peer's verified credential: the public key to check its AUTH with.

    @ivar identity: the peer's L{IKEIdentity}.
    @ivar publicKey: the peer's public key.
    @ivar certificate: the peer's end-entity x509.Certificate, or C{None}
        for raw public key authentication.
    @ivar chain: the verified chain, end entity first and trust anchor
        last; C{[certificate]} when a trusted raw key vouched for the
        certificate; empty for raw public keys.
    @ivar source: how it was trusted, for logs: C{"certificate"},
        C{"pubkeys/fqdn/host.example.com"}.
    """

    def __init__(self, identity, publicKey, certificate, chain, source):
        self.identity = identity
        self.publicKey = publicKey
        self.certificate = certificate
        self.chain = list(chain)
        self.source = source

    @property
    def keyDescription(self):
        return keys.describeKey(self.publicKey)

    def __repr__(self):
        return "<PeerCredential %s %s via %s>" % (self.identity, self.keyDescription, self.source)


class _LoadedFile:
    __slots__ = ("path", "objects")

    def __init__(self, path, objects):
        self.path = path
        self.objects = objects


class CredentialStore:
    """
    iked's /etc/iked tree in memory.

    @ivar root: the directory (iked: /etc/iked).
    @ivar certPartialChain: iked.conf C{set cert_partial_chain}; may be
        changed at any time (it is read on each verification).
    @ivar trustedCertificates: x509.Certificates from ca/.
    @ivar certificates: x509.Certificates from certs/.
    @ivar crls: x509.CertificateRevocationLists from crls/.
    @ivar privateKey: from private/local.key, or C{None}.
    @ivar localPublicKey: from local.pub, or C{None}.
    @ivar trustedPublicKeys: dict L{IKEIdentity} -> public key, from pubkeys/.
    @ivar loadErrors: list of (path, reason) of files skipped by the last
        reload.
    """

    _log = Logger()

    def __init__(self, root="/etc/iked", certPartialChain=False, hostname=None):
        """
        @param hostname: the host name for the default local ID; C{None}
            asks the system each time.
        """
        self.root = root
        self.certPartialChain = certPartialChain
        self._hostname = hostname
        self.reload()

    # -- loading ---------------------------------------------------------

    def reload(self):
        """
        Reread the whole tree.  Bad files are logged and skipped.
        """
        self.loadErrors = []
        trusted = self._loadDirectory("ca", self._parseCertificates)
        self.trustedCertificates = self._dedupe(c for f in trusted for c in f.objects)
        certs = self._loadDirectory("certs", self._parseCertificates)
        self.certificates = self._dedupe(c for f in certs for c in f.objects)
        crls = self._loadDirectory("crls", self._parseCRL)
        self.crls = [c for f in crls for c in f.objects]
        self.privateKey = self._loadPrivateKey()
        self.localPublicKey = self._loadLocalPublicKey()
        self.trustedPublicKeys = self._loadPublicKeys()
        self.ocspResponders = self._loadOCSPResponders()
        self._verification = None
        self._authorities = None
        self._localChains = {}
        self._log.info(
            "{root}: {cas} CA certificate(s), {certs} certificate(s), {crls} CRL(s), "
            "{pubkeys} trusted public key(s), local key {key}",
            root=self.root,
            cas=len(self.trustedCertificates),
            certs=len(self.certificates),
            crls=len(self.crls),
            pubkeys=len(self.trustedPublicKeys),
            key=keys.describeKey(self.privateKey) if self.privateKey is not None else "none",
        )

    def _path(self, *parts):
        return os.path.join(self.root, *parts)

    def _loadOCSPResponders(self):
        """
        The certificates of ocsp/responder.crt (iked's trusted OCSP
        signers), read with the rest of the tree so that a worker without
        access to the files has them; none when the file is absent.
        """
        path = self._path("ocsp", "responder.crt")
        if not os.path.exists(path):
            return []
        data = self._read(path)
        if data is None:
            return []
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as e:
            self._skip(path, "not PEM certificates (%s)" % (e,))
            return []

    def _skip(self, path, reason):
        self.loadErrors.append((path, reason))
        self._log.error("{path}: {reason}; skipped", path=path, reason=reason)

    def _read(self, path):
        try:
            with _open(path, "rb") as f:
                return f.read()
        except OSError as e:
            self._skip(path, "cannot read (%s)" % (e.strerror or e,))
            return None

    def _loadDirectory(self, subdir, parse):
        directory = self._path(subdir)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            self._log.debug("{directory} does not exist", directory=directory)
            return []
        except OSError as e:
            self._skip(directory, "cannot list (%s)" % (e.strerror or e,))
            return []
        loaded = []
        for fileName in names:
            path = os.path.join(directory, fileName)
            if not os.path.isfile(path):
                # iked takes regular files and symbolic links; a link to
                # something else (or dangling) is of no use either.
                if os.path.islink(path):
                    self._skip(path, "symbolic link to no regular file")
                continue
            data = self._read(path)
            if data is None:
                continue
            try:
                objects = parse(data)
            except ValueError as e:
                self._skip(path, str(e))
                continue
            self._log.debug("loaded {path}", path=path)
            loaded.append(_LoadedFile(path, objects))
        return loaded

    @staticmethod
    def _parseCertificates(data):
        try:
            if b"-----BEGIN" in data:
                certificates = x509.load_pem_x509_certificates(data)
            else:
                certificates = [x509.load_der_x509_certificate(data)]
            for c in certificates:
                # Parse the extensions now: cryptography does it lazily and
                # a malformed one would otherwise surface mid-handshake.
                c.extensions
        except ValueError as e:
            raise ValueError("malformed certificate (%s)" % (str(e).splitlines()[0][:120],))
        return certificates

    @staticmethod
    def _parseCRL(data):
        try:
            if b"-----BEGIN" in data:
                crl = x509.load_pem_x509_crl(data)
            else:
                crl = x509.load_der_x509_crl(data)
            crl.extensions
        except ValueError as e:
            raise ValueError("malformed CRL (%s)" % (str(e).splitlines()[0][:120],))
        return [crl]

    @staticmethod
    def _dedupe(certificates):
        seen = set()
        unique = []
        for c in certificates:
            fingerprint = c.fingerprint(_SHA256)
            if fingerprint not in seen:
                seen.add(fingerprint)
                unique.append(c)
        return unique

    def _loadPrivateKey(self):
        path = self._path("private", "local.key")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._log.info("{path} does not exist: no public key authentication", path=path)
            return None
        except OSError as e:
            self._skip(path, "cannot stat (%s)" % (e.strerror or e,))
            return None
        problem = secrecyProblem(st, PRIVATE_KEY)
        if problem is not None:
            self._skip(path, problem)
            return None
        data = self._read(path)
        if data is None:
            return None
        try:
            key = keys.loadPrivateKey(data)
        except InvalidKey as e:
            self._skip(path, str(e))
            return None
        weak = strength.keyStrengthProblem(key)
        if weak is not None:
            self._skip(path, weak)
            return None
        self._log.info("loaded local {kind} key from {path}", kind=keys.describeKey(key), path=path)
        return key

    def _loadLocalPublicKey(self):
        path = self._path("local.pub")
        if not os.path.exists(path):
            return None
        data = self._read(path)
        if data is None:
            return None
        try:
            key = keys.loadPublicKey(data)
        except InvalidKey as e:
            self._skip(path, str(e))
            return None
        if self.privateKey is not None and not keys.samePublicKey(key, self.privateKey):
            self._log.warn(
                "{path} is not the public key of private/local.key; peers holding it will not "
                "authenticate us",
                path=path,
            )
        return key

    def _loadPublicKeys(self):
        trusted = {}
        for idType, subdir in sorted(PUBKEY_DIRECTORIES.items()):
            directory = self._path("pubkeys", subdir)
            try:
                names = sorted(os.listdir(directory))
            except FileNotFoundError:
                continue
            except OSError as e:
                self._skip(directory, "cannot list (%s)" % (e.strerror or e,))
                continue
            for fileName in names:
                path = os.path.join(directory, fileName)
                if not os.path.isfile(path):
                    continue
                try:
                    identity = IKEIdentity.fromConfig(idType, fileName)
                except InvalidIdentity as e:
                    self._skip(path, "file name is not a valid %s ID (%s)" % (subdir, e))
                    continue
                data = self._read(path)
                if data is None:
                    continue
                try:
                    key = keys.loadPublicKey(data)
                except InvalidKey as e:
                    self._skip(path, str(e))
                    continue
                weak = strength.keyStrengthProblem(key)
                if weak is not None:
                    self._skip(path, weak)
                    continue
                if identity in trusted:
                    self._skip(path, "a second public key for %s" % (identity,))
                    continue
                trusted[identity] = key
                self._log.debug("trusting {kind} key for {id} from {path}", kind=keys.describeKey(key), id=identity, path=path)
        return trusted

    # -- queries ---------------------------------------------------------

    def certificateRequestAuthorities(self):
        """
        The CERTREQ authorities we send: the SHA-1 hash of each ca/
        certificate's SubjectPublicKeyInfo, in load order, without
        duplicates.
        """
        if getattr(self, "_authorities", None) is None:
            hashes = []
            for c in self.trustedCertificates:
                h = spkiHash(c)
                if h not in hashes:
                    hashes.append(h)
            self._authorities = hashes
        return list(self._authorities)

    def certificateRequestData(self):
        """
        L{certificateRequestAuthorities} concatenated: the CERTREQ payload's
        Certification Authority field (empty when ca/ is).
        """
        return encodeCertificateRequest(self.certificateRequestAuthorities())

    def trustedPublicKey(self, identity):
        """
        The public key trusted for C{identity} from pubkeys/, or C{None}.
        """
        return self.trustedPublicKeys.get(identity)

    def certstoreInfo(self):
        """
        Lines like iked's C{ikectl show certstore}: C{"CA: /C=.../CN=..."}
        and C{"CERT: ..."}.
        """
        return ["CA: " + _describe(c) for c in self.trustedCertificates] + [
            "CERT: " + _describe(c) for c in self.certificates
        ]

    def hostname(self):
        return self._hostname if self._hostname is not None else socket.gethostname()

    # -- local credential ------------------------------------------------

    def localCredential(self, srcId=None, authMethod="signature", certreqAuthorities=(), now=None):
        """
        What to authenticate with.

        @param srcId: the policy's srcid as an L{IKEIdentity}, or C{None}
            for the default (the host name as FQDN).
        @param authMethod: the policy's ikeauth keyword: C{"signature"} (or
            C{None}: iked's default, any signature), C{"eap"} (we are the
            EAP responder and sign), C{"rsa"}, C{"ecdsa256"},
            C{"ecdsa384"}, C{"ecdsa521"}, C{"rfc7427"}.
        @param certreqAuthorities: the SHA-1 hashes the peer's CERTREQ
            payloads named (see L{parseCertificateRequest}), in order.
        @param now: the time to prefer valid certificates at (default: now).

        @raise NoPrivateKey: there is no usable private/local.key.
        @raise KeyMethodMismatch: the method does not fit the key.
        @raise ValueError: C{authMethod} is not a signature method.
        """
        method = "signature" if authMethod in _ANY_SIGNATURE else authMethod
        if method not in keys.SIGNATURE_METHODS:
            raise ValueError("not a signature authentication method: %r" % (authMethod,))
        if self.privateKey is None:
            raise NoPrivateKey("no usable local private key (%s)" % (self._path("private", "local.key"),))
        if not keys.keyFitsMethod(self.privateKey, method):
            raise KeyMethodMismatch(method, keys.describeKey(self.privateKey))
        identity = srcId if srcId is not None else defaultLocalIdentity(self.hostname())
        now = _utc(now) or datetime.datetime.now(datetime.timezone.utc)
        chain = self._localChain(identity, list(certreqAuthorities), now)
        if chain is None:
            self._log.info(
                "no local certificate for {id}: using the raw {kind} public key", id=identity,
                kind=keys.describeKey(self.privateKey),
            )
            return LocalCredential(identity, self.privateKey, [], method)
        return LocalCredential(identity, self.privateKey, chain.certificates, method, chain.payloads)

    def _localChain(self, identity, requested, now):
        candidates = self._localCandidates(identity)
        for subject in candidates.otherKey:
            self._log.info(
                "certificate {subject} matches {id} but not the local key; ignored",
                subject=subject,
                id=identity,
            )
        best = None
        bestRank = None
        for index, candidate in enumerate(candidates.chains):
            asked = [requested.index(a) for a in candidate.authorities if a in requested] if requested else ()
            valid = candidate.notBefore <= now <= candidate.notAfter
            rank = (min(asked) if asked else len(requested), 0 if valid else 1, index)
            if bestRank is None or rank < bestRank:
                best, bestRank = candidate, rank
        return best

    def _localCandidates(self, identity):
        """
        The certificates of certs/ that name C{identity} and hold the local
        key, each with its path to trust: what L{_localChain} chooses from,
        worked out once per reload and identity (and per local key, which a
        failed reload puts back).
        """
        cache = self.__dict__.setdefault("_localChains", {})
        cached = cache.get(identity)
        if cached is not None and cached.privateKey is self.privateKey:
            return cached
        chains = []
        otherKey = []
        for c in self.certificates:
            if not certificateMatchesIdentity(c, identity):
                continue
            if not keys.samePublicKey(c.public_key(), self.privateKey):
                otherKey.append(_describe(c))
                continue
            path, anchor = self._pathToTrust(c)
            authorities = [spkiHash(i) for i in path[1:]]
            if anchor is not None:
                authorities.append(spkiHash(anchor))
            chains.append(_LocalChain(path, authorities))
        cached = _LocalCandidates(self.privateKey, chains, otherKey)
        if len(cache) >= _MAX_CACHED_IDENTITIES:
            cache.clear()
        cache[identity] = cached
        return cached

    def _pathToTrust(self, leaf):
        """
        Follow issuers from C{leaf} through certs/ and ca/.

        @return: (the path: C{leaf} and the intermediates to send, the
            self-issued trust anchor it reaches or C{None})
        """
        path = [leaf]
        current = leaf
        pool = self.certificates + self.trustedCertificates
        while not _isSelfIssued(current) and len(path) < 10:
            issuer = next((c for c in pool if c not in path and _issuedBy(current, c)), None)
            if issuer is None:
                return path, None
            if _isSelfIssued(issuer):
                return path, issuer
            path.append(issuer)
            current = issuer
        return path, None

    # -- peer verification -----------------------------------------------

    def verifyPeer(self, peerId, certificates=(), expectedId=None, now=None):
        """
        Decide whether C{peerId} with the CERT payloads C{certificates} is
        authentic, and with which public key to check its AUTH payload.

        @param peerId: the peer's L{IKEIdentity} (from IDi/IDr).
        @param certificates: the peer's CERT payloads, in order, as
            (encoding, data) pairs.
        @param expectedId: the policy's dstid, or C{None}.
        @param now: the time to check validity at (default: now).

        @rtype: L{PeerCredential}
        @raise AuthenticationFailed: with the reason.
        """
        if expectedId is not None and peerId != expectedId:
            raise AuthenticationFailed("peer ID %s does not match the policy's dstid %s" % (peerId, expectedId))
        certificates = [(int(encoding), bytes(data)) for encoding, data in certificates]
        if len(certificates) > MAX_PEER_CERTIFICATES:
            raise AuthenticationFailed("%d CERT payloads, more than %d" % (len(certificates), MAX_PEER_CERTIFICATES))
        for encoding, _ in certificates:
            if encoding in (CertEncoding.HASH_URL_X509_CERT, CertEncoding.HASH_URL_X509_BUNDLE):
                raise UnsupportedCertificateEncoding(
                    "CERT payload of encoding %s: certificate lookup by hash and URL is not supported"
                    % (CertEncoding(encoding).name,),
                    encoding,
                )
        if not certificates:
            return self._verifyRawKey(peerId, None)
        encoding, data = certificates[0]
        if encoding == CertEncoding.X509_CERT_SIGNATURE:
            return self._verifyCertificate(peerId, data, certificates[1:], _utc(now))
        if encoding in keys.RAW_KEY_ENCODINGS:
            try:
                sent = keys.decodeRawPublicKey(encoding, data)
            except InvalidKey as e:
                raise AuthenticationFailed("peer %s sent a malformed raw public key: %s" % (peerId, e))
            return self._verifyRawKey(peerId, sent)
        raise UnsupportedCertificateEncoding(
            "CERT payload of unsupported encoding %s" % (_encodingName(encoding),), encoding
        )

    def _verifyRawKey(self, peerId, sent):
        if peerId.pubkeyPath is None:
            raise AuthenticationFailed(
                "no certificate from peer %s, and %s IDs cannot name a trusted public key"
                % (peerId, peerId.typeName)
            )
        trusted = self.trustedPublicKey(peerId)
        source = "pubkeys/" + peerId.pubkeyPath
        if trusted is None:
            raise AuthenticationFailed("no trusted public key for peer %s (%s)" % (peerId, source))
        if sent is not None and not keys.samePublicKey(sent, trusted):
            raise AuthenticationFailed("public key sent by peer %s is not the one in %s" % (peerId, source))
        return PeerCredential(peerId, trusted, None, [], source)

    def _verifyCertificate(self, peerId, leafData, others, now):
        now = now or datetime.datetime.now(datetime.timezone.utc)
        verifier = self._verificationStore()
        for position, (encoding, _) in enumerate(others, 2):
            if encoding != CertEncoding.X509_CERT_SIGNATURE:
                self._log.debug(
                    "ignoring CERT payload {position} of encoding {encoding} from {peer}",
                    position=position,
                    encoding=_encodingName(encoding),
                    peer=peerId,
                )
        cacheKey = _chainKey(leafData, others)
        verified = verifier.lookup(cacheKey, now)
        if verified is not None:
            # These certificates passed every check below at a time no
            # notBefore, notAfter, lastUpdate or nextUpdate of the store's
            # or the peer's certificates and CRLs separates from now: only
            # what depends on the peer's ID is left.
            leaf, publicKey = verified.leaf, verified.publicKey
        else:
            leaf, intermediates = self._parsePeerCertificates(peerId, leafData, others)
            problem = strength.certificateKeyProblem(leaf) or strength.usageProblem(leaf)
            if problem is not None:
                raise AuthenticationFailed("certificate %s of peer %s: %s" % (_describe(leaf), peerId, problem))
            publicKey = leaf.public_key()

        trusted = self.trustedPublicKey(peerId)
        if trusted is not None and keys.samePublicKey(trusted, publicKey):
            return PeerCredential(peerId, publicKey, leaf, [leaf], "pubkeys/" + peerId.pubkeyPath)

        matches = verified.matches(peerId) if verified is not None else certificateMatchesIdentity(leaf, peerId)
        if not matches:
            subject = _describe(leaf)
            if peerId.idType == IdType.DER_ASN1_DN:
                raise AuthenticationFailed("peer ID %s is not the subject of its certificate %s" % (peerId, subject))
            raise AuthenticationFailed(
                "peer ID %s is not in the subjectAltName of its certificate %s" % (peerId, subject)
            )
        if verified is None:
            chain = self._verifyChain(leaf, leafData, intermediates, now, verifier)
            for issuer in chain[1:]:
                problem = strength.certificateKeyProblem(issuer)
                if problem is not None:
                    raise AuthenticationFailed(
                        "certificate %s: its issuer %s: %s" % (_describe(leaf), _describe(issuer), problem))
            verified = verifier.remember(cacheKey, _VerifiedChain(leaf, publicKey, chain), intermediates, now)
        return PeerCredential(peerId, publicKey, leaf, verified.chain, "certificate")

    def _parsePeerCertificates(self, peerId, leafData, others):
        """
        The peer's end-entity certificate and the intermediates it sent
        (CERT payloads of other encodings left out), parsed.
        """
        try:
            leaf = self._parseCertificates(leafData)[0]
        except ValueError as e:
            raise AuthenticationFailed("peer %s sent a %s" % (peerId, e))
        intermediates = []
        for position, (encoding, data) in enumerate(others, 2):
            if encoding != CertEncoding.X509_CERT_SIGNATURE:
                continue
            try:
                intermediates.append((self._parseCertificates(data)[0], data))
            except ValueError as e:
                raise AuthenticationFailed("peer %s sent a %s in CERT payload %d" % (peerId, e, position))
        return leaf, intermediates

    def _verificationStore(self):
        """
        The L{_Verifier} of ca/, crls/ and certs/, built once per reload
        (and per cert_partial_chain setting) rather than per verification;
        the chains it verified go with it.
        """
        cached = getattr(self, "_verification", None)
        if cached is not None and cached.partialChain == self.certPartialChain:
            return cached
        self._verification = _Verifier(self.trustedCertificates, self.certificates, self.crls, self.certPartialChain)
        return self._verification

    def _verifyChain(self, leaf, leafData, intermediates, now, verifier):
        # pyOpenSSL only once a certificate is verified (ikedtx.lean)
        from OpenSSL import crypto

        try:
            untrusted = [crypto.load_certificate(crypto.FILETYPE_ASN1, data) for _, data in intermediates]
            untrusted += verifier.local
            peer = crypto.load_certificate(crypto.FILETYPE_ASN1, leafData)
        except crypto.Error as e:
            raise AuthenticationFailed("certificate %s: cannot be verified (%s)" % (_describe(leaf), e))
        context = crypto.X509StoreContext(verifier.storeAt(now), peer, untrusted)
        try:
            verified = context.get_verified_chain()
        except crypto.X509StoreContextError as e:
            failing = e.certificate.to_cryptography() if e.certificate is not None else leaf
            where = _describe(leaf)
            if failing.fingerprint(_SHA256) != leaf.fingerprint(_SHA256):
                where += " (at %s)" % (_describe(failing),)
            raise AuthenticationFailed("certificate %s: %s" % (where, e.args[0]))
        # The chain holds the objects we have already where it can (the
        # leaf, the peer's intermediates, ca/ and certs/), so that the
        # IKE SAs verified with one CA share it.
        sent = {data: certificate for certificate, data in intermediates}
        sent[leafData] = leaf
        chain = []
        for c in verified:
            der = crypto.dump_certificate(crypto.FILETYPE_ASN1, c)
            chain.append(sent.get(der) or verifier.known.get(der) or c.to_cryptography())
        return chain

    def __getstate__(self):
        # The caches are rebuilt where the store is unpickled (the
        # privilege-separated worker).
        state = dict(self.__dict__)
        state["_verification"] = None
        state["_localChains"] = {}
        state["_authorities"] = None
        return state


def _chainKey(leafData, others):
    """
    What identifies the certificates a peer sent: the SHA-256 of the first
    CERT payload's data, then of each other payload's encoding and data,
    each with its length.
    """
    h = hashlib.sha256(len(leafData).to_bytes(4, "big"))
    h.update(leafData)
    for encoding, data in others:
        h.update(encoding.to_bytes(2, "big") + len(data).to_bytes(4, "big"))
        h.update(data)
    return h.digest()


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_SECOND = datetime.timedelta(seconds=1)


def _seconds(when):
    """
    The POSIX time OpenSSL verifies at for C{when} (aware): whole seconds,
    as pyOpenSSL's X509Store.set_time passes it.
    """
    return (when - _EPOCH) // _SECOND


def _certificateTimes(certificate):
    return (_seconds(certificate.not_valid_before_utc), _seconds(certificate.not_valid_after_utc))


# Verified chains one store keeps: each an end-entity certificate and its
# chain (a few KB); past this the oldest go.
MAX_VERIFIED_CHAINS = 4096


class _VerifiedChain:
    """
    A peer's certificates that passed every check but the ID's.

    @ivar leaf: the end-entity certificate.
    @ivar publicKey: its key.
    @ivar chain: the verified chain, end entity first.
    @ivar after: the POSIX second after which it holds (exclusive).
    @ivar before: the POSIX second before which it holds (exclusive).
    """

    __slots__ = ("leaf", "publicKey", "chain", "after", "before", "_identities")

    def __init__(self, leaf, publicKey, chain):
        self.leaf = leaf
        self.publicKey = publicKey
        self.chain = chain
        self.after = self.before = None
        self._identities = None

    def matches(self, identity):
        """
        L{certificateMatchesIdentity} for the leaf, with its subjectAltName
        read once.
        """
        if identity.idType == IdType.DER_ASN1_DN or identity.idType not in PUBKEY_DIRECTORIES:
            return certificateMatchesIdentity(self.leaf, identity)
        if self._identities is None:
            try:
                self._identities = frozenset(subjectAltNameIdentities(self.leaf))
            except ValueError:
                self._identities = frozenset()
        return identity in self._identities


class _Verifier:
    """
    What verifying peers' chains takes, made once per reload (and
    cert_partial_chain setting), and the chains verified with it.

    @ivar partialChain: the cert_partial_chain setting it was made for.
    @ivar local: the certificates of certs/ as pyOpenSSL objects (the
        untrusted intermediates every chain may use).
    @ivar known: C{{DER: x509.Certificate}} of ca/ and certs/.
    @ivar boundaries: the sorted POSIX seconds at which a certificate of
        ca/ or certs/ or a CRL of crls/ begins or ends its validity.
    @ivar verified: C{{chain key: L{_VerifiedChain}}}, oldest first.
    """

    def __init__(self, trusted, certificates, crls, partialChain):
        # pyOpenSSL only once a certificate is verified (ikedtx.lean)
        from OpenSSL import crypto

        self.partialChain = partialChain
        self._trusted = [crypto.X509.from_cryptography(c) for c in trusted]
        self._crls = list(crls)
        flags = 0
        if crls:
            flags |= crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL
        if partialChain:
            flags |= crypto.X509StoreFlags.PARTIAL_CHAIN
        self._flags = flags
        self._store = self._second = None
        self.local = [crypto.X509.from_cryptography(c) for c in certificates]
        self.known = {c.public_bytes(Encoding.DER): c for c in list(trusted) + list(certificates)}
        boundaries = set()
        for c in list(trusted) + list(certificates):
            boundaries.update(_certificateTimes(c))
        for crl in crls:
            boundaries.add(_seconds(crl.last_update_utc))
            if crl.next_update_utc is not None:
                boundaries.add(_seconds(crl.next_update_utc))
        self.boundaries = sorted(boundaries)
        self.verified = {}

    def storeAt(self, now):
        """
        The pyOpenSSL X509Store of ca/ and crls/ that verifies at C{now}:
        one per second (the time OpenSSL takes), since a store keeps the
        first time it is given (X509_VERIFY_PARAM_inherit does not
        overwrite a check time).
        """
        second = _seconds(now)
        if self._second != second:
            from OpenSSL import crypto

            store = crypto.X509Store()
            for c in self._trusted:
                store.add_cert(c)
            for crl in self._crls:
                store.add_crl(crl)
            if self._flags:
                store.set_flags(self._flags)
            store.set_time(now)
            self._store, self._second = store, second
        return self._store

    def lookup(self, key, now):
        """
        The chain verified under C{key} if it holds at C{now}, or L{None}.
        """
        verified = self.verified.get(key)
        if verified is None:
            return None
        second = _seconds(now)
        if verified.after < second < verified.before:
            return verified
        del self.verified[key]
        return None

    def remember(self, key, verified, intermediates, now):
        """
        Keep C{verified}, checked at C{now}, for as long as no certificate
        involved (ca/, certs/, the peer's) and no CRL begins or ends its
        validity: until then OpenSSL's time checks all come out the same.
        Nothing is kept when C{now} is itself such a second.

        @return: C{verified}.
        """
        second = _seconds(now)
        boundaries = set(_certificateTimes(verified.leaf))
        for certificate, _ in intermediates:
            boundaries.update(_certificateTimes(certificate))
        if second in boundaries:
            return verified
        index = bisect.bisect_left(self.boundaries, second)
        if index < len(self.boundaries) and self.boundaries[index] == second:
            return verified
        after = self.boundaries[index - 1] if index > 0 else None
        before = self.boundaries[index] if index < len(self.boundaries) else None
        for b in boundaries:
            if b < second and (after is None or b > after):
                after = b
            elif b > second and (before is None or b < before):
                before = b
        verified.after = after if after is not None else -(1 << 62)
        verified.before = before if before is not None else 1 << 62
        if len(self.verified) >= MAX_VERIFIED_CHAINS:
            del self.verified[next(iter(self.verified))]
        self.verified[key] = verified
        return verified


def _encodingName(encoding):
    if encoding == keys.IKED_CERT_ECDSA:
        return "ECDSA(201)"
    try:
        return CertEncoding(encoding).name
    except ValueError:
        return str(encoding)


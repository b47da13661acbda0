# -*- test-case-name: tests.test_privsep_commands -*-
"""
What the privileged parent hands the worker at start and at each reload:
the parsed configuration, the resolved host names and the credential store
with its private key replaced by a public stand-in.

It travels as a pickle, one way only: the parent pickles, the worker (which
trusts its parent) unpickles; the parent never unpickles anything the
worker sends. Certificates, CRLs and public keys, which do not pickle,
travel as DER.
"""

import copy
import io
import pickle
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

_PUBLIC = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
_PRIVATE = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)


def _publicDer(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _loadPublic(der):
    return serialization.load_der_public_key(der)


def _loadCertificate(der):
    return x509.load_der_x509_certificate(der)


def _loadCRL(der):
    return x509.load_der_x509_crl(der)


def _mappingProxy(d):
    return MappingProxyType(d)


class LocalKeyPlaceholder:
    """
    Where the local private key was: its public key. The worker puts a
    L{ikedtx.privsep.signer.remoteKey} in its place.
    """

    def __init__(self, publicKey):
        self.publicKey = publicKey


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, x509.Certificate):
            return _loadCertificate, (obj.public_bytes(serialization.Encoding.DER),)
        if isinstance(obj, x509.CertificateRevocationList):
            return _loadCRL, (obj.public_bytes(serialization.Encoding.DER),)
        from ikedtx.auth.ids import IKEIdentity

        if type(obj) is IKEIdentity:
            # Immutable (its __setattr__ refuses pickle's way).
            return IKEIdentity, (int(obj.idType), obj.data)
        if isinstance(obj, MappingProxyType):
            return _mappingProxy, (dict(obj),)
        if isinstance(obj, _PUBLIC):
            return _loadPublic, (_publicDer(obj),)
        if isinstance(obj, _PRIVATE):
            # Never a private key: whatever holds one gets its public half.
            return LocalKeyPlaceholder, (obj.public_key(),)
        return NotImplemented


def dumpState(config, resolved, credentials):
    """
    The bytes of C{(config, resolved, credentials)} for the worker; the
    credentials' private key is left out (a L{LocalKeyPlaceholder}).
    """
    if credentials is not None:
        credentials = copy.copy(credentials)
        # A cache of verified chains is rebuilt by the worker.
        if hasattr(credentials, "_verification"):
            credentials._verification = None
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump((config, resolved, credentials))
    return out.getvalue()


def loadState(data, signer):
    """
    C{(config, resolved, credentials)} from L{dumpState}'s bytes, the
    local key a remote one that signs with C{signer}.
    """
    from ikedtx.privsep.signer import remoteKey

    config, resolved, credentials = pickle.loads(data)
    if credentials is not None and isinstance(getattr(credentials, "privateKey", None), LocalKeyPlaceholder):
        credentials.privateKey = remoteKey(credentials.privateKey.publicKey, signer)
    return config, resolved, credentials

"""
Tests for ikedtx.crypto.signature: AUTH payload signatures.
"""

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.crypto import signature
from ikedtx.crypto.errors import AuthenticationError
from ikedtx.wire.constants import AuthMethod, HashAlgorithm
from tests.cryptovectors import h

_keys = {}


def _rsaKey():
    if "rsa" not in _keys:
        _keys["rsa"] = rsa.generate_private_key(65537, 2048)
    return _keys["rsa"]


# RFC 4754 section 8: (method, curve, private key w, r, s) over the message
# "abc" (section 8.1: 256-bit, 8.2: 384-bit, 8.3: 521-bit random ECP group).
RFC4754 = [
    (AuthMethod.ECDSA_SHA256_P256, ec.SECP256R1(),
     "DC51D386 6A15BACD E33D96F9 92FCA99D A7E6EF09 34E70975 59C27F16 14C88A7F",
     "CB28E099 9B9C7715 FD0A80D8 E47A7707 9716CBBF 917DD72E 97566EA1 C066957C",
     "86FA3BB4 E26CAD5B F90B7F81 899256CE 7594BB1E A0C89212 748BFF3B 3D5B0315"),
    (AuthMethod.ECDSA_SHA384_P384, ec.SECP384R1(),
     "0BEB6466 34BA8773 5D77AE48 09A0EBEA 865535DE 4C1E1DCB 692E8470 8E81A5AF"
     "62E528C3 8B2A81B3 5309668D 73524D9F",
     "FB017B91 4E291494 32D8BAC2 9A514640 B46F53DD AB2C6994 8084E293 0F1C8F7E"
     "08E07C9C 63F2D21A 07DCB56A 6AF56EB3",
     "B263A130 5E057F98 4D38726A 1B468741 09F417BC A112674C 528262A4 0A629AF1"
     "CBB9F516 CE0FA7D2 FF630863 A00E8B9F"),
    (AuthMethod.ECDSA_SHA512_P521, ec.SECP521R1(),
     "0065FDA3 409451DC AB0A0EAD 45495112 A3D813C1 7BFD34BD F8C1209D 7DF58491"
     "20597779 060A7FF9 D704ADF7 8B570FFA D6F062E9 5C7E0C5D 5481C5B1 53B48B37 5FA1",
     "0154FD38 36AF92D0 DCA57DD5 341D3053 988534FD E8318FC6 AAAAB68E 2E6F4339"
     "B19F2F28 1A7E0B22 C269D93C F8794A92 78880ED7 DBB8D936 2CAEACEE 54432055 2251",
     "017705A7 030290D1 CEB605A9 A1BB03FF 9CDD521E 87A696EC 926C8C10 C8362DF4"
     "97536710 1F67D1CF 9BCCBF2F 3D239534 FA509E70 AAC851AE 01AAC68D 62F86647 2660"),
]


class RFC4754Tests(SynchronousTestCase):
    """
    RFC 4754 section 8: ECDSA signatures as IKE carries them (r | s).
    """

    def test_publishedSignatures(self):
        """
        The published (r, s) over "abc" verify with the method's curve and
        hash; with one bit changed they do not.
        """
        for method, curve, w, r, s in RFC4754:
            key = ec.derive_private_key(int.from_bytes(h(w), "big"), curve).public_key()
            authData = h(r) + h(s)
            self.assertEqual(signature.verify(key, method, authData, b"abc"),
                             {9: HashAlgorithm.SHA2_256, 10: HashAlgorithm.SHA2_384,
                              11: HashAlgorithm.SHA2_512}[method])
            bad = bytearray(authData)
            bad[-1] ^= 1
            self.assertRaises(AuthenticationError, signature.verify, key, method, bytes(bad),
                              b"abc")
            self.assertRaises(AuthenticationError, signature.verify, key, method, authData,
                              b"abd")

    def test_publicKey(self):
        """
        RFC 4754 8.1: w gives the published public key (gwx, gwy).
        """
        _, curve, w, _, _ = RFC4754[0]
        numbers = ec.derive_private_key(int.from_bytes(h(w), "big"), curve).public_key(
            ).public_numbers()
        self.assertEqual((numbers.x, numbers.y), (
            int("2442A5CC0ECD015FA3CA31DC8E2BBC70BF42D60CBCA20085E0822CB04235E970", 16),
            int("6FC98BD7E50211A4A27102FA3549DF79EBCB4BF246B80945CDDFE7D509BBFD7D", 16)))

    def test_signFixedSize(self):
        """
        Our signatures are r | s of exactly 2 x 32, 48 or 66 bytes and
        verify, also when r or s is short.
        """
        for method, curve, w, _, _ in RFC4754:
            private = ec.derive_private_key(int.from_bytes(h(w), "big"), curve)
            size = {9: 32, 10: 48, 11: 66}[method]
            for i in range(8):
                authData = signature.sign(private, method, b"octets %d" % i)
                self.assertEqual(len(authData), 2 * size)
                signature.verify(private.public_key(), method, authData, b"octets %d" % i)

    def test_wrongLengthOrCurve(self):
        """
        r | s of another length, or a key on another curve, is refused.
        """
        method, curve, w, r, s = RFC4754[0]
        key = ec.derive_private_key(int.from_bytes(h(w), "big"), curve).public_key()
        authData = h(r) + h(s)
        self.assertRaises(AuthenticationError, signature.verify, key, method, authData[1:],
                          b"abc")
        self.assertRaises(AuthenticationError, signature.verify, key, method,
                          b"\x00" + authData, b"abc")
        self.assertRaises(AuthenticationError, signature.verify, key,
                          AuthMethod.ECDSA_SHA384_P384, authData, b"abc")
        other = ec.generate_private_key(ec.SECP384R1())
        self.assertRaises(AuthenticationError, signature.sign, other,
                          AuthMethod.ECDSA_SHA256_P256, b"abc")
        self.assertRaises(AuthenticationError, signature.verify, key, method, bytes(64), b"abc")


# RFC 7427 appendix A (A.1 RSA PKCS#1 v1.5, A.3 ECDSA, A.4.3 RSASSA-PSS with
# SHA-256 in the errata form without trailerField) and RFC 8420 (Ed25519,
# Ed448), as printed there; the same bytes are in iked's crypto.c.
RFC7427_ENCODINGS = [
    (("rsa", HashAlgorithm.SHA1, False), "300d06092a864886f70d0101050500"),
    (("rsa", HashAlgorithm.SHA2_256, False), "300d06092a864886f70d01010b0500"),
    (("rsa", HashAlgorithm.SHA2_384, False), "300d06092a864886f70d01010c0500"),
    (("rsa", HashAlgorithm.SHA2_512, False), "300d06092a864886f70d01010d0500"),
    (("ecdsa", HashAlgorithm.SHA1, False), "300906072a8648ce3d0401"),
    (("ecdsa", HashAlgorithm.SHA2_256, False), "300a06082a8648ce3d040302"),
    (("ecdsa", HashAlgorithm.SHA2_384, False), "300a06082a8648ce3d040303"),
    (("ecdsa", HashAlgorithm.SHA2_512, False), "300a06082a8648ce3d040304"),
    (("rsa", HashAlgorithm.SHA2_256, True),
     "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886"
     "f70d010108300d06096086480165030402010500a203020120"),
    (("ed25519", None, False), "300506032b6570"),
    (("ed448", None, False), "300506032b6571"),
]

# RSASSA-PSS AlgorithmIdentifiers and their parameters: RFC 7427 A.4.1
# (empty sequence: SHA-1 defaults), A.4.2 (defaults spelled out, with
# trailerField), A.4.3 (SHA-256 with trailerField); the rest from
# strongSwan's test_signature_params.c.
PSS_PARSE = [
    ("300d06092a864886f70d01010a3000", (HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20)),
    ("303e06092a864886f70d01010a3031a00b300906052b0e03021a0500a118301606092a864886f70d01010830"
     "0906052b0e03021a0500a203020114a303020101", (HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20)),
    ("304606092a864886f70d01010a3039a00f300d06096086480165030402010500a11c301a06092a864886f70d"
     "010108300d06096086480165030402010500a203020120a303020101",
     (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_256, 32)),
    ("304106092a864886f70d01010a3034a00f300d06096086480165030402030500a11c301a06092a864886f70d"
     "010108300d06096086480165030402030500a203020140",
     (HashAlgorithm.SHA2_512, HashAlgorithm.SHA2_512, 64)),
    ("301e06092a864886f70d01010a3011a00f300d06096086480165030402010500",
     (HashAlgorithm.SHA2_256, HashAlgorithm.SHA1, 20)),
    ("301206092a864886f70d01010a3005a203020120", (HashAlgorithm.SHA1, HashAlgorithm.SHA1, 32)),
]

# Invalid RSASSA-PSS identifiers from strongSwan's test_signature_params.c:
# unknown hash, unknown MGF, unknown MGF1 hash, trailerField 2, trailerField
# two bytes long, negative salt length.
PSS_INVALID = [
    "301e06092a864886f70d01010a3011a00f300d06096086480165030402000500",
    "302b06092a864886f70d01010a301ea11c301a06092a864886f70d010100300d06096086480165030402010500",
    "302b06092a864886f70d01010a301ea11c301a06092a864886f70d010108300d06096086480165030402000500",
    "301206092a864886f70d01010a3005a303020102",
    "301306092a864886f70d01010a3006a30402020101",
    "304d06092a864886f70d01010a3040a00f300d06096086480165030402010500a11c301a06092a864886f70d"
    "010108300d06096086480165030402010500a20a0208ffffffffffffffffa303020101",
]


class RFC7427EncodingTests(SynchronousTestCase):
    """
    RFC 7427 appendix A AlgorithmIdentifier encodings.
    """

    def test_build(self):
        """
        algorithmIdentifier() produces the appendix A bytes.
        """
        for args, der in RFC7427_ENCODINGS:
            self.assertEqual(signature.algorithmIdentifier(*args).hex(), der, args)

    def test_parse(self):
        """
        parseAlgorithmIdentifier() reads them back.
        """
        for (keyType, hashAlgorithm, pss), der in RFC7427_ENCODINGS:
            scheme = signature.parseAlgorithmIdentifier(h(der))
            self.assertEqual(scheme.keyType, keyType)
            self.assertEqual(scheme.hashAlgorithm,
                             hashAlgorithm if hashAlgorithm else HashAlgorithm.IDENTITY)
            self.assertEqual(scheme.pss is not None, pss)

    def test_pssParameters(self):
        for der, (hashAlgorithm, mgfHash, salt) in PSS_PARSE:
            scheme = signature.parseAlgorithmIdentifier(h(der))
            self.assertEqual((scheme.hashAlgorithm, scheme.pss), (hashAlgorithm, (mgfHash, salt)),
                             der)

    def test_invalid(self):
        """
        Malformed or unknown identifiers raise AuthenticationError: the
        strongSwan PSS cases, trailing bytes, a wrong outer length, a
        long-form length that should be short, unknown OIDs, ECDSA or EdDSA
        with parameters.
        """
        bad = PSS_INVALID + [
            "300d06092a864886f70d01010b050000",
            "300e06092a864886f70d01010b0500",
            "30810d06092a864886f70d01010b0500",
            "300d06092a864886f70d01010e0500",
            "300c06082a8648ce3d0403020500",
            "300706032b65700500",
            "",
            "30",
            "0400",
        ]
        for der in bad:
            self.assertRaises(AuthenticationError, signature.parseAlgorithmIdentifier, h(der))


class ParsedOnceTests(SynchronousTestCase):
    """
    parseAlgorithmIdentifier keeps what it parsed, in a bounded table, and
    never what it refused.
    """

    def setUp(self):
        self.patch(signature, "_PARSED", {})

    def test_sameScheme(self):
        """
        The same DER gives the same, read-only, scheme; the DER is parsed
        once.
        """
        calls = []
        real = signature._parseScheme
        self.patch(signature, "_parseScheme", lambda der: calls.append(der) or real(der))
        der = h(RFC7427_ENCODINGS[0][1])
        first = signature.parseAlgorithmIdentifier(der)
        self.assertIs(signature.parseAlgorithmIdentifier(bytearray(der)), first)
        self.assertEqual(calls, [der])
        self.assertRaises(AttributeError, setattr, first, "hashAlgorithm", HashAlgorithm.SHA1)

    def test_refusedEachTime(self):
        """
        Malformed DER is refused each time (RFC 7427 3: the peer's
        AlgorithmIdentifier is parsed strictly).
        """
        for _ in range(2):
            self.assertRaises(AuthenticationError, signature.parseAlgorithmIdentifier,
                              h("300d06092a864886f70d01010b050000"))
        self.assertEqual(signature._PARSED, {})

    def test_bounded(self):
        """
        Past _MAX_PARSED schemes the table starts again: a peer varying
        its PSS parameters cannot grow it.
        """
        self.patch(signature, "_MAX_PARSED", 2)
        for der, _ in PSS_PARSE[:3]:
            signature.parseAlgorithmIdentifier(h(der))
        self.assertEqual(len(signature._PARSED), 1)


class _DigitalSignatureMixin:
    """
    DIGITAL_SIGNATURE (14) sign/verify for one key type.
    """

    def key(self):
        raise NotImplementedError()

    hashes = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512)
    pss = (False,)

    def test_roundTrip(self):
        """
        sign() output is length byte | AlgorithmIdentifier | signature, and
        verify() accepts it and returns the hash.
        """
        key = self.key()
        for hashAlgorithm in self.hashes:
            for pss in self.pss:
                authData = signature.sign(key, AuthMethod.DIGITAL_SIGNATURE, b"octets",
                                          hashAlgorithm, pss)
                length = authData[0]
                scheme = signature.parseAlgorithmIdentifier(authData[1:1 + length])
                self.assertEqual(scheme.pss is not None, pss)
                self.assertEqual(signature.verify(key.public_key(), AuthMethod.DIGITAL_SIGNATURE,
                                                  authData, b"octets"),
                                 hashAlgorithm or HashAlgorithm.IDENTITY)
                self.assertRaises(AuthenticationError, signature.verify, key.public_key(),
                                  AuthMethod.DIGITAL_SIGNATURE, authData, b"octetS")
                self.assertRaises(AuthenticationError, signature.verify, key.public_key(),
                                  AuthMethod.DIGITAL_SIGNATURE, authData[:-1], b"octets")

    def test_malformed(self):
        """
        A length byte that does not match, or no data, is refused.
        """
        key = self.key()
        authData = signature.sign(key, AuthMethod.DIGITAL_SIGNATURE, b"octets", self.hashes[0])
        for bad in (b"", bytes([authData[0] + 1]) + authData[1:],
                    bytes([authData[0] - 1]) + authData[1:], b"\xff" + authData[1:20]):
            self.assertRaises(AuthenticationError, signature.verify, key.public_key(),
                              AuthMethod.DIGITAL_SIGNATURE, bad, b"octets")

    def test_disallowedHash(self):
        """
        A hash outside allowedHashes is refused even with a good signature.
        """
        key = self.key()
        authData = signature.sign(key, AuthMethod.DIGITAL_SIGNATURE, b"octets", self.hashes[0])
        self.assertRaises(AuthenticationError, signature.verify, key.public_key(),
                          AuthMethod.DIGITAL_SIGNATURE, authData, b"octets", allowedHashes=())


class RSADigitalSignatureTests(_DigitalSignatureMixin, SynchronousTestCase):
    """
    RFC 7427 with RSA: PKCS#1 v1.5 and RSASSA-PSS with SHA2-256/384/512.
    """

    pss = (False, True)

    def key(self):
        return _rsaKey()

    def test_sha1Refused(self):
        """
        A sha1WithRSAEncryption signature (RFC 7427 A.1.1) is refused by
        default (we announce SHA2 only, RFC 8247) and accepted if allowed.
        """
        key = self.key()
        der = signature.algorithmIdentifier("rsa", HashAlgorithm.SHA1)
        authData = bytes([len(der)]) + der + key.sign(b"octets", padding.PKCS1v15(),
                                                      hashes.SHA1())
        self.assertRaises(AuthenticationError, signature.verify, key.public_key(),
                          AuthMethod.DIGITAL_SIGNATURE, authData, b"octets")
        self.assertEqual(signature.verify(key.public_key(), AuthMethod.DIGITAL_SIGNATURE,
                                          authData, b"octets",
                                          allowedHashes={HashAlgorithm.SHA1}),
                         HashAlgorithm.SHA1)

    def test_pssWithOtherSalt(self):
        """
        A PSS signature whose parameters name salt length 0 verifies with
        that salt length.
        """
        key = self.key()
        der = h("304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a0609"
                "2a864886f70d010108300d06096086480165030402010500a203020100")
        sig = key.sign(b"octets", padding.PSS(padding.MGF1(hashes.SHA256()), 0), hashes.SHA256())
        signature.verify(key.public_key(), AuthMethod.DIGITAL_SIGNATURE,
                         bytes([len(der)]) + der + sig, b"octets")

    def test_rsaSig(self):
        """
        RSA_SIG (1): PKCS#1 v1.5 with SHA-1 over the octets, as strongSwan
        and iked use it.
        """
        key = self.key()
        authData = signature.sign(key, AuthMethod.RSA_SIG, b"octets")
        key.public_key().verify(authData, b"octets", padding.PKCS1v15(), hashes.SHA1())
        self.assertEqual(signature.verify(key.public_key(), AuthMethod.RSA_SIG, authData,
                                          b"octets"), HashAlgorithm.SHA1)
        self.assertRaises(AuthenticationError, signature.verify, key.public_key(),
                          AuthMethod.RSA_SIG, authData, b"octetz")
        self.assertRaises(ValueError, signature.sign, key, AuthMethod.RSA_SIG, b"octets",
                          HashAlgorithm.SHA2_256)


class ECDSADigitalSignatureTests(_DigitalSignatureMixin, SynchronousTestCase):
    """
    RFC 7427 with ECDSA (DER signature inside), any hash with any curve.
    """

    def key(self):
        return ec.generate_private_key(ec.SECP256R1())

    def test_derInside(self):
        """
        The signature after the AlgorithmIdentifier is a DER Ecdsa-Sig-Value
        that cryptography verifies directly.
        """
        key = self.key()
        authData = signature.sign(key, AuthMethod.DIGITAL_SIGNATURE, b"x", HashAlgorithm.SHA2_384)
        sig = authData[1 + authData[0]:]
        self.assertEqual(sig[0], 0x30)
        key.public_key().verify(sig, b"x", ec.ECDSA(hashes.SHA384()))


class BrainpoolDigitalSignatureTests(ECDSADigitalSignatureTests):
    def key(self):
        return ec.generate_private_key(ec.BrainpoolP384R1())


class Ed25519Tests(_DigitalSignatureMixin, SynchronousTestCase):
    """
    RFC 8420: Ed25519 with the Identity hash.
    """

    hashes = (None,)

    def key(self):
        return ed25519.Ed25519PrivateKey.generate()


class Ed448Tests(Ed25519Tests):
    def key(self):
        return ed448.Ed448PrivateKey.generate()


class KeyTypeTests(SynchronousTestCase):
    """
    The method, the AlgorithmIdentifier and the key must fit together.
    """

    def test_wrongKeyForMethod(self):
        rsaKey = _rsaKey()
        ecKey = ec.generate_private_key(ec.SECP256R1())
        edKey = ed25519.Ed25519PrivateKey.generate()
        self.assertRaises(AuthenticationError, signature.sign, ecKey, AuthMethod.RSA_SIG, b"x")
        self.assertRaises(AuthenticationError, signature.sign, rsaKey,
                          AuthMethod.ECDSA_SHA256_P256, b"x")
        self.assertRaises(AuthenticationError, signature.sign, edKey,
                          AuthMethod.ECDSA_SHA256_P256, b"x")
        self.assertRaises(AuthenticationError, signature.sign, rsaKey,
                          AuthMethod.SHARED_KEY_MIC, b"x")
        rsaAuth = signature.sign(rsaKey, AuthMethod.RSA_SIG, b"x")
        self.assertRaises(AuthenticationError, signature.verify, ecKey.public_key(),
                          AuthMethod.RSA_SIG, rsaAuth, b"x")
        self.assertRaises(AuthenticationError, signature.verify, object(),
                          AuthMethod.DIGITAL_SIGNATURE, rsaAuth, b"x")

    def test_algorithmDoesNotFitKey(self):
        """
        An ECDSA AlgorithmIdentifier with an RSA key (and the reverse) is
        refused before any verification.
        """
        rsaKey = _rsaKey()
        ecKey = ec.generate_private_key(ec.SECP256R1())
        ecAuth = signature.sign(ecKey, AuthMethod.DIGITAL_SIGNATURE, b"x", HashAlgorithm.SHA2_256)
        rsaAuth = signature.sign(rsaKey, AuthMethod.DIGITAL_SIGNATURE, b"x",
                                 HashAlgorithm.SHA2_256)
        self.assertRaises(AuthenticationError, signature.verify, rsaKey.public_key(),
                          AuthMethod.DIGITAL_SIGNATURE, ecAuth, b"x")
        self.assertRaises(AuthenticationError, signature.verify, ecKey.public_key(),
                          AuthMethod.DIGITAL_SIGNATURE, rsaAuth, b"x")

    def test_signNeedsSHA2(self):
        self.assertRaises(ValueError, signature.sign, _rsaKey(), AuthMethod.DIGITAL_SIGNATURE,
                          b"x")
        self.assertRaises(ValueError, signature.sign, ed25519.Ed25519PrivateKey.generate(),
                          AuthMethod.DIGITAL_SIGNATURE, b"x", HashAlgorithm.SHA2_256)


class AnnouncedTests(SynchronousTestCase):
    def test_announced(self):
        """
        We announce SHA2-256/384/512 and Identity (RFC 7427 4, RFC 8420),
        and accept by default exactly what we announce.
        """
        self.assertEqual(set(signature.ANNOUNCED_HASHES), set(signature.DEFAULT_ALLOWED_HASHES))
        self.assertNotIn(HashAlgorithm.SHA1, signature.ANNOUNCED_HASHES)


class ChooseTests(SynchronousTestCase):
    """
    chooseSignatureMethod() from our key and the peer's
    SIGNATURE_HASH_ALGORITHMS.
    """

    def test_choices(self):
        rsaKey = _rsaKey()
        p256 = ec.generate_private_key(ec.SECP256R1())
        p384 = ec.generate_private_key(ec.SECP384R1())
        bp = ec.generate_private_key(ec.BrainpoolP256R1())
        ed = ed25519.Ed25519PrivateKey.generate()
        all4 = [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512,
                HashAlgorithm.IDENTITY]
        D = AuthMethod.DIGITAL_SIGNATURE
        cases = [
            ((rsaKey, all4), (D, HashAlgorithm.SHA2_256)),
            ((rsaKey, [HashAlgorithm.SHA2_512]), (D, HashAlgorithm.SHA2_512)),
            ((rsaKey, []), (AuthMethod.RSA_SIG, HashAlgorithm.SHA1)),
            ((rsaKey, [HashAlgorithm.SHA1]), (AuthMethod.RSA_SIG, HashAlgorithm.SHA1)),
            ((p384, all4), (D, HashAlgorithm.SHA2_384)),
            ((p384, [HashAlgorithm.SHA2_256]), (D, HashAlgorithm.SHA2_256)),
            ((p256.public_key(), []), (AuthMethod.ECDSA_SHA256_P256, HashAlgorithm.SHA2_256)),
            ((p384, []), (AuthMethod.ECDSA_SHA384_P384, HashAlgorithm.SHA2_384)),
            ((bp, all4), (D, HashAlgorithm.SHA2_256)),
            ((ed, all4), (D, HashAlgorithm.IDENTITY)),
            ((ed, [1, 2, 99]), None),
            ((ed, []), None),
            ((bp, []), None),
        ]
        for (key, peer), expected in cases:
            if expected is None:
                self.assertRaises(AuthenticationError, signature.chooseSignatureMethod, key, peer)
            else:
                self.assertEqual(signature.chooseSignatureMethod(key, peer), expected)

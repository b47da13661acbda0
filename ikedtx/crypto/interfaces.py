# -*- test-case-name: tests.test_crypto_transforms -*-
"""
The small zope Interfaces the transform registries hold, and L{ISKCipher}, the
object the wire codec uses to protect and unprotect SK/SKF payloads.

A C{random} argument anywhere in L{ikedtx.crypto} is a callable taking a
byte count and returning that many bytes (default C{os.urandom}).
"""

from zope.interface import Attribute, Interface


class IPseudoRandomFunction(Interface):
    """
    An IKEv2 PRF (transform type 2), RFC 7296 2.13.
    """

    transformId = Attribute("The IANA PrfId.")
    name = Attribute("A short name for logs, e.g. 'prf-hmac-sha2-256'.")
    outputSize = Attribute("Bytes of output of one prf() call.")
    preferredKeySize = Attribute(
        "The PRF's preferred key length in bytes: the length of SK_d, SK_pi "
        "and SK_pr (RFC 7296 2.14).")
    fixedKeySize = Attribute(
        "True for the AES-XCBC/AES-CMAC PRFs, which take a fixed-size key: "
        "SKEYSEED then uses only the first 64 bits of Ni and of Nr "
        "(RFC 7296 2.14).")

    def compute(key, data):
        """
        Return prf(key, data) as bytes.  Keys of any length are accepted, as
        RFC 4434 and RFC 4615 define for the AES PRFs.
        """


class IIntegrityAlgorithm(Interface):
    """
    An integrity transform (transform type 3).
    """

    transformId = Attribute("The IANA IntegId.")
    name = Attribute("A short name for logs.")
    keySize = Attribute("Bytes of key (taken from SK_a or KEYMAT).")
    icvSize = Attribute("Bytes of (truncated) ICV.")
    ikeUsable = Attribute("True if this ikedtx can protect IKE messages with it.")
    espUsable = Attribute("True if it can be negotiated for ESP/AH.")

    def compute(key, data):
        """
        Return the truncated ICV of C{data}.
        """

    def verify(key, data, icv):
        """
        Compare C{icv} with the ICV of C{data} in constant time; raise
        L{ikedtx.crypto.errors.IntegrityError} if they differ.
        """


class IEncryptionAlgorithm(Interface):
    """
    An encryption transform (transform type 1): what the negotiation and the
    kernel layer need to know about it.
    """

    transformId = Attribute("The IANA EncrId.")
    name = Attribute("A short name for logs.")
    keyLengths = Attribute(
        "Allowed values of the Key Length attribute in bits, or () if the "
        "transform takes no Key Length attribute (3DES, ChaCha20-Poly1305, "
        "NULL).")
    defaultKeyLength = Attribute(
        "Key length in bits used when the attribute is absent and the "
        "transform has a fixed key, else None.")
    saltSize = Attribute(
        "Bytes of salt/nonce taken from the keying material after the key "
        "(RFC 3686, 4106, 4309, 4543, 5282, 7634).")
    ivSize = Attribute("Bytes of explicit IV in each message.")
    blockSize = Attribute("Padding alignment for IKE (1 for stream and AEAD modes).")
    icvSize = Attribute("Bytes of AEAD ICV, 0 for a cipher that needs an integrity transform.")
    aead = Attribute("True for combined-mode ciphers (no INTEG transform, or NONE).")
    authenticationOnly = Attribute("True for ENCR_NULL and ENCR_NULL_AUTH_AES_GMAC.")
    ikeUsable = Attribute("True if this ikedtx can protect IKE messages with it.")
    espUsable = Attribute("True if it can be negotiated for ESP.")

    def validKeyLength(keyLength):
        """
        Return True if C{keyLength} (bits, or None for an absent attribute) is
        acceptable for this transform.
        """

    def keySize(keyLength):
        """
        Return the cipher key size in bytes for this Key Length attribute.
        """

    def keyMaterialSize(keyLength):
        """
        Return the bytes of keying material this transform takes from SK_e or
        KEYMAT: the key plus the salt.
        """


class IKeyExchangeMethod(Interface):
    """
    A Key Exchange Method (transform type 4, and the ADDKE types of RFC 9370):
    a Diffie-Hellman group or a KEM, behind one API.
    """

    transformId = Attribute("The IANA DhId.")
    name = Attribute("A short name for logs.")
    kem = Attribute("True for a KEM: then the two sides send different data.")
    initiatorDataSize = Attribute("Bytes of the initiator's KE data.")
    responderDataSize = Attribute("Bytes of the responder's KE data.")
    sharedSecretSize = Attribute("Bytes of shared secret.")
    constantTime = Attribute(
        "False where the arithmetic on the private value is done by Python's "
        "integers (variable time: its timing may leak the private value).")

    def generate(random):
        """
        Start an exchange as initiator: return an L{IKeyExchange} whose
        C{publicData} goes in our KE payload.
        """

    def respond(peerData, random):
        """
        Answer the initiator's KE data: return C{(ourData, sharedSecret)},
        C{sharedSecret} a bytearray.  For a DH group this generates our value
        and computes g^ir; for a KEM it encapsulates.  Raise
        L{ikedtx.crypto.errors.InvalidKeyExchange} if C{peerData} is invalid.
        """


class IKeyExchange(Interface):
    """
    The initiator's side of one exchange, holding its private value.
    """

    method = Attribute("The L{IKeyExchangeMethod}.")
    publicData = Attribute("Bytes for our KE payload.")

    def complete(peerData):
        """
        Return the shared secret (a bytearray) from the responder's KE data;
        raise L{ikedtx.crypto.errors.InvalidKeyExchange} if it is invalid.
        """

    def wipe():
        """
        Forget the private value.  complete() fails afterwards.
        """


class ISKCipher(Interface):
    """
    Protection of the Encrypted (SK) and Encrypted Fragment (SKF) payloads in
    one direction, RFC 7296 3.14, RFC 5282, RFC 7634, RFC 7383.

    The bytes an SK payload carries after its generic header are
    C{IV | ciphertext | ICV}; the ciphertext covers the inner payloads, the
    Padding and the Pad Length byte.
    """

    ivSize = Attribute("Bytes of IV.")
    icvSize = Attribute("Bytes of ICV (integrity ICV or AEAD tag).")

    def sealedLength(plaintextLength):
        """
        Return the bytes of IV + ciphertext (with padding and the Pad Length
        byte) + ICV that seal() produces for C{plaintextLength} bytes of
        inner payloads.  The SK payload length is this plus 4.
        """

    def maxPlaintextLength(sealedLength):
        """
        Return the largest number of inner-payload bytes whose sealedLength()
        does not exceed C{sealedLength} (for sizing SKF fragments), or -1 if
        not even an empty payload fits.
        """

    def seal(aad, plaintext):
        """
        Encrypt and protect C{plaintext} (the inner payloads).  C{aad} is
        every byte of the message before the IV, with all length fields
        already final: the IKE header and the SK generic header (for SKF also
        the Fragment Number and Total Fragments fields).  Return
        C{IV | ciphertext | ICV}, of length C{sealedLength(len(plaintext))}.
        """

    def open(aad, sealed):
        """
        Verify the ICV in constant time, decrypt, check and strip the padding
        and return the inner payloads.  Raise
        L{ikedtx.crypto.errors.IntegrityError} on a bad ICV or tag, bad
        padding, or input too short.
        """

    def wipe():
        """
        Forget the keys.  seal() and open() fail afterwards.
        """

# -*- test-case-name: tests.test_crypto_transforms -*-
"""
ikedtx.crypto: IKEv2 cryptography on pyca/cryptography.

 - L{ikedtx.crypto.interfaces}: the zope Interfaces (IPseudoRandomFunction,
   IIntegrityAlgorithm, IEncryptionAlgorithm, IKeyExchangeMethod,
   IKeyExchange, ISKCipher).
 - Registries keyed by IANA id: L{prf}, L{integ}, L{encr}, L{kex}; one
   lookup over all of them in L{transforms}.
 - L{keymat}: prf+, SKEYSEED (new, rekey, RFC 9370), SK_*, Child SA KEYMAT,
   AUTH octets and shared-key AUTH.
 - L{sk}: SK/SKF payload protection.
 - L{signature}: AUTH signatures (RSA_SIG, RFC 4754 ECDSA, RFC 7427).
 - L{mlkem}: ML-KEM (FIPS 203) parameter sets and the check of a peer's
   encapsulation key; the ML-KEM-768/1024 operations are cryptography's,
   ML-KEM-512 is refused.
 - L{sntrup}: OpenBSD iked's hybrid sntrup761x25519 (id 1035), on the
   optional compiled pqcrypto binding.
 - L{errors}: the exception classes.
"""

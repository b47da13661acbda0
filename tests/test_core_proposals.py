"""
Tests for L{ikedtx.core.proposals}: RFC 7296 2.7 / 3.3.6 proposal selection.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core.proposals import Offer, Transform, accept, select
from ikedtx.wire.constants import DhId, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType

E, P, I, D, N = TransformType.ENCR, TransformType.PRF, TransformType.INTEG, TransformType.DH, TransformType.ESN
AEAD = {EncrId.AES_GCM_8, EncrId.AES_GCM_12, EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305}


def isAead(encrId):
    return encrId in AEAD


def ike(*transforms, number=1):
    return Offer(ProtocolId.IKE, tuple(Transform(*t) for t in transforms), number)


def esp(*transforms, number=1, spi=b"\x00\x00\x10\x00"):
    return Offer(ProtocolId.ESP, tuple(Transform(*t) for t in transforms), number, spi)


GCM = ike((E, EncrId.AES_GCM_16, 256), (P, PrfId.HMAC_SHA2_256), (D, DhId.CURVE25519))
CBC = ike((E, EncrId.AES_CBC, 128), (E, EncrId.AES_CBC, 256), (P, PrfId.HMAC_SHA2_256), (I, IntegId.HMAC_SHA2_256_128),
          (D, DhId.MODP_2048), (D, DhId.ECP_256), number=2)


class SelectTests(SynchronousTestCase):
    def test_peerOrder(self):
        """
        The responder takes the peer's first acceptable proposal and, within
        it, the peer's first acceptable transform of each type.
        """
        chosen = select([GCM, CBC], [CBC.withSpi(b"", 1), GCM.withSpi(b"", 2)], isAeadCipher=isAead)
        self.assertEqual(chosen.number, 1)
        self.assertEqual(chosen.encryption, Transform(E, EncrId.AES_CBC, 128))
        self.assertEqual(chosen.dhGroup, DhId.MODP_2048)
        self.assertEqual(chosen.integrity, Transform(I, IntegId.HMAC_SHA2_256_128))

    def test_keyLengthMatters(self):
        """
        AES-CBC-128 and AES-CBC-256 are different transforms (RFC 7296 3.3.5).
        """
        peer = ike((E, EncrId.AES_CBC, 192), (P, PrfId.HMAC_SHA2_256), (I, IntegId.HMAC_SHA2_256_128), (D, DhId.MODP_2048))
        self.assertIsNone(select([CBC], [peer]))

    def test_aeadWithIntegrityRefused(self):
        """
        RFC 5282 8: an AEAD cipher is not combined with an integrity algorithm.
        """
        peer = ike((E, EncrId.AES_GCM_16, 256), (P, PrfId.HMAC_SHA2_256), (I, IntegId.HMAC_SHA2_256_128), (D, DhId.CURVE25519))
        local = ike((E, EncrId.AES_GCM_16, 256), (P, PrfId.HMAC_SHA2_256), (I, IntegId.HMAC_SHA2_256_128), (D, DhId.CURVE25519))
        self.assertIsNone(select([local], [peer], isAeadCipher=isAead))

    def test_missingDhRefusedForIke(self):
        """
        An IKE proposal needs a key exchange method.
        """
        peer = ike((E, EncrId.AES_GCM_16, 256), (P, PrfId.HMAC_SHA2_256))
        self.assertIsNone(select([GCM], [peer], isAeadCipher=isAead))

    def test_unsupportedSkipped(self):
        """
        A transform we do not implement is never chosen, even if configured.
        """
        chosen = select([CBC], [CBC], isSupported=lambda t, protocol: t.id != DhId.MODP_2048)
        self.assertEqual(chosen.dhGroup, DhId.ECP_256)

    def test_espEsnDefault(self):
        """
        An ESP proposal without ESN transforms means no ESN, and the answer
        then has no ESN transform either.
        """
        local = esp((E, EncrId.AES_GCM_16, 128), (N, EsnId.NO_ESN))
        peer = esp((E, EncrId.AES_GCM_16, 128))
        chosen = select([local], [peer], isAeadCipher=isAead)
        self.assertFalse(chosen.esn)
        self.assertEqual(chosen.peerSPI, b"\x00\x00\x10\x00")
        answer = chosen.asOffer(b"\x00\x00\x20\x00")
        self.assertEqual(answer.transforms, (Transform(E, EncrId.AES_GCM_16, 128),))
        self.assertEqual(answer.spi, b"\x00\x00\x20\x00")

    def test_espPfs(self):
        """
        A child proposal with "group none" does not accept a peer's PFS group.
        """
        local = esp((E, EncrId.AES_GCM_16, 128), (D, DhId.NONE))
        peer = esp((E, EncrId.AES_GCM_16, 128), (D, DhId.ECP_256))
        self.assertIsNone(select([local], [peer], isAeadCipher=isAead))
        self.assertIsNotNone(select([local.withoutKeyExchange()], [peer.withoutKeyExchange()], isAeadCipher=isAead))

    def test_espWithoutIntegrityRefused(self):
        local = esp((E, EncrId.AES_CBC, 128), (I, IntegId.NONE))
        self.assertIsNone(select([local], [local]))


class AcceptTests(SynchronousTestCase):
    def test_accept(self):
        """
        The initiator accepts one transform per type out of the numbered
        proposal it offered.
        """
        answer = ike((E, EncrId.AES_CBC, 256), (P, PrfId.HMAC_SHA2_256), (I, IntegId.HMAC_SHA2_256_128), (D, DhId.ECP_256), number=2)
        chosen = accept([GCM, CBC], answer)
        self.assertEqual(chosen.encryption, Transform(E, EncrId.AES_CBC, 256))

    def test_wrongNumber(self):
        answer = ike((E, EncrId.AES_CBC, 256), (P, PrfId.HMAC_SHA2_256), (I, IntegId.HMAC_SHA2_256_128), (D, DhId.ECP_256), number=1)
        self.assertIsNone(accept([GCM, CBC], answer))

    def test_twoOfOneType(self):
        """
        RFC 7296 3.3.6: the answer has exactly one transform of each type.
        """
        answer = ike((E, EncrId.AES_CBC, 256), (E, EncrId.AES_CBC, 128), (P, PrfId.HMAC_SHA2_256),
                     (I, IntegId.HMAC_SHA2_256_128), (D, DhId.ECP_256), number=2)
        self.assertIsNone(accept([GCM, CBC], answer))

    def test_notOffered(self):
        answer = ike((E, EncrId.AES_CBC, 192), (P, PrfId.HMAC_SHA2_256), (I, IntegId.HMAC_SHA2_256_128), (D, DhId.ECP_256), number=2)
        self.assertIsNone(accept([GCM, CBC], answer))

    def test_missingType(self):
        answer = ike((E, EncrId.AES_CBC, 256), (P, PrfId.HMAC_SHA2_256), (D, DhId.ECP_256), number=2)
        self.assertIsNone(accept([GCM, CBC], answer))

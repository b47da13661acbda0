"""
Tests for L{ikedtx.core.cryptoglue.isSupported}: its answers, remembered.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core import cryptoglue
from ikedtx.core.proposals import Transform
from ikedtx.wire.constants import DhId, EncrId, IntegId, PrfId, ProtocolId, TransformType


class IsSupportedTests(SynchronousTestCase):
    def setUp(self):
        self.patch(cryptoglue, "_supported", {})

    def test_answers(self):
        """
        The same answers asked once or twice, for IKE and ESP: a key length
        AES does not take and an unknown id are refused, PRFs are IKE's only.
        """
        cases = [
            (Transform(TransformType.ENCR, EncrId.AES_GCM_16, 256), None, True),
            (Transform(TransformType.ENCR, EncrId.AES_GCM_16, 100), None, False),
            (Transform(TransformType.ENCR, 0xFFF0, 128), None, False),
            (Transform(TransformType.PRF, PrfId.HMAC_SHA2_256), None, True),
            (Transform(TransformType.PRF, PrfId.HMAC_SHA2_256), ProtocolId.ESP, False),
            (Transform(TransformType.INTEG, IntegId.NONE), ProtocolId.ESP, True),
            (Transform(TransformType.DH, DhId.CURVE25519), None, True),
            (Transform(TransformType.DH, 0xFFF0), None, False),
        ]
        for _ in range(2):
            self.assertEqual([cryptoglue.isSupported(t, p) for t, p, _ in cases], [want for _, _, want in cases])
        self.assertEqual(len(cryptoglue._supported), len(cases))

    def test_bounded(self):
        """
        What peers ask about is remembered up to a bound, and answered
        beyond it all the same.
        """
        self.patch(cryptoglue, "_SUPPORTED_MAX", 3)
        for keyLength in range(10):
            self.assertFalse(cryptoglue.isSupported(Transform(TransformType.ENCR, EncrId.AES_CBC, 1000 + keyLength)))
        self.assertEqual(len(cryptoglue._supported), 3)
        self.assertTrue(cryptoglue.isSupported(Transform(TransformType.ENCR, EncrId.AES_CBC, 128)))

# -*- test-case-name: tests.test_wire_constants -*-
"""
Tests for L{ikedtx.wire.constants}: the IANA numbers.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire.constants import (
    ExchangeType,
    NotifyType,
    PayloadType,
    TransformType,
    isErrorNotify,
    nameOf,
)


class NotifyTypeTests(SynchronousTestCase):
    """
    The Notify Message Types registry (RFC 7296 3.10.1 and its IANA
    registry, "IKEv2 Notify Message Error Types" and "Status Types").
    """

    def test_errorTypes(self):
        """
        Every registered error type is present: 1, 4, 5, 7, 9, 11, 14, 17,
        24 from RFC 7296 and the contiguous block 34-49 added since.
        """
        errors = sorted(t.value for t in NotifyType if t.value < 16384)
        self.assertEqual(
            errors, [1, 4, 5, 7, 9, 11, 14, 17, 24] + list(range(34, 50))
        )

    def test_statusTypes(self):
        """
        The status types are registered contiguously from 16384
        (INITIAL_CONTACT) to 16446 (PPK_IDENTITY_KEY).
        """
        status = sorted({t.value for t in NotifyType if t.value >= 16384})
        self.assertEqual(status, list(range(16384, 16447)))

    def test_groupSender(self):
        """
        16429 is registered as GROUP_SENDER; its first name,
        SENDER_REQUEST_ID, is kept as an alias.
        """
        self.assertIs(NotifyType.SENDER_REQUEST_ID, NotifyType.GROUP_SENDER)
        self.assertEqual(nameOf(NotifyType, 16429), "GROUP_SENDER")

    def test_isErrorNotify(self):
        """
        RFC 7296 3.10.1: types below 16384 are errors, others status.
        """
        self.assertTrue(isErrorNotify(NotifyType.INVALID_SYNTAX))
        self.assertTrue(isErrorNotify(9000))
        self.assertFalse(isErrorNotify(NotifyType.COOKIE))
        self.assertFalse(isErrorNotify(0))


class OtherRegistryTests(SynchronousTestCase):
    """
    Spot checks of the other registries.
    """

    def test_nameOfUnassigned(self):
        """
        L{nameOf} renders an unassigned number with the registry name.
        """
        self.assertEqual(nameOf(PayloadType, 200), "PayloadType(200)")
        self.assertEqual(nameOf(PayloadType, 53), "SKF")

    def test_exchangeTypes(self):
        """
        Exchange types 34-44 are all assigned.
        """
        self.assertEqual(sorted(ExchangeType), list(range(34, 45)))

    def test_transformTypes(self):
        """
        Transform types 1-14 are assigned (ADDKE1-7 from RFC 9370, KWA and
        GCAUTH from G-IKEv2).
        """
        self.assertEqual(sorted(TransformType), list(range(1, 15)))

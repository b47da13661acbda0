# -*- test-case-name: tests.test_config_addke -*-
"""
Tests for ikedtx's iked.conf extension C{addke1} ... C{addke7}: the
additional key exchanges of RFC 9370 in C{ikesa} proposals.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import ConfigError, parseConfig
from ikedtx.config.printer import renderConfig
from ikedtx.wire.constants import DhId, TransformType

POLICY = 'ikev2 "p" esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 %s psk "secret"'


def ikeProposals(words):
    return parseConfig(POLICY % (words,)).policies[0].ikeProposals


class AddkeTests(SynchronousTestCase):
    def test_required(self):
        """
        C{addke1 mlkem768} puts one ADDKE1 (type 6) transform ML-KEM-768
        (36) into the proposal, after iked's transforms.
        """
        (proposal,) = ikeProposals("ikesa enc aes-256-gcm group curve25519 addke1 mlkem768")
        self.assertEqual([(t.type, t.id) for t in proposal.transforms][-2:],
                         [(TransformType.PRF, 2), (TransformType.ADDKE1, DhId.ML_KEM_768)])
        self.assertEqual([t.id for t in proposal.ofType(TransformType.DH)], [DhId.CURVE25519])

    def test_optionalAndSeveral(self):
        """
        Several methods for one N are alternatives (C{none} makes it
        optional); the types go in order of N whatever the order written.
        """
        (proposal,) = ikeProposals("ikesa enc aes-256-gcm addke2 mlkem1024 addke2 none addke1 mlkem768")
        self.assertEqual([(t.type, t.id) for t in proposal.transforms if t.type >= TransformType.ADDKE1], [
            (TransformType.ADDKE1, DhId.ML_KEM_768), (TransformType.ADDKE2, DhId.ML_KEM_1024),
            (TransformType.ADDKE2, DhId.NONE)])

    def test_bothProposalKinds(self):
        """
        An C{ikesa} without a cipher becomes iked's AEAD and non-AEAD
        proposals; both carry the additional key exchanges.
        """
        proposals = ikeProposals("ikesa group curve25519 addke3 ecp256")
        self.assertEqual(len(proposals), 2)
        for proposal in proposals:
            self.assertEqual([t.id for t in proposal.ofType(TransformType.ADDKE3)], [DhId.ECP_256])

    def test_childsa(self):
        """
        In C{childsa} they are the additional key exchanges of
        CREATE_CHILD_SA (IKE_FOLLOWUP_KE), in the AEAD and non-AEAD
        proposals alike.
        """
        proposals = parseConfig(POLICY % ("childsa group curve25519 addke1 mlkem1024",)).policies[0].childProposals
        self.assertEqual(len(proposals), 2)
        for proposal in proposals:
            self.assertEqual([t.id for t in proposal.ofType(TransformType.ADDKE1)], [DhId.ML_KEM_1024])

    def test_printed(self):
        """
        C{iked -n -v} prints them back as C{addkeN name}, and the printed
        text parses to the same proposals.
        """
        text = renderConfig(parseConfig(POLICY % ("ikesa enc aes-256-gcm addke1 mlkem768 addke1 none",)))
        self.assertIn(" addke1 mlkem768 addke1 none", text)
        again = parseConfig(text.replace("local any ", ""))
        self.assertEqual(again.policies[0].ikeProposals,
                         ikeProposals("ikesa enc aes-256-gcm addke1 mlkem768 addke1 none"))

    def test_errors(self):
        """
        Unknown or abbreviated names (a prefix would pick one of the ML-KEM
        sizes silently) and ML-KEM-512 (not offered by cryptography) are
        refused with the line and the reason.
        """
        for words, message in [
            ("ikesa enc aes-256-gcm addke1 mlkem", "mlkem not a valid additional key exchange"),
            ("ikesa enc aes-256-gcm addke1 mlkem512", "mlkem512 not a valid additional key exchange"),
            ("ikesa enc aes-256-gcm addke8 mlkem768", ""),  # not a keyword: a later error
        ]:
            error = self.assertRaises(ConfigError, parseConfig, POLICY % (words,))
            self.assertIn(message, str(error))
            self.assertIn(": 1: ", str(error))

"""
Tests for L{ikedtx.auth.eapbackend}: the step record, and the local
MSCHAPv2 user table as an L{IEAPBackend}.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ikedtx.auth import eap
from ikedtx.auth.eapbackend import EAPStep, IEAPBackend, IEAPSession, LocalMSCHAPv2Backend
from ikedtx.config.model import User


def fired(d):
    results = []
    d.addBoth(results.append)
    (result,) = results
    return result


class EAPStepTests(SynchronousTestCase):
    def test_successNeedsMSK(self):
        self.assertRaises(ValueError, EAPStep, b"\x03\x00\x00\x04", True, None)
        self.assertRaises(ValueError, EAPStep, b"\x04\x00\x00\x04", False, b"k" * 64)

    def test_mskNotInRepr(self):
        self.assertNotIn("kkkk", repr(EAPStep(b"\x03\x00\x00\x04", True, b"k" * 64)))


class LocalBackendTests(SynchronousTestCase):
    def setUp(self):
        self.backend = LocalMSCHAPv2Backend((User("alice", "s3cret"),))
        self.session = self.backend.newSession(None, b"alice")

    def test_interfaces(self):
        verifyObject(IEAPBackend, self.backend)
        verifyObject(IEAPSession, self.session)
        self.assertNotIn("s3cret", repr(self.backend) + repr(self.session))

    def run_(self, client):
        step = fired(self.session.start())
        steps = [step]
        while step.outcome is None:
            answer = client.receive(step.packet)
            step = fired(self.session.receive(answer))
            steps.append(step)
        return steps

    def test_success(self):
        """
        Identity, Challenge, Success Request, EAP Success with the MSK the
        client computes too; the Deferreds have fired.
        """
        client = eap.MSCHAPv2Client("alice", "s3cret")
        steps = self.run_(client)
        self.assertEqual([s.outcome for s in steps], [None, None, None, True])
        self.assertEqual(steps[-1].packet[0], eap.SUCCESS)
        client.receive(steps[-1].packet)
        self.assertEqual(steps[-1].msk, client.msk)
        self.assertEqual(steps[-1].identity, "alice")

    def test_wrongPassword(self):
        steps = self.run_(eap.MSCHAPv2Client("alice", "wrong"))
        self.assertEqual(steps[-1].outcome, False)
        self.assertEqual(steps[-1].packet[0], eap.FAILURE)
        self.assertIn("wrong password", steps[-1].reason)
        self.assertNotIn("s3cret", steps[-1].reason)

    def test_malformed(self):
        """
        A malformed packet fails the session (IKEv2 cannot drop it).
        """
        fired(self.session.start())
        step = fired(self.session.receive(b"\x02\x00\x00\x09\x01"))
        self.assertEqual((step.outcome, step.packet), (False, None))
        self.assertIn("malformed", step.reason)

    def test_aborted(self):
        self.session.abort()
        self.assertIsInstance(fired(self.session.start()).value, RuntimeError)

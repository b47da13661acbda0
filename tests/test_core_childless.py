"""
Tests for childless IKE SAs (RFC 6023) in L{ikedtx.core}: the
CHILDLESS_IKEV2_SUPPORTED notify of IKE_SA_INIT, and an IKE_AUTH without a
Child SA (no SA, TSi, TSr) taken by the responder.
"""

from ikedtx.core.states import IKEState
from ikedtx.core.tasks import registry
from ikedtx.core.tasks.child import ChildCreateTask
from ikedtx.wire.constants import ExchangeType, NotifyType
from ikedtx.wire.message import Message

from tests.test_core_exchanges import ExchangeTestCase


def _notifies(data):
    message = Message.decode(data)
    return [p.notifyType for p in message.payloads if hasattr(p, "notifyType")]


class ChildlessTests(ExchangeTestCase):
    def test_announced(self):
        """
        The initiator says CHILDLESS_IKEV2_SUPPORTED in its IKE_SA_INIT
        request, the responder in its response (RFC 6023 3).
        """
        self.establish()
        request, response = self.network.delivered[0][0], self.network.delivered[1][0]
        self.assertIn(NotifyType.CHILDLESS_IKEV2_SUPPORTED, _notifies(request))
        self.assertIn(NotifyType.CHILDLESS_IKEV2_SUPPORTED, _notifies(response))
        self.assertTrue(self.a.ikeSAs[0].peerChildless)
        self.assertTrue(self.b.ikeSAs[0].peerChildless)

    def test_toAnyInitiator(self):
        """
        The responder announces it also to an initiator that did not (an
        initiator that wants a childless IKE SA, as charon's C{childless =
        force}, looks for it in the response and does not send it).
        """
        from ikedtx.core.tasks import capabilities

        self.makePair()
        original = capabilities.capabilityPayloads

        def without(core, ikeSA):
            return [p for p in original(core, ikeSA)
                    if getattr(p, "notifyType", None) != NotifyType.CHILDLESS_IKEV2_SUPPORTED or not ikeSA.initiator]
        self.patch(capabilities, "capabilityPayloads", without)
        self.a.initiate("ab")
        self.network.deliverOne()
        data, _, _ = self.network.deliverOne()
        self.assertIn(NotifyType.CHILDLESS_IKEV2_SUPPORTED, _notifies(data))

    def test_responderTakesChildlessAuth(self):
        """
        An IKE_AUTH request with no SA, TSi or TSr (the initiator's
        C{childless = force}, as strongSwan's) authenticates the IKE SA:
        both sides hold it VALID with no Child SA and nothing in the
        datapath; a Child SA can be added later with CREATE_CHILD_SA.
        """
        def childless(requestId):
            return [t for t in original(requestId) if not isinstance(t, ChildCreateTask)]
        original = registry.establishTasks
        self.patch(registry, "establishTasks", childless)
        a, b = self.makePair()
        a.initiate("ab")
        self.network.pump()
        (ikeA,), (ikeB,) = a.ikeSAs, b.ikeSAs
        self.assertEqual((ikeA.state, ikeB.state), (IKEState.VALID, IKEState.VALID))
        self.assertEqual((ikeA.children, ikeB.children), ([], []))
        self.assertEqual((b.kernel.sas, b.kernel.flows), ({}, []))
        auth = [d for d, _, _ in self.network.delivered if Message.decode(d).exchangeType == ExchangeType.IKE_AUTH]
        self.assertEqual(len(auth), 2)
        requestId = a.command(a.core.createChildSA, ikeA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        self.assertEqual([c.spiIn for c in ikeB.children], [child.spiOut])


class ChildlessInitiatorTests(ExchangeTestCase):
    def _settings(self, mode):
        from ikedtx.core.settings import CoreSettings
        return CoreSettings(childless=mode)

    def test_prefer(self):
        """
        With C{childless} C{prefer} (or C{force}) and a responder that
        announced the extension, our IKE_AUTH has no SA, TSi or TSr
        (RFC 6023 4) and the Child SA follows by CREATE_CHILD_SA with the
        SPI allocated for it; the initiate command succeeds with the IKE SA
        once that Child SA is installed.
        """
        for mode in ("prefer", "force"):
            a, b = self.makePair(settingsA=self._settings(mode))
            requestId = a.initiate("ab")
            self.network.pump()
            ikeSA = self.assertSucceeded(a, requestId)
            self.assertIs(ikeSA, a.ikeSAs[0])
            self.assertEqual(self.exchangeTypes(), [
                (ExchangeType.IKE_SA_INIT, False), (ExchangeType.IKE_SA_INIT, True),
                (ExchangeType.IKE_AUTH, False), (ExchangeType.IKE_AUTH, True),
                (ExchangeType.CREATE_CHILD_SA, False), (ExchangeType.CREATE_CHILD_SA, True)])
            self.assertChildKeysMatch(a, b)
            self.assertEqual(len(a.kernel.sas), 2)
            # One SPI allocated: the IKE_AUTH's, handed on.
            self.assertEqual([spi for kind, spi in a.kernel.log if kind == "allocateSpi"],
                             [a.ikeSAs[0].children[0].spiIn])

    def test_forceWithoutSupport(self):
        """
        C{force} against a responder that did not announce it fails the
        IKE SA before IKE_AUTH is sent; C{prefer} then makes the Child SA in
        IKE_AUTH.
        """
        from ikedtx.core.errors import NegotiationFailed
        from ikedtx.core.tasks import capabilities

        original = capabilities.capabilityPayloads

        def without(core, ikeSA):
            return [p for p in original(core, ikeSA)
                    if getattr(p, "notifyType", None) != NotifyType.CHILDLESS_IKEV2_SUPPORTED or ikeSA.initiator]
        self.patch(capabilities, "capabilityPayloads", without)
        a, b = self.makePair(settingsA=self._settings("force"))
        requestId = a.initiate("ab")
        self.network.pump()
        self.assertFailedWith(a, requestId, NegotiationFailed)
        self.assertEqual(a.ikeSAs, [])
        a, b = self.makePair(settingsA=self._settings("prefer"))
        requestId = a.initiate("ab")
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertNotIn((ExchangeType.CREATE_CHILD_SA, False), self.exchangeTypes())

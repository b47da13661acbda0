"""
Tests for L{ikedtx.core.screening}: the checks a peer's message passes
before any task sees it, and the rate limit of the debug lines for what is
dropped. (tests.test_hostile sends each of these messages to a live
daemon.)
"""

from types import SimpleNamespace

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core import screening
from ikedtx.core.states import IKEState
from ikedtx.wire.constants import ExchangeType, HeaderFlag, NotifyType
from ikedtx.wire.errors import InvalidSyntax, UnsupportedCriticalPayload
from ikedtx.wire.header import Header
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import EncryptedFragment, Encrypted, Notify

from tests.test_core_exchanges import ExchangeTestCase

SPI = b"\x01" * 8
ZERO = b"\x00" * 8


class QuietDropsTests(SynchronousTestCase):
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def lines(self):
        return [e for e in self.events if e.get("log_namespace", "").endswith("QuietDrops")]

    def test_burstThenSilence(self):
        """
        At most C{burst} debug lines a period; the next period's first line
        says how many were left out.
        """
        clock = Clock()
        drops = screening.QuietDrops(clock.seconds, burst=3, period=60.0)
        logged = [drops.drop(("192.0.2.1", 500), "why") for _ in range(5)]
        self.assertEqual(logged, [True, True, True, False, False])
        self.assertEqual(len(self.lines()), 3)
        self.assertEqual({e["log_level"] for e in self.lines()}, {LogLevel.debug})
        clock.advance(60)
        self.assertTrue(drops.drop(("192.0.2.1", 500), "why"))
        self.assertEqual(self.lines()[-1]["more"], " (and 2 more not logged)")
        self.assertEqual(drops.suppressed, 0)


class InitRequestTests(SynchronousTestCase):
    def message(self, spiI=SPI, spiR=ZERO, messageId=0):
        return Message(spiI, spiR, ExchangeType.IKE_SA_INIT, HeaderFlag.INITIATOR, messageId)

    def test_zeroSpiI(self):
        """
        RFC 7296 3.1: SPIi MUST NOT be zero.
        """
        self.assertIn("zero initiator SPI", screening.initRequestRefusal(self.message(spiI=ZERO)))

    def test_responderSpiOrMessageId(self):
        self.assertIsNotNone(screening.initRequestRefusal(self.message(spiR=SPI)))
        self.assertIsNotNone(screening.initRequestRefusal(self.message(messageId=1)))

    def test_good(self):
        self.assertIsNone(screening.initRequestRefusal(self.message()))


class ProtectedTests(SynchronousTestCase):
    def setUp(self):
        self.core = SimpleNamespace(config=SimpleNamespace(settings=SimpleNamespace(fragmentation=True)))
        self.ikeSA = SimpleNamespace(peerFragmentation=True, isEstablished=True, state=IKEState.VALID, established=1.0)

    def refusal(self, exchangeType, payloads, flags=HeaderFlag.INITIATOR):
        message = Message(SPI, SPI, exchangeType, flags, 2, payloads=payloads)
        return screening.protectedRefusal(self.core, self.ikeSA, message)

    def test_plain(self):
        """
        RFC 7296 3.14: after IKE_SA_INIT, requests and responses are
        protected.
        """
        self.assertIn("without an SK payload", self.refusal(ExchangeType.INFORMATIONAL, []))
        self.assertIn("IKE_AUTH response", self.refusal(ExchangeType.IKE_AUTH, [Notify(NotifyType.INITIAL_CONTACT)],
                                                        HeaderFlag.RESPONSE))
        self.assertIsNone(self.refusal(ExchangeType.INFORMATIONAL, [Encrypted(0, b"x")]))

    def test_initResponseInClear(self):
        self.assertIsNone(self.refusal(ExchangeType.IKE_SA_INIT, [], HeaderFlag.RESPONSE))

    def test_fragmentsNeedBothSides(self):
        """
        RFC 7383 2.5: SKF only when both peers support fragmentation.
        """
        fragment = [EncryptedFragment(0, 1, 2, b"x")]
        self.assertIsNone(self.refusal(ExchangeType.IKE_AUTH, fragment))
        self.ikeSA.peerFragmentation = False
        self.assertIn("not negotiated", self.refusal(ExchangeType.IKE_AUTH, fragment))
        self.ikeSA.peerFragmentation = True
        self.core.config.settings.fragmentation = False
        self.assertIn("not negotiated", self.refusal(ExchangeType.IKE_AUTH, fragment))

    def test_beforeAuthentication(self):
        """
        Before authentication only IKE_AUTH and IKE_INTERMEDIATE requests;
        responses are the pending request's business.
        """
        sealed = [Encrypted(0, b"x")]
        for state in (IKEState.SA_INIT, IKEState.AUTH_REQUEST):
            self.ikeSA.state = state
            for exchangeType in (ExchangeType.INFORMATIONAL, ExchangeType.CREATE_CHILD_SA, 99):
                self.assertIn("before the IKE SA is authenticated", self.refusal(exchangeType, sealed))
            for exchangeType in (ExchangeType.IKE_AUTH, ExchangeType.IKE_INTERMEDIATE):
                self.assertIsNone(self.refusal(exchangeType, sealed))
            self.assertIsNone(self.refusal(ExchangeType.INFORMATIONAL, sealed, HeaderFlag.RESPONSE))
        self.ikeSA.state = IKEState.CLOSING
        self.assertIsNone(self.refusal(ExchangeType.INFORMATIONAL, sealed))


class ClearAnswerTests(SynchronousTestCase):
    def header(self, spiI=SPI, spiR=ZERO, exchangeType=ExchangeType.IKE_SA_INIT, flags=HeaderFlag.INITIATOR,
               messageId=0):
        return Header(spiI, spiR, 0, 2, 0, exchangeType, flags, messageId, 28)

    def test_criticalInInit(self):
        """
        RFC 7296 2.5: UNSUPPORTED_CRITICAL_PAYLOAD with the type.
        """
        error = UnsupportedCriticalPayload("x", payloadType=200, header=self.header())
        self.assertEqual(screening.clearAnswerTo(error), (NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, b"\xc8"))

    def test_notAnswered(self):
        """
        Other errors, other exchanges, responses and impossible headers get
        no answer in the clear.
        """
        for header in (self.header(spiI=ZERO), self.header(spiR=SPI), self.header(messageId=1),
                       self.header(exchangeType=ExchangeType.INFORMATIONAL),
                       self.header(flags=HeaderFlag.RESPONSE), None):
            error = UnsupportedCriticalPayload("x", payloadType=200, header=header)
            self.assertIsNone(screening.clearAnswerTo(error))
        self.assertIsNone(screening.clearAnswerTo(InvalidSyntax("x", header=self.header())))


class StrayKeyExchangeTests(SynchronousTestCase):
    """
    L{ikedtx.core.tasks.child.refuseStrayKeyExchange}: RFC 7296 1.3.1.
    """

    def check(self, groups, withKe, chosenGroup=0):
        from ikedtx.core.errors import RemoteProtocolError
        from ikedtx.core.tasks.child import refuseStrayKeyExchange
        from ikedtx.wire.constants import ProtocolId, TransformType
        from ikedtx.wire.payloads import KeyExchange, Proposal, SecurityAssociation, Transform

        transforms = [Transform(TransformType.ENCR, 20, keyLength=128)] + [
            Transform(TransformType.DH, g) for g in groups]
        sa = SecurityAssociation([Proposal(1, ProtocolId.ESP, transforms, b"\x01\x02\x03\x04")])
        payloads = [sa] + ([KeyExchange(14, b"\x01" * 256)] if withKe else [])
        chosen = SimpleNamespace(dhGroup=chosenGroup)
        try:
            refuseStrayKeyExchange(payloads, sa, chosen)
        except RemoteProtocolError as e:
            return e.notify
        return None

    def test_keWithoutAnyGroup(self):
        self.assertEqual(self.check([], True), NotifyType.INVALID_SYNTAX)
        self.assertEqual(self.check([0], True), NotifyType.INVALID_SYNTAX)

    def test_optionalPfs(self):
        """
        The peer offered a group and NONE; we chose NONE: its KE is unused.
        """
        self.assertIsNone(self.check([14, 0], True))

    def test_noKe(self):
        self.assertIsNone(self.check([], False))
        self.assertIsNone(self.check([14], True, chosenGroup=14))


class ClosingTests(ExchangeTestCase):
    def test_simultaneousDeletes(self):
        """
        RFC 7296 1.4.1: both peers delete the IKE SA at once; each answers
        the other's Delete although its own SA is CLOSING (the screening
        before authentication must not take CLOSING for half-open).
        """
        a, b, ikeSA = self.establish()
        fromA = a.command(a.core.deleteIKESA, ikeSA)
        fromB = b.command(b.core.deleteIKESA, b.ikeSAs[0])
        self.assertEqual(len(self.network.inFlight), 2)
        sent = len(self.network.delivered)
        self.network.pump()
        self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))
        self.assertIn(fromA, a.results)
        self.assertIn(fromB, b.results)
        answered = [Message.decode(d) for d, _, _ in self.network.delivered[sent:]]
        self.assertEqual(sorted((m.isInitiator, m.isResponse) for m in answered),
                         [(False, False), (False, True), (True, False), (True, True)])

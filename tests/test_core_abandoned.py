# -*- test-case-name: tests.test_core_abandoned -*-
"""
Exchanges left half-way: state a responder keeps for the peer's next round
(an IKE_FOLLOWUP_KE, RFC 9370 2.2.3) that never comes, SPIs allocated for
a Child SA that is never installed, and what the IKE SA holds when it goes
in the middle of an exchange. Each is freed - the SPIs given back to the
datapath (L{ReleaseSpi}), the secrets zeroed - after the responder's
timeout (L{CoreSettings.halfOpenTimeout}) or when the IKE SA goes; two
in-memory cores on a fake clock.
"""

from ikedtx.core.actions import InstallChildSA, ReleaseSpi
from ikedtx.core.settings import CoreSettings
from ikedtx.core.states import IKEState
from ikedtx.core.tasks.child import ChildCreateTask
from ikedtx.core.tasks.ikerekey import IKERekeyTask
from ikedtx.core.timers import TimerKey
from ikedtx.wire.constants import ExchangeType, NotifyType, ProtocolId
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify

from tests.test_core_async import SlowHost
from tests.test_core_exchanges import A_ADDR, B_ADDR, initiatorConfig, responderConfig
from tests.test_core_rekeyaddke import CHILD_ADDKE, IKE_ADDKE, AddkeRekeyTestCase

FOLLOWUP = ExchangeType.IKE_FOLLOWUP_KE
TIMEOUT = CoreSettings().halfOpenTimeout


class AbandonedTestCase(AddkeRekeyTestCase):
    def waitingResponder(self, host, kind):
        """
        The responder task of C{kind} that C{host}'s IKE SA keeps for the
        peer's next round.
        """
        (ikeSA,) = [sa for sa in host.ikeSAs if sa.taskManager.responding]
        (task,) = [t for t in ikeSA.taskManager.responding if isinstance(t, kind) and t.followup is not None]
        return ikeSA, task

    def startChildAddke(self):
        """
        A starts a Child SA rekey with an additional key exchange; B
        answers it and waits for the IKE_FOLLOWUP_KE, which never reaches
        it (nor any retransmission of it).

        @return: A, B, B's waiting task, its secrets, the first
            IKE_FOLLOWUP_KE request.
        """
        a, b, _ = self.establishAddke(CHILD_ADDKE, child=300)
        self.rekeyChild(a)
        self.network.deliverOne()  # CREATE_CHILD_SA request
        _, task = self.waitingResponder(b, ChildCreateTask)
        secrets = list(task.followup.secrets)
        self.assertTrue(secrets and all(any(s) for s in secrets))
        self.network.deliverOne()  # its response
        (request,) = self.network.inFlight
        self.assertEqual(Message.decode(request[0]).exchangeType, FOLLOWUP)
        self.network.inFlight = []
        return a, b, task, secrets, request

    def dropEverything(self, seconds):
        """
        Let C{seconds} pass in steps, every datagram lost.
        """
        for _ in range(int(seconds)):
            self.network.clock.advance(1)
            self.network.inFlight = []

    def assertReleased(self, host, spi):
        self.assertIn(ReleaseSpi(ProtocolId.ESP, spi, A_ADDR, B_ADDR) if host.address == B_ADDR
                      else ReleaseSpi(ProtocolId.ESP, spi, B_ADDR, A_ADDR), host.eventsOf(ReleaseSpi))
        self.assertNotIn((ProtocolId.ESP, spi), host.kernel._reserved)


class FollowupTimeoutTests(AbandonedTestCase):
    def test_childRekeyAbandoned(self):
        """
        RFC 9370 2.2.3: a responder that answered a CREATE_CHILD_SA with
        ADDITIONAL_KEY_EXCHANGE and never gets the IKE_FOLLOWUP_KE frees
        the exchange's state after the half-open timeout: its SPI goes back
        to the datapath, the shared secret so far is zeroed, nothing is
        installed; the IKE SA and its Child SA stay.  A late round is then
        answered STATE_NOT_FOUND.
        """
        a, b, task, secrets, request = self.startChildAddke()
        spi = task.spis["spi"]
        self.assertIn((ProtocolId.ESP, spi), b.kernel._reserved)
        installs = len(b.eventsOf(InstallChildSA))
        (ikeSA,) = b.ikeSAs
        self.dropEverything(TIMEOUT - 1)
        self.assertEqual(ikeSA.taskManager.responding, [task])
        self.assertEqual(b.eventsOf(ReleaseSpi), [])
        self.dropEverything(1)
        self.assertEqual(ikeSA.taskManager.responding, [])
        self.assertEqual([bytes(s) for s in secrets], [bytes(len(s)) for s in secrets])
        self.assertReleased(b, spi)
        self.assertEqual(len(b.eventsOf(InstallChildSA)), installs)
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID])
        self.assertEqual(len(ikeSA.children), 1)
        b.receive(request[0], request[2], request[1])
        (response,) = self.network.inFlight
        payloads = Message.decode(response[0]).decrypt(ikeSA.cipherOut)
        self.assertEqual([p.notifyType for p in payloads if isinstance(p, Notify)], [NotifyType.STATE_NOT_FOUND])

    def test_eachRoundGetsTheTimeout(self):
        """
        The timeout counts from the responder's last answer: a follow-up
        that comes within it is answered and the Child SA installed; the
        timer then goes.
        """
        a, b, _ = self.establishAddke(CHILD_ADDKE, child=300)
        self.rekeyChild(a)
        self.network.deliverOne()
        self.network.deliverOne()
        (ikeSA,) = b.ikeSAs
        self.network.clock.advance(TIMEOUT - 1)
        self.network.pump()
        self.assertEqual(ikeSA.taskManager.responding, [])
        self.assertEqual(b.eventsOf(ReleaseSpi), [])
        self.assertOneChildPair()
        self.assertNotIn(TimerKey.responder(ikeSA.localSPI), b.timers)

    def test_ikeRekeyAbandoned(self):
        """
        The same for an IKE SA rekey with an additional key exchange
        (RFC 9370 2.2.2): the responder's secrets are zeroed after the
        timeout and no new IKE SA is made.
        """
        a, b, _ = self.establishAddke(IKE_ADDKE, ike=3000)
        (old,) = a.ikeSAs
        a.execute(a.core.timerExpired(TimerKey.ikeRekey(old.localSPI)))
        self.network.deliverOne()
        self.network.deliverOne()
        ikeSA, task = self.waitingResponder(b, IKERekeyTask)
        secrets = list(task.followup.secrets)
        self.assertTrue(secrets and all(any(s) for s in secrets))
        self.dropEverything(TIMEOUT)
        self.assertEqual(ikeSA.taskManager.responding, [])
        self.assertIsNone(task.followup)
        self.assertEqual([bytes(s) for s in secrets], [bytes(len(s)) for s in secrets])
        self.assertIsNone(task.new)
        self.assertEqual(list(b.core.ikeSAs.values()), [ikeSA])


class IKESAGoneTests(AbandonedTestCase):
    def test_deletedWhileFollowupWaits(self):
        """
        The IKE SA deleted while the responder waits for an IKE_FOLLOWUP_KE:
        the exchange's SPI is given back and its secrets zeroed at once.
        """
        a, b, task, secrets, _ = self.startChildAddke()
        spi = task.spis["spi"]
        (ikeSA,) = b.ikeSAs
        b.core.destroy(ikeSA, "test")
        b.execute(b.core._drain())
        self.assertEqual([bytes(s) for s in secrets], [bytes(len(s)) for s in secrets])
        self.assertReleased(b, spi)

    def test_spiAfterTheIKESAWent(self):
        """
        A responder's SPI that the datapath allocates after the IKE SA went
        (privilege separation answers later) is given back when it comes.
        """
        from tests.corehelpers import Network

        self.network = Network()
        a = self.a = SlowHost(self.network, A_ADDR, initiatorConfig())
        b = self.b = SlowHost(self.network, B_ADDR, responderConfig())
        a.initiate("ab")
        self.network.pump()
        a.allocateAll()
        self.network.deliverOne()  # IKE_AUTH request: B asks for an SPI
        self.assertEqual(len(b.allocations), 1)
        (ikeSA,) = b.ikeSAs
        b.core.destroy(ikeSA, "test")
        b.execute(b.core._drain())
        self.assertEqual(b.eventsOf(ReleaseSpi), [])
        b.allocateAll()
        (release,) = b.eventsOf(ReleaseSpi)
        self.assertNotIn((ProtocolId.ESP, release.spi), b.kernel._reserved)
        self.assertEqual(b.kernel._reserved, set())


class FailedChildTests(AbandonedTestCase):
    def test_initiatorSpiOfRefusedIKESA(self):
        """
        An IKE SA refused in IKE_AUTH (the peer's cap of IKE SAs per
        identity): the SPI its Child SA was to use goes back to the
        datapath (before, each such attempt left one reserved for good).
        """
        a, b = self.makePair(settingsB=CoreSettings(ikeSAsPerIdentity=1))
        a.initiate("ab")
        self.network.pump()
        reserved = set(a.kernel._reserved)
        a.initiate("ab")
        self.network.pump()
        self.assertEqual(len([sa for sa in a.ikeSAs if sa.state == IKEState.VALID]), 1)
        (release,) = a.eventsOf(ReleaseSpi)
        self.assertEqual((release.protocol, release.source, release.destination), (ProtocolId.ESP, B_ADDR, A_ADDR))
        self.assertEqual(a.kernel._reserved, reserved)


class EAPAbandonedTests(AbandonedTestCase):
    """
    An IKE_AUTH with EAP (RFC 7296 2.16) that the peer leaves half-way:
    the responder's IKE SA is not established, so the half-open timeout
    deletes it; the EAP session is aborted and the MSK zeroed.
    """

    def negotiateEAP(self):
        from tests.test_core_eap import EAPTestCase

        helper = EAPTestCase("negotiate")
        helper.mktemp = self.mktemp
        helper.negotiate()
        self.network, self.a, self.b = helper.network, helper.a, helper.b
        return self.a, self.b

    def test_afterEAPSuccess(self):
        """
        The peer stops after the EAP Success, before its AUTH from the MSK.
        """
        from ikedtx.core.tasks import eap as eaptask

        a, b = self.negotiateEAP()
        while not (b.ikeSAs and b.ikeSAs[0].eap is not None and b.ikeSAs[0].eap.state == eaptask.SUCCEEDED):
            self.network.deliverOne()
        (ikeSA,) = b.ikeSAs
        msk = ikeSA.eap.msk
        self.assertTrue(any(msk))
        self.dropEverything(TIMEOUT)
        self.assertEqual(b.ikeSAs, [])
        self.assertEqual(ikeSA.state, IKEState.CLOSED)
        self.assertEqual(bytes(msk), bytes(len(msk)))
        self.assertIsNone(ikeSA.eap.msk)

    def test_midConversation(self):
        """
        The peer stops in the middle of the EAP conversation: the session
        is aborted when the half-open timeout deletes the IKE SA.
        """
        from ikedtx.core.actions import AbortEAP
        from ikedtx.core.tasks import eap as eaptask

        a, b = self.negotiateEAP()
        while not (b.ikeSAs and b.ikeSAs[0].eap is not None):
            self.network.deliverOne()
        (ikeSA,) = b.ikeSAs
        self.assertEqual(ikeSA.eap.state, eaptask.RUNNING)
        self.dropEverything(TIMEOUT)
        self.assertEqual(b.ikeSAs, [])
        self.assertEqual(len(b.eventsOf(AbortEAP)), 1)

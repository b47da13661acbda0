# -*- test-case-name: tests.test_core_async -*-
"""
Tests for the core's datapath inputs (L{ikedtx.core.engine.IKECore}
spiAllocated, spiAllocationFailed, childInstalled, installFailed, acquire,
expired), the PFS check of a CREATE_CHILD_SA initiator, and the
re-initiation of active policies with backoff.
"""


from ikedtx.core.actions import AllocateSpi, InstallChildSA, RemoveChildSA
from ikedtx.core.errors import NegotiationFailed
from ikedtx.core.settings import CoreSettings
from ikedtx.core.states import ChildState, IKEState
from ikedtx.core.timers import BackoffPolicy, TimerKey
from ikedtx.kernel.interfaces import KernelError, KernelSelector
from ikedtx.wire.constants import DhId, ExchangeType, HeaderFlag, PayloadType, TransformType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Proposal, SecurityAssociation, Transform
from tests.corehelpers import Host
from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, initiatorConfig, responderConfig


class SlowHost(Host):
    """
    A host whose datapath answers SPI allocations and installs only when
    the test says so.

    @ivar allocations: L{AllocateSpi} actions not answered yet.
    @ivar installs: L{InstallChildSA} actions not answered yet.
    """

    def __init__(self, *args, **kw):
        Host.__init__(self, *args, **kw)
        self.allocations = []
        self.installs = []

    def execute(self, actions):
        rest = []
        for action in actions:
            if isinstance(action, AllocateSpi):
                self.allocations.append(action)
            elif isinstance(action, InstallChildSA):
                self.installs.append(action)
                self.events.append(action)
            else:
                rest.append(action)
        Host.execute(self, rest)

    def allocateAll(self):
        while self.allocations:
            action = self.allocations.pop(0)
            d = self.kernel.allocateSpi(action.protocol, action.source, action.destination)
            d.addCallback(lambda spi, token=action.token: self.execute(self.core.spiAllocated(token, spi)))


class AsyncTestCase(ExchangeTestCase):
    def makeSlowPair(self, slow="a"):
        from tests.corehelpers import Network

        self.network = Network()
        kinds = {"a": SlowHost if slow == "a" else Host, "b": SlowHost if slow == "b" else Host}
        self.a = kinds["a"](self.network, A_ADDR, initiatorConfig())
        self.b = kinds["b"](self.network, B_ADDR, responderConfig())
        return self.a, self.b

    def spi(self, n):
        return 0x10000 + n


class SpiAllocationTests(AsyncTestCase):
    def test_initiatorWaitsForSpi(self):
        """
        IKE_AUTH is not sent before the datapath allocated the Child SA's
        SPI; it carries that SPI once allocated.
        """
        a, b = self.makeSlowPair("a")
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        self.assertEqual(self.network.inFlight, [])
        (allocation,) = a.allocations
        a.allocations.clear()
        a.execute(a.core.spiAllocated(allocation.token, 0x12345678))
        self.assertEqual(len(self.network.inFlight), 1)
        self.network.deliverOne()
        self.network.deliverOne()
        # Up only once the datapath confirms the install.
        self.assertNotIn(requestId, a.results)
        (install,) = a.installs
        self.assertEqual(install.sas[0].spi, 0x12345678)
        self.assertTrue(install.sas[0].inbound)
        (child,) = a.ikeSAs[0].children
        self.assertEqual(child.state, ChildState.INSTALLING)
        a.execute(a.core.childInstalled(install.reqid))
        self.assertIs(self.assertSucceeded(a, requestId), a.ikeSAs[0])
        self.assertEqual(child.state, ChildState.INSTALLED)

    def test_initiatorSpiFails(self):
        """
        An SPI the datapath cannot allocate fails the command; nothing is
        sent for it.
        """
        a, b = self.makeSlowPair("a")
        requestId = a.initiate("ab")
        self.network.pump()
        (allocation,) = a.allocations
        a.execute(a.core.spiAllocationFailed(allocation.token, KernelError("no SPI")))
        self.assertFailedWith(a, requestId, NegotiationFailed)
        self.assertEqual(self.network.inFlight, [])
        self.assertEqual(a.ikeSAs, [])

    def test_responderWaitsForSpi(self):
        """
        The responder answers IKE_AUTH only once its SPI is allocated; a
        retransmission meanwhile is not answered twice.
        """
        a, b = self.makeSlowPair("b")
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        request = self.network.inFlight[0]
        self.network.deliverOne()
        self.assertEqual(self.network.inFlight, [])
        b.receive(request[0], request[2], request[1])
        self.assertEqual(self.network.inFlight, [])
        b.allocateAll()
        self.assertEqual(len(self.network.inFlight), 1)
        self.network.deliverOne()
        self.assertSucceeded(a, requestId)
        b.execute(b.core.childInstalled(b.installs[0].reqid))
        self.assertEqual(b.ikeSAs[0].children[0].state, ChildState.INSTALLED)

    def test_responderSpiFails(self):
        """
        Without an SPI the responder's IKE SA still comes up, its Child SA
        is refused with TEMPORARY_FAILURE (RFC 7296 2.25).
        """
        a, b = self.makeSlowPair("b")
        requestId = a.initiate("ab")
        self.network.pump()
        (allocation,) = b.allocations
        b.allocations.clear()
        b.execute(b.core.spiAllocationFailed(allocation.token, KernelError("no SPI")))
        self.network.pump()
        self.assertFailedWith(a, requestId, NegotiationFailed)
        self.assertEqual([sa.state for sa in a.ikeSAs + b.ikeSAs], [IKEState.VALID, IKEState.VALID])
        self.assertEqual(b.installs, [])


class InstallTests(AsyncTestCase):
    def test_installFails(self):
        """
        A Child SA the datapath could not install fails the command and is
        deleted with the peer.
        """
        a, b = self.makeSlowPair("a")
        requestId = a.initiate("ab")
        self.network.pump()
        a.allocateAll()
        self.network.pump()
        (install,) = a.installs
        a.execute(a.core.installFailed(install.reqid, KernelError("EINVAL")))
        self.assertFailedWith(a, requestId, NegotiationFailed)
        self.network.pump()
        self.assertEqual((a.ikeSAs[0].children, b.ikeSAs[0].children), ([], []))
        (removed,) = a.eventsOf(RemoveChildSA)
        self.assertEqual((removed.reqid, removed.sas), (install.reqid, install.sas))

    def test_installLate(self):
        """
        An install confirmed after the IKE SA went away changes nothing.
        """
        a, b = self.makeSlowPair("a")
        requestId = a.initiate("ab")
        self.network.pump()
        a.allocateAll()
        self.network.pump()
        (ikeSA,) = a.ikeSAs
        a.execute(a.core.shutdown())
        self.assertEqual(a.core.childInstalled(a.installs[0].reqid), [])
        self.assertIsInstance(a.results[requestId].error, NegotiationFailed)


class PFSMismatchTests(ExchangeTestCase):
    def test_otherGroupInstallsNothing(self):
        """
        A responder whose CREATE_CHILD_SA response chooses another group
        than our KE's is refused: nothing is installed here, and the Child
        SA it made is deleted with it.
        """
        a, b, ikeSA = self.establish(
            initiator=initiatorConfig(extra="childsa enc aes-128-gcm group curve25519 group ecp256"),
            responder=responderConfig(extra="childsa enc aes-128-gcm group curve25519"))
        installsBefore = len(a.eventsOf(InstallChildSA))
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.deliverOne()
        data, source, destination = self.network.inFlight.pop(0)
        ikeSAB = b.ikeSAs[0]
        message = Message.decode(data)
        payloads = message.decrypt(ikeSA.cipherIn)
        for i, payload in enumerate(payloads):
            if isinstance(payload, SecurityAssociation):
                (proposal,) = payload.proposals
                transforms = [Transform(TransformType.DH, DhId.ECP_256) if t.transformType == TransformType.DH else t
                              for t in proposal.transforms]
                payloads[i] = SecurityAssociation([Proposal(proposal.number, proposal.protocolId, transforms, proposal.spi)])
        forged = Message(ikeSA.spiI, ikeSA.spiR, ExchangeType.CREATE_CHILD_SA, HeaderFlag.RESPONSE, message.messageId,
                         encrypted=payloads).encode(ikeSAB.cipherOut)
        a.receive(forged, destination, source)
        self.assertFailedWith(a, requestId, NegotiationFailed)
        self.assertEqual(len(a.eventsOf(InstallChildSA)), installsBefore)
        self.assertEqual(len(ikeSA.children), 1)
        self.assertEqual(len(ikeSAB.children), 2)
        delete = Message.decode(self.network.inFlight[0][0]).decrypt(ikeSAB.cipherIn)
        self.assertEqual([p.payloadType for p in delete], [PayloadType.DELETE])
        self.network.pump()
        self.assertEqual((len(ikeSA.children), len(ikeSAB.children)), (1, 1))


class ReinitiationTests(ExchangeTestCase):
    def test_backoffSchedule(self):
        """
        C{min(initial * factor ** n, maximum)}, plus up to C{jitter} of it.
        """
        policy = BackoffPolicy(initial=1.0, factor=2.0, maximum=10.0, jitter=0.5)
        self.assertEqual([policy.delay(n, 0.0) for n in range(6)], [1.0, 2.0, 4.0, 8.0, 10.0, 10.0])
        self.assertEqual(policy.delay(1, 0.5), 2.5)

    def test_activePolicyReinitiated(self):
        """
        An active policy whose IKE SA cannot be established is initiated
        again after growing delays, and stays up once it is.
        """
        backoff = BackoffPolicy(initial=1.0, factor=2.0, maximum=60.0, jitter=0.0)
        schedule = CoreSettings().retransmit
        a, b = self.makePair(settingsA=CoreSettings(reinitiate=backoff))
        a.execute(a.core.startup())
        self.assertEqual(len(self.network.inFlight), 1)
        # The peer is unreachable: every request is lost.
        starts = []
        for attempt in range(3):
            while not (TimerKey.reinitiate("ab") in a.timers):
                self.network.inFlight.clear()
                a.clock.advance(1)
            starts.append(a.clock.seconds())
            delay = a.timers[TimerKey.reinitiate("ab")].getTime() - a.clock.seconds()
            self.assertEqual(delay, 2.0 ** attempt)
            a.clock.advance(delay)
            self.assertEqual(len(a.ikeSAs), 1)
            self.assertEqual(len(self.network.inFlight), 1)
        # The retransmissions' jitter shortens each timeout by at most its share.
        self.assertTrue(all(later - earlier >= schedule.total() * (1 - schedule.jitter) for earlier, later in zip(starts, starts[1:])))
        # Now the peer answers.
        self.network.pump()
        (ikeSA,) = a.ikeSAs
        self.assertEqual(ikeSA.state, IKEState.VALID)
        self.assertNotIn(TimerKey.reinitiate("ab"), a.timers)
        # Deleted by the peer: initiated again after the first delay.
        b.command(b.core.deleteIKESA, b.ikeSAs[0])
        self.network.pump()
        self.assertEqual(a.ikeSAs, [])
        a.clock.advance(1.0)
        self.network.pump()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID])

    def test_requestedDeleteNotReinitiated(self):
        """
        An IKE SA we delete on request stays deleted.
        """
        a, b = self.makePair()
        a.execute(a.core.startup())
        self.network.pump()
        a.command(a.core.deleteIKESA, a.ikeSAs[0])
        self.network.pump()
        a.clock.advance(3600)
        self.assertEqual((a.ikeSAs, self.network.inFlight), ([], []))


class DatapathEventTests(ExchangeTestCase):
    def test_acquireInitiates(self):
        """
        An acquire for a flow of a policy with no IKE SA initiates it; a
        second one while it is on its way does nothing more.
        """
        from ipaddress import ip_address

        a, b = self.makePair()
        source = KernelSelector(ip_address("10.1.0.5"), ip_address("10.1.0.5"))
        destination = KernelSelector(ip_address("10.2.0.7"), ip_address("10.2.0.7"))
        a.execute(a.core.acquire(0, source, destination))
        a.execute(a.core.acquire(0, source, destination))
        self.assertEqual(len(self.network.inFlight), 1)
        self.network.pump()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID])

    def test_hardExpireDeletes(self):
        """
        A hard expire deletes the Child SA with the peer.
        """
        a, b, ikeSA = self.establish()
        (child,) = ikeSA.children
        a.execute(a.core.expired(child.protocol, child.spiIn, A_ADDR, True))
        self.network.pump()
        self.assertEqual((ikeSA.children, b.ikeSAs[0].children), ([], []))

    def test_softExpireRekeys(self):
        """
        A soft expire starts a rekey (RFC 7296 2.8) and leaves the Child SA
        up until its successor is installed (tests.test_core_rekey).
        """
        a, b, ikeSA = self.establish()
        (child,) = ikeSA.children
        a.execute(a.core.expired(child.protocol, child.spiIn, A_ADDR, False))
        self.assertEqual(len(self.network.inFlight), 1)
        self.assertEqual(child.state, ChildState.INSTALLED)
        self.assertIsNotNone(child.rekeying)

    def test_allTimerKindsDispatch(self):
        """
        Every timer kind has its handler; an expiry for an IKE SA that is
        gone is harmless.
        """
        from ikedtx.core.timers import KINDS

        a, b = self.makePair()
        for kind in KINDS:
            pair = kind in ("childsoft", "childhard", "childrekeyed")
            subject = (b"\x09" * 8, 1) if pair else "x" if kind == "reinitiate" else b"\x09" * 8
            a.core.timerExpired(TimerKey(kind, subject))
        self.assertEqual(self.flushLoggedErrors(), [])


class InitialContactTests(AsyncTestCase):
    def test_concurrentSAsWaitingForSpis(self):
        """
        Two active policies to one peer start together and both IKE SAs
        wait in IKE_AUTH for their SPIs: exactly one of the two requests
        says INITIAL_CONTACT.  (Seen against charon under privilege
        separation, whose SPIs come from the parent: neither said it.)
        """
        from tests.corehelpers import Network
        from tests.test_core_liveness import _policies
        from ikedtx.core.tasks.common import findNotify
        from ikedtx.core.tasks.initialcontact import InitialContactTask
        from ikedtx.wire.constants import NotifyType

        seen = []
        processR = InitialContactTask.processR

        def spy(task, core, ikeSA, message, payloads):
            seen.append(findNotify(payloads, NotifyType.INITIAL_CONTACT) is not None)
            return processR(task, core, ikeSA, message, payloads)

        self.patch(InitialContactTask, "processR", spy)
        nets = [("10.1.%d.0/24" % n, "10.2.%d.0/24" % n) for n in (1, 2)]
        self.network = Network()
        a = SlowHost(self.network, A_ADDR, _policies("a", [("ab%d" % n, o, t) for n, (o, t) in enumerate(nets, 1)]))
        b = Host(self.network, B_ADDR, _policies("b", [("ba%d" % n, t, o) for n, (o, t) in enumerate(nets, 1)]))
        a.execute(a.core.startup())
        self.network.pump()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.AUTH_REQUEST, IKEState.AUTH_REQUEST])
        self.assertEqual(len(a.allocations), 2)
        a.allocateAll()
        self.network.pump()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID, IKEState.VALID])
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID, IKEState.VALID])
        self.assertEqual(sorted(seen), [False, True])

    def test_othersWaitForTheInitialContact(self):
        """
        Of three active policies to one peer whose IKE SAs reach IKE_AUTH
        together, the one that says INITIAL_CONTACT goes first and the
        others send their IKE_AUTH only once it is established (RFC 7296
        2.4: a peer that receives INITIAL_CONTACT after another IKE SA of
        ours is up deletes that one).  Here the peer gets the requests in
        the reverse order, as charon's threads may take them: every IKE SA
        survives on both sides.
        """
        from tests.corehelpers import Network
        from tests.test_core_liveness import _policies

        nets = [("10.1.%d.0/24" % n, "10.2.%d.0/24" % n) for n in (1, 2, 3)]
        self.network = Network()
        a = SlowHost(self.network, A_ADDR, _policies("a", [("ab%d" % n, o, t) for n, (o, t) in enumerate(nets, 1)]))
        b = Host(self.network, B_ADDR, _policies("b", [("ba%d" % n, t, o) for n, (o, t) in enumerate(nets, 1)]))
        a.execute(a.core.startup())
        self.network.pump()
        self.assertEqual(len(a.allocations), 3)
        a.allocateAll()
        while self.network.inFlight:
            self.network.inFlight.reverse()
            self.network.deliverOne()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID] * 3)
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID] * 3)
        self.assertEqual(b.eventsOf(RemoveChildSA), [])
        self.assertEqual([sa.initialContactSent for sa in a.ikeSAs].count(True), 1)

    def test_othersGoOnWhenTheInitialContactFails(self):
        """
        When the IKE SA that said INITIAL_CONTACT fails (the peer never
        answers its IKE_AUTH, three transmissions here: 14 s, within the
        peer's half-open timeout), the IKE SA that waited for it goes on,
        and says INITIAL_CONTACT in its turn.
        """
        from ikedtx.core.retransmit import RetransmitSchedule
        from tests.corehelpers import Network
        from tests.test_core_liveness import _policies

        nets = [("10.1.%d.0/24" % n, "10.2.%d.0/24" % n) for n in (1, 2)]
        self.network = Network()
        a = SlowHost(self.network, A_ADDR, _policies("a", [("ab%d" % n, o, t) for n, (o, t) in enumerate(nets, 1)]),
                     settings=CoreSettings(retransmit=RetransmitSchedule(tries=3)))
        b = Host(self.network, B_ADDR, _policies("b", [("ba%d" % n, t, o) for n, (o, t) in enumerate(nets, 1)]))
        a.execute(a.core.startup())
        self.network.pump()
        a.allocateAll()
        first = next(sa for sa in a.ikeSAs if sa.initialContactSent)
        # It and every retransmission of it are lost; the other one waits.
        while first.state != IKEState.CLOSED:
            self.assertEqual([data[:8] for data, _, _ in self.network.inFlight], [first.spiI] * len(self.network.inFlight))
            self.network.inFlight = []
            a.clock.advance(10)
        self.network.pump()
        self.assertEqual([sa.state for sa in b.ikeSAs].count(IKEState.VALID), 1)
        self.assertNotIn(first, a.ikeSAs)
        self.assertIn(IKEState.VALID, [sa.state for sa in a.ikeSAs])
        self.assertTrue(all(sa.initialContactSent for sa in a.ikeSAs if sa.state == IKEState.VALID))

"""
Tests for L{ikedtx.core.tasks.mobikeupdate}: the responder side of MOBIKE
(RFC 4555 3.5), in memory.  Host a (the initiator) moves to a new address
and sends UPDATE_SA_ADDRESSES from there; host b follows it.
"""

from ikedtx.core.actions import UpdateChildSA
from ikedtx.core.tasks.inform import InformTask
from ikedtx.core.tasks.natd import natPayloads
from ikedtx.wire.constants import NotifyType
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import Notify

from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, responderConfig

MOVED = "192.0.2.99"


class UpdateAddressesTests(ExchangeTestCase):
    def move(self, a, ikeSA, extra=(), natd=None):
        """
        Host a takes the address L{MOVED} and sends UPDATE_SA_ADDRESSES
        from it with C{natd} (default: its real NAT-D payloads) and
        C{extra}; return b's response's payloads.
        """
        self.network.hosts[MOVED] = a
        ikeSA.local = (MOVED, ikeSA.local[1])
        payloads = [Notify(NotifyType.UPDATE_SA_ADDRESSES)] + list(extra)
        payloads += natPayloads(a.core, ikeSA, ikeSA.spiR) if natd is None else natd
        ikeSA.taskManager.queueExchange([InformTask(True, payloads)])
        a.execute(a.core._drain())
        request = len(self.network.delivered)
        self.network.pump()
        data, _, destination = self.network.delivered[request + 1]
        self.assertEqual(destination[0], MOVED)
        return Message.decode(data).decrypt(ikeSA.cipherIn)

    def notifies(self, payloads):
        return [p.notifyType for p in payloads if isinstance(p, Notify)]

    def test_flowsFollow(self):
        """
        The Child SA's flows follow too (their tunnel endpoints are the
        templates of xfrm's tunnel policies): the UpdateChildSA carries the
        old and new flows, and what the datapath then holds is what the
        Child SA removes when it goes (nothing is left behind).
        """
        a, b, ikeSA = self.establish()
        (theirs,) = b.ikeSAs
        self.move(a, ikeSA)
        [update] = b.eventsOf(UpdateChildSA)
        self.assertEqual({str(f.localAddress) for f in update.oldFlows if f.direction == "out"}, {B_ADDR})
        self.assertEqual({str(f.peerAddress) for f in update.oldFlows if f.direction == "out"}, {A_ADDR})
        self.assertEqual({str(f.peerAddress) for f in update.newFlows if f.direction == "out"}, {MOVED})
        self.assertEqual({str(f.localAddress) for f in update.newFlows if f.direction != "out"}, {MOVED})
        self.assertEqual(list(b.kernel.flows), list(update.newFlows))
        self.assertEqual(theirs.children[0].kernelRecords, (update.new, update.newFlows))
        b.execute(b.core.deleteIKESA(theirs)[1])
        self.network.pump()
        self.assertEqual((b.kernel.sas, b.kernel.flows), ({}, []))

    def test_follows(self):
        """
        b moves the IKE SA and its Child SA's kernel SAs to a's new
        address (same SPIs, keys and encapsulation), answers there with
        NAT-D payloads, and sends its next request there.
        """
        a, b, ikeSA = self.establish()
        (theirs,) = b.ikeSAs
        before = dict(b.kernel.sas)
        response = self.move(a, ikeSA)
        self.assertIn(NotifyType.NAT_DETECTION_SOURCE_IP, self.notifies(response))
        self.assertEqual(theirs.remote, (MOVED, 4500))
        [update] = b.eventsOf(UpdateChildSA)
        self.assertEqual([sa.spi for sa in update.old], [sa.spi for sa in update.new])
        self.assertEqual([sa.encryptionKey for sa in update.old], [sa.encryptionKey for sa in update.new])
        inbound, outbound = update.new
        self.assertEqual((str(inbound.source), str(inbound.destination)), (MOVED, B_ADDR))
        self.assertEqual((str(outbound.source), str(outbound.destination)), (B_ADDR, MOVED))
        self.assertEqual(sorted(sa.spi for sa in b.kernel.sas.values()), sorted(sa.spi for sa in before.values()))
        self.assertIn(MOVED, [str(sa.destination) for sa in b.kernel.sas.values()])
        # b's next request (a liveness check) goes to the new address.
        sent = len(self.network.delivered)
        theirs.taskManager.queueExchange([InformTask(True, [])])
        b.execute(b.core._drain())
        self.network.pump()
        self.assertEqual(self.network.delivered[sent][2], (MOVED, 4500))

    def test_ourNatRefused(self):
        """
        A NAT-D destination hash that does not match our address (a NAT in
        front of us) is refused with UNACCEPTABLE_ADDRESSES; nothing moves.
        """
        a, b, ikeSA = self.establish()
        (theirs,) = b.ikeSAs
        natd = natPayloads(a.core, ikeSA, ikeSA.spiR)[:1] + [Notify.natDetectionDestinationIP(b"\x00" * 20)]
        response = self.move(a, ikeSA, natd=natd)
        self.assertIn(NotifyType.UNACCEPTABLE_ADDRESSES, self.notifies(response))
        self.assertEqual(theirs.remote, (A_ADDR, 4500))
        self.assertEqual(b.eventsOf(UpdateChildSA), [])

    def test_noNatsAllowed(self):
        """
        RFC 4555 3.9: NO_NATS_ALLOWED and a NAT on the path (the source
        hash does not match) answers UNEXPECTED_NAT_DETECTED.
        """
        a, b, ikeSA = self.establish()
        (theirs,) = b.ikeSAs
        natd = [Notify.natDetectionSourceIP(b"\x00" * 20)] + natPayloads(a.core, ikeSA, ikeSA.spiR)[1:]
        response = self.move(a, ikeSA, extra=[Notify(NotifyType.NO_NATS_ALLOWED, data=b"\x00" * 12)], natd=natd)
        self.assertIn(NotifyType.UNEXPECTED_NAT_DETECTED, self.notifies(response))
        self.assertEqual(theirs.remote, (A_ADDR, 4500))

    def test_nomobike(self):
        """
        With C{set nomobike} on b, UPDATE_SA_ADDRESSES changes nothing.
        """
        a, b, ikeSA = self.establish(responder=responderConfig(settings="set nomobike"))
        (theirs,) = b.ikeSAs
        remote = theirs.remote
        self.move(a, ikeSA)
        self.assertEqual(theirs.remote, remote)
        self.assertEqual(b.eventsOf(UpdateChildSA), [])


class NatMappingTests(ExchangeTestCase):
    def test_mappingChangeMovesChildSAs(self):
        """
        RFC 7296 2.23: behind a NAT whose mapping changes, the responder
        follows the peer's new port with the IKE SA and (an UpdateChildSA)
        its Child SA's ESP-in-UDP encapsulation.
        """
        self.makePair(responder=responderConfig(peer="any"))
        self.network.nat = {(A_ADDR, 500): ("198.51.100.7", 1500), (A_ADDR, 4500): ("198.51.100.7", 14500)}
        requestId = self.a.initiate("ab")
        self.network.pump()
        ikeSA = self.assertSucceeded(self.a, requestId)
        (theirs,) = self.b.ikeSAs
        self.network.nat[(A_ADDR, 4500)] = ("198.51.100.7", 24500)
        self.a.execute(self.a.core.queueTask(ikeSA, InformTask(True, [])))
        self.network.pump()
        self.assertEqual(theirs.remote, ("198.51.100.7", 24500))
        [update] = self.b.eventsOf(UpdateChildSA)
        self.assertEqual([sa.encapsulation for sa in update.old], [(14500, 4500), (4500, 14500)])
        self.assertEqual([sa.encapsulation for sa in update.new], [(24500, 4500), (4500, 24500)])
        self.assertEqual(sorted(sa.encapsulation for sa in self.b.kernel.sas.values()), [(4500, 24500), (24500, 4500)])


class InitiatorMovesTests(ExchangeTestCase):
    def moveA(self):
        self.a.address = MOVED
        self.network.hosts[MOVED] = self.a

    def test_addressLost(self):
        """
        RFC 4555 3.8: the initiator's address goes away; it moves the IKE
        SA and its Child SA to the address it now reaches the peer from,
        sends UPDATE_SA_ADDRESSES from there, and b follows.
        """
        a, b, ikeSA = self.establish()
        (theirs,) = b.ikeSAs
        self.moveA()
        sent = len(self.network.delivered)
        a.execute(a.core.addressChanged(MOVED, True))
        a.execute(a.core.addressChanged(A_ADDR, False))
        self.network.pump()
        request = Message.decode(self.network.delivered[sent][0]).decrypt(theirs.cipherIn)
        self.assertIn(NotifyType.UPDATE_SA_ADDRESSES, [p.notifyType for p in request if isinstance(p, Notify)])
        self.assertEqual(self.network.delivered[sent][1], (MOVED, 4500))
        self.assertEqual((ikeSA.local, theirs.remote), ((MOVED, 4500), (MOVED, 4500)))
        [ours] = a.eventsOf(UpdateChildSA)
        self.assertEqual([str(sa.source) for sa in ours.new], [B_ADDR, MOVED])
        [update] = b.eventsOf(UpdateChildSA)
        self.assertEqual([str(sa.destination) for sa in update.new], [B_ADDR, MOVED])
        self.assertEqual(len(self.network.delivered), sent + 2)
        self.assertEqual((a.core.counters["ikes_update_addresses_sent"],
                          b.core.counters["ikes_update_addresses_sent"]), (1, 0))

    def test_otherAddressIgnored(self):
        """
        Losing an address the IKE SA does not use sends nothing.
        """
        a, b, ikeSA = self.establish()
        sent = len(self.network.delivered)
        a.execute(a.core.addressChanged("192.0.2.77", False))
        self.assertEqual((self.network.inFlight, len(self.network.delivered)), ([], sent))
        self.assertEqual(ikeSA.local, (A_ADDR, 4500))

    def test_noRouteDeferred(self):
        """
        With no address to reach the peer, the update waits for the next
        address event.
        """
        a, b, ikeSA = self.establish()
        (theirs,) = b.ikeSAs

        def noRoute(peer):
            raise OSError("network unreachable")

        a.core.localAddressFor = noRoute
        a.execute(a.core.addressChanged(A_ADDR, False))
        self.assertEqual(self.network.inFlight, [])
        self.moveA()
        a.core.localAddressFor = lambda peer: MOVED
        a.execute(a.core.addressChanged(MOVED, True))
        self.network.pump()
        self.assertEqual(theirs.remote, (MOVED, 4500))

    def test_nomobike(self):
        """
        Without MOBIKE the initiator stays where it is.
        """
        from tests.test_core_exchanges import initiatorConfig

        a, b, ikeSA = self.establish(initiator=initiatorConfig(settings="set nomobike"))
        self.moveA()
        a.execute(a.core.addressChanged(A_ADDR, False))
        self.assertEqual(self.network.inFlight, [])
        self.assertEqual(ikeSA.local[0], A_ADDR)


class MobikeAfterPeerRekeyTests(ExchangeTestCase):
    def test_initiatorAfterPeerRekeyedIkeSA(self):
        """
        The peer (the IKE SA's responder) rekeys the IKE SA, so it is the
        new IKE SA's original initiator (RFC 7296 2.18); we stay the MOBIKE
        initiator (RFC 4555: the roles are the original IKE SA's), and the
        new IKE SA keeps MOBIKE, its addresses and its NAT state: when our
        address goes, the new IKE SA moves and sends UPDATE_SA_ADDRESSES,
        and b follows.
        """
        from ikedtx.core.timers import TimerKey

        a, b, old = self.establish()
        (oldB,) = b.ikeSAs
        b.execute(b.core.timerExpired(TimerKey.ikeRekey(oldB.localSPI)))
        self.network.pump()
        (ikeSA,), (theirs,) = a.ikeSAs, b.ikeSAs
        self.assertIsNot(ikeSA, old)
        self.assertFalse(ikeSA.initiator)
        self.assertTrue(ikeSA.peerMobike)
        self.assertEqual((ikeSA.local, ikeSA.remote, ikeSA.natLocal, ikeSA.natRemote),
                         (old.local, old.remote, old.natLocal, old.natRemote))
        self.network.hosts[MOVED] = a
        a.address = MOVED
        sent = len(self.network.delivered)
        a.execute(a.core.addressChanged(MOVED, True))
        a.execute(a.core.addressChanged(A_ADDR, False))
        self.network.pump()
        self.assertEqual(len(self.network.delivered), sent + 2)
        request = Message.decode(self.network.delivered[sent][0]).decrypt(theirs.cipherIn)
        self.assertIn(NotifyType.UPDATE_SA_ADDRESSES, [p.notifyType for p in request if isinstance(p, Notify)])
        self.assertEqual((ikeSA.local, theirs.remote), ((MOVED, 4500), (MOVED, 4500)))
        [update] = b.eventsOf(UpdateChildSA)
        self.assertEqual([str(sa.destination) for sa in update.new], [B_ADDR, MOVED])
        self.assertEqual(a.core.counters["ikes_update_addresses_sent"], 1)

    def test_responderStaysResponder(self):
        """
        And the other way round: after we (the IKE SA's responder) rekeyed
        it, we are the new IKE SA's initiator but not the MOBIKE initiator:
        a lost local address sends no UPDATE_SA_ADDRESSES from b.
        """
        from ikedtx.core.timers import TimerKey

        a, b, old = self.establish()
        (oldB,) = b.ikeSAs
        b.execute(b.core.timerExpired(TimerKey.ikeRekey(oldB.localSPI)))
        self.network.pump()
        (theirs,) = b.ikeSAs
        self.assertTrue(theirs.initiator)
        sent = len(self.network.delivered)
        b.core.localAddressFor = lambda peer: "192.0.2.98"
        b.execute(b.core.addressChanged(B_ADDR, False))
        self.network.pump()
        self.assertEqual(len(self.network.delivered), sent)
        self.assertEqual(b.core.counters["ikes_update_addresses_sent"], 0)

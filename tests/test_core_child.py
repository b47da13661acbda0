"""
Tests for CREATE_CHILD_SA and INFORMATIONAL in L{ikedtx.core}: additional
Child SAs with and without PFS, deletes from either side, liveness checks,
and what hostile or broken messages change (nothing).
"""

import struct

from ikedtx.config import parseConfig
from ikedtx.core.actions import IKESADown, InstallChildSA, SendNatKeepalive
from ikedtx.core.errors import NoProposalChosen, PeerNotResponding
from ikedtx.core.sa import IKEState
from ikedtx.core.settings import NATT_DISABLED, NATT_ONLY, CoreSettings
from ikedtx.wire.payloads import Notify, UnknownPayload
from ikedtx.wire.constants import DhId, ExchangeType, HeaderFlag, NotifyType, PayloadType
from ikedtx.wire.message import Message

from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, initiatorConfig, responderConfig

PFS = "childsa enc aes-128-gcm group ecp256"


class CreateChildTests(ExchangeTestCase):
    def test_additionalChild(self):
        """
        RFC 7296 1.3.1: CREATE_CHILD_SA adds a Child SA with fresh nonces
        and its own keys, installed on both sides.
        """
        a, b, ikeSA = self.establish()
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        self.assertEqual(len(ikeSA.children), 2)
        self.assertEqual(len(b.ikeSAs[0].children), 2)
        peer = [c for c in b.ikeSAs[0].children if c.spiIn == child.spiOut][0]
        self.assertEqual((child.keyOut, child.keyIn), (peer.keyIn, peer.keyOut))
        self.assertNotEqual(child.keyOut, ikeSA.children[0].keyOut)
        self.assertEqual(len(a.kernel.sas), 4)
        self.assertEqual(len(b.kernel.sas), 4)
        request = Message.decode(self.network.delivered[-2][0])
        self.assertEqual(request.exchangeType, ExchangeType.CREATE_CHILD_SA)
        self.assertEqual(request.messageId, 2)

    def test_pfs(self):
        """
        With a childsa group the request carries a KE payload and the new
        keys include the new shared secret (RFC 7296 1.3.1, 2.17).
        """
        a, b, ikeSA = self.establish(initiator=initiatorConfig(extra=PFS), responder=responderConfig(extra=PFS))
        self.network.delivered.clear()
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        self.assertEqual(child.proposal.dhGroup, DhId.ECP_256)
        peer = [c for c in b.ikeSAs[0].children if c.spiIn == child.spiOut][0]
        self.assertEqual((child.keyOut, child.keyIn), (peer.keyIn, peer.keyOut))
        opened = b.ikeSAs[0].cipherIn.open  # the request is protected, so look via the responder's keys
        request = Message.decode(self.network.delivered[0][0])
        inner = request.decrypt(b.ikeSAs[0].cipherIn)
        self.assertIn(PayloadType.KE, [p.payloadType for p in inner])
        self.assertTrue(callable(opened))

    def test_pfsInvalidKe(self):
        """
        RFC 7296 1.3: a responder wanting another PFS group answers
        INVALID_KE_PAYLOAD and the initiator retries with it.
        """
        a, b, ikeSA = self.establish(initiator=initiatorConfig(extra="childsa enc aes-128-gcm group curve25519 group ecp256"),
                                     responder=responderConfig(extra=PFS))
        self.network.delivered.clear()
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        child = self.assertSucceeded(a, requestId)
        self.assertEqual(child.proposal.dhGroup, DhId.ECP_256)
        self.assertEqual(len(self.network.delivered), 4)

    def test_pfsRefused(self):
        """
        A responder whose policy has no PFS refuses a PFS-only request with
        NO_PROPOSAL_CHOSEN; the IKE SA is unharmed.
        """
        a, b, ikeSA = self.establish(initiator=initiatorConfig(extra=PFS),
                                     responder=responderConfig(extra="childsa enc aes-128-gcm"))
        requestId = a.command(a.core.createChildSA, ikeSA)
        self.network.pump()
        self.assertFailedWith(a, requestId, NoProposalChosen)
        self.assertEqual(ikeSA.state, IKEState.VALID)
        self.assertEqual(len(ikeSA.children), 1)

    def test_lossOfEach(self):
        """
        A lost CREATE_CHILD_SA request or response is recovered; the
        responder creates the Child SA once.
        """
        for index in range(2):
            a, b, ikeSA = self.establish()
            a.command(a.core.createChildSA, ikeSA)
            if index == 1:
                self.network.deliverOne()
            self.network.drop()
            a.clock.advance(2)
            self.network.pump()
            self.assertEqual(len(ikeSA.children), 2)
            self.assertEqual(len(b.ikeSAs[0].children), 2)
            self.assertEqual(len(b.eventsOf(InstallChildSA)), 2)


class DeleteTests(ExchangeTestCase):
    def test_deleteChildFromInitiator(self):
        """
        RFC 7296 1.4.1: a Delete of a Child SA is answered with the peer's
        Delete for the other direction; both sides remove both SAs.
        """
        a, b, ikeSA = self.establish()
        (child,) = ikeSA.children
        requestId = a.command(a.core.deleteChildSA, ikeSA, child)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertEqual((ikeSA.children, b.ikeSAs[0].children), ([], []))
        self.assertEqual((a.kernel.sas, b.kernel.sas), ({}, {}))
        self.assertEqual((a.kernel.flows, b.kernel.flows), ([], []))
        answer = Message.decode(self.network.delivered[-1][0]).decrypt(ikeSA.cipherIn)
        self.assertEqual([(p.payloadType, p.spis) for p in answer], [(PayloadType.DELETE, [struct.pack("!I", child.spiOut)])])

    def test_deleteChildFromResponder(self):
        a, b, ikeSA = self.establish()
        ikeSAB = b.ikeSAs[0]
        requestId = b.command(b.core.deleteChildSA, ikeSAB, ikeSAB.children[0])
        self.network.pump()
        self.assertSucceeded(b, requestId)
        self.assertEqual((ikeSA.children, ikeSAB.children), ([], []))
        self.assertEqual((a.kernel.sas, b.kernel.sas), ({}, {}))

    def test_deleteIkeSA(self):
        """
        RFC 7296 1.4.1: deleting the IKE SA deletes its Child SAs on both
        sides.
        """
        for deleter in ("a", "b"):
            a, b, ikeSA = self.establish()
            host = a if deleter == "a" else b
            requestId = host.command(host.core.deleteIKESA, host.ikeSAs[0])
            self.network.pump()
            self.assertSucceeded(host, requestId)
            self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))
            self.assertEqual((a.kernel.sas, b.kernel.sas), ({}, {}))
            self.assertEqual(len(a.eventsOf(IKESADown)), 1)
            self.assertEqual(len(b.eventsOf(IKESADown)), 1)

    def test_deleteIkeSAUnanswered(self):
        """
        A Delete the peer never answers still removes the IKE SA once the
        retransmissions are exhausted.
        """
        a, b, ikeSA = self.establish()
        a.command(a.core.deleteIKESA, ikeSA)
        for delay in (2, 4, 8, 16, 32):
            self.network.drop()
            a.clock.advance(delay)
        self.assertEqual(a.ikeSAs, [])
        self.assertEqual(a.kernel.sas, {})

    def test_deleteLossOfEach(self):
        """
        A lost Delete request or response is recovered by retransmission;
        the responder answers the retransmitted Delete from its cache.
        """
        for index in range(2):
            a, b, ikeSA = self.establish()
            (child,) = ikeSA.children
            requestId = a.command(a.core.deleteChildSA, ikeSA, child)
            if index == 1:
                self.network.deliverOne()
            self.network.drop()
            a.clock.advance(2)
            self.network.pump()
            self.assertSucceeded(a, requestId)
            self.assertEqual((ikeSA.children, b.ikeSAs[0].children), ([], []))
            self.assertEqual((a.kernel.sas, b.kernel.sas), ({}, {}))

    def test_liveness(self):
        """
        RFC 7296 1.4: an empty INFORMATIONAL request is answered empty.
        """
        a, b, ikeSA = self.establish()
        requestId = a.command(a.core.checkLiveness, ikeSA)
        self.network.pump()
        self.assertTrue(self.assertSucceeded(a, requestId))

    def test_livenessDeadPeer(self):
        a, b, ikeSA = self.establish()
        requestId = a.command(a.core.checkLiveness, ikeSA)
        for delay in (2, 4, 8, 16, 32):
            self.network.drop()
            a.clock.advance(delay)
        self.assertFailedWith(a, requestId, PeerNotResponding)
        self.assertEqual(a.ikeSAs, [])
        self.assertEqual(a.kernel.sas, {})

    def test_shutdown(self):
        """
        A stopping daemon sends one Delete per IKE SA and forgets them.
        """
        a, b, ikeSA = self.establish()
        a.execute(a.core.shutdown())
        self.assertEqual(a.ikeSAs, [])
        self.network.pump()
        self.assertEqual(b.ikeSAs, [])


class HostileInputTests(ExchangeTestCase):
    def test_garbage(self):
        """
        Undecodable datagrams produce no action and change nothing.
        """
        a, b, ikeSA = self.establish()
        before = (list(b.core.ikeSAs), len(b.events))
        for junk in (b"", b"\x00", b"\xff" * 27, b"\x01" * 28, b"\x00" * 100, bytes(range(256))):
            self.assertEqual(b.core.datagramReceived(junk, (B_ADDR, 500), (A_ADDR, 500)), [])
        self.assertEqual((list(b.core.ikeSAs), len(b.events)), before)

    def test_tamperedRequest(self):
        """
        An IKE_AUTH request with a flipped bit fails its ICV: it is dropped
        without an answer or a state change, and the genuine retransmission
        still succeeds.
        """
        a, b = self.makePair()
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        data, source, destination = self.network.inFlight[0]
        tampered = bytearray(data)
        tampered[-5] ^= 0x40
        b.receive(bytes(tampered), destination, source)
        self.assertEqual(len(self.network.inFlight), 1)
        self.assertEqual(b.ikeSAs[0].state, IKEState.SA_INIT)
        self.network.pump()
        self.assertSucceeded(a, requestId)

    def test_unknownSpi(self):
        """
        A protected message for an IKE SA we do not have is dropped.
        """
        a, b, ikeSA = self.establish()
        message = Message(b"\x01" * 8, b"\x02" * 8, ExchangeType.INFORMATIONAL, HeaderFlag.INITIATOR, 5,
                          payloads=[Notify(NotifyType.INITIAL_CONTACT)])
        self.assertEqual(b.core.datagramReceived(message.encode(), (B_ADDR, 500), (A_ADDR, 500)), [])

    def test_wrongMessageId(self):
        """
        RFC 7296 2.2: a request outside the window is dropped.
        """
        a, b, ikeSA = self.establish()
        ikeSA.taskManager.nextRequestId = 7
        requestId = a.command(a.core.checkLiveness, ikeSA)
        self.network.deliverOne()
        self.assertEqual(self.network.inFlight, [])
        self.assertNotIn(requestId, a.results)

    def test_criticalPayload(self):
        """
        RFC 7296 2.5: an unknown payload with the critical bit set is
        answered with UNSUPPORTED_CRITICAL_PAYLOAD naming its type.
        """
        a, b, ikeSA = self.establish()
        task_payloads = [UnknownPayload(200, b"x", critical=True)]
        from ikedtx.core.tasks.inform import InformTask

        a.execute(a.core.queueTask(ikeSA, InformTask(True, task_payloads)))
        self.network.pump()
        answer = Message.decode(self.network.delivered[-1][0]).decrypt(ikeSA.cipherIn)
        self.assertEqual([(p.notifyType, p.data) for p in answer], [(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, b"\xc8")])
        self.assertEqual(b.ikeSAs[0].state, IKEState.VALID)


class NatTests(ExchangeTestCase):
    def test_natDetected(self):
        """
        RFC 7296 2.23: behind a NAT, the NAT-D hashes disagree, the
        initiator moves to port 4500, the responder follows the translated
        address, and the ESP SAs are UDP-encapsulated.
        """
        self.makePair(responder=responderConfig(peer="any"))
        self.network.nat = {(A_ADDR, 500): ("198.51.100.7", 1500), (A_ADDR, 4500): ("198.51.100.7", 14500)}
        requestId = self.a.initiate("ab")
        self.network.pump()
        ikeSA = self.assertSucceeded(self.a, requestId)
        (ikeSAB,) = self.b.ikeSAs
        self.assertTrue(ikeSA.natLocal)
        self.assertFalse(ikeSA.natRemote)
        self.assertTrue(ikeSAB.natRemote)
        self.assertEqual((ikeSA.local, ikeSA.remote), ((A_ADDR, 4500), (B_ADDR, 4500)))
        self.assertEqual(ikeSAB.remote, ("198.51.100.7", 14500))
        self.assertEqual(self.network.delivered[2][2], (B_ADDR, 4500))
        outbound = [sa for sa in self.a.kernel.sas.values() if not sa.inbound][0]
        self.assertEqual(outbound.encapsulation, (4500, 4500))
        inboundB = [sa for sa in self.b.kernel.sas.values() if sa.inbound][0]
        self.assertEqual(inboundB.encapsulation, (14500, 4500))
        self.assertIn(("keepalive", ikeSA.localSPI), self.a.timers)
        self.a.clock.advance(20)
        self.assertEqual(len(self.a.eventsOf(SendNatKeepalive)), 1)

    def test_noNat(self):
        """
        Without a NAT nothing is encapsulated; MOBIKE peers (the default)
        still move IKE to port 4500 (RFC 4555 3.3).
        """
        a, b, ikeSA = self.establish()
        self.assertFalse(ikeSA.natLocal or ikeSA.natRemote)
        self.assertTrue(ikeSA.nattEnabled)
        self.assertEqual(self.network.delivered[2][2], (B_ADDR, 4500))
        self.assertTrue(all(sa.encapsulation is None for sa in a.kernel.sas.values()))
        self.assertTrue(all(sa.encapsulation is None for sa in b.kernel.sas.values()))

    def test_noNatNoMobike(self):
        """
        Without a NAT and without MOBIKE, IKE stays on port 500.
        """
        a, b, ikeSA = self.establish(initiator=initiatorConfig(settings="set nomobike"))
        self.assertFalse(ikeSA.nattEnabled)
        self.assertEqual(self.network.delivered[2][2], (B_ADDR, 500))

    def test_forced(self):
        """
        The natt keyword forces UDP encapsulation without a NAT.
        """
        a, b, ikeSA = self.establish(initiator=parseConfig(
            'ikev2 "ab" active natt esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s psk "secret"' % (A_ADDR, B_ADDR)),
            responder=responderConfig(ids=False))
        self.assertTrue(ikeSA.nattEnabled)
        self.assertTrue(b.ikeSAs[0].nattEnabled)
        self.assertTrue(all(sa.encapsulation is not None for sa in b.kernel.sas.values()))

    def test_disabled(self):
        """
        iked -T: no NAT-D payloads are sent.
        """
        a, b, ikeSA = self.establish(settingsA=CoreSettings(nattMode=NATT_DISABLED))
        request = Message.decode(self.network.delivered[0][0])
        self.assertNotIn(NotifyType.NAT_DETECTION_SOURCE_IP, [getattr(p, "notifyType", None) for p in request.payloads])

    def test_nattOnly(self):
        """
        iked -t: IKE starts on port 4500.
        """
        a, b, ikeSA = self.establish(settingsA=CoreSettings(nattMode=NATT_ONLY))
        self.assertEqual(self.network.delivered[0][2], (B_ADDR, 4500))
        self.assertTrue(b.ikeSAs[0].nattEnabled)


class FragmentationTests(ExchangeTestCase):
    def test_fragmentedAuth(self):
        """
        RFC 7383: with fragmentation on both sides, a large IKE_AUTH is sent
        in SKF fragments and reassembled.
        """
        settings = "set fragmentation"
        from ikedtx.config import parseConfig

        init = parseConfig(settings + "\n" + 'ikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s '
                           'srcid %s dstid b.example psk "secret"' % (A_ADDR, B_ADDR, "a" * 200 + ".example"))
        resp = responderConfig(settings=settings, ids=False, extra="srcid b.example")
        a, b, ikeSA = self.establish(initiator=init, responder=resp, settingsA=CoreSettings(fragmentSize=200),
                                     settingsB=CoreSettings(fragmentSize=200))
        fragments = [Message.decode(d) for d, _, _ in self.network.delivered if Message.decode(d).isFragment]
        self.assertGreater(len(fragments), 1)
        self.assertTrue(all(len(d) <= 200 for d, _, _ in self.network.delivered[2:]))
        self.assertEqual(str(b.ikeSAs[0].peerId), "FQDN/" + "a" * 200 + ".example")

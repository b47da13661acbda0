"""
Tests for L{ikedtx.core.engine} and the exchange tasks (L{ikedtx.core.tasks}): two in-memory
cores pumped against each other, one datagram at a time, with a fake clock.
"""

from ikedtx.config import parseConfig
from ikedtx.core.actions import IKESAUp, InstallChildSA
from ikedtx.core.errors import (
    AuthenticationFailed, NegotiationFailed, NoProposalChosen, PeerNotResponding, TrafficSelectorsUnacceptable)
from ikedtx.core.sa import IKEState
from ikedtx.core.settings import CoreSettings
from ikedtx.core.timers import TimerKey
from ikedtx.wire.constants import DhId, ExchangeType, NotifyType, ProtocolId
from ikedtx.wire.message import Message

from tests.corehelpers import CoreTestCase, Host, Network

A_ADDR, B_ADDR = "192.0.2.1", "192.0.2.2"


def initiatorConfig(extra="", psk='"secret"', flows="from 10.1.0.0/24 to 10.2.0.0/24", ids=True, settings=""):
    idText = "srcid a.example dstid b.example" if ids else ""
    return parseConfig('%s\nikev2 "ab" active esp %s local %s peer %s %s %s psk %s' % (
        settings, flows, A_ADDR, B_ADDR, extra, idText, psk))


def responderConfig(extra="", psk='"secret"', flows="from 10.2.0.0/24 to 10.1.0.0/24", ids=True, settings="",
                    peer=A_ADDR):
    idText = "srcid b.example dstid a.example" if ids else ""
    return parseConfig('%s\nikev2 "ba" passive esp %s local %s peer %s %s %s psk %s' % (
        settings, flows, B_ADDR, peer, extra, idText, psk))


class ExchangeTestCase(CoreTestCase):
    """
    Builds an initiator A and a responder B on one L{Network}.
    """

    def makePair(self, initiator=None, responder=None, settingsA=None, settingsB=None, **kw):
        self.network = Network()
        self.a = Host(self.network, A_ADDR, initiator or initiatorConfig(), settings=settingsA, **kw)
        self.b = Host(self.network, B_ADDR, responder or responderConfig(), settings=settingsB, **kw)
        return self.a, self.b

    def establish(self, **kw):
        a, b = self.makePair(**kw)
        requestId = a.initiate("ab")
        self.network.pump()
        ikeSA = self.assertSucceeded(a, requestId)
        return a, b, ikeSA

    def exchangeTypes(self):
        return [(Message.decode(d).exchangeType, Message.decode(d).isResponse) for d, _, _ in self.network.delivered]

    def assertChildKeysMatch(self, a, b):
        (childA,) = a.ikeSAs[0].children
        (childB,) = b.ikeSAs[0].children
        self.assertEqual((childA.spiIn, childA.spiOut), (childB.spiOut, childB.spiIn))
        self.assertEqual(childA.keyOut, childB.keyIn)
        self.assertEqual(childA.keyIn, childB.keyOut)
        return childA, childB


class PreSharedKeyTests(ExchangeTestCase):
    def test_stepByStep(self):
        """
        RFC 7296 1.2: IKE_SA_INIT and IKE_AUTH, one message at a time,
        establish the IKE SA and the first Child SA on both sides, with
        the same keys, installed into both kernels.
        """
        a, b = self.makePair()
        requestId = a.initiate("ab")
        (ikeSAA,) = a.ikeSAs
        self.assertEqual(ikeSAA.state, IKEState.SA_INIT)
        self.assertEqual(len(self.network.inFlight), 1)

        self.network.deliverOne()  # IKE_SA_INIT request
        (ikeSAB,) = b.ikeSAs
        self.assertEqual(ikeSAB.state, IKEState.SA_INIT)
        self.assertFalse(ikeSAB.initiator)

        self.network.deliverOne()  # IKE_SA_INIT response
        self.assertEqual(ikeSAA.state, IKEState.AUTH_REQUEST)
        self.assertEqual(ikeSAA.spiR, ikeSAB.spiR)
        self.assertEqual(bytes(ikeSAA.keys.skD), bytes(ikeSAB.keys.skD))

        self.network.deliverOne()  # IKE_AUTH request
        self.assertEqual(ikeSAB.state, IKEState.VALID)
        self.assertEqual(str(ikeSAB.peerId), "FQDN/a.example")
        self.assertNotIn(requestId, a.results)

        self.network.deliverOne()  # IKE_AUTH response
        self.assertEqual(ikeSAA.state, IKEState.VALID)
        self.assertEqual(str(ikeSAA.peerId), "FQDN/b.example")
        self.assertIs(self.assertSucceeded(a, requestId), ikeSAA)
        self.assertEqual(self.network.inFlight, [])
        self.assertEqual(self.exchangeTypes(), [
            (ExchangeType.IKE_SA_INIT, False), (ExchangeType.IKE_SA_INIT, True),
            (ExchangeType.IKE_AUTH, False), (ExchangeType.IKE_AUTH, True)])

        childA, childB = self.assertChildKeysMatch(a, b)
        self.assertEqual([str(ts) for ts in childA.localTS], ["10.1.0.0/24"])
        self.assertEqual([str(ts) for ts in childA.remoteTS], ["10.2.0.0/24"])
        self.assertEqual(childA.mode, "tunnel")
        self.assertEqual(len(a.kernel.sas), 2)
        self.assertEqual(len(b.kernel.sas), 2)
        inbound = [sa for sa in b.kernel.sas.values() if sa.inbound][0]
        outbound = [sa for sa in a.kernel.sas.values() if not sa.inbound][0]
        self.assertEqual((inbound.spi, inbound.encryptionKey), (outbound.spi, outbound.encryptionKey))
        self.assertEqual([f.direction for f in a.kernel.flows], ["out", "in", "fwd"])
        self.assertEqual(len(a.eventsOf(IKESAUp)), 1)
        self.assertEqual(len(b.eventsOf(IKESAUp)), 1)

    def test_vendorId(self):
        """
        iked.conf(5) "set vendorid" (the default): IKE_SA_INIT carries our
        Vendor ID; "set novendorid" leaves it out.
        """
        from ikedtx.wire.constants import PayloadType

        a, b, ikeSA = self.establish(settingsA=CoreSettings(vendorId=b"ikedtx"))
        request = Message.decode(self.network.delivered[0][0])
        self.assertEqual([p.data for p in request.payloads if p.payloadType == PayloadType.VENDOR_ID], [b"ikedtx"])
        a, b, ikeSA = self.establish()
        request = Message.decode(self.network.delivered[0][0])
        self.assertEqual([p for p in request.payloads if p.payloadType == PayloadType.VENDOR_ID], [])

    def test_hexPsk(self):
        """
        A hex psk is the same secret as the string it encodes.
        """
        self.establish(initiator=initiatorConfig(psk="0x736563726574"))

    def test_wrongPsk(self):
        """
        RFC 7296 2.21.2: a wrong PSK is answered with AUTHENTICATION_FAILED;
        neither side keeps an IKE SA or installs anything.
        """
        a, b = self.makePair(initiator=initiatorConfig(psk='"wrong"'))
        requestId = a.initiate("ab")
        self.network.pump()
        error = self.assertFailedWith(a, requestId, AuthenticationFailed)
        self.assertEqual(error.notify, NotifyType.AUTHENTICATION_FAILED)
        self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))
        self.assertEqual((a.kernel.sas, b.kernel.sas), ({}, {}))

    def test_responderPskWrong(self):
        """
        The initiator refuses a responder whose AUTH does not verify, tells
        it in an INFORMATIONAL exchange and keeps nothing.
        """
        a, b = self.makePair(responder=responderConfig(psk='"other"'))
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        self.network.deliverOne()
        # B cannot verify A's AUTH either, so it refuses first.
        self.network.pump()
        self.assertFailedWith(a, requestId, AuthenticationFailed)
        self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))

    def test_wrongPeerId(self):
        """
        A peer whose IDi matches no policy's dstid is refused with
        AUTHENTICATION_FAILED.
        """
        a, b = self.makePair(responder=responderConfig(ids=False, extra="dstid c.example"))
        requestId = a.initiate("ab")
        self.network.pump()
        self.assertFailedWith(a, requestId, AuthenticationFailed)
        self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))

    def test_initiatorChecksResponderId(self):
        """
        The initiator refuses a responder that authenticates as another ID
        than the policy's dstid, even with the right PSK.
        """
        a, b = self.makePair(responder=responderConfig(ids=False, extra="srcid evil.example"))
        requestId = a.initiate("ab")
        self.network.pump()
        error = self.assertFailedWith(a, requestId, AuthenticationFailed)
        self.assertIn("evil.example", str(error))
        self.assertEqual(a.ikeSAs, [])

    def test_noPolicy(self):
        """
        An IKE_SA_INIT from an address no policy accepts is dropped.
        """
        a, b = self.makePair(responder=parseConfig('ikev2 "x" passive esp from 10.2.0.0/24 to 10.1.0.0/24 '
                                                   'peer 203.0.113.1 psk "secret"'))
        a.initiate("ab")
        self.network.deliverOne()
        self.assertEqual((self.network.inFlight, b.ikeSAs), ([], []))

    def test_passive(self):
        """
        iked -S / set passive: nothing is initiated.
        """
        a, b = self.makePair(settingsA=CoreSettings(passive=True))
        requestId = a.initiate("ab")
        self.assertFailedWith(a, requestId, NegotiationFailed)
        self.assertEqual(self.network.inFlight, [])

    def test_passiveResponder(self):
        """
        iked.conf(5) "set passive": no packets are sent to peers, so an
        IKE_SA_INIT is not answered and leaves no state.
        """
        a, b = self.makePair(settingsB=CoreSettings(passive=True))
        a.initiate("ab")
        self.network.deliverOne()
        self.assertEqual((self.network.inFlight, b.ikeSAs), ([], []))

    def test_startupInitiatesActivePolicies(self):
        """
        Active policies are initiated at start-up, passive ones are not.
        """
        a, b = self.makePair()
        a.execute(a.core.startup())
        b.execute(b.core.startup())
        self.network.pump()
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID])
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID])


class NegotiationTests(ExchangeTestCase):
    def test_noProposalChosen(self):
        """
        RFC 7296 2.7: without a common IKE proposal the responder answers
        NO_PROPOSAL_CHOSEN and keeps no state.
        """
        a, b = self.makePair(
            initiator=initiatorConfig(extra="ikesa enc aes-256 prf hmac-sha2-256 auth hmac-sha2-256 group modp2048"),
            responder=responderConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519"))
        requestId = a.initiate("ab")
        self.network.pump()
        error = self.assertFailedWith(a, requestId, NoProposalChosen)
        self.assertEqual(error.notify, NotifyType.NO_PROPOSAL_CHOSEN)
        self.assertEqual((a.ikeSAs, b.ikeSAs), ([], []))

    def test_invalidKeRetry(self):
        """
        RFC 7296 1.2: the responder asks for another group with
        INVALID_KE_PAYLOAD and the initiator retries with it.
        """
        a, b, ikeSA = self.establish(
            initiator=initiatorConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 group ecp256"),
            responder=responderConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group ecp256"))
        self.assertEqual(ikeSA.proposal.dhGroup, DhId.ECP_256)
        first = Message.decode(self.network.delivered[1][0])
        self.assertEqual([p.notifyType for p in first.payloads], [NotifyType.INVALID_KE_PAYLOAD])
        self.assertEqual(first.payloads[0].group, DhId.ECP_256)
        self.assertEqual(len(self.network.delivered), 6)

    def test_cookie(self):
        """
        RFC 7296 2.6: past the half-open threshold the responder demands a
        COOKIE; the initiator repeats IKE_SA_INIT with it first.
        """
        a, b, ikeSA = self.establish(settingsB=CoreSettings(cookieThreshold=0))
        answer = Message.decode(self.network.delivered[1][0])
        self.assertEqual([p.notifyType for p in answer.payloads], [NotifyType.COOKIE])
        retry = Message.decode(self.network.delivered[2][0])
        self.assertEqual(retry.payloads[0].notifyType, NotifyType.COOKIE)
        self.assertEqual(retry.payloads[0].data, answer.payloads[0].data)
        self.assertEqual(len(self.network.delivered), 6)

    def test_badCookie(self):
        """
        A COOKIE the responder did not make is answered with a new cookie
        demand, never with state (RFC 7296 2.6).
        """
        a, b = self.makePair(settingsB=CoreSettings(cookieThreshold=0))
        a.initiate("ab")
        self.network.deliverOne()
        (ikeSAA,) = a.ikeSAs
        demand = Message.decode(self.network.inFlight[0][0]).payloads[0]
        ikeSAA.cookie = bytes(demand.data[:-1]) + bytes([demand.data[-1] ^ 1])
        self.network.inFlight.clear()
        a.execute(a.core.restartExchange(ikeSAA))
        self.network.deliverOne()
        answer = Message.decode(self.network.inFlight[0][0])
        self.assertEqual([p.notifyType for p in answer.payloads], [NotifyType.COOKIE])
        self.assertEqual(answer.payloads[0].data, demand.data)
        self.assertEqual(b.ikeSAs, [])

    def test_cookieSecretRotates(self):
        """
        RFC 7296 2.6: the cookie secret changes every few minutes; a cookie
        of the previous period is still accepted, an older one is not.
        """
        from ikedtx.core.engine import COOKIE_SECRET_LIFETIME

        a, b = self.makePair(settingsB=CoreSettings(cookieThreshold=0))
        b.execute(b.core.startup())
        cookie = b.core.cookieFor(b"n" * 32, A_ADDR, b"s" * 8)
        self.assertTrue(b.core.cookieValid(cookie, b"n" * 32, A_ADDR, b"s" * 8))
        b.clock.advance(COOKIE_SECRET_LIFETIME)
        self.assertTrue(b.core.cookieValid(cookie, b"n" * 32, A_ADDR, b"s" * 8))
        self.assertNotEqual(b.core.cookieFor(b"n" * 32, A_ADDR, b"s" * 8), cookie)
        b.clock.advance(COOKIE_SECRET_LIFETIME)
        self.assertFalse(b.core.cookieValid(cookie, b"n" * 32, A_ADDR, b"s" * 8))

    def test_childNoProposal(self):
        """
        RFC 7296 1.2: a Child SA that cannot be agreed does not prevent the
        IKE SA; the initiator's request fails with NO_PROPOSAL_CHOSEN.
        """
        a, b = self.makePair(initiator=initiatorConfig(extra="childsa enc aes-256 auth hmac-sha2-512"),
                             responder=responderConfig(extra="childsa enc aes-128-gcm"))
        requestId = a.initiate("ab")
        self.network.pump()
        self.assertFailedWith(a, requestId, NoProposalChosen)
        self.assertEqual([sa.state for sa in a.ikeSAs], [IKEState.VALID])
        self.assertEqual([sa.state for sa in b.ikeSAs], [IKEState.VALID])
        self.assertEqual((a.ikeSAs[0].children, b.ikeSAs[0].children), ([], []))

    def test_tsUnacceptable(self):
        """
        RFC 7296 2.9: traffic selectors outside the responder's policy give
        TS_UNACCEPTABLE.
        """
        a, b = self.makePair(responder=responderConfig(flows="from 10.9.0.0/24 to 10.1.0.0/24"))
        requestId = a.initiate("ab")
        self.network.pump()
        error = self.assertFailedWith(a, requestId, TrafficSelectorsUnacceptable)
        self.assertEqual(error.notify, NotifyType.TS_UNACCEPTABLE)

    def test_narrowing(self):
        """
        RFC 7296 2.9: the responder narrows to its policy and the initiator
        accepts the subset.
        """
        a, b, ikeSA = self.establish(initiator=initiatorConfig(flows="from 10.1.0.0/16 to 10.2.0.0/16"),
                                     responder=responderConfig(flows="from 10.2.3.0/24 to 10.1.0.0/24"))
        (child,) = ikeSA.children
        self.assertEqual([str(ts) for ts in child.localTS], ["10.1.0.0/24"])
        self.assertEqual([str(ts) for ts in child.remoteTS], ["10.2.3.0/24"])

    def test_transport(self):
        """
        RFC 7296 1.3.1: USE_TRANSPORT_MODE from both sides gives transport
        mode, without forwarding flows.
        """
        a, b, ikeSA = self.establish(
            initiator=parseConfig('ikev2 "ab" active transport esp from %s to %s psk "secret"' % (A_ADDR, B_ADDR)),
            responder=parseConfig('ikev2 "ba" transport esp from %s to %s psk "secret"' % (B_ADDR, A_ADDR)))
        childA, childB = self.assertChildKeysMatch(a, b)
        self.assertEqual((childA.mode, childB.mode), ("transport", "transport"))
        self.assertEqual([f.direction for f in a.kernel.flows], ["out", "in"])

    def test_ah(self):
        """
        An AH Child SA carries integrity only.
        """
        a, b, ikeSA = self.establish(initiator=parseConfig(
            'ikev2 "ab" active ah from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s psk "secret"' % (A_ADDR, B_ADDR)),
            responder=parseConfig('ikev2 "ba" ah from 10.2.0.0/24 to 10.1.0.0/24 local %s peer %s psk "secret"'
                                  % (B_ADDR, A_ADDR)))
        childA, childB = self.assertChildKeysMatch(a, b)
        self.assertEqual(childA.protocol, ProtocolId.AH)
        self.assertIsNone(childA.proposal.encryption)
        self.assertIsNotNone(childA.proposal.integrity)

    def test_proposals(self):
        """
        The IKE proposal the interop tests use agree in memory too.
        """
        for ikeSA in ["enc aes-128-gcm prf hmac-sha2-256 group curve25519",
                      "enc aes-256 auth hmac-sha2-256 prf hmac-sha2-256 group modp2048",
                      "enc chacha20-poly1305 prf hmac-sha2-384 group ecp384",
                      "enc 3des auth hmac-sha1 prf hmac-sha1 group modp1024",
                      "enc aes-192 auth hmac-sha2-512 prf hmac-sha2-512 group ecp521",
                      "enc aes-256-gcm-12 prf hmac-sha2-384 group brainpool256"]:
            config = "ikesa " + ikeSA
            a, b, sa = self.establish(initiator=initiatorConfig(extra=config), responder=responderConfig(extra=config))
            self.assertChildKeysMatch(a, b)


class LossTests(ExchangeTestCase):
    """
    RFC 7296 2.1: lost and duplicated messages.
    """

    def _exchange(self, drop=None, duplicate=None):
        a, b = self.makePair()
        requestId = a.initiate("ab")
        step = 0
        while self.network.inFlight:
            if step == drop:
                self.network.drop()
                self.assertEqual(self.network.inFlight, [])
                a.clock.advance(2.0)
                b.clock.advance(0)
                step += 1
                drop = None
                continue
            self.network.deliverOne(duplicate=(step == duplicate))
            step += 1
        return a, b, requestId

    def test_lossOfEach(self):
        """
        Losing any one of the four messages is recovered by the
        initiator's retransmission; the responder processes each request
        once and answers a retransmission with its cached response.
        """
        for index in range(4):
            a, b, requestId = self._exchange(drop=index)
            self.assertSucceeded(a, requestId)
            self.assertChildKeysMatch(a, b)
            self.assertEqual(len(b.eventsOf(InstallChildSA)), 1)
            self.assertEqual(len(b.eventsOf(IKESAUp)), 1)

    def test_cachedResponseIdentical(self):
        """
        A retransmitted IKE_AUTH request is answered with the identical
        response (RFC 7296 2.1), not processed again.
        """
        a, b = self.makePair()
        a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()
        request = self.network.inFlight[0]
        self.network.deliverOne()
        first = self.network.inFlight[0][0]
        b.receive(request[0], request[2], request[1])
        self.assertEqual(self.network.inFlight[1][0], first)
        self.assertEqual(len(b.eventsOf(InstallChildSA)), 1)

    def test_duplicationOfEach(self):
        """
        Every message delivered twice changes nothing.
        """
        for index in range(4):
            a, b, requestId = self._exchange(duplicate=index)
            self.assertSucceeded(a, requestId)
            self.assertChildKeysMatch(a, b)
            self.assertEqual(len(a.ikeSAs), 1)
            self.assertEqual(len(b.ikeSAs), 1)
            self.assertEqual(len(a.eventsOf(InstallChildSA)), 1)
            self.assertEqual(len(b.eventsOf(InstallChildSA)), 1)

    def test_giveUp(self):
        """
        A peer that never answers: the request is retransmitted with
        backoff, then the IKE SA is torn down and the request fails with
        L{PeerNotResponding}.
        """
        a, b = self.makePair()
        requestId = a.initiate("ab")
        sent = []
        for delay in [2, 4, 8, 16, 32]:
            sent.append(self.network.drop())
            a.clock.advance(delay)
        self.assertEqual(len(sent), 5)
        self.assertEqual(len({d for d, _, _ in sent}), 1)
        self.assertFailedWith(a, requestId, PeerNotResponding)
        self.assertEqual(a.ikeSAs, [])
        # Only the re-initiation of the active policy is left.
        self.assertEqual(list(a.timers), [TimerKey.reinitiate("ab")])

    def test_halfOpenExpires(self):
        """
        A responder forgets an IKE SA whose IKE_AUTH never comes.
        """
        a, b = self.makePair()
        a.initiate("ab")
        self.network.deliverOne()
        self.assertEqual(len(b.ikeSAs), 1)
        b.clock.advance(b.core.settings.halfOpenTimeout)
        self.assertEqual(b.ikeSAs, [])

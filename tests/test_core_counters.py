"""
Tests for L{ikedtx.core.counters}: what the core counts for C{ikectl show
stats} and the metrics (iked's struct iked_stats), and the rekeyed actions
the monitor reports; two cores pumped in memory with a fake clock.
"""

from ikedtx.config import parseConfig
from ikedtx.control.events import COUNTERS
from ikedtx.core.actions import ChildSARekeyed, IKESARekeyed, IKESAUp
from ikedtx.core.counters import CORE_COUNTERS, Counters
from ikedtx.core.settings import CoreSettings
from ikedtx.core.timers import TimerKey
from ikedtx.wire.payloads import Notify
from ikedtx.wire.constants import NotifyType

from tests.test_core_async import AsyncTestCase
from tests.test_core_exchanges import A_ADDR, B_ADDR, ExchangeTestCase, initiatorConfig, responderConfig
from tests.test_core_rekey import RekeyTestCase


def nonZero(host):
    return {name: value for name, value in host.core.counters.items() if value}


class CountersTests(ExchangeTestCase):
    def test_namesShownByShowStats(self):
        """
        Every core counter is one of those C{show stats} prints.
        """
        self.assertEqual([name for name in CORE_COUNTERS if name not in COUNTERS], [])

    def test_notifies(self):
        """
        Only the refusals named count: NO_PROPOSAL_CHOSEN as a proposal
        failure, sent or received, and COOKIE as sent.
        """
        counters = Counters()
        counters.notifiesSent([Notify(NotifyType.NO_PROPOSAL_CHOSEN), Notify(NotifyType.COOKIE)])
        counters.notifiesReceived([Notify(NotifyType.NO_PROPOSAL_CHOSEN)])
        counters.notifiesReceived([Notify(NotifyType.COOKIE), Notify(NotifyType.TS_UNACCEPTABLE)])
        self.assertEqual({k: v for k, v in counters.items() if v},
                         {"ikedtx_no_proposal_sent": 1, "ikedtx_no_proposal_rcvd": 1, "ikedtx_cookie_sent": 1,
                          "ikes_sa_proposals_negotiate_failures": 2})

    def test_plainNegotiation(self):
        """
        One IKE SA negotiated without loss: each side created exactly one,
        and nothing else was counted.
        """
        a, b, ikeSA = self.establish()
        self.assertEqual(nonZero(a), {"ikes_sa_created": 1})
        self.assertEqual(nonZero(b), {"ikes_sa_created": 1})

    def test_unknownIkeSA(self):
        """
        A message for an IKE SA the core does not hold (gone, never made,
        or steered to another of several workers) is dropped and counted
        as dropped (iked's ikes_msg_rcvd_dropped), nothing else.
        """
        from ikedtx.wire.constants import ExchangeType, HeaderFlag
        from ikedtx.wire.message import Message
        from ikedtx.wire.payloads import Encrypted

        a, b, ikeSA = self.establish()
        stray = Message(b"\x01" * 8, b"\x02" * 8, ExchangeType.INFORMATIONAL, HeaderFlag.INITIATOR, 2,
                        payloads=[Encrypted(0, b"x" * 32)]).encode()
        b.execute(b.core.datagramReceived(stray, (B_ADDR, 500), (A_ADDR, 500)))
        self.assertEqual(nonZero(b), {"ikes_sa_created": 1, "ikes_msg_rcvd_dropped": 1})
        self.assertEqual(len(b.ikeSAs), 1)

    def test_retransmits(self):
        """
        RFC 7296 2.1: a lost IKE_SA_INIT response makes the initiator
        retransmit its request, and the responder resend its cached
        response; the responder created one IKE SA, not two.
        """
        a, b = self.makePair()
        requestId = a.initiate("ab")
        self.network.deliverOne()  # IKE_SA_INIT request
        self.network.drop()  # its response
        self.network.clock.advance(a.core.settings.retransmit.timeout(0, 0) * 2)
        self.assertEqual(a.core.counters["ikes_retransmit_request"], 1)
        self.network.deliverOne()
        self.assertEqual(b.core.counters["ikes_retransmit_response"], 1)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertEqual(b.core.counters["ikes_sa_created"], 1)
        self.assertEqual(a.core.counters["ikes_retransmit_response"], 0)
        self.assertEqual(b.core.counters["ikes_retransmit_request"], 0)

    def test_noProposalChosen(self):
        """
        RFC 7296 2.7: NO_PROPOSAL_CHOSEN is a proposal failure on both
        sides, sent by one and received by the other.
        """
        a, b = self.makePair(
            initiator=initiatorConfig(extra="ikesa enc aes-256 prf hmac-sha2-256 auth hmac-sha2-256 group modp2048"),
            responder=responderConfig(extra="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519"))
        a.initiate("ab")
        self.network.pump()
        self.assertEqual(nonZero(a), {"ikes_sa_created": 1, "ikedtx_no_proposal_rcvd": 1,
                                      "ikes_sa_proposals_negotiate_failures": 1})
        self.assertEqual(nonZero(b), {"ikedtx_no_proposal_sent": 1, "ikes_sa_proposals_negotiate_failures": 1})

    def test_cookie(self):
        """
        RFC 7296 2.6: a responder over its half-open threshold asks for a
        COOKIE without creating an IKE SA for that request.
        """
        a, b, ikeSA = self.establish(settingsB=CoreSettings(cookieThreshold=0))
        self.assertEqual(b.core.counters["ikedtx_cookie_sent"], 1)
        self.assertEqual(b.core.counters["ikes_sa_created"], 1)
        self.assertEqual(a.core.counters["ikes_sa_created"], 1)

    def test_fragments(self):
        """
        RFC 7383: the fragments of a large IKE_AUTH request are counted as
        sent by the initiator and as received and reassembled once by the
        responder.
        """
        settings = "set fragmentation"
        init = parseConfig(settings + "\n" + 'ikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s '
                           'srcid %s dstid b.example psk "secret"' % (A_ADDR, B_ADDR, "a" * 200 + ".example"))
        resp = responderConfig(settings=settings, ids=False, extra="srcid b.example")
        a, b, ikeSA = self.establish(initiator=init, responder=resp, settingsA=CoreSettings(fragmentSize=200),
                                     settingsB=CoreSettings(fragmentSize=200))
        sent = a.core.counters["ikes_frag_sent"]
        self.assertGreater(sent, 1)
        self.assertEqual(b.core.counters["ikes_frag_rcvd"], sent)
        self.assertEqual(b.core.counters["ikes_frag_reass_ok"], 1)
        self.assertEqual((b.core.counters["ikes_frag_rcvd_drop"], b.core.counters["ikes_frag_reass_drop"]), (0, 0))

    def test_fragmentDuplicated(self):
        """
        RFC 7383 2.6.2: a fragment received twice is dropped, and counted
        as dropped.
        """
        settings = "set fragmentation"
        init = parseConfig(settings + "\n" + 'ikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s '
                           'srcid %s dstid b.example psk "secret"' % (A_ADDR, B_ADDR, "a" * 200 + ".example"))
        resp = responderConfig(settings=settings, ids=False, extra="srcid b.example")
        a, b = self.makePair(initiator=init, responder=resp, settingsA=CoreSettings(fragmentSize=200),
                             settingsB=CoreSettings(fragmentSize=200))
        requestId = a.initiate("ab")
        self.network.deliverOne()
        self.network.deliverOne()  # IKE_SA_INIT done
        self.network.deliverOne(duplicate=True)  # the first fragment of IKE_AUTH, twice
        self.assertEqual(b.core.counters["ikes_frag_rcvd_drop"], 1)
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertEqual(b.core.counters["ikes_frag_reass_ok"], 1)

    def test_dpd(self):
        """
        RFC 7296 2.4: a liveness check after an idle interval counts as a
        DPD message sent.
        """
        a, b, ikeSA = self.establish(initiator=initiatorConfig(settings="set dpd_check_interval 10"),
                                     responder=responderConfig(settings="set dpd_check_interval 0"))
        # An interval plus the most of its jitter (a quarter).
        self.network.clock.advance(13)
        self.network.pump()
        self.assertEqual(a.core.counters["ikes_dpd_sent"], 1)
        self.assertEqual(b.core.counters["ikes_dpd_sent"], 0)


class RekeyCountersTests(RekeyTestCase):
    def test_childRekeyed(self):
        """
        RFC 7296 2.8: a Child SA rekey is reported on both sides with the
        old and new SPIs, and counted once on each.
        """
        a, b, ikeSA = self.establishWith(child=300)
        (oldA,) = a.ikeSAs[0].children
        self.rekeyChild(a)
        self.network.pump()
        (eventA,), (eventB,) = a.eventsOf(ChildSARekeyed), b.eventsOf(ChildSARekeyed)
        childA, childB = self.assertOneChildPair()
        self.assertEqual((eventA.oldSpiIn, eventA.oldSpiOut, eventA.spiIn, eventA.spiOut),
                         (oldA.spiIn, oldA.spiOut, childA.spiIn, childA.spiOut))
        self.assertEqual((eventB.oldSpiIn, eventB.oldSpiOut, eventB.spiIn, eventB.spiOut),
                         (oldA.spiOut, oldA.spiIn, childB.spiIn, childB.spiOut))
        self.assertEqual((eventA.policy, eventB.policy), ("ab", "ba"))
        for host in (a, b):
            self.assertEqual(host.core.counters["ikedtx_csa_rekeyed"], 1)
            self.assertEqual(host.core.counters["ikes_sa_rekeyed"], 0)

    def test_ikeRekeyed(self):
        """
        RFC 7296 2.18: an IKE SA rekey is reported on both sides, after the
        new IKE SA's IKESAUp, with the old and new SPIs; each side counts
        one rekey and one more IKE SA created.
        """
        a, b, ikeSA = self.establishWith(child=300, ike=3000)
        old = (ikeSA.spiI, ikeSA.spiR)
        a.execute(a.core.timerExpired(TimerKey.ikeRekey(ikeSA.localSPI)))
        self.network.pump()
        (newA,), (newB,) = a.ikeSAs, b.ikeSAs
        for host, new in ((a, newA), (b, newB)):
            (event,) = host.eventsOf(IKESARekeyed)
            self.assertEqual((event.oldSpiI, event.oldSpiR), old)
            self.assertEqual((event.spiI, event.spiR), (new.spiI, new.spiR))
            self.assertNotEqual((event.spiI, event.spiR), old)
            kinds = [type(e) for e in host.events if isinstance(e, (IKESAUp, IKESARekeyed))]
            self.assertEqual(kinds, [IKESAUp, IKESAUp, IKESARekeyed])
            self.assertEqual(host.core.counters["ikes_sa_rekeyed"], 1)
            self.assertEqual(host.core.counters["ikes_sa_created"], 2)


class BusyTests(AsyncTestCase):
    def test_requestWhileAnswering(self):
        """
        A request received again while its answer waits for the datapath
        (the responder's Child SA SPI) is dropped and counted as iked's
        ikes_msg_rcvd_busy; once answered, the exchange completes.
        """
        a, b = self.makeSlowPair("b")
        requestId = a.initiate("ab")
        self.network.deliverOne()  # IKE_SA_INIT request
        self.network.deliverOne()  # its response
        self.network.deliverOne(duplicate=True)  # IKE_AUTH, twice
        self.assertEqual(self.network.inFlight, [])
        self.assertEqual(b.core.counters["ikes_msg_rcvd_busy"], 1)
        self.assertEqual(b.core.counters["ikes_retransmit_response"], 0)
        b.allocateAll()
        self.network.pump()
        for install in b.installs:
            b.execute(b.core.childInstalled(install.reqid))
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertEqual(a.core.counters["ikes_msg_rcvd_busy"], 0)

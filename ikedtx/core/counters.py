# -*- test-case-name: tests.test_core_counters -*-
"""
What the core counts for C{ikectl show stats} and the metrics.

The core knows what no observer of its actions can tell: that a datagram
was a retransmission, a fragment or a cached response, that a request came
while its answer was being worked on, which Notify refused a proposal.
L{Counters} holds those numbers under iked's names (struct iked_stats) and
a few of ikedtx's own; the shell adds them to what it counts itself.
"""

from ikedtx.wire.constants import NotifyType, PayloadType

#: The counters the core keeps, in the order C{show stats} prints them.
CORE_COUNTERS = (
    "ikes_sa_created",
    "ikes_sa_proposals_negotiate_failures",
    "ikes_sa_rekeyed",
    "ikes_msg_rcvd_busy",
    "ikes_msg_rcvd_dropped",
    "ikes_retransmit_request",
    "ikes_retransmit_response",
    "ikes_frag_sent",
    "ikes_frag_rcvd",
    "ikes_frag_rcvd_drop",
    "ikes_frag_reass_ok",
    "ikes_frag_reass_drop",
    "ikes_update_addresses_sent",
    "ikes_dpd_sent",
    "ikedtx_csa_rekeyed",
    "ikedtx_cookie_sent",
    "ikedtx_no_proposal_sent",
    "ikedtx_no_proposal_rcvd",
    "ikedtx_sa_refused_per_id",
    "ikedtx_eap_success",
    "ikedtx_eap_failures",
)


class Counters:
    """
    The core's counters.

    @ivar values: C{{name: int}} for every name of L{CORE_COUNTERS}.
    """

    def __init__(self):
        self.values = dict.fromkeys(CORE_COUNTERS, 0)

    def count(self, name, n=1):
        self.values[name] += n

    def __getitem__(self, name):
        return self.values[name]

    def items(self):
        return [(name, self.values[name]) for name in CORE_COUNTERS]

    def notifiesSent(self, payloads):
        """
        A message with C{payloads} went to a peer: count the refusals
        in it.
        """
        types = _notifyTypes(payloads)
        if not types:
            return
        if NotifyType.NO_PROPOSAL_CHOSEN in types:
            self.count("ikedtx_no_proposal_sent")
            self.count("ikes_sa_proposals_negotiate_failures")
        if NotifyType.COOKIE in types:
            self.count("ikedtx_cookie_sent")

    def notifiesReceived(self, payloads):
        """
        A response with C{payloads} came from a peer: count the refusals
        in it.
        """
        if _hasNotify(payloads, NotifyType.NO_PROPOSAL_CHOSEN):
            self.count("ikedtx_no_proposal_rcvd")
            self.count("ikes_sa_proposals_negotiate_failures")


def _hasNotify(payloads, notifyType):
    return any(getattr(p, "notifyType", None) == notifyType for p in payloads)


def _notifyTypes(payloads):
    """
    The Notify types among C{payloads}, in one pass.
    """
    return {p.notifyType for p in payloads if p.payloadType == PayloadType.NOTIFY}

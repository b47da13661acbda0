# -*- test-case-name: tests.test_control -*-
"""
What the daemon tells its operators: the monitor's events and iked's
counters.

L{EventHub} is fed by the shell (L{ikedtx.net.shell.CoreRunner} observes
the core's actions and the datapath's events) and by the service (reload,
modes); every C{ikectl monitor} connection subscribes to it.  L{Stats}
counts what iked's C{show stats} counts.
"""

import time

from twisted.logger import Logger

#: iked's counters (struct iked_stats), in its order.
COUNTERS = (
    "ikes_sa_created",
    "ikes_sa_established_total",
    "ikes_sa_established_current",
    "ikes_sa_established_failures",
    "ikes_sa_proposals_negotiate_failures",
    "ikes_sa_rekeyed",
    "ikes_sa_removed",
    "ikes_csa_created",
    "ikes_csa_removed",
    "ikes_msg_sent",
    "ikes_msg_send_failures",
    "ikes_msg_rcvd",
    "ikes_msg_rcvd_busy",
    "ikes_msg_rcvd_dropped",
    "ikes_retransmit_request",
    "ikes_retransmit_response",
    "ikes_retransmit_limit",
    "ikes_frag_sent",
    "ikes_frag_send_failures",
    "ikes_frag_rcvd",
    "ikes_frag_rcvd_drop",
    "ikes_frag_reass_ok",
    "ikes_frag_reass_drop",
    "ikes_update_addresses_sent",
    "ikes_dpd_sent",
    "ikes_keepalive_sent",
    # ikedtx's own, from the datapath's events.
    "ikedtx_acquires",
    "ikedtx_expires",
    "ikedtx_auth_failures",
    # ikedtx's own, from the core (ikedtx.core.counters).
    "ikedtx_csa_rekeyed",
    "ikedtx_cookie_sent",
    "ikedtx_no_proposal_sent",
    "ikedtx_no_proposal_rcvd",
    "ikedtx_sa_refused_per_id",
    "ikedtx_eap_success",
    "ikedtx_eap_failures",
)


class Stats:
    """
    iked's counters.

    @ivar values: C{{name: int}} for every name of L{COUNTERS}.
    @ivar failures: C{{cause: int}}: the IKE SAs that failed to establish,
        by cause (the metrics).
    """

    def __init__(self):
        self.values = dict.fromkeys(COUNTERS, 0)
        self.failures = {}

    def failed(self, cause):
        """
        An IKE SA failed before it was established, for C{cause} (an
        L{ikedtx.core.actions.IKESADown}'s).
        """
        self.failures[cause] = self.failures.get(cause, 0) + 1

    def count(self, name, n=1):
        self.values[name] += n

    def items(self):
        return [(name, self.values[name]) for name in COUNTERS]


class EventHub:
    """
    The monitor's events, to every subscriber.

    @ivar subscribers: callables given each event, a dict with C{time}
        (wall clock), C{kind} (one of L{ikedtx.control.commands.EVENT_KINDS})
        and the kind's fields (all strings).
    @ivar stats: the L{Stats} the events are counted in.
    """

    _log = Logger()

    def __init__(self, clock=time.time):
        self.clock = clock
        self.subscribers = []
        self.stats = Stats()

    def subscribe(self, subscriber):
        self.subscribers.append(subscriber)

    def unsubscribe(self, subscriber):
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def publish(self, kind, **fields):
        event = {"time": self.clock(), "kind": kind}
        event.update((k, str(v)) for k, v in fields.items() if v is not None)
        for subscriber in list(self.subscribers):
            try:
                subscriber(event)
            except Exception:
                # One broken monitor must not stop the others, nor the core.
                self._log.failure("monitor subscriber {s!r}", s=subscriber)
                self.unsubscribe(subscriber)
        return event

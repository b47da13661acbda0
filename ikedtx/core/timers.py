# -*- test-case-name: tests.test_core_async -*-
"""
The core's timers as data: typed keys, and the pure schedules behind them.

A timer is armed with a L{ikedtx.core.actions.SetTimer} naming a
L{TimerKey}; when it expires the shell calls C{IKECore.timerExpired(key)},
which dispatches on the key's kind to C{IKECore._timer_<kind>}. The kinds:

  - C{retransmit} (subject: our IKE SPI): resend the pending request;
  - C{halfopen} (IKE SPI): a responder's IKE SA that never authenticated;
  - C{keepalive} (IKE SPI): a NAT keepalive (RFC 3948 4);
  - C{cookiesecret} (no subject): rotate the COOKIE secret (RFC 7296 2.6);
  - C{childsoft} and C{childhard} (C{(IKE SPI, reqid)}): a Child SA's soft
    lifetime (rekey it) and hard lifetime (delete it);
  - C{childrekeyed} (C{(reqid, inbound SPI)}): a Child SA the peer rekeyed
    and never deleted (L{ikedtx.core.tasks.childrekey.peerNeverDeleted});
  - C{ikerekey} and C{ikelifetime} (IKE SPI): the IKE SA's rekey margin and
    lifetime;
  - C{dpd} (IKE SPI): dead peer detection (an empty INFORMATIONAL);
  - C{responder} (IKE SPI): a peer's exchange we answered waits for its
    next round (an IKE_FOLLOWUP_KE, RFC 9370 2.2.3) that never came: its
    state is freed (L{ikedtx.core.taskmanager.TaskManager.abandonResponders});
  - C{reinitiate} (policy name): initiate an active policy again after its
    IKE SA failed or was deleted, on the L{BackoffPolicy} schedule.

The lifetime kinds are armed by L{ikedtx.core.lifetimes} (C{childsoft} and
C{childhard} when a Child SA is installed, C{ikerekey} when an IKE SA is
established) and start the rekeys of L{ikedtx.core.tasks.childrekey} and
L{ikedtx.core.tasks.ikerekey}; C{ikelifetime} deletes an IKE SA that was
rekeyed by the peer if the peer never deletes it.
"""

from dataclasses import dataclass
from typing import Hashable, NamedTuple

RETRANSMIT = "retransmit"
HALFOPEN = "halfopen"
KEEPALIVE = "keepalive"
COOKIESECRET = "cookiesecret"
CHILDSOFT = "childsoft"
CHILDHARD = "childhard"
CHILDREKEYED = "childrekeyed"
IKEREKEY = "ikerekey"
IKELIFETIME = "ikelifetime"
DPD = "dpd"
REINITIATE = "reinitiate"
RESPONDER = "responder"

KINDS = (RETRANSMIT, HALFOPEN, KEEPALIVE, COOKIESECRET, CHILDSOFT, CHILDHARD, CHILDREKEYED, IKEREKEY, IKELIFETIME, DPD,
         REINITIATE, RESPONDER)


class TimerKey(NamedTuple):
    """
    The key of one timer: its kind and what it is about.
    """

    kind: str
    subject: Hashable

    @classmethod
    def retransmit(cls, spi):
        return cls(RETRANSMIT, spi)

    @classmethod
    def halfOpen(cls, spi):
        return cls(HALFOPEN, spi)

    @classmethod
    def keepalive(cls, spi):
        return cls(KEEPALIVE, spi)

    @classmethod
    def cookieSecret(cls):
        return cls(COOKIESECRET, None)

    @classmethod
    def childSoft(cls, spi, reqid):
        return cls(CHILDSOFT, (spi, reqid))

    @classmethod
    def childHard(cls, spi, reqid):
        return cls(CHILDHARD, (spi, reqid))

    @classmethod
    def childRekeyed(cls, reqid, spiIn):
        return cls(CHILDREKEYED, (reqid, spiIn))

    @classmethod
    def ikeRekey(cls, spi):
        return cls(IKEREKEY, spi)

    @classmethod
    def ikeLifetime(cls, spi):
        return cls(IKELIFETIME, spi)

    @classmethod
    def dpd(cls, spi):
        return cls(DPD, spi)

    @classmethod
    def reinitiate(cls, policyName):
        return cls(REINITIATE, policyName)

    @classmethod
    def responder(cls, spi):
        return cls(RESPONDER, spi)


# The timers of one IKE SA, cancelled when it goes away.
IKE_SA_KINDS = (RETRANSMIT, HALFOPEN, KEEPALIVE, IKEREKEY, IKELIFETIME, DPD, RESPONDER)


@dataclass(frozen=True)
class BackoffPolicy:
    """
    The delay before re-initiating an active policy after attempt C{n}
    (0 for the first re-initiation) failed, as Twisted's ClientService
    backoffPolicy: C{min(initial * factor ** n, maximum)} plus a jitter of
    up to C{jitter} times that, drawn from the core's random source.
    """

    initial: float = 1.0
    factor: float = 1.5
    maximum: float = 60.0
    jitter: float = 0.1

    def delay(self, attempt, random):
        """
        @param random: a float in [0, 1).
        """
        base = min(self.initial * self.factor ** min(attempt, 64), self.maximum)
        return base + base * self.jitter * random

# -*- test-case-name: tests.test_core_screening -*-
"""
What a peer's message must pass before any task sees it, and the quiet log
of what is dropped for failing.

Anyone who sees an IKE SA's SPIs can send messages for it, so a message
that cannot be genuine is dropped without state change and without a line
above debug level, and those debug lines are rate-limited (L{QuietDrops}):
the log cannot be filled by a third party.

  - RFC 7296 3.1: an IKE_SA_INIT request's SPIi is never zero.
  - RFC 7296 3.14: every message after IKE_SA_INIT is protected (SK, or
    SKF fragments, RFC 7383).
  - RFC 7383 2.5: SKF fragments only once both peers announced
    IKEV2_FRAGMENTATION_SUPPORTED.
  - Until the IKE SA is authenticated only IKE_AUTH (and
    IKE_INTERMEDIATE) requests are taken; anything else is dropped before
    the Message ID window moves (the CVE-2019-12312 and CVE-2014-2338
    patterns: a Delete or CREATE_CHILD_SA on a half-open SA).
  - RFC 7296 2.5: an IKE_SA_INIT request with an unknown critical payload
    is answered UNSUPPORTED_CRITICAL_PAYLOAD in the clear.
"""

from twisted.logger import Logger, LogLevel

from ikedtx.core.states import IKEState
from ikedtx.wire.constants import ExchangeType, HeaderFlag, NotifyType

ZERO_SPI = b"\x00" * 8

# The states of an IKE SA that has not authenticated its peer yet.
PRE_AUTH_STATES = frozenset([IKEState.INIT, IKEState.SA_INIT, IKEState.AUTH_REQUEST])

# Exchanges a peer may start before the IKE SA is authenticated.
PRE_AUTH_EXCHANGES = frozenset([ExchangeType.IKE_AUTH, ExchangeType.IKE_INTERMEDIATE])


class QuietDrops:
    """
    Lines (at debug level unless C{level}) for dropped messages, at most
    C{burst} per C{period} seconds; the count of those left out is told
    with the next line.

    @ivar suppressed: lines left out since the last one logged.
    """

    _log = Logger()

    def __init__(self, now, burst=10, period=60.0, level=LogLevel.debug):
        self.now = now
        self.level = level
        self.burst = burst
        self.period = period
        self.suppressed = 0
        self._windowStart = None
        self._inWindow = 0

    def drop(self, remote, why):
        """
        Log (at debug level, within the rate) that a message from C{remote}
        was dropped because of C{why}.

        @return: whether the line was logged.
        """
        now = self.now()
        if self._windowStart is None or now - self._windowStart >= self.period:
            self._windowStart = now
            self._inWindow = 0
        if self._inWindow >= self.burst:
            self.suppressed += 1
            return False
        self._inWindow += 1
        more, self.suppressed = self.suppressed, 0
        self._log.emit(self.level, "{remote}: {why}; dropped{more}", remote=remote, why=why,
                       more=" (and %d more not logged)" % (more,) if more else "")
        return True

    def dropAll(self, remotes, why):
        """
        L{drop} for each of C{remotes} in turn (a batch handled at one
        moment): those past the rate are counted as suppressed at once.
        """
        for i, remote in enumerate(remotes):
            if not self.drop(remote, why):
                self.suppressed += len(remotes) - i - 1
                return


def initRequestRefusal(message):
    """
    Why an IKE_SA_INIT request must be dropped before it is looked at, or
    L{None}.
    """
    if message.spiI == ZERO_SPI:
        return "IKE_SA_INIT request with a zero initiator SPI"
    if message.spiR != ZERO_SPI or message.messageId != 0:
        return "IKE_SA_INIT request with a responder SPI or Message ID"
    return None


def protectedRefusal(core, ikeSA, message):
    """
    Why a message of the known C{ikeSA} must be dropped
    before it is opened, or L{None}. (An IKE_SA_INIT response is in the
    clear.)
    """
    if message.exchangeType == ExchangeType.IKE_SA_INIT:
        return None
    if message.sealedPayload is None:
        return "%s %s without an SK payload" % (
            _exchangeName(message.exchangeType), "response" if message.isResponse else "request")
    if message.isFragment and not (ikeSA.peerFragmentation and core.config.settings.fragmentation):
        return "SKF fragment, but fragmentation was not negotiated"
    # By state, not "not VALID": a CLOSING SA still takes the peer's
    # INFORMATIONAL (simultaneous Deletes, 1.4.1).
    if not message.isResponse and ikeSA.state in PRE_AUTH_STATES and message.exchangeType not in PRE_AUTH_EXCHANGES:
        return "%s request before the IKE SA is authenticated" % (_exchangeName(message.exchangeType),)
    return None


def clearAnswerTo(error):
    """
    The Notify (type, data) to answer an undecodable message with in the
    clear, or L{None}: only an IKE_SA_INIT request with an unknown critical
    payload gets one (RFC 7296 2.5, 2.21.1); its header must be that of a
    first IKE_SA_INIT request.
    """
    header = error.header
    if header is None or error.notify != NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD:
        return None
    if header.exchangeType != ExchangeType.IKE_SA_INIT or header.flags & HeaderFlag.RESPONSE:
        return None
    if header.spiI == ZERO_SPI or header.spiR != ZERO_SPI or header.messageId != 0:
        return None
    return error.notify, error.notifyData


def _exchangeName(exchangeType):
    try:
        return ExchangeType(exchangeType).name
    except ValueError:
        return "exchange %d" % (exchangeType,)

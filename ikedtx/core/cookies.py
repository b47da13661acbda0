# -*- test-case-name: tests.test_core_cookies -*-
"""
The COOKIE defence under a flood of IKE_SA_INIT requests (RFC 7296 2.6),
and the limits on half-open IKE SAs.

Once C{cookieThreshold} IKE SAs are half open, a first IKE_SA_INIT request
without a valid COOKIE is answered from a cheap look at the datagram
(L{quickLook}: the header, the chain of generic payload headers, the
nonce), without decoding its payloads or logging it above debug level: a
spoofed flood costs one hash and one small datagram per packet. What the
fast path cannot judge (a malformed chain, a nonce of the wrong size, no
policy, a COOKIE to check) goes the full way (L{ikedtx.core.tasks.ikeinit.
screenRequest}), which answers the same COOKIE for the same request. The
quick look reads the payload chain, not the proposals: a malformed SA
payload inside a well-formed chain gets the COOKIE too (RFC 7296 2.6: the
COOKIE comes before any processing), and is judged, and dropped, only
once it returns with a valid COOKIE.

L{HalfOpenLimits} counts half-open IKE SAs per peer address: past
C{halfOpenMax} in all a new one is dropped even with a valid COOKIE (a
COOKIE proves the address, not good intent); past C{halfOpenPerPeer} from
one address, that address's oldest is given up for the new one. Every
half-open IKE SA expires after C{halfOpenTimeout}, so what a
flood made the core keep is gone once it stops.
"""

import hashlib
import socket
import struct

from ikedtx.core.tasks.common import MAX_NONCE, MIN_NONCE
from ikedtx.wire.constants import ExchangeType, HeaderFlag, NotifyType, PayloadType

_ZERO_SPI = b"\x00" * 8
_HEADER = struct.Struct("!8s8sBBBBII")
_GENERIC = struct.Struct("!BBH")
_NOTIFY = struct.Struct("!BBH")
_NONCE = int(PayloadType.NONCE)
_NOTIFY_PAYLOAD = int(PayloadType.NOTIFY)
_SA = int(PayloadType.SA)
_KE = int(PayloadType.KE)
_COOKIE = int(NotifyType.COOKIE)
# Plain ints: the enums' operators cost more than the rest of a quick look.
_IKE_SA_INIT = int(ExchangeType.IKE_SA_INIT)
_RESPONSE = int(HeaderFlag.RESPONSE)
_INITIATOR = int(HeaderFlag.INITIATOR)


class Look:
    """
    What L{quickLook} saw of an IKE_SA_INIT request.

    @ivar spiI: the initiator's SPI.
    @ivar nonce: the initiator's nonce.
    @ivar cookie: the data of the COOKIE Notify when it is the first
        payload, else L{None}.
    """

    __slots__ = ("spiI", "nonce", "cookie")

    def __init__(self, spiI, nonce, cookie):
        self.spiI = spiI
        self.nonce = nonce
        self.cookie = cookie


def quickLook(data):
    """
    The header and generic payload headers of C{data}, if it is a well
    formed first IKE_SA_INIT request with SA, KE and a nonce of a valid
    size; else L{None} (and the full decode judges it).
    """
    if len(data) < _HEADER.size:
        return None
    spiI, spiR, nextPayload, version, exchange, flags, messageId, length = _HEADER.unpack_from(data)
    if (exchange != _IKE_SA_INIT or version >> 4 != 2 or flags & _RESPONSE
            or not flags & _INITIATOR or messageId != 0 or length != len(data)
            or spiI == _ZERO_SPI or spiR != _ZERO_SPI):
        return None
    offset = _HEADER.size
    nonce = cookie = None
    seen = 0
    first = True
    # The generic payload headers (next payload, critical, length) read by
    # indexing: a struct call per payload cost more than the rest of the
    # walk.
    while nextPayload:
        if offset + 4 > length:
            return None
        kind = nextPayload
        nextPayload = data[offset]
        size = data[offset + 2] << 8 | data[offset + 3]
        if size < 4 or offset + size > length:
            return None
        if kind == _NONCE:
            if nonce is None:
                nonce = data[offset + 4:offset + size]
        elif kind == _SA:
            seen |= 1
        elif kind == _KE:
            seen |= 2
        elif kind == _NOTIFY_PAYLOAD and first and size >= _GENERIC.size + _NOTIFY.size:
            _protocol, spiSize, notifyType = _NOTIFY.unpack_from(data, offset + 4)
            if notifyType == _COOKIE and spiSize == 0:
                cookie = data[offset + 4 + _NOTIFY.size:offset + size]
        first = False
        offset += size
    if offset != length or nonce is None or seen != 3 or not MIN_NONCE <= len(nonce) <= MAX_NONCE:
        return None
    return Look(spiI, nonce, cookie)


def cookieResponse(spiI, cookie):
    """
    The IKE_SA_INIT response carrying only C{cookie} in a COOKIE Notify,
    byte for byte what L{ikedtx.core.engine.IKECore.answerInClear} sends.
    """
    notify = _GENERIC.pack(0, 0, _GENERIC.size + _NOTIFY.size + len(cookie)) + _NOTIFY.pack(0, 0, _COOKIE) + cookie
    header = _HEADER.pack(spiI, _ZERO_SPI, _NOTIFY_PAYLOAD, 0x20, _IKE_SA_INIT, _RESPONSE, 0,
                          _HEADER.size + len(notify))
    return header + notify


#: What follows the SPIi in a COOKIE response whose cookie is 36 octets
#: (the core's: a 4-octet version and a SHA-256): the rest of the header
#: and the Notify's headers (L{cookieResponse}).
_COOKIE_LENGTH = 36
_AFTER_SPI = cookieResponse(_ZERO_SPI, b"\x00" * _COOKIE_LENGTH)[8:-_COOKIE_LENGTH]


def fastCookies(core, items, halfOpen, secret, version):
    """
    L{fastCookie} for a batch of C{(data, remote, local)} while cookies are
    demanded (the caller checked the threshold), with the core's half-open
    table, its cookie secret and version (L{IKECore.cookieFor}: C{version +
    SHA-256(Ni | IPi | SPIi | secret)}) looked up once: C{(answers, rest)} as
    L{ikedtx.core.engine.IKECore.cookieAnswers} returns them. Each answer
    is byte for byte what L{fastCookie} gives for its request.
    """
    answers = []
    rest = []
    accepts = core.policies.accepts
    sha256 = hashlib.sha256
    inet_pton = socket.inet_pton
    AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
    for item in items:
        data, remote, local = item
        look = quickLook(data)
        if look is None:
            rest.append(item)
            continue
        host = remote[0]
        spiI = look.spiI
        if (spiI, remote) in halfOpen:
            rest.append(item)
            continue
        try:
            packed = inet_pton(AF_INET6 if ":" in host else AF_INET, host)
        except (OSError, TypeError):
            rest.append(item)
            continue
        if look.cookie is not None and core.cookieValid(look.cookie, look.nonce, host, spiI):
            rest.append(item)
            continue
        if not accepts(local[0], host):
            rest.append(item)
            continue
        digest = sha256(look.nonce + packed + spiI + secret).digest()
        answers.append((spiI + _AFTER_SPI + version + digest, remote, local))
    return answers, rest


def fastCookie(core, data, local, remote):
    """
    The COOKIE answer to C{data} when the core demands cookies and the
    request carries none that is valid, from a quick look only; L{None}
    when the request must go the full way.
    """
    if core.halfOpenCount() < core.settings.cookieThreshold:
        return None
    look = quickLook(data)
    if look is None:
        return None
    if core.isHalfOpen(look.spiI, remote):
        return None
    if look.cookie is not None and core.cookieValid(look.cookie, look.nonce, remote[0], look.spiI):
        return None
    if not core.policies.accepts(local[0], remote[0]):
        return None
    return cookieResponse(look.spiI, core.cookieFor(look.nonce, remote[0], look.spiI))


class HalfOpenLimits:
    """
    Half-open responder IKE SAs per peer address, and the limits on them:
    past C{halfOpenMax} in all new ones are refused; past
    C{halfOpenPerPeer} from one address its oldest is given up for the new
    one (so a flood from one address, or a fuzzer, bounds its own memory
    without locking out a legitimate peer behind the same address).

    @ivar perPeer: C{{host: {halfOpenKey: None}}}, oldest first.
    """

    def __init__(self, settings):
        self.settings = settings
        self.perPeer = {}

    def refusal(self, halfOpen):
        """
        Why one more half-open IKE SA is refused (with C{halfOpen} in all
        now), or L{None}.
        """
        if halfOpen >= self.settings.halfOpenMax:
            return "%d half-open IKE SAs, the most kept (--half-open-max)" % (halfOpen,)
        return None

    def evictionFor(self, host):
        """
        The key of the half-open IKE SA from C{host} to give up before one
        more is kept, or L{None}.
        """
        mine = self.perPeer.get(host)
        if mine is None or len(mine) < self.settings.halfOpenPerPeer:
            return None
        return next(iter(mine))

    def opened(self, key):
        self.perPeer.setdefault(key[1][0], {})[key] = None

    def closed(self, key):
        host = key[1][0]
        mine = self.perPeer.get(host)
        if mine is not None:
            mine.pop(key, None)
            if not mine:
                del self.perPeer[host]

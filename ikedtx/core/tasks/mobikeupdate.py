# -*- test-case-name: tests.test_core_mobike -*-
"""
MOBIKE address updates as responder (RFC 4555 3.5): an INFORMATIONAL
request with UPDATE_SA_ADDRESSES moves the IKE SA to the addresses the
request came from and to, and the Child SAs with it (an L{UpdateChildSA}
for the datapath, which keeps their keys, sequence numbers and replay
windows).

A COOKIE2 in the request is copied into the response (5.7).  The
request's NAT_DETECTION payloads are checked as in IKE_SA_INIT: a NAT
in front of us refuses the update (UNACCEPTABLE_ADDRESSES: a MOBIKE
responder behind a NAT cannot know the address the peer sees), a NAT on
the path with NO_NATS_ALLOWED answers UNEXPECTED_NAT_DETECTED (3.9); the
response carries our NAT_DETECTION payloads for the new path.  A request
older than the last update applied is answered and changes nothing (3.5).

As the original initiator (3.5, 3.8), L{addressLost} and L{addressesChanged}
move each IKE SA whose local address went away to the address the host now
uses to reach the peer and send UPDATE_SA_ADDRESSES from there with
L{UpdateAddressesInitiatorTask}; an SA with no way to the peer waits for
the next address event.
"""

from ipaddress import ip_address

from twisted.logger import Logger

from ikedtx.core.actions import IKESAMoved, UpdateChildSA
from ikedtx.core.errors import RemoteProtocolError
from ikedtx.core.states import ChildState, IKEState
from ikedtx.core.tasks import DONE, Task
from ikedtx.core.tasks.common import findNotify
from ikedtx.core.tasks.natd import detectNat, natPayloads
from ikedtx.wire.constants import ExchangeType, NotifyType
from ikedtx.wire.payloads import Notify


def moveIkeSA(core, ikeSA, local, remote, natLocal=None, natRemote=None):
    """
    Move C{ikeSA} to the endpoints C{local} and C{remote} (and NAT state,
    when given), and its installed Child SAs with it: an L{UpdateChildSA}
    for each whose kernel SAs change, with its flows (their tunnel
    endpoints), and the Child SA's kernel records become the new ones;
    then an L{IKESAMoved}, when its addresses changed, for the policy's
    trap flows.
    """
    moved = (local[0], remote[0]) != (ikeSA.local[0], ikeSA.remote[0])
    children = [c for c in ikeSA.children if c.state == ChildState.INSTALLED]
    before = [tuple(c.kernelSAs(ikeSA)) for c in children]
    ikeSA.local, ikeSA.remote = local, remote
    if moved:
        core.saIndex.moved(ikeSA)
    if natLocal is not None:
        ikeSA.natLocal, ikeSA.natRemote = natLocal, natRemote
    for child, old in zip(children, before):
        new = tuple(child.kernelSAs(ikeSA))
        if new == old:
            continue
        if child.kernelRecords is None:
            core.emit(UpdateChildSA(child.reqid, old, new))
            continue
        # What the datapath holds (an outbound SA held back during a rekey
        # is not there yet) moves, and is what the Child SA removes later.
        moved = {(sa.spi, sa.inbound): sa for sa in new}
        sas, flows = child.kernelRecords
        newSAs = tuple(moved.get((sa.spi, sa.inbound), sa) for sa in sas)
        child.heldOutbound = [moved.get((sa.spi, sa.inbound), sa) for sa in child.heldOutbound]
        newFlows = tuple(child.kernelFlows(ikeSA))
        if len(newFlows) != len(flows):
            newFlows = flows
        child.kernelRecords = (newSAs, newFlows)
        core.emit(UpdateChildSA(child.reqid, sas, newSAs, flows, newFlows))
    if moved:
        core.emit(IKESAMoved(ikeSA.policy.name, local[0], remote[0]))


class UpdateAddressesTask(Task):
    """
    UPDATE_SA_ADDRESSES in an INFORMATIONAL request (responder only).
    """

    exchangeType = ExchangeType.INFORMATIONAL
    _log = Logger()

    def __init__(self, initiator, requestId=None):
        Task.__init__(self, initiator, requestId)
        self.essential = False
        self._natPayloads = False
        self._cookie2 = None

    def processR(self, core, ikeSA, message, payloads):
        # RFC 4555 3.5, 5.7: a COOKIE2 is copied into the response.
        self._cookie2 = findNotify(payloads, NotifyType.COOKIE2)
        if findNotify(payloads, NotifyType.UPDATE_SA_ADDRESSES) is None:
            return
        if not (core.config.settings.mobike and ikeSA.peerMobike):
            raise RemoteProtocolError("UPDATE_SA_ADDRESSES without MOBIKE agreed", None)
        answering = ikeSA.taskManager.answering
        local, remote = answering.local, answering.remote
        if message.messageId < getattr(ikeSA, "lastAddressUpdate", -1):
            self._log.info("{ikeSA}: UPDATE_SA_ADDRESSES {mid} older than the last applied, ignored", ikeSA=ikeSA,
                           mid=message.messageId)
            return
        was = (ikeSA.local, ikeSA.remote, ikeSA.natLocal, ikeSA.natRemote)
        natSupported = detectNat(core, ikeSA, payloads, ikeSA.spiR, local, remote)
        natLocal, natRemote = ikeSA.natLocal, ikeSA.natRemote
        ikeSA.natLocal, ikeSA.natRemote = was[2], was[3]
        if natSupported and natLocal and not was[2]:
            raise RemoteProtocolError("UPDATE_SA_ADDRESSES to %s:%d: a NAT is in front of us" % local,
                                      NotifyType.UNACCEPTABLE_ADDRESSES)
        if natSupported and (natLocal or natRemote) and findNotify(payloads, NotifyType.NO_NATS_ALLOWED):
            raise RemoteProtocolError("UPDATE_SA_ADDRESSES with NO_NATS_ALLOWED through a NAT",
                                      NotifyType.UNEXPECTED_NAT_DETECTED)
        ikeSA.lastAddressUpdate = message.messageId
        self._natPayloads = natSupported
        self._log.info("{ikeSA}: UPDATE_SA_ADDRESSES applied: {local} <-> {remote}", ikeSA=ikeSA,
                       local="%s:%d" % local, remote="%s:%d" % remote)
        if natSupported:
            moveIkeSA(core, ikeSA, local, remote, natLocal, natRemote)
        else:
            moveIkeSA(core, ikeSA, local, remote)

    def buildR(self, core, ikeSA, payloads):
        if self._cookie2 is not None:
            payloads.append(Notify(NotifyType.COOKIE2, data=bytes(self._cookie2.data)))
        if self._natPayloads:
            payloads += natPayloads(core, ikeSA, ikeSA.spiR)
        return DONE


class UpdateAddressesInitiatorTask(Task):
    """
    UPDATE_SA_ADDRESSES with our NAT_DETECTION payloads, from the address
    the IKE SA was just moved to (initiator only); the response's NAT-D
    payloads update the NAT state (and with it the ESP encapsulation).
    """

    exchangeType = ExchangeType.INFORMATIONAL
    _log = Logger()

    def buildI(self, core, ikeSA, payloads):
        core.counters.count("ikes_update_addresses_sent")
        payloads.append(Notify(NotifyType.UPDATE_SA_ADDRESSES))
        payloads += natPayloads(core, ikeSA, ikeSA.spiR)

    def processI(self, core, ikeSA, message, payloads, local, remote):
        was = (ikeSA.natLocal, ikeSA.natRemote)
        if detectNat(core, ikeSA, payloads, ikeSA.spiR, local, remote):
            now = (ikeSA.natLocal, ikeSA.natRemote)
            ikeSA.natLocal, ikeSA.natRemote = was
            moveIkeSA(core, ikeSA, ikeSA.local, ikeSA.remote, *now)
        self._log.info("{ikeSA}: peer accepted UPDATE_SA_ADDRESSES", ikeSA=ikeSA)
        return DONE


def _mobikeInitiator(core, ikeSA):
    return (core.config.settings.mobike and ikeSA.peerMobike and ikeSA.mobikeInitiator and ikeSA.local is not None
            and ikeSA.state == IKEState.VALID)


def addressesChanged(core, removed=None):
    """
    A local address came or went (C{removed}: the address that went): move
    every IKE SA we initiated with MOBIKE whose address is gone (now or at
    an earlier event) to the address the host now reaches its peer from,
    and tell the peer (L{UpdateAddressesInitiatorTask}).
    """
    for ikeSA in list(core.ikeSAs.values()):
        if not _mobikeInitiator(core, ikeSA):
            continue
        if removed is not None and ip_address(ikeSA.local[0]) == ip_address(removed):
            ikeSA.localLost = True
        if not getattr(ikeSA, "localLost", False) or core.localAddressFor is None:
            continue
        try:
            address = str(ip_address(core.localAddressFor(ikeSA.remote[0])))
        except (OSError, ValueError) as e:
            core._log.info("{ikeSA}: no address to reach the peer yet ({error}); MOBIKE update deferred",
                           ikeSA=ikeSA, error=e)
            continue
        if address == ikeSA.local[0]:
            continue
        ikeSA.localLost = False
        core._log.info("{ikeSA}: local address {old} gone, moving to {new} (MOBIKE)", ikeSA=ikeSA,
                       old=ikeSA.local[0], new=address)
        moveIkeSA(core, ikeSA, (address, ikeSA.local[1]), ikeSA.remote)
        ikeSA.taskManager.queueExchange([UpdateAddressesInitiatorTask(True)])

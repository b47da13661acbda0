# -*- test-case-name: tests.test_core_child -*-
"""
The Child SA task (RFC 7296 1.3, 2.9, 2.17): a Child SA created in IKE_AUTH
or with CREATE_CHILD_SA (with PFS when the policy's childsa proposals have
a group), and rekeyed as responder (REKEY_SA, 1.3.3, with the checks of
L{ikedtx.core.tasks.childrekey}). A request that rekeys the IKE SA is left
to L{ikedtx.core.tasks.ikerekey}.

The Child SA's inbound SPI (and IPcomp CPI) come from the datapath: the
task asks for them (C{prepareI} as initiator, C{processR} as responder)
and its round goes on once they are allocated. The Child SA is installed
with L{IKECore.installChild}; an initiator's command succeeds only when the
datapath confirms the install (L{IKECore.childInstalled}).
"""

import struct

from twisted.logger import Logger

from ikedtx.core import cryptoglue
from ikedtx.core.errors import (
    NegotiationFailed, NoProposalChosen, RemoteProtocolError, TrafficSelectorsUnacceptable)
from ikedtx.core.proposals import accept
from ikedtx.core.sa import ChildSA
from ikedtx.core.tasks import DONE, MORE, PRIORITY_OTHER, PRIORITY_REKEY, Task
from ikedtx.core.tasks import followup as _followup
from ikedtx.core.tasks.common import (
    checkNonce, checkResponseNonce, errorNotify, findNotify, first, offersFromConfig, offersFromWire, require,
    saPayload, trafficSelectors, tsToWire)
from ikedtx.core.tasks import config
from ikedtx.core.tasks.childpolicy import matchChildRequest
from ikedtx.core.ts import isSubsetOf
from ikedtx.crypto.errors import InvalidKeyExchange
from ikedtx.wire.constants import DhId, ExchangeType, IpcompTransform, NotifyType, ProtocolId, TransformType, nameOf
from ikedtx.wire.payloads import (
    KeyExchange, Nonce, Notify, SecurityAssociation, TrafficSelectorsInitiator, TrafficSelectorsResponder)


def refuseStrayKeyExchange(payloads, sa, chosen):
    """
    RFC 7296 1.3.1, 3.4: a KE payload goes with proposals that offer a key
    exchange. A KE when no proposal offers one is malformed: refused with
    INVALID_SYNTAX. (A KE next to proposals that offer a group and NONE,
    of which we chose NONE, is the peer's optional PFS: the KE is left
    unused, as RFC 7296 3.3.6 lets the responder choose.)
    """
    if chosen.dhGroup != DhId.NONE or first(payloads, KeyExchange) is None:
        return
    offered = any(t.transformType == TransformType.DH and t.transformId != DhId.NONE
                  for p in sa.proposals for t in p.transforms)
    if not offered:
        raise RemoteProtocolError("KE payload without a key exchange in any proposal", NotifyType.INVALID_SYNTAX)


def ipcompCpi(spi):
    """
    An IPcomp CPI (16 bits, not the reserved 0-255) from an allocated SPI.
    """
    return spi & 0xFFFF or 0x100



def childlessAuth(core, ikeSA):
    """
    Whether our IKE_AUTH goes without a Child SA (RFC 6023), by
    L{CoreSettings.childless}; L{NegotiationFailed} when it must and the
    responder did not announce CHILDLESS_IKEV2_SUPPORTED.
    """
    mode = core.settings.childless
    if mode == "force" and not ikeSA.peerChildless:
        raise NegotiationFailed("the responder does not take childless IKE SAs (RFC 6023), and childless is forced")
    return mode in ("prefer", "force") and ikeSA.peerChildless

class ChildCreateTask(Task):
    """
    A new Child SA, both roles, in IKE_AUTH or CREATE_CHILD_SA.

    @ivar inAuth: the Child SA is created in IKE_AUTH (no KE, no nonces).
    @ivar rekeying: as initiator, the L{ChildSA} this one rekeys.
    @ivar child: the L{ChildSA} being made.
    @ivar group: the key exchange we send (initiator, CREATE_CHILD_SA).
    @ivar keyExchange: our key exchange in progress.
    @ivar nonce: our nonce (CREATE_CHILD_SA).
    @ivar restarts: INVALID_KE_PAYLOAD retries so far.
    @ivar resultIsIKESA: the command waiting for it wants the IKE SA
        (C{initiate}) rather than the Child SA (C{createChildSA}).
    @ivar chosen: as responder, the chosen proposal.
    @ivar answer: as responder, what the response carries for it.
    @ivar followup: the L{ikedtx.core.tasks.followup.Followup} of its RFC
        9370 additional key exchanges (IKE_FOLLOWUP_KE), or L{None}.
    """

    exchangeType = ExchangeType.CREATE_CHILD_SA
    _log = Logger()

    def __init__(self, initiator, requestId=None, inAuth=False, rekeying=None, policy=None):
        Task.__init__(self, initiator, requestId)
        # As initiator, the policy whose flows it asks for (the IKE SA's
        # unless given, or the rekeyed Child SA's); as responder, the policy
        # the request fell under.
        self.policy = policy or (rekeying.policy if rekeying is not None else None)
        self.inAuth = inAuth
        self.exchangeType = ExchangeType.IKE_AUTH if inAuth else ExchangeType.CREATE_CHILD_SA
        self.priority = PRIORITY_REKEY if rekeying is not None else PRIORITY_OTHER
        self.essential = not inAuth
        self.rekeying = rekeying
        self.resultIsIKESA = inAuth
        self.child = None
        self.group = None
        self.keyExchange = None
        self.nonce = None
        self.restarts = 0
        self.chosen = None
        self.peerTS = None
        self.transport = False
        self.peerIpcomp = None
        self.shared = None
        self.ourKe = None
        self.nonces = None
        self.rekeyed = None
        self.followup = None
        self.childless = False

    # Initiator

    def prepareI(self, core, ikeSA):
        policy = self.policy = self.policy or ikeSA.policy
        if "spi" in self.spis:
            # Handed on by a childless IKE_AUTH (RFC 6023).
            return
        self.requestSPI(core, ikeSA, "spi", policy.saProtocol, ikeSA.remote[0], ikeSA.local[0])
        if policy.ipcomp:
            self.requestSPI(core, ikeSA, "cpi", ProtocolId.NONE, ikeSA.remote[0], ikeSA.local[0])

    def buildI(self, core, ikeSA, payloads):
        if self.followup is not None:
            return self.followup.buildI(core, payloads)
        if self.spiError is not None:
            raise NegotiationFailed("no SPI for the Child SA: %s" % (self.spiError,))
        if self.inAuth and childlessAuth(core, ikeSA):
            self.childless = True
            return
        if not self.inAuth and not ikeSA.isEstablished:
            raise NegotiationFailed("IKE SA is not established")
        policy = self.policy
        spiIn = self.spis["spi"]
        child = self.child = ChildSA(policy.saProtocol, policy.mode, spiIn, core.nextReqid(), core.now())
        child.policy = policy
        child.rekeyOf = self.rekeying
        child.offers = offersFromConfig(policy.childProposals, struct.pack("!I", spiIn), not self.inAuth)
        child.localOffer = config.localSelectors(core, ikeSA, policy)
        child.remoteOffer = core.policies.selectors(policy, local=False)
        if not self.inAuth:
            if self.rekeying is not None:
                payloads.append(Notify.rekeySa(self.rekeying.protocol, struct.pack("!I", self.rekeying.spiIn)))
            if self.group is None:
                groups = [t.id for t in child.offers[0].transforms if t.type == TransformType.DH]
                self.group = groups[0] if groups else DhId.NONE
            self.nonce = core.randomBytes(core.settings.nonceSize)
            payloads += [saPayload(child.offers), Nonce(self.nonce)]
            if self.group != DhId.NONE:
                self._wipe()
                self.keyExchange = cryptoglue.keyExchangeMethod(self.group).generate(core.randomBytes)
                payloads.append(KeyExchange(self.group, self.keyExchange.publicData))
        else:
            payloads.append(saPayload(child.offers))
        payloads += [TrafficSelectorsInitiator(tsToWire(child.localOffer)),
                     TrafficSelectorsResponder(tsToWire(child.remoteOffer))]
        if policy.mode == "transport":
            payloads.append(Notify(NotifyType.USE_TRANSPORT_MODE))
        if policy.ipcomp:
            child.ipcompIn = ipcompCpi(self.spis["cpi"])
            payloads.append(Notify.ipcompSupported(child.ipcompIn, IpcompTransform.DEFLATE))

    def processI(self, core, ikeSA, message, payloads, local, remote):
        if self.followup is not None:
            return self._followupDoneI(core, ikeSA, payloads)
        if self.inAuth:
            if not ikeSA.isEstablished:
                raise NegotiationFailed("IKE SA is not established")
            if self.childless:
                # RFC 6023: the Child SA comes next, by CREATE_CHILD_SA; the
                # command waiting still hears of the IKE SA once it is up.
                followup = ChildCreateTask(True, self.requestId, policy=self.policy)
                followup.resultIsIKESA = True
                followup.spis, self.spis = self.spis, {}
                followup._spiTargets = dict(self._spiTargets)
                self.requestId = None
                ikeSA.taskManager.queueExchange([followup])
                return DONE
            try:
                self._complete(core, ikeSA, payloads, shared=None)
            except NegotiationFailed as e:
                self._log.warn("{ikeSA}: IKE SA up, but its Child SA failed: {error}", ikeSA=ikeSA, error=e)
                raise
            return DONE
        invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD)
        if invalidKe is not None:
            offered = {t.id for o in self.child.offers for t in o.transforms if t.type == TransformType.DH}
            group = invalidKe.group
            self.restarts += 1
            if group in offered and group != self.group and self.restarts <= core.settings.maxInitRetries:
                self.group = group
                self._wipe()
                return MORE
            raise NoProposalChosen("responder wants Child SA group %s" % (nameOf(DhId, group),), NotifyType.INVALID_KE_PAYLOAD)
        nonce = first(payloads, Nonce)
        if errorNotify(payloads) is None and nonce is None:
            raise NegotiationFailed("CREATE_CHILD_SA response without Nonce")
        shared = b""
        nonceR = checkResponseNonce(nonce) if nonce is not None else None
        if self.keyExchange is not None and errorNotify(payloads) is None:
            ke = first(payloads, KeyExchange)
            if ke is None or ke.group != self.group:
                raise NegotiationFailed("CREATE_CHILD_SA response without our KE group")
            try:
                shared = self.keyExchange.complete(bytes(ke.data))
            except InvalidKeyExchange as e:
                raise NegotiationFailed("responder's KE is invalid: %s" % (e,))
        self._wipe()
        self.child.nonces = (self.nonce, nonceR)
        return self._complete(core, ikeSA, payloads, shared) or DONE

    def _complete(self, core, ikeSA, payloads, shared):
        """
        Check the responder's SA and TS payloads, derive the keys and
        install the Child SA.
        """
        child = self.child
        error = errorNotify(payloads)
        sa = first(payloads, SecurityAssociation)
        if sa is None:
            if error is not None and error.notifyType == NotifyType.TS_UNACCEPTABLE:
                raise TrafficSelectorsUnacceptable("responder refused our traffic selectors", error.notifyType)
            if error is not None:
                raise NoProposalChosen("responder refused the Child SA: %s" % (nameOf(NotifyType, error.notifyType),),
                                       error.notifyType)
            raise NegotiationFailed("response creates no Child SA")
        answer = offersFromWire(sa)
        if len(answer) != 1:
            raise NoProposalChosen("responder answered with %d Child SA proposals" % (len(answer),))
        offers = child.offers if shared is not None else [o.withoutKeyExchange() for o in child.offers]
        peerAnswer = answer[0] if shared is not None else answer[0].withoutKeyExchange()
        chosen = accept(offers, peerAnswer, cryptoglue.isAead)
        if chosen is None or len(peerAnswer.spi) != 4:
            raise NoProposalChosen("responder chose a Child SA proposal we did not offer")
        (child.spiOut,) = struct.unpack("!I", peerAnswer.spi)
        if shared is not None and chosen.dhGroup != self.group and not (self.group == DhId.NONE and chosen.dhGroup == DhId.NONE):
            # The peer has made this Child SA: it goes, with nothing
            # installed here.
            self._deleteRefused(core, ikeSA)
            raise NegotiationFailed("responder chose another PFS group than our KE")
        tsi, tsr = trafficSelectors(payloads)
        if not tsi or not tsr or not isSubsetOf(tsi, child.localOffer) or not isSubsetOf(tsr, child.remoteOffer):
            raise TrafficSelectorsUnacceptable("responder's traffic selectors are not within ours")
        transport = findNotify(payloads, NotifyType.USE_TRANSPORT_MODE) is not None
        if child.mode == "transport" and not transport:
            raise NegotiationFailed("responder refused transport mode")
        child.mode = "transport" if transport else "tunnel"
        ipcomp = findNotify(payloads, NotifyType.IPCOMP_SUPPORTED)
        # The decoder guarantees an IPCOMP_SUPPORTED has its CPI and transform.
        if ipcomp is not None and child.ipcompIn is not None and ipcomp.ipcompTransform == IpcompTransform.DEFLATE:
            child.ipcompOut = ipcomp.cpi
        else:
            child.ipcompIn = None
        child.proposal = chosen
        child.pfsGroup = chosen.dhGroup if shared else 0
        child.localTS, child.remoteTS = tsi, tsr
        if shared is not None and chosen.additionalKeyExchanges:
            link = _followup.linkOf(payloads)
            if link is None:
                raise NegotiationFailed("additional key exchanges chosen without ADDITIONAL_KEY_EXCHANGE")
            self.followup = _followup.Followup(chosen.additionalKeyExchanges, shared, link)
            self.exchangeType = ExchangeType.IKE_FOLLOWUP_KE
            return MORE
        cryptoglue.deriveChildKeys(ikeSA, child, shared, initiator=True)
        core.installChild(ikeSA, child, self)

    def _followupDoneI(self, core, ikeSA, payloads):
        if not self.followup.processI(payloads):
            return MORE
        cryptoglue.deriveChildKeys(ikeSA, self.child, self.followup.secrets, initiator=True)
        self.followup.secrets = []
        core.installChild(ikeSA, self.child, self)
        return DONE

    def _deleteRefused(self, core, ikeSA):
        from ikedtx.core.tasks.delete import ChildDeleteTask

        ikeSA.taskManager.queueExchange([ChildDeleteTask(True, self.child)])

    def childUp(self, core, ikeSA, child):
        """
        The datapath confirmed the install.
        """
        self.succeeded(core, ikeSA if self.resultIsIKESA else child)

    def _wipe(self):
        if self.keyExchange is not None:
            self.keyExchange.wipe()
            self.keyExchange = None

    def _free(self, core):
        """
        Wipe the key material of an exchange that ends here, and give back
        the SPIs unless a Child SA was handed to the datapath with them (it
        releases them when it goes).
        """
        self._wipe()
        if self.followup is not None:
            self.followup.wipe()
        if isinstance(self.shared, bytearray):
            self.shared[:] = bytes(len(self.shared))
        self.shared = None
        if self.child is None or self.child.kernelRecords is None:
            self.releaseSPIs(core)
            if self.child is not None:
                self.child.wipe()

    def failed(self, core, ikeSA, error):
        self._free(core)
        Task.failed(self, core, ikeSA, error)

    def done(self, core, ikeSA):
        # Refused, or answered without a Child SA: nothing used the SPIs.
        if self.child is None or self.child.kernelRecords is None:
            self._free(core)

    def abandoned(self, core, ikeSA):
        self._log.info("{ikeSA}: Child SA exchange abandoned by the peer; its state is freed", ikeSA=ikeSA)
        self._free(core)

    # Responder

    def processR(self, core, ikeSA, message, payloads):
        if self.followup is not None:
            return self.followup.processR(core, payloads)
        policy = ikeSA.policy
        if self.inAuth:
            if first(payloads, SecurityAssociation) is None:
                return
            withKeyExchange = False
        else:
            from ikedtx.core.tasks import childrekey

            childrekey.screenRequest(core, ikeSA)
            if not ikeSA.isEstablished:
                raise RemoteProtocolError("CREATE_CHILD_SA before IKE_AUTH completed", NotifyType.INVALID_SYNTAX)
            sa = require(first(payloads, SecurityAssociation), "SA")
            if any(p.protocolId == ProtocolId.IKE for p in sa.proposals):
                # An IKE SA rekey: the IKERekeyTask of this exchange answers.
                return
            nonceI = checkNonce(require(first(payloads, Nonce), "Nonce"))
            rekey = findNotify(payloads, NotifyType.REKEY_SA)
            if rekey is not None:
                self.rekeyed = childrekey.rekeyedChild(core, ikeSA, rekey)
            self.nonces = (nonceI, core.randomBytes(core.settings.nonceSize))
            withKeyExchange = True
        sa = require(first(payloads, SecurityAssociation), "SA")
        peerTsi, peerTsr = trafficSelectors(payloads)
        if peerTsi is None or peerTsr is None:
            raise RemoteProtocolError("TSi or TSr missing", NotifyType.INVALID_SYNTAX)
        # Any policy of this peer and identity may take the Child SA, the
        # rekeyed Child SA's (else the IKE SA's) first.
        policy, chosen, tsi, tsr = matchChildRequest(
            core, ikeSA, sa, peerTsi, peerTsr, withKeyExchange,
            preferred=self.rekeyed.policy if self.rekeyed is not None else policy)
        self.policy = policy
        if withKeyExchange:
            refuseStrayKeyExchange(payloads, sa, chosen)
        if withKeyExchange and chosen.dhGroup != DhId.NONE:
            ke = first(payloads, KeyExchange)
            if ke is None or ke.group != chosen.dhGroup:
                raise RemoteProtocolError("Child SA wants KE group %d" % (chosen.dhGroup,), NotifyType.INVALID_KE_PAYLOAD,
                                          Notify.invalidKePayload(chosen.dhGroup).data)
            try:
                self.ourKe, self.shared = cryptoglue.keyExchangeMethod(chosen.dhGroup).respond(bytes(ke.data), core.randomBytes)
            except InvalidKeyExchange as e:
                raise RemoteProtocolError("invalid KE: %s" % (e,), NotifyType.INVALID_SYNTAX)
        self.chosen = chosen
        self.peerTS = (tsi, tsr)
        self.transport = findNotify(payloads, NotifyType.USE_TRANSPORT_MODE) is not None and policy.mode == "transport"
        ipcomp = findNotify(payloads, NotifyType.IPCOMP_SUPPORTED)
        if ipcomp is not None and policy.ipcomp and ipcomp.ipcompTransform == IpcompTransform.DEFLATE:
            self.peerIpcomp = ipcomp.cpi
        self.requestSPI(core, ikeSA, "spi", chosen.protocol, ikeSA.remote[0], ikeSA.local[0])
        if self.peerIpcomp is not None:
            self.requestSPI(core, ikeSA, "cpi", ProtocolId.NONE, ikeSA.remote[0], ikeSA.local[0])

    def buildR(self, core, ikeSA, payloads):
        if self.followup is not None:
            if not self.followup.buildR(core, payloads):
                return MORE
            cryptoglue.deriveChildKeys(ikeSA, self.child, self.followup.secrets, initiator=False, nonces=self.nonces)
            self.followup.secrets = []
            self._installAnswered(core, ikeSA, self.child)
            return DONE
        if self.chosen is None:
            return DONE
        if self.spiError is not None:
            raise RemoteProtocolError("no SPI for the Child SA: %s" % (self.spiError,), NotifyType.TEMPORARY_FAILURE)
        if not ikeSA.isEstablished:
            return DONE
        chosen = self.chosen
        tsi, tsr = self.peerTS
        spiIn = self.spis["spi"]
        # A rekeyed Child SA keeps the reqid of the one it replaces: the
        # datapath's flows stay as they are.
        reqid = self.rekeyed.reqid if self.rekeyed is not None else core.nextReqid()
        child = self.child = ChildSA(chosen.protocol, "transport" if self.transport else "tunnel", spiIn, reqid,
                                     core.now())
        child.rekeyOf = self.rekeyed
        child.policy = self.policy
        child.proposal = chosen
        child.pfsGroup = chosen.dhGroup if self.shared else 0
        (child.spiOut,) = struct.unpack("!I", chosen.peerSPI)
        child.localTS, child.remoteTS = tsr, tsi
        child.nonces = self.nonces
        payloads.append(saPayload([chosen.asOffer(struct.pack("!I", spiIn))]))
        if self.nonces is not None:
            payloads.append(Nonce(self.nonces[1]))
            if self.ourKe is not None:
                payloads.append(KeyExchange(chosen.dhGroup, self.ourKe))
        payloads += [TrafficSelectorsInitiator(tsToWire(tsi)), TrafficSelectorsResponder(tsToWire(tsr))]
        if self.transport:
            payloads.append(Notify(NotifyType.USE_TRANSPORT_MODE))
        if self.peerIpcomp is not None:
            child.ipcompOut = self.peerIpcomp
            child.ipcompIn = ipcompCpi(self.spis["cpi"])
            payloads.append(Notify.ipcompSupported(child.ipcompIn, IpcompTransform.DEFLATE))
        if self.nonces is not None and chosen.additionalKeyExchanges:
            # RFC 9370 2.2.3: installed after the IKE_FOLLOWUP_KE exchanges.
            self.followup = _followup.Followup(chosen.additionalKeyExchanges, self.shared,
                                               core.randomBytes(_followup.LINK_SIZE))
            self.shared = None
            payloads.append(Notify.additionalKeyExchange(self.followup.link))
            self.exchangeType = ExchangeType.IKE_FOLLOWUP_KE
            return MORE
        cryptoglue.deriveChildKeys(ikeSA, child, self.shared, initiator=False, nonces=self.nonces)
        self.shared = None
        self._installAnswered(core, ikeSA, child)
        return DONE

    def _installAnswered(self, core, ikeSA, child):
        """
        As responder, install the Child SA we answered for (after the last
        IKE_FOLLOWUP_KE when there were additional key exchanges); the new
        outbound SA of a rekey is held back until the old Child SA goes.
        """
        core.installChild(ikeSA, child, None, holdOutbound=self.rekeyed is not None)
        if self.rekeyed is not None:
            from ikedtx.core.tasks import childrekey

            childrekey.answered(core, ikeSA, self.rekeyed, child)

# -*- test-case-name: tests.test_control -*-
"""
The control socket: AMP responders for L{ikedtx.control.commands}.
"""

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols import amp

from ikedtx.control import commands as C
from ikedtx.core.errors import LocalProtocolError, NegotiationFailed


def describeProposal(chosen):
    if chosen is None:
        return ""
    from ikedtx.wire.constants import TransformType, nameOf, EncrId, PrfId, IntegId, DhId, EsnId

    enums = {TransformType.ENCR: EncrId, TransformType.PRF: PrfId, TransformType.INTEG: IntegId,
             TransformType.DH: DhId, TransformType.ESN: EsnId}
    parts = []
    for t in sorted(chosen.transforms.values()):
        if TransformType.ADDKE1 <= t.type <= TransformType.ADDKE7:
            # RFC 9370 additional key exchanges: "ADDKE1=ML_KEM_768".
            if t.id != DhId.NONE:
                parts.append("%s=%s" % (nameOf(TransformType, t.type), nameOf(DhId, t.id)))
            continue
        name = nameOf(enums.get(t.type, TransformType), t.id)
        if t.keyLength:
            name += "-%d" % (t.keyLength,)
        parts.append(name)
    return " ".join(parts)


def describeIkeSA(ikesa):
    return {
        "spiI": ikesa.spiI.hex(),
        "spiR": ikesa.spiR.hex(),
        "initiator": int(ikesa.initiator),
        "state": ikesa.state.name,
        "policy": ikesa.policy.name if ikesa.policy else "",
        "local": "%s:%d" % ikesa.local,
        "remote": "%s:%d" % ikesa.remote,
        "localId": str(ikesa.localId or ""),
        "peerId": str(ikesa.peerId or ""),
        "proposal": describeProposal(ikesa.proposal),
        "natt": int(ikesa.nattEnabled),
        "udpencap": int(ikesa.encapsulateEsp),
        "children": [
            {
                "protocol": "esp" if child.protocol == 3 else "ah",
                "spiIn": "%08x" % child.spiIn,
                "spiOut": "%08x" % (child.spiOut or 0),
                "mode": child.mode,
                "state": child.state.name,
                "local": [str(ts) for ts in child.localTS],
                "remote": [str(ts) for ts in child.remoteTS],
                "proposal": describeProposal(child.proposal),
            }
            for child in ikesa.children
        ],
    }


class ControlProtocol(amp.AMP):
    """
    One ikectl connection.
    """

    _log = Logger()

    def __init__(self, service):
        amp.AMP.__init__(self)
        self.service = service

    @C.ShowSA.responder
    def showSA(self, offset=0, limit=C.SHOW_SA_PAGE):
        limit = max(1, min(limit, C.SHOW_SA_PAGE))
        sas = list(self.service.core.ikeSAs.values())
        page = sas[max(0, offset):max(0, offset) + limit]
        return {"sas": [describeIkeSA(sa) for sa in page], "total": len(sas)}

    @C.Initiate.responder
    def initiate(self, policy):
        d = self.service.initiate(policy)

        def done(ikesa):
            return {"spiI": ikesa.spiI.hex(), "spiR": ikesa.spiR.hex()}

        def failed(reason):
            reason.trap(NegotiationFailed)
            raise C.CommandFailed(reason.getErrorMessage())

        return d.addCallbacks(done, failed)

    def _ikesa(self, spiI):
        for ikesa in self.service.core.ikeSAs.values():
            if ikesa.spiI.hex() == spiI.lower():
                return ikesa
        raise C.CommandFailed("no IKE SA with initiator SPI %s" % (spiI,))

    def _failed(self, reason):
        reason.trap(NegotiationFailed, LocalProtocolError)
        raise C.CommandFailed(reason.getErrorMessage())

    @C.CreateChildSA.responder
    def createChildSA(self, spiI):
        ikesa = self._ikesa(spiI)
        d = self.service.runner.command(self.service.core.createChildSA, ikesa)
        return d.addCallbacks(lambda child: {"spiIn": "%08x" % child.spiIn, "spiOut": "%08x" % child.spiOut},
                              self._failed)

    @C.DeleteChildSA.responder
    def deleteChildSA(self, spiIn):
        ikesa, child = self.service.core.findChild(int(spiIn, 16))
        if child is None:
            raise C.CommandFailed("no Child SA with inbound SPI %s" % (spiIn,))
        d = self.service.runner.command(self.service.core.deleteChildSA, ikesa, child)
        return d.addCallbacks(lambda _: {}, self._failed)

    @C.DeleteIkeSA.responder
    def deleteIkeSA(self, spiI):
        d = self.service.runner.command(self.service.core.deleteIKESA, self._ikesa(spiI))
        return d.addCallbacks(lambda _: {}, self._failed)

    @C.Reload.responder
    def reload(self):
        def failed(reason):
            raise C.CommandFailed(reason.getErrorMessage())

        return defer.maybeDeferred(self.service.reload).addCallbacks(lambda _: {}, failed)


class ControlFactory(Factory):
    def __init__(self, service):
        self.service = service

    def buildProtocol(self, addr):
        return ControlProtocol(self.service)

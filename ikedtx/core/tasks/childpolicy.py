# -*- test-case-name: tests.test_core_liveness -*-
"""
Which policy a peer's Child SA request falls under (as strongSwan picks
among the children of a connection): every policy of the IKE SA's peer
and authenticated identity is tried, the IKE SA's own (or the rekeyed
Child SA's) first; the first whose proposals and traffic selectors fit
takes the Child SA. Several iked policies for one peer (charon with three
children) so share one IKE SA.
"""

from ikedtx.core import cryptoglue
from ikedtx.core.errors import RemoteProtocolError
from ikedtx.core.proposals import select
from ikedtx.core.tasks import config
from ikedtx.core.tasks.common import offersFromConfig, offersFromWire, supported
from ikedtx.core.ts import narrow
from ikedtx.wire.constants import NotifyType, ProtocolId


def candidatePolicies(core, ikeSA, preferred=None):
    """
    The policies a Child SA of C{ikeSA} may fall under, C{preferred} (else
    the IKE SA's policy) first: those matching the peer's address, our
    address and the peer's authenticated identity (not C{skip} ones, nor
    the C{default} unless it is the IKE SA's).
    """
    first = preferred or ikeSA.policy
    out = [first]
    if ikeSA.peerId is None:
        return out
    for policy in core.policies.matching(ikeSA.local[0], ikeSA.remote[0], ikeSA.peerId):
        if policy not in out and not policy.default and policy.auth == ikeSA.policy.auth:
            out.append(policy)
    return out


def _match(core, ikeSA, policy, sa, peerTsi, peerTsr, withKeyExchange):
    local = offersFromConfig(policy.childProposals, withKeyExchange=withKeyExchange)
    peer = offersFromWire(sa)
    if not withKeyExchange:
        peer = [o.withoutKeyExchange() for o in peer]
    chosen = select(local, peer, supported, cryptoglue.isAead)
    if chosen is None or chosen.protocol not in (ProtocolId.ESP, ProtocolId.AH) or len(chosen.peerSPI) != 4:
        raise RemoteProtocolError("no acceptable Child SA proposal for policy %s" % (policy.name,),
                                  NotifyType.NO_PROPOSAL_CHOSEN)
    if config.unassignedDynamic(ikeSA, policy):
        # After an INTERNAL_ADDRESS_FAILURE the Child SA goes without a
        # Notify of its own (RFC 7296 3.15.4: that one says it all).
        raise RemoteProtocolError("policy %s wants the peer's address from a configuration payload, and it has none"
                                  % (policy.name,), None if ikeSA.addressRefused else NotifyType.TS_UNACCEPTABLE)
    tsi = narrow(peerTsi, config.peerSelectors(core, ikeSA, policy))
    tsr = narrow(peerTsr, core.policies.selectors(policy, local=True))
    if not tsi or not tsr:
        raise RemoteProtocolError("traffic selectors %s === %s outside policy %s" % (
            ", ".join(map(str, peerTsi)), ", ".join(map(str, peerTsr)), policy.name), NotifyType.TS_UNACCEPTABLE)
    return chosen, tsi, tsr


def matchChildRequest(core, ikeSA, sa, peerTsi, peerTsr, withKeyExchange, preferred=None):
    """
    The policy a Child SA request falls under.

    @return: C{(policy, chosen, tsi, tsr)}: the policy, the chosen proposal
        and the narrowed selectors of the initiator and the responder.
    @raise RemoteProtocolError: no policy takes it; the error is that of a
        policy whose proposals fit (TS_UNACCEPTABLE) if there is one, else
        that of the first.
    """
    errors = []
    for policy in candidatePolicies(core, ikeSA, preferred):
        try:
            chosen, tsi, tsr = _match(core, ikeSA, policy, sa, peerTsi, peerTsr, withKeyExchange)
        except RemoteProtocolError as e:
            errors.append(e)
            continue
        return policy, chosen, tsi, tsr
    unacceptable = [e for e in errors if e.notify == NotifyType.TS_UNACCEPTABLE]
    raise (unacceptable or errors)[0]

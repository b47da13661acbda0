# -*- test-case-name: tests.test_core_cookies -*-
"""
Limits on what peers can make the core keep or do:

 - the memory all IKE SAs together may hold in fragments being reassembled
   (RFC 7383): each IKE SA's L{ikedtx.wire.fragments.Reassembler} bounds its
   own, L{FragmentBudget} bounds their sum, so that many IKE SAs each
   sending fragments that never complete cannot add up to more than
   C{fragmentBytesMax};
 - the responses kept for retransmitted requests (RFC 7296 2.1):
   L{ResponseCache} bounds their octets over all IKE SAs
   (C{responseCacheBytesMax}: past it no new half-open IKE SA is made) and
   how often one is sent again (C{cachedResendsMax}: a replayed request,
   from the peer or from anyone who saw it and spoofs the peer's address,
   cannot make us send without end);
 - established IKE SAs per authenticated peer identity
   (C{ikeSAsPerIdentity}, L{identityRefusal}).

Our own outstanding requests need no budget of their own: each IKE SA has
at most one (a window of 1), given up after C{retransmit.tries}.
"""

from ikedtx.core.states import IKEState
from ikedtx.wire.errors import FragmentDropped
from ikedtx.wire.fragments import Reassembler


class FragmentBudget:
    """
    Octets held by the reassemblers of every IKE SA.

    @ivar held: their sum.
    """

    def __init__(self, settings):
        self.settings = settings
        self.held = 0

    def add(self, ikeSA, message, now=None):
        """
        Add the fragment C{message} to C{ikeSA}'s reassembler, within the
        budget, at time C{now} (for the reassembler's timeout); what
        L{Reassembler.add} returns or raises.

        @raise FragmentDropped: the fragment would take the sum past
            C{fragmentBytesMax}.
        """
        if ikeSA.reassembler is None:
            ikeSA.reassembler = Reassembler()
        reassembler = ikeSA.reassembler
        size = len(message.sealedPayload.sealed)
        if self.held + size > self.settings.fragmentBytesMax:
            raise FragmentDropped("fragments of all IKE SAs would hold more than %d octets" % (
                self.settings.fragmentBytesMax,))
        before = reassembler.bytesHeld
        try:
            return reassembler.add(message, ikeSA.cipherIn, now)
        finally:
            self.held += reassembler.bytesHeld - before

    def forget(self, ikeSA):
        """
        C{ikeSA} is gone: what its reassembler held is free again.
        """
        if ikeSA.reassembler is not None:
            self.held -= ikeSA.reassembler.bytesHeld
            ikeSA.reassembler.clear()


class ResponseCache:
    """
    The octets of the responses kept for retransmitted requests, over all
    IKE SAs.

    @ivar held: their sum.
    """

    def __init__(self, settings):
        self.settings = settings
        self.held = 0

    def keep(self, ikeSA, old, new):
        """
        C{ikeSA}'s cached response C{old} (or L{None}) is replaced by
        C{new}. After L{forget} (a last response sent as the IKE SA goes
        away) nothing is counted.
        """
        if ikeSA.state == IKEState.CLOSED:
            return
        if old is not None:
            self.held -= old.size
        self.held += new.size

    def forget(self, cached):
        """
        The IKE SA whose cached response is C{cached} (or L{None}) is gone.
        """
        if cached is not None:
            self.held -= cached.size

    def refusal(self):
        """
        Why no new half-open IKE SA may be made now, or L{None}.
        """
        if self.held >= self.settings.responseCacheBytesMax:
            return "cached responses hold %d octets, the most kept (--response-cache-max)" % (self.held,)
        return None

    def mayResend(self, cached):
        """
        Whether C{cached} may be sent once more for a retransmitted
        request; counts it if so.
        """
        if cached.resends >= self.settings.cachedResendsMax:
            return False
        cached.resends += 1
        return True


class PeerIdentities:
    """
    The established IKE SAs of each authenticated peer identity (as
    L{countedIdentity} names it: the EAP identity after EAP), so that
    L{identityRefusal} counts one identity's IKE SAs, not every IKE SA the
    core holds (a scan of all of them for each new one made establishing
    the 100,000th cost 100,000 comparisons).

    An IKE SA enters when it is established and leaves when it is
    destroyed; one that was rekeyed leaves its place to the IKE SA that
    replaced it (which is established without passing here).

    @ivar byIdentity: C{{countedIdentity: {IKESA}}}.
    """

    def __init__(self):
        self.byIdentity = {}

    def established(self, ikeSA):
        if ikeSA.peerId is not None:
            self.byIdentity.setdefault(countedIdentity(ikeSA), set()).add(ikeSA)

    def destroyed(self, ikeSA):
        identity = countedIdentity(ikeSA)
        held = self.byIdentity.get(identity)
        if held is None or ikeSA not in held:
            return
        held.discard(ikeSA)
        successor = ikeSA.rekeyedBy
        if successor is not None and successor.state != IKEState.CLOSED and countedIdentity(successor) == identity:
            held.add(successor)
        if not held:
            del self.byIdentity[identity]

    def up(self, identity, besides, enough=None):
        """
        The IKE SAs of C{identity} (a L{countedIdentity}) up now (VALID,
        not rekeyed), apart from C{besides}: those entered and the IKE SAs
        that replaced them; no more than C{enough} of them, if given (the
        count stops there).
        """
        found = set()
        for ikeSA in self.byIdentity.get(identity, ()):
            while ikeSA.rekeyedBy is not None:
                ikeSA = ikeSA.rekeyedBy
            if ikeSA is not besides and ikeSA.state == IKEState.VALID and countedIdentity(ikeSA) == identity:
                found.add(ikeSA)
                if enough is not None and len(found) >= enough:
                    break
        return found


def identityRefusal(core, ikeSA):
    """
    Why C{ikeSA}, whose peer just authenticated, may not be established (its
    identity, L{countedIdentity}, has C{ikeSAsPerIdentity} IKE SAs up
    already), or L{None}. With C{set enforcesingleikesa} there is no
    refusal: the new IKE SA replaces the old ones
    (L{ikedtx.core.singleikesa}). An IKE SA being rekeyed counts once.
    """
    cap = core.settings.ikeSAsPerIdentity
    if not cap or core.config.settings.enforceSingleIkeSa:
        return None
    identity = countedIdentity(ikeSA)
    if len(core.peerIdentities.byIdentity.get(identity, ())) < cap:
        # Those up are found from the ones entered (each counts at most
        # once): fewer entered than the cap, none to walk.
        return None
    up = len(core.peerIdentities.up(identity, ikeSA, cap))
    if up >= cap:
        who = "EAP user %s" % (ikeSA.eapIdentity,) if identity[0] == "eap" else "peer %s" % (ikeSA.peerId,)
        return "%s has %d IKE SAs up, the most kept for one identity (--ike-sas-per-id)" % (who, up)
    return None


def countedIdentity(ikeSA):
    """
    The identity C{ikeSAsPerIdentity} counts: the EAP identity of a peer
    that authenticated with EAP (its IDi is often its address, or a name
    all clients share), else its IDi.
    """
    eapIdentity = getattr(ikeSA, "eapIdentity", None)
    if eapIdentity:
        return ("eap", eapIdentity)
    return ("id", ikeSA.peerId)

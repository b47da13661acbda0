# -*- test-case-name: tests.test_core_cookies -*-
"""
The memory all IKE SAs together may hold in fragments being reassembled
(RFC 7383): each IKE SA's L{ikedtx.wire.fragments.Reassembler} bounds its
own, L{FragmentBudget} bounds their sum, so that many IKE SAs each sending
fragments that never complete cannot add up to more than
C{fragmentBytesMax}.
"""

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

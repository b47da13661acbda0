# -*- test-case-name: tests.test_core_saindex -*-
"""
The IKE SAs of a core grouped by what the core asks of them one peer or one
policy at a time, so that no question walks every IKE SA held: with
100,000 IKE SAs to one peer, the INITIAL_CONTACT decision of each new one
walked all of them (twice, and again each time its round was polled).

Each group is a superset of what its question wants (the question filters
the few it gets by state): L{Groups} only records under which key an IKE
SA is, so that it leaves or moves exactly. The core keeps them on every
path an IKE SA is registered (created, established, rekeyed), moved
(MOBIKE, NAT), identified (its peer authenticated) and destroyed
(L{IKESAIndex.destroyed}); L{IKESAIndex.check} compares them all with a
walk of every IKE SA (the tests call it after rekeys, deletes, expiries
and reloads).
"""

from ikedtx.core.states import IKEState

#: Not under any key.
_ABSENT = object()


class Groups:
    """
    IKE SAs under keys, at most one key each.

    @ivar _members: C{{key: {ikeSA: None}}} (a dict: insertion order).
    @ivar _keyOf: C{{ikeSA: key}}.
    """

    __slots__ = ("_members", "_keyOf")

    def __init__(self):
        self._members = {}
        self._keyOf = {}

    def __len__(self):
        return len(self._keyOf)

    def __contains__(self, ikeSA):
        return ikeSA in self._keyOf

    def keyOf(self, ikeSA):
        return self._keyOf.get(ikeSA)

    def add(self, key, ikeSA):
        """
        Put C{ikeSA} under C{key} (out of the key it was under).
        """
        keyOf = self._keyOf
        old = keyOf.get(ikeSA, _ABSENT)
        if old is not _ABSENT:
            if old == key:
                return
            self._leave(old, ikeSA)
        keyOf[ikeSA] = key
        members = self._members.get(key)
        if members is None:
            self._members[key] = {ikeSA: None}
        else:
            members[ikeSA] = None

    def remove(self, ikeSA):
        key = self._keyOf.pop(ikeSA, _ABSENT)
        if key is not _ABSENT:
            self._leave(key, ikeSA)

    def _leave(self, key, ikeSA):
        members = self._members[key]
        del members[ikeSA]
        if not members:
            del self._members[key]

    def get(self, key):
        """
        The IKE SAs under C{key} (a view: copy it to change the groups
        while walking it).
        """
        members = self._members.get(key)
        return () if members is None else members.keys()

    def items(self):
        return {key: set(members) for key, members in self._members.items()}


class IKESAIndex:
    """
    The groups of one core's IKE SAs.

    @ivar byHost: the established IKE SAs (from L{IKECore.established}, or
        a rekey) by the peer's address (C{remote[0]}).
    @ivar byPeer: the IKE SAs whose peer identity is known, by it.
    @ivar byPolicy: every IKE SA by its policy's name.
    @ivar contacting: our IKE SAs that sent INITIAL_CONTACT and are not
        released yet (L{ikedtx.core.tasks.initialcontact}), by peer address.
    @ivar holding: our IKE SAs whose INITIAL_CONTACT task is between its
        C{prepareI} and C{buildI} (it may wait for one that is
        contacting), by peer address.
    """

    def __init__(self):
        self.byHost = Groups()
        self.byPeer = Groups()
        self.byPolicy = Groups()
        self.contacting = Groups()
        self.holding = Groups()

    def registered(self, ikeSA):
        """
        C{ikeSA} entered the core's C{ikeSAs} (created, or made by a rekey:
        then its identities and state are its predecessor's).
        """
        if ikeSA.policy is not None:
            self.byPolicy.add(ikeSA.policy.name, ikeSA)
        if ikeSA.peerId is not None:
            self.byPeer.add(ikeSA.peerId, ikeSA)
        if ikeSA.state == IKEState.VALID:
            self.byHost.add(ikeSA.remote[0], ikeSA)

    def established(self, ikeSA):
        self.byHost.add(ikeSA.remote[0], ikeSA)

    def identified(self, ikeSA):
        """
        C{ikeSA}'s peer identity was set.
        """
        if ikeSA.peerId is None:
            self.byPeer.remove(ikeSA)
        else:
            self.byPeer.add(ikeSA.peerId, ikeSA)

    def moved(self, ikeSA):
        """
        C{ikeSA}'s peer address may have changed.
        """
        host = ikeSA.remote[0]
        for groups in (self.byHost, self.contacting, self.holding):
            if ikeSA in groups:
                groups.add(host, ikeSA)

    def destroyed(self, ikeSA):
        self.byHost.remove(ikeSA)
        self.byPeer.remove(ikeSA)
        self.byPolicy.remove(ikeSA)
        if self.contacting._keyOf:
            self.contacting.remove(ikeSA)
        if self.holding._keyOf:
            self.holding.remove(ikeSA)

    def check(self, core):
        """
        Compare the groups with a walk of C{core}'s IKE SAs: a list of what
        differs (empty when they agree).
        """
        held = list(core.ikeSAs.values())
        wrong = []

        def compare(name, groups, expected):
            got = groups.items()
            if got != expected:
                wrong.append("%s: %r, expected %r" % (name, got, expected))

        def grouped(pairs):
            out = {}
            for key, ikeSA in pairs:
                out.setdefault(key, set()).add(ikeSA)
            return out

        compare("byPolicy", self.byPolicy, grouped((sa.policy.name, sa) for sa in held if sa.policy is not None))
        compare("byPeer", self.byPeer, grouped((sa.peerId, sa) for sa in held if sa.peerId is not None))
        # Every VALID IKE SA is there (CLOSING ones may stay until destroyed).
        hosts = self.byHost.items()
        for sa in held:
            if sa.state == IKEState.VALID and sa not in hosts.get(sa.remote[0], ()):
                wrong.append("byHost: %r (VALID) not under %r" % (sa, sa.remote[0]))
        for key, members in hosts.items():
            for sa in members:
                if core.ikeSAs.get(sa.localSPI) is not sa or sa.remote[0] != key:
                    wrong.append("byHost: %r under %r is not held there" % (sa, key))
        for name in ("contacting", "holding"):
            for key, members in getattr(self, name).items().items():
                for sa in members:
                    if core.ikeSAs.get(sa.localSPI) is not sa or sa.remote[0] != key:
                        wrong.append("%s: %r under %r is not held there" % (name, sa, key))
        contacting = self.contacting.items()
        for sa in held:
            if (sa.initiator and sa.initialContactSent and sa.state == IKEState.AUTH_REQUEST
                    and sa not in contacting.get(sa.remote[0], ())):
                wrong.append("contacting: %r sent INITIAL_CONTACT and is not there" % (sa,))
        # The Child SAs by SPI (IKECore._childSpis): each Child SA of an IKE
        # SA held, under its two SPIs, and nothing else.
        expected = {(spi, child) for sa in held for child in sa.children for spi in (child.spiIn, child.spiOut)}
        indexed = {(spi, child) for spi, children in core._childSpis.items() for child in children}
        if indexed != expected:
            wrong.append("child SPIs: %r more, %r missing" % (indexed - expected, expected - indexed))
        return wrong

"""
Tests for L{ikedtx.core.saindex}: the groups of a core's IKE SAs agree with
a walk of all of them after every way an IKE SA comes, changes and goes
(establishment, IKE SA and Child SA rekeys, crossing ones, DPD, deletes,
expiries, a MOBIKE move, reloads), and establishing one more IKE SA walks
none of those held.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import parseConfig
from ikedtx.core.saindex import Groups
from ikedtx.core.sa import IKEState
from ikedtx.core.states import ChildState
from ikedtx.core.settings import CoreSettings
from ikedtx.core.tasks.mobikeupdate import moveIkeSA

from tests.soak import Soak
from tests.test_core_exchanges import ExchangeTestCase, initiatorConfig, responderConfig


class WalkCountingTable(dict):
    """
    An IKE SA table that counts the IKE SAs walked (iterated); lookups by
    SPI are not counted.
    """

    walked = 0

    def _counted(self, items):
        for item in items:
            self.walked += 1
            yield item

    def __iter__(self):
        return self._counted(dict.__iter__(self))

    def keys(self):
        return list(self._counted(dict.keys(self)))

    def values(self):
        return self._counted(dict.values(self))

    def items(self):
        return self._counted(dict.items(self))


def counting(host):
    table = host.core.ikeSAs = WalkCountingTable(host.core.ikeSAs)
    return table


class GroupsTests(SynchronousTestCase):
    def test_addMoveRemove(self):
        """
        An IKE SA is under one key at a time: added again under another it
        moves; removed, its key goes when empty.
        """
        groups = Groups()
        one, two = object(), object()
        groups.add("h1", one)
        groups.add("h1", two)
        groups.add("h2", one)
        self.assertEqual(groups.items(), {"h1": {two}, "h2": {one}})
        self.assertEqual(groups.keyOf(one), "h2")
        groups.remove(two)
        groups.remove(two)
        self.assertEqual(groups.items(), {"h2": {one}})
        self.assertEqual(list(groups.get("h1")), [])
        self.assertEqual(len(groups), 1)


class IndexTests(ExchangeTestCase):
    def assertConsistent(self, *hosts):
        for host in hosts:
            self.assertEqual(host.core.saIndex.check(host.core), [])

    def several(self, n, settingsB=""):
        a, b = self.makePair(responder=responderConfig(settings=settingsB))
        done = []
        for _ in range(n):
            requestId = a.initiate("ab")
            self.network.pump()
            done.append(self.assertSucceeded(a, requestId))
        return a, b, done

    def test_established(self):
        """
        Three IKE SAs to one peer: each side has them under the peer's
        address, identity and policy; only the first said INITIAL_CONTACT.
        """
        a, b, done = self.several(3)
        self.assertConsistent(a, b)
        index = a.core.saIndex
        self.assertEqual(set(index.byHost.get("192.0.2.2")), set(done))
        self.assertEqual(set(index.byPolicy.get("ab")), set(done))
        self.assertEqual(set(index.byPeer.get(done[0].peerId)), set(done))
        self.assertEqual([sa.initialContactSent for sa in done], [True, False, False])
        self.assertEqual((len(index.contacting), len(index.holding)), (0, 0))
        self.assertEqual(len(b.core.saIndex.byHost), 3)

    def test_noWalk(self):
        """
        Establishing one more IKE SA walks none of the IKE SAs held, on
        either side (the INITIAL_CONTACT decision walked all of the
        initiator's, twice or more).
        """
        a, b, done = self.several(3)
        tables = counting(a), counting(b)
        requestId = a.initiate("ab")
        self.network.pump()
        self.assertSucceeded(a, requestId)
        self.assertEqual([t.walked for t in tables], [0, 0])
        self.assertConsistent(a, b)

    def test_noWalkEnforceSingle(self):
        """
        With C{enforcesingleikesa} on the responder, the old IKE SA of the
        identity is found (and replaced) without a walk of all.
        """
        a, b, done = self.several(2, settingsB="set enforcesingleikesa")
        tables = counting(a), counting(b)
        requestId = a.initiate("ab")
        self.network.pump()
        new = self.assertSucceeded(a, requestId)
        self.assertEqual([t.walked for t in tables], [0, 0])
        self.assertEqual(a.ikeSAs, [new])
        self.assertConsistent(a, b)

    def test_initialContactReplaces(self):
        """
        A restarted initiator's INITIAL_CONTACT deletes the responder's
        old IKE SAs of that identity (found through the identity's group),
        and the groups lose them.
        """
        a, b, done = self.several(2)
        # A forgets its IKE SAs (a reboot) and starts again.
        for ikeSA in list(a.core.ikeSAs.values()):
            a.core.destroy(ikeSA, "reboot")
        self.assertConsistent(a, b)
        tables = counting(a), counting(b)
        requestId = a.initiate("ab")
        self.network.pump()
        new = self.assertSucceeded(a, requestId)
        self.assertEqual([t.walked for t in tables], [0, 0])
        self.assertTrue(new.initialContactSent)
        self.assertEqual(len(b.ikeSAs), 1)
        self.assertConsistent(a, b)

    def test_deleted(self):
        """
        Deleted IKE SAs leave every group, on both sides.
        """
        a, b, done = self.several(3)
        a.command(a.core.deleteIKESA, done[1])
        self.network.pump()
        self.assertConsistent(a, b)
        self.assertNotIn(done[1], a.core.saIndex.byHost)
        for ikeSA in list(b.ikeSAs):
            b.command(b.core.deleteIKESA, ikeSA)
            self.network.pump()
        for host in (a, b):
            index = host.core.saIndex
            self.assertEqual([len(g) for g in (index.byHost, index.byPeer, index.byPolicy, index.contacting,
                                               index.holding)], [0] * 5)

    def test_halfOpenExpiry(self):
        """
        A responder's half-open IKE SA that times out leaves the groups.
        """
        a, b = self.makePair()
        a.initiate("ab")
        self.network.deliverOne()
        self.assertEqual(len(b.ikeSAs), 1)
        self.assertConsistent(b)
        del self.network.inFlight[:]
        self.network.clock.advance(CoreSettings().halfOpenTimeout + 1)
        self.assertEqual(b.ikeSAs, [])
        self.assertEqual(len(b.core.saIndex.byPolicy), 0)
        self.assertConsistent(a, b)

    def test_deadPeer(self):
        """
        An IKE SA whose peer stopped answering (DPD) leaves the groups.
        """
        a, b = self.makePair(initiator=initiatorConfig(settings="set dpd_check_interval 10"))
        requestId = a.initiate("ab")
        self.network.pump()
        ikeSA = self.assertSucceeded(a, requestId)
        clock = self.network.clock
        for _ in range(200):
            clock.advance(5)
            del self.network.inFlight[:]
            if ikeSA.state == IKEState.CLOSED:
                break
        self.assertEqual(ikeSA.state, IKEState.CLOSED)
        self.assertEqual(a.ikeSAs, [])
        self.assertConsistent(a, b)
        self.assertEqual(len(a.core.saIndex.byHost), 0)

    def test_kernelExpiry(self):
        """
        The datapath's soft expire of a Child SA's SA (by either SPI) finds
        it without a walk of the IKE SAs and rekeys it; its hard expire
        removes it: the Child SAs by SPI follow.
        """
        a, b, done = self.several(3)
        child = done[1].children[0]
        tables = counting(a), counting(b)
        a.execute(a.core.expired(child.protocol, child.spiOut, "192.0.2.2", False))
        self.assertEqual([t.walked for t in tables], [0, 0])
        self.network.pump()
        self.assertEqual(child.state, ChildState.DELETED)
        (new,) = done[1].children
        self.assertNotEqual(new.spiIn, child.spiIn)
        self.assertConsistent(a, b)
        a.execute(a.core.expired(new.protocol, new.spiIn, "192.0.2.1", True))
        self.network.pump()
        self.assertEqual(done[1].children, [])
        self.assertEqual([len(sa.children) for sa in done], [1, 0, 1])
        self.assertConsistent(a, b)
        self.assertEqual(a.core.findChild(done[2].children[0].spiIn), (done[2], done[2].children[0]))

    def test_kernelExpiryUnknown(self):
        """
        An expire of an SPI no Child SA has changes nothing.
        """
        a, b, done = self.several(2)
        a.execute(a.core.expired(done[0].children[0].protocol, 0x1234, "192.0.2.2", True))
        self.assertEqual([len(sa.children) for sa in done], [1, 1])
        self.assertEqual(a.core.findChild(0x1234), (None, None))
        self.assertConsistent(a, b)

    def test_moved(self):
        """
        An IKE SA moved to another peer address (MOBIKE) is under that one.
        """
        a, b, done = self.several(2)
        moveIkeSA(a.core, done[0], done[0].local, ("198.51.100.7", 4500))
        index = a.core.saIndex
        self.assertEqual(set(index.byHost.get("198.51.100.7")), {done[0]})
        self.assertEqual(set(index.byHost.get("192.0.2.2")), {done[1]})
        self.assertConsistent(a)

    def test_reload(self):
        """
        A reload keeps the IKE SAs of a policy that stays under its name
        and deletes those of a policy removed: the groups follow.
        """
        a, b, done = self.several(2)
        b.execute(b.core.reload(responderConfig()))
        self.assertConsistent(a, b)
        self.assertEqual(len(b.core.saIndex.byPolicy.get("ba")), 2)
        b.execute(b.core.reload(parseConfig("# no policy\n")))
        self.network.pump()
        self.assertEqual(b.ikeSAs, [])
        self.assertConsistent(a, b)
        self.assertEqual(len(b.core.saIndex.byPolicy), 0)

    def test_lifecycle(self):
        """
        Half an hour of IKE SA rekeys every 10 minutes and Child SA rekeys
        every 5 (each side on its own jittered timers: some cross), with
        DPD: after every minute both sides' groups agree with their IKE
        SAs; then all are deleted and the groups are empty.
        """
        soak = Soak(8, 600, 300, dpd=20, step=10)
        soak.establish()
        for _ in range(30):
            soak.run(60)
            self.assertConsistent(soak.a, soak.b)
        self.assertGreater(soak.ikeUps, 8 * 3)
        for ikeSA in soak.b.ikeSAs:
            soak.b.command(soak.b.core.deleteIKESA, ikeSA)
            soak.network.pump()
        for host in (soak.a, soak.b):
            index = host.core.saIndex
            self.assertEqual(host.ikeSAs, [])
            self.assertEqual([len(g) for g in (index.byHost, index.byPeer, index.byPolicy, index.contacting,
                                               index.holding)], [0] * 5)

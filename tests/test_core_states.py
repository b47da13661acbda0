# -*- test-case-name: tests.test_core_states -*-
"""
Tests for L{ikedtx.core.states}: the declared transition tables of IKE SAs
and Child SAs, and their h11 rule (an illegal event raises before anything
changes).
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.core.errors import LocalProtocolError
from ikedtx.core.sa import IKESA, ChildSA
from ikedtx.core.states import (
    CHILD_TRANSITIONS, IKE_TRANSITIONS, ChildEvent, ChildState, IKEEvent, IKEState)
from ikedtx.wire.constants import ProtocolId


def _ikeSA():
    return IKESA(True, b"\x01" * 8, b"\x00" * 8, None, ("192.0.2.1", 500), ("192.0.2.2", 500), 0.0)


def _child():
    return ChildSA(ProtocolId.ESP, "tunnel", 0x1000, 1, 0.0)



def _attributes(sa):
    """
    Every attribute of C{sa} (an L{IKESA} or L{ChildSA}, which have slots).
    """
    return {name: getattr(sa, name) for name in type(sa).__slots__ if name != "__weakref__"}

class TableMixin:
    """
    Every (state, event) pair of a table, legal or not.
    """

    states = events = table = None

    def make(self):
        raise NotImplementedError()

    def test_legalTransitions(self):
        """
        Each transition of the table leads where the table says.
        """
        for (state, event), newState in self.table.items():
            sa = self.make()
            sa.state = state
            self.assertTrue(sa.can(event))
            self.assertEqual(sa.handle(event), newState)
            self.assertEqual(sa.state, newState)

    def test_illegalTransitions(self):
        """
        Every pair not in the table raises L{LocalProtocolError} and leaves
        the SA exactly as it was.
        """
        illegal = 0
        for state in self.states:
            for event in self.events:
                if (state, event) in self.table:
                    continue
                illegal += 1
                sa = self.make()
                sa.state = state
                before = _attributes(sa)
                self.assertFalse(sa.can(event))
                self.assertRaises(LocalProtocolError, sa.handle, event)
                self.assertEqual(_attributes(sa), before, (state, event))
        self.assertGreater(illegal, 0)

    def test_everyStateReachable(self):
        """
        No state is declared that nothing enters (the initial one aside).
        """
        reached = set(self.table.values()) | {self.make().state}
        self.assertEqual(reached, set(self.states))


class IKEStateTests(TableMixin, SynchronousTestCase):
    states, events, table = IKEState, IKEEvent, IKE_TRANSITIONS
    make = staticmethod(_ikeSA)

    def test_names(self):
        """
        IKE SA states keep iked's IKEV2_STATE_* names and numbers.
        """
        self.assertEqual({s.name: s.value for s in IKEState},
                         {"INIT": 0, "SA_INIT": 2, "AUTH_REQUEST": 5, "VALID": 7, "CLOSING": 9, "CLOSED": 10})

    def test_closedIsFinal(self):
        """
        Nothing leaves CLOSED.
        """
        self.assertEqual([key for key in IKE_TRANSITIONS if key[0] == IKEState.CLOSED], [])


class ChildStateTests(TableMixin, SynchronousTestCase):
    states, events, table = ChildState, ChildEvent, CHILD_TRANSITIONS
    make = staticmethod(_child)


class IKESATextTests(SynchronousTestCase):
    """
    The text of an IKE SA in log lines names both endpoints, address and
    port ([address]:port for IPv6).
    """

    def test_bothEndpoints(self):
        sa = IKESA(True, b"\x01" * 8, b"\x02" * 8, None, ("192.0.2.1", 4500), ("198.51.100.7", 4501), 0)
        self.assertEqual(str(sa), "IKE SA 0101010101010101/0202020202020202 policy -[INIT] "
                                  "192.0.2.1:4500 <-> 198.51.100.7:4501")

    def test_ipv6(self):
        sa = IKESA(True, b"\x01" * 8, b"\x02" * 8, None, ("2001:db8::1", 500), ("2001:db8::2", 500), 0)
        self.assertTrue(str(sa).endswith(" [2001:db8::1]:500 <-> [2001:db8::2]:500"), str(sa))

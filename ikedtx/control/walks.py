# -*- test-case-name: tests.test_control -*-
"""
Walks of C{show sa}: the listing a paged C{show sa} keeps between its
pages, so that a page costs the daemon only the SAs it holds.

A walk notes the keys of the SA table once, when it starts (one copy of
the table's keys, no SA looked at); each page then looks up only its own
keys from where the last page ended, skipping those whose SA has gone.
Paging by position in the live table instead would list the whole table
for every page (quadratic in the number of SAs) and would skip or repeat
SAs when others come or go between pages.
"""

from collections import OrderedDict
from itertools import count


class UnknownWalk(Exception):
    """
    No walk has this cursor: it ended, or was dropped for newer ones.
    """


class Walks:
    """
    The walks of one control socket (its clients may open a connection per
    page), at most C{maxWalks} of them: starting one more drops the one
    least recently paged.  A walk ends when its last page was served.
    """

    maxWalks = 16

    def __init__(self):
        self._walks = OrderedDict()
        self._cursors = count(1)

    def __len__(self):
        return len(self._walks)

    def start(self, table):
        """
        Start a walk over C{table}'s keys as they are now; its cursor.
        """
        cursor = next(self._cursors)
        self._walks[cursor] = list(table)
        while len(self._walks) > self.maxWalks:
            self._walks.popitem(last=False)
        return cursor

    def page(self, cursor, table, offset, limit):
        """
        Up to C{limit} values of C{table} whose keys the walk C{cursor}
        noted, from position C{offset} of the walk on, skipping keys no
        longer in C{table}; with the position the next page starts at, or
        L{None} after the last one (the walk then ends).

        @raise UnknownWalk: no such walk.
        """
        keys = self._walks.get(cursor)
        if keys is None:
            raise UnknownWalk(cursor)
        self._walks.move_to_end(cursor)
        found = []
        position = offset
        end = len(keys)
        while position < end and len(found) < limit:
            value = table.get(keys[position])
            position += 1
            if value is not None:
                found.append(value)
        if position >= end:
            del self._walks[cursor]
            return found, None
        return found, position

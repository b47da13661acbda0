# -*- test-case-name: tests.test_bench -*-
"""
What the in-memory benchmarks (bench/respcost.py, scalecost.py,
gcscale.py) share: a counter of the bytecode instructions run, and the
least of a reactor that the daemon's garbage-collector policy needs.
"""

import sys
import time


class Opcodes:
    """
    Counts the Python bytecode instructions run between L{start} and
    L{stop} (C{sys.settrace} with opcode events: slow, blind to C work
    such as the crypto, but the same count on a loaded machine as on a
    quiet one).

    @ivar count: the instructions counted so far.
    """

    def __init__(self):
        self.count = 0

        def local(frame, event, arg):
            if event == "opcode":
                self.count += 1
            return local

        def trace(frame, event, arg):
            frame.f_trace_opcodes = True
            return local

        self._trace = trace

    def start(self):
        sys.settrace(self._trace)

    def stop(self):
        sys.settrace(None)


class StepReactor:
    """
    Just what L{ikedtx.net.gcpolicy.FreezePolicy} asks of a reactor: the
    calls it schedules run when the harness says (L{run}, between two IKE
    SAs, as the reactor would run them between two datagrams).
    """

    def __init__(self):
        self.calls = []

    def seconds(self):
        return time.monotonic()

    def callLater(self, delay, f, *args):
        self.calls.append((f, args))
        return self

    def active(self):
        return False

    def run(self):
        calls, self.calls = self.calls, []
        for f, args in calls:
            f(*args)

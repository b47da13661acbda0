# -*- test-case-name: tests.test_control,tests.test_privsep_commands -*-
"""
AMP boxes of bounded size, for the AMP endpoints that face a less trusted
side: the control socket (any local user the peer-credential check lets
in) and the privilege-separation parent (the worker that parses peers'
datagrams).  AMP itself bounds one value (64 KiB) but not a box: a box of
endless keys would grow the process without end.
"""

from twisted.protocols import amp


class BoundedBoxes:
    """
    Mix into an L{amp.AMP} subclass (before it in the bases): a box with
    more than C{maxBoxKeys} keys or C{maxBoxBytes} octets of keys and values
    ends the connection, after L{boxTooBig} was told.

    @cvar maxBoxBytes: the most octets of one box's keys and values.
    @cvar maxBoxKeys: the most keys in one box.
    """

    maxBoxBytes = 64 * 1024
    maxBoxKeys = 64
    _boxBytes = 0
    _boxKeys = 0

    def boxTooBig(self):
        """
        A box went over the bounds; the connection is aborted after this
        returns (log here, and end what else must end).
        """

    def proto_init(self, string):
        self._boxBytes = 0
        self._boxKeys = 0
        return amp.AMP.proto_init(self, string)

    def proto_key(self, string):
        if string:
            self._boxKeys += 1
            self._boxBytes += len(string)
            if self._boxKeys > self.maxBoxKeys or self._boxBytes > self.maxBoxBytes:
                return self._tooBig()
        return amp.AMP.proto_key(self, string)

    def proto_value(self, string):
        self._boxBytes += len(string)
        if self._boxBytes > self.maxBoxBytes:
            return self._tooBig()
        return amp.AMP.proto_value(self, string)

    def _tooBig(self):
        self.boxTooBig()
        self._currentBox = None
        self.transport.abortConnection()
        # Whatever else arrives goes nowhere.
        self.MAX_LENGTH = 0
        return "done"

    def proto_done(self, string):
        return "done"

# -*- test-case-name: tests.test_kernel_decoupled -*-
"""
The decoupled kernel: records what would be installed and installs nothing.

This is iked's C{set decouple} (and its C{-n}-like dry runs), and the datapath
of tests and demos that run without root. What it holds is what C{ikectl show
sa} would show of the kernel.
"""

import os
import struct
from collections import deque

from twisted.internet.defer import fail, succeed
from zope.interface import implementer

from ikedtx.kernel.interfaces import IKernel, KernelError, KernelSAUsage
from ikedtx.logtext import Logger


@implementer(IKernel)
class DecoupledKernel:
    """
    An L{IKernel} that only records.

    @ivar sas: installed L{KernelSA}s keyed by C{(protocol, spi, destination)}.
    @ivar flows: installed L{KernelFlow}s, in installation order.
    @ivar log: the latest calls, as C{(operation, argument)} tuples, in order.
    @ivar ipv6Blocked: whether IPv6 would be blocked (L{blockIPv6}).
    @ivar events: the L{IDatapathEvents} receiver (this provider has no
        datapath of its own, so it raises no event; tests call the receiver).
    """

    name = "decoupled"
    _log = Logger()

    def __init__(self, randomBytes=os.urandom):
        self._randomBytes = randomBytes
        self._reserved = set()
        self.sas = {}
        self.flows = []
        # The most recent calls, for tests and ikectl; bounded, since a
        # daemon runs for months.
        self.log = deque(maxlen=10000)
        self.events = None
        self.ipv6Blocked = False

    def setEventReceiver(self, receiver):
        self.events = receiver

    def allocateSpi(self, protocol, source, destination):
        # Answered at once: nothing to ask.
        while True:
            (spi,) = struct.unpack("!I", self._randomBytes(4))
            # SPIs 0-255 are reserved by IANA (RFC 4303 2.1).
            if spi > 255 and (protocol, spi) not in self._reserved:
                self._reserved.add((protocol, spi))
                self.log.append(("allocateSpi", spi))
                return succeed(spi)

    #: Its SPIs do not depend on the addresses: a privilege-separated
    #: parent may lend a worker a block of them (L{ikedtx.privsep.commands.
    #: AllocateSpis}).
    spiBlocks = True

    def releaseSpi(self, protocol, spi):
        """
        Give back an SPI of L{allocateSpi} that no SA installed.
        """
        self._reserved.discard((protocol, spi))

    def addSA(self, sa):
        self.sas[(sa.protocol, sa.spi, sa.destination)] = sa
        self.log.append(("addSA", sa))
        self._log.debug("decoupled: would install SA {spi:08x} {src} -> {dst}", spi=sa.spi, src=sa.source, dst=sa.destination)
        return succeed(None)

    def updateSA(self, old, new):
        if self.sas.pop((old.protocol, old.spi, old.destination), None) is None:
            return fail(KernelError("update of SA %08x: no such SA" % (old.spi,)))
        self.sas[(new.protocol, new.spi, new.destination)] = new
        self.log.append(("updateSA", new))
        return succeed(None)

    def querySA(self, sa):
        if (sa.protocol, sa.spi, sa.destination) not in self.sas:
            return fail(KernelError("query of SA %08x: no such SA" % (sa.spi,)))
        # Nothing passes through a recording datapath.
        return succeed(KernelSAUsage())

    def deleteSA(self, sa):
        self.sas.pop((sa.protocol, sa.spi, sa.destination), None)
        self._reserved.discard((sa.protocol, sa.spi))
        self.log.append(("deleteSA", sa))
        return succeed(None)

    def detachSA(self, sa):
        # Nothing counts sequence numbers here.
        self.sas.pop((sa.protocol, sa.spi, sa.destination), None)
        self.log.append(("detachSA", sa))
        return succeed(None)

    def addFlow(self, flow):
        self.flows.append(flow)
        self.log.append(("addFlow", flow))
        return succeed(None)

    def deleteFlow(self, flow):
        if flow in self.flows:
            self.flows.remove(flow)
        self.log.append(("deleteFlow", flow))
        return succeed(None)

    def blockIPv6(self):
        self.ipv6Blocked = True
        self.log.append(("blockIPv6", None))
        return succeed(None)

    def unblockIPv6(self):
        self.ipv6Blocked = False
        self.log.append(("unblockIPv6", None))
        return succeed(None)

    def flush(self):
        self.ipv6Blocked = False
        self.sas.clear()
        self.flows.clear()
        self._reserved.clear()
        self.log.append(("flush", None))
        return succeed(None)

"""
Pumping datagrams between in-memory IKE cores (after h11's ConnectionPair
and strongSwan's exchange_test_helper).

A L{Host} runs one L{IKECore} with a L{task.Clock} for its timers and a
L{DecoupledKernel}; a L{Network} connects hosts by address and holds the
datagrams in flight, so that a test delivers, drops, duplicates or reorders
them one at a time and checks each step.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth.eapbackend import runEAP
from ikedtx.core.actions import (
    AbortEAP, AllocateSpi, CancelTimer, InstallChildSA, QuerySAUsage, ReleaseSpi, RemoveChildSA, RequestDone, RunEAP,
    SendDatagram, SendNatKeepalive, SetTimer, UpdateChildSA)
from ikedtx.core.engine import IKECore
from ikedtx.core.settings import CoreSettings
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.kernel.interfaces import KernelSAUsage


class DeterministicRandom:
    """
    A reproducible byte source for nonces, SPIs and key exchanges.
    """

    def __init__(self, seed):
        import hashlib

        self._state = hashlib.sha256(seed).digest()
        self._hash = hashlib.sha256

    def __call__(self, n):
        out = b""
        while len(out) < n:
            self._state = self._hash(self._state + b"next").digest()
            out += self._state
        return out[:n]


class Host:
    """
    One daemon: a core, its clock, its kernel, and the outcome of its
    commands.

    @ivar results: C{{requestId: RequestDone}}.
    @ivar events: every non-datagram, non-timer action, in order.
    @ivar packets: C{{spi: packets}} the datapath reports for its SAs
        (L{QuerySAUsage}); 0 for the others.
    """

    def __init__(self, network, address, config, credentials=None, settings=None, seed=None, wallClock=None):
        self.network = network
        self.address = address
        self.clock = network.clock
        self.kernel = DecoupledKernel(randomBytes=DeterministicRandom((seed or address).encode() + b"kernel"))
        self.core = IKECore(
            config, credentials, settings or CoreSettings(), now=self.clock.seconds,
            randomBytes=DeterministicRandom((seed or address).encode()),
            localAddressFor=lambda peer: self.address,
            wallClock=wallClock)
        self.timers = {}
        self.results = {}
        self.events = []
        self.packets = {}
        network.hosts[address] = self

    def execute(self, actions):
        for action in actions:
            if isinstance(action, SendDatagram):
                self.network.inFlight.append((action.data, action.local, action.remote))
            elif isinstance(action, SendNatKeepalive):
                self.events.append(action)
            elif isinstance(action, SetTimer):
                self._cancel(action.key)
                self.timers[action.key] = self.clock.callLater(action.delay, self._expired, action.key)
            elif isinstance(action, CancelTimer):
                self._cancel(action.key)
            elif isinstance(action, RequestDone):
                self.results[action.requestId] = action
                self.events.append(action)
            elif isinstance(action, AllocateSpi):
                self.kernel.allocateSpi(action.protocol, action.source, action.destination).addCallbacks(
                    lambda spi, token=action.token: self.execute(self.core.spiAllocated(token, spi)),
                    lambda failure, token=action.token: self.execute(self.core.spiAllocationFailed(token, failure.value)))
            elif isinstance(action, RunEAP):
                runEAP(action, lambda token, step: self.execute(self.core.eapAnswered(token, step)))
            elif isinstance(action, AbortEAP):
                action.session.abort()
                self.events.append(action)
            elif isinstance(action, InstallChildSA):
                for sa in action.sas:
                    self.kernel.addSA(sa)
                for flow in action.flows:
                    self.kernel.addFlow(flow)
                self.events.append(action)
                self.execute(self.core.childInstalled(action.reqid))
            elif isinstance(action, QuerySAUsage):
                self.events.append(action)
                usages = [KernelSAUsage(packets=self.packets.get(sa.spi, 0)) for sa in action.sas]
                self.execute(self.core.usageReported(action.token, usages))
            elif isinstance(action, UpdateChildSA):
                for old, new in zip(action.old, action.new):
                    self.kernel.updateSA(old, new)
                for old, new in zip(action.oldFlows, action.newFlows):
                    self.kernel.addFlow(new)
                    self.kernel.deleteFlow(old)
                self.events.append(action)
            elif isinstance(action, ReleaseSpi):
                self.kernel.deleteSA(action.kernelSA())
                self.events.append(action)
            elif isinstance(action, RemoveChildSA):
                for sa in action.sas:
                    self.kernel.deleteSA(sa)
                for flow in action.flows:
                    self.kernel.deleteFlow(flow)
                self.events.append(action)
            else:
                self.events.append(action)

    def _cancel(self, key):
        call = self.timers.pop(key, None)
        if call is not None and call.active():
            call.cancel()

    def _expired(self, key):
        self.timers.pop(key, None)
        self.execute(self.core.timerExpired(key))

    def initiate(self, policyName):
        requestId, actions = self.core.initiate(policyName)
        self.execute(actions)
        return requestId

    def command(self, method, *args):
        requestId, actions = method(*args)
        self.execute(actions)
        return requestId

    def receive(self, data, local, remote):
        self.execute(self.core.datagramReceived(data, local, remote))

    def eventsOf(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def ikeSAs(self):
        return list(self.core.ikeSAs.values())


class Network:
    """
    Datagrams in flight between L{Host}s, delivered by hand.

    @ivar inFlight: C{[(data, source, destination)]} not yet delivered.
    @ivar delivered: everything delivered, in order.
    @ivar nat: C{{(host, port): (host, port)}} rewriting of source
        endpoints, to simulate a NAT in front of a host.
    """

    def __init__(self, clock=None):
        self.clock = task.Clock() if clock is None else clock
        self.hosts = {}
        self.inFlight = []
        self.delivered = []
        self.nat = {}

    def deliverOne(self, duplicate=False):
        """
        Deliver the oldest datagram in flight (twice if C{duplicate}) and
        return it.
        """
        data, source, destination = self.inFlight.pop(0)
        source = self.nat.get(source, source)
        inside = {outside: inside for inside, outside in self.nat.items()}
        destination = inside.get(destination, destination)
        host = self.hosts[destination[0]]
        self.delivered.append((data, source, destination))
        host.receive(data, destination, source)
        if duplicate:
            host.receive(data, destination, source)
        return data, source, destination

    def drop(self):
        """
        Lose the oldest datagram in flight and return it.
        """
        return self.inFlight.pop(0)

    def pump(self, limit=100):
        """
        Deliver until nothing is in flight; return how many were delivered.
        """
        n = 0
        while self.inFlight:
            n += 1
            if n > limit:
                raise AssertionError("more than %d datagrams: a loop?" % (limit,))
            self.deliverOne()
        return n


class CoreTestCase(SynchronousTestCase):
    """
    Base for tests that pump two cores.
    """

    def assertSucceeded(self, host, requestId):
        done = host.results.get(requestId)
        self.assertIsNotNone(done, "request %d has not finished" % (requestId,))
        self.assertIsNone(done.error, "request failed: %r" % (done.error,))
        return done.result

    def assertFailedWith(self, host, requestId, kind):
        done = host.results.get(requestId)
        self.assertIsNotNone(done, "request %d has not finished" % (requestId,))
        self.assertIsInstance(done.error, kind)
        return done.error

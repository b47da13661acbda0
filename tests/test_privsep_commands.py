"""
The command set between the privileged parent and the unprivileged worker
(ikedtx.privsep): records checked field by field, bounded sizes, bad
commands refused with a clear error, signing requests checked, the state
handed to the worker without the private key, the restart backoff.
"""

import json
import os
import socket
import struct
from ipaddress import ip_address
from types import SimpleNamespace

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from twisted.internet import defer, task
from twisted.internet.defer import fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.protocols import amp
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.config import parseConfig
from ikedtx.kernel import vips
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.kernel.interfaces import KernelError, KernelFlow, KernelSA, KernelSelector
from ikedtx.control import commands as CC
from ikedtx.privsep import commands as C
from ikedtx.privsep import records as R
from ikedtx.privsep.addresses import AddressGuard, RemoteAddresses
from ikedtx.privsep.gate import ControlGate
from ikedtx.privsep.parent import Supervisor, WorkerCommands, bindControlSocket, describeEnd
from ikedtx.privsep.signer import (MAX_FRAME, SigningError, SigningServer, parseRequest, remoteKey, signWith)
from ikedtx.privsep.state import LocalKeyPlaceholder, dumpState, loadState
from ikedtx.privsep.workerservice import RemoteKernel

ESP = 3


def selector(a, b=None):
    return KernelSelector(ip_address(a), ip_address(b or a), 0, 0, 65535)


def anSA(**changes):
    fields = dict(spi=0x12345678, protocol=ESP, inbound=True, source=ip_address("192.0.2.2"),
                  destination=ip_address("192.0.2.1"), mode="tunnel", encryption=(20, 128),
                  encryptionKey=b"k" * 20, integrity=None, integrityKey=b"", esn=False, encapsulation=(4500, 4500),
                  reqid=7, lifetimeSeconds=3600, lifetimeBytes=None, softLifetimeSeconds=3000,
                  softLifetimeBytes=None, replayWindow=32, ipcompCpi=None,
                  selectors=((selector("10.1.0.1"), selector("10.2.0.0", "10.2.0.255")),))
    fields.update(changes)
    return KernelSA(**fields)


def aFlow():
    return KernelFlow(selector("10.1.0.1"), selector("10.2.0.1"), "out", ESP, "tunnel", ip_address("192.0.2.1"),
                      ip_address("192.0.2.2"), 7)


class RecordTests(SynchronousTestCase):
    def test_roundTrip(self):
        """
        SAs and flows come out of encode/decode equal to what went in: with
        and without each optional field, IPv6 outer addresses and IPv4
        selectors, addresses given as text (a released SPI's larval SA).
        """
        sa, flow = anSA(), aFlow()
        self.assertEqual(R.decodeSA(R.encodeSA(sa)), sa)
        self.assertEqual(R.decodeFlow(R.encodeFlow(flow)), flow)
        full = anSA(inbound=False, esn=True, encryption=(12, None), integrity=12, integrityKey=b"i" * 32,
                    encapsulation=None, lifetimeBytes=2 ** 64 - 1, softLifetimeBytes=5, lifetimeSeconds=None,
                    ipcompCpi=0x4001, mode="transport", source=ip_address("2001:db8::2"),
                    destination=ip_address("2001:db8::1"), reqid=2 ** 32 - 1, replayWindow=0,
                    selectors=(((selector("10.1.0.1"), selector("2001:db8:1::", "2001:db8:1::ffff"))),) * 3)
        self.assertEqual(R.decodeSA(R.encodeSA(full)), full)
        larval = anSA(source="192.0.2.2", destination="192.0.2.1", encryption=None, encryptionKey=b"",
                      selectors=())
        self.assertEqual(R.decodeSA(R.encodeSA(larval)),
                         anSA(encryption=None, encryptionKey=b"", selectors=()))
        ipcomp = KernelFlow(selector("10.1.0.1"), selector("10.2.0.1"), "fwd", 2, "transport",
                            ip_address("2001:db8::1"), ip_address("192.0.2.2"), 9, True)
        self.assertEqual(R.decodeFlow(R.encodeFlow(ipcomp)), ipcomp)

    def assertRefused(self, data, decode, words):
        with self.assertRaises(R.RecordError) as caught:
            decode(data)
        self.assertIn(words, str(caught.exception))

    def test_badFields(self):
        """
        Each field is checked: the version, a protocol other than AH or ESP,
        a mode, direction or address family out of range, flags unknown,
        key material too long, an encapsulation port 0, too many
        selectors, an inverted range, and a record shorter or longer than
        its fields.
        """
        good = R.encodeSA(anSA())

        def at(offset, value, data=good):
            return data[:offset] + bytes((value,)) + data[offset + 1:]

        self.assertRefused(at(0, 2), R.decodeSA, "not a packed record")
        self.assertRefused(at(5, 50), R.decodeSA, "not AH (2) or ESP (3)")
        self.assertRefused(at(6, 0x80), R.decodeSA, "flags")
        self.assertRefused(at(6, R._SA_KEY_LENGTH), R.decodeSA, "flags")
        self.assertRefused(at(7, 2), R.decodeSA, "sa.mode")
        self.assertRefused(at(8, 5), R.decodeSA, "address family 5")
        self.assertRefused(at(9, R.MAX_SELECTORS + 1), R.decodeSA, "at most 64 pairs")
        self.assertRefused(R.encodeSA(anSA(encryptionKey=b"k" * 129)), R.decodeSA, "at most 128 bytes")
        self.assertRefused(R.encodeSA(anSA(encapsulation=(0, 4500))), R.decodeSA, "sa.encapsulation")
        self.assertRefused(R.encodeSA(anSA(selectors=((selector("10.9.9.9", "10.1.0.0"), selector("10.2.0.1")),))),
                           R.decodeSA, "not an address range")
        for cut in range(len(good)):
            self.assertRaises(R.RecordError, R.decodeSA, good[:cut])
        self.assertRefused(good + b"\0", R.decodeSA, "1 octets after the record")
        flow = R.encodeFlow(aFlow())
        self.assertRefused(at(1, 3, flow), R.decodeFlow, "flow.direction")
        self.assertRefused(at(2, 50, flow), R.decodeFlow, "not AH (2) or ESP (3)")
        self.assertRefused(at(3, 2, flow), R.decodeFlow, "flow.mode")
        self.assertRefused(at(4, 2, flow), R.decodeFlow, "flow.ipcomp")
        self.assertRefused(at(9, 7, flow), R.decodeFlow, "flow.localAddress: address family 7")
        inverted = KernelFlow(selector("10.9.9.9", "10.1.0.0"), selector("10.2.0.1"), "out", ESP, "tunnel",
                              ip_address("192.0.2.1"), ip_address("192.0.2.2"), 7)
        self.assertRefused(R.encodeFlow(inverted), R.decodeFlow, "flow.source: not an address range")
        for cut in range(len(flow)):
            self.assertRaises(R.RecordError, R.decodeFlow, flow[:cut])
        self.assertRefused(flow + b"\0", R.decodeFlow, "1 octets after the record")
        self.assertRefused(b'{"spi": 1}', R.decodeSA, "not a packed record")

    def test_addressesParsedOnce(self):
        """
        An address's text is parsed once and its value kept (bounded): the
        same value comes back, a bad text is refused every time, and a full
        table starts again.
        """
        self.patch(R, "_parsed", {})
        self.patch(R, "_PARSED_MAX", 3)
        first = R._address("192.0.2.7", "x")
        self.assertIs(R._address("192.0.2.7", "x"), first)
        self.assertEqual(first, ip_address("192.0.2.7"))
        for _ in range(2):
            self.assertRaises(R.RecordError, R._address, "192.0.2.300", "x")
        self.assertEqual(list(R._parsed), ["192.0.2.7"])
        for text in ("2001:db8::1", "10.0.0.1", "10.0.0.2"):
            R._address(text, "x")
        self.assertEqual(list(R._parsed), ["10.0.0.2"])

    def test_bounded(self):
        """
        A record longer than MAX_RECORD_BYTES is refused before it is
        parsed; so is what is not JSON where JSON is expected.
        """
        for decode in (R.decodeSA, R.decodeFlow, lambda data: R.decode(data, R.usageFromPlain)):
            with self.assertRaises(R.RecordError) as caught:
                decode(b"\1" * (R.MAX_RECORD_BYTES + 1))
            self.assertIn("at most %d" % (R.MAX_RECORD_BYTES,), str(caught.exception))
        self.assertRaises(R.RecordError, R.decode, b"\xff{", R.usageFromPlain)
        self.assertRaises(R.RecordError, R.decode, b"[]", R.usageFromPlain)


#: A road-warrior client's policies: one puts its address on eth1, the
#: other where the datapath puts them (lo for this one).
CLIENT = ('ikev2 "rw" active esp from dynamic to 10.2.0.0/16 peer 192.0.2.2 psk "x" request address any '
          'iface eth1\n'
          'ikev2 "rw2" active esp from dynamic to 10.3.0.0/16 peer 192.0.2.3 psk "x" request address any\n')


class RecordingAddresses(vips.RecordedAddresses):
    """
    A keeper of virtual addresses that also notes each change in the
    datapath's log, so that tests see the order of SAs, addresses and flows.
    """

    def __init__(self, log):
        vips.RecordedAddresses.__init__(self)
        self.log = log

    def add(self, address, interface):
        vips.RecordedAddresses.add(self, address, interface)
        self.log.append(("addAddress", (address, interface)))

    def remove(self, address, interface):
        vips.RecordedAddresses.remove(self, address, interface)
        self.log.append(("removeAddress", (address, interface)))


class _Service:
    def __init__(self):
        self.kernel = DecoupledKernel()
        self.installed = set()
        self.notified = []
        # iked.conf names interfaces that exist (eth1 need not, here).
        from ikedtx.config import hosts

        exists, hosts.interfaceExists = hosts.interfaceExists, lambda name: True
        try:
            config = parseConfig(CLIENT)
        finally:
            hosts.interfaceExists = exists
        self.addresses = AddressGuard(self.kernel, config, keeper=RecordingAddresses(self.kernel.log))

    def _notify(self, state):
        self.notified.append(state)


class ChannelTests(SynchronousTestCase):
    """
    The worker's L{RemoteKernel} against the parent's L{WorkerCommands}
    over an in-memory AMP connection.
    """

    def setUp(self):
        self.service = _Service()
        self.client, self.server, self.pump = connectedServerAndClient(
            lambda: WorkerCommands(self.service), amp.AMP)
        self.remote = RemoteKernel("decoupled", self.client)

    def call(self, d):
        """
        C{d} once the pump has run: its outcome is caught first, as AMP
        drops a connection whose failures reach the end of the chain.
        """
        outcome = []
        d.addBoth(outcome.append)
        self.pump.flush()
        self.assertEqual(len(outcome), 1)
        result = outcome[0]
        return fail(result) if isinstance(result, Failure) else succeed(result)

    def test_installAndRemove(self):
        """
        SAs and flows the worker installs reach the parent's datapath as the
        same records, and leave it again.
        """
        sa, flow = anSA(), aFlow()
        self.successResultOf(self.call(self.remote.addSA(sa)))
        self.successResultOf(self.call(self.remote.addFlow(flow)))
        self.assertEqual(list(self.service.kernel.sas.values()), [sa])
        self.assertEqual(self.service.kernel.flows, [flow])
        self.assertEqual(self.service.installed, {sa.spi})
        self.successResultOf(self.call(self.remote.deleteSA(sa)))
        self.successResultOf(self.call(self.remote.deleteFlow(flow)))
        self.assertEqual((self.service.kernel.sas, self.service.kernel.flows), ({}, []))

    def test_allocateSpiAndQuery(self):
        spi = self.successResultOf(self.call(self.remote.allocateSpi(ESP, ip_address("192.0.2.2"),
                                                                     ip_address("192.0.2.1"))))
        self.assertGreater(spi, 255)
        sa = anSA(spi=spi)
        self.successResultOf(self.call(self.remote.addSA(sa)))
        usage = self.successResultOf(self.call(self.remote.querySA(sa)))
        self.assertEqual(usage.bytes, 0)

    def test_badRecordRefused(self):
        """
        A record that does not decode is refused with BAD_RECORD and its
        reason; the datapath is not touched.
        """
        d = self.call(self.client.callRemote(C.AddSA, sa=R.encodeSA(anSA())[:-1]))
        failure = self.failureResultOf(d, R.RecordError)
        self.assertIn("truncated", str(failure.value))
        self.assertEqual(self.service.kernel.log, type(self.service.kernel.log)())

    def test_badProtocolRefused(self):
        d = self.call(self.client.callRemote(C.AllocateSpi, protocol=50, source="192.0.2.2",
                                             destination="192.0.2.1"))
        self.assertIn("protocol must be", str(self.failureResultOf(d, R.RecordError).value))

    def test_kernelErrorTyped(self):
        """
        A datapath failure comes back as a KernelError with its text.
        """
        d = self.call(self.remote.querySA(anSA()))
        self.assertIn("no such SA", str(self.failureResultOf(d, KernelError).value))

    def test_unknownCommandRefused(self):
        """
        A command the parent does not have is refused by name.
        """

        class Bogus(amp.Command):
            commandName = b"ReadFile"
            arguments = [(b"path", amp.Unicode())]

        d = self.call(self.client.callRemote(Bogus, path="/etc/iked/private/local.key"))
        failure = self.failureResultOf(d, amp.UnhandledCommand)
        self.assertIn("ReadFile", str(failure.value))

    def test_boxBounded(self):
        """
        A box from the worker larger than MAX_BOX_BYTES (or with more than
        MAX_BOX_KEYS keys) ends the channel instead of growing the parent.
        """
        from ikedtx.privsep.parent import MAX_BOX_BYTES

        box = amp.AmpBox(_command=b"AddFlow", _ask=b"1", **{"k%d" % (i,): b"v" * 60000
                                                           for i in range(MAX_BOX_BYTES // 60000 + 1)})
        self.client.transport.write(box.serialize())
        self.pump.flush()
        # The parent's end is closed.
        transport = self.server.transport
        self.assertTrue(transport is None or transport.disconnecting or transport.disconnected)
        self.assertEqual(self.service.kernel.flows, [])

    def test_setVerbose(self):
        """
        ikectl log verbose in the worker moves the parent's log filter too.
        """
        from ikedtx import tap

        calls = []
        self.patch(tap, "setVerbose", calls.append)
        self.successResultOf(self.call(self.client.callRemote(C.SetVerbose, verbose=True)))
        self.assertEqual(calls, [True])

    def test_fetchStateBounded(self):
        """
        State is fetched in chunks of at most CHUNK bytes, and only a token
        the parent gave.
        """
        self.server.service.pendingStates = {1: b"x" * (C.CHUNK + 10)}
        first = self.successResultOf(self.call(self.client.callRemote(C.FetchState, token=1, offset=0)))
        self.assertEqual(len(first["data"]), C.CHUNK)
        last = self.successResultOf(self.call(self.client.callRemote(C.FetchState, token=1, offset=C.CHUNK)))
        self.assertEqual(last["data"], b"x" * 10)
        # systemd hears that the reload is done once the last chunk is out.
        self.assertEqual(self.service.notified, ["READY=1"])
        self.failureResultOf(self.call(self.client.callRemote(C.FetchState, token=1, offset=0)), KeyError)


class AddressCommandTests(ChannelTests):
    """
    C{AddAddress}/C{RemoveAddress}: the parent puts a virtual address (RFC
    7296 2.19) on an interface only for an address that is the local
    selector of an SA the worker installed, on the interface of a policy
    that requests an address; anything else is refused and changes nothing.
    """

    VIP = ip_address("10.88.0.1")

    def setUp(self):
        ChannelTests.setUp(self)
        self.remote = RemoteKernel("xfrm", self.client)

    def vipSA(self, **changes):
        return anSA(selectors=((selector(str(self.VIP)), selector("10.2.0.0", "10.2.0.255")),), **changes)

    def addAddress(self, address, interface):
        return self.call(self.client.callRemote(C.AddAddress, address=address, interface=interface))

    @property
    def added(self):
        return self.service.addresses.keeper.added

    def test_addressOfAnSA(self):
        """
        The local selector of an installed SA goes on the policy's iface, or
        where the datapath puts addresses (lo here), and comes off again.
        """
        self.successResultOf(self.call(self.remote.addSA(self.vipSA())))
        self.successResultOf(self.addAddress(str(self.VIP), "eth1"))
        self.successResultOf(self.addAddress(str(self.VIP), "lo"))
        self.assertEqual(self.added, {(self.VIP, "eth1"), (self.VIP, "lo")})
        self.successResultOf(self.call(self.client.callRemote(C.RemoveAddress, address=str(self.VIP),
                                                              interface="eth1")))
        self.assertEqual(self.added, {(self.VIP, "lo")})

    def test_noSAHoldsIt(self):
        """
        An address that no SA of the worker has as its local selector is
        refused (ADDRESS_REFUSED, with why): one only in the SA's remote
        selector, one of an SA deleted since, one of no SA at all.
        """
        sa = self.vipSA()
        self.successResultOf(self.call(self.remote.addSA(sa)))
        for address in ("10.88.0.2", "10.2.0.1"):
            failure = self.failureResultOf(self.addAddress(address, "eth1"), R.AddressRefused)
            self.assertIn("no SA has %s as its local selector" % (address,), str(failure.value))
        self.successResultOf(self.call(self.remote.deleteSA(sa)))
        self.failureResultOf(self.addAddress(str(self.VIP), "eth1"), R.AddressRefused)
        self.assertEqual(self.added, set())

    def test_badInterface(self):
        """
        An interface no requesting policy names is refused; a string that
        cannot be an interface name is malformed (BAD_RECORD).
        """
        self.successResultOf(self.call(self.remote.addSA(self.vipSA())))
        failure = self.failureResultOf(self.addAddress(str(self.VIP), "eth0"), R.AddressRefused)
        self.assertIn("eth0 is not the interface of a policy that requests an address (eth1, lo)",
                      str(failure.value))
        for interface in ("", "x" * 16, "../eth1", "eth 1", "eth1\n", ".."):
            self.failureResultOf(self.addAddress(str(self.VIP), interface), R.RecordError)
        self.assertEqual(self.added, set())

    def test_malformedArguments(self):
        """
        What does not parse as an address is malformed; addresses no peer
        lends (unspecified, loopback, multicast, link-local) are refused,
        even as an SA's local selector; nothing changes.
        """
        for address in ("10.88.0.300", "", "x" * 100, "10.88.0.1/32", " 10.88.0.1"):
            self.failureResultOf(self.addAddress(address, "eth1"), R.RecordError)
            self.failureResultOf(self.call(self.client.callRemote(C.RemoveAddress, address=address,
                                                                  interface="eth1")), R.RecordError)
        for address in ("0.0.0.0", "127.0.0.1", "224.0.0.1", "169.254.1.1", "fe80::1"):
            sa = anSA(selectors=((selector(address), selector(address)),))
            self.successResultOf(self.call(self.remote.addSA(sa)))
            failure = self.failureResultOf(self.addAddress(address, "eth1"), R.AddressRefused)
            self.assertIn("not an address a peer lends", str(failure.value))
        self.assertEqual(self.added, set())

    def test_heldUntilItsSA(self):
        """
        The worker's keeper holds an address the core lends before its
        Child SA is installed, and sends it right after the SA that has it
        as its local selector: the parent puts it on the interface before
        the flows (whose routes take it as their source).
        """
        keeper = RemoteAddresses(self.remote)
        keeper.add(self.VIP, "eth1")
        self.pump.flush()
        self.assertEqual(self.added, set())
        sa = self.vipSA()
        flow = KernelFlow(selector(str(self.VIP)), selector("10.2.0.0", "10.2.0.255"), "out", ESP, "tunnel",
                          ip_address("192.0.2.1"), ip_address("192.0.2.2"), 7)
        self.remote.addSA(sa)
        self.remote.addFlow(flow)
        self.pump.flush()
        self.assertEqual(list(self.service.kernel.log),
                         [("addSA", sa), ("addAddress", (self.VIP, "eth1")), ("addFlow", flow)])
        keeper.remove(self.VIP, "eth1")
        self.pump.flush()
        self.assertEqual(self.added, set())
        # Once the SA is there, an address goes at once.
        keeper.add(self.VIP, "eth1")
        self.pump.flush()
        self.assertEqual(self.added, {(self.VIP, "eth1")})

    def test_decoupleThenCouple(self):
        """
        C{ikectl decouple} and C{couple} in the worker: the parent takes a
        virtual address off after the flows whose routes have it as their
        source, and puts it back before them (right after the SA that has
        it as its local selector).
        """
        from twisted.internet import task

        from ikedtx.core.actions import AddVirtualAddress
        from ikedtx.net.shell import CoreRunner
        from tests.test_net_shell import FakeCore

        core = FakeCore()
        runner = CoreRunner(core, self.remote, task.Clock())
        runner.virtualAddresses = RemoteAddresses(self.remote)
        ours, theirs = selector(str(self.VIP)), selector("10.2.0.0", "10.2.0.255")
        sas = [self.vipSA(), self.vipSA(spi=0x87654321, inbound=False, source=ip_address("192.0.2.1"),
                                        destination=ip_address("192.0.2.2"))]
        flows = [KernelFlow(ours, theirs, "out", ESP, "tunnel", ip_address("192.0.2.1"), ip_address("192.0.2.2"), 7),
                 KernelFlow(theirs, ours, "in", ESP, "tunnel", ip_address("192.0.2.2"), ip_address("192.0.2.1"), 7)]
        core.ikeSAs = {b"spi": SimpleNamespace(children=[SimpleNamespace(kernelRecords=(sas, flows))])}
        runner.execute([AddVirtualAddress(self.VIP, "eth1")])
        for sa in sas:
            self.remote.addSA(sa)
        for flow in flows:
            self.remote.addFlow(flow)
        self.pump.flush()
        self.assertEqual(self.added, {(self.VIP, "eth1")})
        log = self.service.kernel.log
        log.clear()
        self.successResultOf(self.call(runner.decouple()))
        self.assertEqual(list(log), [("detachSA", sas[0]), ("detachSA", sas[1]), ("deleteFlow", flows[0]),
                                     ("deleteFlow", flows[1]), ("removeAddress", (self.VIP, "eth1"))])
        log.clear()
        self.successResultOf(self.call(runner.couple()))
        self.assertEqual(list(log), [("addSA", sas[0]), ("addAddress", (self.VIP, "eth1")), ("addSA", sas[1]),
                                     ("addFlow", flows[0]), ("addFlow", flows[1])])
        self.assertEqual(self.added, {(self.VIP, "eth1")})

    def test_workerGone(self):
        """
        When the worker dies the parent forgets its SAs and takes its
        addresses off their interfaces.
        """
        self.successResultOf(self.call(self.remote.addSA(self.vipSA())))
        self.successResultOf(self.addAddress(str(self.VIP), "eth1"))
        self.service.addresses.flush()
        self.assertEqual(self.added, set())
        self.failureResultOf(self.addAddress(str(self.VIP), "eth1"), R.AddressRefused)


class EspPortTests(SynchronousTestCase):
    def test_onlyEsp(self):
        """
        The parent's end of a NAT-T port hands ESP in UDP (RFC 3948 2.2: a
        non-zero SPI where IKE has its zero marker) to the user-space
        datapath, and drops what the kernel should have steered to the
        worker: IKE, keepalives, datagrams too short to tell.
        """
        from ikedtx.privsep.parent import EspPortProtocol

        class Datapath:
            def __init__(self):
                self.received = []

            def espReceived(self, data, remote, local):
                self.received.append((data, remote, local))

        datapath = Datapath()
        protocol = EspPortProtocol(datapath)
        remote, local = ("192.0.2.2", 4500), ("192.0.2.1", 4500)
        esp = b"\x00\x00\x01\x00" + b"e" * 28
        for data in (b"\0\0\0\0" + b"i" * 28, b"\xff", b"", b"\x01\x02", esp):
            protocol.packetReceived(data, remote, local)
        self.assertEqual(datapath.received, [(esp, remote, local)])


class SigningTests(SynchronousTestCase):
    def setUp(self):
        self.rsaKey = rsa.generate_private_key(65537, 2048)
        self.ecKey = ec.generate_private_key(ec.SECP256R1())

    def test_parseRequest(self):
        """
        Only the known schemes and hashes, a PSS salt for PSS only, data of
        at most MAX_SIGN_BYTES in hexadecimal.
        """
        ok = {"scheme": "pss", "hash": "sha256", "salt": 32, "data": "00"}
        self.assertEqual(parseRequest(ok), ("pss", "sha256", 32, b"\0"))
        for bad in (dict(ok, scheme="raw"), dict(ok, hash="md5"), dict(ok, salt=1000), dict(ok, data="zz"),
                    dict(ok, data="00" * (256 * 1024 + 1)), dict(ok, extra=1), dict(ok, scheme="pkcs1v15"),
                    dict(ok, scheme="pure"), []):
            self.assertRaises(SigningError, parseRequest, bad)

    def test_remoteKeySignsInParent(self):
        """
        The worker's remote key signs through the parent's key: the
        signature verifies with the public key; the remote key gives no
        private bytes.
        """
        calls = []

        class InProcess:
            def sign(signer, scheme, hashName, salt, data):
                calls.append(scheme)
                return signWith(self.rsaKey, *parseRequest(
                    {"scheme": scheme, "hash": hashName, "salt": salt, "data": data.hex()}))

        key = remoteKey(self.rsaKey.public_key(), InProcess())
        self.assertIsInstance(key, rsa.RSAPrivateKey)
        self.assertEqual(key.key_size, 2048)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(b"octets", pss, hashes.SHA256())
        self.rsaKey.public_key().verify(signature, b"octets", pss, hashes.SHA256())
        signature = key.sign(b"octets", padding.PKCS1v15(), hashes.SHA384())
        self.rsaKey.public_key().verify(signature, b"octets", padding.PKCS1v15(), hashes.SHA384())
        self.assertEqual(calls, ["pss", "pkcs1v15"])
        self.assertRaises(SigningError, key.private_bytes, serialization.Encoding.PEM,
                          serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def test_schemeMustFitKey(self):
        self.assertRaises(SigningError, signWith, self.ecKey, "pkcs1v15", "sha256", None, b"x")
        self.assertRaises(SigningError, signWith, None, "ecdsa", "sha256", None, b"x")

    def frame(self, obj):
        data = json.dumps(obj).encode()
        return struct.pack("!I", len(data)) + data

    def answers(self, transport):
        data, out = transport.value(), []
        while data:
            (n,) = struct.unpack("!I", data[:4])
            out.append(json.loads(data[4:4 + n]))
            data = data[4 + n:]
        return out

    def test_server(self):
        """
        The parent's server answers a good request with a signature that
        verifies, a bad one with an error, and closes the channel on a
        frame longer than MAX_FRAME.
        """
        server = SigningServer(lambda: self.ecKey)
        transport = StringTransport()
        server.makeConnection(transport)
        server.dataReceived(self.frame({"scheme": "ecdsa", "hash": "sha256", "salt": None, "data": "6869"}))
        server.dataReceived(self.frame({"scheme": "pss", "hash": "sha256", "salt": 32, "data": "6869"}))
        good, bad = self.answers(transport)
        self.ecKey.public_key().verify(bytes.fromhex(good["signature"]), b"hi", ec.ECDSA(hashes.SHA256()))
        self.assertIn("does not fit", bad["error"])
        server.dataReceived(struct.pack("!I", MAX_FRAME + 1))
        self.assertTrue(transport.disconnecting)


class Store:
    privateKey = None


class StateTests(SynchronousTestCase):
    def test_noPrivateKey(self):
        """
        The state for the worker carries the public half of the local key,
        never its private bytes; loaded, the key is a remote one.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        store = Store()
        store.privateKey = key
        secret = key.private_numbers().private_value.to_bytes(32, "big")
        data = dumpState({"config": 1}, {}, store)
        self.assertNotIn(secret, data)
        config, resolved, store = loadState(data, signer=None)
        self.assertIsInstance(store.privateKey, ec.EllipticCurvePrivateKey)
        self.assertNotIsInstance(store.privateKey, LocalKeyPlaceholder)
        self.assertEqual(store.privateKey.public_key(), key.public_key())


class SupervisorTests(SynchronousTestCase):
    def test_backoff(self):
        """
        Workers that die young wait longer each time (doubling up to the
        maximum); one that lived past 'stable' is replaced at once.
        """
        s = Supervisor(initial=0.5, maximum=4.0, stable=60.0)
        self.assertEqual([s.nextDelay(1.0) for _ in range(6)], [0.5, 1.0, 2.0, 4.0, 4.0, 4.0])
        self.assertEqual(s.nextDelay(61.0), 0.0)
        self.assertEqual(s.nextDelay(1.0), 0.5)

    def test_describeEnd(self):
        from twisted.internet.error import ProcessDone, ProcessTerminated

        self.assertEqual(describeEnd(ProcessTerminated(signal=9)), "signal KILL")
        self.assertEqual(describeEnd(ProcessTerminated(exitCode=1)), "exit status 1")
        self.assertEqual(describeEnd(ProcessDone(0)), "exit status 0")



class ControlGateTests(TestCase):
    """
    The parent's gate of a control socket (real UNIX sockets, the real
    reactor, a L{task.Clock} for the wait): a command sent while no worker
    is ready is answered once one is, or refused with a clear error after
    the bounded wait; it never hangs.
    """

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.clock = task.Clock()
        self.path = os.path.join(self.mktemp() + ".d", "c.sock")
        os.makedirs(os.path.dirname(self.path))
        self.listening = bindControlSocket(self.path, 0o600)
        self.addCleanup(self.listening.close)
        self.gate = ControlGate(reactor, self.listening, self.path, False, clock=self.clock)
        self.addCleanup(self.gate.stop)
        self.gate.open("the daemon is starting")

    def connect(self):
        """
        An AMP client of the control socket; fires with it.
        """
        from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol

        client = amp.AMP()
        d = connectProtocol(UNIXClientEndpoint(self.reactor, self.path), client)

        def connected(p):
            self.addCleanup(lambda: p.transport and p.transport.loseConnection())
            return p

        return d.addCallback(connected)

    def until(self, condition):
        d = defer.Deferred()

        def check():
            if condition():
                d.callback(None)
            else:
                self.reactor.callLater(0.01, check)

        check()
        return d

    @defer.inlineCallbacks
    def test_refusedAfterTheWait(self):
        """
        No worker within L{ControlGate.wait}: the command gets
        C{COMMAND_FAILED} "the daemon is starting", which ikectl prints.
        """
        client = yield self.connect()
        answer = client.callRemote(CC.ShowStats)
        yield self.until(lambda: self.gate.held)
        self.assertNoResult(answer)
        self.clock.advance(self.gate.wait - 0.1)
        self.assertNoResult(answer)
        self.clock.advance(0.1)
        self.assertEqual(self.gate.held, [])
        error = yield self.assertFailure(answer, CC.CommandFailed)
        self.assertIn("the daemon is starting", str(error))

    @defer.inlineCallbacks
    def test_restartingRefusal(self):
        """
        The gate opened again after a worker died says so.
        """
        self.gate.handOff(lambda skt, readOnly: defer.succeed(None))
        self.gate.open("the worker is restarting")
        client = yield self.connect()
        answer = client.callRemote(CC.ShowStats)
        yield self.until(lambda: self.gate.held)
        self.clock.advance(self.gate.wait)
        error = yield self.assertFailure(answer, CC.CommandFailed)
        self.assertIn("the worker is restarting", str(error))

    @defer.inlineCallbacks
    def test_handedToTheReadyWorker(self):
        """
        A worker ready within the wait gets the held connection, unread,
        and answers its command; the gate stops accepting.
        """
        served = []

        class Worker(amp.AMP):
            @CC.ShowStats.responder
            def showStats(self):
                served.append(True)
                return {"counters": [{"name": "ikes_sa_created", "value": 3}], "passive": False, "coupled": True,
                        "verbose": False}

        def adopt(skt, readOnly):
            self.reactor.adoptStreamConnection(skt.fileno(), socket.AF_UNIX,
                                               Factory.forProtocol(Worker))
            return defer.succeed(None)

        client = yield self.connect()
        answer = client.callRemote(CC.ShowStats)
        yield self.until(lambda: self.gate.held)
        self.gate.handOff(adopt)
        self.assertFalse(self.gate.reading)
        self.assertEqual(self.gate.held, [])
        result = yield answer
        self.assertEqual((result["counters"], served), ([{"name": "ikes_sa_created", "value": 3}], [True]))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def unread(self):
        """
        Whether the held connection has its request waiting, unread.
        """
        (skt, _), = self.gate.held
        try:
            return bool(skt.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False

    @defer.inlineCallbacks
    def test_heldAgainWhenTheHandOffFails(self):
        """
        A worker that dies before it took a held connection: the connection
        waits for the next (or its refusal), it is not dropped.
        """
        client = yield self.connect()
        answer = client.callRemote(CC.ShowStats)
        yield self.until(lambda: self.gate.held and self.unread())
        self.gate.handOff(lambda skt, readOnly: defer.fail(ValueError("no worker")))
        self.assertEqual(len(self.gate.held), 1)
        self.clock.advance(self.gate.wait)
        yield self.assertFailure(answer, CC.CommandFailed)

    @defer.inlineCallbacks
    def test_closedWhenTheDeadWorkerReadIt(self):
        """
        A worker that read the held connection's request and died before it
        said it took it: the connection is closed at once (the client sees
        it dropped unanswered), not held for an answer that cannot come.
        """
        client = yield self.connect()
        answer = client.callRemote(CC.ShowStats)
        yield self.until(lambda: self.gate.held and self.unread())

        def readThenDie(skt, readOnly):
            skt.recv(65536)
            return defer.fail(ValueError("worker died"))

        self.gate.handOff(readThenDie)
        self.assertEqual(self.gate.held, [])
        yield self.assertFailure(answer, ConnectionDone, ConnectionLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_heldConnectionsBounded(self):
        """
        Past L{gate.MAX_HELD} held connections, another is refused at once
        (the parent holds no more descriptors than that), and a refused
        connection is closed after its answer.
        """
        from ikedtx.privsep import gate

        self.patch(gate, "MAX_HELD", 1)
        first = yield self.connect()
        waiting = first.callRemote(CC.ShowStats)
        yield self.until(lambda: self.gate.held)
        second = yield self.connect()
        error = yield self.assertFailure(second.callRemote(CC.ShowStats), CC.CommandFailed)
        self.assertIn("the daemon is starting", str(error))
        yield self.until(lambda: second.transport is None)
        self.assertEqual(len(self.gate.held), 1)
        self.assertNoResult(waiting)
        self.clock.advance(self.gate.wait)
        yield self.assertFailure(waiting, CC.CommandFailed)


class BatchEncodingTests(SynchronousTestCase):
    """
    L{R.encodeBatch} and L{R.decodeBatch}: several records in one command,
    framed strictly.
    """

    def test_roundTrip(self):
        operations = [("addSA", R.encodeSA(anSA())), ("addFlow", R.encodeFlow(aFlow())),
                      ("deleteFlow", b""), ("detachSA", b"x" * 300), ("deleteSA", b"{}")]
        self.assertEqual(R.decodeBatch(R.encodeBatch(operations)), operations)

    def assertRefused(self, data, reason):
        with self.assertRaises(R.RecordError) as caught:
            R.decodeBatch(data)
        self.assertIn(reason, str(caught.exception))

    def test_malformedRefused(self):
        """
        An unknown operation, a truncated header, a record longer than the
        rest, no operation, too many operations or too many bytes: refused
        whole, with the reason.
        """
        good = R.encodeBatch([("addFlow", b"{}")])
        self.assertRefused(b"\x09\x00\x00", "operation 0: unknown code 9")
        self.assertRefused(b"\x00\x00\x00", "unknown code 0")
        self.assertRefused(good + b"\x04\x00", "operation 1: truncated header")
        self.assertRefused(good + b"\x04\x00\x05abcd", "operation 1: record of 5 bytes, 4 left")
        self.assertRefused(b"", "empty batch")
        self.assertRefused(good * (R.MAX_BATCH_OPS + 1), "more than %d operations" % (R.MAX_BATCH_OPS,))
        self.assertRefused(b"\x04\x00\x00" * (R.MAX_BATCH_BYTES // 3 + 1), "at most %d" % (R.MAX_BATCH_BYTES,))
        self.assertEqual(len(R.decodeBatch(good * R.MAX_BATCH_OPS)), R.MAX_BATCH_OPS)


class BatchChannelTests(ChannelTests):
    """
    The worker's L{RemoteKernel} with a reactor: the SAs and flows of one
    turn reach the parent in one L{C.Batch}, each with its own outcome.
    """

    def setUp(self):
        ChannelTests.setUp(self)
        self.clock = task.Clock()
        self.remote = RemoteKernel("decoupled", self.client, reactor=self.clock)
        self.boxes = []
        dispatch = self.server.ampBoxReceived
        self.server.ampBoxReceived = lambda box: (self.boxes.append(box.get(b"_command")), dispatch(box))[1]

    def call(self, d):
        self.clock.advance(0)
        return ChannelTests.call(self, d)

    def test_oneBoxPerTurn(self):
        """
        An SA and two flows issued in one turn wait for its end and go as
        one box; the parent's datapath gets them in order.
        """
        sa, flow = anSA(), aFlow()
        other = KernelFlow(aFlow().destination, aFlow().source, "in", ESP, "tunnel", ip_address("192.0.2.1"),
                           ip_address("192.0.2.2"), 7)
        outcomes = []
        for d in (self.remote.addSA(sa), self.remote.addFlow(flow), self.remote.addFlow(other)):
            d.addBoth(outcomes.append)
        self.pump.flush()
        self.assertEqual((self.boxes, outcomes), ([], []))
        self.clock.advance(0)
        self.pump.flush()
        self.assertEqual(self.boxes, [b"Batch"])
        self.assertEqual(outcomes, [None, None, None])
        self.assertEqual([entry[0] for entry in self.service.kernel.log], ["addSA", "addFlow", "addFlow"])
        self.assertEqual(self.service.kernel.flows, [flow, other])
        self.assertEqual(self.service.installed, {sa.spi})

    def test_otherCommandSendsBatchFirst(self):
        """
        A command that is not batched goes after the operations issued
        before it.
        """
        sa = anSA()
        self.remote.addSA(sa)
        d = self.remote.querySA(sa)
        self.pump.flush()
        self.assertEqual(self.boxes, [b"Batch", b"QuerySA"])
        self.assertEqual(self.successResultOf(d).packets, 0)

    def test_errorsPerOperation(self):
        """
        A datapath failure fails its own operation as a KernelError; the
        others of the batch succeed.
        """
        self.service.kernel.addFlow = lambda flow: fail(KernelError("no room for flow"))
        first, second = self.remote.addSA(anSA()), self.remote.addFlow(aFlow())
        third = self.remote.deleteSA(anSA())
        self.clock.advance(0)
        self.pump.flush()
        self.assertIsNone(self.successResultOf(first))
        self.assertIn("no room for flow", str(self.failureResultOf(second, KernelError).value))
        self.assertIsNone(self.successResultOf(third))
        self.assertEqual(self.boxes, [b"Batch"])

    def test_datapathAnswersLater(self):
        """
        A batch with an operation the datapath answers later is answered
        once that operation is done, each outcome in its place.
        """
        later = defer.Deferred()
        self.service.kernel.addFlow = lambda flow: later
        first, second, third = self.remote.addSA(anSA()), self.remote.addFlow(aFlow()), self.remote.addSA(
            anSA(spi=0x2345))
        self.clock.advance(0)
        self.pump.flush()
        self.assertNoResult(second)
        self.assertNoResult(first)
        later.errback(KernelError("no room for flow"))
        self.pump.flush()
        self.assertIsNone(self.successResultOf(first))
        self.assertIn("no room for flow", str(self.failureResultOf(second, KernelError).value))
        self.assertIsNone(self.successResultOf(third))

    def test_badRecordInBatch(self):
        """
        A record of a batch that does not decode is refused alone, with
        BAD_RECORD and its reason; the datapath does not see it.
        """
        ops = R.encodeBatch([("addSA", R.encodeSA(anSA())[:-1]), ("addFlow", R.encodeFlow(aFlow()))])
        answer = self.successResultOf(self.call(self.client.callRemote(C.Batch, ops=ops)))
        code, _tab, text = answer["errors"][0].partition("\t")
        self.assertEqual((code, answer["errors"][1]), ("BAD_RECORD", ""))
        self.assertIn("truncated", text)
        self.assertEqual([entry[0] for entry in self.service.kernel.log], ["addFlow"])

    def test_malformedBatchRefused(self):
        """
        A batch that does not frame is refused whole with BAD_RECORD and
        its reason; nothing reaches the datapath.
        """
        good = R.encodeFlow(aFlow())
        ops = R.encodeBatch([("addFlow", good)]) + b"\x07\x00\x00"
        failure = self.failureResultOf(self.call(self.client.callRemote(C.Batch, ops=ops)), R.RecordError)
        self.assertIn("unknown code 7", str(failure.value))
        self.assertEqual(self.service.kernel.log, type(self.service.kernel.log)())

    def test_manyOperationsSplit(self):
        """
        More operations than one batch holds go in several, in order.
        """
        flows = [KernelFlow(selector("10.1.0.%d" % (i,)), selector("10.2.0.1"), "out", ESP, "tunnel",
                            ip_address("192.0.2.1"), ip_address("192.0.2.2"), 7)
                 for i in range(1, R.MAX_BATCH_OPS + 11)]
        ds = [self.remote.addFlow(flow) for flow in flows]
        self.clock.advance(0)
        self.pump.flush()
        self.assertEqual(self.boxes, [b"Batch", b"Batch"])
        self.assertEqual([self.successResultOf(d) for d in ds], [None] * len(flows))
        self.assertEqual(self.service.kernel.flows, flows)


class BatchedAddressCommandTests(AddressCommandTests):
    """
    L{AddressCommandTests} with the SAs and flows batched: a virtual
    address still goes after the SA that has it and before its flows, and
    comes off after the flows.
    """

    def setUp(self):
        AddressCommandTests.setUp(self)
        self.clock = task.Clock()
        self.remote = RemoteKernel("xfrm", self.client, reactor=self.clock)
        flush = self.pump.flush

        def endOfTurn(*args, **kwargs):
            self.clock.advance(0)
            return flush(*args, **kwargs)

        self.pump.flush = endOfTurn


class SpiBlockTests(SynchronousTestCase):
    """
    Inbound SPIs lent to the worker in blocks ahead of need (L{C.AllocateSpis})
    where the parent's datapath allows it: each reserved in the datapath,
    lent until an inbound SA installs it or the worker gives it back, and
    released when the worker's channel ends or it flushes.
    """

    def setUp(self):
        self.service = _Service()
        self.client, self.server, self.pump = connectedServerAndClient(
            lambda: WorkerCommands(self.service), amp.AMP)
        self.clock = task.Clock()
        self.remote = RemoteKernel("decoupled", self.client, reactor=self.clock, spiBlocks=True)
        self.boxes = []
        dispatch = self.server.ampBoxReceived
        self.server.ampBoxReceived = lambda box: (self.boxes.append(box.get(b"_command")), dispatch(box))[1]

    def allocate(self, protocol=ESP):
        d = self.remote.allocateSpi(protocol, ip_address("192.0.2.2"), ip_address("192.0.2.1"))
        self.clock.advance(0)
        self.pump.flush()
        return self.successResultOf(d)

    def reserved(self):
        return {spi for _protocol, spi in self.service.kernel._reserved}

    def test_blockAheadOfNeed(self):
        """
        The first SPI costs one AllocateSpis; the next ones are answered at
        once from the block, each reserved in the parent's datapath and
        lent, until the stock falls to SPI_LOW and one more block is asked.
        """
        from ikedtx.privsep.workerservice import SPI_BLOCK, SPI_LOW

        first = self.allocate()
        self.assertEqual(self.boxes, [b"AllocateSpis"])
        self.assertEqual(len(self.server.lent), SPI_BLOCK)
        self.assertEqual(self.reserved(), {spi for _p, spi in self.server.lent})
        self.assertIn((ESP, first), self.server.lent)
        spis = [first]
        for _ in range(SPI_BLOCK - SPI_LOW - 2):
            d = self.remote.allocateSpi(ESP, ip_address("192.0.2.2"), ip_address("192.0.2.1"))
            spis.append(self.successResultOf(d))
        self.assertEqual(self.boxes, [b"AllocateSpis"])
        spis.append(self.allocate())
        self.assertEqual(self.boxes, [b"AllocateSpis", b"AllocateSpis"])
        self.assertEqual(len(set(spis)), len(spis))
        self.assertTrue(all(spi > 255 for spi in spis))
        self.assertEqual(len(self.server.lent), 2 * SPI_BLOCK)

    def test_installedOrReleasedNoLongerLent(self):
        """
        An inbound SA with a lent SPI ends its loan; so does the DeleteSA
        that gives back an SPI no SA used (ReleaseSpi): the datapath no
        longer holds it reserved.
        """
        used, unused = self.allocate(), self.allocate()
        self.remote.addSA(anSA(spi=used))
        self.remote.deleteSA(anSA(spi=unused, encryptionKey=b"", encryption=None, selectors=()))
        self.clock.advance(0)
        self.pump.flush()
        self.assertNotIn((ESP, used), self.server.lent)
        self.assertNotIn((ESP, unused), self.server.lent)
        self.assertNotIn(unused, self.reserved())

    def test_releasedWhenChannelEnds(self):
        """
        The SPIs the worker still holds when its channel ends go back to the
        datapath.
        """
        self.allocate()
        self.assertTrue(self.reserved())
        self.server.transport.loseConnection()
        self.pump.flush()
        self.assertEqual((self.reserved(), self.server.lent), (set(), set()))

    def test_flushTakesBack(self):
        """
        A flush takes back what was lent; a block the parent answered
        before the flush is not used afterwards: the worker asks for a new
        one.
        """
        self.allocate()
        self.remote._spis[ESP].clear()
        late = self.remote.allocateSpi(ESP, ip_address("192.0.2.2"), ip_address("192.0.2.1"))
        self.remote.flush()
        self.clock.advance(0)
        self.pump.flush()
        self.assertEqual(self.boxes, [b"AllocateSpis", b"AllocateSpis", b"Flush", b"AllocateSpis"])
        spi = self.successResultOf(late)
        held = set(self.remote._spis[ESP]) | {spi}
        self.assertEqual({(ESP, s) for s in held}, self.server.lent)
        self.assertEqual({s for _p, s in self.server.lent}, self.reserved())

    def test_ipcompOneAtATime(self):
        """
        An IPcomp CPI (protocol none) is still asked for alone.
        """
        self.allocate(0)
        self.assertEqual(self.boxes, [b"AllocateSpi"])

    def test_refused(self):
        """
        The parent refuses a block for a datapath whose SPIs depend on the
        addresses, for a protocol other than AH or ESP, of a count out of
        1-64, and beyond MAX_LENT_SPIS held; nothing is reserved.
        """
        def ask(protocol=ESP, count=4):
            # Caught before the pump: AMP drops a connection whose failures
            # reach the end of the chain.
            outcome = []
            self.client.callRemote(C.AllocateSpis, protocol=protocol, count=count).addBoth(outcome.append)
            self.pump.flush()
            return fail(outcome[0]) if isinstance(outcome[0], Failure) else succeed(outcome[0])

        for protocol, count, text in ((0, 4, "protocol"), (50, 4, "protocol"), (ESP, 0, "count"),
                                      (ESP, C.MAX_SPI_BLOCK + 1, "count")):
            self.assertIn(text, str(self.failureResultOf(ask(protocol, count), R.RecordError).value))
        self.assertEqual(self.reserved(), set())
        for _ in range(C.MAX_LENT_SPIS // C.MAX_SPI_BLOCK):
            self.successResultOf(ask(count=C.MAX_SPI_BLOCK))
        self.assertIn("at most %d" % (C.MAX_LENT_SPIS,), str(self.failureResultOf(ask(count=1), KernelError).value))
        self.assertEqual(len(self.reserved()), C.MAX_LENT_SPIS)
        self.service.kernel.spiBlocks = False
        self.assertIn("AllocateSpi", str(self.failureResultOf(ask(), R.RecordError).value))

    def test_refusalFailsTheWaiting(self):
        """
        When the parent refuses a block, the allocations waiting for it
        fail with its error.
        """
        self.service.kernel.spiBlocks = False
        d = self.remote.allocateSpi(ESP, ip_address("192.0.2.2"), ip_address("192.0.2.1"))
        self.clock.advance(0)
        self.pump.flush()
        self.failureResultOf(d, R.RecordError)


class WorkerLogTests(SynchronousTestCase):
    """
    The worker's log lines (ikedtx.privsep.worker._logObserver): the lines
    of one reactor turn reach the parent in one write at its end; a
    warning or worse goes at once, with the lines before it.
    """

    class Out:
        def __init__(self):
            self.written, self.flushed = [], []

        def write(self, data):
            self.written.append(data)

        def flush(self):
            self.flushed.append("".join(self.written))
            self.written = []

    def setUp(self):
        from twisted.logger import Logger, LogPublisher

        from ikedtx.privsep.worker import _logObserver
        from twisted.logger import LogLevel

        self.clock = task.Clock()
        self.clock.running = True
        self.out = self.Out()
        publisher = LogPublisher(_logObserver(LogLevel.info, self.clock, self.out))
        self.log = Logger(namespace="test", observer=publisher)

    def test_oneWritePerTurn(self):
        """
        Info lines of one reactor turn go in one write at its end.
        """
        self.log.info("IKE SA {n}: established", n=1)
        self.log.debug("not at info level")
        self.log.info("Child SA {n} up", n=1)
        self.assertEqual(self.out.flushed, [])
        self.clock.advance(0)
        self.assertEqual(self.out.flushed, ["info\tIKE SA 1: established\ninfo\tChild SA 1 up\n"])
        self.log.info("second\nturn")
        self.clock.advance(0)
        self.assertEqual(self.out.flushed[1:], ["info\tsecond\ninfo\tturn\n"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_warningAtOnce(self):
        self.log.info("first")
        self.log.warn("then {what}", what="trouble")
        self.assertEqual(self.out.flushed, ["info\tfirst\nwarn\tthen trouble\n"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_reactorNotRunning(self):
        self.clock.running = False
        self.log.info("before the reactor runs")
        self.assertEqual(self.out.flushed, ["info\tbefore the reactor runs\n"])

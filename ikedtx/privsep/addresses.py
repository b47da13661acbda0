# -*- test-case-name: tests.test_privsep_commands -*-
"""
Virtual addresses under privilege separation: a road-warrior client's
address, lent by the peer in a configuration payload (RFC 7296 2.19), goes
on an interface, which needs CAP_NET_ADMIN: the parent does it for the
worker (C{AddAddress}, C{RemoveAddress}), after checks that keep a
compromised worker from putting an arbitrary address on an arbitrary
interface.

L{AddressGuard} is the parent's side: it knows the SAs the current worker
installed and the configuration, and puts an address on an interface only
when
 - the address is a unicast host address (not unspecified, loopback,
   multicast or link-local),
 - an installed SA has exactly that address as its local selector (the
   Child SA the peer lent it for),
 - the interface is one a policy that requests an address names with
   C{iface}, or the datapath's own (the TUN device of the user-space
   datapath, else C{lo}) when such a policy names none.
Routes need no command: the datapath in the parent routes the flows.

L{RemoteAddresses} is the worker's side, the runner's keeper of virtual
addresses (L{ikedtx.kernel.vips}'s C{add}/C{remove}).
"""

from ipaddress import ip_address

from twisted.logger import Logger

from ikedtx.kernel import vips
from ikedtx.privsep import commands as C
from ikedtx.privsep.records import AddressRefused, RecordError

#: The longest interface name Linux takes (IFNAMSIZ less the NUL).
MAX_INTERFACE = 15


def parseAddress(text):
    """
    The C{ipaddress} address of the worker's C{text}.

    @raise RecordError: it is not an address.
    """
    if type(text) is not str or not 0 < len(text) <= 45:
        raise RecordError("address: not an address")
    try:
        return ip_address(text)
    except ValueError:
        raise RecordError("address: not an address: %r" % (text,))


def parseInterface(text):
    """
    The interface name C{text}, if it can be one.

    @raise RecordError: it cannot (empty, too long, a path, spaces).
    """
    if (type(text) is not str or not 0 < len(text) <= MAX_INTERFACE or text in (".", "..")
            or not all(c.isascii() and c.isprintable() and c not in "/: " for c in text)):
        raise RecordError("interface: not an interface name: %r" % (text,))
    return text


def datapathInterface(kernel):
    """
    Where datapath C{kernel} puts a virtual address no C{iface} places: its
    TUN device, else C{lo} (L{vips.interfaceFor} without opening the
    device).
    """
    device = getattr(kernel, "device", None)
    name = getattr(device, "name", None)
    return name if name else "lo"


def requestingInterfaces(config, kernel):
    """
    The interfaces the policies of C{config} that request an address put it
    on.
    """
    names = set()
    for policy in config.policies:
        if any(option.request and option.kind == "address" for option in policy.configOptions):
            names.add(policy.iface or datapathInterface(kernel))
    return names


def hostSelector(selector):
    """
    The one address C{selector} (a L{KernelSelector}) covers, or L{None}.
    """
    if selector.startAddress == selector.endAddress:
        return selector.startAddress
    return None


class AddressGuard:
    """
    The parent's keeper of the worker's virtual addresses.

    @ivar keeper: what changes the interfaces (L{vips.addressesFor}).
    @ivar sas: C{{(spi, destination, protocol): KernelSA}}: the SAs the
        current worker has in the datapath.
    """

    _log = Logger()

    def __init__(self, kernel, config, keeper=None):
        self.kernel = kernel
        self.config = config
        self.keeper = keeper if keeper is not None else vips.addressesFor(kernel, True)
        self.sas = {}

    # The worker's SAs

    @staticmethod
    def _key(sa):
        return (sa.spi, sa.destination, sa.protocol)

    def installed(self, sa):
        self.sas[self._key(sa)] = sa

    def removed(self, sa):
        self.sas.pop(self._key(sa), None)

    def _localAddresses(self):
        return {hostSelector(ours) for sa in self.sas.values() for ours, _theirs in sa.selectors} - {None}

    # Commands

    def check(self, address, interface):
        """
        C{(address, interface)} parsed, if the parent may put them together.

        @raise RecordError: an argument is malformed.
        @raise AddressRefused: the address is not the local selector of an
            SA of the worker, or not for that interface.
        """
        address, interface = parseAddress(address), parseInterface(interface)
        if address.is_unspecified or address.is_loopback or address.is_multicast or address.is_link_local:
            raise AddressRefused("%s is not an address a peer lends" % (address,))
        if address not in self._localAddresses():
            raise AddressRefused("no SA has %s as its local selector" % (address,))
        allowed = requestingInterfaces(self.config, self.kernel)
        if interface not in allowed:
            raise AddressRefused("%s is not the interface of a policy that requests an address (%s)" % (
                interface, ", ".join(sorted(allowed)) or "none"))
        return address, interface

    def add(self, address, interface):
        """
        Put the worker's C{address} on C{interface} once L{check} allows it.

        @raise KernelError: the interface refused it.
        """
        address, interface = self.check(address, interface)
        if interface == datapathInterface(self.kernel):
            # The TUN device exists once asked for.
            vips.interfaceFor(self.kernel, None)
        self.keeper.add(address, interface)
        self._log.info("virtual address {address} on {interface} (for the worker)", address=address,
                       interface=interface)

    def remove(self, address, interface):
        """
        Take C{address} off C{interface} if the parent put it there.
        """
        self.keeper.remove(parseAddress(address), parseInterface(interface))

    def flush(self):
        """
        The worker is gone: its SAs are, and its addresses go.
        """
        self.sas = {}
        for address, interface in list(self.keeper.added):
            try:
                self.keeper.remove(address, interface)
            except Exception as e:
                self._log.error("removing virtual address {address} from {interface}: {error}", address=address,
                                interface=interface, error=e)


class RemoteAddresses:
    """
    The worker's keeper of virtual addresses: C{AddAddress} and
    C{RemoveAddress} to the parent.

    The core lends an address as IKE_AUTH's answer is read, before the
    Child SA that uses it is installed; the parent wants that SA first. So
    an address waits (L{held}) until L{RemoteKernel.addSA} has sent an SA
    whose local selector it is, and is sent right after that SA: before
    the flows, whose routes take it as their source address.

    @ivar kernel: the worker's L{RemoteKernel}.
    @ivar added: C{{(address, interface)}} the core wants on interfaces.
    @ivar held: C{{(address, interface)}} of those not sent yet.
    """

    _log = Logger()

    def __init__(self, kernel):
        self.kernel = kernel
        self.added = set()
        self.held = set()
        kernel.addressesWaiting = self

    def add(self, address, interface):
        key = (ip_address(address), interface)
        self.added.add(key)
        if key[0] in self.kernel.localAddresses:
            self._send(C.AddAddress, *key)
        else:
            self.held.add(key)

    def remove(self, address, interface):
        key = (ip_address(address), interface)
        if key not in self.added:
            return
        self.added.discard(key)
        if key in self.held:
            self.held.discard(key)
            return
        self._send(C.RemoveAddress, *key)

    def localSent(self, addresses):
        """
        An SA with these local host addresses went to the parent: the held
        addresses among them follow.
        """
        for key in sorted(self.held, key=str):
            if key[0] in addresses:
                self.held.discard(key)
                self._send(C.AddAddress, *key)

    def _send(self, command, address, interface):
        # After the SAs and flows waiting in the kernel's batch.
        self.kernel.sendBatch()
        d = self.kernel.channel.callRemote(command, address=str(address), interface=interface)
        what = "putting" if command is C.AddAddress else "removing"
        d.addErrback(lambda f: self._log.error("{what} virtual address {address} on {interface}: {error}", what=what,
                                               address=address, interface=interface, error=f.getErrorMessage()))
        return d

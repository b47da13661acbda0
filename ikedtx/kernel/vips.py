# -*- test-case-name: tests.test_kernel_vips -*-
"""
Virtual IP addresses a road-warrior client received in a configuration
payload (RFC 7296 2.19), put on an interface while their IKE SA lives: the
policy's C{iface} when it names one, else the user-space datapath's TUN
device, else C{lo} (as strongSwan's kernel-netlink does with
C{install_virtual_ip_on}). A decoupled datapath only records them.
"""

import errno
from ipaddress import ip_address

from twisted.logger import Logger

from ikedtx.kernel.interfaces import KernelError


def interfaceFor(kernel, interface):
    """
    The interface a virtual address goes on with datapath C{kernel} when the
    policy names C{interface} (or L{None}).
    """
    if interface:
        return interface
    chooser = getattr(kernel, "virtualAddressInterface", None)
    return (chooser() if chooser is not None else None) or "lo"


class NetlinkAddresses:
    """
    Addresses added and removed through pyroute2's C{IPRoute}, as host
    addresses (/32, /128), so that no route for the whole pool appears.

    @ivar added: C{{(address, interface)}} currently added by us.
    """

    _log = Logger()

    def __init__(self, netns=None):
        self.netns = netns
        self.added = set()

    def _ipr(self):
        from pyroute2 import IPRoute

        return IPRoute(netns=self.netns) if self.netns else IPRoute()

    def _change(self, command, address, interface):
        from pyroute2.netlink.exceptions import NetlinkError

        address = ip_address(address)
        with self._ipr() as ipr:
            links = ipr.link_lookup(ifname=interface)
            if not links:
                raise KernelError("no interface %s for virtual address %s" % (interface, address))
            try:
                ipr.addr(command, index=links[0], address=str(address), prefixlen=address.max_prefixlen)
            except NetlinkError as e:
                ignorable = errno.EEXIST if command == "add" else errno.EADDRNOTAVAIL
                if e.code != ignorable:
                    raise KernelError("%s virtual address %s on %s: %s" % (command, address, interface, e))

    def add(self, address, interface):
        self._change("add", address, interface)
        self.added.add((ip_address(address), interface))

    def remove(self, address, interface):
        key = (ip_address(address), interface)
        if key not in self.added:
            return
        self.added.discard(key)
        self._change("del", address, interface)


class RecordedAddresses:
    """
    What a decoupled datapath does with virtual addresses: remembers them.

    @ivar added: C{{(address, interface)}}.
    """

    def __init__(self):
        self.added = set()

    def add(self, address, interface):
        self.added.add((ip_address(address), interface))

    def remove(self, address, interface):
        self.added.discard((ip_address(address), interface))


def addressesFor(kernel, coupled):
    """
    The keeper of virtual addresses for datapath C{kernel}.
    """
    if not coupled or getattr(kernel, "name", None) == "decoupled":
        return RecordedAddresses()
    return NetlinkAddresses()

# -*- test-case-name: tests.test_config_parser -*-
"""
Names in iked.conf that the system resolves when the file is read: host
addresses (interface names, numeric addresses, host names), ports
(/etc/services), IP protocols (/etc/protocols) and interfaces.

Each lookup goes through the same C library call iked makes, with the same
flags, so that a name means the same thing to both.

This is ikedtx's one name resolver.  L{lookupName} blocks (getaddrinfo): it
is for start-up, before the reactor runs, and for the parser, which a
reload runs in a thread.  Once the daemon runs, host names are resolved
with L{resolveNamesLater} through the reactor's L{IHostnameResolver}
(twisted's getaddrinfo in a thread pool), so the reactor never blocks.
"""

import ctypes
import ctypes.util
import re
import socket
from ipaddress import ip_address

from twisted.internet import defer
from twisted.internet.interfaces import IResolutionReceiver
from zope.interface import implementer

from ikedtx.config.model import HostAddress


class HostError(Exception):
    """
    A host specification does not resolve; the message says why.
    """


class _Sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 26)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [
    ("next", ctypes.POINTER(_Ifaddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("addr", ctypes.POINTER(_Sockaddr)),
    ("netmask", ctypes.POINTER(_Sockaddr)),
    ("ifu", ctypes.c_void_p),
    ("data", ctypes.c_void_p),
]


class _Protoent(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("aliases", ctypes.c_void_p), ("proto", ctypes.c_int)]


_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.getifaddrs.argtypes = [ctypes.POINTER(ctypes.POINTER(_Ifaddrs))]
        _libc.freeifaddrs.argtypes = [ctypes.POINTER(_Ifaddrs)]
        _libc.getprotobynumber.restype = ctypes.POINTER(_Protoent)
        _libc.getprotobynumber.argtypes = [ctypes.c_int]
    return _libc


def _decode(raw):
    return raw.decode("utf-8", "surrogateescape")


def interfaceAddresses():
    """
    Every (interface name, address) pair of the host, in getifaddrs() order,
    IPv4 and IPv6 only.
    """
    libc = _c()
    head = ctypes.POINTER(_Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        return []
    result = []
    try:
        node = head
        while node:
            entry = node.contents
            if entry.addr:
                family = entry.addr.contents.family
                raw = bytes(entry.addr.contents.data)
                if family == socket.AF_INET:
                    result.append((_decode(entry.name), ip_address(raw[2:6])))
                elif family == socket.AF_INET6:
                    result.append((_decode(entry.name), ip_address(raw[6:22])))
            node = entry.next
    finally:
        libc.freeifaddrs(head)
    return result


def interfaceExists(name):
    """
    Whether the host has an interface called C{name}.
    """
    return any(n == name for _, n in socket.if_nameindex())


def _hostFromInterface(name):
    """
    iked's host_if(): the addresses of interface C{name} as single hosts,
    IPv6 link-local addresses left out; L{None} if there is no such
    interface.
    """
    if not interfaceExists(name):
        return None
    found = []
    for ifname, address in interfaceAddresses():
        if ifname != name:
            continue
        if address.version == 6 and address.is_link_local:
            continue
        found.append(HostAddress(address, address.max_prefixlen, False))
    return found


def lookupName(name, socktype=socket.SOCK_DGRAM, flags=0):
    """
    Every IPv4 and IPv6 address getaddrinfo() gives host C{name}, in its
    order; empty if it does not resolve.  This blocks: use
    it at start-up or off the reactor thread (see L{resolveNamesLater}).
    """
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socktype, 0, flags)
    except (socket.gaierror, UnicodeError, ValueError):
        return []
    found = []
    for info in infos:
        if info[0] in (socket.AF_INET, socket.AF_INET6):
            found.append(_addressOf(info))
    return found


@implementer(IResolutionReceiver)
class _Addresses:
    """
    Collects what an L{IHostnameResolver} finds for one name.

    @ivar deferred: fires with the list of addresses when it is complete.
    """

    def __init__(self):
        self.found = []
        self.deferred = defer.Deferred()

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self.found.append(ip_address(address.host))

    def resolutionComplete(self):
        self.deferred.callback(self.found)


def resolveNamesLater(resolver, names):
    """
    Resolve host C{names} without blocking, through C{resolver} (an
    L{IHostnameResolver}: C{reactor.nameResolver}).

    @return: a Deferred firing with a dict name -> list of addresses (an
        empty list for a name that does not resolve).
    """
    names = list(dict.fromkeys(names))
    lookups = []
    for name in names:
        receiver = _Addresses()
        resolver.resolveHostName(receiver, name, 0, None, "UDP")
        lookups.append(receiver.deferred)
    d = defer.gatherResults(lookups)
    d.addCallback(lambda results: dict(zip(names, results)))
    return d


def policyNames(config):
    """
    The host names that C{config}'s policies give as peer or local (which
    the core matches by the addresses they resolve to).
    """
    names = []
    for policy in config.policies:
        for name in (policy.peer, policy.local):
            if isinstance(name, str) and name not in names:
                names.append(name)
    return names


def resolvePolicyNames(config):
    """
    Resolve the names of L{policyNames}, once, when the configuration is
    loaded (as iked does when it parses it).  This blocks: at start-up only.
    """
    return {name: lookupName(name) for name in policyNames(config)}


def resolvePolicyNamesLater(config, resolver):
    """
    L{resolvePolicyNames} without blocking, through C{resolver} (an
    L{IHostnameResolver}), for a configuration loaded while the daemon runs.
    """
    return resolveNamesLater(resolver, policyNames(config))


def _numericAddress(text):
    try:
        infos = socket.getaddrinfo(text, None, socket.AF_UNSPEC, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return _addressOf(infos[0])


def _addressOf(info):
    family, _, _, _, sockaddr = info
    if family == socket.AF_INET6:
        text, _ = socket.getnameinfo(sockaddr, socket.NI_NUMERICHOST)
        return ip_address(text)
    return ip_address(sockaddr[0])


def _parsePrefix(text):
    """
    iked's strtonum(p, 0, 128) on the text after a slash.
    """
    if not re.fullmatch(r"\s*[+-]?[0-9]+", text):
        raise HostError("netmask is invalid: /%s" % (text,))
    value = int(text)
    if value < 0:
        raise HostError("netmask is too small: /%s" % (text,))
    if value > 128:
        raise HostError("netmask is too large: /%s" % (text,))
    return value


def resolveHost(text):
    """
    iked's host(): resolve an address specification (C{ADDR}, C{ADDR/LEN},
    an interface name or a host name, optionally with C{/LEN}) to a list of
    L{HostAddress}es.

    An interface gives all its addresses (the prefix is ignored, as iked
    does); a numeric address gives one, a network when a prefix is
    written; a host name gives all its addresses from getaddrinfo() (the
    prefix, allowed for IPv4 only, narrows the flows but the address still
    prints and matches as a single host, as in iked).

    @raise HostError: it does not resolve.
    """
    prefix = None
    name = text
    if "/" in text:
        name, _, rest = text.partition("/")
        prefix = _parsePrefix(rest)
    found = _hostFromInterface(name)
    if found:
        return found
    address = _numericAddress(name)
    if address is not None:
        if prefix is None:
            return [HostAddress(address, address.max_prefixlen, False)]
        if prefix > address.max_prefixlen:
            raise HostError("netmask is too large for an IPv%d address: /%d" % (address.version, prefix))
        return [HostAddress(address, prefix, True)]
    found = []
    for address in lookupName(name, socket.SOCK_STREAM, socket.AI_ADDRCONFIG):
        if address.version == 6:
            if prefix is not None:
                raise HostError("cannot apply netmask on non-IPv4 address %s" % (address,))
            found.append(HostAddress(address, 128, False, name))
        else:
            found.append(HostAddress(address, 32 if prefix is None else min(prefix, 32), False, name))
    if not found:
        raise HostError("no IP address found for %s" % (text,))
    return found


def servicePort(name):
    """
    The port of service C{name} (tcp first, then udp), or L{None}.
    """
    for proto in ("tcp", "udp"):
        try:
            return socket.getservbyname(name, proto)
        except (OSError, UnicodeError):
            continue
    return None


def protocolNumber(name):
    """
    The number of IP protocol C{name}, or L{None}.
    """
    try:
        return socket.getprotobyname(name)
    except (OSError, UnicodeError):
        return None


def protocolName(number):
    """
    The name getprotobynumber() gives C{number}, or the number as text.
    """
    entry = _c().getprotobynumber(number)
    if entry:
        return _decode(entry.contents.name)
    return "%u" % (number,)

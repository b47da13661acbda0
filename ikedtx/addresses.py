# -*- test-case-name: tests.test_addresses -*-
"""
IP addresses as the daemon passes them around: strings at the edges
(sockets, configuration), C{ipaddress} objects inside.
"""

import socket
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address


@lru_cache(maxsize=4096)
def _parse(text):
    # inet_pton is C: a flood from ever new addresses misses the cache, and
    # ipaddress's parser in Python was a third of a COOKIE answer's cost.
    # What it does not take (an IPv6 scope, garbage) ipaddress judges.
    try:
        if ":" in text:
            return IPv6Address(socket.inet_pton(socket.AF_INET6, text))
        return IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        return ip_address(text)


def addressOf(value):
    """
    Normalise an address given as a string or an ipaddress object; the
    daemon sees few distinct addresses, so parsed strings are remembered
    (ipaddress parsing showed in the per-message profile).
    """
    return _parse(value) if isinstance(value, str) else value


def packedAddress(value):
    """
    The network-order bytes of an address given as a string or an
    ipaddress object: C{addressOf(value).packed}, without building the
    object for a plain textual address (a flood's sources miss the
    cache of L{addressOf}, and the COOKIE hash takes every one of them).
    """
    if isinstance(value, str):
        try:
            return socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)
        except OSError:
            pass
    return addressOf(value).packed

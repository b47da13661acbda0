# -*- test-case-name: tests.test_addresses -*-
"""
IP addresses as the daemon passes them around: strings at the edges
(sockets, configuration), C{ipaddress} objects inside.
"""

from functools import lru_cache
from ipaddress import ip_address


@lru_cache(maxsize=4096)
def _parse(text):
    return ip_address(text)


def addressOf(value):
    """
    Normalise an address given as a string or an ipaddress object; the
    daemon sees few distinct addresses, so parsed strings are remembered
    (ipaddress parsing showed in the per-message profile).
    """
    return _parse(value) if isinstance(value, str) else value

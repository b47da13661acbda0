# -*- test-case-name: tests.test_crypto_transforms -*-
"""
Access to the published test vectors under tests/vectors (see README there).
"""

import json
import os

_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")
_cache = {}


def load(name):
    """
    Return the parsed JSON file tests/vectors/C{name}.json.
    """
    if name not in _cache:
        with open(os.path.join(_HERE, name + ".json")) as f:
            _cache[name] = json.load(f)
    return _cache[name]


def strongswan(fileName):
    """
    Return the vectors strongSwan's test_vectors/C{fileName}.c holds, as a
    dict name -> fields (byte fields in hex).
    """
    return load("strongswan_test_vectors")[fileName]["vectors"]


def h(text):
    """
    Bytes from hex written with or without spaces and newlines.
    """
    return bytes.fromhex("".join(text.split()))


class FixedRandom:
    """
    A randomness source returning queued byte strings; it fails the test if
    asked for a length other than the next queued one or after the queue is
    empty.

    @ivar requests: the lengths asked for, in order.
    """

    def __init__(self, *chunks):
        self._chunks = list(chunks)
        self.requests = []

    def __call__(self, n):
        self.requests.append(n)
        if not self._chunks:
            raise AssertionError("randomness source exhausted (asked for %d bytes)" % (n,))
        chunk = self._chunks.pop(0)
        if len(chunk) != n:
            raise AssertionError("asked for %d bytes, next queued chunk has %d" % (n, len(chunk)))
        return chunk


def counterRandom(n, _state=[0]):
    """
    A deterministic, non-repeating randomness source for round-trip tests.
    """
    out = bytearray()
    while len(out) < n:
        _state[0] += 1
        out += _state[0].to_bytes(8, "big")
    return bytes(out[:n])

# -*- test-case-name: tests.test_wire_payloads -*-
"""
The KE (RFC 7296 3.4) and Nonce (RFC 7296 3.9) payloads.
"""

from ikedtx.wire.constants import PayloadType
from ikedtx.wire.errors import InvalidSyntax
from ikedtx.wire.payloads.base import _H, _HH, Payload, _bytes, _check, registerPayload


@registerPayload
class KeyExchange(Payload):
    """
    KE payload (RFC 7296 3.4): the key exchange method (DH group) number
    and the public value.
    """

    payloadType = PayloadType.KE
    minimumBodyLength = 4
    compareAttributes = ("group", "data", "critical")

    def __init__(self, group, data, critical=False):
        self.group = group
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return _HH.pack(_check(self.group, 16, "group"), 0) + self.data

    @classmethod
    def decodeBody(cls, body):
        (group,) = _H.unpack_from(body)
        return cls(group, bytes(body[4:]))


NONCE_MIN = 16
NONCE_MAX = 256


@registerPayload
class Nonce(Payload):
    """
    Nonce payload (RFC 7296 3.9): 16 to 256 octets on receipt.
    """

    payloadType = PayloadType.NONCE
    compareAttributes = ("data", "critical")

    def __init__(self, data, critical=False):
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return self.data

    @classmethod
    def decodeBody(cls, body):
        if not NONCE_MIN <= len(body) <= NONCE_MAX:
            raise InvalidSyntax("nonce of %d octets" % (len(body),))
        return cls(bytes(body))

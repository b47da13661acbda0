# -*- test-case-name: tests.test_wire_payloads -*-
"""
The Encrypted payload SK (RFC 7296 3.14) and the Encrypted Fragment
payload SKF (RFC 7383 2.5), as sealed octets.
"""

import struct

from ikedtx.wire.constants import PayloadType
from ikedtx.wire.errors import InvalidSyntax
from ikedtx.wire.payloads.base import Payload, _bytes, _check, registerPayload


@registerPayload
class Encrypted(Payload):
    """
    SK payload (RFC 7296 3.14) as received or to be re-sent: the type of
    the first inner payload (the SK payload's Next Payload field) and the
    sealed octets (IV, ciphertext with padding and pad length, ICV).
    L{ikedtx.wire.message.Message.decrypt} opens it.
    """

    payloadType = PayloadType.SK
    compareAttributes = ("innerType", "body", "critical")

    def __init__(self, innerType, body, critical=False):
        self.innerType = innerType
        self.body = _bytes(body, "body")
        self.critical = critical

    def encodeBody(self):
        return self.body

    @classmethod
    def decodeBody(cls, body, innerType=0):
        return cls(innerType, bytes(body))

    @property
    def sealed(self):
        return self.body


SKF_HEADER = struct.Struct("!HH")


@registerPayload
class EncryptedFragment(Payload):
    """
    SKF payload (RFC 7383 2.5): one fragment of an encrypted message.

    @ivar innerType: the first inner payload type in fragment 1, else 0.
    @ivar fragmentNumber: 1 to C{totalFragments}.
    @ivar sealed: IV, ciphertext and ICV of this fragment.
    """

    payloadType = PayloadType.SKF
    minimumBodyLength = 4
    compareAttributes = ("innerType", "fragmentNumber", "totalFragments", "sealed", "critical")

    def __init__(self, innerType, fragmentNumber, totalFragments, sealed, critical=False):
        self.innerType = innerType
        self.fragmentNumber = fragmentNumber
        self.totalFragments = totalFragments
        self.sealed = _bytes(sealed, "sealed")
        self.critical = critical

    def encodeBody(self):
        return (
            SKF_HEADER.pack(
                _check(self.fragmentNumber, 16, "fragment number"),
                _check(self.totalFragments, 16, "total fragments"),
            )
            + self.sealed
        )

    @classmethod
    def decodeBody(cls, body, innerType=0):
        number, total = SKF_HEADER.unpack_from(body)
        if not 1 <= number <= total:
            raise InvalidSyntax("fragment %d of %d" % (number, total))
        return cls(innerType, number, total, bytes(body[4:]))


_ENCRYPTED = (PayloadType.SK, PayloadType.SKF)

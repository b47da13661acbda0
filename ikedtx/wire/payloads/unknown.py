# -*- test-case-name: tests.test_wire_payloads -*-
"""
The payload of a type nobody registered: kept as octets (RFC 7296 2.5).
"""

from ikedtx.wire.payloads.base import Payload, _bytes


class UnknownPayload(Payload):
    """
    A payload of a type no class is registered for, kept as octets
    (RFC 7296 2.5: skipped when its critical bit is clear).  It is not
    registered itself: L{ikedtx.wire.payloads.chain.decodeChain} makes one
    when L{payloadClass} has nothing.
    """

    payloadType = None
    compareAttributes = ("payloadType", "data", "critical")

    def __init__(self, payloadType, data=b"", critical=False):
        self.payloadType = payloadType
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return self.data

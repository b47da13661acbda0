# -*- test-case-name: tests.test_wire_payloads -*-
"""
The Vendor ID payload (RFC 7296 3.12).
"""

from ikedtx.wire.constants import PayloadType
from ikedtx.wire.payloads.base import Payload, _bytes, registerPayload


@registerPayload
class VendorID(Payload):
    """
    Vendor ID payload (RFC 7296 3.12).
    """

    payloadType = PayloadType.VENDOR_ID
    compareAttributes = ("data", "critical")

    def __init__(self, data, critical=False):
        self.data = _bytes(data, "data")
        self.critical = critical

    def encodeBody(self):
        return self.data

    @classmethod
    def decodeBody(cls, body):
        return cls(bytes(body))

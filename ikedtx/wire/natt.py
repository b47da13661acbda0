# -*- test-case-name: tests.test_wire_natt -*-
"""
UDP encapsulation framing on port 4500 (RFC 3948 2, RFC 7296 2.23).

A datagram on the NAT-T port is one of:

  - a NAT keepalive: the single octet 0xFF (RFC 3948 2.3);
  - an IKE message behind the 4-octet non-ESP marker (four zero octets,
    which no ESP SPI can be, RFC 3948 2.2);
  - ESP in UDP: the first four octets are the (non-zero) SPI.
"""

import hashlib
import ipaddress
import socket
import struct
from enum import Enum

from ikedtx.wire.constants import NAT_KEEPALIVE, NON_ESP_MARKER
from ikedtx.wire.errors import ShortDatagram

_MARKER_LENGTH = len(NON_ESP_MARKER)


class NattKind(Enum):
    """
    What a datagram received on the NAT-T port holds.
    """

    IKE = "IKE"
    ESP = "ESP"
    KEEPALIVE = "KEEPALIVE"


def isNatKeepalive(data):
    """
    Whether C{data} is a NAT keepalive (the one octet 0xFF).
    """
    return len(data) == 1 and data[0] == 0xFF


def isEspInUdp(data):
    """
    Whether C{data} is ESP in UDP: at least four octets, not all zero.
    """
    return len(data) >= _MARKER_LENGTH and bytes(data[:_MARKER_LENGTH]) != NON_ESP_MARKER


def addNonEspMarker(message):
    """
    Prefix an encoded IKE message with the non-ESP marker.
    """
    return NON_ESP_MARKER + message


def stripNonEspMarker(data):
    """
    Remove the non-ESP marker from a datagram received on the NAT-T port.

    @return: a L{memoryview} of the IKE message after the marker.
    @raise ShortDatagram: the datagram does not start with the marker.
    """
    if len(data) < _MARKER_LENGTH or bytes(data[:_MARKER_LENGTH]) != NON_ESP_MARKER:
        raise ShortDatagram("datagram on the NAT-T port lacks the non-ESP marker")
    return memoryview(data)[_MARKER_LENGTH:]


def classifyNattDatagram(data):
    """
    Demultiplex a datagram received on the NAT-T port.

    @return: C{(kind, payload)}: for L{NattKind.IKE} a L{memoryview} of the
        IKE message without the marker, for L{NattKind.ESP} a
        L{memoryview} of the whole ESP packet, for L{NattKind.KEEPALIVE}
        C{None}.
    @raise ShortDatagram: neither a keepalive nor four octets long.
    """
    if len(data) < _MARKER_LENGTH:
        if isNatKeepalive(data):
            return NattKind.KEEPALIVE, None
        raise ShortDatagram("%d-octet datagram on the NAT-T port" % (len(data),))
    view = memoryview(data)
    if bytes(view[:_MARKER_LENGTH]) == NON_ESP_MARKER:
        return NattKind.IKE, view[_MARKER_LENGTH:]
    return NattKind.ESP, view


def natDetectionHash(spiI, spiR, address, port):
    """
    The NAT_DETECTION_SOURCE_IP / NAT_DETECTION_DESTINATION_IP data for an
    address and port (RFC 7296 2.23): SHA-1 of the two SPIs, the address
    (4 or 16 octets) and the port (2 octets), in network order.

    @param address: an L{ipaddress} address or its text.
    """
    if isinstance(address, str):
        # The shell's endpoints are text: inet_pton is C, ipaddress's parser
        # is Python (four of these per IKE SA).
        try:
            packed = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
        except OSError:
            packed = ipaddress.ip_address(address).packed
    else:
        packed = ipaddress.ip_address(address).packed
    return hashlib.sha1(spiI + spiR + packed + struct.pack("!H", port)).digest()


__all__ = [
    "NAT_KEEPALIVE",
    "NON_ESP_MARKER",
    "NattKind",
    "addNonEspMarker",
    "classifyNattDatagram",
    "isEspInUdp",
    "isNatKeepalive",
    "natDetectionHash",
    "stripNonEspMarker",
]

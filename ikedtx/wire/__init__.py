# -*- test-case-name: tests.test_wire_message -*-
"""
ikedtx.wire: the IKEv2 codec, pure (no sockets, no keys).

  - L{ikedtx.wire.constants}: IANA numbers as IntEnums.
  - L{ikedtx.wire.errors}: L{MalformedMessage} and its subclasses, each
    with the C{notify} to answer with (or C{None}).
  - L{ikedtx.wire.header}: the IKE header.
  - L{ikedtx.wire.payloads}: one class per payload, registered by type.
  - L{ikedtx.wire.message}: L{Message}: decode, encode, SK seal/open via an
    C{ISKCipher}.
  - L{ikedtx.wire.fragments}: RFC 7383 L{fragmentMessage} and
    L{Reassembler}.
  - L{ikedtx.wire.natt}: the non-ESP marker, keepalives, ESP-in-UDP,
    NAT-D hashes.
"""

from ikedtx.wire.errors import (
    FragmentDropped,
    InvalidMajorVersion,
    InvalidSyntax,
    LengthMismatch,
    MalformedMessage,
    ShortDatagram,
    UnsupportedCriticalPayload,
    WireEncodeError,
)
from ikedtx.wire.fragments import Reassembler, fragmentMessage
from ikedtx.wire.header import Header
from ikedtx.wire.message import Message

__all__ = [
    "FragmentDropped",
    "Header",
    "InvalidMajorVersion",
    "InvalidSyntax",
    "LengthMismatch",
    "MalformedMessage",
    "Message",
    "Reassembler",
    "ShortDatagram",
    "UnsupportedCriticalPayload",
    "WireEncodeError",
    "fragmentMessage",
]

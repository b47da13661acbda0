# -*- test-case-name: tests.test_privsep_commands -*-
"""
The datapath records (L{KernelSA}, L{KernelFlow}, L{KernelSelector},
L{KernelSAUsage}) as the unprivileged worker and the privileged parent pass
them over their socketpair: JSON objects of plain values.

The parent decodes what an unprivileged (and possibly compromised) worker
sent, so decoding is strict: exactly the record's fields, each of its type
and range, addresses that parse, keys of bounded size. What does not fit
raises L{RecordError}, which the parent answers as a refused command.
"""

import json
from dataclasses import fields
from ipaddress import ip_address

from ikedtx.kernel.interfaces import KernelFlow, KernelSA, KernelSAUsage, KernelSelector

#: The most bytes of one encoded record (an SA with its keys and
#: selectors is well under 4 KiB).
MAX_RECORD_BYTES = 16 * 1024
#: The most selector pairs one SA carries.
MAX_SELECTORS = 64
#: The longest key material (bytes) of one SA direction.
MAX_KEY_BYTES = 128

# ProtocolId AH and ESP (RFC 7296 3.3.1), as the core names them.
_PROTOCOLS = (2, 3)
_MODES = ("tunnel", "transport")
_DIRECTIONS = ("in", "out", "fwd")


class RecordError(ValueError):
    """
    A record from the other side does not fit its type; the message says
    which field and why.
    """


class AddressRefused(ValueError):
    """
    The parent will not put this virtual address on this interface; the
    message says why.
    """


#: Addresses parsed before, by their text (a flow's selectors and an SA's
#: peers come again and again; ipaddress's parser was a fifth of the
#: parent's CPU per SA). Immutable values; emptied when full.
_parsed = {}
_PARSED_MAX = 4096


def _address(value, name):
    if type(value) is not str or len(value) > 45:
        raise RecordError("%s: not an address" % (name,))
    address = _parsed.get(value)
    if address is None:
        try:
            address = ip_address(value)
        except ValueError:
            raise RecordError("%s: not an address: %r" % (name, value))
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[value] = address
    return address


def _int(value, name, low, high):
    if type(value) is not int or not low <= value <= high:
        raise RecordError("%s: not an integer in [%d, %d]" % (name, low, high))
    return value


def _optionalInt(value, name, low, high):
    return None if value is None else _int(value, name, low, high)


def _bool(value, name):
    if type(value) is not bool:
        raise RecordError("%s: not a boolean" % (name,))
    return value


def _choice(value, name, choices):
    if value not in choices or type(value) is not str:
        raise RecordError("%s: not one of %s" % (name, ", ".join(choices)))
    return value


def _key(value, name):
    if type(value) is not str or len(value) > 2 * MAX_KEY_BYTES:
        raise RecordError("%s: not key material of at most %d bytes" % (name, MAX_KEY_BYTES))
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise RecordError("%s: not hexadecimal" % (name,))


def _pair(value, name, decodeFirst, decodeSecond):
    if type(value) is not list or len(value) != 2:
        raise RecordError("%s: not a pair" % (name,))
    return (decodeFirst(value[0], name), decodeSecond(value[1], name))


#: Each record type's field names (dataclasses.fields() walks the class
#: on every call).
_FIELDS = {cls: frozenset(f.name for f in fields(cls)) for cls in (KernelSA, KernelFlow, KernelSelector, KernelSAUsage)}


def _fieldsOf(obj, cls, name):
    if type(obj) is not dict:
        raise RecordError("%s: not an object" % (name,))
    expected = _FIELDS[cls]
    if obj.keys() != expected:
        extra, missing = sorted(set(obj) - expected), sorted(expected - set(obj))
        raise RecordError("%s: fields %s%s" % (name, "unknown %s" % (extra,) if extra else "",
                                               " missing %s" % (missing,) if missing else ""))
    return obj


# Plain values

def selectorToPlain(s):
    return {"startAddress": str(s.startAddress), "endAddress": str(s.endAddress), "ipProtocol": s.ipProtocol,
            "startPort": s.startPort, "endPort": s.endPort}


def selectorFromPlain(obj, name="selector"):
    obj = _fieldsOf(obj, KernelSelector, name)
    start = _address(obj["startAddress"], name + ".startAddress")
    end = _address(obj["endAddress"], name + ".endAddress")
    if start.version != end.version or start > end:
        raise RecordError("%s: not an address range" % (name,))
    startPort = _int(obj["startPort"], name + ".startPort", 0, 65535)
    endPort = _int(obj["endPort"], name + ".endPort", 0, 65535)
    return KernelSelector(start, end, _int(obj["ipProtocol"], name + ".ipProtocol", 0, 255), startPort, endPort)


def saToPlain(sa):
    return {
        "spi": sa.spi, "protocol": sa.protocol, "inbound": sa.inbound, "source": str(sa.source),
        "destination": str(sa.destination), "mode": sa.mode,
        "encryption": list(sa.encryption) if sa.encryption is not None else None,
        "encryptionKey": bytes(sa.encryptionKey).hex(), "integrity": sa.integrity,
        "integrityKey": bytes(sa.integrityKey).hex(), "esn": sa.esn,
        "encapsulation": list(sa.encapsulation) if sa.encapsulation is not None else None,
        "reqid": sa.reqid, "lifetimeSeconds": sa.lifetimeSeconds, "lifetimeBytes": sa.lifetimeBytes,
        "softLifetimeSeconds": sa.softLifetimeSeconds, "softLifetimeBytes": sa.softLifetimeBytes,
        "replayWindow": sa.replayWindow, "ipcompCpi": sa.ipcompCpi,
        "selectors": [[selectorToPlain(l), selectorToPlain(r)] for l, r in sa.selectors],
    }


_U32 = 2 ** 32 - 1
_U64 = 2 ** 64 - 1


def saFromPlain(obj, name="sa"):
    obj = _fieldsOf(obj, KernelSA, name)
    source = _address(obj["source"], name + ".source")
    destination = _address(obj["destination"], name + ".destination")
    if source.version != destination.version:
        raise RecordError("%s: source and destination of different families" % (name,))
    encryption = obj["encryption"]
    if encryption is not None:
        encryption = _pair(encryption, name + ".encryption", lambda v, n: _int(v, n, 0, 65535),
                           lambda v, n: _optionalInt(v, n, 0, 65535))
    encapsulation = obj["encapsulation"]
    if encapsulation is not None:
        port = lambda v, n: _int(v, n, 1, 65535)  # noqa: E731
        encapsulation = _pair(encapsulation, name + ".encapsulation", port, port)
    selectors = obj["selectors"]
    if type(selectors) is not list or len(selectors) > MAX_SELECTORS:
        raise RecordError("%s.selectors: not a list of at most %d pairs" % (name, MAX_SELECTORS))
    selectors = tuple(_pair(p, name + ".selectors", selectorFromPlain, selectorFromPlain) for p in selectors)
    return KernelSA(
        spi=_int(obj["spi"], name + ".spi", 0, _U32), protocol=_protocol(obj["protocol"], name), inbound=_bool(obj["inbound"], name + ".inbound"),
        source=source, destination=destination, mode=_choice(obj["mode"], name + ".mode", _MODES),
        encryption=encryption, encryptionKey=_key(obj["encryptionKey"], name + ".encryptionKey"),
        integrity=_optionalInt(obj["integrity"], name + ".integrity", 0, 65535),
        integrityKey=_key(obj["integrityKey"], name + ".integrityKey"), esn=_bool(obj["esn"], name + ".esn"),
        encapsulation=encapsulation, reqid=_int(obj["reqid"], name + ".reqid", 0, _U32),
        lifetimeSeconds=_optionalInt(obj["lifetimeSeconds"], name + ".lifetimeSeconds", 0, _U64),
        lifetimeBytes=_optionalInt(obj["lifetimeBytes"], name + ".lifetimeBytes", 0, _U64),
        softLifetimeSeconds=_optionalInt(obj["softLifetimeSeconds"], name + ".softLifetimeSeconds", 0, _U64),
        softLifetimeBytes=_optionalInt(obj["softLifetimeBytes"], name + ".softLifetimeBytes", 0, _U64),
        replayWindow=_int(obj["replayWindow"], name + ".replayWindow", 0, _U32),
        ipcompCpi=_optionalInt(obj["ipcompCpi"], name + ".ipcompCpi", 0, 65535),
        selectors=selectors)


def _protocol(value, name):
    if type(value) is not int or value not in _PROTOCOLS:
        raise RecordError("%s.protocol: not AH (2) or ESP (3)" % (name,))
    return value


def flowToPlain(flow):
    return {"source": selectorToPlain(flow.source), "destination": selectorToPlain(flow.destination),
            "direction": flow.direction, "protocol": flow.protocol, "mode": flow.mode,
            "localAddress": str(flow.localAddress), "peerAddress": str(flow.peerAddress), "reqid": flow.reqid,
            "ipcomp": flow.ipcomp}


def flowFromPlain(obj, name="flow"):
    obj = _fieldsOf(obj, KernelFlow, name)
    return KernelFlow(
        selectorFromPlain(obj["source"], name + ".source"), selectorFromPlain(obj["destination"], name + ".destination"),
        _choice(obj["direction"], name + ".direction", _DIRECTIONS), _protocol(obj["protocol"], name),
        _choice(obj["mode"], name + ".mode", _MODES), _address(obj["localAddress"], name + ".localAddress"),
        _address(obj["peerAddress"], name + ".peerAddress"), _int(obj["reqid"], name + ".reqid", 0, _U32),
        _bool(obj["ipcomp"], name + ".ipcomp"))


def usageToPlain(usage):
    return {"bytes": usage.bytes, "packets": usage.packets, "installed": usage.installed,
            "lastUsed": usage.lastUsed}


def usageFromPlain(obj):
    return KernelSAUsage(**_fieldsOf(obj, KernelSAUsage, "usage"))


# Bytes on the wire

def encode(plain):
    return json.dumps(plain, separators=(",", ":"), sort_keys=True).encode("ascii")


def decode(data, fromPlain):
    """
    The record C{fromPlain} makes of the JSON C{data}.

    @raise RecordError: C{data} is too long, not JSON or not the record.
    """
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError("record of %d bytes (at most %d)" % (len(data), MAX_RECORD_BYTES))
    try:
        plain = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise RecordError("record is not JSON")
    return fromPlain(plain)


# Several records in one command (L{ikedtx.privsep.commands.Batch})

#: The operations a batch carries, by their octet on the wire.
BATCH_OPS = {1: "addSA", 2: "deleteSA", 3: "detachSA", 4: "addFlow", 5: "deleteFlow"}
_BATCH_CODES = {name: code for code, name in BATCH_OPS.items()}
#: The most operations of one batch.
MAX_BATCH_OPS = 64
#: The most bytes of one batch (under AMP's 65,535 per value and the
#: parent's bound on a box).
MAX_BATCH_BYTES = 40000


def encodeBatch(operations):
    """
    The bytes of C{operations}, (name, encoded record) pairs: per
    operation its code (one octet), the record's length (two octets, big
    endian) and the record.
    """
    return b"".join(bytes((_BATCH_CODES[name], len(record) >> 8, len(record) & 0xFF)) + record
                    for name, record in operations)


def decodeBatch(data):
    """
    The (name, record bytes) pairs of a batch, in order; each record is
    still to be decoded (L{decode}).

    @raise RecordError: C{data} is too long, holds too many operations, an
        unknown operation or a record longer than what is left.
    """
    if len(data) > MAX_BATCH_BYTES:
        raise RecordError("batch of %d bytes (at most %d)" % (len(data), MAX_BATCH_BYTES))
    operations, offset, end = [], 0, len(data)
    while offset < end:
        if len(operations) == MAX_BATCH_OPS:
            raise RecordError("batch of more than %d operations" % (MAX_BATCH_OPS,))
        if end - offset < 3:
            raise RecordError("batch operation %d: truncated header" % (len(operations),))
        name = BATCH_OPS.get(data[offset])
        if name is None:
            raise RecordError("batch operation %d: unknown code %d" % (len(operations), data[offset]))
        length = (data[offset + 1] << 8) | data[offset + 2]
        offset += 3
        if length > end - offset:
            raise RecordError("batch operation %d: record of %d bytes, %d left" % (len(operations), length,
                                                                                  end - offset))
        operations.append((name, data[offset:offset + length]))
        offset += length
    if not operations:
        raise RecordError("empty batch")
    return operations

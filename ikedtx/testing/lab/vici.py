# -*- test-case-name: tests.test_lab_harness -*-
"""
A small synchronous client for strongSwan's VICI protocol over a UNIX
socket, written from the protocol description in the vici plugin's
README: 32-bit length-prefixed segments; a packet type byte; named packets
carry an 8-bit-length name; messages are a flat sequence of elements
(section start/end, key/value, list start/item/end).

Values are returned as C{str} (they are text for every command the lab
uses); sections as dicts, lists as lists.
"""

import socket
import struct

from ._util import LabError

CMD_REQUEST = 0
CMD_RESPONSE = 1
CMD_UNKNOWN = 2
EVENT_REGISTER = 3
EVENT_UNREGISTER = 4
EVENT_CONFIRM = 5
EVENT_UNKNOWN = 6
EVENT = 7

SECTION_START = 1
SECTION_END = 2
KEY_VALUE = 3
LIST_START = 4
LIST_ITEM = 5
LIST_END = 6

_NAMED = (CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT)


class ViciError(LabError):
    """
    The daemon refused a request or the connection broke.
    """


def _value(v):
    if isinstance(v, bytes):
        return v
    if isinstance(v, bool):
        return b"yes" if v else b"no"
    return str(v).encode()


def encode(message):
    """
    Encode a dict (values: str/bytes/int/bool, lists, nested dicts) as a
    vici message.
    """
    out = bytearray()
    for key, value in message.items():
        name = key.encode()
        if isinstance(value, dict):
            out += bytes([SECTION_START, len(name)]) + name + encode(value) + bytes([SECTION_END])
        elif isinstance(value, (list, tuple)):
            out += bytes([LIST_START, len(name)]) + name
            for item in value:
                data = _value(item)
                out += bytes([LIST_ITEM]) + struct.pack("!H", len(data)) + data
            out += bytes([LIST_END])
        elif value is not None:
            data = _value(value)
            out += bytes([KEY_VALUE, len(name)]) + name + struct.pack("!H", len(data)) + data
    return bytes(out)


def decode(data):
    """
    Decode a vici message into nested dicts/lists of str.
    """
    root = {}
    stack = [root]
    currentList = None
    i = 0

    def name():
        nonlocal i
        n = data[i]
        s = data[i + 1 : i + 1 + n].decode()
        i += 1 + n
        return s

    def value():
        nonlocal i
        (n,) = struct.unpack("!H", data[i : i + 2])
        v = data[i + 2 : i + 2 + n].decode("utf-8", "replace")
        i += 2 + n
        return v

    while i < len(data):
        kind = data[i]
        i += 1
        if kind == SECTION_START:
            section = {}
            stack[-1][name()] = section
            stack.append(section)
        elif kind == SECTION_END:
            stack.pop()
        elif kind == KEY_VALUE:
            k = name()
            stack[-1][k] = value()
        elif kind == LIST_START:
            currentList = []
            stack[-1][name()] = currentList
        elif kind == LIST_ITEM:
            currentList.append(value())
        elif kind == LIST_END:
            currentList = None
        else:
            raise ViciError("bad vici element type %d at %d" % (kind, i - 1))
    return root


class ViciClient:
    """
    One connection to a charon vici socket.

    @ivar path: the socket path.
    """

    def __init__(self, path, timeout=30.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise ViciError("cannot connect to vici at %s: %s" % (path, e))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, kind, name=None, message=b""):
        packet = bytes([kind])
        if name is not None:
            packet += bytes([len(name)]) + name.encode()
        packet += message
        self.sock.sendall(struct.pack("!I", len(packet)) + packet)

    def _recvExactly(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ViciError("vici connection closed")
            buf += chunk
        return bytes(buf)

    def _recv(self):
        (n,) = struct.unpack("!I", self._recvExactly(4))
        packet = self._recvExactly(n)
        kind = packet[0]
        i = 1
        name = None
        if kind in _NAMED:
            length = packet[1]
            name = packet[2 : 2 + length].decode()
            i = 2 + length
        return kind, name, packet[i:]

    def _register(self, event, kind=EVENT_REGISTER):
        self._send(kind, event)
        while True:
            k, name, body = self._recv()
            if k == EVENT_CONFIRM:
                return
            if k == EVENT_UNKNOWN:
                raise ViciError("unknown vici event %r" % (event,))
            # an event of an earlier registration may still arrive; drop it

    def request(self, command, message=None, events=(), onEvent=None):
        """
        Send command C{command} with C{message} (a dict) and return the
        decoded response. Events named in C{events} are registered for the
        duration of the command (the way streamed commands such as
        C{list-sas} deliver results) and passed to C{onEvent(name, dict)}.
        """
        for event in events:
            self._register(event)
        try:
            self._send(CMD_REQUEST, command, encode(message or {}))
            while True:
                kind, name, body = self._recv()
                if kind == CMD_RESPONSE:
                    return decode(body)
                if kind == CMD_UNKNOWN:
                    raise ViciError("unknown vici command %r" % (command,))
                if kind == EVENT and onEvent is not None:
                    onEvent(name, decode(body))
        finally:
            for event in events:
                self._register(event, EVENT_UNREGISTER)

    # ---- the commands the lab uses ----

    def version(self):
        return self.request("version")

    def listSas(self, ike=None, child=None, ikeId=None, noblock=False):
        """
        C{list-sas}: a dict {IKE SA name: the first IKE SA of that name}; see
        L{listSasList}.
        """
        result = {}
        for sa in self.listSasList(ike=ike, child=child, ikeId=ikeId, noblock=noblock):
            result.setdefault(sa["name"], sa)
        return result

    def listSasList(self, ike=None, child=None, ikeId=None, noblock=False):
        """
        C{list-sas}: a list of IKE SA dicts, each with its C{"name"} added
        and C{"child-sas"} as a list of Child SA dicts.

        @param noblock: skip IKE SAs that a charon thread is using right now
            (they are silently left out: right after C{initiate} returns
            the new SA may still be in use, so the default waits).
        """
        sas = []

        def onEvent(name, body):
            for ikeName, sa in body.items():
                sa = dict(sa, name=ikeName)
                sa["child-sas"] = list((sa.get("child-sas") or {}).values())
                sas.append(sa)

        self.request(
            "list-sas",
            {"noblock": "yes" if noblock else None, "ike": ike, "child": child, "ike-id": ikeId},
            events=["list-sa"],
            onEvent=onEvent,
        )
        return sas

    def initiate(self, child=None, ike=None, timeout=10.0, loglevel=1):
        """
        C{initiate} and wait (up to C{timeout} s) for the result.

        @return: C{(success, log)}: a bool and the control-log lines charon
            sent while initiating (joined with newlines).
        """
        lines = []

        def onEvent(name, body):
            lines.append(body.get("msg", ""))

        result = self.request(
            "initiate",
            {"child": child, "ike": ike, "timeout": int(timeout * 1000), "init-limits": "no", "loglevel": loglevel},
            events=["control-log"],
            onEvent=onEvent,
        )
        success = result.get("success") == "yes"
        if not success and result.get("errmsg"):
            lines.append("errmsg: " + result["errmsg"])
        return success, "\n".join(lines)

    def terminate(self, child=None, ike=None, ikeId=None, childId=None, timeout=5.0, force=False):
        """
        C{terminate}; returns C{(success, log)} like L{initiate}.
        """
        lines = []
        result = self.request(
            "terminate",
            {"child": child, "ike": ike, "ike-id": ikeId, "child-id": childId,
             "timeout": int(timeout * 1000), "force": "yes" if force else None, "loglevel": 1},
            events=["control-log"],
            onEvent=lambda name, body: lines.append(body.get("msg", "")),
        )
        success = result.get("success") == "yes"
        if not success and result.get("errmsg"):
            lines.append("errmsg: " + result["errmsg"])
        return success, "\n".join(lines)

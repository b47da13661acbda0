# -*- test-case-name: tests.test_config_parser -*-
"""
The iked.conf(5) grammar: a hand-written recursive descent parser over
L{ikedtx.config.lexer}, building the L{ikedtx.config.model}.

The grammar is iked's parse.y, statement by statement (each ends at a
newline)::

    include STRING
    set (active|passive|couple|decouple|fragmentation|nofragmentation|
         mobike|nomobike|vendorid|novendorid|enforcesingleikesa|
         noenforcesingleikesa|stickyaddress|nostickyaddress|
         cert_partial_chain|dpd_check_interval NUMBER|
         ocsp STRING [tolerate TIME [maxage TIME]])
    user STRING STRING
    STRING = STRING...                          (a macro)
    ike|flow|tcpmd5|sa|from|to|tunnel|transport ...   (ignored line)
    ikev2 [STRING] [quick|skip|default] [passive|active] [ipcomp]
          [tunnel|transport] [natt] [esp|ah] [inet|inet6]
          [proto P | proto { P [,] P ... }] [rdomain NUMBER]
          (from HOST [port P] to HOST [port P] | to ... from ...) [[,] ...]
          [peer ANYHOST [local ANYHOST] | local ANYHOST [peer ANYHOST]]
          [ikesa TRANSFORMS]... [childsa TRANSFORMS]...
          [srcid STRING] [dstid STRING] [ikelifetime TIME]
          [lifetime TIME [bytes BYTES]]
          [psk STRING | psk file STRING | eap STRING | STRING]
          [config STRING HOST | request STRING ANYHOST]...
          [iface STRING] [tag STRING | tap STRING]...

Errors are handled the way iked's (bison) parser handles them, so that the
same file gives the same messages on the same lines: an error is reported
with the line of the last token read, the rest of the line is skipped,
and a syntax error within the next three tokens is not reported again.
"""

import os
from ipaddress import ip_network

from ikedtx.auth.errors import InvalidDN
from ikedtx.config import hosts as _hosts
from ikedtx.config import transforms as xf
from ikedtx.config.errors import ConfigError, ConfigProblem, UnsafeFileError
from ikedtx.config.lexer import KEYWORDS, Lexer, fileIdentity
from ikedtx.config.model import (
    Auth,
    Config,
    ConfigOption,
    Flow,
    Identity,
    Policy,
    Selector,
    Settings,
    User,
)
from ikedtx.files import CONFIG_FILE, secrecyProblem
from ikedtx.wire.constants import EapType, ProtocolId, TransformType

ID_SIZE = 1024
PSK_SIZE = 1024
KEYFILE_LIMIT = 1024
TAG_SIZE = 64
NAME_MAX = 256
PASSWORD_SIZE = 256
IPPROTO_MAX = 16
UINT32_MAX = 2**32 - 1

_OTHER_RULES = ("IKEV1", "FLOW", "TCPMD5", "SA", "FROM", "TO", "TUNNEL", "TRANSPORT")
_SIMPLE_SETS = {
    "ACTIVE": ("passive", False),
    "PASSIVE": ("passive", True),
    "COUPLE": ("decouple", False),
    "DECOUPLE": ("decouple", True),
    "FRAGMENTATION": ("fragmentation", True),
    "NOFRAGMENTATION": ("fragmentation", False),
    "MOBIKE": ("mobike", True),
    "NOMOBIKE": ("mobike", False),
    "VENDORID": ("vendorId", True),
    "NOVENDORID": ("vendorId", False),
    "ENFORCESINGLEIKESA": ("enforceSingleIkeSa", True),
    "NOENFORCESINGLEIKESA": ("enforceSingleIkeSa", False),
    "STICKYADDRESS": ("stickyAddress", True),
    "NOSTICKYADDRESS": ("stickyAddress", False),
    "CERTPARTIALCHAIN": ("certPartialChain", True),
}


_KEYWORD_KINDS = frozenset(KEYWORDS.values())


def _reservedMacro(token):
    return 'reserved word "%s" cannot be a macro name' % (token.text,)


class _SyntaxError(Exception):
    """
    The token cannot continue any statement.
    """

    def __init__(self, token, detail=None):
        Exception.__init__(self, token)
        self.token = token
        self.detail = detail


class _Abort(Exception):
    """
    A rule failed with an error already reported; skip the rest of the line.
    """


def readConfigFile(path, checkPermissions):
    """
    Read a configuration (or key) file, refusing it when its permissions are
    unsafe (L{ikedtx.files.CONFIG_FILE}).

    @return: (bytes, identity)
    @raise OSError: it cannot be read.
    @raise UnsafeFileError: its permissions are unsafe (the message says
        which).
    """
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if checkPermissions:
            problem = secrecyProblem(st, CONFIG_FILE)
            if problem is not None:
                raise UnsafeFileError(problem)
        return f.read(), (st.st_dev, st.st_ino)


class _Host:
    """
    One entry of a host list while a rule is read (iked's ipsec_addr_wrap).

    @ivar kind: C{"addr"}, C{"any"} or C{"dynamic"}.
    @ivar address: the L{HostAddress} of an C{"addr"}.
    @ivar port: the port (only the first entry of a list gets one).
    @ivar srcNat: the L{HostAddress} written in parentheses, or L{None}.
    @ivar text: how it was written (for messages).
    """

    def __init__(self, kind, address=None, text=""):
        self.kind = kind
        self.address = address
        self.port = None
        self.srcNat = None
        self.text = text

    @property
    def family(self):
        if self.kind != "addr":
            return None
        return self.address.address.version

    @property
    def isNetwork(self):
        return self.kind == "any" or (self.kind == "addr" and self.address.isNetwork)


class _Draft:
    """
    What an ikev2 rule said, before create_ike() turns it into a L{Policy}.
    """

    def __init__(self):
        self.name = None
        self.match = None
        self.active = False
        self.ipcomp = False
        self.transport = False
        self.natt = False
        self.saProtocol = ProtocolId.ESP
        self.af = None
        self.protocols = []
        self.rdomain = None
        self.srcs = []
        self.dsts = []
        self.local = None
        self.peer = None
        self.ikeSpecs = []
        self.childSpecs = []
        self.srcId = None
        self.dstId = None
        self.ikeLifetime = 0
        self.lifetime = 10800
        self.lifetimeBytes = 4294967296
        self.auth = Auth()
        self.configOptions = []
        self.iface = None
        self.tag = None
        self.tap = None


def _flowKey(flow):
    """
    iked's flow_cmp() order: protocol, then destination, then source (each
    by family, address, prefix length, port), then the source NAT address.
    Addresses compare as iked's C code compares them on a little-endian
    host: 32-bit words in memory order, the last word first for IPv6.
    """

    def address(address):
        packed = address.packed
        if address.version == 4:
            return (2, int.from_bytes(packed, "little"))
        words = [int.from_bytes(packed[i : i + 4], "little") for i in (12, 8, 4, 0)]
        return (10, *words)

    def port(p):
        p = p or 0
        return ((p & 0xFF) << 8) | (p >> 8)

    def side(sel):
        return (address(sel.address), sel.network.prefixlen, port(sel.port))

    nat = (0,) if flow.srcNat is None else (1, address(flow.srcNat.address), flow.srcNat.network.prefixlen)
    return (flow.ipProtocol, side(flow.dst), side(flow.src), nat)


class Parser:
    """
    Parses one configuration (and the files it includes).

    Included files are opened as named, relative to the current directory
    (as iked does), not to the including file.

    @ivar errors: the L{ConfigProblem}s found.
    @ivar warnings: problems that do not make the file invalid.
    @ivar profile: the L{xf.Profile} of defaults and quirks.
    @ivar checkPermissions: refuse unsafe included files and key files.
    @ivar lexer: the L{Lexer}.
    @ivar errstatus: bison's error status: after an error 3, one less for
        each token read since; a syntax error is reported only at 0.
    @ivar settings: the C{set} options read so far (L{Settings} fields).
    @ivar users: the L{User}s read so far.
    @ivar policies: the L{Policy}s read so far.
    @ivar position: the next statement position (users and policies).
    @ivar policyCount: the ikev2 rules checked so far (for C{policyN}).
    """

    def __init__(self, defines=(), checkPermissions=True, profile=xf.IKEDTX):
        self.errors = []
        self.warnings = []
        self.profile = profile
        self.checkPermissions = checkPermissions
        keywords = dict(KEYWORDS)
        if not profile.nattKeyword:
            del keywords["natt"]
        self.lexer = Lexer(self._lexError, keywords)
        for define in defines:
            name, value = splitDefine(define)
            self.lexer.define(name, value, persistent=True)
        self._look = None
        self._first = None
        self._shifted = 0
        self.errstatus = 0
        self.settings = {}
        self.users = []
        self.policies = []
        self.position = 0
        self.policyCount = 0

    # -- reporting

    def _lexError(self, filename, line, message):
        self.errors.append(ConfigProblem(filename, line, message))

    def error(self, message):
        """
        Report an error where iked would: on the line of the last token read.
        """
        self.errors.append(ConfigProblem(self.lexer.filename, self.lexer.line, message))

    def fail(self, message):
        self.error(message)
        raise _Abort()

    def warn(self, message, line=None):
        self.warnings.append(ConfigProblem(self.lexer.filename, self.lexer.line if line is None else line, message))

    # -- tokens

    def peek(self):
        if self._look is None:
            self._look = self.lexer.token()
        return self._look

    def advance(self):
        token = self.peek()
        self._look = None
        self._shifted += 1
        if self.errstatus:
            self.errstatus -= 1
        return token

    def accept(self, *kinds):
        if self.peek().kind in kinds:
            return self.advance()
        return None

    def expect(self, kind):
        token = self.peek()
        if token.kind != kind:
            raise _SyntaxError(token)
        return self.advance()

    # -- driver

    def parse(self, filename, data, identity=None):
        """
        Parse C{data} (the contents of C{filename}) and everything it
        includes.

        @return: the L{Config}.
        @raise ConfigError: it has errors.
        """
        self.lexer.pushFile(filename, data, identity)
        while self.peek().kind != "EOF":
            try:
                self.statement()
            except _SyntaxError as e:
                if e.token.kind == "=" and self._shifted == 1 and self._first.kind in _KEYWORD_KINDS:
                    e.detail = _reservedMacro(self._first)
                self._syntaxError(e.token, e.detail)
                if not self._recover():
                    break
            except _Abort:
                if not self._recover():
                    break
        if not self.users and not self.policies:
            self.warnings.append(ConfigProblem(filename, None, "no valid configuration rules found"))
        if self.errors:
            raise ConfigError(self.errors)
        return Config(
            settings=Settings(**self.settings),
            users=tuple(self.users),
            policies=tuple(self.policies),
            macros=dict(self.lexer.macros),
            warnings=tuple(self.warnings),
        )

    def _syntaxError(self, token, detail=None):
        """
        Report a syntax error at C{token}, unless one was reported within
        the last three tokens (bison's rule).

        @return: the index of the report in L{errors}, or L{None}.
        """
        if self.errstatus != 0:
            return None
        if token.kind in ("ERROR", "EOF"):
            message = "syntax error"
        else:
            message = "syntax error at %s" % (token.describe(),)
        if detail:
            message += ": " + detail
        self.errors.append(ConfigProblem(token.filename, token.line, message))
        return len(self.errors) - 1

    def _recover(self):
        """
        Skip to the end of the line after an error; False at the end of input.
        """
        self.errstatus = 3
        while True:
            token = self.peek()
            if token.kind == "EOF":
                return False
            self._look = None
            # A lexical error has already skipped the rest of its line.
            if token.kind == "\n" or (token.kind == "ERROR" and self.profile.lexErrorEndsLine):
                self.errstatus -= 1
                return True

    def statement(self):
        self._first = self.peek()
        self._shifted = 0
        kind = self._first.kind
        if kind == "\n":
            self.advance()
            return
        if kind == "INCLUDE":
            self.include()
        elif kind == "SET":
            self.set()
        elif kind == "USER":
            self.user()
        elif kind == "IKEV2":
            self.ikev2()
        elif kind == "STRING":
            self.varset()
        elif kind in _OTHER_RULES:
            # IKEv1 and manual keying rules of ipsec.conf(5): ignored.
            self.advance()
            self.lexer.skipLine()
        else:
            token = self.peek()
            if token.kind not in _KEYWORD_KINDS:
                raise _SyntaxError(token)
            index = self._syntaxError(token)
            # Look at what follows to explain "esp = ...": the error
            # recovery skips this token without shifting it anyway.
            self._look = None
            if index is not None and self.peek().kind == "=":
                problem = self.errors[index]
                self.errors[index] = ConfigProblem(
                    problem.filename, problem.line, "%s: %s" % (problem.message, _reservedMacro(token))
                )
            raise _Abort()
        self.expect("\n")

    # -- statements

    def include(self):
        self.advance()
        name = self.expect("STRING").value
        identity = fileIdentity(name)
        if identity is not None and self.lexer.includes(identity):
            self.fail("failed to include file %s (include loop)" % (name,))
        try:
            data, identity = readConfigFile(name, self.checkPermissions)
        except UnsafeFileError as e:
            self.fail("failed to include file %s (%s)" % (name, e))
        except OSError as e:
            self.fail("failed to include file %s (%s)" % (name, e.strerror or e))
        self.lexer.pushFile(name, data, identity)
        self.lexer.ungetc("\n")

    def set(self):
        self.advance()
        token = self.peek()
        if token.kind in _SIMPLE_SETS:
            self.advance()
            key, value = _SIMPLE_SETS[token.kind]
            self.settings[key] = value
        elif token.kind == "OCSP":
            self.advance()
            url = self.expect("STRING").value
            tolerate, maxAge = 0, None
            if self.accept("TOLERATE"):
                tolerate = self.timeSpec()
                if self.accept("MAXAGE"):
                    maxAge = self.timeSpec()
            self.settings.update(ocspUrl=url, ocspTolerate=tolerate, ocspMaxAge=maxAge)
        elif token.kind == "DPD_CHECK_INTERVAL":
            self.advance()
            value = self.expect("NUMBER").value
            if value < 0 or value > UINT32_MAX:
                self.fail("timeout outside range")
            self.settings["dpdCheckInterval"] = value
        else:
            raise _SyntaxError(token)

    def user(self):
        self.advance()
        name = self.expect("STRING").value
        password = self.expect("STRING").value
        if not name or len(name.encode()) >= NAME_MAX:
            self.fail("invalid user name")
        if not password or len(password.encode()) >= PASSWORD_SIZE:
            self.fail("invalid password")
        self.users.append(User(name, password, self._nextPosition()))

    def varset(self):
        name = self.advance().value
        self.expect("=")
        words = [self.expect("STRING").value]
        while self.peek().kind == "STRING":
            words.append(self.advance().value)
        if any(c.isspace() for c in name[1:]):
            self.fail("macro name cannot contain whitespace")
        self.lexer.define(name, " ".join(words))

    def _nextPosition(self):
        self.position += 1
        return self.position - 1

    # -- values

    def timeSpec(self):
        """
        Seconds: a number, or a number with C{m} or C{h} (any case).
        """
        token = self.peek()
        if token.kind == "NUMBER":
            self.advance()
            if token.value < 0:
                self.fail("invalid time specification: %s" % (token.text,))
            return token.value
        if token.kind != "STRING":
            raise _SyntaxError(token)
        self.advance()
        number, unit = _numberAndUnit(token.value)
        if number is None:
            self.fail("invalid time specification: %s" % (token.value,))
        unit = unit.lower()
        if unit == "m":
            return number * 60
        if unit == "h":
            return number * 3600
        self.fail("invalid time unit")

    def byteSpec(self):
        """
        Bytes: a number, or a number with C{K}, C{M} or C{G} (any case).
        """
        token = self.peek()
        if token.kind == "NUMBER":
            self.advance()
            if token.value < 0:
                self.fail("invalid byte specification: %s" % (token.text,))
            return token.value
        if token.kind != "STRING":
            raise _SyntaxError(token)
        self.advance()
        number, unit = _numberAndUnit(token.value)
        if number is None:
            self.fail("invalid byte specification: %s" % (token.value,))
        factor = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(unit.upper())
        if factor is None:
            self.fail("invalid byte unit")
        return number * factor

    def hostSpec(self):
        """
        C{STRING} or C{STRING / NUMBER}, resolved: a list of L{_Host}.
        """
        text = self.expect("STRING").value
        if self.accept("/"):
            text = "%s/%d" % (text, self.expect("NUMBER").value)
        try:
            found = _hosts.resolveHost(text)
        except _hosts.HostError as e:
            self.fail("could not parse host specification (%s)" % (e,))
        return [_Host("addr", address, text) for address in found]

    def anyHost(self):
        if self.accept("ANY"):
            return [_Host("any", text="any")]
        return self.hostSpec()

    def host(self):
        if self.accept("ANY"):
            return [_Host("any", text="any")]
        if self.accept("DYNAMIC"):
            return [_Host("dynamic", text="dynamic")]
        found = self.hostSpec()
        if self.accept("("):
            nat = self.hostSpec()
            self.expect(")")
            if found[0].family != nat[0].family:
                self.fail("Flow NAT address family mismatch")
            found[0].srcNat = nat[0].address
        return found

    def port(self):
        if not self.accept("PORT"):
            return None
        token = self.peek()
        if token.kind == "STRING":
            self.advance()
            port = _hosts.servicePort(token.value)
            if port is None:
                self.fail("unknown port: %s" % (token.value,))
            return port
        if token.kind == "NUMBER":
            self.advance()
            if token.value < 0 or token.value > 65535:
                self.fail("port outside range")
            return token.value
        raise _SyntaxError(token)

    def protoValue(self):
        token = self.peek()
        if token.kind == "STRING":
            self.advance()
            number = _hosts.protocolNumber(token.value)
            if number is None:
                self.fail("unknown protocol: %s" % (token.value,))
            return number
        if token.kind == "NUMBER":
            self.advance()
            if token.value < 0 or token.value > 255:
                self.fail("protocol outside range")
            return token.value
        raise _SyntaxError(token)

    def hosts(self):
        first = self.advance().kind
        a = self.host()
        aPort = self.port()
        self.expect("TO" if first == "FROM" else "FROM")
        b = self.host()
        bPort = self.port()
        src, dst = (a, b) if first == "FROM" else (b, a)
        srcPort, dstPort = (aPort, bPort) if first == "FROM" else (bPort, aPort)
        for entry in dst:
            if entry.srcNat is not None:
                self.fail("no flow NAT support for destination network: %s" % (entry.text,))
        # iked gives the port to the first address of a list only; port 0
        # is no port.
        src[0].port = srcPort or None
        dst[0].port = dstPort or None
        return src, dst

    def transforms(self, ike):
        spec = xf.ProposalSpec()
        tables = {
            "AUTHXF": (spec.integrity, xf.INTEGRITY),
            "ENCXF": (spec.encryption, (xf.IKE_ENCRYPTION_EXTENDED if self.profile.ikeChaCha else xf.IKE_ENCRYPTION)
                      if ike else xf.ESP_ENCRYPTION),
            "PRFXF": (spec.prf, xf.PRF),
            "GROUP": (spec.groups, xf.GROUPS),
        }
        while True:
            token = self.peek()
            if token.kind in tables:
                self.advance()
                name = self.expect("STRING").value
                into, table = tables[token.kind]
                row = xf.lookup(name, table)
                if row is None:
                    self.fail("%s not a valid transform" % (name,))
                into.append(row)
            elif token.kind in ("ESN", "NOESN"):
                self.advance()
                spec.esn.append(xf.lookup(token.text, xf.ESN))
            else:
                break
        return spec

    def keySpec(self):
        if self.accept("FILENAME"):
            path = self.expect("STRING").value
            return self._keyFile(path)
        text = self.expect("STRING").value
        if text.startswith("0x"):
            return self._hexKey(text[2:])
        data = text.encode("utf-8", "surrogateescape")
        if len(data) > PSK_SIZE:
            self.fail("psk too long")
        return data

    def _hexKey(self, digits):
        if not all(c in "0123456789abcdefABCDEF" for c in digits):
            self.fail("keys need to be specified in hex digits")
        if len(digits) % 2:
            self.fail("keys need to be specified in hex digits (an odd number of them was given)")
        if len(digits) // 2 > PSK_SIZE:
            self.fail("psk too long")
        return bytes.fromhex(digits)

    def _keyFile(self, path):
        try:
            data, _ = readConfigFile(path, self.checkPermissions)
        except UnsafeFileError as e:
            self.fail("%s: %s" % (path, e))
        except OSError as e:
            self.fail("open %s: %s" % (path, e.strerror or e))
        if not data:
            self.fail("%s: key too small" % (path,))
        if len(data) > KEYFILE_LIMIT:
            self.fail("%s: key too large" % (path,))
        return self._hexKey(data.decode("latin-1").rstrip("\r\n"))

    def ikeAuth(self):
        token = self.peek()
        if token.kind == "PSK":
            self.advance()
            return Auth("psk", psk=self.keySpec())
        if token.kind == "EAP":
            self.advance()
            name = self.expect("STRING").value.replace("-", "_")
            if name.lower() != "mschap_v2":
                self.fail("unsupported EAP method: %s" % (name,))
            return Auth("eap", eapType=EapType.MSCHAP_V2)
        if token.kind == "STRING":
            self.advance()
            method = None
            for name in xf.AUTH_METHOD_NAMES:
                if name.startswith(token.value):
                    method = name
                    break
            if method is None or method == "none":
                self.fail("not a valid authentication mode")
            return Auth(method)
        return Auth()

    def configOption(self):
        request = self.advance().kind == "REQUEST"
        kind = self.expect("STRING").value
        found = self.anyHost() if request else self.hostSpec()
        first = found[0]
        row = xf.lookup(
            kind, xf.CONFIG_OPTIONS, lambda row: first.family is None or row.family == first.family
        )
        if row is None:
            self.fail("not a valid ikecfg option")
        if first.kind == "any":
            return ConfigOption(row.name, None, request, row.attribute)
        address = first.address
        if address.isNetwork:
            value = ip_network((_unscoped(address.address), address.prefixLength), strict=False)
            prefix = address.prefixLength
        else:
            value, prefix = address.address, None
        return ConfigOption(row.name, value, request, row.attribute, address.address, prefix)

    def filters(self, draft):
        """
        C{tag} and C{tap}; True if any was read.
        """
        seen = False
        while True:
            token = self.peek()
            if token.kind == "TAG":
                self.advance()
                draft.tag = self.expect("STRING").value
            elif token.kind == "TAP":
                self.advance()
                name = self.expect("STRING").value
                digit = next((i for i, c in enumerate(name) if "0" <= c <= "9"), len(name))
                if name[:digit] != "enc":
                    self.fail("invalid tap interface name: %s" % (name,))
                unit = name[digit:]
                if not unit or not all("0" <= c <= "9" for c in unit):
                    self.fail("invalid tap interface unit: invalid")
                if int(unit) > UINT32_MAX:
                    self.fail("invalid tap interface unit: too large")
                draft.tap = int(unit)
            else:
                return seen
            seen = True

    # -- the ikev2 rule

    def ikev2(self):
        self.advance()
        d = _Draft()
        if self.peek().kind == "STRING":
            d.name = self.advance().value
        token = self.accept("QUICK", "SKIP", "DEFAULT")
        if token:
            d.match = token.kind
        token = self.accept("PASSIVE", "ACTIVE")
        d.active = bool(token) and token.kind == "ACTIVE"
        d.ipcomp = bool(self.accept("IPCOMP"))
        token = self.accept("TUNNEL", "TRANSPORT")
        d.transport = bool(token) and token.kind == "TRANSPORT"
        d.natt = bool(self.accept("NATT"))
        token = self.accept("ESP", "AH")
        if token and token.kind == "AH":
            d.saProtocol = ProtocolId.AH
        token = self.accept("INET", "INET6")
        if token:
            d.af = 4 if token.kind == "INET" else 6
        if self.accept("PROTO"):
            if self.accept("{"):
                d.protocols.append(self.protoValue())
                while not self.accept("}"):
                    self.accept(",")
                    d.protocols.append(self.protoValue())
            else:
                d.protocols.append(self.protoValue())
        if self.accept("RDOMAIN"):
            value = self.expect("NUMBER").value
            if not self.profile.rdomain:
                self.fail("'rdomain' is not supported on this platform")
            if value < 0 or value > 255:
                self.fail("rdomain outside range")
            d.rdomain = value
        if self.peek().kind not in ("FROM", "TO"):
            raise _SyntaxError(self.peek())
        while True:
            src, dst = self.hosts()
            d.srcs.extend(src)
            d.dsts.extend(dst)
            if self.accept(","):
                if self.peek().kind not in ("FROM", "TO"):
                    raise _SyntaxError(self.peek())
            elif self.peek().kind not in ("FROM", "TO"):
                break
        token = self.accept("PEER", "LOCAL")
        if token:
            if token.kind == "PEER":
                d.peer = self.anyHost()[0]
                if self.accept("LOCAL"):
                    d.local = self.anyHost()[0]
            else:
                d.local = self.anyHost()[0]
                if self.accept("PEER"):
                    d.peer = self.anyHost()[0]
        while self.accept("IKESA"):
            d.ikeSpecs.append(self.transforms(ike=True))
        while self.accept("CHILDSA"):
            d.childSpecs.append(self.transforms(ike=False))
        if self.accept("SRCID"):
            d.srcId = self.expect("STRING").value
        if self.accept("DSTID"):
            d.dstId = self.expect("STRING").value
        if self.accept("IKELIFETIME"):
            d.ikeLifetime = self.timeSpec()
            if d.ikeLifetime > UINT32_MAX:
                self.fail("ikelifetime outside range")
        if self.accept("LIFETIME"):
            d.lifetime = self.timeSpec()
            if self.accept("BYTES"):
                d.lifetimeBytes = self.byteSpec()
        d.auth = self.ikeAuth()
        while self.peek().kind in ("CONFIG", "REQUEST"):
            d.configOptions.append(self.configOption())
        if self.accept("IFACE"):
            d.iface = self.expect("STRING").value
        # iked ends the rule right after a tag or tap whatever follows; else
        # only at the end of the line.
        if not self.filters(d) and self.peek().kind != "\n":
            raise _SyntaxError(self.peek())
        self.createIke(d)

    def createIke(self, d):
        """
        iked's create_ike(): check the rule as a whole, apply the defaults
        and record the L{Policy}.
        """
        self.policyCount += 1
        if len(d.protocols) > IPPROTO_MAX:
            self.fail("too many protocols")
        if d.name is None:
            name = "policy%d" % (self.policyCount,)
        else:
            name = d.name
            if len(name.encode()) >= ID_SIZE:
                self.fail("name too long")
        if d.iface is not None and not _hosts.interfaceExists(d.iface):
            self.fail("invalid iface")
        ids = []
        for label, text in (("srcid", d.srcId), ("dstid", d.dstId)):
            if text is None:
                ids.append(None)
                continue
            if len(text.encode()) >= ID_SIZE:
                self.fail("%s too long" % (label,))
            identity = Identity.fromString(text)
            if identity.type == identity.type.DER_ASN1_DN:
                try:
                    identity.data()
                except InvalidDN as e:
                    self.fail("%s: invalid ASN1_DN %s (%s)" % (label, text, e.reason))
            ids.append(identity)

        if d.local is not None and d.peer is not None:
            if d.local.family and d.peer.family and d.local.family != d.peer.family:
                self.fail("peer address family mismatch")
        if d.af is not None:
            for end in (d.local, d.peer):
                if end is not None and end.family and end.family != d.af:
                    self.fail("policy address family mismatch")
        local, peer = d.local, d.peer
        if local is None and peer is None:
            if len(d.srcs) == 1:
                local = d.srcs[0]
            if len(d.dsts) == 1:
                peer = d.dsts[0]
        if local is None and peer is None:
            self.fail("could not get local/peer specification")
        if d.active:
            if peer is None or peer.isNetwork or (local is not None and local.isNetwork):
                self.fail("active mode requires local/peer address")
        af = d.af
        for end in (local, peer):
            if af is None and end is not None and end.family:
                af = end.family

        # (iked crashes on these.)
        if any(spec.isEmpty() for spec in d.ikeSpecs):
            self.fail("ikesa needs at least one of auth, enc, prf, group")
        if any(spec.isEmpty() for spec in d.childSpecs):
            self.fail("childsa needs at least one of auth, enc, group, esn, noesn")
        try:
            ikeProposals = xf.ikeProposals(d.ikeSpecs)
            childProposals = xf.childProposals(d.childSpecs, d.saProtocol, self.profile)
        except xf.ProposalError as e:
            self.fail(str(e))
        for proposal in ikeProposals + childProposals:
            for t in proposal.ofType(TransformType.DH):
                if t.id in xf.UNSUPPORTED_GROUPS and self.profile.refuseUnsupportedGroups:
                    self.fail(xf.UNSUPPORTED_GROUPS[t.id])

        flows = {}
        for src, dst in zip(d.srcs, d.dsts):
            for protocol in d.protocols or [0]:
                for flow in self._expandFlows(protocol, src, dst):
                    key = _flowKey(flow)
                    if key in flows:
                        self.warn("duplicate flow")
                        continue
                    flows[key] = flow

        self.policies.append(
            Policy(
                name=name,
                quick=d.match == "QUICK",
                skip=d.match == "SKIP",
                default=d.match == "DEFAULT",
                active=d.active,
                ipcomp=d.ipcomp,
                mode="transport" if d.transport else "tunnel",
                natt=d.natt,
                saProtocol=d.saProtocol,
                af={None: None, 4: "inet", 6: "inet6"}[af],
                ipProtocols=tuple(d.protocols),
                rdomain=d.rdomain,
                flows=tuple(flows[k] for k in sorted(flows)),
                local=_endpoint(local),
                peer=_endpoint(peer),
                localAddress=None if local is None or local.kind != "addr" else local.address,
                peerAddress=None if peer is None or peer.kind != "addr" else peer.address,
                ikeProposals=ikeProposals,
                childProposals=childProposals,
                srcId=ids[0],
                dstId=ids[1],
                ikeLifetime=d.ikeLifetime,
                lifetime=d.lifetime,
                lifetimeBytes=d.lifetimeBytes,
                auth=d.auth,
                configOptions=tuple(d.configOptions),
                iface=d.iface,
                tag=None if d.tag is None else _truncate(d.tag, TAG_SIZE - 1),
                tap=None if not d.tap else "enc%d" % (d.tap,),
                filename=self.lexer.filename,
                line=self.lexer.line,
                position=self._nextPosition(),
            )
        )

    def _expandFlows(self, protocol, src, dst):
        """
        iked's expand_flows(): a flow for a pair of hosts; C{any} and
        C{dynamic} take the other side's family, or give one flow per
        family when both sides have none.
        """
        if src.family is None and dst.family is None:
            return [
                self._flow(protocol, src, dst, family, family) for family in (4, 6)
            ]
        if src.family is None:
            return [self._flow(protocol, src, dst, dst.family, dst.family)]
        if dst.family is None:
            return [self._flow(protocol, src, dst, src.family, src.family)]
        if src.family != dst.family:
            self.fail("cannot mix different address families.")
        return [self._flow(protocol, src, dst, src.family, dst.family)]

    def _flow(self, protocol, src, dst, srcFamily, dstFamily):
        srcNat = None
        if src.srcNat is not None:
            srcNat = _selector(_Host("addr", src.srcNat), None, srcFamily)
        return Flow(
            _selector(src, src.port, srcFamily, self.profile.keepPortOnAny),
            _selector(dst, dst.port, dstFamily, self.profile.keepPortOnAny),
            protocol,
            srcNat,
        )


def _selector(host, port, family, keepPortOnAny=True):
    zero = "0.0.0.0" if family == 4 else "::"
    if host.kind == "any":
        return Selector(ip_network("%s/0" % zero), port if keepPortOnAny else None, any=True)
    if host.kind == "dynamic":
        return Selector(ip_network(zero), port if keepPortOnAny else None, showPrefix=False, dynamic=True)
    a = host.address
    network = ip_network((_unscoped(a.address), a.prefixLength), strict=False)
    return Selector(network, port, address=a.address, showPrefix=a.isNetwork)


def _unscoped(address):
    if getattr(address, "scope_id", None):
        return type(address)(str(address).split("%")[0])
    return address


def _endpoint(host):
    if host is None or host.kind != "addr":
        return None
    if host.address.name is not None:
        return host.address.name
    return host.address.network


def _truncate(text, size):
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= size:
        return text
    return data[:size].decode("utf-8", "ignore")


def _numberAndUnit(text):
    """
    C{sscanf(text, "%llu%c")}: the leading number and the character after
    it, or (None, None).
    """
    i = 0
    while i < len(text) and text[i].isspace():
        i += 1
    j = i
    while j < len(text) and "0" <= text[j] <= "9":
        j += 1
    if j == i or j >= len(text):
        return None, None
    return int(text[i:j]), text[j]


def splitDefine(define):
    """
    Split a C{-D} definition C{name=value}.

    @raise ValueError: it is not one (no C{=}, or a name that is not
        letters, digits and underscores).
    """
    name, sep, value = define.partition("=")
    if not sep:
        raise ValueError("could not parse macro definition %s (expected macro=value)" % (define,))
    if not name or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        raise ValueError("could not parse macro definition %s (invalid macro name %r)" % (define, name))
    return name, value

# -*- test-case-name: tests.test_config_parser -*-
"""
The iked.conf(5) grammar: a hand-written recursive descent parser over
L{ikedtx.config.lexer}.  What an ikev2 rule says becomes a policy in
L{ikedtx.config.policy}; the files it reads are read by
L{ikedtx.config.files}.

The grammar is iked's parse.y, statement by statement (each ends at a
newline)::

    include STRING
    set (active|passive|couple|decouple|fragmentation|nofragmentation|
         mobike|nomobike|vendorid|novendorid|enforcesingleikesa|
         noenforcesingleikesa|stickyaddress|nostickyaddress|
         cert_partial_chain|dpd_check_interval NUMBER|
         ocsp STRING [tolerate TIME [maxage TIME]])
    user STRING STRING
    radius [accounting] server STRING [port P] secret STRING    (OpenBSD 7.6)
    radius [accounting] (max-tries|max-failovers) NUMBER
    radius config [inet|inet6] STRING NUMBER [NUMBER]
    radius dae listen on STRING [port P]
    radius dae client STRING secret STRING
    STRING = STRING...                          (a macro)
    ike|flow|tcpmd5|sa|from|to|tunnel|transport ...   (ignored line)
    ikev2 [STRING] [quick|skip|default] [passive|active] [ipcomp]
          [tunnel|transport] [natt] [esp|ah] [inet|inet6]
          [proto P | proto { P [,] P ... }] [rdomain NUMBER]
          (from HOST [port P] to HOST [port P] | to ... from ...) [[,] ...]
          [peer ANYHOST [local ANYHOST] | local ANYHOST [peer ANYHOST]]
          [ikesa TRANSFORMS]... [childsa TRANSFORMS]...
          [srcid STRING] [dstid STRING] [ikelifetime TIME [reauth]]
          [lifetime TIME [bytes BYTES]]
          [psk STRING | psk file STRING | eap STRING | eap radius | STRING]
          [config STRING HOST | request STRING ANYHOST]...
          [iface STRING] [tag STRING | tap STRING]...

Errors are handled the way iked's (bison) parser handles them, so that the
same file gives the same messages on the same lines: an error is reported
with the line of the last token read, the rest of the line is skipped,
and a syntax error within the next three tokens is not reported again.
"""

from ipaddress import ip_address, ip_network

from ikedtx.config import hosts as _hosts
from ikedtx.config import transforms as xf
from ikedtx.config.errors import ConfigError, ConfigProblem
from ikedtx.config.files import FileProblem, readIncludedFile, readKeyFile
from ikedtx.config.lexer import KEYWORDS, RADIUS_KEYWORDS, Lexer
from ikedtx.config.model import (
    RADIUS_ACCT_PORT,
    RADIUS_AUTH_PORT,
    RADIUS_DAE_PORT,
    Auth,
    Config,
    ConfigOption,
    RadiusConfigMap,
    RadiusDaeClient,
    RadiusServerEntry,
    RadiusSettings,
    Settings,
    User,
)
from ikedtx.config.policy import PolicyBuilder, _Draft, _Host, _unscoped
from ikedtx.crypto.kex import variableTimeMethods
from ikedtx.wire.constants import EapType, ProtocolId


PSK_SIZE = 1024
NAME_MAX = 256
PASSWORD_SIZE = 256
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


class Parser(PolicyBuilder):
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
        if not profile.radius:
            for word in RADIUS_KEYWORDS:
                del keywords[word]
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
        self.radius = {}
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
            radius=RadiusSettings(**self.radius),
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
        elif kind == "RADIUS":
            self.radiusStatement()
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
        try:
            data, identity = readIncludedFile(name, self.checkPermissions, self.lexer.includes)
        except FileProblem as e:
            self.fail(str(e))
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

    def _numericAddress(self, text):
        """
        An IP address as iked's getaddrinfo(AI_NUMERICHOST) takes it.
        """
        try:
            return ip_address(text)
        except ValueError:
            self.fail("could not parse the address: %s" % (text,))

    def radiusStatement(self):
        """
        OpenBSD 7.6's C{radius} lines (parse.y's C{radius} rule).
        """
        self.advance()
        token = self.peek()
        if token.kind in ("CONFIG", "DAE"):
            self.advance()
            if token.kind == "CONFIG":
                self._radiusConfig()
            else:
                self._radiusDae()
            return
        accounting = self.accept("ACCOUNTING") is not None
        token = self.peek()
        if token.kind == "SERVER":
            self.advance()
            address = self._numericAddress(self.expect("STRING").value)
            port = self.port()
            self.expect("SECRET")
            secret = self.expect("STRING").value
            if not port:
                port = RADIUS_ACCT_PORT if accounting else RADIUS_AUTH_PORT
            key = "accountingServers" if accounting else "servers"
            entry = RadiusServerEntry(address, port, secret, accounting)
            self.radius[key] = self.radius.get(key, ()) + (entry,)
        elif token.kind == "MAX_TRIES":
            self.advance()
            value = self.expect("NUMBER").value
            if value <= 0:
                self.fail("max-tries must a positive value")
            self.radius["accountingMaxTries" if accounting else "maxTries"] = value
        elif token.kind == "MAX_FAILOVERS":
            self.advance()
            value = self.expect("NUMBER").value
            if value < 0:
                self.fail("max-failovers must be 0 or a positive value")
            self.radius["accountingMaxFailovers" if accounting else "maxFailovers"] = value
        else:
            raise _SyntaxError(token)

    def _hexDecNumber(self):
        """
        parse.y's C{hexdecnumber}: a number, or a STRING of C{0x} and hex
        digits.
        """
        token = self.peek()
        if token.kind == "NUMBER":
            self.advance()
            return token.value
        text = self.expect("STRING").value
        if text.startswith("0x") and len(text) > 2:
            try:
                return int(text[2:], 16)
            except ValueError:
                pass
        self.fail("`%s' is not a number" % (text,))

    def _radiusConfig(self):
        family = {"INET": 4, "INET6": 6}.get(self.peek().kind)
        if family is not None:
            self.advance()
        name = self.expect("STRING").value
        numbers = [self._hexDecNumber()]
        if self.peek().kind in ("NUMBER", "STRING"):
            numbers.append(self._hexDecNumber())
        if len(numbers) == 2:
            vendor, attribute = numbers
            if vendor < 0 or vendor > 0xFFFFFF:
                self.fail("vendor-id must be in 0-0xffffff")
        else:
            vendor, attribute = 0, numbers[0]
        if attribute < 0 or attribute > 255:
            self.fail("attribute type must be in 0-255")
        if name == "none":
            option = 0
        else:
            row = xf.lookup(name, xf.CONFIG_OPTIONS, lambda row: row.family == (family or 4))
            if row is None or row.name == "protected-subnet":
                self.fail("not a valid ikecfg option")
            option = row.attribute
        self.radius["configMaps"] = self.radius.get("configMaps", ()) + (RadiusConfigMap(option, vendor, attribute),)

    def _radiusDae(self):
        token = self.peek()
        if token.kind == "LISTEN":
            self.advance()
            self.expect("ON")
            address = self._numericAddress(self.expect("STRING").value)
            port = self.port() or RADIUS_DAE_PORT
            self.radius["daeListen"] = self.radius.get("daeListen", ()) + ((address, port),)
        elif token.kind == "CLIENT":
            self.advance()
            address = self._numericAddress(self.expect("STRING").value)
            self.expect("SECRET")
            secret = self.expect("STRING").value
            client = RadiusDaeClient(address, secret)
            self.radius["daeClients"] = self.radius.get("daeClients", ()) + (client,)
        else:
            raise _SyntaxError(token)

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
                if token.kind == "GROUP" and row.id in variableTimeMethods():
                    self.warn("group %s is computed in pure Python, not in constant time: its "
                              "timing may leak the private value" % (name,))
                into.append(row)
            elif token.kind in ("ESN", "NOESN"):
                self.advance()
                spec.esn.append(xf.lookup(token.text, xf.ESN))
            elif token.kind == "ADDKE":
                self.advance()
                name = self.expect("STRING").value
                # Exact names: a prefix would make "addke1 mlkem" mean
                # whichever ML-KEM comes first.
                row = next((r for r in xf.ADDITIONAL_GROUPS if r.name == name), None)
                if row is None:
                    self.fail("%s not a valid additional key exchange" % (name,))
                if row.id in variableTimeMethods():
                    self.warn("%s %s is computed in pure Python, not in constant time: its "
                              "timing may leak the private value" % (token.text, name))
                spec.additional.setdefault(int(token.text[5:]), []).append(row)
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
            text = readKeyFile(path, self.checkPermissions)
        except FileProblem as e:
            self.fail(str(e))
        return self._hexKey(text)

    def ikeAuth(self):
        token = self.peek()
        if token.kind == "PSK":
            self.advance()
            return Auth("psk", psk=self.keySpec())
        if token.kind == "EAP":
            self.advance()
            if self.accept("RADIUS"):
                return Auth("eap", eapRadius=True)
            name = self.expect("STRING").value.replace("-", "_")
            if name.lower() == "radius" and self.profile.radius:
                return Auth("eap", eapRadius=True)
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
            # An ikedtx extension (iked has none): renew the IKE SA by
            # reauthentication (RFC 7296 2.8.3) instead of a rekey.
            d.reauth = bool(self.accept("REAUTH"))
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

# -*- test-case-name: tests.test_config_lexer -*-
"""
The iked.conf(5) lexer: characters to tokens, with macros, C{include}d
files, C{\\} line continuation and comments.

It reads the way iked's does, because the language is defined by it:

  - A backslash joins the next line; before any other character it is
    dropped and the character kept (outside quotes).
  - C{#} at the start of a token comments out the rest of the line (a
    continued line included).
  - C{"..."} and C{'...'} make one string token, never a keyword; inside,
    a backslash escapes the quote, a space or a tab, and newlines are
    dropped.  Macros are not expanded inside quotes.
  - A word of letters, digits and most punctuation is a keyword or a
    string; a run of digits (optionally negative) ended by a space or one of
    C{) , / } =} is a number.
  - C{$name} at the start of a token is replaced by the macro's value,
    which is lexed again (so a macro may hold several tokens, keywords
    included, but not another macro).
  - Each file ends with a newline token, so that a last line without a
    newline still ends its statement.

The parser pulls tokens one at a time (L{Lexer.token}), so a macro defined
on one line is known from the next one on, and an C{include} starts
reading the included file (L{Lexer.pushFile}) right after its name.
"""

import os
from dataclasses import dataclass

_START_EXPAND = "\x01"
_DONE_EXPAND = "\x02"
EOF = None

KEYWORDS = {
    "active": "ACTIVE",
    # ikedtx extension: RFC 9370 additional key exchanges (iked has none).
    **{"addke%d" % (n,): "ADDKE" for n in range(1, 8)},
    "ah": "AH",
    "any": "ANY",
    "auth": "AUTHXF",
    "bytes": "BYTES",
    "cert_partial_chain": "CERTPARTIALCHAIN",
    "childsa": "CHILDSA",
    "config": "CONFIG",
    "couple": "COUPLE",
    "decouple": "DECOUPLE",
    "default": "DEFAULT",
    "dpd_check_interval": "DPD_CHECK_INTERVAL",
    "dstid": "DSTID",
    "dynamic": "DYNAMIC",
    "eap": "EAP",
    "enc": "ENCXF",
    "enforcesingleikesa": "ENFORCESINGLEIKESA",
    "esn": "ESN",
    "esp": "ESP",
    "file": "FILENAME",
    "flow": "FLOW",
    "fragmentation": "FRAGMENTATION",
    "from": "FROM",
    "group": "GROUP",
    "iface": "IFACE",
    "ike": "IKEV1",
    "ikelifetime": "IKELIFETIME",
    "ikesa": "IKESA",
    "ikev2": "IKEV2",
    "include": "INCLUDE",
    "inet": "INET",
    "inet6": "INET6",
    "ipcomp": "IPCOMP",
    "lifetime": "LIFETIME",
    "local": "LOCAL",
    "maxage": "MAXAGE",
    "mobike": "MOBIKE",
    "name": "NAME",
    "natt": "NATT",
    "noenforcesingleikesa": "NOENFORCESINGLEIKESA",
    "noesn": "NOESN",
    "nofragmentation": "NOFRAGMENTATION",
    "nomobike": "NOMOBIKE",
    "nostickyaddress": "NOSTICKYADDRESS",
    "novendorid": "NOVENDORID",
    "ocsp": "OCSP",
    "passive": "PASSIVE",
    "peer": "PEER",
    "port": "PORT",
    "prf": "PRFXF",
    "proto": "PROTO",
    "psk": "PSK",
    "quick": "QUICK",
    "rdomain": "RDOMAIN",
    "reauth": "REAUTH",
    "request": "REQUEST",
    "sa": "SA",
    "set": "SET",
    "skip": "SKIP",
    "srcid": "SRCID",
    "stickyaddress": "STICKYADDRESS",
    "tag": "TAG",
    "tap": "TAP",
    "tcpmd5": "TCPMD5",
    "to": "TO",
    "tolerate": "TOLERATE",
    "transport": "TRANSPORT",
    "tunnel": "TUNNEL",
    "user": "USER",
    "vendorid": "VENDORID",
    # OpenBSD 7.6's RADIUS statements (not in openiked 7.2: see
    # RADIUS_KEYWORDS and Profile.radius).
    "accounting": "ACCOUNTING",
    "client": "CLIENT",
    "dae": "DAE",
    "listen": "LISTEN",
    "max-failovers": "MAX_FAILOVERS",
    "max-tries": "MAX_TRIES",
    "on": "ON",
    "radius": "RADIUS",
    "secret": "SECRET",
    "server": "SERVER",
}

RADIUS_KEYWORDS = ("accounting", "client", "dae", "listen", "max-failovers", "max-tries", "on", "radius", "secret", "server")

MAX_TOKEN = 8096


def _isspace(c):
    return c is not None and c in " \t\n\v\f\r"


def _isdigit(c):
    return c is not None and "0" <= c <= "9"


def _isalnum(c):
    return c is not None and len(c) == 1 and (c.isascii() and c.isalnum())


def _ispunct(c):
    return c is not None and len(c) == 1 and 33 <= ord(c) <= 126 and not c.isalnum()


def _allowedToEndNumber(c):
    return _isspace(c) or c in (")", "/", ",", "}", "=")


def _allowedInString(c):
    return _isalnum(c) or (_ispunct(c) and c not in "(){}<>!=/#,")


@dataclass(frozen=True)
class Token:
    """
    One token.

    @ivar kind: C{"STRING"}, C{"NUMBER"}, a keyword's token name (C{"IKEV2"},
        C{"FROM"}...), C{"ERROR"} (a lexical error, already reported),
        C{"EOF"}, or the character itself for punctuation (C{"\\n"},
        C{"{"}, C{"/"}...).
    @ivar value: the string's text, the number's value, else L{None}.
    @ivar text: the token as written (for error messages).
    @ivar line: its line number.
    @ivar filename: its file.
    """

    kind: str
    value: object
    text: str
    line: int
    filename: str

    def describe(self):
        """
        The token for an error message.
        """
        if self.kind == "EOF":
            return "end of file"
        if self.kind == "\n":
            return "end of line"
        return '"%s"' % (self.text,)


class _File:
    """
    A file being read.

    @ivar name: the name it is reported under.
    @ivar text: its contents, one character per byte (latin-1).
    @ivar pos: the next character's index.
    @ivar line: the current line number.
    @ivar unget: characters pushed back, last out first.
    @ivar eofReached: the end-of-file newline has been given.
    @ivar identity: (st_dev, st_ino), to detect include loops.
    """

    def __init__(self, name, text, line, identity=None):
        self.name = name
        self.text = text
        self.pos = 0
        self.line = line
        self.unget = []
        self.eofReached = False
        self.identity = identity

    def getc(self):
        if self.pos >= len(self.text):
            return EOF
        c = self.text[self.pos]
        self.pos += 1
        return c


class Lexer:
    """
    Turns a stack of files into tokens.

    @ivar macros: the macro table: name -> value.
    @ivar persistent: macro names defined on the command line, which the
        file cannot redefine.
    @ivar used: names of macros that were expanded.
    @ivar line: the line of the most recent token (iked's C{yylval.lineno}):
        the line errors found while reducing a rule are reported on.
    @ivar filename: the file of the most recent token.
    @ivar onError: called with (filename, line, message) for lexical errors.
    @ivar keywords: reserved word -> token kind.
    """

    def __init__(self, onError, keywords=KEYWORDS):
        self.onError = onError
        self.keywords = keywords
        self.macros = {}
        self.persistent = set()
        self.used = set()
        self._files = []
        self._expanding = False
        self.line = 0
        self.filename = "<string>"

    # -- files

    @property
    def file(self):
        return self._files[-1]

    def pushFile(self, name, data, identity=None):
        """
        Start reading C{data} (bytes or str) as file C{name}, before the rest
        of the current file.  The first file's lines count from 1; an
        included file starts at line 0, and the parser's newline (pushed
        with L{ungetc}) ends the C{include} statement and steps to line 1.
        """
        if isinstance(data, bytes):
            data = data.decode("latin-1")
        self._files.append(_File(name, data, 0 if self._files else 1, identity))

    def includes(self, identity):
        """
        Whether the file with C{identity} is being read already.
        """
        return any(f.identity is not None and f.identity == identity for f in self._files)

    def _popFile(self):
        """
        Finish the current file; False if it was the first one.
        """
        if len(self._files) == 1:
            return False
        self._files.pop()
        return True

    # -- macros

    def define(self, name, value, persistent=False):
        """
        Define a macro; a persistent one (C{-D}) is not redefined by the file.
        """
        if name in self.persistent and not persistent:
            return
        self.macros[name] = value
        if persistent:
            self.persistent.add(name)

    # -- characters

    def _igetc(self):
        f = self.file
        while True:
            if f.unget:
                c = f.unget.pop()
            else:
                c = f.getc()
            if c == _START_EXPAND:
                self._expanding = True
            elif c == _DONE_EXPAND:
                self._expanding = False
            else:
                return c

    def _lgetc(self, quote=None):
        if quote is not None:
            c = self._igetc()
            if c is EOF:
                self.onError(self.file.name, self.line, "reached end of file while parsing quoted string")
                if not self._popFile():
                    return EOF
                return quote
            return c
        while True:
            c = self._igetc()
            if c != "\\":
                break
            nxt = self._igetc()
            if nxt != "\n":
                c = nxt
                break
            self.line = self.file.line
            self.file.line += 1
        while c is EOF:
            # The end of each file reads as a newline first, so that a last
            # line without one ends its statement in the right file.
            if not self.file.eofReached:
                self.file.eofReached = True
                return "\n"
            if not self._popFile():
                return EOF
            c = self._igetc()
        return c

    def ungetc(self, c):
        """
        Push a character back (the parser pushes the newline that ends an
        C{include} into the included file).
        """
        if c is not EOF:
            self.file.unget.append(c)

    def skipLine(self):
        """
        Skip raw characters up to (not including) the end of the line, as
        iked does for the IKEv1 and manual keying rules it ignores.
        """
        while True:
            c = self._lgetc()
            if c == "\n" or c is EOF:
                self.ungetc(c)
                return

    def _findEol(self):
        while True:
            c = self._lgetc()
            if c == "\n":
                self.file.line += 1
                break
            if c is EOF:
                break
        return self._token("ERROR", None, "")

    # -- tokens

    def _token(self, kind, value, text):
        return Token(kind, value, text, self.line, self.filename)

    def token(self):
        """
        Read the next token.
        """
        while True:
            buf = []
            c = self._lgetc()
            while c == " " or c == "\t":
                c = self._lgetc()
            self.line = self.file.line
            self.filename = self.file.name
            if c == "#":
                c = self._lgetc()
                while c != "\n" and c is not EOF:
                    c = self._lgetc()
            if c == "$" and not self._expanding:
                while True:
                    c = self._lgetc()
                    if c is EOF:
                        return self._token("EOF", None, "")
                    if len(buf) + 1 >= MAX_TOKEN - 1:
                        self.onError(self.file.name, self.line, "string too long")
                        return self._findEol()
                    if _isalnum(c) or c == "_":
                        buf.append(c)
                        continue
                    self.ungetc(c)
                    break
                name = _text("".join(buf))
                if name not in self.macros:
                    self.onError(self.file.name, self.line, "macro '%s' not defined" % (name,))
                    return self._findEol()
                self.used.add(name)
                value = self.macros[name]
                self.ungetc(_DONE_EXPAND)
                for ch in reversed(_raw(value)):
                    self.ungetc(ch)
                self.ungetc(_START_EXPAND)
                continue
            return self._lexAfter(c, buf)

    def _lexAfter(self, c, buf):
        if c == "'" or c == '"':
            quote = c
            while True:
                c = self._lgetc(quote)
                if c is EOF:
                    return self._token("EOF", None, "")
                if c == "\n":
                    self.file.line += 1
                    continue
                if c == "\\":
                    nxt = self._lgetc(quote)
                    if nxt is EOF:
                        return self._token("EOF", None, "")
                    if nxt == quote or nxt == " " or nxt == "\t":
                        c = nxt
                    elif nxt == "\n":
                        self.file.line += 1
                        continue
                    else:
                        self.ungetc(nxt)
                elif c == quote:
                    break
                elif c == "\0":
                    self.onError(self.file.name, self.line, "syntax error")
                    return self._findEol()
                if len(buf) + 1 >= MAX_TOKEN - 1:
                    self.onError(self.file.name, self.line, "string too long")
                    return self._findEol()
                buf.append(c)
            text = _text("".join(buf))
            return self._token("STRING", text, quote + text + quote)

        if c == "-" or _isdigit(c):
            while True:
                buf.append(c)
                if len(buf) >= MAX_TOKEN:
                    self.onError(self.file.name, self.line, "string too long")
                    return self._findEol()
                c = self._lgetc()
                if c is EOF or not _isdigit(c):
                    break
            self.ungetc(c)
            if not (len(buf) == 1 and buf[0] == "-") and (c is EOF or _allowedToEndNumber(c)):
                text = "".join(buf)
                value = int(text)
                if value > 2**63 - 1:
                    self.onError(self.file.name, self.line, '"%s" invalid number: too large' % (text,))
                    return self._findEol()
                if value < -(2**63):
                    self.onError(self.file.name, self.line, '"%s" invalid number: too small' % (text,))
                    return self._findEol()
                return self._token("NUMBER", value, text)
            # Not a number after all: read it again as a word.
            for ch in reversed(buf[1:]):
                self.ungetc(ch)
            c = buf[0]
            buf = []
            if c == "-":
                return self._token("-", None, "-")

        if c is not EOF and (_isalnum(c) or c in ":_*"):
            while True:
                buf.append(c)
                if len(buf) >= MAX_TOKEN:
                    self.onError(self.file.name, self.line, "string too long")
                    return self._findEol()
                c = self._lgetc()
                if c is EOF or not _allowedInString(c):
                    break
            self.ungetc(c)
            word = "".join(buf)
            kind = self.keywords.get(word)
            if kind is not None:
                return self._token(kind, None, word)
            return self._token("STRING", _text(word), _text(word))

        if c == "\n":
            self.line = self.file.line
            self.file.line += 1
        if c is EOF:
            return self._token("EOF", None, "")
        return self._token(c, None, _text(c))


def _text(raw):
    """
    File characters (one per byte) to text: UTF-8, undecodable bytes kept.
    """
    try:
        return raw.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return raw


def _raw(text):
    """
    Text back to file characters (one per byte).
    """
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def fileIdentity(path):
    """
    (st_dev, st_ino) of C{path}, for include loop detection; L{None} if it
    cannot be stat()ed.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)

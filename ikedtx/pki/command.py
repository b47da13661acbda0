# -*- test-case-name: tests.test_pki_command -*-
"""
The C{ca ...} and C{show ca ...} commands of C{ikectl} (ikectl(8) PKI AND
CERTIFICATE AUTHORITY COMMANDS), on L{ikedtx.pki.ca}:

    ca NAME create [password PASSWORD] [keytype TYPE]
    ca NAME delete
    ca NAME install [PATH]
    ca NAME export [peer PEER] [password PASSWORD]
    ca NAME certificate HOST create [server | client | ocsp] [keytype TYPE]
    ca NAME certificate HOST delete
    ca NAME certificate HOST install [PATH]
    ca NAME certificate HOST export [peer PEER] [password PASSWORD]
    ca NAME certificate HOST revoke
    ca NAME key HOST create [keytype TYPE]
    ca NAME key HOST install [PATH]
    ca NAME key HOST delete
    ca NAME key HOST import FILE
    show ca NAME certificates [HOST]

Keywords may be abbreviated to any unambiguous prefix, as ikectl's parser
allows (C{ca vpn cert 10.0.0.1 cr}).  C{keytype} (C{rsa}, the default, or
C{ecdsa256}, C{ecdsa384}, C{ecdsa521}) is ikedtx's own.  Without PATH,
install writes into the iked tree (C{etcDir}, /etc/iked); exports are
written into C{exportDir} (the current directory).

Every error is one line on standard error, C{ikectl: ...}, and exit
status 1.
"""

import os

from ikedtx.pki.ca import (
    DEFAULT_ETC_DIR,
    DEFAULT_SSL_DIR,
    KEY_TYPES,
    USAGES,
    CAError,
    CertificateAuthority,
)

# The grammar, for ikectl's usage message (runCa itself prints one line
# per error).
USAGE = """usage: ikectl ca NAME create [password PASSWORD] [keytype TYPE]
       ikectl ca NAME delete | install [PATH] | export [peer PEER] [password PASSWORD]
       ikectl ca NAME certificate HOST create [server | client | ocsp] [keytype TYPE]
       ikectl ca NAME certificate HOST delete | install [PATH] | revoke
       ikectl ca NAME certificate HOST export [peer PEER] [password PASSWORD]
       ikectl ca NAME key HOST create [keytype TYPE] | install [PATH] | delete | import FILE
       ikectl show ca NAME certificates [HOST]
"""


class UsageError(CAError):
    """
    The command line does not follow the grammar.
    """


def _keyword(word, choices):
    """
    The keyword of C{choices} that C{word} is, or abbreviates uniquely.

    @raise UsageError: none, or several.
    """
    if word in choices:
        return word
    matches = [c for c in choices if c.startswith(word)] if word else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError("ambiguous argument: %s" % (word,))
    raise UsageError("unknown argument: %s" % (word,))


class _Arguments:
    """
    The words of a command line, consumed from the left.

    @ivar words: the words not consumed yet.
    """

    def __init__(self, words):
        self.words = list(words)

    def next(self, what):
        if not self.words:
            raise UsageError("missing %s" % (what,))
        return self.words.pop(0)

    def keyword(self, choices, what):
        return _keyword(self.next(what), choices)

    def options(self, allowed):
        """
        Keyword/value pairs (C{password P}, C{peer P}, C{keytype T}) and
        bare flags, each at most once; C{allowed} maps each keyword to
        C{True} (takes a value) or C{False} (a flag).
        """
        found = {}
        while self.words:
            key = _keyword(self.words.pop(0), list(allowed))
            if key in found:
                raise UsageError("%s given twice" % (key,))
            found[key] = self.next("value for %s" % (key,)) if allowed[key] else True
        return found

    def optional(self):
        """
        One optional trailing word (a path), or C{None}.
        """
        value = self.words.pop(0) if self.words else None
        self.end()
        return value

    def end(self):
        if self.words:
            raise UsageError("unknown argument: %s" % (self.words[0],))


def _keyType(options):
    keyType = options.get("keytype", "rsa")
    if keyType not in KEY_TYPES:
        raise UsageError("unknown key type '%s' (one of %s)" % (keyType, ", ".join(KEY_TYPES)))
    return keyType


class _Runner:
    """
    Carries out one parsed command on L{CertificateAuthority}.

    @ivar stdout: where messages go.
    @ivar sslDir: the directory of the CAs.
    @ivar etcDir: the iked tree for C{install} without a PATH.
    @ivar exportDir: where exports go, or C{None} for the current
        directory.
    @ivar now: the clock handed to L{CertificateAuthority}, or C{None}.
    @ivar hostname: what C{local} stands for, or C{None}.
    """

    def __init__(self, stdout, sslDir, etcDir, exportDir, now, hostname):
        self.stdout = stdout
        self.sslDir = sslDir
        self.etcDir = etcDir
        self.exportDir = exportDir
        self.now = now
        self.hostname = hostname

    def say(self, text):
        self.stdout.write(text + "\n")

    def authority(self, name, mustExist=True):
        ca = CertificateAuthority(name, sslDir=self.sslDir, now=self.now, hostname=self.hostname)
        if mustExist and not ca.exists():
            raise CAError("CA '%s' does not exist" % (name,))
        return ca

    def ca(self, args):
        name = args.next("CA name")
        action = args.keyword(["create", "delete", "install", "export", "certificate", "key"], "command")
        if action == "create":
            options = args.options({"password": True, "keytype": True})
            ca = self.authority(name, mustExist=False)
            ca.create(password=options.get("password"), keyType=_keyType(options))
            self.say("CA '%s' created in %s" % (name, ca.path))
        elif action == "delete":
            args.end()
            self.authority(name).delete()
            self.say("CA '%s' deleted" % (name,))
        elif action == "install":
            path = args.optional() or self.etcDir
            ca = self.authority(name)
            written = ca.install(path)
            self.say("certificate for CA '%s' installed into %s" % (name, written[0]))
            if len(written) > 1:
                self.say("CRL for CA '%s' installed to %s" % (name, written[1]))
        elif action == "export":
            options = args.options({"peer": True, "password": True})
            tarball = self.authority(name).export(self.exportDir or os.getcwd(), peer=options.get("peer"),
                                                  password=options.get("password"))
            self.say("exported files in %s" % (tarball,))
        elif action == "certificate":
            self.certificate(self.authority(name), args)
        else:
            self.key(self.authority(name), args)

    def certificate(self, ca, args):
        host = args.next("host")
        action = args.keyword(["create", "delete", "install", "export", "revoke"], "certificate command")
        if action == "create":
            options = args.options(dict({u: False for u in USAGES}, keytype=True))
            usages = [u for u in USAGES if u in options]
            if len(usages) > 1:
                raise UsageError("only one of %s" % (", ".join(usages),))
            certificate = ca.issueCertificate(host, usage=usages[0] if usages else None, keyType=_keyType(options))
            self.say("certificate for '%s' created (serial %X)" % (host, certificate.serial_number))
        elif action == "delete":
            args.end()
            ca.deleteCertificate(host)
            self.say("certificate and key for '%s' deleted" % (host,))
        elif action == "install":
            path = args.optional() or self.etcDir
            for written in ca.installCertificate(host, path):
                self.say("installed %s" % (written,))
        elif action == "export":
            options = args.options({"peer": True, "password": True})
            tarball = ca.export(self.exportDir or os.getcwd(), host=host, peer=options.get("peer"),
                                password=options.get("password"))
            self.say("exported files in %s" % (tarball,))
        else:
            args.end()
            certificate = ca.revoke(host)
            self.say("certificate for '%s' (serial %X) revoked; new CRL in %s" % (
                host, certificate.serial_number, ca.crlPath))

    def key(self, ca, args):
        host = args.next("host")
        action = args.keyword(["create", "install", "delete", "import"], "key command")
        if action == "create":
            options = args.options({"keytype": True})
            if ca.createKey(host, _keyType(options)):
                self.say("key for '%s' created" % (host,))
            else:
                self.say("key for '%s' exists already" % (host,))
        elif action == "install":
            path = args.optional() or self.etcDir
            for written in ca.installKey(host, path):
                self.say("installed %s" % (written,))
        elif action == "delete":
            args.end()
            ca.deleteKey(host)
            self.say("key for '%s' deleted" % (host,))
        else:
            source = args.next("key file")
            args.end()
            ca.importKey(host, source)
            self.say("key for '%s' imported from %s" % (host, source))

    def show(self, args):
        args.keyword(["ca"], "ca")
        name = args.next("CA name")
        args.keyword(["certificates"], "certificates")
        host = args.optional()
        for line in self.authority(name).describe(host):
            self.say(line)


def runCa(argv, stdout, stderr, sslDir=DEFAULT_SSL_DIR, etcDir=DEFAULT_ETC_DIR, exportDir=None, now=None,
          hostname=None):
    """
    Run one C{ikectl} PKI command.

    @param argv: the words after C{ikectl}'s options: C{["ca", "vpn",
        "create"]} or C{["show", "ca", "vpn", "certificates"]}.
    @param stdout: where messages and listings go (text file).
    @param stderr: where the one-line error goes.
    @param sslDir: the directory holding the CAs (ikectl: /etc/ssl).
    @param etcDir: the iked tree C{install} writes into without a PATH
        (ikectl: /etc/iked; ikedtx's daemons take it as C{--etc-dir}).
    @param exportDir: where C{export} writes its tarball (default: the
        current directory).
    @param now: a callable returning the current (aware) datetime, for
        tests.
    @param hostname: the host name C{local} stands for (default: the
        system's).
    @return: the exit status: 0, or 1 after an error.
    """
    runner = _Runner(stdout, sslDir, etcDir, exportDir, now, hostname)
    args = _Arguments(argv)
    try:
        command = args.keyword(["ca", "show"], "command")
        if command == "ca":
            runner.ca(args)
        else:
            runner.show(args)
    except CAError as e:
        stderr.write("ikectl: %s\n" % (e,))
        return 1
    except OSError as e:
        where = " %s" % (e.filename,) if e.filename else ""
        stderr.write("ikectl:%s: %s\n" % (where, e.strerror or e))
        return 1
    return 0

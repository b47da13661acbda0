# -*- test-case-name: tests.test_lab_harness -*-
"""
strongSwan's charon as a peer in a namespace, configured from a small Python
description and controlled over vici.

    charon = CharonPeer(ns, self.mktemp(), testCase=self, libipsec=True)
    charon.addConnection(Connection(
        "peer", local_addrs=["192.0.2.1"], remote_addrs=["192.0.2.2"],
        proposals=["aes256-sha256-x25519"],
        local=Auth("psk", id="192.0.2.1"), remote=Auth("psk", id="192.0.2.2"),
        children=[Child("net", local_ts=["10.1.0.1/32"], remote_ts=["10.2.0.1/32"],
                        esp_proposals=["aes256gcm16"])]))
    charon.addSecret(Secret("lab-psk", ids=["192.0.2.1", "192.0.2.2"]))
    charon.start()
    ok, output = charon.initiate(child="net")

Each charon runs in its own mount namespace with a tmpfs on /run (its pid
file path is compiled in), with its own strongswan.conf
(C{STRONGSWAN_CONF}), vici socket and log file under its directory.
"""

import os
import re

from ._util import LabError, poll, readText, run, socketPath, stopProcess, writeFile
from .vici import ViciClient

CHARON = "/usr/lib/ipsec/charon"
PLUGIN_DIR = "/usr/lib/ipsec/plugins"
INSTALL = "apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins"

#: charon's plugins for IKE with kernel-netlink only (Child SAs then fail to
#: install on a kernel without ESP, and charon deletes them)
PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs7 pkcs8 pkcs12 x509 pubkey revocation constraints "
    "curve25519 gmp hmac kdf gcm xcbc cmac aes des sha1 sha2 md5 mgf1 drbg "
    "kernel-netlink socket-default vici"
).split()

DEFAULT_LOG_LEVELS = {"default": 1, "ike": 4, "cfg": 2, "knl": 2, "chd": 2, "net": 1, "enc": 1, "lib": 1}

_CRED_DIRS = ("x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey",
              "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12")


def availablePlugins(names, root=None):
    """
    The plugins among C{names} that this installation (or the tree
    C{root}, a L{chroot.Chroot}) has; others would only produce load
    warnings.
    """
    directory = PLUGIN_DIR if root is None else root.path(PLUGIN_DIR)
    return [n for n in names if os.path.exists(os.path.join(directory, "libstrongswan-%s.so" % (n,)))]


# ---- the swanctl.conf description ----


def _fmt(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def _section(lines, indent, name, body):
    pad = "    " * indent
    lines.append("%s%s {" % (pad, name))
    for key, value in body.items():
        if value is None:
            continue
        if isinstance(value, dict):
            _section(lines, indent + 1, key, value)
        else:
            lines.append("%s    %s = %s" % (pad, key, _fmt(value)))
    lines.append("%s}" % (pad,))


class Auth:
    """
    A C{local} or C{remote} section of a connection (swanctl.conf(5)).

    @ivar auth: C{"psk"}, C{"pubkey"}, C{"eap-mschapv2"}, ...
    @ivar id: the IKE identity (C{"192.0.2.1"}, C{"moon.example"},
        C{"moon@example"}, C{"O=ikedtx lab, CN=moon"}).
    @ivar certs: L{pki.Certificate}s to send (local) or accept (remote);
        written to C{x509/} (their keys to C{private/}) by the peer.
    @ivar pubkeys: raw public keys (L{pki.KeyPair}), written to C{pubkey/}.
    @ivar cacerts: L{pki.Certificate}s of CAs to constrain to.
    @ivar options: further keys, as they appear in swanctl.conf.
    """

    def __init__(self, auth="psk", id=None, certs=(), pubkeys=(), cacerts=(), **options):
        self.auth = auth
        self.id = id
        self.certs = list(certs)
        self.pubkeys = list(pubkeys)
        self.cacerts = list(cacerts)
        self.options = options


class Child:
    """
    A Child SA configuration (C{children.<name>}).
    """

    def __init__(self, name, local_ts=None, remote_ts=None, esp_proposals=None, mode="tunnel",
                 start_action="none", rekey_time=None, life_time=None, dpd_action=None, **options):
        self.name = name
        self.options = dict(
            local_ts=local_ts, remote_ts=remote_ts, esp_proposals=esp_proposals, mode=mode,
            start_action=start_action, rekey_time=rekey_time, life_time=life_time, dpd_action=dpd_action,
        )
        self.options.update(options)


class Connection:
    """
    A connection (C{connections.<name>}): every keyword argument not named
    here is written as it is (C{mobike=False}, C{local_port=4500}, ...).
    """

    def __init__(self, name, local_addrs=None, remote_addrs=None, proposals=None, local=None, remote=None,
                 children=(), version=2, fragmentation=None, encap=None, dpd_delay=None, rekey_time=None,
                 reauth_time=None, **options):
        self.name = name
        self.local = local or Auth()
        self.remote = remote or Auth()
        self.children = list(children)
        self.options = dict(
            version=version, local_addrs=local_addrs, remote_addrs=remote_addrs, proposals=proposals,
            fragmentation=fragmentation, encap=encap, dpd_delay=dpd_delay, rekey_time=rekey_time,
            reauth_time=reauth_time,
        )
        self.options.update(options)


class Secret:
    """
    A secret for the C{secrets} section: an IKE PSK by default.
    """

    def __init__(self, secret, ids=(), kind="ike"):
        self.secret = secret
        self.ids = list(ids)
        self.kind = kind


# ---- the peer ----


class CharonPeer:
    """
    One charon in a L{netns.Namespace}.

    @ivar namespace: where it runs.
    @ivar directory: its files: strongswan.conf, swanctl.conf, credential
        directories, charon.vici, charon.log, charon.out.
    @ivar connections, secrets: the description, written at L{start}.
    @ivar process: the L{subprocess.Popen} of charon once started.
    """

    def __init__(self, namespace, directory, name="charon", libipsec=False, logLevels=None, plugins=None,
                 settings=None, testCase=None, root=None):
        """
        @param libipsec: do ESP in user space (kernel-libipsec over a TUN
            device, always ESP-in-UDP on 4500): Child SAs install and
            traffic passes. Without it only kernel-netlink is loaded.
        @param logLevels: filelog levels overriding L{DEFAULT_LOG_LEVELS}
            (C{ike = 4} logs the SK_* keys, for tshark).
        @param plugins: the load list; by default L{PLUGINS} (with
            kernel-libipsec first when C{libipsec}).
        @param settings: extra C{charon { ... }} settings, nested dicts
            (C{{"port": 1500, "retransmit_tries": 2}}).
        @param testCase: registers L{stop} as a cleanup, and adds the log
            to failures with L{report}.
        @param root: a L{chroot.Chroot} to run the tree's charon and
            swanctl from (strongSwan 6 from Debian 13's tree), instead of
            the host's.
        """
        from .. import support

        self.root = root
        if root is None:
            support.requireExecutable(CHARON, INSTALL)
            self.swanctlPath = support.requireExecutable("swanctl", INSTALL)
        else:
            root.require(CHARON, INSTALL)
            self.swanctlPath = root.require("/usr/sbin/swanctl", INSTALL)
        if libipsec and not availablePlugins(["kernel-libipsec"], root):
            support.missing("strongSwan kernel-libipsec plugin not found (apt-get install libcharon-extra-plugins)")
        self.namespace = namespace
        self.directory = os.path.abspath(directory)
        self.name = name
        self.libipsec = libipsec
        self.logLevels = dict(DEFAULT_LOG_LEVELS, **(logLevels or {}))
        if plugins is None:
            plugins = (["kernel-libipsec"] if libipsec else []) + PLUGINS
        self.plugins = availablePlugins(plugins, root)
        self.settings = settings or {}
        self.connections = []
        self.secrets = []
        self.pools = {}
        self.process = None
        self._files = 0
        os.makedirs(self.directory, exist_ok=True)
        self.viciPath = socketPath(self.directory, "charon.vici")
        for d in _CRED_DIRS:
            os.makedirs(os.path.join(self.directory, d), exist_ok=True)
        if testCase is not None:
            testCase.addCleanup(self.stop)

    def __repr__(self):
        return "<CharonPeer %s in %s>" % (self.name, self.namespace.netns)

    @property
    def logPath(self):
        return os.path.join(self.directory, "charon.log")

    @property
    def uri(self):
        return "unix://" + self.viciPath

    # ---- description ----

    def addConnection(self, connection):
        self.connections.append(connection)
        return connection

    def addPool(self, name, addrs, **attributes):
        """
        An address pool (C{pools.<name>}, swanctl.conf(5)): C{addrs} a
        network or range, C{attributes} e.g. C{dns=["10.2.0.53"]}.
        """
        self.pools[name] = dict(addrs=addrs, **attributes)

    def addSecret(self, secret):
        self.secrets.append(secret)
        return secret

    def _credential(self, subdir, data, stem, suffix):
        self._files += 1
        name = "%s%d.%s" % (stem, self._files, suffix)
        writeFile(os.path.join(self.directory, subdir, name), data, 0o600 if subdir == "private" else 0o644)
        return name

    def addCA(self, certificate):
        """
        Trust C{certificate} (a L{pki.Certificate}) as a CA (C{x509ca/}).
        Returns the file name.
        """
        return self._credential("x509ca", certificate.certPEM, "ca", "pem")

    def addCertificate(self, certificate, withKey=True):
        """
        Write C{certificate} to C{x509/} (DER) and, if C{withKey}, its key to
        C{private/} (PKCS#8). Returns the certificate's file name.
        """
        if withKey:
            self.addPrivateKey(certificate.key)
        return self._credential("x509", certificate.certDER, "cert", "der")

    def addPrivateKey(self, keyPair):
        return self._credential("private", keyPair.privatePEM, "key", "pem")

    def addPublicKey(self, keyPair):
        """
        Write a raw public key to C{pubkey/}; returns its file name (for
        C{pubkeys =} in an L{Auth}).
        """
        return self._credential("pubkey", keyPair.publicPEM, "pubkey", "pem")

    def addCRL(self, crl):
        return self._credential("x509crl", crl.der, "crl", "der")

    # ---- files ----

    def strongswanConf(self):
        levels = "\n".join("                %s = %s" % item for item in self.logLevels.items())
        extra = []
        for key, value in self.settings.items():
            if isinstance(value, dict):
                _section(extra, 1, key, value)
            else:
                extra.append("    %s = %s" % (key, _fmt(value)))
        return (
            "charon {\n"
            "    load = %s\n"
            "    install_routes = yes\n"
            "    plugins {\n"
            "        vici {\n"
            "            socket = %s\n"
            "        }\n"
            "    }\n"
            "    filelog {\n"
            "        lab {\n"
            "            path = %s\n"
            "            time_format = %%H:%%M:%%S\n"
            "            ike_name = yes\n"
            "            flush_line = yes\n"
            "            append = no\n"
            "%s\n"
            "        }\n"
            "    }\n"
            "    syslog {\n"
            "        daemon {\n"
            "            default = -1\n"
            "        }\n"
            "        auth {\n"
            "            default = -1\n"
            "        }\n"
            "    }\n"
            "%s"
            "}\n" % (" ".join(self.plugins), self.uri, self.logPath, levels, "".join(line + "\n" for line in extra))
        )

    def _auth(self, auth, local):
        body = {"auth": auth.auth, "id": auth.id}
        if auth.certs:
            body["certs"] = [self.addCertificate(c, withKey=local) for c in auth.certs]
        if auth.pubkeys:
            body["pubkeys"] = [self.addPublicKey(k) for k in auth.pubkeys]
            if local:
                for k in auth.pubkeys:
                    self.addPrivateKey(k)
        if auth.cacerts:
            body["cacerts"] = [self._credential("x509ca", c.certPEM, "ca", "pem") for c in auth.cacerts]
        body.update(auth.options)
        return body

    def swanctlConf(self):
        lines = ["connections {"]
        for c in self.connections:
            body = dict(c.options)
            body["local"] = self._auth(c.local, True)
            body["remote"] = self._auth(c.remote, False)
            body["children"] = {child.name: child.options for child in c.children}
            _section(lines, 1, c.name, body)
        lines.append("}")
        if self.pools:
            lines.append("pools {")
            for name, body in self.pools.items():
                _section(lines, 1, name, body)
            lines.append("}")
        lines.append("secrets {")
        for i, s in enumerate(self.secrets):
            body = {"secret": '"%s"' % (s.secret.replace('"', '\\"'),)}
            for j, ident in enumerate(s.ids):
                body["id-%d" % (j,)] = ident
            _section(lines, 1, "%s-%d" % (s.kind, i), body)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def writeConfig(self):
        writeFile(os.path.join(self.directory, "strongswan.conf"), self.strongswanConf())
        writeFile(os.path.join(self.directory, "swanctl.conf"), self.swanctlConf(), 0o600)

    # ---- running ----

    def start(self, timeout=30.0):
        """
        Write the configuration, start charon, wait for its vici socket and
        load everything with swanctl.
        """
        self.writeConfig()
        for f in (self.viciPath, self.logPath):
            if os.path.exists(f):
                os.unlink(f)
        conf = os.path.join(self.directory, "strongswan.conf")
        if self.root is None:
            argv = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs /run && exec "$0"', CHARON]
            env = dict(os.environ, STRONGSWAN_CONF=conf)
        else:
            argv = self.root.command([CHARON], binds=self._binds(), env={"STRONGSWAN_CONF": conf})
            env = None
        out = open(os.path.join(self.directory, "charon.out"), "wb")
        try:
            self.process = self.namespace.popen(argv, stdout=out, stderr=out, env=env)
        finally:
            out.close()

        def ready():
            if self.process.poll() is not None:
                raise LabError("charon %s exited with %s\n%s" % (self.name, self.process.returncode, self.report()))
            return os.path.exists(self.viciPath)

        poll(ready, timeout, what=lambda: "charon %s's vici socket\n%s" % (self.name, self.report()))
        self.load()
        return self

    def _binds(self):
        """
        The host directories a chrooted charon or swanctl needs: this
        peer's files and its vici socket's directory.
        """
        return sorted({self.directory, os.path.dirname(self.viciPath)})

    def swanctl(self, *args, check=True, timeout=30):
        """
        Run C{swanctl ARGS... --uri unix://...vici} (the command first, the
        URI after it) and return the L{subprocess.CompletedProcess}.
        """
        argv = [self.swanctlPath] + list(args) + ["--uri", self.uri]
        if self.root is not None:
            return self.root.run(argv, binds=self._binds(), check=check, timeout=timeout)
        return run(argv, check=check, timeout=timeout)

    def load(self):
        """
        (Re)load connections, secrets and credentials (C{--load-all}).
        """
        self.writeConfig()
        result = self.swanctl("--load-all", "--file", os.path.join(self.directory, "swanctl.conf"), check=False)
        if result.returncode != 0 or "loading connection" in result.stdout and "failed" in result.stdout:
            raise LabError("swanctl --load-all failed for %s:\n%s%s\n%s" % (self.name, result.stdout, result.stderr, self.report()))
        return result.stdout

    def vici(self):
        """
        A new L{ViciClient} connected to this charon (close it after use, or
        use it as a context manager).
        """
        return ViciClient(self.viciPath)

    def initiate(self, child=None, ike=None, timeout=10.0):
        """
        Initiate Child SA C{child} (and its IKE SA) or IKE SA C{ike}, and wait
        for the result (at most C{timeout} s).

        @return: C{(success, output)}: a bool and charon's control log.
        """
        with self.vici() as v:
            return v.initiate(child=child, ike=ike, timeout=timeout)

    def terminate(self, child=None, ike=None, timeout=5.0, force=False):
        with self.vici() as v:
            return v.terminate(child=child, ike=ike, timeout=timeout, force=force)

    def listSas(self, ike=None):
        """
        The IKE SAs, as a list of dicts as vici's C{list-sa} events give them
        (keys C{name}, C{uniqueid}, C{state}, C{local-host}, C{remote-host},
        C{local-id}, C{remote-id}, C{initiator-spi}, C{responder-spi},
        C{encr-alg}, C{encr-keysize}, C{integ-alg}, C{prf-alg}, C{dh-group},
        C{nat-local}, C{nat-remote}, C{child-sas}: a list of dicts with
        C{name}, C{state}, C{mode}, C{protocol}, C{encap}, C{spi-in},
        C{spi-out}, C{local-ts}, C{remote-ts}, C{packets-in}, ...).
        """
        with self.vici() as v:
            return v.listSasList(ike=ike)

    def ikeSas(self, state="ESTABLISHED", ike=None):
        """
        The IKE SAs in C{state}.
        """
        return [sa for sa in self.listSas(ike=ike) if state is None or sa.get("state") == state]

    def waitForIkeSa(self, state="ESTABLISHED", ike=None, timeout=10.0, child=None):
        """
        Poll until an IKE SA in C{state} exists (and, if C{child} is given, a
        Child SA of that name in state INSTALLED); return the IKE SA.
        """

        def found():
            for sa in self.ikeSas(state, ike):
                if child is None or any(c.get("name") == child and c.get("state") == "INSTALLED" for c in sa["child-sas"]):
                    return sa
            return None

        return poll(found, timeout, interval=0.05, what=lambda: "an IKE SA %s on %s\n%s" % (state, self.name, self.report()))

    def log(self):
        """
        charon's log file so far.
        """
        return readText(self.logPath)

    def output(self):
        return readText(os.path.join(self.directory, "charon.out"))

    def report(self, tail=200):
        """
        The last C{tail} lines of the log and charon's own output, for
        failure messages.
        """
        lines = self.log().splitlines()
        return "---- charon %s (%s) log, last %d lines ----\n%s\n---- charon %s output ----\n%s" % (
            self.name, self.directory, tail, "\n".join(lines[-tail:]), self.name, self.output())

    def ikeKeys(self):
        """
        The SK_* keys of every IKE SA that charon logged (needs C{ike >= 4}):
        see L{parseIkeKeys}.
        """
        return parseIkeKeys(self.log())

    def stop(self, timeout=3.0):
        """
        SIGTERM, then SIGKILL after C{timeout} s. Returns the exit status
        (C{None} if it never started).
        """
        if self.process is None:
            return None
        status = stopProcess(self.process, timeout)
        if os.path.exists(self.viciPath):
            os.unlink(self.viciPath)
        return status


# The prefix is <conn|id>, or <id> while a responder has not yet picked a
# connection (IKE_SA_INIT, IKE_INTERMEDIATE).
_KEY_LINE = re.compile(r"<(?:(?P<ike>[^|>]*)\|)?(?P<id>\d+)>\s+(?P<key>Sk_\w+) secret => (?P<n>\d+) bytes")
_HEX_LINE = re.compile(r"<(?:(?P<ike>[^|>]*)\|)?(?P<id>\d+)>\s+(?P<off>\d+): ((?:[0-9A-F]{2} ?)+)")


def parseIkeKeys(text):
    """
    Parse charon's C{ike = 4} log lines (C{Sk_ai secret => 32 bytes @ ...}
    followed by hex dump lines, with C{ike_name = yes} prefixes C{<conn|id>},
    or C{<id>} before a responder picked its connection)
    into {unique id (str): {"sk_d": bytes, "sk_ai": ..., "sk_ar", "sk_ei",
    "sk_er", "sk_pi", "sk_pr"}}. A rekeyed IKE SA's keys are logged under the
    old SA's id; the last ones logged win.
    """
    keys = {}
    current = None
    lines = text.splitlines()
    for line in lines:
        m = _KEY_LINE.search(line)
        if m:
            current = [m.group("id"), m.group("key").lower(), int(m.group("n")), bytearray()]
            keys.setdefault(current[0], {})[current[1]] = current[3]
            continue
        if current is not None:
            h = _HEX_LINE.search(line)
            if h and h.group("id") == current[0] and len(current[3]) < current[2]:
                current[3] += bytes.fromhex(h.group(4).replace(" ", ""))
                continue
            if len(current[3]) >= current[2]:
                current = None
    return {i: {k: bytes(v) for k, v in d.items()} for i, d in keys.items()}


def pskConnection(name, local, remote, localTs=None, remoteTs=None, proposals=("aes256-sha256-x25519",),
                  espProposals=("aes256-sha384",), childName="net", remoteAddrs=None, **options):
    """
    A typical PSK L{Connection}: IDs are the addresses; one tunnel-mode
    Child SA C{childName} between C{localTs} and C{remoteTs} (none if both
    are C{None}). Pair it with C{Secret(psk, ids=[local, remote])}.
    C{remoteAddrs} overrides the remote address list (C{["%any"]} for a
    responder whose peer comes through a NAT).
    """
    children = []
    if localTs is not None or remoteTs is not None:
        children.append(Child(childName, local_ts=localTs, remote_ts=remoteTs, esp_proposals=list(espProposals)))
    return Connection(
        name, local_addrs=[local], remote_addrs=list(remoteAddrs or [remote]), proposals=list(proposals),
        local=Auth("psk", id=local), remote=Auth("psk", id=remote), children=children, **options)

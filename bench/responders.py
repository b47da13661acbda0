# -*- test-case-name: tests.test_bench -*-
"""
The responders under test, each started fresh in the responder
namespace: ikedtx (C{iked -d} through twistd) and strongSwan's charon
(with kernel-libipsec or kernel-netlink only).
"""

import json
import os
import signal
import subprocess
import sys
import time

from bench import ROOT
from bench.introspect import TWISTD, TWISTD_GC
from bench.suites import (
    GEN_NET,
    PSK,
    RESP_ADDRESS,
    RESP_ID,
    RESP_INNER,
    RESP_NET,
    ikedTree,
    ikedtxResponderConfig,
)
from ikedtx.testing.lab._util import writeFile
from ikedtx.testing.lab.charon import Auth, CharonPeer, Child, Connection, Secret


CHARON_PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints curve25519 gmp hmac kdf gcm "
    "aes sha1 sha2 mgf1 drbg kernel-netlink socket-default vici"
).split()


class IkedtxResponder:
    """
    C{iked -d -f CONF --listen ADDR --kernel decoupled --etc-dir DIR -s SOCK --no-privsep}
    in the responder namespace.
    """

    name = "ikedtx"

    def __init__(self, namespace, directory, suite, credentials, gcStats=False, tracemalloc=False, root=ROOT,
                 privsep=False, extraArgs=(), name="ikedtx"):
        # The checkout whose ikedtx runs (another one: a baseline).
        self.root = root
        self.name = name
        # With privilege separation the figures cover the parent and its
        # workers (bench.proc.treeCpuSeconds, treeRssKilobytes).
        self.privsep = privsep
        self.extraArgs = list(extraArgs)
        self.extraEnv = {}
        self.namespace = namespace
        self.gcStats = gcStats or tracemalloc
        self.tracemalloc = tracemalloc
        self.gcPath = os.path.join(directory, "gc.json")
        self.directory = directory
        self.suite = suite
        self.credentials = credentials
        self.process = None
        self.logPath = os.path.join(directory, "iked.log")
        self.socketPath = os.path.join(directory, "iked.sock")

    def describe(self):
        return ("ikedtx (twistd --nodaemon --logger=ikedtx.cli.stderrObserver iked -d ..., as `iked -d`; "
                "--kernel decoupled; %s%s; log to a file)") % (
            "privilege separation, CPU and RSS of the parent and its workers" if self.privsep else "--no-privsep",
            "".join(" " + a for a in self.extraArgs))

    def start(self, argvPrefix=()):
        conf = os.path.join(self.directory, "iked.conf")
        settings = [line for line in os.environ.get("IKEBENCH_IKEDTX_SET", "").split(";") if line.strip()]
        writeFile(conf, ikedtxResponderConfig(self.suite, settings), 0o600)
        etc = ikedTree(os.path.join(self.directory, "etc"),
                       [self.credentials.resp] if self.credentials else None,
                       self.credentials.ca if self.credentials else None)
        # What `iked -d ARGS` runs (ikedtx.cli._daemon): twistd --nodaemon
        # with the level-filtered stderr logger (info; -v for debug).
        argv = list(argvPrefix) + [
            sys.executable, "-c", TWISTD_GC if self.gcStats else TWISTD, "--pidfile=", "--nodaemon",
            "--logger=ikedtx.cli.stderrObserver", "iked",
            "-d", "-f", conf, "--listen", RESP_ADDRESS, "--kernel", "decoupled", "--etc-dir", etc,
            "-s", self.socketPath] + self.extraArgs
        if not self.privsep:
            # One process, so that its CPU, RSS and the SAs counted in it are
            # the responder's.
            argv.append("--no-privsep")
        env = dict(os.environ, PYTHONPATH=self.root, IKEBENCH_GC_STATS=self.gcPath)
        # (bench/workersplit.py --cprofile: its hook first on the path.)
        env.update(self.extraEnv)
        if self.tracemalloc:
            env["IKEBENCH_TRACEMALLOC"] = "1"
        log = open(self.logPath, "wb")
        try:
            self.process = subprocess.Popen(self.namespace.execArgv(argv), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env, cwd=self.root)
        finally:
            log.close()
        self.namespace._processes.append(self.process)
        # A privsep worker imports every module before its chroot: on a
        # loaded machine two of them took more than 30 s.
        deadline = time.monotonic() + (90 if self.privsep else 30)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("ikedtx exited with %s:\n%s" % (self.process.returncode, self.log()[-3000:]))
            log = self.log()
            if os.path.exists(self.socketPath) and "loaded 1 policies" in log and (
                    not self.privsep or log.count(" serves peers as uid ") >= self.workers):
                return self
            time.sleep(0.05)
        raise RuntimeError("ikedtx did not start:\n%s" % (self.log()[-3000:],))

    @property
    def workers(self):
        if "--ike-workers" in self.extraArgs:
            return int(self.extraArgs[self.extraArgs.index("--ike-workers") + 1])
        return 1

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        with open(self.logPath, errors="replace") as f:
            return f.read()

    def gcSnapshot(self, timeout=5.0):
        """
        The garbage collector's counters ({"count", "seconds", "collected"}
        per generation, "objects"), or None without --gc-stats.
        """
        if not self.gcStats:
            return None
        if os.path.exists(self.gcPath):
            os.unlink(self.gcPath)
        self.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.gcPath):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)
        with open(self.gcPath) as f:
            return json.load(f)

    def established(self):
        """
        IKE SAs up in the responder, from its log (cheap; see
        L{showSaCount} for the control socket).
        """
        up = down = 0
        with open(self.logPath, errors="replace") as f:
            for line in f:
                # The core's line, or a privsep worker's through the parent.
                if "IKECore#info" in line or "WorkerProcess#info" in line:
                    if ": established, peer " in line:
                        up += 1
                    elif ": deleted (" in line:
                        down += 1
        return up - down

    def childCount(self):
        """
        Child SAs the responder made, from its log.
        """
        count = 0
        with open(self.logPath, errors="replace") as f:
            for line in f:
                if "#info" in line and ": Child SA ESP " in line:
                    count += 1
        return count

    def showSaCount(self, timeout=30):
        """
        The IKE SA count through the control socket (ShowSA), or an error
        message.
        """
        code = ("import sys\n"
                "from twisted.internet import task\n"
                "from ikedtx.control.client import connectControl\n"
                "def main(reactor):\n"
                "    d = connectControl(reactor, sys.argv[1])\n"
                "    d.addCallback(lambda c: c.showSA())\n"
                "    d.addCallback(lambda sas: print(len([s for s in sas if s['state'] == 'VALID'])))\n"
                "    return d\n"
                "task.react(main)\n")
        try:
            result = subprocess.run([sys.executable, "-c", code, self.socketPath], capture_output=True, text=True,
                                    timeout=timeout, env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
        except subprocess.TimeoutExpired:
            return "timeout"
        if result.returncode == 0 and result.stdout.strip().isdigit():
            return int(result.stdout.strip())
        lines = (result.stdout + result.stderr).strip().splitlines()
        return lines[-1] if lines else "exit %d" % (result.returncode,)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            from bench.proc import processTree

            # The workers too (privilege separation): they would hold the
            # ports while saying goodbye to every peer.
            tree = processTree(self.process.pid)
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.process.wait(10)
            for pid in tree[1:]:
                deadline = time.monotonic() + 10
                while os.path.exists("/proc/%d" % (pid,)) and time.monotonic() < deadline:
                    time.sleep(0.05)


class CharonResponder:
    """
    charon (strongSwan 5.9) through the lab harness's CharonPeer, with
    kernel-libipsec so that Child SAs are installed (in user space) and kept;
    or with kernel-netlink only (C{libipsec=False}), where every Child SA
    fails to install on this kernel (no ESP) and only the IKE SA stays.
    """

    def __init__(self, namespace, directory, suite, credentials, libipsec=True, threads=16, logLevel=1, extra=None,
                 root=None):
        """
        @param root: a L{ikedtx.testing.lab.chroot.Chroot} whose charon runs
            (strongSwan 6 from Debian 13's tree: C{charon6}), or L{None}
            for the host's.
        """
        self.name = "charon6" if root is not None else "charon" if libipsec else "charon-netlink"
        self.root = root
        self.extra = dict(extra or {})
        self.namespace = namespace
        self.suite = suite
        self.libipsec = libipsec
        self.threads = threads
        plugins = (["kernel-libipsec"] if libipsec else []) + CHARON_PLUGINS
        settings = self.settings()
        settings.update(self.extra)
        self.peer = BenchCharon(namespace, directory, name="charon-bench", libipsec=libipsec, plugins=plugins,
                                 settings=settings, root=root)
        self.peer.logLevels = {"default": logLevel}
        self._configure(credentials)

    def describe(self):
        return "charon %s (%d threads, log level %s, %s)%s" % (
            charonVersion(self.root), self.threads, self.peer.logLevels["default"],
            "kernel-libipsec: Child SAs in user space" if self.libipsec else
            "kernel-netlink only: Child SAs fail to install, IKE SAs kept",
            "".join("; charon.%s = %s" % item for item in sorted(self.extra.items())))

    def settings(self):
        return {
            "threads": self.threads,
            # nothing to route: the benchmark sends no traffic
            "install_routes": False,
            "install_virtual_ip": False,
            # one initiator address opens all SAs: no cookies, no blocking
            "cookie_threshold": 1000000,
            "cookie_threshold_ip": 1000000,
            "block_threshold": 1000000,
            "init_limit_half_open": 0,
            # strongSwan's advice for many SAs: a hash table, not one list
            "ikesa_table_size": 32768,
            "ikesa_table_segments": 16,
            "half_open_timeout": 60,
        }

    def _configure(self, credentials):
        suite = self.suite
        if suite.auth == "psk":
            local = Auth("psk", id=RESP_ID)
            remote = Auth("psk", id="%any")
            self.peer.addSecret(Secret(PSK, ids=[]))
        else:
            self.peer.addCA(credentials.ca.cert)
            local = Auth("pubkey", id=RESP_ID, certs=[credentials.resp])
            remote = Auth("pubkey", id="%any")
        child = Child("net", local_ts=[RESP_NET], remote_ts=[GEN_NET], esp_proposals=["aes256gcm16"])
        self.peer.addConnection(Connection(
            "bench", local_addrs=[RESP_ADDRESS], remote_addrs=["%any"],
            proposals=[suite.charonProposalFor(self.root is not None)],
            local=local, remote=remote, children=[child], unique="never", mobike=False))

    def start(self):
        if self.libipsec:
            # kernel-libipsec wants a local address inside the local TS
            existing = self.namespace.ip("-o", "addr", "show", "dev", "lo").stdout
            if RESP_INNER.split("/")[0] not in existing:
                self.namespace.addLoopbackAddress(RESP_INNER)
        self.peer.start()
        comm = open("/proc/%d/comm" % (self.pid,)).read().strip()
        if comm != "charon":
            raise RuntimeError("expected charon's own PID, found %r" % (comm,))
        return self

    @property
    def pid(self):
        return self.peer.process.pid

    def established(self):
        with self.peer.vici() as v:
            stats = v.request("stats")
        ikesas = stats.get("ikesas", {})
        return int(ikesas.get("total", 0)) - int(ikesas.get("half-open", 0))

    def childCount(self):
        """
        Installed Child SAs, from list-sas (expensive with many SAs).
        """
        total = 0
        for sa in self.peer.listSas():
            total += sum(1 for c in sa["child-sas"] if c.get("state") == "INSTALLED")
        return total

    def log(self):
        return self.peer.log()

    def stop(self):
        if self.peer.process is not None and self.peer.process.poll() is None:
            self.peer.process.send_signal(signal.SIGKILL)
            self.peer.process.wait(10)


class BenchCharon(CharonPeer):
    """
    The harness's charon with the benchmark's strongswan.conf: no routes
    (the settings say so), the file log not flushed line by line.
    """

    def strongswanConf(self):
        text = CharonPeer.strongswanConf(self)
        text = text.replace("    install_routes = yes\n", "")
        text = text.replace("            flush_line = yes\n", "")
        return text


_charonVersion = None


def charonVersion(root=None):
    """
    The version of the host's strongswan-charon package, or of the one in
    C{root} (a L{ikedtx.testing.lab.chroot.Chroot}).
    """
    global _charonVersion
    if root is not None:
        return root.versions().get("strongswan-charon", "?") + " (%s tree)" % (root.name,)
    if _charonVersion is None:
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "strongswan-charon"], capture_output=True,
                                 text=True).stdout.strip()
        except OSError:
            out = ""
        _charonVersion = out or "?"
    return _charonVersion

# -*- test-case-name: tests.test_service -*-
"""
The daemon as a Twisted service: the UDP ports, the control socket, the
configuration, the kernel provider and the core, started and stopped
together.
"""

import gc
import json
import os
import socket
from ipaddress import ip_address

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from ikedtx.core.engine import IKECore
from ikedtx.core.settings import NATT_DISABLED, NATT_NORMAL, NATT_ONLY, CoreSettings
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol
from ikedtx.net.udp import listenUDPWithPacketInfo
from ikedtx.wire.constants import EncrId, IntegId, nameOf


def sourceAddressFor(peer, port=500):
    """
    The local address the kernel would send from to reach C{peer}: a UDP
    socket connected there (no packet is sent) knows it.
    """
    family = socket.AF_INET6 if ip_address(peer).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((str(peer), port))
        return s.getsockname()[0]


def resolvePolicyNames(config):
    """
    Resolve the FQDNs that policies name as peer or local, once, at load
    time (iked resolves them when it parses the configuration).
    """
    resolved = {}
    for policy in config.policies:
        for name in (policy.peer, policy.local):
            if isinstance(name, str) and name not in resolved:
                try:
                    infos = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
                except OSError:
                    infos = []
                resolved[name] = [ip_address(info[4][0]) for info in infos]
    return resolved


def keyLogger(path, log):
    """
    A core C{keyLog} callback that appends one JSON object per IKE SA to
    C{path}: its SPIs, transforms and SK_e/SK_a keys, for tshark's IKEv2
    decryption table. For tests only; the keys are secrets.
    """

    def record(ikesa):
        encr, integ = ikesa.proposal.encryption, ikesa.proposal.integrity
        keys = ikesa.keys
        entry = {
            "spiI": ikesa.spiI.hex(), "spiR": ikesa.spiR.hex(),
            "encryption": nameOf(EncrId, encr.id), "keyLength": encr.keyLength,
            "integrity": nameOf(IntegId, integ.id) if integ is not None else None,
            "sk_ei": bytes(keys.skEi).hex(), "sk_er": bytes(keys.skEr).hex(),
            "sk_ai": bytes(keys.skAi).hex(), "sk_ar": bytes(keys.skAr).hex(),
        }
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(entry) + "\n")
        log.debug("IKE SA {spiI}/{spiR}: keys written to the key log {path}", spiI=entry["spiI"], spiR=entry["spiR"],
                  path=path)

    return record


def _decoupled():
    from ikedtx.kernel.decoupled import DecoupledKernel

    return DecoupledKernel()


def _userspace():
    from ikedtx.kernel.userspace import UserspaceKernel

    return UserspaceKernel()


#: The L{IKernel} providers this ikedtx has, by C{--kernel} name.
KERNEL_PROVIDERS = {"decoupled": _decoupled, "userspace": _userspace}


def makeKernel(name):
    """
    The L{IKernel} provider called C{name}.
    """
    return KERNEL_PROVIDERS[name]()


class IkedService(MultiService):
    """
    One ikedtx daemon.

    @ivar config: the L{ikedtx.config.model.Config} in force.
    @ivar core: the L{IKECore} (after start).
    @ivar runner: the L{CoreRunner} (after start).
    @ivar kernel: the L{IKernel} provider.
    """

    _log = Logger()

    def __init__(self, config, options, reactor=None, credentials=None):
        MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.options = options
        self.credentials = credentials
        self.core = None
        self.runner = None
        self.kernel = None
        self._ports = []
        self._control = None

    def _settings(self):
        o = self.options
        if o.get("no-natt"):
            mode = NATT_DISABLED
        elif o.get("natt-only") or o.get("udpencap-port"):
            mode = NATT_ONLY
        else:
            mode = NATT_NORMAL
        ikePort = int(o.get("ike-port") or 500)
        nattPort = int(o.get("udpencap-port") or o.get("natt-port") or 4500)
        return CoreSettings(
            ikePort=ikePort, nattPort=nattPort, peerIkePort=ikePort, peerNattPort=nattPort, nattMode=mode,
            passive=bool(o.get("passive")) or self.config.settings.passive,
            vendorId=b"ikedtx" if self.config.settings.vendorId else b"")

    def _listenAddresses(self):
        listen = self.options.get("listen") or []
        return list(listen) if listen else ["0.0.0.0", "::"]

    def startService(self):
        from ikedtx.auth.store import CredentialStore

        settings = self._settings()
        kernelName = self.options.get("kernel") or "decoupled"
        self.kernel = makeKernel(kernelName)
        wanted = self.options.get("kernelWanted")
        if wanted and wanted != kernelName:
            self._log.warn("the {wanted} kernel provider is not available yet: running decoupled, "
                           "SAs and flows are recorded but NOT installed", wanted=wanted)
        if self.credentials is None:
            self.credentials = CredentialStore(self.options.get("etc-dir") or "/etc/iked",
                                               certPartialChain=self.config.settings.certPartialChain)
        self.core = IKECore(
            self.config, self.credentials, settings, now=self.reactor.seconds,
            spiAllocator=self.kernel.reserveSpi, localAddressFor=sourceAddressFor,
            resolved=resolvePolicyNames(self.config),
            keyLog=keyLogger(self.options["keylog"], self._log) if self.options.get("keylog") else None)
        self.runner = CoreRunner(self.core, self.kernel, self.reactor)
        if self.kernel.name == "userspace":
            # ESP in UDP shares the NAT-T sockets (RFC 3948).
            self.runner.espHandler = self.kernel.espReceived
            self.kernel.sendUdp = self.runner.sendEsp
            if self.options.get("keylog"):
                self.kernel.startDump(self.options["keylog"] + ".esp.json")
        ports = []
        if settings.nattMode != NATT_ONLY:
            ports.append((settings.ikePort, False))
        if settings.nattMode != NATT_DISABLED:
            ports.append((settings.nattPort, True))
        for address in self._listenAddresses():
            for number, natt in ports:
                port = listenUDPWithPacketInfo(self.reactor, number, IKEDatagramProtocol(self.runner, natt), address)
                self.runner.addPort(port, natt)
                self._ports.append(port)
                self._log.info("listening on {address} port {port}{natt}", address=address, port=port.getHost().port,
                               natt=" (NAT-T)" if natt else "")
        self._startControl()
        self._log.info("loaded {n} policies; kernel: {kernel}", n=len(self.config.policies), kernel=self.kernel.name)
        MultiService.startService(self)
        # What start-up loaded (modules, configuration, certificates) lives
        # as long as the daemon: keep it out of every later collection.
        gc.freeze()
        self.reactor.callWhenRunning(self._startup)

    def _startup(self):
        if self.running:
            self.runner.execute(self.core.startup())

    def _startControl(self):
        path = self.options.get("socket")
        if not path:
            return
        from ikedtx.control.server import ControlFactory

        if os.path.exists(path):
            os.unlink(path)
        self._control = self.reactor.listenUNIX(path, ControlFactory(self), mode=0o600)
        self._log.info("control socket {path}", path=path)

    def initiate(self, policyName):
        return self.runner.initiate(policyName)

    def reload(self):
        """
        ikectl reload: read the configuration file and the iked tree again.
        A broken file changes nothing (the error is raised to the caller).
        """
        from ikedtx.config import loadConfig

        path = self.options.get("config")
        config = loadConfig(path, self.options.get("defines") or ())
        self.config = config
        if self.credentials is not None and hasattr(self.credentials, "reload"):
            self.credentials.reload()
        self.runner.execute(self.core.reload(config, resolvePolicyNames(config)))
        self._log.info("reloaded {path}: {n} policies", path=path, n=len(config.policies))

    def stopService(self):
        MultiService.stopService(self)
        if self.runner is not None:
            self.runner.execute(self.core.shutdown())
            self.runner.stop()
        ds = [defer.maybeDeferred(p.stopListening) for p in self._ports]
        self._ports = []
        if self._control is not None:
            ds.append(defer.maybeDeferred(self._control.stopListening))
            self._control = None
        if self.kernel is not None and self.kernel.name != "decoupled":
            ds.append(self.kernel.flush())
        return defer.gatherResults(ds, consumeErrors=True)

# -*- test-case-name: tests.test_lab_harness -*-
"""
Network namespaces for integration tests: hosts joined by veth links, inner
addresses on C{lo}, an optional NAT router, and ways to run things inside a
namespace (synchronously for set-up, as a Twisted process for daemons, or as
sockets adopted by the test's own reactor).

Every namespace is named C{ikx<pid>-<n>-<name>}, so parallel trial workers
(and other checkouts on the same machine) never collide; L{Network.cleanup}
stops whatever still runs inside and deletes the namespaces.
"""

import ctypes
import ipaddress
import itertools
import os
import signal
import socket
import subprocess
import time

from twisted.internet import defer, protocol

from ._util import ROOT, LabError, alive, poll, run

IP = "ip"
CLONE_NEWNET = 0x40000000

_counter = itertools.count(1)
_libc = None
_swept = False


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def _isV6(cidr):
    return ":" in cidr


def sweepStale(prefix="ikx"):
    """
    Delete namespaces named C{<prefix><pid>-...} whose creating process is
    gone (left behind by a test run that was killed). Namespaces of live
    processes are never touched.
    """
    result = run([IP, "netns", "list"], check=False)
    for line in result.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(prefix) or "-" not in name:
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists("/proc/" + pid):
            for p in run([IP, "netns", "pids", name], check=False).stdout.split():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run([IP, "netns", "del", name], check=False)


class Namespace:
    """
    One network namespace.

    @ivar name: the short name the test gave (C{"a"}).
    @ivar netns: the system-wide name (C{"ikx1234-1-a"}), for C{ip netns exec}.
    @ivar network: the owning L{Network}.
    @ivar addresses: {interface name: [CIDR strings]} added by the harness.
    """

    def __init__(self, network, name, netns):
        self.network = network
        self.name = name
        self.netns = netns
        self.addresses = {}
        self._processes = []

    def __repr__(self):
        return "<Namespace %s>" % (self.netns,)

    # ---- synchronous commands (set-up) ----

    def execArgv(self, argv):
        """
        The argv that runs C{argv} inside this namespace.
        """
        return [IP, "netns", "exec", self.netns] + list(argv)

    def run(self, argv, check=True, timeout=30, input=None, env=None):
        """
        Run C{argv} inside the namespace and wait for it; see L{_util.run}.
        """
        return run(self.execArgv(argv), check=check, timeout=timeout, input=input, env=env)

    def ip(self, *args, check=True):
        """
        Run C{ip -n NETNS ARGS...}.
        """
        return run([IP, "-n", self.netns] + list(args), check=check)

    def popen(self, argv, stdout=None, stderr=None, env=None, **kwargs):
        """
        Start C{argv} inside the namespace as a L{subprocess.Popen} (the
        harness's peers use this); its PID is the program's own, since
        C{ip netns exec} execs it. It is stopped (SIGTERM, then SIGKILL) by
        L{Network.cleanup} if still running.
        """
        process = subprocess.Popen(
            self.execArgv(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            **kwargs,
        )
        self._processes.append(process)
        return process

    def sysctl(self, key, value):
        """
        Set C{key} (C{net.ipv4.ip_forward}) to C{value} inside the namespace.
        """
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(["sh", "-c", 'echo %s > "$1"' % (value,), "sh", path])

    def addAddress(self, interface, cidr):
        """
        Add C{cidr} to C{interface}. IPv6 addresses skip duplicate address
        detection (C{nodad}) so that they are usable at once.
        """
        args = ["addr", "add", cidr, "dev", interface]
        if _isV6(cidr):
            args.append("nodad")
        self.ip(*args)
        self.addresses.setdefault(interface, []).append(cidr)

    def addLoopbackAddress(self, cidr):
        """
        Add an inner address to C{lo} (the host kernel has no C{dummy}
        links); strongSwan's kernel-libipsec needs one inside its local_ts.
        """
        self.addAddress("lo", cidr)

    def addRoute(self, destination, via=None, dev=None, src=None):
        """
        Add a route: C{destination} is a CIDR or C{"default"} (IPv4) or
        C{"default6"} (IPv6).
        """
        v6 = destination == "default6" or _isV6(destination) or (via is not None and _isV6(via))
        dest = "default" if destination in ("default", "default6") else destination
        args = (["-6"] if v6 else []) + ["route", "add", dest]
        if via:
            args += ["via", via]
        if dev:
            args += ["dev", dev]
        if src:
            args += ["src", src]
        self.ip(*args)

    def enableForwarding(self):
        """
        Route between interfaces (IPv4 and IPv6).
        """
        self.sysctl("net.ipv4.ip_forward", 1)
        self.sysctl("net.ipv6.conf.all.forwarding", 1)

    def masquerade(self, outInterface, ports=None):
        """
        Make this namespace a NAT box: forward, and masquerade everything
        (IPv4 and IPv6) that leaves through C{outInterface}, with nft.

        @param ports: C{None} to keep source ports where possible (NAT
            detection still sees the address change), or a range such as
            C{"20000-30000"} to force UDP source ports into it, so that
            IKE on port 500 arrives from another port.
        """
        from .. import support

        nft = support.requireExecutable("nft", "apt-get install nftables")
        self.enableForwarding()
        target = "masquerade" if ports is None else "masquerade to :%s" % (ports,)
        rules = (
            "table inet ikxnat {\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            '    oifname "%s" meta l4proto udp %s\n'
            '    oifname "%s" masquerade\n'
            "  }\n"
            "}\n" % (outInterface, target, outInterface)
        )
        self.run([nft, "-f", "-"], input=rules)

    def forward(self, inInterface, ports, to):
        """
        Forward what arrives on C{inInterface} for the UDP C{ports} (port
        numbers) to the IPv4 address C{to} (destination NAT, with nft): a
        responder behind this NAT box is reachable at its outside address.
        """
        from .. import support

        nft = support.requireExecutable("nft", "apt-get install nftables")
        self.enableForwarding()
        rules = (
            "table ip ikxforward {\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            '    iifname "%s" udp dport { %s } dnat to %s\n'
            "  }\n"
            "}\n" % (inInterface, ", ".join(str(port) for port in ports), to)
        )
        self.run([nft, "-f", "-"], input=rules)

    def conntrack(self):
        """
        The NAT box's connection tracking table, as text (for failure
        messages).
        """
        return self.run(["cat", "/proc/net/nf_conntrack"], check=False).stdout

    # ---- sockets for the test's own reactor ----

    def socket(self, family=socket.AF_INET, type=socket.SOCK_DGRAM, proto=0):
        """
        Create a socket inside this namespace from the calling process: the
        calling thread enters the namespace with setns(2) just for the
        socket(2) call and returns. The socket stays in the namespace for
        its whole life, so a daemon running in the test's reactor can send
        and receive there.
        """
        saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open("/run/netns/" + self.netns, os.O_RDONLY)
            try:
                _setns(target)
                try:
                    return socket.socket(family, type, proto)
                finally:
                    _setns(saved)
            finally:
                os.close(target)
        finally:
            os.close(saved)

    def listenUDP(self, port, proto, interface="", reactor=None, maxPacketSize=8192):
        """
        Like C{reactor.listenUDP(port, proto, interface)} but bound inside
        this namespace (C{interface} may be an IPv6 address). Returns the
        L{IListeningPort}; the caller stops it with C{stopListening}.
        """
        if reactor is None:
            from twisted.internet import reactor
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        s = self.socket(family, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((interface, port))
            s.setblocking(False)
            return reactor.adoptDatagramPort(s.fileno(), family, proto, maxPacketSize)
        finally:
            # adoptDatagramPort dup()s the descriptor
            s.close()

    # ---- Twisted processes ----

    def spawnProcess(self, processProtocol, argv, env=None, path=None, reactor=None, mountNamespace=None):
        """
        Run C{argv} inside the namespace as a Twisted process
        (C{reactor.spawnProcess} of C{ip netns exec NETNS ARGV...}).

        @param env: the environment; by default this process's.
        @param mountNamespace: a shell snippet to run first in a private mount
            namespace (C{unshare -m}), e.g. C{"mount -t tmpfs tmpfs /run"};
            the program is then exec'd, so its PID is the transport's.
        @return: the L{IProcessTransport}.
        """
        if reactor is None:
            from twisted.internet import reactor
        argv = list(argv)
        if mountNamespace is not None:
            argv = ["unshare", "-m", "sh", "-c", mountNamespace + ' && exec "$@"', "sh"] + argv
        full = self.execArgv(argv)
        transport = reactor.spawnProcess(
            processProtocol,
            full[0] if os.path.isabs(full[0]) else _which(full[0]),
            full,
            env=dict(os.environ) if env is None else env,
            path=path,
        )
        self._processes.append(transport)
        return transport

    def spawnPython(self, module, args=(), env=None, reactor=None, mountNamespace=None, name=None):
        """
        Run C{python -m MODULE ARGS...} (this interpreter, with the project
        root on C{PYTHONPATH}) inside the namespace, with its output
        collected by a L{LabProcess}. Use a L{ReportChannel} to hear back
        from it.

        @return: the started L{LabProcess}.
        """
        import sys

        environment = dict(os.environ) if env is None else dict(env)
        environment["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [environment.get("PYTHONPATH")] if p])
        environment.setdefault("PYTHONUNBUFFERED", "1")
        process = LabProcess(name or module, reactor=reactor)
        self.spawnProcess(
            process,
            [sys.executable, "-m", module] + list(args),
            env=environment,
            reactor=reactor,
            mountNamespace=mountNamespace,
        )
        return process

    def pids(self):
        """
        PIDs of every process inside this namespace.
        """
        result = run([IP, "netns", "pids", self.netns], check=False)
        return [int(p) for p in result.stdout.split()]

    def _stopProcesses(self):
        for p in self._processes:
            pid = p.pid
            if pid is None:
                continue
            if isinstance(p, subprocess.Popen):
                if p.poll() is not None:
                    continue
            elif not alive(pid):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        for p in self._processes:
            pid = p.pid
            if pid is None:
                continue
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if isinstance(p, subprocess.Popen):
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        # children the daemons forked (iked's privsep processes, ...)
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _which(name):
    import shutil

    path = shutil.which(name)
    if path is None:
        raise LabError("%s not found" % (name,))
    return path


class Link:
    """
    A veth pair between two namespaces.

    @ivar left: the first L{Namespace}; C{leftInterface} its end's name.
    @ivar right: the second L{Namespace}; C{rightInterface} its end's name.
    @ivar leftAddresses: CIDRs on the left end; C{rightAddresses} likewise.
    """

    def __init__(self, left, leftInterface, leftAddresses, right, rightInterface, rightAddresses):
        self.left = left
        self.leftInterface = leftInterface
        self.leftAddresses = leftAddresses
        self.right = right
        self.rightInterface = rightInterface
        self.rightAddresses = rightAddresses

    def interface(self, namespace):
        """
        This link's interface name inside C{namespace}.
        """
        return self.leftInterface if namespace is self.left else self.rightInterface


def address(cidr):
    """
    The address part of C{cidr} (C{"192.0.2.1/24"} -> C{"192.0.2.1"}).
    """
    return str(ipaddress.ip_interface(cidr).ip)


class Network:
    """
    A set of namespaces and links, torn down by L{cleanup} (registered with
    the test case's C{addCleanup} when one is given, so it runs even when
    the test fails; peers started later are cleaned up before it).

    @ivar namespaces: {short name: L{Namespace}}.
    @ivar links: the L{Link}s, in creation order.
    """

    prefix = "ikx"

    def __init__(self, testCase=None):
        from .. import support

        support.requireRoot()
        support.requireExecutable(IP, "apt-get install iproute2")
        global _swept
        if not _swept:
            _swept = True
            sweepStale(self.prefix)
        self.namespaces = {}
        self.links = []
        self._run = next(_counter)
        if testCase is not None:
            testCase.addCleanup(self.cleanup)

    def namespace(self, name):
        """
        Create a namespace with C{lo} up.
        """
        if name in self.namespaces:
            raise LabError("namespace %r already exists" % (name,))
        netns = "%s%d-%d-%s" % (self.prefix, os.getpid(), self._run, name)
        run([IP, "netns", "add", netns])
        ns = Namespace(self, name, netns)
        self.namespaces[name] = ns
        ns.ip("link", "set", "lo", "up")
        # never wait for DAD on addresses the harness adds, nor on link-locals
        ns.sysctl("net.ipv6.conf.all.accept_dad", 0)
        ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        return ns

    def link(self, left, right, leftAddresses=(), rightAddresses=(), leftInterface=None, rightInterface=None):
        """
        Join C{left} and C{right} (L{Namespace}s) with a veth pair, add the
        CIDRs given on each side, and bring both ends up.

        Interface names default to C{"to-<other name>"} (the ends are made
        directly inside the namespaces, so names never collide with the
        host's).
        """
        leftInterface = leftInterface or ("to-" + right.name)[:15]
        rightInterface = rightInterface or ("to-" + left.name)[:15]
        run(
            [IP, "-n", left.netns, "link", "add", leftInterface, "type", "veth",
             "peer", "name", rightInterface, "netns", right.netns]
        )
        for ns, interface, cidrs in ((left, leftInterface, leftAddresses), (right, rightInterface, rightAddresses)):
            if isinstance(cidrs, str):
                cidrs = [cidrs]
            for cidr in cidrs:
                ns.addAddress(interface, cidr)
            ns.ip("link", "set", interface, "up")
        link = Link(left, leftInterface, list(_listify(leftAddresses)), right, rightInterface, list(_listify(rightAddresses)))
        self.links.append(link)
        # a veth end that is set up is not at once operationally up; until it
        # is, IPv6 in particular drops what is sent through it
        for ns, interface in ((left, leftInterface), (right, rightInterface)):
            poll(lambda: "state UP" in ns.ip("-o", "link", "show", "dev", interface).stdout and
                 "tentative" not in ns.ip("-o", "addr", "show", "dev", interface).stdout,
                 5, what="%s up in %s" % (interface, ns.netns))
        return link

    # ---- ready-made topologies ----

    def pair(self, names=("a", "b")):
        """
        Two hosts on one link::

            a: 192.0.2.1/24 2001:db8:1::1/64 on to-b, 10.1.0.1/32 on lo
            b: 192.0.2.2/24 2001:db8:1::2/64 on to-a, 10.2.0.1/32 on lo

        (No inner IPv6 address: a test that needs one adds it with
        L{Namespace.addLoopbackAddress}.)

        @return: C{(a, b, link)}.
        """
        a = self.namespace(names[0])
        b = self.namespace(names[1])
        link = self.link(a, b, ["192.0.2.1/24", "2001:db8:1::1/64"], ["192.0.2.2/24", "2001:db8:1::2/64"])
        a.addLoopbackAddress("10.1.0.1/32")
        b.addLoopbackAddress("10.2.0.1/32")
        return a, b, link

    def natted(self, names=("a", "nat", "b"), ports=None, forward=()):
        """
        C{a} behind a NAT box, C{b} on the outside::

            a 192.0.2.1/24 2001:db8:1::1/64 --- 192.0.2.254 2001:db8:1::fe  nat
            nat 198.51.100.254/24 2001:db8:2::fe/64 --- 198.51.100.2/24 2001:db8:2::2/64  b

        C{a} routes everything through the NAT box, which masquerades it
        (IPv4 and IPv6) to its outside address; C{b} has no route to the
        inside. Inner addresses as in L{pair}.

        @param ports: see L{Namespace.masquerade}.
        @param forward: UDP ports the NAT box forwards to C{a}'s 192.0.2.1
            (L{Namespace.forward}), for C{a} as a responder behind it.
        @return: C{(a, nat, b)}.
        """
        a = self.namespace(names[0])
        nat = self.namespace(names[1])
        b = self.namespace(names[2])
        self.link(a, nat, ["192.0.2.1/24", "2001:db8:1::1/64"], ["192.0.2.254/24", "2001:db8:1::fe/64"])
        outside = self.link(nat, b, ["198.51.100.254/24", "2001:db8:2::fe/64"], ["198.51.100.2/24", "2001:db8:2::2/64"])
        a.addRoute("default", via="192.0.2.254")
        a.addRoute("default6", via="2001:db8:1::fe")
        a.addLoopbackAddress("10.1.0.1/32")
        b.addLoopbackAddress("10.2.0.1/32")
        nat.masquerade(outside.leftInterface, ports=ports)
        if forward:
            nat.forward(outside.leftInterface, forward, "192.0.2.1")
        return a, nat, b

    def cleanup(self):
        """
        Stop every process still running in the namespaces and delete them.
        Safe to call twice.
        """
        errors = []
        for ns in list(self.namespaces.values()):
            try:
                ns._stopProcesses()
            except Exception as e:  # keep deleting the others
                errors.append(repr(e))
            result = run([IP, "netns", "del", ns.netns], check=False)
            if result.returncode != 0 and "No such file" not in result.stderr:
                errors.append(result.stderr)
        self.namespaces.clear()
        if errors:
            raise LabError("network cleanup: " + "; ".join(errors))


def _listify(cidrs):
    return [cidrs] if isinstance(cidrs, str) else list(cidrs)


class LabProcess(protocol.ProcessProtocol):
    """
    A process protocol that keeps everything the process writes, and tells
    when it ends.

    @ivar name: a label for messages.
    @ivar output: bytes written to stdout and stderr, interleaved.
    @ivar ended: a L{Deferred} that fires with the exit L{Failure}'s value
        (C{ProcessDone} or C{ProcessTerminated}) when the process is gone.
    """

    def __init__(self, name="process", reactor=None):
        self.name = name
        self.output = bytearray()
        self.ended = defer.Deferred()
        self.status = None
        self._reactor = reactor

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.status = reason.value
        self.ended.callback(reason.value)

    @property
    def pid(self):
        return self.transport.pid if self.transport is not None else None

    def text(self):
        """
        The output so far, decoded.
        """
        return bytes(self.output).decode("utf-8", "replace")

    def stop(self, timeout=3.0):
        """
        SIGTERM, and SIGKILL after C{timeout} seconds. Returns L{ended}'s
        result as a L{Deferred} (always succeeds).
        """
        if self.status is not None:
            return defer.succeed(self.status)
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor
        done = defer.Deferred()
        self.ended.addBoth(lambda r: done.callback(r) if not done.called else None)
        try:
            self.transport.signalProcess("TERM")
        except Exception:
            pass

        def kill():
            if self.status is None:
                try:
                    self.transport.signalProcess("KILL")
                except Exception:
                    pass

        call = reactor.callLater(timeout, kill)
        done.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        return done

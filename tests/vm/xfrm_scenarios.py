# -*- test-case-name: tests.test_kernel_vm -*-
"""
Runs INSIDE the ESP-capable VM (ikedtx/testing/vm/vmrun.sh): every XFRM provider
scenario in one boot, with ikedtx's L{XfrmKernel} in two network namespaces
joined by a veth pair, and prints a JSON report between marker lines for
L{tests.test_kernel_vm} to check on the host.

    a: va 192.0.2.1/24 2001:db8::1/64, inner 10.1.0.1 fd01::1 (on lo)
    b: vb 192.0.2.2/24 2001:db8::2/64, inner 10.2.0.1 fd02::1 (on lo)

Each scenario records what it saw (ping results, the provider's querySA,
the counters of C{ip -s xfrm state}, events, errors); the host decides what
passes. A scenario that raises is recorded with its traceback.
"""

import ctypes
import json
import os
import re
import socket
import subprocess
import sys
import time
import traceback
from ipaddress import ip_address

START = time.time()
MARK_BEGIN = "=====IKEDTX-VM-REPORT-BEGIN====="
MARK_END = "=====IKEDTX-VM-REPORT-END====="
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def log(text):
    sys.stdout.write("[%6.2f] %s\n" % (time.time() - START, text))
    sys.stdout.flush()


def sh(command, check=True):
    result = subprocess.run(command, shell=True, capture_output=True, text=True)
    if check and result.returncode:
        raise RuntimeError("%s: rc %d: %s%s" % (command, result.returncode, result.stdout, result.stderr))
    return result.stdout + result.stderr


def setup():
    sh("modprobe -a xfrm_user esp4 esp6 ah4 ah6 xfrm4_tunnel xfrm6_tunnel tunnel4 tunnel6 ipcomp ipcomp6 veth "
       "authenc echainiv seqiv gcm ctr chacha20poly1305 cmac xcbc crypto_null deflate "
       "des3_ede_x86_64 sha512_ssse3 sha256_ssse3 aesni_intel ghash_clmulni_intel 2>&1 | grep -v 'not found'",
       check=False)
    sh("ip netns add a; ip netns add b; ip link add va netns a type veth peer name vb netns b")
    # The larval SAs the kernel makes for an acquire cannot be deleted one
    # by one (they have no SPI); they go after this many seconds (30 by
    # default), before the clean-up scenario looks.
    for ns in ("a", "b"):
        sh("ip netns exec %s sysctl -qw net.core.xfrm_acq_expires=3" % (ns,))
    for ns, dev, n in (("a", "va", 1), ("b", "vb", 2)):
        sh("ip -n %s link set lo up; ip -n %s addr add 192.0.2.%d/24 dev %s; "
           "ip -n %s addr add 2001:db8::%d/64 dev %s nodad; ip -n %s link set %s up; "
           "ip -n %s addr add 10.%d.0.1/32 dev lo; ip -n %s addr add fd0%d::1/128 dev lo"
           % (ns, ns, n, dev, ns, n, dev, ns, dev, ns, n, ns, n))
    sh("ip -n a route add 10.2.0.0/16 via 192.0.2.2 src 10.1.0.1; ip -n b route add 10.1.0.0/16 via 192.0.2.1 src 10.2.0.1")
    sh("ip -n a route add 10.9.0.0/16 via 192.0.2.2 src 10.1.0.1")
    sh("ip -n a route add fd02::/16 via 2001:db8::2 src fd01::1; ip -n b route add fd01::/16 via 2001:db8::1 src fd02::1")
    # Static neighbours keep ARP and IPv6 ND out of the transport-mode flows.
    mac = {ns: sh("ip -n %s -br link show %s" % (ns, dev)).split()[2] for ns, dev in (("a", "va"), ("b", "vb"))}
    sh("ip -n a neigh add 2001:db8::2 lladdr %s dev va nud permanent; ip -n b neigh add 2001:db8::1 lladdr %s dev vb "
       "nud permanent; ip -n a neigh add 192.0.2.2 lladdr %s dev va nud permanent; ip -n b neigh add 192.0.2.1 "
       "lladdr %s dev vb nud permanent" % (mac["b"], mac["a"], mac["b"], mac["a"]))


class InNetns:
    """
    Run a block in the named network namespace (sockets made there stay
    there).
    """

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + self.name)
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        _libc.setns(self.home, CLONE_NEWNET)
        os.close(self.home)


def ping(ns, source, destination, count=3, size=56):
    out = sh("ip netns exec %s ping -c %d -s %d -i 0.2 -W 1 -q -I %s %s" % (ns, count, size, source, destination),
             check=False)
    match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    return {"transmitted": int(match.group(1)) if match else 0, "received": int(match.group(2)) if match else 0,
            "output": out[-300:]}


def ipCounters(ns):
    """
    (spi, bytes, packets) of every SA in C{ip -s xfrm state}.
    """
    out = sh("ip -n %s -s xfrm state" % (ns,))
    counters = []
    for block in out.split("\nsrc ")[0:]:
        spi = re.search(r"spi 0x([0-9a-f]+)", block)
        current = re.search(r"lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)", block)
        if spi and current:
            counters.append([int(spi.group(1), 16), int(current.group(1)), int(current.group(2))])
    return counters


def main(reactor):
    from twisted.internet import defer, task

    from ikedtx.kernel.interfaces import KernelError, KernelFlow, KernelSA, KernelSelector
    from ikedtx.kernel.xfrm import XfrmKernel, bypassSocket, enableEspInUdp
    from ikedtx.wire.constants import EncrId, IntegId, ProtocolId

    report = {"timings": {"imports": round(time.time() - START, 2)}}
    log("imported")
    setup()
    log("namespaces ready")
    report["timings"]["setup"] = round(time.time() - START, 2)

    class Receiver:
        def __init__(self):
            self.events = []

        def acquire(self, reqid, source, destination):
            self.events.append(["acquire", reqid, str(source.startAddress), str(destination.startAddress),
                                round(time.time(), 2)])

        def expired(self, protocol, spi, destination, hard):
            self.events.append(["expired", int(protocol), spi, str(destination), hard, round(time.time(), 2)])

        def addressChanged(self, address, added):
            pass

    kernels, receivers = {}, {}
    for ns in ("a", "b"):
        with InNetns(ns):
            kernels[ns] = XfrmKernel(reactor)
        log("provider in " + ns)
        receivers[ns] = Receiver()
        kernels[ns].setEventReceiver(receivers[ns])

    def result(d):
        """
        The value of an already-fired Deferred, or raise its failure.
        """
        box = []
        d.addBoth(box.append)
        if not box:
            raise RuntimeError("Deferred has not fired")
        if hasattr(box[0], "raiseException"):
            box[0].raiseException()
        return box[0]

    A = ip_address
    outer = {4: (A("192.0.2.1"), A("192.0.2.2")), 6: (A("2001:db8::1"), A("2001:db8::2"))}
    inner = {4: (A("10.1.0.1"), A("10.2.0.1")), 6: (A("fd01::1"), A("fd02::1"))}
    nets = {4: ((A("10.1.0.0"), A("10.1.255.255")), (A("10.2.0.0"), A("10.2.255.255"))),
            6: ((A("fd01::"), A("fd01::ffff")), (A("fd02::"), A("fd02::ffff")))}

    def keys(encr, integ):
        if encr[0] in (EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305):
            return os.urandom((encr[1] or 256) // 8 + 4), b""
        return os.urandom(encr[1] // 8), os.urandom({IntegId.HMAC_SHA2_256_128: 32, IntegId.HMAC_SHA1_96: 20}[integ])

    def installPair(mode, family, encr, integ, reqid, protocol=ProtocolId.ESP, encap=None, ipcomp=False, **extra):
        """
        The two SAs and the flows of one Child SA, in both namespaces, as
        the core would give them (a is the initiator). Returns the SAs.
        """
        la, lb = outer[family]
        if mode == "tunnel":
            sa_, sb_ = nets[family]
        else:
            sa_, sb_ = (la, la), (lb, lb)
        selA, selB = KernelSelector(*sa_), KernelSelector(*sb_)
        ekAB, ikAB = keys(encr, integ) if protocol == ProtocolId.ESP else (b"", os.urandom(32))
        ekBA, ikBA = keys(encr, integ) if protocol == ProtocolId.ESP else (b"", os.urandom(32))
        common = dict(protocol=protocol, mode=mode, encryption=encr if protocol == ProtocolId.ESP else None,
                      integrity=integ, reqid=reqid, **extra)
        spiAB, spiBA = 0x1000 + reqid, 0x2000 + reqid
        encAB = encBA = None
        if encap:
            encAB, encBA = encap, (encap[1], encap[0])
        compAB = compBA = None
        if ipcomp:
            compAB, compBA = 0x4000 + reqid, 0x5000 + reqid
        ab = dict(spi=spiAB, source=la, destination=lb, encryptionKey=ekAB, integrityKey=ikAB, encapsulation=encAB,
                  ipcompCpi=compAB, **common)
        ba = dict(spi=spiBA, source=lb, destination=la, encryptionKey=ekBA, integrityKey=ikBA, encapsulation=encBA,
                  ipcompCpi=compBA, **common)
        sas = {}
        for ns, local, remote, mine, theirs in (("a", la, lb, selA, selB), ("b", lb, la, selB, selA)):
            k = kernels[ns]
            outSA = KernelSA(inbound=False, **(ab if ns == "a" else ba))
            inSA = KernelSA(inbound=True, **(ba if ns == "a" else ab))
            result(k.addSA(inSA))
            result(k.addSA(outSA))
            flows = [KernelFlow(mine, theirs, "out", protocol, mode, local, remote, reqid, ipcomp),
                     KernelFlow(theirs, mine, "in", protocol, mode, remote, local, reqid, ipcomp)]
            if mode == "tunnel":
                flows.append(KernelFlow(theirs, mine, "fwd", protocol, mode, remote, local, reqid, ipcomp))
            for f in flows:
                result(k.addFlow(f))
            sas[ns] = (inSA, outSA)
        return sas

    def usage(ns, sa):
        u = result(kernels[ns].querySA(sa))
        return {"bytes": u.bytes, "packets": u.packets, "installed": u.installed, "lastUsed": u.lastUsed}

    def flushBoth():
        for ns in ("a", "b"):
            result(kernels[ns].flush())

    encapSockets = []

    def pairScenario(mode, family, encr, integ, reqid, protocol=ProtocolId.ESP, encap=None, ipcomp=False, size=56,
                     **extra):
        t0 = time.time()
        sas = installPair(mode, family, encr, integ, reqid, protocol, encap, ipcomp, **extra)
        src, dst = (inner if mode == "tunnel" else outer)[family]
        out = {"ping": ping("a", src, dst, size=size)}
        out["usage"] = {ns: {"in": usage(ns, sas[ns][0]), "out": usage(ns, sas[ns][1])} for ns in ("a", "b")}
        out["spis"] = {ns: {"in": sas[ns][0].spi, "out": sas[ns][1].spi} for ns in ("a", "b")}
        out["ip"] = {ns: ipCounters(ns) for ns in ("a", "b")}
        # With -s: the replay state (ESN, window) shows too.
        out["states"] = sh("ip -n a -s xfrm state")[-8000:]
        flushBoth()
        out["afterFlush"] = {ns: sh("ip -n %s xfrm state; ip -n %s xfrm policy" % (ns, ns)) for ns in ("a", "b")}
        out["seconds"] = round(time.time() - t0, 2)
        return out

    GCM = (EncrId.AES_GCM_16, 128)
    CBC = (EncrId.AES_CBC, 128)
    CHACHA = (EncrId.CHACHA20_POLY1305, None)
    SHA256 = IntegId.HMAC_SHA2_256_128

    scenarios = {}

    def run(name, function, *args, **kwargs):
        log(name)
        try:
            scenarios[name] = function(*args, **kwargs)
        except BaseException as e:
            scenarios[name] = {"error": "%s: %s" % (type(e).__name__, e), "traceback": traceback.format_exc()}
            # Leave a clean datapath for the next scenario.
            for ns in ("a", "b"):
                try:
                    result(kernels[ns].flush())
                except Exception:
                    pass

    run("gcm_tunnel_v4", pairScenario, "tunnel", 4, GCM, None, 1, esn=True, replayWindow=128)
    run("cbc_sha256_transport_v4", pairScenario, "transport", 4, CBC, SHA256, 2)
    run("chacha_tunnel_v6", pairScenario, "tunnel", 6, CHACHA, None, 3)
    run("gcm_transport_v6", pairScenario, "transport", 6, GCM, None, 4)
    run("cbc_sha256_tunnel_v6", pairScenario, "tunnel", 6, CBC, SHA256, 5)

    # ESP in UDP (RFC 3948): both ends have a UDP socket on 4500 that takes
    # ESP in UDP and bypasses the flows, as the daemon's NAT-T port does.
    def espInUdp():
        for ns, address in (("a", "192.0.2.1"), ("b", "192.0.2.2")):
            with InNetns(ns):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((address, 4500))
            bypassSocket(s)
            enableEspInUdp(s)
            encapSockets.append(s)
        out = pairScenario("transport", 4, GCM, None, 6, encap=(4500, 4500))
        out["encapInState"] = "encap type espinudp sport 4500 dport 4500" in out["states"]
        # Their per-socket policies show in "ip xfrm policy" while they are
        # open.
        while encapSockets:
            encapSockets.pop().close()
        out["afterFlush"] = {ns: sh("ip -n %s xfrm state; ip -n %s xfrm policy" % (ns, ns)) for ns in ("a", "b")}
        return out

    run("gcm_transport_v4_espinudp", espInUdp)

    def updateKeepsSequence():
        """
        updateSA (MOBIKE) on both SAs of a GCM tunnel with a 32-packet
        replay window, in place: the replaced SAs go on from the old
        sequence numbers (from 1 again, the same GCM IVs would be used
        again).
        """
        sas = installPair("tunnel", 4, GCM, None, 11, replayWindow=32)
        src, dst = inner[4]
        out = {"before": ping("a", src, dst, count=5)}
        for ns in ("a", "b"):
            for sa in sas[ns]:
                result(kernels[ns].updateSA(sa, sa))
        out["after"] = ping("a", src, dst, count=5)
        out["usage"] = {ns: {"in": usage(ns, sas[ns][0]), "out": usage(ns, sas[ns][1])} for ns in ("a", "b")}
        out["states"] = sh("ip -n a -s xfrm state")[-2500:]
        out["drops"] = sh("ip netns exec b cat /proc/net/xfrm_stat", check=False)
        flushBoth()
        return out

    run("gcm_update_keeps_sequence", updateKeepsSequence)
    run("ah_sha256_transport_v4", pairScenario, "transport", 4, None, SHA256, 7, protocol=ProtocolId.AH)
    run("ipcomp_gcm_tunnel_v4", pairScenario, "tunnel", 4, GCM, None, 8, ipcomp=True, size=1200)

    @defer.inlineCallbacks
    def lifetimes():
        """
        An SA with a 2 s soft and 4 s hard lifetime: a soft expire, then a
        hard one, after which the kernel has no such SA.
        """
        la, lb = outer[4]
        k = kernels["a"]
        receivers["a"].events[:] = []
        sa = KernelSA(spi=0x3001, protocol=ProtocolId.ESP, inbound=False, source=la, destination=lb,
                      mode="transport", encryption=GCM, encryptionKey=os.urandom(20), integrity=None,
                      integrityKey=b"", reqid=20, softLifetimeSeconds=2, lifetimeSeconds=4)
        t0 = time.time()
        result(k.addSA(sa))
        for _ in range(160):
            if any(e[0] == "expired" and e[4] for e in receivers["a"].events):
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        events = [e[:5] + [round(e[5] - t0, 2)] for e in receivers["a"].events if e[0] == "expired"]
        left = sh("ip -n a xfrm state")
        try:
            result(k.querySA(sa))
            query = "found"
        except KernelError as e:
            query = str(e)
        result(k.flush())
        return {"events": events, "stateAfter": left, "queryAfter": query, "tracked": len(k.sas)}

    @defer.inlineCallbacks
    def acquire():
        """
        An outbound flow without SA: the first packet makes the kernel ask
        for one (XFRM_MSG_ACQUIRE), with the flow's reqid and the packet's
        addresses.
        """
        k = kernels["a"]
        receivers["a"].events[:] = []
        la, lb = outer[4]
        f = KernelFlow(KernelSelector(A("10.1.0.0"), A("10.1.255.255")),
                       KernelSelector(A("10.9.0.0"), A("10.9.255.255")), "out", ProtocolId.ESP, "tunnel", la, lb, 30)
        result(k.addFlow(f))
        sh("ip netns exec a ping -c 1 -W 1 -I 10.1.0.1 10.9.0.1", check=False)
        for _ in range(60):
            if receivers["a"].events:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        result(k.flush())
        return {"events": [e[:4] for e in receivers["a"].events]}

    def refusals():
        """
        A key length the kernel refuses, and an SA the kernel refuses
        (the same SPI twice): KernelError naming the SA and the reason.
        """
        la, lb = outer[4]
        k = kernels["a"]
        out = {}
        bad = KernelSA(spi=0x3101, protocol=ProtocolId.ESP, inbound=False, source=la, destination=lb,
                       mode="transport", encryption=(EncrId.AES_GCM_16, 136), encryptionKey=os.urandom(21),
                       integrity=None, integrityKey=b"", reqid=31)
        for name, sa in (("badKeyLength", bad),):
            try:
                result(k.addSA(sa))
                out[name] = "installed"
            except KernelError as e:
                out[name] = str(e)
        good = KernelSA(spi=0x3102, protocol=ProtocolId.ESP, inbound=False, source=la, destination=lb,
                        mode="transport", encryption=GCM, encryptionKey=os.urandom(20), integrity=None,
                        integrityKey=b"", reqid=32)
        result(k.addSA(good))
        try:
            result(k.addSA(good))
            out["duplicate"] = "installed"
        except KernelError as e:
            out["duplicate"] = str(e)
        result(k.flush())
        out["after"] = sh("ip -n a xfrm state")
        return out

    def cleanup():
        """
        flush removes exactly what this provider installed; a new provider
        removes what a crashed one left (same reqid range); a foreign SA and
        policy stay.
        """
        sh("ip -n a xfrm state add src 192.0.2.9 dst 192.0.2.1 proto esp spi 0x999 reqid 5 mode transport "
           "aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128")
        sh("ip -n a xfrm policy add src 10.7.0.0/16 dst 10.8.0.0/16 dir out tmpl src 192.0.2.1 dst 192.0.2.9 "
           "proto esp reqid 5 mode tunnel")
        installPair("tunnel", 4, GCM, None, 40)
        installPair("transport", 4, CBC, SHA256, 41)
        before = sh("ip -n a xfrm state; ip -n a xfrm policy")
        # A crashed daemon: its successor in namespace a finds its SAs.
        with InNetns("a"):
            successor = XfrmKernel(reactor)
        removed = successor.leftoversRemoved
        afterCrash = sh("ip -n a xfrm state; ip -n a xfrm policy")
        # The remaining provider in b flushes normally.
        result(kernels["b"].flush())
        afterFlushB = sh("ip -n b xfrm state; ip -n b xfrm policy")
        successor.stop()
        kernels["a"].sas.clear()
        kernels["a"].policies.clear()
        sh("ip -n a xfrm state flush; ip -n a xfrm policy flush")
        return {"before": before, "removedAtStart": removed, "afterStartA": afterCrash, "afterFlushB": afterFlushB}

    @defer.inlineCallbacks
    def everything():
        # The acquire first: the larval SA it leaves is gone
        # (xfrm_acq_expires) before the clean-up scenario looks.
        yield run_async("acquire", acquire)
        yield run_async("lifetimes", lifetimes)
        run("refusals", refusals)
        run("cleanup", cleanup)

    @defer.inlineCallbacks
    def run_async(name, function):
        log(name)
        try:
            scenarios[name] = yield function()
        except BaseException as e:
            scenarios[name] = {"error": "%s: %s" % (type(e).__name__, e), "traceback": traceback.format_exc()}

    yield_ = everything()

    def done(_):
        report["scenarios"] = scenarios
        report["timings"]["total"] = round(time.time() - START, 2)
        print(MARK_BEGIN)
        print(json.dumps(report, default=str))
        print(MARK_END)
        sys.stdout.flush()

    yield_.addCallback(done)
    return yield_


if __name__ == "__main__":
    from twisted.internet import task

    task.react(main)

#!/usr/bin/env python3
# -*- test-case-name: tests.test_bench -*-
"""
xfrmrate: how fast Child SAs are negotiated and installed into the kernel's
XFRM, ikedtx (C{--kernel xfrm}) next to strongSwan's charon with
kernel-netlink, in the ESP-capable VM (ikedtx.testing.lab.vm: Debian's 6.1
kernel under qemu, one boot for the whole run).

    sudo python3 bench/xfrmrate.py [--children 100] [--responders charon,ikedtx] [--output FILE.md]

The same charon initiator (namespace a) brings up one IKE SA and N Child
SAs (one CREATE_CHILD_SA exchange at a time, AES-GCM, no PFS) with the
responder under test (namespace b), which narrows its 10.2.0.0/16 <->
10.1.0.0/16 policy to each child's /32 pair and installs two SAs and its
policies per child. Figures: Child SAs per second, from loading the
initiator's configuration until all 2N SAs and N outbound policies are in
the responder's namespace, and the responder's CPU milliseconds per Child SA
(/proc/PID/stat). The initiator's own work is in every figure, the same for
each responder. Nothing is asserted: qemu emulates the CPU (no KVM here),
which slows Python much more than C, so the figures say how the two compare
under emulation, not on hardware.

Needs root, qemu and the VM kernel (ikedtx/testing/vm/setup.sh or
.ci/setup), strongSwan 5.9 (charon, swanctl).
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SCRIPT = os.path.join(ROOT, "bench", "xfrmrate_vm.py")
BEGIN, END = "=====XFRMRATE-BEGIN=====", "=====XFRMRATE-END====="
A, B = "192.0.2.1", "192.0.2.2"
PSK = "xfrmrate-psk-0123456789"
IKE = "aes128gcm16-prfsha256-x25519"
ESP = ("aes128gcm16", "childsa enc aes-128-gcm")
QUIET = {"ike": 1, "knl": 1, "chd": 1, "cfg": 1, "net": 0, "enc": 0}


def inner(prefix, i):
    """
    The i-th (0-based) /32 of C{prefix}.0.0/16, skipping .0 and .255.
    """
    return "%s.%d.%d" % (prefix, i // 250, i % 250 + 1)


def writePlan(directory, n, responders, timeout):
    from ikedtx.testing.lab.charon import Auth, CharonPeer, Child, Connection, Secret

    initiator = CharonPeer(None, os.path.join(directory, "initiator"), name="initiator", logLevels=QUIET)
    initiator.addConnection(Connection(
        "bench", local_addrs=[A], remote_addrs=[B], proposals=[IKE], local=Auth("psk", id=A),
        remote=Auth("psk", id=B),
        children=[Child("c%d" % (i,), local_ts=[inner("10.1", i) + "/32"], remote_ts=[inner("10.2", i) + "/32"],
                        esp_proposals=[ESP[0]], start_action="start") for i in range(n)]))
    initiator.addSecret(Secret(PSK, ids=[A, B]))
    initiator.writeConfig()
    responder = CharonPeer(None, os.path.join(directory, "responder"), name="responder", logLevels=QUIET)
    responder.addConnection(Connection(
        "bench", local_addrs=[B], remote_addrs=[A], proposals=[IKE], local=Auth("psk", id=B),
        remote=Auth("psk", id=A),
        children=[Child("all", local_ts=["10.2.0.0/16"], remote_ts=["10.1.0.0/16"], esp_proposals=[ESP[0]])]))
    responder.addSecret(Secret(PSK, ids=[A, B]))
    responder.writeConfig()
    etc = os.path.join(directory, "etc")
    for sub in ("ca", "certs", "crls", "private", "pubkeys"):
        os.makedirs(os.path.join(etc, sub), exist_ok=True)
    conf = os.path.join(directory, "iked.conf")
    with open(conf, "w") as f:
        f.write('ikev2 "bench" passive esp from 10.2.0.0/16 to 10.1.0.0/16 local %s peer %s %s srcid %s dstid %s '
                'psk "%s"\n' % (B, A, ESP[1], B, A, PSK))
    os.chmod(conf, 0o600)
    plan = {"n": n, "timeout": timeout, "responders": responders,
            "initiator": {"dir": initiator.directory, "vici": initiator.viciPath},
            "responderCharon": {"dir": responder.directory, "vici": responder.viciPath},
            "ikedtx": {"conf": conf, "etc": etc, "socket": os.path.join(directory, "ikedtx.sock"),
                       "log": os.path.join(directory, "ikedtx.log")}}
    path = os.path.join(directory, "plan.json")
    with open(path, "w") as f:
        json.dump(plan, f)
    return path


def measure(n=100, responders=("charon", "ikedtx", "provider"), timeout=300):
    """
    Boot the VM once and run every responder; returns (results, VM output).
    """
    from ikedtx.testing.lab.vm import runInVM

    directory = tempfile.mkdtemp(prefix="xfrmrate-")
    try:
        plan = writePlan(directory, n, list(responders), timeout)
        rc, output, seconds = runInVM(["env", "PYTHONPATH=" + ROOT, sys.executable, "-u", SCRIPT, plan],
                                      timeout=timeout * len(responders) + 200, cwd=ROOT)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if BEGIN not in output:
        raise SystemExit("no results from the VM (exit %d):\n%s" % (rc, output[-4000:]))
    return json.loads(output.split(BEGIN, 1)[1].split(END, 1)[0]), output


def table(results):
    lines = ["| responder | Child SAs | complete | seconds | Child SAs/s | responder CPU ms per Child SA | "
             "initiator CPU ms per Child SA |",
             "|---|---:|---|---:|---:|---:|---:|"]
    names = {"charon": "charon 5.9.8 kernel-netlink", "ikedtx": "ikedtx --kernel xfrm",
             "provider": "ikedtx's XfrmKernel alone (no IKE)"}
    for r in results:
        if "error" in r:
            lines.append("| %s | | error: %s | | | | |" % (names.get(r["responder"], r["responder"]), r["error"]))
            continue
        rate = r["n"] / r["seconds"] if r["seconds"] else 0
        cpu, initiatorCpu = ("%.1f" % (1000.0 * r[key] / r["n"],) if r.get(key) is not None else "?"
                             for key in ("responderCpu", "initiatorCpu"))
        lines.append("| %s | %d | %s | %.2f | %.1f | %s | %s |" % (
            names.get(r["responder"], r["responder"]), r["n"], "yes" if r["complete"] else
            "no (%d SAs, %d policies)" % tuple(r["responderCounts"]), r["seconds"], rate, cpu, initiatorCpu))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--responders", default="charon,ikedtx,provider",
                        help="provider: ikedtx's XFRM provider alone, adding SAs and flows in a loop")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per responder")
    parser.add_argument("--output", help="also write the table and the raw results (Markdown) here")
    options = parser.parse_args(argv)
    results, output = measure(options.children, options.responders.split(","), options.timeout)
    text = table(results)
    print(text)
    if options.output:
        with open(options.output, "w") as f:
            f.write("# XFRM install rate in the VM\n\n%s\n\nRaw:\n\n```\n%s\n```\n\nVM log:\n\n```\n%s\n```\n" % (
                text, json.dumps(results, indent=1),
                "\n".join(line for line in output.splitlines() if re.match(r"\[\s*\d", line))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

# -*- test-case-name: tests.test_kernel_vm -*-
"""
The ESP-capable kernel of the lab: a Debian 6.1 kernel booted under qemu
(ikedtx/testing/vm/vmrun.sh) with the host's root file system read-only and a RAM
overlay, for tests that need ESP, AH and IPcomp in a real kernel (the host
kernel has XFRM but no ESP).

C{.ci/setup} runs ikedtx/testing/vm/setup.sh, which installs qemu, busybox-static
and kmod and unpacks the kernel under C{VM_DIR} (default
/var/cache/ikedtx-vm). A boot costs ~2-2.5 s, and Python under emulation is
slow (importing pyroute2 and Twisted takes ~8-15 s), so a test module boots
once and runs all its scenarios in that one VM.
"""

import glob
import os
import subprocess
import time

from ikedtx.testing.lab._util import LabError
from ikedtx.testing.support import missing, requireExecutable, requireRoot

HERE = os.path.dirname(os.path.abspath(__file__))
VM_SCRIPTS = os.path.join(os.path.dirname(HERE), "vm")
DEFAULT_VM_DIR = "/var/cache/ikedtx-vm"


def vmDir():
    return os.environ.get("VM_DIR") or DEFAULT_VM_DIR


def requireVM():
    """
    Return the path of vmrun.sh once qemu and the unpacked kernel are there;
    otherwise L{missing} (a skip, or a failure under C{IKEDTX_REQUIRE_LAB=1}).
    """
    requireRoot()
    requireExecutable("qemu-system-x86_64", "VM_DIR=%s ikedtx/testing/vm/setup.sh (or .ci/setup)" % (vmDir(),))
    kernels = glob.glob(os.path.join(vmDir(), "vmlinux-*"))
    if not kernels:
        missing("no kernel under %s (run VM_DIR=%s ikedtx/testing/vm/setup.sh, or .ci/setup)" % (vmDir(), vmDir()))
    if not glob.glob(os.path.join(vmDir(), "k-amd64", "lib", "modules", "*")):
        missing("no kernel modules under %s/k-amd64 (run ikedtx/testing/vm/setup.sh)" % (vmDir(),))
    return os.path.join(VM_SCRIPTS, "vmrun.sh")


def runInVM(argv, timeout=300, cwd=None, env=None):
    """
    Boot the VM, run C{argv} in it as root (cwd is the caller's cwd, the
    host's files are visible read-only), and return C{(exit status, output,
    seconds)}.

    @raise LabError: when qemu itself does not finish in C{timeout}.
    """
    vmrun = requireVM()
    environ = dict(os.environ, VM_DIR=vmDir())
    environ.update(env or {})
    started = time.monotonic()
    try:
        result = subprocess.run([vmrun, "-t", str(timeout), "--"] + list(argv), capture_output=True, text=True,
                                timeout=timeout + 30, cwd=cwd, env=environ)
    except subprocess.TimeoutExpired as e:
        raise LabError("VM run of %s did not finish in %d s: %s" % (argv, timeout, e.stdout))
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started

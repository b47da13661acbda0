"""
The README's first command: C{iked-demo} runs two ikedtx daemons (as
processes) that negotiate an IKE SA and a Child SA over real sockets.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.support import requireExecutable, requireRoot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runDemo(*args):
    result = subprocess.run([sys.executable, "-m", "ikedtx.demo"] + list(args), cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


class DemoTests(SynchronousTestCase):
    def assertAgreed(self, status, output, local, remote):
        self.assertEqual(status, 0, output)
        self.assertIn("iked-demo: both daemons agree on the IKE SA and its Child SA", output)
        self.assertIn("a: IKE SA", output)
        # MOBIKE peers move IKE to the NAT-T port after IKE_SA_INIT (RFC 4555 3.3).
        self.assertIn("VALID policy demo, %s:14500 <-> %s:14500" % (local, remote), output)
        self.assertIn("b:   Child SA esp tunnel", output)
        self.assertIn("10.1.0.0/24 === 10.2.0.0/24", output)

    def test_loopback(self):
        """
        Without root, the daemons meet on 127.0.0.1 and 127.0.0.2.
        """
        status, output = runDemo("--loopback")
        self.assertAgreed(status, output, "127.0.0.1", "127.0.0.2")

    def test_namespaces(self):
        """
        As root, each daemon runs in a network namespace of its own.
        """
        requireRoot()
        requireExecutable("ip", "apt-get install iproute2")
        status, output = runDemo()
        self.assertAgreed(status, output, "192.0.2.1", "192.0.2.2")
        self.assertIn("network namespaces", output)

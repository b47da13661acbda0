# -*- test-case-name: tests.test_bench -*-
"""
The load generator (bench/loadgen.py) in the generator namespace,
spoken to over pipes.
"""

import json
import os
import select
import subprocess
import sys
import time

from bench import ROOT
from bench.suites import GEN_ADDRESS, generatorConfig, ikedTree
from ikedtx.testing.lab._util import writeFile


LOADGEN = os.path.join(ROOT, "bench", "loadgen.py")


class Generator:
    """
    bench/loadgen.py in the generator namespace, spoken to over pipes.
    """

    def __init__(self, namespace, directory, suite, credentials, window, ids, cpu=None, acceptChildless=False):
        self.directory = directory
        conf = os.path.join(directory, "gen.conf")
        writeFile(conf, generatorConfig(suite, ids), 0o600)
        etc = ikedTree(os.path.join(directory, "gen-etc"), credentials.gens if credentials else None,
                       credentials.ca if credentials else None)
        self.logPath = os.path.join(directory, "gen.log")
        argv = [sys.executable, LOADGEN, "--config", conf, "--etc-dir", etc, "--listen", GEN_ADDRESS,
                "--window", str(window), "--log", self.logPath, "--policy", "bench", "--ids", str(ids)]
        if acceptChildless:
            argv.append("--accept-childless")
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.process = subprocess.Popen(namespace.execArgv(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=open(self.logPath + ".err", "wb"), env=dict(os.environ, PYTHONPATH=ROOT),
                                        cwd=ROOT)
        namespace._processes.append(self.process)
        self._buffer = b""
        ready = self.read(30)
        self.pid = ready["pid"]

    def read(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("the generator said nothing for %.0f s" % (timeout,))
            r, _, _ = select.select([self.process.stdout], [], [], left)
            if r:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError("the generator exited:\n%s" % (self.errors(),))
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def errors(self):
        text = ""
        for path in (self.logPath + ".err", self.logPath):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f.read()[-3000:]
        return text

    def command(self, line):
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()

    def run(self, target, timeout):
        self.command("run %d %f" % (target, timeout))
        return self.read(timeout + 30)

    def stop(self):
        if self.process.poll() is None:
            try:
                self.command("quit")
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(5)

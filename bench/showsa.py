"""
Seconds for ``ikectl show sa`` (the blocking client, as ikectl pages it)
over many fake established IKE SAs behind a real control socket, and the
longest page (the daemon answers a page while IKE waits).

    PYTHONPATH=. python bench/showsa.py [COUNT] [--classic]

--classic pages with AMP lists of 50 SAs (what clients did before packed
pages, and what a client that does not ask for them gets).
"""

import os
import signal
import sys
import time

from twisted.internet import reactor

from ikedtx.control import sync
from ikedtx.control.server import ControlFactory
from tests.test_control import fakeService


def _connectable(path):
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)


def main(count, classic=False):
    """
    The daemon's side (a reactor serving the control socket) runs in a
    forked process, the blocking client (as ikectl) in this one.
    """
    path = "/tmp/ikedtx-bench-showsa-%d.sock" % (os.getpid(),)
    service = fakeService(count)
    child = os.fork()
    if child == 0:
        reactor.listenUNIX(path, ControlFactory(service))
        reactor.run()
        os._exit(0)
    try:
        # The socket file exists from bind(), before listen(): wait until
        # it takes connections.
        while True:
            try:
                _connectable(path)
                break
            except OSError:
                time.sleep(0.05)
        times = []

        def timed(*args, **kw):
            began = time.monotonic()
            try:
                return callRemote(*args, **kw)
            finally:
                times.append(time.monotonic() - began)

        callRemote = sync.callRemote
        sync.callRemote = timed
        if classic:
            showSAPages = sync.C.showSAPages
            sync.C.showSAPages = lambda *args, **kw: showSAPages()
        started = time.monotonic()
        clientCPU = time.process_time()
        sas = sync.showSA(path, timeout=600)
        clientCPU = time.process_time() - clientCPU
        print("show sa%s: %d of %d SAs in %.1f s, %d pages, the longest %.0f ms" % (
            " (classic)" if classic else "", len(sas), count, time.monotonic() - started, len(times),
            max(times) * 1000))
        result = (len(sas), clientCPU)
    finally:
        os.kill(child, signal.SIGTERM)
        _, _, usage = os.wait4(child, 0)
        if os.path.exists(path):
            os.unlink(path)
    print("  CPU: daemon %.2f s (all pages), client %.2f s; load average %.1f" % (
        usage.ru_utime + usage.ru_stime, result[1], os.getloadavg()[0]))


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--classic"]
    main(int(arguments[0]) if arguments else 100000, classic="--classic" in sys.argv[1:])

"""
Seconds for ``ikectl show sa`` (the blocking client, as ikectl pages it)
over many fake established IKE SAs behind a real control socket.

    PYTHONPATH=. python bench/showsa.py [COUNT]
"""

import os
import signal
import sys
import time

from twisted.internet import reactor

from ikedtx.control import sync
from ikedtx.control.server import ControlFactory
from tests.test_control import fakeService


def main(count):
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
        while not os.path.exists(path):
            time.sleep(0.05)
        started = time.monotonic()
        sas = sync.showSA(path, timeout=600)
        print("show sa: %d of %d SAs in %.1f s" % (len(sas), count, time.monotonic() - started))
    finally:
        os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000)

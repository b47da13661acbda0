# -*- test-case-name: tests.test_lab_harness -*-
"""
A tiny Twisted UDP echo server, run by the harness's own tests inside a
namespace with L{netns.Namespace.spawnPython} to show how a daemon under
test runs there and reports back: C{python -m ikedtx.testing.lab.udpecho ADDRESS PORT}.
"""

import sys

from twisted.internet import protocol, reactor

from .report import report


class Echo(protocol.DatagramProtocol):
    def datagramReceived(self, data, address):
        self.transport.write(data, address)
        report("echoed", data=data.decode("utf-8", "replace"), peer=list(address))


def main(argv):
    address, port = argv[1], int(argv[2])
    listening = reactor.listenUDP(port, Echo(), interface=address)
    report("listening", address=address, port=listening.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)

# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics (C{--metrics ADDR:PORT}), served by Twisted.

L{MetricsService} listens on TCP with a L{twisted.web} site whose one
resource, L{MetricsResource}, answers C{GET /metrics} in the text
exposition format of prometheus_client (an optional dependency, the
C{metrics} extra). Every scrape reads the daemon as it is: the IKE and
Child SAs by state, the half-open IKE SAs, the counters of C{ikectl show
stats} (the shell's and the core's), negotiations that failed by cause,
and what the datapath counted for each installed Child SA (asked with
C{querySA}, so the answer waits for the datapath).
"""

import os

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ikedtx.core.states import ChildState, IKEState


class MetricsUnavailable(Exception):
    """
    prometheus_client is not installed.
    """


def _prometheus():
    try:
        import prometheus_client
        from prometheus_client import core
    except ImportError:
        raise MetricsUnavailable("--metrics needs prometheus_client (pip install ikedtx[metrics])")
    return prometheus_client, core


def parseAddress(text):
    """
    C{ADDR:PORT} (C{[ADDR]:PORT} for IPv6, or C{PORT} alone for every
    address) as C{(host, port)}.

    @raise ValueError: with the reason.
    """
    host, sep, port = text.rpartition(":")
    if not sep:
        host = ""
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("--metrics needs ADDR:PORT with a port in 1-65535, not %r" % (text,))
    if host:
        from ipaddress import ip_address

        ip_address(host)
    return host, int(port)


class _Families:
    """
    A registry for C{generate_latest}: the metric families of one scrape.
    """

    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def families(service, usages):
    """
    The metric families of C{service} (an L{ikedtx.service.IkedService})
    now.

    @param usages: C{[(policy, KernelSA, KernelSAUsage)]} of the installed
        Child SAs.
    """
    _, core = _prometheus()
    from ikedtx.control.events import COUNTERS
    from ikedtx.control.operations import Operations

    ikeCore = service.core
    out = []
    ikeSAs = core.GaugeMetricFamily("ikedtx_ike_sas", "IKE SAs by state (iked's IKEV2_STATE_*).",
                                    labels=["state"])
    children = core.GaugeMetricFamily("ikedtx_child_sas", "Child SAs by state.", labels=["state"])
    ikeCount = dict.fromkeys(IKEState, 0)
    childCount = dict.fromkeys(ChildState, 0)
    for ikeSA in ikeCore.ikeSAs.values():
        ikeCount[ikeSA.state] += 1
        for child in ikeSA.children:
            childCount[child.state] += 1
    for state, n in ikeCount.items():
        ikeSAs.add_metric([state.name], n)
    for state, n in childCount.items():
        children.add_metric([state.name], n)
    out += [ikeSAs, children,
            core.GaugeMetricFamily("ikedtx_half_open_ike_sas", "IKE SAs of peers not past IKE_AUTH yet.",
                                   value=ikeCore.halfOpenCount())]
    values = {entry["name"]: entry["value"] for entry in Operations(service).stats()["counters"]}
    for name in COUNTERS:
        if name == "ikes_sa_established_current":
            continue
        metric = "ikedtx_" + name.split("_", 1)[1]
        # The exposition adds _total to counters itself.
        if metric.endswith("_total"):
            metric = metric[:-len("_total")]
        out.append(core.CounterMetricFamily(metric, "show stats: %s." % (name,), value=values[name]))
    failures = core.CounterMetricFamily("ikedtx_negotiation_failures",
                                        "IKE SAs that failed before they were established, by cause.",
                                        labels=["reason"])
    stats = service.events.stats
    for reason in ("auth", "timeout", "failed", "deleted"):
        failures.add_metric([reason], stats.failures.get(reason, 0))
    out.append(failures)
    traffic = {}
    for policy, sa, usage in usages:
        key = (policy, "in" if sa.inbound else "out")
        counted = traffic.setdefault(key, [0, 0])
        counted[0] += usage.bytes
        counted[1] += usage.packets
    octets = core.CounterMetricFamily("ikedtx_child_sa_bytes", "Bytes the datapath counted on the Child SAs "
                                      "installed now, by policy and direction.", labels=["policy", "direction"])
    packets = core.CounterMetricFamily("ikedtx_child_sa_packets", "Packets the datapath counted on the Child "
                                       "SAs installed now, by policy and direction.", labels=["policy", "direction"])
    for (policy, direction), (nBytes, nPackets) in sorted(traffic.items()):
        octets.add_metric([policy, direction], nBytes)
        packets.add_metric([policy, direction], nPackets)
    out += [octets, packets]
    return out


def queryUsages(service):
    """
    What the datapath counted for every installed Child SA: a Deferred
    C{[(policy, KernelSA, KernelSAUsage)]} (SAs it cannot answer for are
    left out).
    """
    ds = []
    for ikeSA in list(service.core.ikeSAs.values()):
        policy = ikeSA.policy.name if ikeSA.policy is not None else ""
        for child in ikeSA.children:
            if child.kernelRecords is None or child.state != ChildState.INSTALLED:
                continue
            for sa in child.kernelRecords[0]:
                d = defer.maybeDeferred(service.kernel.querySA, sa)
                d.addCallbacks(lambda usage, policy=policy, sa=sa: (policy, sa, usage), lambda _: None)
                ds.append(d)
    return defer.gatherResults(ds).addCallback(lambda results: [r for r in results if r is not None])


class MetricsResource(Resource):
    """
    C{GET /metrics}: the exposition of L{families}.

    @ivar service: the L{ikedtx.service.IkedService}.
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, service):
        Resource.__init__(self)
        self.service = service

    def render_GET(self, request):
        prometheus, _ = _prometheus()
        if request.postpath not in ([b"metrics"], [b"metrics", b""]) and request.path != b"/metrics":
            request.setResponseCode(404)
            return b"ikedtx serves /metrics\n"
        if self.service.core is None:
            request.setResponseCode(503)
            return b"the daemon is starting\n"
        finished = request.notifyFinish()
        gone = []
        finished.addErrback(lambda _: gone.append(True))

        def render(usages):
            body = prometheus.generate_latest(_Families(families(self.service, usages)))
            if gone:
                return
            request.setHeader(b"content-type", prometheus.CONTENT_TYPE_LATEST.encode("ascii"))
            request.write(body)
            request.finish()

        def failed(reason):
            self._log.failure("metrics: scrape failed", reason)
            if not gone:
                request.setResponseCode(500)
                request.write(b"internal error\n")
                request.finish()

        queryUsages(self.service).addCallback(render).addErrback(failed)
        return NOT_DONE_YET


class MetricsService(Service):
    """
    The metrics' HTTP listener, for the parent L{IkedService}.

    @ivar address: C{(host, port)}; host C{""} for every address.
    @ivar listening: the listening port while running, else L{None}.
    """

    _log = Logger()
    name = "metrics"
    #: C{(fd, family)} of a socket bound and listening already (the
    #: privilege-separated worker's, from its parent), or L{None}.
    descriptor = None

    def __init__(self, address, reactor):
        self.address = address
        self.reactor = reactor
        self.listening = None

    def check(self):
        from ikedtx.service import StartupError

        try:
            _prometheus()
        except MetricsUnavailable as e:
            raise StartupError(str(e))

    def startService(self):
        from twisted.internet.error import CannotListenError

        from ikedtx.service import StartupError

        self.check()
        host, port = self.address
        site = Site(MetricsResource(self.parent))
        site.noisy = False
        try:
            if self.descriptor is not None:
                fd, family = self.descriptor
                self.listening = self.reactor.adoptStreamPort(fd, family, site)
                os.close(fd)
            else:
                self.listening = self.reactor.listenTCP(port, site, interface=host)
        except CannotListenError as e:
            raise StartupError("metrics on %s:%d: %s" % (host or "*", port, getattr(e.socketError, "strerror", None)
                                                          or e.socketError))
        Service.startService(self)
        self._log.info("metrics on http://{host}:{port}/metrics", host=host or "*",
                       port=self.listening.getHost().port)

    def stopService(self):
        Service.stopService(self)
        listening, self.listening = self.listening, None
        if listening is not None:
            return defer.maybeDeferred(listening.stopListening)

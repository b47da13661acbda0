"""
Tests for L{ikedtx.metrics}: the Prometheus exposition of a daemon's SAs,
counters and datapath counters, rendered by twisted.web in memory and read
back with prometheus_client's own parser; the C{--metrics} option.
"""

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import succeed
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from ikedtx.control.events import EventHub
from ikedtx.core.actions import IKESADown
from ikedtx.kernel.interfaces import KernelSAUsage
from ikedtx.metrics import MetricsResource, parseAddress
from ikedtx.net.shell import CoreRunner

from tests.test_core_exchanges import ExchangeTestCase


class FakeService:
    """
    What L{MetricsResource} reads of an L{ikedtx.service.IkedService}.
    """

    def __init__(self, core, kernel):
        self.core = core
        self.kernel = kernel
        self.events = EventHub()
        self.runner = None
        self.credentials = None


class CountingKernel:
    """
    A datapath that counted C{usages[spi]} on each SA.
    """

    def __init__(self, usages):
        self.usages = usages

    def querySA(self, sa):
        return succeed(self.usages.get(sa.spi, KernelSAUsage()))


def scrape(service, path=b"/metrics"):
    """
    GET C{path}: C{(code, headers, {name: {labels: value}})}.
    """
    request = DummyRequest([path.strip(b"/")])
    request.path = path
    resource = MetricsResource(service)
    result = resource.render_GET(request)
    if isinstance(result, bytes):
        return request.responseCode, request.responseHeaders, result
    body = b"".join(request.written).decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return request.responseCode, request.responseHeaders, samples


class ExpositionTests(ExchangeTestCase):
    def service(self, usages=None):
        a, b, ikeSA = self.establish()
        (child,) = ikeSA.children
        return FakeService(a.core, CountingKernel(usages or {})), child

    def test_sasByState(self):
        """
        One IKE SA and one Child SA up: the gauges by state say so, every
        other state is 0, and no IKE SA is half open.
        """
        service, child = self.service()
        code, headers, samples = scrape(service)
        self.assertIn(code, (None, 200))
        self.assertEqual(headers.getRawHeaders(b"content-type"), [CONTENT_TYPE_LATEST.encode("ascii")])
        self.assertEqual(samples["ikedtx_ike_sas"][(("state", "VALID"),)], 1)
        self.assertEqual(sum(samples["ikedtx_ike_sas"].values()), 1)
        self.assertEqual(samples["ikedtx_child_sas"][(("state", "INSTALLED"),)], 1)
        self.assertEqual(sum(samples["ikedtx_child_sas"].values()), 1)
        self.assertEqual(samples["ikedtx_half_open_ike_sas"], {(): 0})

    def test_counters(self):
        """
        The counters of C{show stats}, the core's among them, are counters
        of the same names without iked's prefix.
        """
        service, child = self.service()
        service.core.counters.count("ikes_retransmit_request", 3)
        service.events.stats.count("ikes_msg_sent", 5)
        code, headers, samples = scrape(service)
        self.assertEqual(samples["ikedtx_retransmit_request_total"], {(): 3})
        self.assertEqual(samples["ikedtx_msg_sent_total"], {(): 5})
        self.assertEqual(samples["ikedtx_sa_created_total"], {(): 1})
        self.assertNotIn("ikedtx_sa_established_current_total", samples)
        # iked's ikes_sa_established_total, without a second _total.
        self.assertEqual(samples["ikedtx_sa_established_total"], {(): 0})

    def test_failuresByReason(self):
        """
        IKE SAs that failed before they were established count by the cause
        of their IKESADown.
        """
        service, child = self.service()
        runner = CoreRunner.__new__(CoreRunner)
        runner.events = service.events
        runner.radius = None
        for cause in ("auth", "auth", "timeout"):
            runner.action_IKESADown(IKESADown(b"i" * 8, b"r" * 8, "ab", ("192.0.2.2", 500), "x", False, cause))
        runner.action_IKESADown(IKESADown(b"i" * 8, b"r" * 8, "ab", ("192.0.2.2", 500), "x", True, "timeout"))
        code, headers, samples = scrape(service)
        self.assertEqual(samples["ikedtx_negotiation_failures_total"],
                         {(("reason", "auth"),): 2, (("reason", "timeout"),): 1, (("reason", "failed"),): 0,
                          (("reason", "deleted"),): 0})

    def test_datapathCounters(self):
        """
        What the datapath counted on the installed Child SA's SAs, by
        policy and direction.
        """
        a, b, ikeSA = self.establish()
        (child,) = ikeSA.children
        usages = {child.spiIn: KernelSAUsage(bytes=840, packets=10),
                  child.spiOut: KernelSAUsage(bytes=420, packets=5)}
        code, headers, samples = scrape(FakeService(a.core, CountingKernel(usages)))
        self.assertEqual(samples["ikedtx_child_sa_bytes_total"],
                         {(("direction", "in"), ("policy", "ab")): 840, (("direction", "out"), ("policy", "ab")): 420})
        self.assertEqual(samples["ikedtx_child_sa_packets_total"],
                         {(("direction", "in"), ("policy", "ab")): 10, (("direction", "out"), ("policy", "ab")): 5})

    def test_otherPath(self):
        """
        Only /metrics is served.
        """
        service, child = self.service()
        code, headers, body = scrape(service, b"/other")
        self.assertEqual(code, 404)

    def test_starting(self):
        """
        Before the core exists the answer is 503, not a traceback.
        """
        service = FakeService(None, CountingKernel({}))
        code, headers, body = scrape(service)
        self.assertEqual(code, 503)


class OptionTests(SynchronousTestCase):
    def test_parseAddress(self):
        self.assertEqual(parseAddress("127.0.0.1:9150"), ("127.0.0.1", 9150))
        self.assertEqual(parseAddress("[::1]:9150"), ("::1", 9150))
        self.assertEqual(parseAddress("9150"), ("", 9150))
        for bad in ("127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x", "host:9150", ""):
            self.assertRaises(ValueError, parseAddress, bad)

    def test_option(self):
        """
        C{--metrics ADDR:PORT} is checked with the other options; a bad one
        is a usage error.
        """
        from ikedtx.tap import Options

        options = Options()
        options.loadConfiguration = False
        options.parseOptions(["--metrics", "127.0.0.1:9150"])
        self.assertEqual(options["metrics"], ("127.0.0.1", 9150))
        options = Options()
        options.loadConfiguration = False
        error = self.assertRaises(usage.UsageError, options.parseOptions, ["--metrics", "127.0.0.1:99999"])
        self.assertIn("--metrics", str(error))

"""
Prometheus metrics (C{--metrics}) of real daemons: two ikedtx daemons with
the user-space datapath, each in a network namespace, negotiate and pass
pings; each is scraped over HTTP on the loopback of its namespace and the
exposition is read with prometheus_client's parser.
"""

import sys

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import TestCase

from tests.interop import A, A_INNER, B, B_INNER, PSK
from tests.test_interop_userspace import ESP, UserspaceMixin

METRICS = "127.0.0.1:9150"

_FETCH = ("import sys, urllib.request\n"
          "with urllib.request.urlopen(sys.argv[1], timeout=20) as r:\n"
          "    sys.stdout.write(r.headers['content-type'] + '\\n' + r.read().decode('utf-8'))\n")


def scrape(namespace):
    """
    GET /metrics on the loopback of C{namespace}: C{(content type,
    {name: {labels: value}})}.
    """
    result = namespace.run([sys.executable, "-c", _FETCH, "http://%s/metrics" % (METRICS,)], timeout=60)
    contentType, _, body = result.stdout.partition("\n")
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return contentType, samples


class MetricsDaemonTests(UserspaceMixin, TestCase):
    def test_scrapeAfterNegotiation(self):
        """
        After one negotiation and three pings each way, each daemon reports
        one VALID IKE SA and one installed Child SA, nothing half open, the
        IKE SA it created and the messages it exchanged, and the six
        packets of each direction the datapath counted.
        """
        self.hosts()
        policy = 'ikev2 "peer" passive natt esp from %s to %s local %s peer %s %s srcid %s dstid %s psk "%s"\n'
        child = ESP["gcm"][1]
        ours = self.startOurs(self.a, policy % (A_INNER, B_INNER, A, B, child, A, B, PSK), A,
                              extra=["--metrics", METRICS])
        theirs = self.startOurs(self.b, policy % (B_INNER, A_INNER, B, A, child, B, A, PSK), B,
                                extra=["--metrics", METRICS])
        ours.initiate("peer")
        self.assertPings([(self.a, A_INNER, B_INNER), (self.b, B_INNER, A_INNER)])
        for daemon, namespace in ((ours, self.a), (theirs, self.b)):
            contentType, samples = scrape(namespace)
            self.assertTrue(contentType.startswith("text/plain"), contentType)
            self.labAssertEqual(samples["ikedtx_ike_sas"][(("state", "VALID"),)], 1, repr(samples))
            self.labAssertEqual(sum(samples["ikedtx_ike_sas"].values()), 1)
            self.labAssertEqual(samples["ikedtx_child_sas"][(("state", "INSTALLED"),)], 1)
            self.labAssertEqual(samples["ikedtx_half_open_ike_sas"], {(): 0})
            self.labAssertEqual(samples["ikedtx_sa_created_total"], {(): 1})
            self.labAssertEqual(samples["ikedtx_sa_established_total"], {(): 1})
            self.labAssertEqual(samples["ikedtx_negotiation_failures_total"][(("reason", "auth"),)], 0)
            self.assertGreaterEqual(samples["ikedtx_msg_sent_total"][()], 2)
            self.assertGreaterEqual(samples["ikedtx_msg_rcvd_total"][()], 2)
            # ping -c 3 each way: three requests and three replies per SA.
            self.labAssertEqual(samples["ikedtx_child_sa_packets_total"],
                                {(("direction", "in"), ("policy", "peer")): 6,
                                 (("direction", "out"), ("policy", "peer")): 6}, daemon.report())
            inBytes = samples["ikedtx_child_sa_bytes_total"][(("direction", "in"), ("policy", "peer"))]
            self.assertGreaterEqual(inBytes, 6 * 84)

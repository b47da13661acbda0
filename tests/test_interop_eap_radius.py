"""
EAP-RADIUS in IKE_AUTH, live: strongSwan's charon as road warrior with
EAP-MSCHAPv2 -> ikedtx with C{eap "radius"} -> FreeRADIUS 3 (the lab's
L{ikedtx.testing.lab.freeradius}, on the loopback of ikedtx's namespace)
holding the user. ikedtx relays the EAP conversation to FreeRADIUS, takes
the MSK from its Access-Accept and sends Accounting Start and Stop for the
IKE SA.
"""

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import poll
from ikedtx.testing.lab.freeradius import FreeRadius
from ikedtx.testing.support import requireExecutable

from tests.interop import A, A_FQDN, A_INNER
from tests.test_interop_eap import DNS, PASSWORD, POOL, USER, EAPMixin, stats
from tests.test_interop_userspace import ping

SECRET = b"radwire-s3cret"
DAE_SECRET = "dae-s3cret"


def radiusConfig(server, accounting=True, nameServer=True):
    lines = 'radius server 127.0.0.1 port %d secret "%s"\n' % (server.authPort, SECRET.decode())
    if accounting:
        lines += 'radius accounting server 127.0.0.1 port %d secret "%s"\n' % (server.acctPort, SECRET.decode())
    return lines + ('ikev2 "rw" passive esp from %s to dynamic local %s srcid %s eap "radius" '
                    'config address %s %s\n' % (A_INNER, A, A_FQDN, POOL,
                                                 "config name-server " + DNS if nameServer else ""))


class CharonThroughRadiusTests(EAPMixin, TestCase):
    def startRadius(self, replies=None):
        server = FreeRadius(self.mktemp(), SECRET, {USER: PASSWORD}, namespace=self.a, replies=replies)
        server.start()
        self.addCleanup(server.stop)
        return server

    def test_mschapv2ThroughRadius(self):
        """
        charon authenticates with EAP-MSCHAPv2 against FreeRADIUS through
        ikedtx: both hold the same SAs, the virtual IP pings through, and
        FreeRADIUS's detail file has an Accounting Start for the user and,
        once charon deletes the IKE SA, a Stop with the same session id.
        """
        self.hosts()
        self.credentials()
        radius = self.startRadius()
        ours = self.startServer(radiusConfig(radius))
        charon = self.startRoadWarrior()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output + "\n" + radius.log()[-3000:])
        mine, theirs = self.assertUp(ours, charon)
        self.labAssertEqual(theirs.get("state"), "ESTABLISHED", "charon's IKE SA: %r" % (theirs,))
        self.labAssertEqual(mine.get("eapId"), USER, "ikectl show sa: %r" % (mine,))
        self.labAssertEqual(stats(ours).get("ikedtx_eap_success"), 1, "ikedtx's stats")
        self.labAssert("Access-Accept" in radius.log(), "FreeRADIUS sent no Access-Accept")
        sessionId = "%s-%s" % (mine["spiI"], mine["spiR"])

        def records(status):
            return [r for r in radius.detailRecords()
                    if r.get("Acct-Status-Type") == status and r.get("Acct-Session-Id") == sessionId]

        start = poll(lambda: records("Start"), what=lambda: "Accounting Start in %r" % (radius.detailRecords(),))
        self.labAssertEqual(start[0].get("User-Name"), USER, "the Start record: %r" % (start,))
        self.labAssertEqual(start[0].get("Framed-IP-Address"), "10.77.0.1", "the Start record: %r" % (start,))
        charon.terminate(ike="rw")
        poll(lambda: ours.showSa() == [], what=lambda: "ikedtx's SA gone: %r" % (ours.showSa(),))
        stop = poll(lambda: records("Stop"), what=lambda: "Accounting Stop in %r" % (radius.detailRecords(),))
        self.labAssertEqual(stop[0].get("User-Name"), USER, "the Stop record: %r" % (stop,))
        # The datapath's counters of the Child SA (3 pings each way through
        # the user-space datapath), the session time, our address and the
        # address we lent.
        stop = stop[0]
        for name in ("Acct-Input-Packets", "Acct-Output-Packets"):
            self.labAssert(int(stop.get(name, "0")) >= 3, "%s in the Stop record: %r" % (name, stop))
        for name in ("Acct-Input-Octets", "Acct-Output-Octets"):
            self.labAssert(int(stop.get(name, "0")) >= 3 * 84, "%s in the Stop record: %r" % (name, stop))
        self.labAssert(stop.get("Acct-Session-Time", "").isdigit(), "Acct-Session-Time in the Stop record: %r" % (stop,))
        self.labAssertEqual(stop.get("NAS-IP-Address"), A, "the Stop record: %r" % (stop,))
        self.labAssertEqual(stop.get("Framed-IP-Address"), "10.77.0.1", "the Stop record: %r" % (stop,))
        self.labAssertEqual(start[0].get("NAS-IP-Address"), A, "the Start record: %r" % (start,))

    def test_addressFromRadius(self):
        """
        iked's C{radius config} defaults: the Access-Accept's
        Framed-IP-Address (outside the pool) is charon's virtual IP and
        its MS-Primary-DNS-Server the DNS attribute of the CFG_REPLY (the
        policy has none); the tunnel pings, and the accounting Start names
        that address.
        """
        self.hosts()
        self.credentials()
        radius = self.startRadius(replies={USER: ["Framed-IP-Address = 10.78.0.5",
                                                  "MS-Primary-DNS-Server = 10.1.0.99"]})
        ours = self.startServer(radiusConfig(radius, nameServer=False))
        charon = self.startRoadWarrior()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output + "\n" + radius.log()[-3000:])
        mine, theirs = self.assertSameSAs(ours, charon)
        self.labAssertEqual(theirs.get("local-vips"), ["10.78.0.5"], "charon's virtual IPs: %r" % (theirs,))
        # The policy has no name-server: the DNS attribute is RADIUS's.
        log = charon.log()
        self.labAssert("CPRP(ADDR DNS)" in log and "processing INTERNAL_IP4_DNS attribute" in log,
                       "charon got no DNS server")
        self.labAssertEqual(ping(self.b, "10.78.0.5", A_INNER, 3), 3, "ping from the RADIUS-given address")
        start = poll(lambda: [r for r in radius.detailRecords() if r.get("Acct-Status-Type") == "Start"],
                     what=lambda: "Accounting Start in %r" % (radius.detailRecords(),))
        self.labAssertEqual(start[0].get("Framed-IP-Address"), "10.78.0.5", "the Start record: %r" % (start,))

    def test_failover(self):
        """
        Two C{radius server} lines, the first dead, with C{radius max-tries
        1} and C{radius max-failovers 1}: ikedtx gives the first server one
        try, fails over to FreeRADIUS, and charon authenticates; the
        accounting server gets the Start.
        """
        from ikedtx.testing.lab.freeradius import freeUDPPorts

        self.hosts()
        self.credentials()
        radius = self.startRadius()
        (dead,) = freeUDPPorts(1)
        config = ('radius server 127.0.0.1 port %d secret "%s"\nradius max-tries 1\nradius max-failovers 1\n' % (
            dead, SECRET.decode()) + radiusConfig(radius))
        ours = self.startServer(config)
        charon = self.startRoadWarrior()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output + "\n" + ours.log()[-3000:])
        self.assertUp(ours, charon)
        log = ours.logWith("failing over")
        self.labAssert("127.0.0.1:%d did not answer 1 tries: failing over to 127.0.0.1:%d" % (dead, radius.authPort)
                       in log, "ikedtx did not fail over")
        self.labAssert("retransmitting" not in log, "ikedtx retransmitted despite max-tries 1")
        poll(lambda: [r for r in radius.detailRecords() if r.get("Acct-Status-Type") == "Start"],
             what=lambda: "Accounting Start in %r" % (radius.detailRecords(),))

    def test_wrongPasswordThroughRadius(self):
        """
        A wrong password: FreeRADIUS rejects, ikedtx refuses with
        AUTHENTICATION_FAILED and keeps no SA, and no accounting is sent.
        """
        self.hosts()
        self.credentials()
        radius = self.startRadius()
        ours = self.startServer(radiusConfig(radius))
        charon = self.startRoadWarrior(password="not-" + PASSWORD)
        ok, output = charon.initiate(child="net")
        self.labAssert(not ok, "charon's initiate succeeded with a wrong password:\n" + output)
        self.labAssert("received EAP_FAILURE, EAP authentication failed" in charon.log(),
                       "charon's log shows no EAP Failure received")
        self.labAssertEqual(ours.showSa(), [], "ikedtx keeps an SA")
        self.labAssertEqual(stats(ours).get("ikedtx_eap_failures"), 1, "ikedtx's stats")
        self.labAssert("Access-Reject" in radius.log(), "FreeRADIUS sent no Access-Reject")
        self.labAssertEqual(radius.detailRecords(), [], "accounting for a refused peer")
        self.labAssert(PASSWORD not in ours.log(), "ikedtx logged the password")

    def test_noRadiusServer(self):
        """
        C{eap "radius"} without a C{radius server} line: ikedtx says so at
        start and refuses the peer with AUTHENTICATION_FAILED, without a
        traceback.
        """
        self.hosts()
        self.credentials()
        config = ('ikev2 "rw" passive esp from %s to dynamic local %s srcid %s eap "radius" '
                  'config address %s\n' % (A_INNER, A, A_FQDN, POOL))
        ours = self.startServer(config)
        charon = self.startRoadWarrior()
        ok, output = charon.initiate(child="net")
        self.labAssert(not ok, "charon's initiate succeeded without a RADIUS server:\n" + output)
        self.labAssert("AUTHENTICATION_FAILED" in charon.log(), "charon was not told AUTHENTICATION_FAILED")
        self.labAssertEqual(ours.showSa(), [], "ikedtx keeps an SA")
        log = ours.log()
        self.labAssert('uses eap "radius" and no radius server is configured' in log, "ikedtx did not say why")
        self.labAssert("Traceback" not in log, "a traceback in ikedtx's log")

    def radclient(self, port, secret, attributes, timeout=2):
        """
        FreeRADIUS's radclient in ikedtx's namespace sending a
        Disconnect-Request to ikedtx's DAE port; its output.
        """
        radclient = requireExecutable("radclient", "apt-get install freeradius-utils")
        result = self.a.run([radclient, "-x", "-r", "1", "-t", str(timeout), "127.0.0.1:%d" % (port,), "disconnect",
                             secret], check=False, input="\n".join(attributes) + "\n")
        return result.stdout + result.stderr

    def test_disconnectRequest(self):
        """
        RFC 5176 through FreeRADIUS's radclient: a Disconnect-Request for
        an unknown user is answered Disconnect-NAK (Error-Cause 503) and
        changes nothing; one with a wrong secret is not answered; one for
        the user is answered Disconnect-ACK, deletes ikedtx's IKE SA (charon
        hears the Delete) and its accounting Stop says Admin-Reset.
        """
        from ikedtx.testing.lab.freeradius import freeUDPPorts

        self.hosts()
        self.credentials()
        radius = self.startRadius()
        (port,) = freeUDPPorts(1)
        config = ('radius dae listen on 127.0.0.1 port %d\nradius dae client 127.0.0.1 secret "%s"\n' % (
            port, DAE_SECRET) + radiusConfig(radius))
        ours = self.startServer(config)
        charon = self.startRoadWarrior()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        self.assertUp(ours, charon)
        answer = self.radclient(port, DAE_SECRET, ['User-Name = "nobody"'])
        self.labAssert("Disconnect-NAK" in answer, "radclient's output: " + answer)
        self.labAssert("Error-Cause = Session-Context-Not-Found" in answer, "radclient's output: " + answer)
        answer = self.radclient(port, "wrong-" + DAE_SECRET, ['User-Name = "%s"' % (USER,)], timeout=1)
        self.labAssert("Disconnect-ACK" not in answer and "Disconnect-NAK" not in answer,
                       "a request with a wrong secret was answered: " + answer)
        self.labAssertEqual(len(ours.showSa()), 1, "ikedtx's SAs after the refused requests")
        answer = self.radclient(port, DAE_SECRET, ['User-Name = "%s"' % (USER,)])
        self.labAssert("Disconnect-ACK" in answer, "radclient's output: " + answer)
        poll(lambda: ours.showSa() == [], what=lambda: "ikedtx's SA gone: %r" % (ours.showSa(),))
        poll(lambda: "received DELETE for IKE_SA" in charon.log(), what=lambda: "charon heard no Delete")
        stop = poll(lambda: [r for r in radius.detailRecords() if r.get("Acct-Status-Type") == "Stop"],
                    what=lambda: "Accounting Stop in %r" % (radius.detailRecords(),))
        self.labAssertEqual(stop[0].get("Acct-Terminate-Cause"), "Admin-Reset", "the Stop record: %r" % (stop,))
        log = ours.logWith("Disconnect-ACK")
        self.labAssert("dropped: its Request Authenticator does not verify" in log,
                       "ikedtx did not log the request with a wrong secret")

# -*- test-case-name: tests.test_kernel_routes -*-
"""
Routes for tunnel flows, the way strongSwan's kernel-netlink installs them.

XFRM looks at a packet only once the host has routed it: without a route to
the remote inner network a host cannot send into the tunnel (or it sends
from its outer address, which no flow covers). For each outbound tunnel flow
whose local inner address is on this host, the XFRM provider installs a
route to the remote network, through the next hop towards the peer, with
that inner address as the preferred source, in a table of its own (220, as
charon's) that a policy-routing rule consults before the main table.
Everything goes when the flow goes, and on shutdown. Each route carries
ikedtx's own route protocol number (C{proto} in C{ip route}), so that the
routes a crashed run left are told from charon's in the same table and
removed at start (L{TunnelRoutes.removeLeftovers}).
"""

import errno
import socket
from ipaddress import ip_address

from twisted.logger import Logger

#: charon's table and rule priority.
DEFAULT_TABLE = 220

#: The route protocol of ikedtx's routes: none of the numbers Linux and
#: iproute2 give routing daemons (rtnetlink.h, rt_protos), and not charon's
#: (static).
PROTOCOL = 158


class TunnelRoutes:
    """
    The routes of tunnel flows, in table L{table}, over pyroute2's
    C{IPRoute}.

    @ivar table: the routing table (0: install no routes).
    @ivar priority: the priority of the rule that looks the table up.
    @ivar rules: the address families whose rule is installed.
    @ivar protocol: the route protocol ikedtx's routes carry.
    """

    _log = Logger()

    def __init__(self, table=DEFAULT_TABLE, priority=None, netns=None):
        self.table = table
        self.priority = priority
        self.netns = netns
        self.rules = set()
        self.protocol = PROTOCOL

    def _ipr(self):
        from pyroute2 import IPRoute

        return IPRoute(netns=self.netns) if self.netns else IPRoute()

    def localAddressIn(self, start, end):
        """
        An address of this host between C{start} and C{end}, or L{None}.
        """
        family = socket.AF_INET6 if start.version == 6 else socket.AF_INET
        with self._ipr() as ipr:
            for message in ipr.get_addr(family=family):
                address = ip_address(message.get_attr("IFA_ADDRESS"))
                if start <= address <= end:
                    return address
        return None

    def _nextHop(self, ipr, peer):
        """
        C{(gateway, interface index)} of the host's route to C{peer}
        (gateway L{None} when the peer is on a link of this host).
        """
        (answer,) = ipr.route("get", dst=str(peer))[:1]
        return answer.get_attr("RTA_GATEWAY"), answer.get_attr("RTA_OIF")

    def _route(self, ipr, command, network, source, peer):
        gateway, oif = self._nextHop(ipr, peer)
        kwargs = dict(dst=str(network), table=self.table, oif=oif, prefsrc=str(source), proto=self.protocol)
        if gateway is not None and ip_address(gateway).version == network.version:
            kwargs["gateway"] = gateway
        ipr.route(command, **kwargs)

    def addRoute(self, network, source, peer):
        """
        Route C{network} towards C{peer} with preferred source C{source}.
        """
        family = socket.AF_INET6 if network.version == 6 else socket.AF_INET
        with self._ipr() as ipr:
            if family not in self.rules:
                try:
                    ipr.rule("add", **self._rule(family))
                except Exception as e:
                    # Already there with ikedtx's protocol (left by an
                    # earlier run): it is the same.
                    if getattr(e, "code", None) != errno.EEXIST:
                        raise
                self.rules.add(family)
            self._route(ipr, "replace", network, source, peer)

    def deleteRoute(self, network, source, peer):
        with self._ipr() as ipr:
            # Only ikedtx's own: a route of charon's to the same network stays.
            ipr.route("del", dst=str(network), table=self.table, proto=self.protocol)

    def removeLeftovers(self):
        """
        Remove the routes with ikedtx's protocol from L{table}, and its rules
        (a run that could not flush left them); the others stay. Return how
        many routes went.
        """
        if not self.table:
            return 0
        removed = 0
        with self._ipr() as ipr:
            for family in (socket.AF_INET, socket.AF_INET6):
                for route in ipr.get_routes(family=family, table=self.table):
                    if route["proto"] != self.protocol or route.get_attr("RTA_TABLE") != self.table:
                        continue
                    destination = "%s/%d" % (route.get_attr("RTA_DST") or ("::" if family == socket.AF_INET6
                                                                             else "0.0.0.0"), route["dst_len"])
                    try:
                        ipr.route("del", dst=destination, table=self.table, proto=self.protocol, family=family)
                        removed += 1
                    except Exception as e:
                        self._log.warn("removing the leftover route to {destination} failed: {error}",
                                       destination=destination, error=e)
            rules = self._removeLeftoverRules(ipr)
        if rules:
            self._log.info("removed {n} rules an earlier ikedtx left for table {table}", n=rules, table=self.table)
        if removed:
            self._log.info("removed {n} routes an earlier ikedtx left in table {table}", n=removed, table=self.table)
        return removed

    def _rule(self, family):
        """
        The rule that looks L{table} up, marked with ikedtx's protocol: a
        rule of charon's for the same table and priority is another rule,
        never added, matched or deleted in ikedtx's name.
        """
        return dict(table=self.table, priority=self.priority or self.table, family=family, protocol=self.protocol)

    def _removeLeftoverRules(self, ipr):
        removed = 0
        for family in (socket.AF_INET, socket.AF_INET6):
            for rule in ipr.get_rules(family=family):
                if rule.get_attr("FRA_PROTOCOL") != self.protocol or rule.get_attr("FRA_TABLE") != self.table:
                    continue
                try:
                    ipr.rule("del", **dict(self._rule(family), priority=rule.get_attr("FRA_PRIORITY")))
                    removed += 1
                except Exception as e:
                    self._log.warn("removing the leftover rule for table {table} failed: {error}",
                                   table=self.table, error=e)
        return removed

    def removeRules(self):
        """
        Remove the rules L{addRoute} added (once no route is left): only
        ikedtx's (its protocol), never charon's for the same table.
        """
        with self._ipr() as ipr:
            for family in list(self.rules):
                try:
                    ipr.rule("del", **self._rule(family))
                except Exception as e:
                    self._log.warn("removing the rule for table {table} failed: {error}", table=self.table, error=e)
                self.rules.discard(family)

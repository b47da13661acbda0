# -*- test-case-name: tests.test_core_config -*-
"""
Address pools (iked.conf C{config address NET/PREFIX}): one address per
peer identity and IKE SA, kept while the IKE SA (or the IKE SA that rekeyed
it) lives, given back when it goes. A returning identity gets the address it
had last time when that address is free (iked's lease behaviour); with
C{set stickyaddress} an identity that still holds an address (another IKE
SA of it is up) gets that same address again.

Pools are keyed by their network, so two policies naming the same pool
never hand out one address twice; they survive a reload.
"""

from ipaddress import ip_address


class PoolExhausted(Exception):
    """
    No free address is left in a pool.
    """


class Lease:
    """
    One address lent to one identity.

    @ivar address: the L{ipaddress} address.
    @ivar identity: the key of the identity holding it.
    @ivar holders: the IKE SAs it is lent to (several with C{stickyaddress}).
    """

    def __init__(self, address, identity):
        self.address = address
        self.identity = identity
        self.holders = []

    def __repr__(self):
        return "<Lease %s to %s, %d holder(s)>" % (self.address, self.identity, len(self.holders))


class AddressPool:
    """
    The addresses of one network (or of one worker's share of it).

    @ivar network: the pool's network.
    @ivar leases: L{dict} address -> L{Lease}, of the addresses lent.
    @ivar remembered: L{dict} identity -> the address it held last.
    @ivar share: C{(index, count)}: this pool lends only the addresses whose
        offset from the first usable one is C{index} modulo C{count} (the
        share of one of C{count} IKE workers, L{ikedtx.privsep.pool}, so
        that no two workers lend the same address); C{(0, 1)}: all.
    """

    def __init__(self, network, share=(0, 1)):
        self.network = network
        self.leases = {}
        self.remembered = {}
        # holder -> its leases; identity -> its leases (sticky).
        self._byHolder = {}
        self._byIdentity = {}
        size = network.num_addresses
        first, last = int(network.network_address), int(network.broadcast_address)
        if size > 2:
            # The network address (the subnet-router anycast address in
            # IPv6) and the IPv4 broadcast address are never handed out.
            first += 1
            if network.version == 4:
                last -= 1
        index, count = share
        if not 0 <= index < count:
            raise ValueError("share %r of pool %s" % (share, network))
        self.share = share
        self._step = count
        self._first, self._last = first + index, last

    def __len__(self):
        if self._last < self._first:
            return 0
        return (self._last - self._first) // self._step + 1

    def _free(self, address):
        return address not in self.leases

    def acquire(self, identity, holder, sticky=False):
        """
        Lend an address to C{identity} for C{holder} (an IKE SA).

        @raise PoolExhausted: no address is free.
        """
        if sticky:
            for lease in self._byIdentity.get(identity, ()):
                lease.holders.append(holder)
                self._byHolder.setdefault(holder, []).append(lease)
                return lease.address
        address = self.remembered.get(identity)
        if address is None or not self._free(address):
            address = self._pick(identity)
        lease = self.leases[address] = Lease(address, identity)
        lease.holders.append(holder)
        self._byHolder.setdefault(holder, []).append(lease)
        self._byIdentity.setdefault(identity, []).append(lease)
        self.remembered[identity] = address
        return address

    def _pick(self, identity):
        """
        The lowest free address not remembered for another identity (so
        that they find theirs again), else the lowest free one.
        """
        taken = set(self.remembered.values())
        fallback = None
        value = self._first
        step = self._step
        # Lent addresses bound the scan: a /64 is never walked through.
        limit = min(self._last, self._first + (len(self.leases) + len(taken) + 1) * step)
        while value <= limit:
            address = ip_address(value)
            if self._free(address):
                if address not in taken:
                    return address
                if fallback is None:
                    fallback = address
            value += step
        if fallback is not None:
            return fallback
        raise PoolExhausted("address pool %s is exhausted (%d addresses lent)" % (self.network, len(self.leases)))

    def release(self, holder):
        """
        Give back what C{holder} held; return the addresses freed.
        """
        freed = []
        for lease in self._byHolder.pop(holder, ()):
            lease.holders = [h for h in lease.holders if h is not holder]
            if not lease.holders:
                del self.leases[lease.address]
                same = self._byIdentity[lease.identity]
                same.remove(lease)
                if not same:
                    del self._byIdentity[lease.identity]
                freed.append(lease.address)
        return freed

    def transfer(self, old, new):
        """
        The IKE SA C{old} was rekeyed as C{new}: its leases go with it.
        """
        leases = self._byHolder.pop(old, None)
        if leases is None:
            return
        for lease in leases:
            lease.holders = [new if h is old else h for h in lease.holders]
        self._byHolder.setdefault(new, []).extend(leases)


class AddressPools:
    """
    Every pool of the configuration, by network, made on first use.

    @ivar share: the C{(index, count)} of every pool (L{AddressPool.share}).
    """

    def __init__(self, share=(0, 1)):
        self._pools = {}
        self.share = share

    def setShare(self, index, count):
        """
        Lend only this worker's share of each pool (before any is used).
        """
        if any(pool.leases for pool in self._pools.values()):
            raise ValueError("address pools already in use")
        self.share = (index, count)
        self._pools = {}

    def pool(self, network):
        pool = self._pools.get(network)
        if pool is None:
            pool = self._pools[network] = AddressPool(network, self.share)
        return pool

    def release(self, holder):
        freed = []
        for pool in self._pools.values():
            freed += pool.release(holder)
        return freed

    def transfer(self, old, new):
        for pool in self._pools.values():
            pool.transfer(old, new)

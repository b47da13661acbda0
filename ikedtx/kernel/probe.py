# -*- test-case-name: tests.test_kernel_probe -*-
"""
Which datapath this host can run, found out before the daemon starts.

A Linux kernel may have XFRM and its netlink interface (policies install)
and still no ESP: C{/proc/net/xfrm_stat} is there, SPIs can be allocated
(larval SAs need no ESP), and only installing an ESP SA fails ("Requested
type not found"; EPROTONOSUPPORT over netlink). So the only reliable test
is the real one: L{probeXfrmEsp} installs a throw-away ESP SA and deletes
it again. L{probeTun} does the same for the user-space datapath's TUN
device.

L{chooseKernel} is the default of C{--kernel}: C{decoupled} with C{set
decouple}, else C{xfrm} where the kernel has ESP, else C{userspace}.
"""

import errno
import os
import struct
from ipaddress import ip_address

from ikedtx.kernel.interfaces import KernelSA
from ikedtx.wire.constants import EncrId, IntegId, ProtocolId


class DatapathUnusable(Exception):
    """
    A datapath cannot be used on this host; the message says why, in one
    line.
    """


#: The probe SA's reqid: the last core reqid of the XFRM provider's range,
#: so that a probe SA a killed daemon left is removed like its other SAs.
PROBE_REQID = 0xFFFFFF

#: Documentation addresses (RFC 5737): the probe SA carries no traffic.
_PROBE_SOURCE = ip_address("192.0.2.254")
_PROBE_DESTINATION = ip_address("192.0.2.255")


def probeSA(spi):
    """
    The L{KernelSA} L{probeXfrmEsp} installs: ESP with AES-CBC-128 and
    HMAC-SHA2-256-128 (in every kernel that has ESP), transport mode.
    """
    return KernelSA(
        spi=spi, protocol=ProtocolId.ESP, inbound=False, source=_PROBE_SOURCE, destination=_PROBE_DESTINATION,
        mode="transport", encryption=(EncrId.AES_CBC, 128), encryptionKey=os.urandom(16),
        integrity=IntegId.HMAC_SHA2_256_128, integrityKey=os.urandom(32), reqid=PROBE_REQID)


def probeXfrmEsp(channel=None, randomBytes=os.urandom):
    """
    Install and delete one ESP SA over netlink.

    @param channel: the L{ikedtx.kernel.xfrm.NetlinkChannel} to use (one is
        made and closed by default).
    @raise DatapathUnusable: with the kernel's reason when it refuses.
    """
    from ikedtx.kernel import xfrm

    made = channel is None
    try:
        if made:
            channel = xfrm.NetlinkChannel()
    except Exception as e:
        raise DatapathUnusable("no XFRM netlink socket: %s" % (getattr(e, "strerror", None) or e,))
    try:
        # SPIs from 0x100 up are ours to choose (RFC 4303 2.1); a random one
        # keeps clear of whatever else is installed.
        (spi,) = struct.unpack("!I", randomBytes(4))
        spi = 0x100 + spi % (0xFFFFFFFF - 0x100)
        sa = probeSA(spi)
        msg = xfrm.saMessage(sa)
        try:
            channel.request(msg, xfrm.m.XFRM_MSG_NEWSA, xfrm._NETLINK_CREATE)
        except Exception as e:
            if getattr(e, "code", None) == errno.ENOENT:
                # ESP is there, the probe's algorithm is not (and cannot be
                # loaded): an SA with it would fail on its own, reported
                # with its algorithm.
                return
            error = xfrm._kernelError("the kernel cannot install an ESP SA", e)
            raise DatapathUnusable(str(error))
        try:
            channel.request(xfrm.saIdMessage(xfrm.m.IPPROTO_ESP, spi, sa.destination), xfrm.m.XFRM_MSG_DELSA,
                            xfrm._NETLINK_ACK)
        except Exception:
            # Left for the start-up clean-up (its reqid is in our range).
            pass
    finally:
        if made:
            channel.close()


def probeTun(deviceName="ipsec0"):
    """
    Create the user-space datapath's TUN device and close it again.

    @raise DatapathUnusable: when it cannot be made (no /dev/net/tun, no
        CAP_NET_ADMIN, the name in use).
    """
    from ikedtx.kernel.userspace import TunDevice

    device = TunDevice(deviceName)
    try:
        device.open()
    except Exception as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise DatapathUnusable("cannot create the TUN device %s: %s" % (deviceName, reason))
    device.close()


def chooseKernel(decouple, probe=None):
    """
    The datapath when C{--kernel} is not given: C{(name, why)}.

    @param decouple: the configuration says C{set decouple}.
    @param probe: the ESP test (L{probeXfrmEsp} by default), raising
        L{DatapathUnusable}.
    """
    if decouple:
        return "decoupled", "'set decouple': SAs and flows are recorded, not installed"
    if probe is None:
        probe = probeXfrmEsp
    try:
        probe()
    except DatapathUnusable as e:
        return "userspace", "the kernel has no usable ESP: %s" % (e,)
    return "xfrm", "the kernel has ESP"

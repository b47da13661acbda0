# -*- test-case-name: tests.test_config_printer -*-
"""
Render a L{Config} the way C{iked -n -v} prints a configuration: one line
per C{user} and per policy, in file order, each policy with every default
spelled out.

The text is made from the model, never from the file, so it shows what
ikedtx understood.  It follows iked's printer word for word (including its
order of words, which is not always the grammar's: C{proto} before
C{inet}), except that a flow's source NAT network is printed
(C{from 10.1.1.1 (192.168.1.0/24) to ...}) where iked leaves it out, and
C{request} attributes print as C{request} as in current iked.
"""

from ikedtx.config.transforms import configName, nameOf
from ikedtx.config.hosts import protocolName
from ikedtx.wire.constants import ProtocolId, TransformType

# iked prints a proposal's transforms grouped by type, in this order.
_TYPE_ORDER = (
    (TransformType.ENCR, " enc "),
    (TransformType.PRF, " prf "),
    (TransformType.INTEG, " auth "),
    (TransformType.DH, " group "),
    (TransformType.ESN, " "),
) + tuple((t, " addke%d " % (t - TransformType.ADDKE1 + 1,))
          for t in range(TransformType.ADDKE1, TransformType.ADDKE7 + 1))


def renderConfig(config):
    """
    The text C{iked -n -v} prints for C{config} (without its final
    C{configuration OK}): a line for each user and each policy.
    """
    items = [(u.position, renderUser(u)) for u in config.users]
    items += [(p.position, renderPolicy(p)) for p in config.policies]
    return "".join(line + "\n" for _, line in sorted(items, key=lambda item: item[0]))


def renderUser(user):
    return 'user "%s" "%s"' % (user.name, user.password)


def _selector(sel):
    text = str(sel.address)
    if sel.showPrefix:
        text += "/%d" % (sel.network.prefixlen,)
    if sel.port:
        text += " port %d" % (sel.port,)
    return text


def _hostAddress(address):
    if address is None:
        return "any"
    text = str(address.address)
    if address.isNetwork:
        text += "/%d" % (address.prefixLength,)
    return text


def renderPolicy(policy):
    """
    The C{iked -n -v} line of one policy.
    """
    out = ["ikev2", ' "%s"' % (policy.name,)]
    if policy.default:
        out.append(" default")
    elif policy.quick:
        out.append(" quick")
    elif policy.skip:
        out.append(" skip")
    out.append(" active" if policy.active else " passive")
    if policy.ipcomp:
        out.append(" ipcomp")
    if policy.natt:
        out.append(" natt")
    out.append(" " + policy.mode)
    out.append(" esp" if policy.saProtocol == ProtocolId.ESP else " ah")
    if policy.ipProtocols:
        out.append(" proto { %s }" % (", ".join(protocolName(p) for p in policy.ipProtocols),))
    if policy.af:
        out.append(" " + policy.af)
    if policy.rdomain is not None:
        out.append(" rdomain %d" % (policy.rdomain,))
    for flow in policy.flows:
        out.append(" from " + _selector(flow.src))
        if flow.srcNat is not None:
            out.append(" (%s)" % (_selector(flow.srcNat),))
        out.append(" to " + _selector(flow.dst))
    if not policy.default:
        out.append(" local " + _hostAddress(policy.localAddress))
        out.append(" peer " + _hostAddress(policy.peerAddress))
    for proposal in policy.ikeProposals + policy.childProposals:
        if not proposal.transforms:
            continue
        out.append(" ikesa" if proposal.protocol == ProtocolId.IKE else " childsa")
        for transformType, word in _TYPE_ORDER:
            for t in proposal.ofType(transformType):
                out.append(word + nameOf(t, proposal.protocol))
    if policy.srcId is not None:
        out.append(" srcid " + policy.srcId.value)
    if policy.dstId is not None:
        out.append(" dstid " + policy.dstId.value)
    if policy.ikeLifetime:
        out.append(" ikelifetime %d" % (policy.ikeLifetime,))
        if policy.reauth:
            out.append(" reauth")
    out.append(" lifetime %d bytes %d" % (policy.lifetime, policy.lifetimeBytes))
    auth = policy.auth
    if auth.method == "psk":
        out.append(" psk 0x" + auth.psk.hex())
    elif auth.method == "eap" and auth.eapRadius:
        out.append(' eap "RADIUS"')
    elif auth.method == "eap":
        out.append(' eap "%s"' % (auth.eapType.name,))
    else:
        out.append(" " + auth.method)
    for option in policy.configOptions:
        out.append(
            " %s %s %s"
            % (
                "request" if option.request else "config",
                configName(option.attribute).name,
                "any" if option.address is None else option.address,
            )
        )
    if policy.iface is not None:
        out.append(" iface " + policy.iface)
    if policy.tag is not None:
        out.append(' tag "%s"' % (policy.tag,))
    if policy.tap is not None:
        out.append(' tap "%s"' % (policy.tap,))
    return "".join(out)

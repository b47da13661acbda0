# -*- test-case-name: tests.test_ikectl -*-
"""
ikectl(8)'s daemon commands: the grammar, the requests they send over the
control socket (through the blocking client L{ikedtx.control.sync}) and
their output, as text in iked's layout or, with C{--json}, as JSON (one
document per show, one per line for each monitor event).

    ikectl [-q] [-s socket] [--json] command [arg ...]
"""

import json
import os
import time

from ikedtx.control import commands as C
from ikedtx.control import sync

DEFAULT_SOCKET = "/var/run/iked.sock"

DAEMON_USAGE = """usage: ikectl [-q] [-s socket] [--json] command [arg ...]
       ikectl active | passive | couple | decouple
       ikectl load FILE | reload
       ikectl log brief | verbose
       ikectl monitor
       ikectl reset all | ca | policy | sa | user | id IKEID
       ikectl show sa | stats | certstore
"""


class IkectlUsage(Exception):
    """
    The words do not follow ikectl(8)'s grammar.
    """


def parseOptions(argv):
    """
    Split C{argv} into options and the command's words.

    @return: C{(options, words)}, options a dict with C{quiet}, C{socket},
        C{json}.
    @raise IkectlUsage: a bad option.
    """
    options = {"quiet": False, "socket": DEFAULT_SOCKET, "json": False}
    words = []
    args = list(argv)
    while args:
        word = args.pop(0)
        if word == "--json":
            options["json"] = True
        elif words:
            words.append(word)
        elif word == "-q":
            options["quiet"] = True
        elif word == "-s" or (word.startswith("-s") and len(word) > 2):
            if word == "-s":
                if not args:
                    raise IkectlUsage("option -s needs a socket path")
                options["socket"] = args.pop(0)
            else:
                options["socket"] = word[2:]
        elif word == "--":
            words.extend(args)
            args = []
        elif word.startswith("-") and word != "-":
            raise IkectlUsage("unknown option %s" % (word,))
        else:
            words.append(word)
    return options, words


def _keyword(word, choices, what):
    if word in choices:
        return word
    matches = [c for c in choices if c.startswith(word)] if word else []
    if len(matches) == 1:
        return matches[0]
    raise IkectlUsage("%s: %s" % (what, "ambiguous: %s" % (", ".join(matches),) if matches
                                  else "unknown (one of %s)" % (", ".join(choices),)))


COMMANDS = ("active", "passive", "couple", "decouple", "load", "reload", "log", "monitor", "reset", "show")


def parseCommand(words):
    """
    The request of a daemon command line: C{(name, arguments)}, name one
    of C{show-sa}, C{show-stats}, C{show-certstore}, C{reload}, C{load},
    C{reset}, C{mode}, C{log}, C{monitor}.  Keywords may be abbreviated
    where that is unambiguous, as ikectl(8) allows.

    @raise IkectlUsage: they do not parse.
    """
    if not words:
        raise IkectlUsage("no command")
    command = _keyword(words[0], COMMANDS, "command %s" % (words[0],))
    rest = words[1:]

    def expect(n):
        if len(rest) != n:
            raise IkectlUsage("%s takes %s" % (command, "no argument" if n == 0 else "%d argument(s)" % (n,)))

    if command in ("active", "passive", "couple", "decouple"):
        expect(0)
        return "mode", {"mode": command}
    if command == "reload":
        expect(0)
        return "reload", {}
    if command == "monitor":
        expect(0)
        return "monitor", {}
    if command == "load":
        expect(1)
        return "load", {"filename": rest[0]}
    if command == "log":
        expect(1)
        return "log", {"level": _keyword(rest[0], ("brief", "verbose"), "log %s" % (rest[0],))}
    if command == "reset":
        if not rest:
            raise IkectlUsage("reset needs one of %s" % (", ".join(C.RESET_TARGETS),))
        what = _keyword(rest[0], C.RESET_TARGETS, "reset %s" % (rest[0],))
        if what == "id":
            if len(rest) != 2:
                raise IkectlUsage("reset id needs one IKE ID")
            return "reset", {"what": what, "ikeId": rest[1]}
        if len(rest) != 1:
            raise IkectlUsage("reset %s takes no argument" % (what,))
        return "reset", {"what": what}
    # show
    if len(rest) != 1:
        raise IkectlUsage("show needs one of sa, stats, certstore")
    what = _keyword(rest[0], ("sa", "stats", "certstore"), "show %s" % (rest[0],))
    return "show-" + what, {}


# ---- text output ----

def _spi(text):
    return "0x" + text


def _state(name):
    # iked names an established IKE SA ESTABLISHED.
    return "ESTABLISHED" if name == "VALID" else name


def _duration(seconds):
    seconds = int(max(0, seconds))
    if seconds >= 86400:
        return "%dd%02dh" % divmod(seconds // 3600, 24)
    if seconds >= 3600:
        return "%dh%02dm" % divmod(seconds // 60, 60)
    if seconds >= 60:
        return "%dm%02ds" % divmod(seconds, 60)
    return "%ds" % (seconds,)


def _lifetime(entry):
    if not entry.get("lifetime"):
        return "lifetime none"
    text = "lifetime %ds" % (entry["lifetime"],)
    if entry.get("lifetimeRemaining") is not None:
        text += " (%s left)" % (_duration(entry["lifetimeRemaining"]),)
    return text


def _algorithmText(entry, ike):
    parts = []
    if entry.get("encryption"):
        parts.append("enc " + entry["encryption"].lower().replace("_", "-"))
    if entry.get("integrity"):
        parts.append("auth " + entry["integrity"].lower().replace("_", "-"))
    if ike:
        if entry.get("prf"):
            parts.append("prf " + entry["prf"].lower().replace("_", "-"))
        if entry.get("group"):
            parts.append("group " + entry["group"].lower().replace("_", "-"))
    else:
        if entry.get("pfsGroup"):
            parts.append("group " + entry["pfsGroup"].lower().replace("_", "-"))
        parts.append("esn" if entry.get("esn") else "noesn")
    return " ".join(parts)


def formatShowSA(sas):
    """
    C{show sa} in iked's layout (C{iked_sas:}, C{sa_childsas:},
    C{sa_flows:}, then C{iked_activesas:} and C{iked_flows:}), so that what
    reads iked's output reads ours.  Where iked prints pointers, references
    stand (C{#1} for the first IKE SA, C{#1.2} for its second SA, C{#1.f3}
    for its third flow), with the same cross-references (C{P=} the SA of
    the other direction, C{@} the IKE SA).  Indented C{ikesa:} and
    C{childsa:} lines add what iked leaves out: IDs, algorithms,
    lifetimes, NAT and counters.
    """
    lines = []
    active = []
    flows = []
    for n, sa in enumerate(sas, 1):
        ref = "#%d" % (n,)
        flags = "i" if sa["initiator"] else "r"
        if sa.get("natt"):
            flags += " natt"
        if sa.get("udpencap"):
            flags += " udpencap"
        lines.append("iked_sas: %s rspi %s ispi %s %s->%s<%s>[%s] %s %s nexti - pol %s" % (
            ref, _spi(sa["spiR"]), _spi(sa["spiI"]), sa["local"], sa["remote"], sa["peerId"], sa.get("vips") or "",
            _state(sa["state"]), flags, sa["policy"] or "-"))
        ike = ["local id <%s>" % (sa["localId"],)]
        algorithms = _algorithmText(sa, ike=True)
        if algorithms:
            ike.append(algorithms)
        if sa.get("established") is not None:
            ike.append("up %s" % (_duration(sa["established"]),))
        ike.append(_lifetime(sa))
        nat = [side for side, key in (("local", "natLocal"), ("peer", "natRemote")) if sa.get(key)]
        if nat:
            ike.append("behind nat: %s" % (" ".join(nat),))
        lines.append("  ikesa: " + ", ".join(ike))
        local, remote = sa["local"], sa["remote"]
        sa_n = 0
        flow_n = 0
        for child in sa["children"]:
            loaded = "L" if child.get("loaded") else ""
            protocol = child["protocol"].upper()
            inRef, outRef = "%s.%d" % (ref, sa_n + 1), "%s.%d" % (ref, sa_n + 2)
            sa_n += 2
            for direction, spi, src, dst, mine, other in (("in", child["spiIn"], remote, local, inRef, outRef),
                                                          ("out", child["spiOut"], local, remote, outRef, inRef)):
                line = "%s %s %s %s %s -> %s (%s) B=- P=%s @%s" % (mine, protocol, _spi(spi), direction, src, dst,
                                                                 loaded, other, ref)
                lines.append("  sa_childsas: " + line)
                if child.get("loaded"):
                    active.append(line)
            details = ["reqid %s %s %s" % (child.get("reqid", "-"), child["mode"], child["state"]),
                       _algorithmText(child, ike=False), _lifetime(child)]
            if child.get("age") is not None:
                details.append("age %s" % (_duration(child["age"]),))
            for direction in ("In", "Out"):
                if child.get("bytes" + direction) is not None:
                    details.append("%s %d bytes %d packets" % (direction.lower(), child["bytes" + direction],
                                                              child["packets" + direction]))
            lines.append("    childsa: " + ", ".join(details))
            for flow in child.get("flows") or ():
                flow_n += 1
                line = "%s.f%d %s %s %s -> %s [%d]@-1 (%s) @%s" % (
                    ref, flow_n, protocol, flow["direction"], flow["source"], flow["destination"], flow["protocol"],
                    "L" if flow.get("loaded") else "", ref)
                lines.append("  sa_flows: " + line)
                if flow.get("loaded"):
                    flows.append(line)
    lines += ["iked_activesas: " + line for line in active]
    lines += ["iked_flows: " + line for line in flows]
    return "".join(line + "\n" for line in lines)


_STAT_TEXT = {
    "ikes_sa_created": "IKE SA%s created",
    "ikes_sa_established_total": "IKE SA%s established",
    "ikes_sa_established_current": "IKE SA%s currently established",
    "ikes_sa_established_failures": "IKE SA%s failed to establish",
    "ikes_sa_proposals_negotiate_failures": "failed proposal negotiation%s",
    "ikes_sa_rekeyed": "IKE SA%s rekeyed",
    "ikes_sa_removed": "IKE SA%s removed",
    "ikes_csa_created": "Child SA%s created",
    "ikes_csa_removed": "Child SA%s removed",
    "ikes_msg_sent": "message%s sent",
    "ikes_msg_send_failures": "message%s could not be sent",
    "ikes_msg_rcvd": "message%s received",
    "ikes_msg_rcvd_busy": "message%s received while busy",
    "ikes_msg_rcvd_dropped": "message%s dropped",
    "ikes_retransmit_request": "request%s retransmitted",
    "ikes_retransmit_response": "response%s retransmitted",
    "ikes_retransmit_limit": "request timeout%s",
    "ikes_frag_sent": "fragment%s sent",
    "ikes_frag_send_failures": "fragment%s could not be sent",
    "ikes_frag_rcvd": "fragment%s received",
    "ikes_frag_rcvd_drop": "fragment%s dropped",
    "ikes_frag_reass_ok": "fragment%s reassembled",
    "ikes_frag_reass_drop": "fragment%s could not be reassembled",
    "ikes_update_addresses_sent": "update address message%s sent",
    "ikes_dpd_sent": "dpd message%s sent",
    "ikes_keepalive_sent": "keepalive message%s sent",
    "ikedtx_acquires": "kernel acquire%s",
    "ikedtx_expires": "kernel expire%s",
    "ikedtx_auth_failures": "authentication failure%s",
    "ikedtx_csa_rekeyed": "Child SA%s rekeyed",
    "ikedtx_cookie_sent": "COOKIE%s asked for",
    "ikedtx_no_proposal_sent": "NO_PROPOSAL_CHOSEN notification%s sent",
    "ikedtx_no_proposal_rcvd": "NO_PROPOSAL_CHOSEN notification%s received",
    "ikedtx_sa_refused_per_id": "IKE SA%s refused: too many for one identity",
    "ikedtx_eap_success": "EAP authentication%s succeeded",
    "ikedtx_eap_failures": "EAP authentication%s failed",
}


def formatStats(stats):
    lines = ["ike:"]
    for counter in stats["counters"]:
        value = counter["value"]
        text = _STAT_TEXT.get(counter["name"], counter["name"] + "%s")
        lines.append("\t%d %s" % (value, text % ("" if value == 1 else "s",)))
    lines.append("mode: %s, %s, log %s" % ("passive" if stats["passive"] else "active",
                                           "coupled" if stats["coupled"] else "decoupled",
                                           "verbose" if stats["verbose"] else "brief"))
    return "".join(line + "\n" for line in lines)


def formatCertstore(store):
    lines = ["certstore %s:" % (store["root"],)]
    for entry in store["entries"]:
        line = "%-6s %s" % (entry["kind"], entry["subject"])
        if entry.get("issuer"):
            line += "\n       issuer %s serial %s" % (entry["issuer"], entry.get("serial", ""))
        if entry.get("notAfter"):
            line += "\n       valid %s to %s" % (entry.get("notBefore", ""), entry["notAfter"])
        elif entry.get("notBefore"):
            line += " (%s, %s)" % (entry["notBefore"], entry.get("serial", ""))
        if entry.get("altNames"):
            line += "\n       altnames %s" % (", ".join(entry["altNames"]),)
        lines.append(line)
    for error in store["errors"]:
        lines.append("error  %s" % (error,))
    return "".join(line + "\n" for line in lines)


def _timestamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int((t % 1) * 1000),)


def formatEvent(event):
    """
    One monitor line: the UTC time, the kind, then the fields it has.
    """
    parts = [_timestamp(event["time"]), event["kind"]]
    if event.get("policy"):
        parts.append("policy %s" % (event["policy"],))
    if event.get("spiI"):
        parts.append("ispi 0x%s rspi 0x%s" % (event["spiI"], event.get("spiR", "")))
    if event.get("oldSpiI"):
        parts.append("(was ispi 0x%s rspi 0x%s)" % (event["oldSpiI"], event.get("oldSpiR", "")))
    if event.get("spi"):
        parts.append("spi 0x%s" % (event["spi"],))
    if event.get("oldSpi"):
        parts.append("(was spi 0x%s)" % (event["oldSpi"],))
    if event.get("local") or event.get("remote"):
        parts.append("%s -> %s" % (event.get("local", "-"), event.get("remote", "-")))
    if event.get("peerId"):
        parts.append("peer <%s>" % (event["peerId"],))
    if event.get("reason"):
        parts.append("(%s)" % (event["reason"],))
    if event.get("detail"):
        parts.append("[%s]" % (event["detail"],))
    return " ".join(parts) + "\n"


# ---- running ----

def runDaemonCommand(words, options, stdout, stderr, client=sync):
    """
    Run one daemon command (the words after the options) against the
    socket of C{options}; the exit status.

    @param client: the blocking client module (tests give a fake).
    """
    try:
        name, arguments = parseCommand(words)
    except IkectlUsage as e:
        stderr.write("ikectl: %s\n" % (e,))
        stderr.write(DAEMON_USAGE)
        return 1
    path = options["socket"]
    asJson = options["json"]
    try:
        if name == "show-sa":
            sas = client.showSA(path)
            stdout.write(json.dumps({"sas": sas}, indent=2, sort_keys=True) + "\n" if asJson else formatShowSA(sas))
        elif name == "show-stats":
            stats = client.showStats(path)
            stdout.write(json.dumps(stats, indent=2, sort_keys=True) + "\n" if asJson else formatStats(stats))
        elif name == "show-certstore":
            store = client.showCertstore(path)
            stdout.write(json.dumps(store, indent=2, sort_keys=True) + "\n" if asJson else formatCertstore(store))
        elif name == "reload":
            client.reload(path)
            _done(stdout, options, "reload request sent.")
        elif name == "load":
            # The daemon runs elsewhere: it is given the file's full path.
            client.load(path, os.path.abspath(arguments["filename"]))
            _done(stdout, options, "load request sent.")
        elif name == "reset":
            count = client.reset(path, arguments["what"], arguments.get("ikeId"))
            _done(stdout, options, "reset request sent." + (" (%d IKE SA%s)" % (count, "" if count == 1 else "s")
                                                            if arguments["what"] in ("sa", "id", "all") else ""))
        elif name == "mode":
            client.setMode(path, arguments["mode"])
            _done(stdout, options, "%s request sent." % (arguments["mode"],))
        elif name == "log":
            client.setLog(path, arguments["level"])
            _done(stdout, options, "logging request sent.")
        elif name == "monitor":
            try:
                for event in client.monitor(path):
                    stdout.write(json.dumps(event, sort_keys=True) + "\n" if asJson else formatEvent(event))
                    stdout.flush()
            except KeyboardInterrupt:
                return 0
    except sync.ControlError as e:
        stderr.write("ikectl: %s\n" % (e,))
        return 1
    return 0


def _done(stdout, options, message):
    # ikectl(8) prints what it asked for; -q and --json keep quiet.
    if not options["quiet"] and not options["json"]:
        stdout.write(message + "\n")



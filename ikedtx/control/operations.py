# -*- test-case-name: tests.test_control -*-
"""
What the daemon's control commands do, apart from the socket: reset,
load and reload, modes, log level, counters and the certificate store.

L{Operations} works on an L{ikedtx.service.IkedService} (its core, runner,
credentials, events); each method answers a response dict of
L{ikedtx.control.commands} or raises one of its errors, perhaps through a
Deferred.
"""

import dataclasses

from twisted.internet import defer
from twisted.logger import Logger

from ikedtx.config.errors import ConfigError
from ikedtx.control import commands as C
from ikedtx.core.states import IKEState


class Operations:
    """
    The control commands of one daemon.

    @ivar service: the L{ikedtx.service.IkedService}: its C{core},
        C{runner} (L{None} until it starts), C{events}, C{credentials} (a
        L{ikedtx.auth.store.CredentialStore} or L{None}), C{options} and
        C{reload}, all declared by it.
    """

    _log = Logger()

    def __init__(self, service):
        self.service = service

    @property
    def core(self):
        return self.service.core

    def _publish(self, kind, **fields):
        self.service.events.publish(kind, **fields)

    def _execute(self, actions):
        self.service.runner.execute(actions)

    # load, reload

    def load(self, path):
        """
        Read C{path} (or the configuration file, for L{None}) and put it in
        force; a broken file is L{C.ConfigRejected} with its C{FILE: LINE}
        errors, and nothing changes.
        """
        d = defer.maybeDeferred(self.service.reload, path) if path is not None else \
            defer.maybeDeferred(self.service.reload)

        def loaded(config):
            n = len(config.policies) if config is not None and hasattr(config, "policies") else 0
            self._publish("reload", detail="%s: %d policies" % (path or self.service.options.get("config"), n))
            return {"policies": n}

        def failed(reason):
            if reason.check(ConfigError):
                for line in str(reason.value).splitlines():
                    self._log.error("{line}", line=line)
                self._log.error("ikectl {what} failed: keeping the configuration in force",
                                what="load" if path else "reload")
                raise C.ConfigRejected(str(reason.value))
            if reason.check(OSError):
                error = reason.value
                raise C.ConfigRejected("%s: %s" % (getattr(error, "filename", None) or path,
                                                   error.strerror or error))
            if reason.check(C.CommandFailed):
                return reason
            raise C.CommandFailed(reason.getErrorMessage())

        return d.addCallbacks(loaded, failed)

    # reset

    def reset(self, what, ikeId=None):
        if what not in C.RESET_TARGETS:
            raise C.BadArgument("reset %s: not one of %s" % (what[:40], ", ".join(C.RESET_TARGETS)))
        if (what == "id") != (ikeId is not None):
            raise C.BadArgument("reset id takes an IKE ID, and only reset id does" if what != "id"
                                else "reset id needs an IKE ID")
        return getattr(self, "_reset_" + what)(ikeId)

    def _reset_sa(self, ikeId):
        return {"count": self._deleteWhere(lambda ikesa: True, "reset sa")}

    def _reset_id(self, ikeId):
        wanted = ikeId.strip()
        if not wanted or len(wanted) > 1024:
            raise C.BadArgument("not an IKE ID: %r" % (ikeId[:80],))

        def matches(ikesa):
            peer = str(ikesa.peerId or "")
            return peer == wanted or peer.split("/", 1)[-1] == wanted

        return {"count": self._deleteWhere(matches, "reset id %s" % (wanted,))}

    def _deleteWhere(self, matches, reason):
        """
        Delete every IKE SA that C{matches}, with a Delete to its peer
        (established ones) or silently (the others); how many.
        """
        count = 0
        for ikesa in list(self.core.ikeSAs.values()):
            if ikesa.state in (IKEState.CLOSING, IKEState.CLOSED) or not matches(ikesa):
                continue
            count += 1
            d = self.service.runner.command(self.core.deleteIKESA, ikesa, reason)
            # The Delete's outcome (the peer's answer, or none) is logged by
            # the core; the operator does not wait for it.
            d.addErrback(lambda f, ikesa=ikesa: self._log.info("{ikesa}: {reason}: {error}", ikesa=ikesa,
                                                               reason=reason, error=f.getErrorMessage()))
        self._log.info("{reason}: deleting {n} IKE SA(s)", reason=reason, n=count)
        return count

    def _reset_policy(self, ikeId):
        count = sum(1 for sa in self.core.ikeSAs.values() if sa.state not in (IKEState.CLOSING, IKEState.CLOSED))
        config = dataclasses.replace(self.service.config, policies=())
        self.service.config = config
        self.service.runner.reload(config, {})
        self._log.info("reset policy: every policy flushed")
        return {"count": count}

    def _reset_user(self, ikeId):
        config = dataclasses.replace(self.service.config, users=())
        self.service.config = config
        self.service.runner.reload(config, self.core.policies.resolved)
        self._log.info("reset user: the local user database is empty")
        return {"count": 0}

    def _reset_ca(self, ikeId):
        credentials = self.service.credentials
        if credentials is not None and hasattr(credentials, "reload"):
            credentials.reload()
        self._log.info("reset ca: the certificate store is read again")
        return {"count": 0}

    def _reset_all(self, ikeId):
        count = self._reset_sa(None)["count"]
        self._reset_policy(None)
        self._reset_user(None)
        self._reset_ca(None)
        return {"count": count}

    # modes

    def setMode(self, mode):
        if mode not in C.MODES:
            raise C.BadArgument("mode %s: not one of %s" % (mode[:40], ", ".join(C.MODES)))
        runner = self.service.runner
        if mode == "passive":
            self.core.passive = True
            d = defer.succeed(None)
        elif mode == "active":
            wasPassive, self.core.passive = self.core.passive, False
            if wasPassive:
                self._execute(self.core.startup())
            d = defer.succeed(None)
        elif mode == "couple":
            d = runner.couple()
        else:
            d = runner.decouple()
        self._log.info("ikectl: {mode}", mode=mode)
        self._publish("mode", detail=mode)

        def failed(reason):
            error = reason.value.subFailure.value if hasattr(reason.value, "subFailure") else reason.value
            raise C.CommandFailed("%s: the datapath refused: %s" % (mode, error))

        return d.addCallbacks(lambda _: {}, failed)

    def setLog(self, level):
        if level not in ("brief", "verbose"):
            raise C.BadArgument("log %s: brief or verbose" % (level[:40],))
        from ikedtx import tap

        tap.setVerbose(level == "verbose")
        # A privilege-separated worker's lines pass the parent's filter too.
        changed = getattr(self.service, "logLevelChanged", None)
        if changed is not None:
            changed(level == "verbose")
        self._log.info("ikectl: log {verbosity}", verbosity=level)
        return {}

    # show stats, show certstore

    def stats(self):
        from ikedtx import tap

        values = dict(self.service.events.stats.items())
        # The core counts what only it can tell (retransmits, fragments,
        # rekeys, refusals); the shell what it carries out.
        for name, value in self.core.counters.items():
            values[name] = values.get(name, 0) + value
        values["ikes_sa_established_current"] = sum(1 for sa in self.core.ikeSAs.values()
                                                    if sa.state == IKEState.VALID)
        from ikedtx.control.events import COUNTERS

        runner = self.service.runner
        return {"counters": [{"name": name, "value": int(values.get(name, 0))} for name in COUNTERS],
                "passive": bool(self.core.passive), "coupled": runner is None or bool(runner.coupled),
                "verbose": bool(tap.isVerbose())}

    def certstore(self):
        store = self.service.credentials
        if store is None:
            return {"root": "", "entries": [], "errors": []}
        entries = []
        for kind, certificates in (("ca", store.trustedCertificates), ("cert", store.certificates)):
            for certificate in certificates:
                entries.append(_describeCertificate(kind, certificate))
        for crl in store.crls:
            entries.append({"kind": "crl", "subject": crl.issuer.rfc4514_string(),
                            "notBefore": crl.last_update_utc.isoformat() if hasattr(crl, "last_update_utc")
                            else str(crl.last_update),
                            "serial": "%d revoked" % (len(list(crl)),)})
        if store.privateKey is not None:
            from ikedtx.auth import keys

            entries.append({"kind": "key", "subject": "private/local.key: " + keys.describeKey(store.privateKey)})
        for identity in store.trustedPublicKeys:
            entries.append({"kind": "pubkey", "subject": str(identity)})
        errors = ["%s: %s" % (path, reason) for path, reason in store.loadErrors]
        return {"root": str(store.root), "entries": entries, "errors": errors}


def _describeCertificate(kind, certificate):
    from ikedtx.auth.store import subjectAltNameIdentities

    try:
        altNames = [str(i) for i in subjectAltNameIdentities(certificate)]
    except Exception:
        altNames = []
    notBefore = getattr(certificate, "not_valid_before_utc", None) or certificate.not_valid_before
    notAfter = getattr(certificate, "not_valid_after_utc", None) or certificate.not_valid_after
    return {"kind": kind, "subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(), "serial": "%x" % (certificate.serial_number,),
            "notBefore": notBefore.isoformat(), "notAfter": notAfter.isoformat(), "altNames": altNames}

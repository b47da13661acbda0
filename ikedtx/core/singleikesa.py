# -*- test-case-name: tests.test_core_singleikesa -*-
"""
C{set enforcesingleikesa} (iked.conf(5)): "Allow only a single active IKE
SA for each dstid. When a new SA with the same dstid is established, it
replaces the old SA." As iked does, the old IKE SAs of the peer's
authenticated identity are deleted, with a Delete, once the new one is
authenticated (a rekey moves the same IKE SA on and replaces nothing).
"""

from twisted.logger import Logger

from ikedtx.core.states import IKEState

_log = Logger()


def enforce(core, ikeSA):
    """
    C{ikeSA} was just authenticated: with C{enforcesingleikesa}, delete
    every other established IKE SA with the same peer identity.
    """
    if not core.config.settings.enforceSingleIkeSa or ikeSA.peerId is None:
        return
    for other in list(core.saIndex.byPeer.get(ikeSA.peerId)):
        if other is ikeSA or other.state != IKEState.VALID or other.peerId != ikeSA.peerId:
            continue
        if other.rekeyedBy is not None:
            continue
        _log.info("{other}: replaced by {ikeSA} of the same dstid {peer} (enforcesingleikesa)", other=other,
                  ikeSA=ikeSA, peer=ikeSA.peerId)
        other.keepUp = False
        core._deleteIKESA(other, "replaced by a new IKE SA of the same dstid")

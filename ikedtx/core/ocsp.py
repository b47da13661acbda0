# -*- test-case-name: tests.test_core_ocsp -*-
"""
When the core asks for the peer's certificate status (OCSP), as iked does:
with C{set ocsp} configured, for the end-entity certificate of a peer
whose chain verified (L{ikedtx.auth.store.CredentialStore.verifyPeer}),
asked of the shell with L{ikedtx.core.actions.CheckCertificateStatus} and
answered into L{ikedtx.core.engine.IKECore.certificateStatus}; the
shell's side is L{ikedtx.pki.ocsp}.

Both roles of IKE_AUTH ask: the responder about the initiator's
certificate (its round waits, the later tasks of the round read the
request only once the answer came: see L{ikedtx.core.tasks.Task.holding}),
the initiator about the responder's (the later tasks read the response
only then; a refused certificate fails the exchange with an
AUTHENTICATION_FAILED INFORMATIONAL, RFC 7296 2.21.2). An initiator that
authenticates with EAP asks the same about the EAP server's certificate,
before its first EAP Response: the MS-CHAPv2 proof of its password goes
only to a server whose certificate is known good.
"""


def certificateStatusWanted(core, ikeSA):
    """
    C{(certificate, issuer)} to ask about for C{ikeSA}'s verified peer, or
    L{None}: no C{set ocsp}, no certificate (a pre-shared key, a raw
    public key) or no issuer in the chain (the certificate is itself
    trusted).
    """
    if core.config.settings.ocspUrl is None:
        return None
    credential = getattr(ikeSA, "peerCredential", None)
    if credential is None or credential.certificate is None or credential.source != "certificate":
        return None
    if len(credential.chain) < 2:
        return None
    return credential.chain[0], credential.chain[1]

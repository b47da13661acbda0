# -*- test-case-name: tests.test_auth_ids,tests.test_auth_keys,tests.test_auth_store,tests.test_auth_eap -*-
"""
Identities and credentials.

  - L{ikedtx.auth.ids}: IKE identities (IDi/IDr values), iked's text forms,
    srcid/dstid inference, DN parsing/rendering, matching rules.
  - L{ikedtx.auth.keys}: private/public key files, key descriptions, which
    AUTH methods a key serves, raw public key CERT payloads.
  - L{ikedtx.auth.store}: the /etc/iked tree (ca/, certs/, crls/,
    private/local.key, pubkeys/): the local credential to send and the
    verification of a peer's.
  - L{ikedtx.auth.eap}: EAP-MSCHAPv2 server and client state machines
    (L{ikedtx.auth.md4} for its NtPasswordHash).
  - L{ikedtx.auth.errors}: the exceptions.
"""

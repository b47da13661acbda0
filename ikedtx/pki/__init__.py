# -*- test-case-name: tests.test_pki -*-
"""
ikedtx.pki: the small certificate authority of C{ikectl ca ...} (ikectl(8)
PKI AND CERTIFICATE AUTHORITY COMMANDS), built with C{cryptography}'s X.509
builders instead of the openssl command.

  - L{ikedtx.pki.ca}: L{CertificateAuthority<ikedtx.pki.ca.CertificateAuthority>},
    one CA directory (ikectl's C{/etc/ssl/NAME}: the CA key and certificate,
    serial and index, host keys and certificates, the CRL) and what can be
    done with it: create, delete, issue, revoke, write the CRL, install into
    an iked tree (C{/etc/iked}), export a tarball that unpacks into one.
  - L{ikedtx.pki.command}: C{runCa(argv, stdout, stderr, ...)}, the parser of
    the C{ca ...} and C{show ca ...} command lines for C{ikectl}.
"""

# -*- test-case-name: tests.test_lab_harness -*-
"""
Packet captures inside a namespace with tshark, read back as fields, and
IKEv2 decryption tables so that tshark decrypts SK payloads and checks
every ICV: an independent check of a daemon's encryption and integrity.

    capture = TsharkCapture(ns, "to-b", self.mktemp() + ".pcapng", testCase=self)
    capture.start()
    ...
    capture.stop()
    rows = capture.fields(["isakmp.exchtype", "isakmp.ispi"], displayFilter="isakmp")
    table = ikeDecryptionTable(charon)
    capture.icvResults(table)   # ["correct", "correct", ...]
"""

import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ElementTree

from ._util import LabError, poll, readText, run

INSTALL = "apt-get install tshark"
DEFAULT_FILTER = "udp port 500 or udp port 4500 or esp"

#: charon's (vici) algorithm names -> tshark's ikev2_decryption_table names
ENCRYPTION = {
    ("AES_CBC", "128"): "AES-CBC-128 [RFC3602]",
    ("AES_CBC", "192"): "AES-CBC-192 [RFC3602]",
    ("AES_CBC", "256"): "AES-CBC-256 [RFC3602]",
    ("3DES_CBC", None): "3DES [RFC2451]",
    ("AES_CTR", "128"): "AES-CTR-128 [RFC5930]",
    ("AES_CTR", "192"): "AES-CTR-192 [RFC5930]",
    ("AES_CTR", "256"): "AES-CTR-256 [RFC5930]",
}
for _icv in (8, 12, 16):
    for _bits in ("128", "192", "256"):
        ENCRYPTION[("AES_GCM_%d" % _icv, _bits)] = "AES-GCM-%s with %d octet ICV [RFC5282]" % (_bits, _icv)
        ENCRYPTION[("AES_CCM_%d" % _icv, _bits)] = "AES-CCM-%s with %d octet ICV [RFC5282]" % (_bits, _icv)

INTEGRITY = {
    None: "NONE [RFC4306]",
    "HMAC_MD5_96": "HMAC_MD5_96 [RFC2403]",
    "HMAC_SHA1_96": "HMAC_SHA1_96 [RFC2404]",
    "HMAC_SHA2_256_128": "HMAC_SHA2_256_128 [RFC4868]",
    "HMAC_SHA2_384_192": "HMAC_SHA2_384_192 [RFC4868]",
    "HMAC_SHA2_512_256": "HMAC_SHA2_512_256 [RFC4868]",
}


class IkeSaKeys:
    """
    One row of tshark's C{ikev2_decryption_table}: an IKE SA's SPIs, keys
    and algorithm names. For AEAD ciphers C{sk_ei}/C{sk_er} include the
    salt and integrity is C{"NONE [RFC4306]"}.
    """

    def __init__(self, spii, spir, sk_ei, sk_er, encryption, sk_ai=b"", sk_ar=b"", integrity=INTEGRITY[None]):
        self.spii = _hex(spii)
        self.spir = _hex(spir)
        self.sk_ei = _hex(sk_ei)
        self.sk_er = _hex(sk_er)
        self.encryption = encryption
        self.sk_ai = _hex(sk_ai)
        self.sk_ar = _hex(sk_ar)
        self.integrity = integrity

    def __repr__(self):
        return "<IkeSaKeys %s/%s %s %s>" % (self.spii, self.spir, self.encryption, self.integrity)

    def uat(self):
        """
        The row in uat syntax (hex fields unquoted, names quoted).
        """
        return '%s,%s,%s,%s,"%s",%s,%s,"%s"' % (
            self.spii, self.spir, self.sk_ei, self.sk_er, self.encryption, self.sk_ai, self.sk_ar, self.integrity)


def _hex(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value.replace(":", "").lower()


def decryptionOptions(ikeKeys=(), espSas=()):
    """
    tshark C{-o} arguments for IKEv2 rows (L{IkeSaKeys}) and ESP rows (uat
    strings for the C{esp_sa} table, used as they are).
    """
    args = []
    for row in ikeKeys:
        args += ["-o", "uat:ikev2_decryption_table:" + row.uat()]
    for row in espSas:
        args += ["-o", "uat:esp_sa:" + row]
    if espSas:
        args += ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"]
    return args


def ikeDecryptionTable(charon):
    """
    L{IkeSaKeys} for every IKE SA that C{charon} (a L{charon.CharonPeer}
    logging with C{ike = 4}) has now: SPIs and algorithms from vici
    C{list-sas}, keys from its log, matched by unique id. Call it while the
    SAs are up.
    """
    keys = charon.ikeKeys()
    rows = []
    for sa in charon.listSas():
        k = keys.get(sa.get("uniqueid"))
        if not k:
            continue
        encr = ENCRYPTION.get((sa.get("encr-alg"), sa.get("encr-keysize"))) or ENCRYPTION.get((sa.get("encr-alg"), None))
        if encr is None:
            raise LabError("no tshark name for %s/%s" % (sa.get("encr-alg"), sa.get("encr-keysize")))
        integ = INTEGRITY.get(sa.get("integ-alg"))
        if integ is None:
            raise LabError("no tshark name for %s" % (sa.get("integ-alg"),))
        rows.append(IkeSaKeys(sa["initiator-spi"], sa["responder-spi"], k["sk_ei"], k["sk_er"], encr,
                              k.get("sk_ai", b""), k.get("sk_ar", b""), integ))
    return rows


class TsharkCapture:
    """
    A tshark capture running in a namespace, written to a pcapng file.

    @ivar namespace: where it captures.
    @ivar interface: the interface (C{"any"} works too).
    @ivar path: the capture file.
    @ivar captureFilter: the BPF filter (C{-f}).
    """

    def __init__(self, namespace, interface, path, captureFilter=DEFAULT_FILTER, testCase=None):
        from .. import support

        self.tshark = support.requireExecutable("tshark", INSTALL)
        self.namespace = namespace
        self.interface = interface
        self.path = os.path.abspath(path)
        self.captureFilter = captureFilter
        self.process = None
        self._log = self.path + ".log"
        if testCase is not None:
            testCase.addCleanup(self._cleanup)

    def start(self, timeout=10.0):
        """
        Start capturing and wait until tshark says it has started.
        """
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        out = open(self._log, "wb")
        try:
            argv = [self.tshark, "-q", "-n", "-i", self.interface, "-w", self.path]
            if self.captureFilter:
                argv += ["-f", self.captureFilter]
            self.process = self.namespace.popen(argv, stdout=out, stderr=out)
        finally:
            out.close()

        def started():
            if self.process.poll() is not None:
                raise LabError("tshark exited with %s:\n%s" % (self.process.returncode, readText(self._log)))
            return "Capture started" in readText(self._log)

        poll(started, timeout, what=lambda: "tshark to start:\n" + readText(self._log))
        return self

    def stop(self, settle=1.0, timeout=5.0):
        """
        Stop capturing. C{settle} seconds pass first: dumpcap hands its last
        block over late, and a short capture stopped at once may hold no
        packets.
        """
        if self.process is None or self.process.poll() is not None:
            return
        if settle:
            time.sleep(settle)
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def _cleanup(self):
        self.stop(settle=0)

    def log(self):
        return readText(self._log)

    def read(self, args, ikeKeys=(), espSas=(), decodeAs=(), timeout=60):
        """
        Run C{tshark -r FILE ARGS...} with decryption tables and C{-d}
        rules (C{"udp.port==1500,isakmp"}); return its stdout.
        """
        argv = [self.tshark, "-n", "-r", self.path] + decryptionOptions(ikeKeys, espSas)
        for rule in decodeAs:
            argv += ["-d", rule]
        result = run(argv + list(args), check=False, timeout=timeout)
        if result.returncode != 0:
            raise LabError("tshark -r failed (%d): %s\n%s" % (result.returncode, " ".join(argv + list(args)), result.stderr))
        return result.stdout

    def fields(self, fields, displayFilter=None, **kwargs):
        """
        One dict per packet matching C{displayFilter}: {field: value};
        several occurrences of a field are joined with C{","}; absent
        fields are C{""}. Keyword arguments as for L{read}.
        """
        args = ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in fields:
            args += ["-e", f]
        if displayFilter:
            args += ["-Y", displayFilter]
        rows = []
        for line in self.read(args, **kwargs).splitlines():
            values = line.split("\t")
            values += [""] * (len(fields) - len(values))
            rows.append(dict(zip(fields, values)))
        return rows

    def summary(self, displayFilter=None, **kwargs):
        """
        tshark's one-line-per-packet summary (for failure messages).
        """
        return self.read(["-Y", displayFilter] if displayFilter else [], **kwargs)

    def verbose(self, displayFilter=None, **kwargs):
        """
        The full packet details (C{-V}).
        """
        return self.read(["-V"] + (["-Y", displayFilter] if displayFilter else []), **kwargs)

    def showNames(self, field, displayFilter=None, **kwargs):
        """
        The display text (PDML C{showname}) of every occurrence of C{field},
        one list per packet matching C{displayFilter}: where a dissector
        says more than the value, e.g. C{isakmp.enc.icd}'s
        C{"Integrity Checksum Data: ... [correct]"}.
        """
        pdml = self.read(["-T", "pdml"] + (["-Y", displayFilter] if displayFilter else []), **kwargs)
        root = ElementTree.fromstring(pdml)
        result = []
        for packet in root.iter("packet"):
            result.append([f.get("showname", "") for f in packet.iter("field") if f.get("name") == field])
        return result

    def icvResults(self, ikeKeys, displayFilter="isakmp.enc.icd", **kwargs):
        """
        For every IKE message with an encrypted payload, C{"correct"},
        C{"incorrect"} or C{"unchecked"} (tshark had no keys for it), as
        tshark judges its Integrity Checksum Data with C{ikeKeys}.
        """
        results = []
        for shows in self.showNames("isakmp.enc.icd", displayFilter, ikeKeys=ikeKeys, **kwargs):
            for show in shows:
                if "[correct]" in show:
                    results.append("correct")
                elif "incorrect" in show:
                    results.append("incorrect")
                else:
                    results.append("unchecked")
        return results

# -*- test-case-name: tests.test_demo -*-
"""
C{iked-demo}: two ikedtx daemons establish an IKE SA and a Child SA.

Without root the daemons listen on loopback (127.0.0.1 and 127.0.0.2, high
ports); as root they run in two network namespaces joined by a veth pair
(192.0.2.1 and 192.0.2.2). Either way they run decoupled (nothing is
installed into the kernel), read C{conf/demo-a.conf} and C{conf/demo-b.conf},
and authenticate with ECDSA certificates this program makes on the fly under
a throw-away CA. The demo asks daemon "a" over its control socket to
initiate, prints what each side negotiated, stops both and exits 0 if the
SAs agree.
"""

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

def _confDirectory():
    """
    conf/ of a source checkout, or where C{pip install} put its files.
    """
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")
    installed = os.path.join(sys.prefix, "share", "ikedtx", "conf")
    return source if os.path.exists(os.path.join(source, "demo-a.conf")) else installed


CONF = _confDirectory()
IKE_PORT, NATT_PORT = 10500, 14500
NODES = {
    "a": {"id": "a.demo.example", "loopback": "127.0.0.1", "netns": "192.0.2.1"},
    "b": {"id": "b.demo.example", "loopback": "127.0.0.2", "netns": "192.0.2.2"},
}


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikedtx demo"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject, issuer, publicKey, signingKey, ca, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(publicKey)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    return builder.sign(signingKey, hashes.SHA256())


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def makeTrees(root):
    """
    A CA and, per node, an /etc/iked-style tree with its key and certificate.
    """
    caKey = ec.generate_private_key(ec.SECP256R1())
    caName = _name("ikedtx demo CA")
    caCert = _certificate(caName, caName, caKey.public_key(), caKey, ca=True)
    trees = {}
    for node, info in NODES.items():
        tree = os.path.join(root, node, "etc")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(_name(info["id"]), caName, key.public_key(), caKey, ca=False, sans=[info["id"]])
        _write(os.path.join(tree, "ca", "ca.crt"), _pem(caCert))
        _write(os.path.join(tree, "certs", node + ".crt"), _pem(cert))
        _write(os.path.join(tree, "private", "local.key"), _pem(key), 0o600)
        os.chmod(os.path.join(tree, "private"), 0o700)
        trees[node] = tree
    return trees


class Namespaces:
    """
    Two network namespaces joined by a veth pair (root only).
    """

    def __init__(self):
        suffix = str(os.getpid())
        self.names = {"a": "ikedtx-demo-a-" + suffix, "b": "ikedtx-demo-b-" + suffix}

    def _ip(self, *args):
        subprocess.run(["ip"] + list(args), check=True, capture_output=True)

    def create(self):
        a, b = self.names["a"], self.names["b"]
        self._ip("netns", "add", a)
        self._ip("netns", "add", b)
        self._ip("link", "add", "veth0", "netns", a, "type", "veth", "peer", "name", "veth0", "netns", b)
        for node, ns in self.names.items():
            self._ip("-n", ns, "addr", "add", NODES[node]["netns"] + "/24", "dev", "veth0")
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", "veth0", "up")

    def prefix(self, node):
        return ["ip", "netns", "exec", self.names[node]]

    def delete(self):
        for ns in self.names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def startDaemon(node, root, tree, address, peer, prefix):
    """
    Start daemon C{node}; return C{(process, socketPath, logPath)}.
    """
    config = os.path.join(root, node, "iked.conf")
    shutil.copy(os.path.join(CONF, "demo-%s.conf" % (node,)), config)
    os.chmod(config, 0o600)
    sock = os.path.join(root, node, "iked.sock")
    log = os.path.join(root, node, "iked.log")
    argv = prefix + [sys.executable, "-c", "from ikedtx.cli import iked; iked()",
                     "-d", "-f", config, "-D", "local_addr=" + address, "-D", "peer_addr=" + peer,
                     "--listen", address, "--ike-port", str(IKE_PORT), "--natt-port", str(NATT_PORT),
                     "--etc-dir", tree, "-s", sock, "--kernel", "decoupled"]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=os.path.dirname(CONF))
    return process, sock, log


def describe(node, sas):
    lines = []
    for sa in sas:
        lines.append("%s: IKE SA %s/%s %s policy %s, %s <-> %s" % (
            node, sa["spiI"], sa["spiR"], sa["state"], sa["policy"], sa["local"], sa["remote"]))
        lines.append("%s:   IDs %s (us) / %s (peer); %s" % (node, sa["localId"], sa["peerId"], sa["proposal"]))
        for child in sa["children"]:
            lines.append("%s:   Child SA %s %s in %s out %s: %s === %s; %s" % (
                node, child["protocol"], child["mode"], child["spiIn"], child["spiOut"],
                ", ".join(child["local"]), ", ".join(child["remote"]), child["proposal"]))
    return lines


def _drive(reactor, sockets, out):
    from twisted.internet import defer, task

    from ikedtx.control.client import connectControl

    @defer.inlineCallbacks
    def connect(path):
        for _ in range(150):
            if os.path.exists(path):
                try:
                    client = yield connectControl(reactor, path)
                    return client
                except Exception:
                    pass
            yield task.deferLater(reactor, 0.1, lambda: None)
        raise RuntimeError("the daemon's control socket %s did not appear" % (path,))

    @defer.inlineCallbacks
    def run():
        clients = {}
        for node, path in sockets.items():
            clients[node] = yield connect(path)
        spis = yield clients["a"].initiate("demo")
        out.write("a initiated IKE SA %s/%s\n" % spis)
        views = {}
        for node, client in clients.items():
            views[node] = yield client.showSA()
            for line in describe(node, views[node]):
                out.write(line + "\n")
            client.close()
        return views

    return run()


def agree(views):
    """
    Whether both daemons hold the same established IKE SA and mirror-image
    Child SAs.
    """
    a, b = views["a"], views["b"]
    if len(a) != 1 or len(b) != 1:
        return False
    sa, sb = a[0], b[0]
    if (sa["spiI"], sa["spiR"], sa["state"], sb["state"]) != (sb["spiI"], sb["spiR"], "VALID", "VALID"):
        return False
    if len(sa["children"]) != 1 or len(sb["children"]) != 1:
        return False
    ca, cb = sa["children"][0], sb["children"][0]
    return (ca["spiIn"], ca["spiOut"], ca["local"], ca["remote"]) == (cb["spiOut"], cb["spiIn"], cb["remote"], cb["local"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="iked-demo", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--loopback", action="store_true", help="stay on loopback even as root")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, keys, logs)")
    args = parser.parse_args(argv)
    useNetns = os.geteuid() == 0 and not args.loopback and shutil.which("ip") is not None
    root = tempfile.mkdtemp(prefix="iked-demo-")
    namespaces = Namespaces() if useNetns else None
    processes = []
    status = 1
    try:
        trees = makeTrees(root)
        where = "loopback"
        if namespaces is not None:
            namespaces.create()
            where = "network namespaces %s and %s" % (namespaces.names["a"], namespaces.names["b"])
        mode = "netns" if useNetns else "loopback"
        print("iked-demo: two ikedtx daemons on %s, UDP %d/%d, decoupled, ECDSA P-256 certificates" % (
            where, IKE_PORT, NATT_PORT))
        sockets = {}
        for node in ("b", "a"):
            other = "a" if node == "b" else "b"
            prefix = namespaces.prefix(node) if namespaces else []
            process, sock, log = startDaemon(node, root, trees[node], NODES[node][mode], NODES[other][mode], prefix)
            processes.append((node, process, log))
            sockets[node] = sock
        from twisted.internet import task

        result = {}

        def run(reactor):
            d = _drive(reactor, {"a": sockets["a"], "b": sockets["b"]}, sys.stdout)
            d.addCallback(lambda views: result.update(views=views))
            return d

        try:
            task.react(lambda reactor: run(reactor), [])
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        if "views" in result and agree(result["views"]):
            print("iked-demo: both daemons agree on the IKE SA and its Child SA")
            status = 0
        else:
            print("iked-demo: the daemons did not agree")
    except SystemExit as e:
        print("iked-demo: failed (%s)" % (e.code,))
    finally:
        for node, process, log in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for node, process, log in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            if status != 0:
                with open(log, "rb") as f:
                    sys.stdout.write("---- daemon %s log ----\n%s" % (node, f.read().decode(errors="replace")))
        if namespaces is not None:
            namespaces.delete()
        if args.keep:
            print("iked-demo: files kept in %s" % (root,))
        else:
            shutil.rmtree(root, ignore_errors=True)
    return status


def run():
    sys.exit(main())


if __name__ == "__main__":
    run()

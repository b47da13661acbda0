"""
Privilege separation seen from outside (issue 11): a daemon started as root
in a namespace runs its peer-facing worker as the unprivileged user, with no
capabilities, no new privileges and an empty root; the worker cannot read
the private key directory; killed, it is replaced and what it had put in the
datapath is flushed; the daemon interoperates with charon and openiked
through the worker, signing in the parent.
"""

import errno
import os
import pwd
import signal
import subprocess
import sys

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Auth, Child, Connection, Secret, poll
from ikedtx.testing.support import requireRoot
from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials, InteropMixin, ikedtxPolicy

WORKER_USER = "_iked"


def childrenOf(pid):
    """
    The pids whose parent is C{pid}.
    """
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % (name,)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(name))
    return found


def status(pid):
    """
    /proc/PID/status as a dict of its fields.
    """
    with open("/proc/%d/status" % (pid,)) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


class PrivsepMixin(InteropMixin):
    def setUp(self):
        requireRoot()
        self.user = pwd.getpwnam(WORKER_USER)

    def workerOf(self, ours, other=None, timeout=20.0):
        """
        The pid of C{ours}'s worker (another than C{other}) once it serves.
        """
        found = []

        def ready():
            kids = [p for p in childrenOf(ours.process.pid) if p != other]
            for pid in kids:
                try:
                    if status(pid)["Uid"].split()[0] == str(self.user.pw_uid):
                        found.append(pid)
                        return True
                except (OSError, KeyError):
                    pass
            return False

        poll(ready, timeout, interval=0.05, what=lambda: "a worker of %r\n%s" % (ours, ours.report()))
        return found[0]

    def startCharon(self, credentials):
        charon = self.charon(self.b, libipsec=True)
        if credentials.kind == "psk":
            local, remote = Auth("psk", id=credentials.idB), Auth("psk", id=credentials.idA)
            charon.addSecret(Secret(PSK, ids=[credentials.idA, credentials.idB]))
        else:
            charon.addCA(credentials.ca.cert)
            local = Auth("pubkey", id=credentials.idB, certs=[credentials.certB])
            remote = Auth("pubkey", id=credentials.idA, cacerts=[credentials.ca.cert])
        children = [Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                          esp_proposals=["aes128gcm16"])]
        charon.addConnection(Connection("peer", local_addrs=[B], remote_addrs=[A],
                                        proposals=["aes128gcm16-prfsha256-x25519"], local=local, remote=remote,
                                        children=children))
        charon.start()
        return charon


class WorkerPrivilegesTests(PrivsepMixin, TestCase):
    def test_workerIsUnprivileged(self):
        """
        The worker runs as _iked (real, effective, saved and file system
        ids), with no capability (effective, permitted, bounding), with
        NoNewPrivs and the seccomp filter, chrooted into an empty directory;
        the parent stays root and unfiltered.
        """
        self.hosts()
        credentials = Credentials("ecdsa")
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        credentials.installIkedtx(ours)
        ours.start()
        worker = self.workerOf(ours)
        fields = status(worker)
        uid, gid = str(self.user.pw_uid), str(self.user.pw_gid)
        self.assertEqual(fields["Uid"].split(), [uid] * 4)
        self.assertEqual(fields["Gid"].split(), [gid] * 4)
        self.assertEqual(fields["Groups"].split(), [gid])
        self.assertEqual(int(fields["CapEff"], 16), 0)
        self.assertEqual(int(fields["CapPrm"], 16), 0)
        self.assertEqual(int(fields["CapBnd"], 16), 0)
        self.assertEqual(fields["NoNewPrivs"], "1")
        # A seccomp filter (mode 2), one: ikedtx.privsep.seccomp's.
        self.assertEqual((fields["Seccomp"], fields["Seccomp_filters"]), ("2", "1"))
        self.assertEqual(status(ours.process.pid)["Seccomp"], "0")
        root = os.readlink("/proc/%d/root" % (worker,))
        self.assertEqual(root, os.path.realpath(self.user.pw_dir))
        self.assertEqual(os.listdir(root), [])
        self.assertEqual(status(ours.process.pid)["Uid"].split()[0], "0")

    def test_workerCannotReadPrivateKeys(self):
        """
        The private key directory is out of the worker's reach twice over:
        it is not in the worker's root, and its ids cannot open it where it
        is (EACCES, tried with exactly the worker's uid, gid and groups).
        """
        self.hosts()
        credentials = Credentials("ecdsa")
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        credentials.installIkedtx(ours)
        ours.start()
        worker = self.workerOf(ours)
        private = os.path.join(ours.etc, "private")
        root = os.readlink("/proc/%d/root" % (worker,))
        self.assertFalse(os.path.exists(os.path.join(root, private.lstrip("/"))))
        fields = status(worker)
        uid, gid = int(fields["Uid"].split()[1]), int(fields["Gid"].split()[1])
        probe = ("import os, errno\n"
                 "os.setgroups([%d]); os.setgid(%d); os.setuid(%d)\n"
                 "try:\n    open(%r, 'rb')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n"
                 "else:\n    print('READ')\n" % (gid, gid, uid, os.path.join(private, "local.key")))
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.stdout.strip(), errno.errorcode[errno.EACCES], out.stderr)


class WorkerRestartTests(PrivsepMixin, TestCase):
    def test_killedWorkerIsReplacedAndFlushed(self):
        """
        SIGKILL of the worker: the parent logs it, flushes the SAs the dead
        worker installed, and starts another, which serves peers again.
        """
        self.hosts()
        credentials = Credentials("psk")
        self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        ours.start()
        ours.initiate("peer")
        self.assertEqual(len(ours.showSa()), 1)
        first = self.workerOf(ours)
        os.kill(first, signal.SIGKILL)
        second = self.workerOf(ours, other=first)
        self.assertNotEqual(first, second)
        poll(lambda: "worker %d serves peers" % (second,) in ours.log(), 20.0, interval=0.1,
             what=lambda: "the new worker\n" + ours.report())
        log = ours.log()
        self.assertIn("worker %d died (signal KILL); flushing the datapath (2 SAs it installed)" % (first,), log)
        self.assertEqual(ours.showSa(), [])
        # The new worker negotiates again (charon's stale IKE SA aside).
        ours.initiate("peer")
        self.assertEqual(len(ours.showSa()), 1)


class PrivsepSigningTests(PrivsepMixin, TestCase):
    def test_certificateSignedInParent(self):
        """
        IKE_AUTH with a certificate under privsep: the AUTH signature comes
        from the parent (the worker holds no private key), and charon
        accepts it.
        """
        self.hosts()
        credentials = Credentials("rsa")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        credentials.installIkedtx(ours)
        ours.start()
        worker = self.workerOf(ours)
        self.assertEqual(status(worker)["Seccomp"], "2")
        ours.initiate("peer")
        sas = [sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"]
        self.assertEqual(len(sas), 1)
        self.assertTrue(sas[0]["child-sas"])



from tests.test_interop_openiked import OpenIkedAuthTests, OpenIkedMixin  # noqa: E402


class PrivsepOpenIkedTests(PrivsepMixin, OpenIkedMixin, TestCase):
    """
    IKE SA and Child SA with openiked through the unprivileged worker, both
    roles, raw public keys signed by the parent.
    """

    def assertSeparated(self, ours):
        worker = self.workerOf(ours)
        self.assertEqual(int(status(worker)["CapEff"], 16), 0)
        self.assertEqual(status(worker)["Seccomp"], "2")

    def test_rawKeysInitiator(self):
        ours, iked, mine = OpenIkedAuthTests._initiator(self, "raw")
        self.assertSeparated(ours)

    def test_rawKeysResponder(self):
        ours, iked, mine = OpenIkedAuthTests._responder(self, "raw")
        self.assertSeparated(ours)

    def test_pskResponder(self):
        ours, iked, mine = OpenIkedAuthTests._responder(self, "psk")
        self.assertSeparated(ours)

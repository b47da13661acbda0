# -*- test-case-name: tests.test_auth_radius -*-
"""
A FreeRADIUS 3 server for tests: its own configuration directory written
from scratch (no /etc/freeradius), C{freeradius -X -d DIR} as a child
process on loopback ports, users with cleartext passwords, the eap module
with EAP-MSCHAPv2 and accounting written to a detail file.

    server = FreeRadius(workdir, secret=b"s3cret", users={"alice": "pw"})
    server.start()          # blocks until it listens ("Ready to process")
    ... server.authPort, server.acctPort, server.detailRecords() ...
    server.stop()
"""

import os
import re
import socket
import subprocess
import time

from ikedtx.testing.support import requireExecutable

_RADIUSD_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = ${{exec_prefix}}/sbin
logdir = {dir}/log
raddbdir = {dir}
radacctdir = {dir}/radacct
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
certdir = ${{confdir}}/certs
cadir = ${{confdir}}/certs
run_dir = {dir}/run
db_dir = ${{raddbdir}}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
    destination = stdout
    colourise = no
    auth = yes
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}
thread pool {{
    start_servers = 2
    max_servers = 4
    min_spare_servers = 1
    max_spare_servers = 3
    max_requests_per_server = 0
}}
client loopback {{
    ipaddr = 127.0.0.1
    secret = {secret}
    require_message_authenticator = yes
}}
modules {{
    pap {{
    }}
    mschap {{
        use_mppe = yes
        require_encryption = no
        require_strong = no
    }}
    files {{
        filename = {dir}/users
    }}
    eap {{
        default_eap_type = mschapv2
        timer_expire = 60
        ignore_unknown_eap_types = no
        max_sessions = 1024
        mschapv2 {{
        }}
    }}
    detail {{
        filename = ${{radacctdir}}/detail
        permissions = 0600
        header = "%t"
    }}
}}
server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {authPort}
    }}
    listen {{
        type = acct
        ipaddr = 127.0.0.1
        port = {acctPort}
    }}
    authorize {{
        eap {{
            ok = return
        }}
        files
        pap
    }}
    authenticate {{
        Auth-Type MS-CHAP {{
            mschap
        }}
        eap
    }}
    accounting {{
        detail
    }}
    post-auth {{
    }}
}}
"""


def freeUDPPorts(count, host="127.0.0.1"):
    """
    @return: C{count} UDP ports free on C{host} now (two consecutive ones
        are not promised; each is its own).
    """
    socks, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((host, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class FreeRadius:
    """
    One FreeRADIUS child process.
    """

    def __init__(self, directory, secret, users, authPort=None, acctPort=None, namespace=None, replies=None):
        """
        @param replies: C{{user: ["Attribute = value", ...]}}, reply items of
            the users file (they reach the Access-Accept).
        """
        self.executable = requireExecutable("freeradius", "apt-get install freeradius")
        self.directory = os.path.abspath(directory)
        self.secret = secret
        self.users = dict(users)
        self.replies = dict(replies or {})
        if authPort is None or acctPort is None:
            authPort, acctPort = freeUDPPorts(2)
        self.authPort = authPort
        self.acctPort = acctPort
        # A lab namespace (ikedtx.testing.lab.netns) to run in, on its
        # loopback; None: this host's.
        self.namespace = namespace
        self.process = None
        self.logPath = os.path.join(self.directory, "radiusd.out")

    def _write(self):
        for sub in ("", "log", "run", "radacct", "certs", "mods-config"):
            os.makedirs(os.path.join(self.directory, sub), exist_ok=True)
        secret = self.secret.decode("ascii")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", secret):
            raise ValueError("test secrets are plain tokens")
        conf = _RADIUSD_CONF.format(
            dir=self.directory, secret=secret, authPort=self.authPort, acctPort=self.acctPort
        )
        with open(os.path.join(self.directory, "radiusd.conf"), "w") as f:
            f.write(conf)
        with open(os.path.join(self.directory, "dictionary"), "w") as f:
            f.write("# no local attributes\n")
        with open(os.path.join(self.directory, "users"), "w") as f:
            for name, password in self.users.items():
                f.write('"%s" Cleartext-Password := "%s"\n' % (name, password))
                items = self.replies.get(name, ())
                if items:
                    f.write(",\n".join("\t" + item for item in items) + "\n")
        os.chmod(self.directory, 0o700)

    def start(self, timeout=30):
        self._write()
        out = open(self.logPath, "wb")
        argv = [self.executable, "-X", "-d", self.directory]
        if self.namespace is not None:
            self.process = self.namespace.popen(argv, stdout=out, stderr=subprocess.STDOUT)
        else:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("freeradius exited (%d):\n%s" % (self.process.returncode, self.log()[-4000:]))
            if "Ready to process requests" in self.log():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("freeradius did not start in %ds:\n%s" % (timeout, self.log()[-4000:]))

    def log(self):
        try:
            with open(self.logPath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def detailRecords(self):
        """
        The accounting records in the detail file(s): a list of dicts of
        attribute name -> value text (quotes stripped).
        """
        records = []
        base = os.path.join(self.directory, "radacct")
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else ():
            path = os.path.join(base, name)
            if not os.path.isfile(path):
                continue
            current = None
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        if current:
                            records.append(current)
                        current = None
                        continue
                    if not line[0].isspace():
                        current = {}
                        continue
                    key, _, value = line.strip().partition(" = ")
                    if current is not None:
                        current[key] = value.strip('"')
            if current:
                records.append(current)
        return records

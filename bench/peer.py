"""The peer users would pick instead: a private Postfix relay with OpenDKIM (RSA-2048) as milter.

Everything lives under one temp directory: Postfix's config_directory, queue_directory and
data_directory, OpenDKIM's config, key copy and socket. Postfix listens on 127.0.0.1 on a
high port, trusts 127.0.0.0/8, delivers nothing locally and relays everything to
[127.0.0.1]:SINK. It runs as Debian's stock `postfix` user (setgid group `postdrop`), with
chroot off, so the instance needs nothing outside its directory.

Postfix talks to OpenDKIM over a UNIX-domain socket. Over a loopback TCP socket
(`inet:127.0.0.1:PORT`, as first configured here) every message waited ~86 ms: 89 ms
added p50 at 10 msgs/s, against 2.4 ms without the milter and 5.4 ms over the UNIX
socket (docs/benchmarks.md). That is the Nagle × delayed-ACK stall of small milter
packets; it capped the peer at ~20 sessions / 0.09 s ≈ 220 msgs/s and flattered every
ratio at 20 sessions. The peer users would pick is the one without the stall.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from bench.procs import free_port, on_cleanup, spawn, wait_port, which

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = peer.bench.test
mydomain = bench.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in the benchmark
alias_maps =
alias_database =
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtp_dns_support_level = disabled
disable_dns_lookups = yes
smtpd_peername_lookup = no
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
smtp_destination_concurrency_limit = 100
default_destination_concurrency_limit = 100
smtpd_milters = unix:{milter_socket}
non_smtpd_milters = $smtpd_milters
milter_default_action = tempfail
milter_protocol = 6
maillog_file = {log}
maillog_file_prefixes = {logdir}
biff = no
append_dot_mydomain = no
readme_directory = no
"""

OPENDKIM_CONF = """\
Syslog                  no
LogWhy                  no
Mode                    s
Canonicalization        relaxed/relaxed
SignatureAlgorithm      rsa-sha256
Domain                  example.jp
Selector                {selector}
KeyFile                 {key}
Socket                  local:{socket}
PidFile                 {pid}
UserID                  opendkim:opendkim
RequireSafeKeys         false
InternalHosts           127.0.0.0/8
UMask                   000
Background              no
"""


class PostfixPeer:
    """Postfix (queue, fsync) + OpenDKIM milter signing RSA-2048 for example.jp."""

    def __init__(self, workdir: Path, sink_port: int, rsa_key: Path, selector: str) -> None:
        self.dir = workdir
        self.port = free_port()
        self.config_dir = workdir / "etc"
        self.queue_dir = workdir / "spool"
        self.data_dir = workdir / "data"
        # OpenDKIM's key copy, config and socket: the socket is world-writable (UMask 000)
        # inside a folder only opendkim and the postfix group may enter
        dkim_dir = workdir / "opendkim"
        self.milter_socket = dkim_dir / "milter.sock"
        for d in (self.config_dir, self.queue_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
        for d in (workdir.parent, workdir):  # the daemons' users must reach their files
            d.chmod(0o755)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data_dir, postfix.pw_uid, postfix.pw_gid)
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        (self.config_dir / "main.cf").write_text(
            MAIN_CF.format(
                queue=self.queue_dir,
                data=self.data_dir,
                sink_port=sink_port,
                milter_socket=self.milter_socket,
                log=workdir / "postfix.log",
                logdir=workdir,
            )
        )
        # OpenDKIM drops to its own user: give it a key copy it may read
        dkim_dir.mkdir()
        key = dkim_dir / "rsa.pem"
        shutil.copyfile(rsa_key, key)
        dk = pwd.getpwnam("opendkim")
        os.chown(key, dk.pw_uid, dk.pw_gid)
        key.chmod(0o600)
        os.chown(dkim_dir, dk.pw_uid, grp.getgrnam("postfix").gr_gid)
        dkim_dir.chmod(0o750)
        self.opendkim_conf = dkim_dir / "opendkim.conf"
        self.opendkim_conf.write_text(
            OPENDKIM_CONF.format(
                selector=selector, key=key, socket=self.milter_socket,
                pid=dkim_dir / "opendkim.pid",
            )
        )
        self.opendkim: subprocess.Popen[bytes] | None = None
        self.started = False

    @property
    def postfix_cmd(self) -> list[str]:
        return [which("postfix"), "-c", str(self.config_dir)]

    def start(self) -> None:
        self.opendkim = spawn(
            [which("opendkim"), "-f", "-x", str(self.opendkim_conf)],
            stderr_file=self.dir / "opendkim.stderr",
        )
        deadline = time.monotonic() + 20
        while not self.milter_socket.exists():
            if self.opendkim.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"opendkim did not open {self.milter_socket}")
            time.sleep(0.05)
        env = {"MAIL_CONFIG": str(self.config_dir)}
        self._postfix("check", env)
        on_cleanup(self.stop)
        self._postfix("start", env)
        self.started = True
        wait_port(self.port, timeout=20)

    def _postfix(self, action: str, env: dict[str, str]) -> None:
        done = subprocess.run(
            [*self.postfix_cmd, action],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"postfix {action} failed ({done.returncode}): {done.stdout}{done.stderr}"
                f"\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        log = self.dir / "postfix.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def queued(self) -> int:
        """Messages still in the queue (incoming, active, deferred, maildrop)."""
        total = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(self.queue_dir / sub):
                total += len(files)
        return total

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def master_pid(self) -> int | None:
        pid_file = self.queue_dir / "pid" / "master.pid"
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if self.started:
            self.started = False
            subprocess.run(
                [*self.postfix_cmd, "stop"],
                env={**os.environ, "MAIL_CONFIG": str(self.config_dir)},
                capture_output=True,
                timeout=60,
            )
            pid = self.master_pid()
            deadline = time.monotonic() + 10
            while pid and os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid and os.path.exists(f"/proc/{pid}"):
                subprocess.run(
                    [*self.postfix_cmd, "abort"],
                    env={**os.environ, "MAIL_CONFIG": str(self.config_dir)},
                    capture_output=True,
                    timeout=30,
                )

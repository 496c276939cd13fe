"""Run the gateway as a real process (`python -m gateway serve`) on a free loopback port."""

from __future__ import annotations

import copy
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.unsubscribe.tokens import generate_secret_file
from tests.support import authenv, toml
from tests.support.authenv import AuthEnv

if TYPE_CHECKING:
    from gateway.app import Gateway

# The `start_gateway` fixture of tests/integration/smtp: (**server settings) -> a started
# gateway in the test's own process.
StartInProcess = Callable[..., Awaitable["Gateway"]]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery"
# scrypt hash of PASSWORD with small parameters, so tests do not spend seconds hashing
PASSWORD_HASH: str | None = None


def password_hash() -> str:
    global PASSWORD_HASH
    if PASSWORD_HASH is None:
        from gateway.smtp.credentials import hash_password

        PASSWORD_HASH = hash_password(PASSWORD, n=2**10)
    return PASSWORD_HASH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_config(tmp: Path, upstream_port: int, auth: AuthEnv | None = None) -> dict[str, Any]:
    """A complete, valid config with every rule on; tests change what they exercise.

    DNS points at a real knotd on loopback (the shared one unless `auth` is given),
    which publishes SPF, DMARC and the DKIM keys the sender signs with.
    """
    auth = auth or authenv.shared()
    secret = tmp / "unsubscribe.key"
    if not secret.exists():
        generate_secret_file(secret)
    http_port = free_port()
    return {
        "server": {
            "listen": f"127.0.0.1:{free_port()}",
            "hostname": "gw.test",
            "max_message_size": 200_000,
            "auth_require_tls": False,
            "idle_timeout": 30,
            "auth_failure_limit": 3,
            "shutdown_grace": 10,
        },
        "upstream": {"host": "127.0.0.1", "port": upstream_port, "timeout": 5, "connect_timeout": 2},
        "store": {"url": f"sqlite:///{tmp / 'gateway.sqlite3'}"},
        "dns": {"nameservers": [auth.nameserver], "timeout": 1.0},
        "http": {"listen": f"127.0.0.1:{http_port}", "public_url": f"http://127.0.0.1:{http_port}"},
        "policy": {
            "mode": "enforce",
            "unsubscribe_secret_file": str(secret),
            "unsubscribe_address": "unsubscribe@gw.test",
            "rules": [
                str(ROOT / "rules" / "baseline.toml"),
                str(ROOT / "rules" / "tokuden.toml"),
                str(ROOT / "rules" / "alignment.toml"),
                str(ROOT / "rules" / "reputation.toml"),
            ],
        },
        "clients": [
            {"username": "ma-tool", "password_hash": password_hash(), "senders": ["sample"],
             "class": "advertising"},
            {"username": "receipts", "password_hash": password_hash(), "senders": ["sample"],
             "class": "transactional"},
            {"username": "other-brand", "password_hash": password_hash(), "senders": ["other"],
             "class": "advertising"},
        ],
        "senders": [
            {
                "id": "sample", "domains": ["example.jp"], "envelope_domains": ["bounce.example.jp"],
                "name": "株式会社サンプル", "postal_address": "東京都千代田区丸の内1-1-1",
                "contacts": ["03-1234-5678"], "optout": ["https://example.jp/unsubscribe"],
                "law": "tokuden", "egress_ips": [authenv.EGRESS_IP], "dkim": auth.dkim_config(),
            },
            {"id": "other", "domains": ["other.example"], "name": "有限会社アザー"},
        ],
    }


class GatewayProcess:
    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        self.tmp = tmp
        self.config = copy.deepcopy(config)
        self.config_path = tmp / "gateway.toml"
        self.config_path.write_text(toml.dumps(self.config), encoding="utf-8")
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.stderr_lines: list[str] = []

    def start(self, timeout: float = 15.0) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.tmp,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            found = re.search(r"listening on port (\d+)", line)
            if found:
                self.port = int(found.group(1))
                return self
        self.stop()
        raise RuntimeError("gateway did not start:\n" + "".join(self.stderr_lines[-30:]))

    @property
    def http_url(self) -> str:
        return "http://" + str(self.config["http"]["listen"])

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


# `log` masks recipient addresses unless asked to reveal them (audited as events.reveal):
# tests that compare recipients, or look for an address in the log, read it revealed.
REVEAL = ("--reveal", "--reason", "test: compare the logged recipients")


def cli(*args: str, config: Path | None = None, input: str | None = None,
        env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m gateway ARGS` as a real process."""
    argv = [sys.executable, "-m", "gateway", *args]
    if config is not None:
        argv += ["--config", str(config)]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, input=input,
        env={**os.environ, **(env or {})}, cwd=ROOT,
    )


def send_marketing(gw: GatewayProcess, rcpt: str) -> tuple[int, bytes]:
    """One advertising message from the MA tool to `rcpt`: the RCPT refusal or DATA's reply."""
    import smtplib

    from tests.support.messages import marketing

    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        code, reply = client.rcpt(rcpt)
        if code != 250:
            return code, reply
        return client.data(marketing(to=rcpt))

"""Upstream MTAs as separate processes, so a test can SIGKILL them mid-transaction.

SinkProcess: this file run as a script; an aiosmtpd server that writes each message
it accepts to DIR/<n>.eml (fsynced) *before* answering 250, optionally after a delay
in DATA. PostfixSink: Debian's smtp-sink with its reject/disconnect options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class _Proc:
    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL: no goodbye to anyone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    stop = kill


class SinkProcess(_Proc):
    def __init__(self, directory: Path, port: int, *, data_delay: float = 0.0) -> None:
        self.dir = directory
        self.port = port
        self.data_delay = data_delay
        directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> SinkProcess:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--port", str(self.port), "--dir", str(self.dir),
             "--data-delay", str(self.data_delay)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.dir.glob("*.eml"))]


class PostfixSink(_Proc):
    """smtp-sink PORT with options, e.g. ["-r", "MAIL"] (4xx) or ["-Q", "CONNECT"] (421)."""

    def __init__(self, port: int, options: list[str]) -> None:
        self.port = port
        self.options = options

    def start(self) -> PostfixSink:
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [binary, *user, *self.options, f"127.0.0.1:{self.port}", "64"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self


# -- the sink process itself -------------------------------------------------------------------


def _serve(port: int, directory: Path, data_delay: float) -> None:
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Handler:
        count = 0

        async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
            if data_delay:
                await asyncio.sleep(data_delay)
            Handler.count += 1
            path = directory / f"{os.getpid()}-{Handler.count:06d}.eml"
            # written aside and renamed: a SIGKILL between open() and write() must not
            # leave an empty "arrival" (a message no client sent) for the checker to find
            part = path.with_suffix(".part")
            with open(part, "wb") as f:  # noqa: ASYNC230 - a test sink, durability first
                f.write(envelope.original_content or b"")
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, path)
            return "250 2.0.0 Ok: queued"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Handler(), hostname="sinkproc.test", enable_SMTPUTF8=True),
            "127.0.0.1", port, reuse_address=True,
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--data-delay", type=float, default=0.0)
    args = parser.parse_args()
    _serve(args.port, args.dir, args.data_delay)

"""Postfix's smtp-sink as the final destination of every line, with a delivered-message counter."""

from __future__ import annotations

import io
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import cast

from bench.procs import free_port, kill_group, spawn, wait_port, which

_MESG = re.compile(rb"mesg=(\d+)")


class SmtpSink:
    """`smtp-sink -c`: accepts everything, prints a running `mesg=N` counter we follow."""

    def __init__(self, port: int = 0, dump: Path | None = None, backlog: int = 1024) -> None:
        self.port = port or free_port()
        self.delivered = 0
        argv = [which("smtp-sink"), "-u", "nobody", "-c"]
        if dump is not None:  # one file per message (the probe phase only: it costs I/O)
            argv += ["-d", f"{dump}/%H%M%S."]
        self.proc = spawn([*argv, f"127.0.0.1:{self.port}", str(backlog)], stdout=subprocess.PIPE)
        threading.Thread(target=self._follow, daemon=True).start()
        wait_port(self.port, proc=self.proc)

    @property
    def argv(self) -> list[str]:
        return [str(a) for a in self.proc.args]  # type: ignore[union-attr]

    def _follow(self) -> None:
        assert self.proc.stdout is not None
        stdout = cast(io.BufferedReader, self.proc.stdout)
        pending = b""
        while chunk := stdout.read1(65536):
            pending += chunk
            *done, pending = pending.split(b"\r")
            for record in reversed(done):
                if found := _MESG.search(record):
                    self.delivered = int(found.group(1))
                    break

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until `count` messages have arrived in total; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.delivered < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        kill_group(self.proc, grace=5)

"""py-spy over the gateway's processes under load: top costs by self and by inclusive time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import kill_group, spawn


@dataclass
class Profile:
    samples: int
    native: bool
    self_top: list[tuple[str, float]] = field(default_factory=list)
    inclusive_top: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""


def py_spy() -> str | None:
    """py-spy next to this Python, installed into the venv with pip on first use."""
    here = Path(sys.executable).parent / "py-spy"
    if not here.exists() and not shutil.which("py-spy"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"],
                       capture_output=True, timeout=300)
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pid: int, out: Path, seconds: float, native: bool) -> subprocess.Popen[bytes] | None:
    exe = py_spy()
    if exe is None:
        return None
    argv = [exe, "record", "--subprocesses", "--pid", str(pid), "--duration", str(int(seconds)),
            "--rate", "250", "--format", "raw", "--output", str(out)]
    # Native frames need the process paused while its stack is read (py-spy refuses
    # --native with --nonblocking); the default profile does not pause the gateway.
    argv.append("--native" if native else "--nonblocking")
    return spawn(argv, stderr_file=out.with_suffix(".stderr"))


def finish(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return -1


_PROCESS = re.compile(r"^process \d+:")
_IDLE = ("select (selectors.py", "_run_once (asyncio/base_events.py", "wait (threading.py",
         "epoll_wait", "_worker (concurrent/futures/thread.py")


def _short(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (path/to/file.py)': lines merge per function."""
    return re.sub(r":\d+\)$", ")", frame.strip())


def analyse(raw: Path, native: bool, top: int = 15) -> Profile:
    """Self time: the leaf frame of each sample. Inclusive: every function on the stack once."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";") if not _PROCESS.match(f)]
        if not frames:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return Profile(0, native, error="no samples")

    def pct(c: Counter[str], keep: int, skip_plumbing: bool) -> list[tuple[str, float]]:
        rows = []
        for name, n in c.most_common():
            if skip_plumbing and not _interesting(name):
                continue
            rows.append((name, 100.0 * n / total))
            if len(rows) == keep:
                break
        return rows

    return Profile(total, native, pct(own, top, False), pct(incl, top, True))


def _interesting(name: str) -> bool:
    """Inclusive rows worth reading: the gateway's and its libraries' work, not the loop."""
    boring = ("<module>", "_run_code", "_run_module_as_main", "runners.py", "base_events.py",
              "events.py", "threading.py", "cli/main.py", "cmd_serve.py", "Thread.run")
    return not any(b in name for b in boring) and not name.startswith(_IDLE)

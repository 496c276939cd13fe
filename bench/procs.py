"""Process plumbing for the benchmark: free ports, children that always die, /proc readings."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
_cleanups: list[Callable[[], None]] = []
_lock = threading.Lock()


def on_cleanup(fn: Callable[[], None]) -> None:
    """Run `fn` at exit (LIFO), on SIGTERM/SIGINT and on any failure of the run."""
    with _lock:
        _cleanups.append(fn)


def cleanup_all() -> None:
    while True:
        with _lock:
            if not _cleanups:
                return
            fn = _cleanups.pop()
        try:
            fn()
        except Exception as exc:  # cleanup must go on whatever one step does
            print(f"bench: cleanup step failed: {exc!r}", file=sys.stderr)


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds every try/finally, then atexit runs


def install_handlers() -> None:
    atexit.register(cleanup_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def temp_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if not os.environ.get("BENCH_KEEP"):
        on_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def kill_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the child's process group (it was started in a new session), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    stderr_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A child in its own session, killed (with its children) at cleanup."""
    err = open(stderr_file, "ab") if stderr_file else subprocess.DEVNULL
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=err,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    on_cleanup(lambda: kill_group(proc))
    return proc


# -- /proc readings ------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc/*/stat)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def process_tree(pid: int) -> list[int]:
    tree = [pid]
    for child in children_of(pid):
        tree.extend(process_tree(child))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the given processes (the live ones)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def tree_cpu_seconds(root: int) -> float:
    """CPU of a daemon's process tree: the live processes plus the children `root` reaped."""
    reaped = 0
    try:
        stat = Path(f"/proc/{root}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        reaped = int(fields[13]) + int(fields[14])  # cutime, cstime
    except OSError:
        pass
    return cpu_seconds(process_tree(root)) + reaped / CLK_TCK


def host_wait_seconds() -> tuple[float, float]:
    """(CPU time the hypervisor gave to other guests, time runnable tasks here waited for a
    CPU) since boot, in seconds; NaN where the kernel does not say (no steal column, no PSI).

    Read around each latency window: steal is a stall of the shared host that no process
    here caused; PSI's "some" also counts our own processes queueing for the two cores.
    """
    steal = psi = float("nan")
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        steal = int(fields[8]) / CLK_TCK  # cpu user nice system idle iowait irq softirq steal
    with contextlib.suppress(OSError, IndexError, ValueError):
        some = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
        psi = int(some.rsplit("total=", 1)[1]) / 1e6
    return steal, psi


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pids: Sequence[int]) -> float:
    return sum(_status_kb(p, "VmRSS") for p in pids) / 1024


def peak_rss_mb(pids: Sequence[int]) -> float:
    """Sum over the processes of each one's peak resident set (VmHWM)."""
    return sum(_status_kb(p, "VmHWM") for p in pids) / 1024


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = _meminfo_gib()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem:.0f} GiB" if mem else "unknown",
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }


def _meminfo_gib() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        return int(first.split()[1]) / 1024 / 1024
    return 0.0


def which(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"{name} not found: run `make deps` (scripts/install-system-deps.sh)")

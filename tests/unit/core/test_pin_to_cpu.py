"""serve's worker pinning: round robin over the allowed CPUs, and unpinned where refused."""

from __future__ import annotations

import os
import threading

import pytest

from gateway.cli.cmd_serve import pin_to_cpu


@pytest.fixture
def in_a_thread() -> object:
    """Run pin_to_cpu in a thread of its own: the mask it sets dies with the thread."""

    def run(worker: int) -> tuple[int | None, set[int]]:
        out: list[tuple[int | None, set[int]]] = []

        def body() -> None:
            cpu = pin_to_cpu(worker)
            out.append((cpu, os.sched_getaffinity(0)))

        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
        return out[0]

    return run


def test_worker_i_runs_on_the_ith_allowed_cpu(in_a_thread: object) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    for worker in range(len(allowed) + 1):  # one past the end wraps round
        cpu, mask = in_a_thread(worker)  # type: ignore[operator]
        assert cpu == allowed[worker % len(allowed)]
        assert mask == {cpu}
    assert os.sched_getaffinity(0) == set(allowed)  # this thread was never pinned


def test_a_refused_pin_leaves_the_worker_unpinned(
    in_a_thread: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(pid: int, cpus: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    cpu, mask = in_a_thread(0)  # type: ignore[operator]
    assert cpu is None
    assert mask == os.sched_getaffinity(0)
    assert "cannot pin worker 0 to CPU" in caplog.text and "runs unpinned" in caplog.text

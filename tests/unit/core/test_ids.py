"""Event, session and error-reference ids: 16 hex digits, unique, and a forked child's own."""

from __future__ import annotations

import os
import re

from gateway.eventlog import new_id


def test_ids_are_sixteen_hex_digits_and_do_not_repeat() -> None:
    ids = [new_id() for _ in range(100_000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, "".join(new_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    mine = "".join(new_id() for _ in range(4))
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    assert len(child) == 64
    assert child != mine  # without the reseed both would continue the same sequence

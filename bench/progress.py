"""Progress output on stderr: one clear line per phase, tqdm bars for the long ones."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

_T0 = time.monotonic()


def say(text: str) -> None:
    tqdm.write(f"[{time.monotonic() - _T0:6.1f}s] {text}", file=sys.stderr)


@contextlib.contextmanager
def step(desc: str, total: int | None = None, unit: str = "it") -> Iterator[tqdm[Any]]:
    bar: tqdm[Any] = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                           leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
        say(f"{desc}: done")

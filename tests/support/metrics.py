"""Reading a gateway process's /metrics in tests: the tokuden_* samples as numbers."""

from __future__ import annotations

import re
import time
import urllib.request
from typing import Any


def scrape(cfg: dict[str, Any]) -> dict[str, float]:
    url = f"http://{cfg['http']['listen']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(tokuden_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


LINKS = 'tokuden_upstream_connections{state="%s"}'


def settled(cfg: dict[str, Any], timeout: float = 5.0) -> dict[str, float]:
    """A scrape once no upstream link is in use: the gateway gives a session's link back
    when it has processed the session's end, which may come just after the client's QUIT."""
    deadline = time.monotonic() + timeout
    while True:
        values = scrape(cfg)
        if values.get(LINKS % "in_use") == 0 or time.monotonic() > deadline:
            return values
        time.sleep(0.05)

"""Argument types: a bad value is argparse's usage error (exit 2) naming the option."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from datetime import datetime

_AGO = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer option with a floor (a negative --limit would mean "no limit" to SQL)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


def nonblank(text: str) -> str:
    """A text that must say something: a reason kept in the audit trail, a note."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def moment(text: str) -> float:
    """"1h", "30m", "2d" ago, or an ISO date-time (local time when it has no offset)."""
    match = _AGO.match(text.strip())
    if match:
        return time.time() - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither like 1h/30m/2d nor an ISO date-time"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()

"""Cheaper stand-ins for what aiosmtpd.smtp calls per connection and per command.

Like gateway/delivery/fastdata.py for aiosmtplib: module globals of aiosmtpd.smtp are
replaced by functions that give aiosmtpd the same answers for less work.

- Every new protocol object runs `inspect.getmembers()` over itself and the handler, only
  to keep the `auth_*` members, and `inspect.signature()` of the handler's handle_EHLO,
  only to count its parameters: ~45 µs of the ~95 µs a connection costs before it reads
  a byte. For the classes registered here, getmembers() lists just their `auth_*`
  members (bound to the object, in the same sorted order) and signature() answers from a
  cache per function; anything else goes to `inspect` itself.
- Every command line goes through `sanitized_log()` twice (debug, info), which masks AUTH
  credentials with a regex before the logger says whether it logs at all; mail.log sits
  at ERROR (gateway/logs.py), so that was two regex matches a command for nothing.

tests/unit/core/test_aiosmtpd_fast.py builds protocol objects both ways and compares.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable
from typing import Any

import aiosmtpd.smtp

_AUTH_NAMES: dict[type, list[str]] = {}
_SIGNATURES: dict[Any, inspect.Signature] = {}
_LEVEL_OF = {"debug": logging.DEBUG, "info": logging.INFO}
_masked_log = aiosmtpd.smtp.sanitized_log


def register(cls: type) -> None:
    """Let getmembers() answer for instances of `cls` from its `auth_*` names."""
    _AUTH_NAMES[cls] = sorted(
        {name for klass in cls.__mro__ for name in vars(klass) if name.startswith("auth_")}
    )


def getmembers(obj: Any, predicate: Callable[[Any], bool] | None = None) -> list[tuple[str, Any]]:
    names = _AUTH_NAMES.get(type(obj))
    if names is None or predicate is not None:
        return inspect.getmembers(obj, predicate)
    return [(name, getattr(obj, name)) for name in names]


def signature(fn: Any) -> inspect.Signature:
    key = fn.__func__ if isinstance(fn, types.MethodType) else fn
    found = _SIGNATURES.get(key)
    if found is None:
        found = _SIGNATURES[key] = inspect.signature(fn)
    return found


def sanitized_log(func: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
    logger = getattr(func, "__self__", None)
    level = _LEVEL_OF.get(getattr(func, "__name__", ""), logging.CRITICAL)
    if logger is None or logger.isEnabledFor(level):
        _masked_log(func, msg, *args, **kwargs)


_INSPECT = types.SimpleNamespace(getmembers=getmembers, signature=signature)


def install() -> None:
    aiosmtpd.smtp.inspect = _INSPECT  # type: ignore[attr-defined,assignment]
    aiosmtpd.smtp.sanitized_log = sanitized_log

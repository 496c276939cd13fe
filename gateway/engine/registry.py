"""Check registry: a check name -> the function that answers it and what it accepts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.engine.context import Facts
from gateway.model import Outcome, Phase

CheckResult = tuple[Outcome, str] | tuple[Outcome, str, dict[str, Any]]
CheckFn = Callable[[Facts, Mapping[str, Any]], CheckResult]
# Checks whose parameters relate to each other: the problem with a pack's values, or "".
ParamsCheck = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    fn: CheckFn
    phases: frozenset[Phase]
    params: Mapping[str, type]  # param name -> expected type; packs are validated against it
    description: str
    required: frozenset[str] = frozenset()  # params a pack must give
    validate: ParamsCheck | None = None


_CHECKS: dict[str, CheckSpec] = {}


def check(
    name: str,
    *,
    phases: set[Phase],
    params: Mapping[str, type] | None = None,
    required: frozenset[str] = frozenset(),
    validate: ParamsCheck | None = None,
) -> Callable[[CheckFn], CheckFn]:
    """Register a check; its docstring's first line is the description ops see."""

    def register(fn: CheckFn) -> CheckFn:
        if name in _CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _CHECKS[name] = CheckSpec(
            name, fn, frozenset(phases), dict(params or {}), doc[0] if doc else "",
            required, validate,
        )
        return fn

    return register


def get(name: str) -> CheckSpec | None:
    _load_builtin_checks()
    return _CHECKS.get(name)


def all_checks() -> dict[str, CheckSpec]:
    _load_builtin_checks()
    return dict(_CHECKS)


def _load_builtin_checks() -> None:
    # Importing the modules runs their @check decorators exactly once.
    import gateway.checks  # noqa: F401

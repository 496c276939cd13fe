"""A tiny TOML writer for test configs (tables, arrays of tables, scalars, lists)."""

from __future__ import annotations

import json
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def dumps(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    for key, value in doc.items():
        if not isinstance(value, dict | list) or (isinstance(value, list) and not value):
            lines.append(f"{key} = {_value(value)}")
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            for k, v in value.items():
                lines.append(f"{k} = {_value(v)}")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines.append(f"\n[[{key}]]")
                nested = {k: v for k, v in item.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
                for k, v in item.items():
                    if k not in nested:
                        lines.append(f"{k} = {_value(v)}")
                for k, v in nested.items():
                    for sub in v:
                        lines.append(f"\n[[{key}.{k}]]")
                        for sk, sv in sub.items():
                            lines.append(f"{sk} = {_value(sv)}")
    return "\n".join(lines) + "\n"

"""TOML config files written from dicts (the runtime only reads TOML; no writer library needed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Tables = Mapping[str, Any]
"""{table name: {key: value}, or [{key: value}, ...] for an array of tables}"""


def toml_value(value: Any) -> str:
    """One TOML value: strings as basic strings, lists as arrays, dicts as inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"no TOML form for {value!r}")


def toml_text(tables: Tables) -> str:
    """{"ingress": {...}, "ingress.source": {...}}: one [table] each, in order; a list of dicts
    is an array of tables ([[name]])."""
    lines: list[str] = []
    for name, table in tables.items():
        items = table if isinstance(table, list) else [table]
        header = f"[[{name}]]" if isinstance(table, list) else f"[{name}]"
        for item in items:
            lines.append(header)
            lines += [f"{key} = {toml_value(value)}" for key, value in item.items()]
    return "\n".join(lines) + "\n"


def write_toml(path: Path, tables: Tables) -> Path:
    path.write_text(toml_text(tables))
    return path

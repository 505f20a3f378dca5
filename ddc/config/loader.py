"""Reading a TOML config, applying DDC__SECTION__KEY env overrides, validating it."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields

from ddc.config.fields import FilePath, TypedTable
from ddc.errors import ConfigError

ENV_PREFIX = "DDC__"


def parse_env_value(text: str) -> Any:
    """A TOML literal when the text parses as one, else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_env_overrides(table: dict[str, Any], role: str, environ: Mapping[str, str]) -> None:
    """DDC__TRANSPORT__RATE=... sets [role.transport] rate; DDC__ROLE__NAME sets [role] name."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if path and path[0] == role:
            path = path[1:]
        if not path:
            continue
        node = table
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = parse_env_value(environ[name])


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), "config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"invalid TOML: {exc}") from None


def first_error(messages: Any, prefix: str) -> tuple[str, str]:
    """The dotted key and message of the first error in a marshmallow error tree."""
    if isinstance(messages, dict):
        key = sorted(messages, key=str)[0]
        sub = f"{prefix}.{key}" if key != "_schema" else prefix
        return first_error(messages[key], sub)
    if isinstance(messages, list) and messages:
        if all(isinstance(item, str) for item in messages):
            text = messages[0]
            return prefix, "unknown key" if text == "Unknown field." else text.rstrip(".")
        return first_error(messages[0], prefix)
    return prefix, str(messages)


def validate(schema: Schema, table: Any, prefix: str) -> dict[str, Any]:
    try:
        return schema.load(table if table is not None else {})
    except ValidationError as exc:
        raise ConfigError(*first_error(exc.messages, prefix)) from None


def load_role_config(
    path: str | os.PathLike[str] | None,
    role: str,
    schema: Schema,
    environ: Mapping[str, str] | None = None,
    *,
    document: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The validated `[role]` table of a config file (or of `document`), env overrides applied."""
    raw = document if document is not None else read_toml(path) if path else {}
    extra = sorted(set(raw) - {role})
    if extra:
        raise ConfigError(extra[0], f"unknown top-level table (this is a {role} config)")
    table = raw.get(role, {})
    if not isinstance(table, dict):
        raise ConfigError(role, "expected a table")
    apply_env_overrides(table, role, os.environ if environ is None else environ)
    config = validate(schema, table, role)
    resolve_paths(schema, config, config_dir(path))
    return config


def load_ingress_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    return load_config(path, "ingress")


def load_egress_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    return load_config(path, "egress")


def load_config(
    path: str | os.PathLike[str] | None,
    role: str,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The validated ingress or egress config."""
    from ddc.config.schemas import ROLE_SCHEMAS

    if role not in ROLE_SCHEMAS:
        raise ConfigError("role", f"unknown role {role!r}")
    return load_role_config(path, role, ROLE_SCHEMAS[role](), environ)


def config_dir(path: str | os.PathLike[str] | None) -> Path:
    """Where a config file's relative paths start: its directory (no file: the working one)."""
    return Path(path).resolve().parent if path else Path.cwd()


def resolve_paths(schema: Schema, data: dict[str, Any], base: Path) -> None:
    """Makes every FilePath value in the validated `data` of `schema` absolute against `base`,
    in nested tables, typed tables and lists of them too."""
    for name, field in schema.fields.items():
        value = data.get(name)
        if value is None:
            continue
        if isinstance(field, FilePath):
            data[name] = str(base / value)
            continue
        for sub_schema, table in _tables(field, value):
            resolve_paths(sub_schema, table, base)


def _tables(field: fields.Field, value: Any) -> list[tuple[Schema, dict[str, Any]]]:
    """The (schema, table) pairs a nested field holds."""
    if isinstance(field, fields.List) and isinstance(value, list):
        return [pair for item in value for pair in _tables(field.inner, item)]
    if not isinstance(value, dict):
        return []
    if isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
        return [(field.schema, value)]
    if isinstance(field, TypedTable) and value.get("type") in field.schemas:
        return [(field.schemas[value["type"]](), value)]
    return []

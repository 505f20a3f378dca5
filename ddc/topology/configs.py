"""ddc TOML configs and `ddc ...` command lines, turned into graph nodes."""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddc.config.loader import load_role_config
from ddc.config.schemas import ROLE_SCHEMAS
from ddc.errors import ConfigError
from ddc.topology.errors import TopologyInputError
from ddc.topology.model import Address, Node, Scope, open_addresses
from ddc.units import parse_hostport

COMMANDS = ("ingress", "egress", "diode-sim")
# where other nodes reach a node listening on the given address
Addresses = Callable[[tuple[str, int]], list[Address]]
OTHER_ROLES = ("dedup", "supervisor")  # ddc configs that take no part in the pairing


@dataclass
class DdcCommand:
    command: str  # ingress | egress | diode-sim
    config: str | None = None  # -c / --config
    listen: str | None = None  # diode-sim --listen
    forward: str | None = None  # diode-sim --forward


def _tokens(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def _is_ddc(token: str) -> bool:
    return token.rsplit("/", 1)[-1] in ("ddc", "ddc.cli")


def _option(args: list[str], *names: str) -> str | None:
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg[len(name) + 1 :]
            if not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                return arg[len(name) :]
    return None


def parse_command(*parts: Any) -> DdcCommand | None:
    """The ddc sub-command in an entrypoint + command (also inside `sh -c "..."`), if any."""
    tokens: list[str] = []
    for part in parts:
        tokens.extend(_tokens(part))
    for index, token in enumerate(tokens):
        if " " in token.strip():
            found = parse_command(token)
            if found is not None:
                return found
            continue
        if token in COMMANDS and (index == 0 or _is_ddc(tokens[index - 1])):
            args = tokens[index + 1 :]
            return DdcCommand(
                token,
                config=_option(args, "-c", "--config"),
                listen=_option(args, "--listen"),
                forward=_option(args, "--forward"),
            )
    return None


def parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyInputError(f"{where}: invalid TOML: {exc}") from None


def read_text(path: Path, where: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyInputError(f"{where}: cannot read {path}: {exc}") from None


def document_role(document: dict[str, Any]) -> str | None:
    for role in (*ROLE_SCHEMAS, *OTHER_ROLES):
        if role in document:
            return role
    return None


def validated(
    document: dict[str, Any], role: str, environ: Mapping[str, str], where: str
) -> dict[str, Any]:
    """The config as the proxy would see it: env overrides applied, then validated."""
    try:
        return load_role_config(None, role, ROLE_SCHEMAS[role](), environ, document=document)
    except ConfigError as exc:
        raise TopologyInputError(f"{where}: invalid {role} config: {exc}") from None


def hostport(text: str, where: str) -> tuple[str, int]:
    try:
        return parse_hostport(text)
    except ValueError as exc:
        raise TopologyInputError(f"{where}: {exc}") from None


def read_config_file(path: Path, where: str) -> tuple[str | None, dict[str, Any]]:
    """(role, raw document) of a TOML file; role None for anything but a ddc config."""
    document = parse_toml(read_text(path, where), where)
    return document_role(document), document


def node_from_toml(path: Path, display: str) -> Node | None:
    """A standalone ddc config: addresses are plain host:port, reachable from anywhere."""
    role, document = read_config_file(path, display)
    if role is None:
        raise TopologyInputError(f"{display}: not a ddc config (no [ingress] or [egress] table)")
    if role not in ROLE_SCHEMAS:
        return None
    config = validated(document, role, {}, display)
    origin = f"{display} ({role} {config['name']!r})"
    return config_node(
        role, config, origin, None, (None,), open_addresses, config_path=str(path.resolve())
    )


def config_node(
    role: str,
    config: dict[str, Any],
    origin: str,
    scope: Scope,
    visible: tuple[Scope, ...],
    addresses: Addresses,
    config_path: str | None = None,
) -> Node:
    """The ingress or egress a validated config describes; `addresses(listen)`: where others
    reach an egress listening on `listen`."""
    http_port = config["http_listen"][1] if config["http_listen"] else None
    if role == "ingress":
        destination = config["transport"]["destination"]
        return Node(
            "ingress",
            origin,
            scope,
            visible,
            destination=destination,
            config_path=config_path,
            http_port=http_port,
        )
    listen = config["transport"]["listen"]
    return Node(
        "egress",
        origin,
        scope,
        listen=listen,
        addresses=addresses(listen),
        config_path=config_path,
        http_port=http_port,
    )


def relay_node(
    command: DdcCommand, where: str, scope: Scope, visible: tuple[Scope, ...], addresses: Addresses
) -> Node:
    """The diode relay a `ddc diode-sim --listen A --forward B` container stands for."""
    if not command.listen or not command.forward:
        raise TopologyInputError(f"{where}: ddc diode-sim needs --listen and --forward")
    listen = hostport(command.listen, where)
    return Node(
        "relay",
        where,
        scope,
        visible,
        destination=hostport(command.forward, where),
        listen=listen,
        addresses=addresses(listen),
    )


def command_config(command: DdcCommand, where: str) -> str:
    """The -c CONFIG of a `ddc ingress|egress` command line."""
    if not command.config:
        raise TopologyInputError(f"{where}: 'ddc {command.command}' without -c CONFIG")
    return command.config


def proxy_node(
    command: DdcCommand,
    where: str,
    text: str,
    source: str,
    environ: Mapping[str, str],
    scope: Scope,
    visible: tuple[Scope, ...],
    addresses: Addresses,
    *,
    shown_source: str | None = None,
    config_path: str | None = None,
) -> Node:
    """The ingress or egress a container runs: `text` is its config, read from `source`."""
    document = parse_toml(text, f"{where} config {source}")
    role = document_role(document)
    if role != command.command:
        raise TopologyInputError(
            f"{where}: runs 'ddc {command.command}' but {source} is a {role or 'non-ddc'} config"
        )
    config = validated(document, role, environ, f"{where} config {source}")
    origin = f"{where} ({role} {config['name']!r}, {shown_source or source})"
    return config_node(role, config, origin, scope, visible, addresses, config_path)

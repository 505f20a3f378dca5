"""Docker Compose files: the ddc services, their mounted configs and `DDC__` env overrides."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ddc.topology.configs import (
    DdcCommand,
    command_config,
    parse_command,
    proxy_node,
    read_text,
    relay_node,
)
from ddc.topology.errors import TopologyInputError
from ddc.topology.model import (
    ANY_HOST,
    WILDCARD_HOSTS,
    Address,
    Node,
    local_addresses,
    open_addresses,
)
from ddc.topology.paths import display_path

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>.*))?$", re.S)


def interpolate(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}` and `$$`."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ, where) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ, where) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("named"):
            return environ.get(match.group("named"), "")
        braced = _BRACED.match(match.group("braced"))
        if braced is None:
            raise TopologyInputError(f"{where}: invalid interpolation {match.group(0)!r}")
        name, op, arg = braced.group("name"), braced.group("op"), braced.group("arg")
        current = environ.get(name)
        missing = current is None or (current == "" and op is not None and op.startswith(":"))
        if op is None or not missing:
            return current or ""
        if op.endswith("?"):
            raise TopologyInputError(f"{where}: variable {name} is required: {arg}")
        return arg

    return _VARIABLE.sub(replace, value)


def read_env_file(path: Path, where: str) -> dict[str, str]:
    values = {}
    for line in read_text(path, where).splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class ComposeFile:
    """One compose file: a network namespace of its own (scope `compose:PATH`)."""

    def __init__(self, path: Path, document: dict[str, Any], display: str) -> None:
        self.path = path.resolve()
        self.base = self.path.parent
        self.display = display
        self.scope = f"compose:{self.path}"
        dotenv = self.base / ".env"
        environ = {**(read_env_file(dotenv, display) if dotenv.is_file() else {}), **os.environ}
        self.document = interpolate(document, environ, display)
        self.shell_env = environ
        services = self.document.get("services")
        if not isinstance(services, dict):
            raise TopologyInputError(f"{display}: 'services' must be a mapping")
        self.services: dict[str, dict[str, Any]] = services
        self.mounted: set[str] = set()  # host paths of the ddc configs the services mount
        self.notes: list[str] = []

    def nodes(self) -> list[Node]:
        found: list[Node] = []
        for name, service in self.services.items():
            if not isinstance(service, dict):
                raise TopologyInputError(f"{self.display}: service {name!r} must be a mapping")
            command = parse_command(service.get("entrypoint"), service.get("command"))
            if command is None:
                continue
            node = self._node(name, service, command)
            found.extend(node.replicate(self._replicas(service)))
        return found

    # --- one service ----------------------------------------------------------------------

    def _where(self, name: str) -> str:
        return f"{self.display} service {name!r}"

    def _node(self, name: str, service: dict[str, Any], command: DdcCommand) -> Node:
        where = self._where(name)
        visible = (self.scope, None)

        def addresses(listen: tuple[str, int]) -> list[Address]:
            return self._addresses(service, listen, self._names(name, service))

        if command.command == "diode-sim":
            return relay_node(command, where, self.scope, visible, addresses)
        host_path = self._host_path(name, service, command_config(command, where))
        node = proxy_node(
            command,
            where,
            read_text(host_path, where),
            str(host_path),
            self._environment(name, service),
            self.scope,
            visible,
            addresses,
            shown_source=f"config {display_path(host_path)}",
            config_path=str(host_path),
        )
        self.mounted.add(str(host_path))
        if node.role == "ingress" and node.http_port is not None:
            for host, published, target in self._published(service, "tcp"):
                if target == node.http_port and host == ANY_HOST:
                    self.notes.append(
                        f"warning: {where}: publishes its management port {node.http_port} "
                        f"(/admin/pause, /admin/resume) on every host interface as {published}; "
                        "publish it on a management address only (HOST_IP:PORT:PORT) or not at all"
                    )
        return node

    def _replicas(self, service: dict[str, Any]) -> int:
        deploy = service.get("deploy") or {}
        count = deploy.get("replicas", service.get("scale", 1))
        try:
            return int(count)
        except (TypeError, ValueError):
            return 1

    def _names(self, name: str, service: dict[str, Any]) -> list[str]:
        names = [name, service.get("hostname"), service.get("container_name")]
        networks = service.get("networks")
        if isinstance(networks, dict):
            for settings in networks.values():
                if isinstance(settings, dict):
                    names.extend(_as_list(settings.get("aliases")))
                    names.extend([settings.get("ipv4_address"), settings.get("ipv6_address")])
        return [str(item) for item in names if item]

    def _addresses(
        self, service: dict[str, Any], listen: tuple[str, int], names: list[str]
    ) -> list[Address]:
        if service.get("network_mode") == "host":
            return open_addresses(listen)
        addresses = local_addresses(self.scope, listen, names)
        for published in self._published(service, "udp"):
            if published[2] == listen[1]:
                addresses.append(Address(None, published[0], published[1]))
        return addresses

    def _published(self, service: dict[str, Any], protocol: str) -> list[tuple[str, int, int]]:
        """(host ip or *, published port, container port) of the `protocol` ports published."""
        found = []
        for entry in _as_list(service.get("ports")):
            if isinstance(entry, dict):
                if entry.get("protocol", "tcp") != protocol or not entry.get("published"):
                    continue
                host = entry.get("host_ip") or ANY_HOST
                found.append((host, int(entry["published"]), int(entry["target"])))
                continue
            text, _, suffix = str(entry).partition("/")
            if (suffix or "tcp") != protocol:
                continue
            parts = text.rsplit(":", 2)
            if len(parts) == 1 or "-" in text:
                continue  # not published on a fixed host port
            host = parts[0] if len(parts) == 3 and parts[0] not in WILDCARD_HOSTS else ANY_HOST
            found.append((host, int(parts[-2]), int(parts[-1])))
        return found

    def _environment(self, name: str, service: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in _as_list(service.get("env_file")):
            path = entry.get("path") if isinstance(entry, dict) else entry
            env.update(read_env_file(self.base / str(path), self._where(name)))
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            pairs = [item.partition("=") for item in map(str, environment)]
            environment = {key: value if sep else None for key, sep, value in pairs}
        for key, value in environment.items():
            if value is None:
                if key in self.shell_env:
                    env[key] = self.shell_env[key]
                continue
            env[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def _host_path(self, name: str, service: dict[str, Any], config: str) -> Path:
        """The file on this machine that the container sees at `config`."""
        target = PurePosixPath(config)
        if not target.is_absolute():
            target = PurePosixPath(service.get("working_dir") or "/") / target
        best: tuple[int, Path] | None = None
        for mount_target, source in self._mounts(service):
            mount = PurePosixPath(mount_target)
            if target == mount or mount in target.parents:
                rest = target.relative_to(mount)
                candidate = (len(mount.parts), source / rest if str(rest) != "." else source)
                if best is None or candidate[0] > best[0]:
                    best = candidate
        if best is None:
            raise TopologyInputError(
                f"{self._where(name)}: config {config} is not in a bind-mounted file or directory"
            )
        return best[1]

    def _mounts(self, service: dict[str, Any]) -> list[tuple[str, Path]]:
        mounts = []
        for volume in _as_list(service.get("volumes")):
            if isinstance(volume, dict):
                if volume.get("type") == "bind" and volume.get("source") and volume.get("target"):
                    mounts.append((volume["target"], self._resolve(volume["source"])))
                continue
            parts = str(volume).split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/", "~")):
                mounts.append((parts[1], self._resolve(parts[0])))
        top_configs = self.document.get("configs") or {}
        for entry in _as_list(service.get("configs")):
            source = entry.get("source") if isinstance(entry, dict) else entry
            target = entry.get("target") if isinstance(entry, dict) else None
            spec = top_configs.get(source) or {}
            if isinstance(spec, dict) and spec.get("file"):
                mounts.append((target or f"/{source}", self._resolve(spec["file"])))
        return mounts

    def _resolve(self, source: str) -> Path:
        return (self.base / Path(source).expanduser()).resolve()

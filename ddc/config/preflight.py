"""Start-up checks of what a valid config names on this host: before anything starts, a daemon
makes sure each address resolves, each listen address is one of this host's, and each path it
will write can be written. A failure is a ConfigError naming the key (one line, exit 2).

Only the daemon commands run these checks (the load_*_config functions below are what `boot`
calls); `ddc topology check` and the tests load configs of other hosts without them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ddc.config.loader import load_egress_config as _load_egress
from ddc.config.loader import load_ingress_config as _load_ingress
from ddc.errors import ConfigError
from ddc.units import format_hostport


def resolvable(key: str, address: tuple[str, int]) -> None:
    """`address`'s host resolves (a name the daemon sends to)."""
    host, port = address
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(key, f"cannot resolve host {host!r}: {_reason(exc)}") from None


def local(key: str, address: tuple[str, int]) -> None:
    """`address`'s host is an address of this host (one the daemon binds or listens on).

    Checked by binding port 0 of that host, so a busy port is not reported here (that is a
    run-time condition: "cannot start", exit 1).
    """
    host = address[0]
    resolvable(key, address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.bind((host, 0))
    except OSError as exc:
        where = format_hostport(address)
        raise ConfigError(key, f"{where} is not an address of this host: {_reason(exc)}") from None
    finally:
        probe.close()


def writable_file(key: str, path: str) -> None:
    """`path` can be created or appended to: its directory exists and is writable."""
    file = Path(path)
    directory = file.parent
    if not directory.is_dir():
        raise ConfigError(key, f"directory {directory} does not exist")
    if file.is_dir():
        raise ConfigError(key, f"{file} is a directory")
    if not os.access(directory, os.W_OK | os.X_OK) or (
        file.exists() and not os.access(file, os.W_OK)
    ):
        raise ConfigError(key, f"{file} is not writable")


def writable_dir(key: str, path: str) -> None:
    """`path` is a writable directory, or can be made one (its nearest existing ancestor is a
    writable directory)."""
    directory = Path(path)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(key, f"{existing} is not a directory, so {directory} cannot be one")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, f"{existing} is not writable")


def check_ingress(config: Mapping[str, Any]) -> None:
    if config.get("http_listen"):
        local("ingress.http_listen", config["http_listen"])
    source = config["source"]
    if source["type"] in ("udp", "tcp"):
        local("ingress.source.listen", source["listen"])
    transport = config["transport"]
    local("ingress.transport.bind", transport["bind"])
    resolvable("ingress.transport.destination", transport["destination"])


def check_egress(config: Mapping[str, Any]) -> None:
    if config.get("http_listen"):
        local("egress.http_listen", config["http_listen"])
    local("egress.transport.listen", config["transport"]["listen"])
    sink = config["sink"]
    if sink["type"] in ("udp", "tcp"):
        resolvable("egress.sink.target", sink["target"])
    elif sink["type"] == "file":
        writable_file("egress.sink.path", sink["path"])


def load_ingress_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The validated ingress config, checked against this host."""
    config = _load_ingress(path)
    check_ingress(config)
    return config


def load_egress_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The validated egress config, checked against this host."""
    config = _load_egress(path)
    check_egress(config)
    return config


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)

"""Checking the `options` tables passed through to kafka-python's clients."""

from __future__ import annotations

from typing import Any

from ddc.errors import ConfigError


def client_options(
    options: dict[str, Any] | None, reserved: dict[str, str], client: type, key: str
) -> dict[str, Any]:
    """`options` as keyword arguments for `client`; ConfigError naming the first unusable key.

    reserved: option → the DDC setting that owns it (such options may not be set directly).
    """
    options = dict(options or {})
    for name, owner in reserved.items():
        if name in options:
            raise ConfigError(f"{key}.{name}", f"not allowed here; set by {owner}")
    unknown = sorted(set(options) - set(client.DEFAULT_CONFIG))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"not a {client.__name__} option")
    return options

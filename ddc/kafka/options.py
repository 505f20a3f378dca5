"""The one check of the `options` tables passed through to kafka-python's clients.

Every Kafka client the sources, sinks and the merge loop create takes its keyword arguments
from consumer_options() or producer_options(): the operator's options checked against the
client's DEFAULT_CONFIG (a misspelt key is a ConfigError naming it), on top of DDC's defaults,
under the settings DDC owns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from ddc.errors import ConfigError


def client_options(
    options: Mapping[str, Any] | None, reserved: Mapping[str, str], client: Any, key: str
) -> dict[str, Any]:
    """`options` as keyword arguments for `client`; ConfigError naming the first unusable key.

    reserved: option → the DDC setting that owns it (such options may not be set directly).
    key: where the options table is in the config, e.g. "egress.sink.options".
    """
    options = dict(options or {})
    for name, owner in reserved.items():
        if name in options:
            raise ConfigError(f"{key}.{name}", f"not allowed here; set by {owner}")
    unknown = sorted(set(options) - set(client.DEFAULT_CONFIG))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"not a {client.__name__} option")
    return options


def _build(
    client: Any,
    options: Mapping[str, Any] | None,
    *,
    key: str,
    reserved: Mapping[str, str],
    defaults: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    missing = set(settings) - set(reserved)
    if missing:  # a setting the operator could also pass as an option: ambiguous
        raise ValueError(f"settings {sorted(missing)} must be reserved")
    return {**defaults, **client_options(options, reserved, client, key), **settings}


def consumer_options(
    options: Mapping[str, Any] | None,
    *,
    key: str,
    reserved: Mapping[str, str],
    defaults: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """KafkaConsumer keyword arguments: `defaults`, then the checked `options`, then `settings`
    (every one of which must be in `reserved`, option → the DDC setting that owns it)."""
    return _build(
        KafkaConsumer, options, key=key, reserved=reserved, defaults=defaults, settings=settings
    )


def producer_options(
    options: Mapping[str, Any] | None,
    *,
    key: str,
    reserved: Mapping[str, str],
    defaults: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """KafkaProducer keyword arguments, built as consumer_options() builds a consumer's."""
    return _build(
        KafkaProducer, options, key=key, reserved=reserved, defaults=defaults, settings=settings
    )

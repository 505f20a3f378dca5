"""The one check of the `options` tables passed through to kafka-python's clients.

Every Kafka client the sources, sinks and the merge loop create takes its keyword arguments
from a ClientOptions: the operator's options checked against the client's DEFAULT_CONFIG (a
misspelt key is a ConfigError naming it), on top of DDC's defaults, under the settings DDC owns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
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


@dataclass(frozen=True)
class ClientOptions:
    """How one kind of Kafka client's `options` table is checked and completed.

    client: KafkaConsumer or KafkaProducer; key: where the table is in the config;
    reserved: option → the DDC setting that owns it (bootstrap_servers always is: every
    client's comes from its section's own key); defaults: DDC's, under the operator's.
    """

    client: Any
    key: str
    reserved: Mapping[str, str]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def build(
        self, options: Mapping[str, Any] | None, settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Keyword arguments: `defaults`, then the checked `options`, then `settings` (every one
        of which must be in `reserved`); ConfigError naming the first unusable option."""
        reserved = {"bootstrap_servers": "bootstrap_servers", **self.reserved}
        missing = set(settings) - set(reserved)
        if missing:  # a setting the operator could also pass as an option: ambiguous
            raise ValueError(f"settings {sorted(missing)} must be reserved")
        checked = client_options(options, reserved, self.client, self.key)
        return {**self.defaults, **checked, **settings}

    def for_section(self, config: Mapping[str, Any], **settings: Any) -> dict[str, Any]:
        """build() for a validated config section: its `options` table, its bootstrap_servers."""
        servers = list(config["bootstrap_servers"])
        return self.build(config.get("options"), {"bootstrap_servers": servers, **settings})


def _options(
    client: Any,
    options: Mapping[str, Any] | None,
    *,
    key: str,
    reserved: Mapping[str, str],
    defaults: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    return ClientOptions(client, key, reserved, defaults).build(options, settings)


# ClientOptions(client, key, reserved, defaults).build(options, settings) as one call
consumer_options = partial(_options, KafkaConsumer)
producer_options = partial(_options, KafkaProducer)

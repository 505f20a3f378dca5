"""The `options` table of a Kafka source or sink with `client = "librdkafka"`: librdkafka
configuration properties ("linger.ms", "security.protocol", ...), checked before anything starts.

TOML's dotted keys are joined again (`linger.ms = 5` and `"linger.ms" = 5` are the same).
Rules (each failure is a ConfigError naming the key, so the daemon exits 2 with one line):
  * confluent-kafka must be importable (the client is optional: `pip install confluent-kafka`);
  * a property DDC sets from its own keys (bootstrap.servers, group.id, ...) may not be set;
  * librdkafka itself checks every property by name and value type: a client is built from the
    operator's properties alone (no bootstrap.servers, so it connects nowhere) and closed; its
    refusal names the operator's key (found by trying each alone when librdkafka names the
    canonical property, e.g. "queue.buffering.max.ms" for "linger.ms");
  * a producer property in a source's table (or a consumer property in a sink's) would be
    ignored by librdkafka with a warning: it is refused as well.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ddc.errors import ConfigError
from ddc.kafka.options import ClientOptions

PACKAGE = "confluent-kafka"
_IGNORED = re.compile(r"property (\S+) is an? (producer|consumer) property and will be ignored")


def module() -> Any:
    """confluent_kafka, or a ConfigError naming the package (it is an optional dependency)."""
    try:
        import confluent_kafka
    except ImportError as exc:
        raise ConfigError("client", f'"librdkafka" needs the {PACKAGE} package ({exc})') from None
    return confluent_kafka


def flatten(options: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The table with TOML's dotted keys joined again: `linger.ms = 5` (unquoted) is read as
    {"linger": {"ms": 5}}, the property "linger.ms"."""
    flat: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


class CapturedLog(logging.Logger):
    """A logger for a checking client: keeps librdkafka's lines instead of printing them."""

    def __init__(self) -> None:
        super().__init__("ddc.kafka.rd_options")
        self.lines: list[str] = []

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.lines.append(str(msg) % args if args else str(msg))


@dataclass(frozen=True)
class RdOptions(ClientOptions):
    """How one kind of librdkafka client's `options` table is checked and completed.

    client: "consumer" or "producer"; key: where the table is in the config (the client key is
    beside it); reserved: property → the DDC setting that owns it; defaults: DDC's, under the
    operator's.
    """

    def build(
        self, options: Mapping[str, Any] | None, settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The client's configuration: defaults, the checked options, then DDC's settings."""
        options = flatten(options or {})
        section = self.key.rsplit(".", 1)[0]
        try:
            module()
        except ConfigError as exc:
            raise ConfigError(f"{section}.client", exc.problem) from None
        reserved = {
            "bootstrap.servers": "bootstrap_servers",
            "metadata.broker.list": "bootstrap_servers",
            **self.reserved,
        }
        for name in options:
            if name in reserved:
                raise ConfigError(
                    f"{self.key}.{name}", f"not allowed here; set by {reserved[name]}"
                )
        self.check(options)
        return {**self.defaults, **options, **settings}

    def check(self, options: Mapping[str, Any]) -> None:
        """ConfigError naming the first property librdkafka refuses or would ignore."""
        problem = self._refusal(options)
        if problem is None:
            return
        raise ConfigError(f"{self.key}{self._culprit(options, problem)}", problem)

    def _culprit(self, options: Mapping[str, Any], problem: str) -> str:
        """The ".name" of the operator's property librdkafka refused ("" if none can be told):
        the one it names; else the one without which the rest pass (properties constrain each
        other, e.g. max.poll.interval.ms >= session.timeout.ms); else one refused alone."""
        named = re.findall(r'"([^"]+)"', problem)
        for name in named:
            if name in options:
                return f".{name}"
        for name in sorted(options):
            if self._refusal({k: v for k, v in options.items() if k != name}) is None:
                return f".{name}"
        for name in sorted(options):
            if self._refusal({name: options[name]}) is not None:
                return f".{name}"
        return ""

    def _refusal(self, options: Mapping[str, Any]) -> str | None:
        """librdkafka's reason to refuse these properties for this kind of client, or None."""
        kafka = module()
        captured = CapturedLog()
        config = {**options, "logger": captured}
        try:
            if self.client == "consumer":
                client = kafka.Consumer({"group.id": "ddc-config-check", **config})
                client.poll(0)  # serves the configuration warnings to the logger
                client.close()
            else:
                client = kafka.Producer(config)
                client.poll(0)
        except kafka.KafkaException as exc:
            return _reason(exc)
        except (TypeError, ValueError) as exc:
            return f"not a valid librdkafka property value ({exc})"
        for line in captured.lines:
            match = _IGNORED.search(line)
            if match:
                return (
                    f"{match.group(1)} is a {match.group(2)} property (ignored by a {self.client})"
                )
        return None


def _reason(exc: Any) -> str:
    error: Any = exc.args[0] if exc.args else exc
    text = error.str() if hasattr(error, "str") else str(exc)
    return f"librdkafka: {text}"

"""The `[dedup]` config: marshmallow schemas holding every default, unknown keys rejected.

The keys are described in docs/configuration.md, what they do in docs/dedup.md. Tables:
[dedup] (the service), [dedup.sink] (kafka | udp | tcp | file | http: where first copies go),
[dedup.merge] (optional Kafka merge loop, one input topic per link).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ddc.config.fields import Duration, FilePath, HostPort, HostPortList, Size, TypedTable
from ddc.config.loader import config_dir, load_role_config
from ddc.config.schemas import (
    KAFKA_CLIENTS,
    LOG_LEVELS,
    FileSinkSchema,
    StrictSchema,
    UdpSinkSchema,
)
from dedup_service.keys import IdSpec, parse_id_from

LINK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_LINKS = 31  # links one key prefix can hold (the store's Lua bit sets are 32-bit)
LINK_NAME_PROBLEM = "link names are 1-64 characters of A-Z a-z 0-9 _ . - (starting alphanumeric)"


class IdFrom(fields.Field[IdSpec]):
    """An `id_from` setting (text), loaded as a keys.IdSpec."""

    default_error_messages = {"invalid": "Not a valid string."}

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> IdSpec:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return parse_id_from(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


def _positive(name: str, data: Mapping[str, Any]) -> None:
    if name in data and data[name] <= 0:
        raise ValidationError("must be greater than 0", name)


# --- sinks -------------------------------------------------------------------------------


class KafkaSinkSchema(StrictSchema):
    type = fields.String(required=True)
    bootstrap_servers = HostPortList(required=True)
    topic = fields.String(required=True, validate=validate.Length(min=1))
    timeout = Duration(load_default=30.0)
    options = fields.Dict(keys=fields.String(), load_default=dict)
    # as [egress.sink] client: "librdkafka" drives a confluent-kafka producer (sinks/kafka_rd.py)
    client = fields.String(load_default="kafka-python", validate=validate.OneOf(KAFKA_CLIENTS))


class TcpSinkSchema(StrictSchema):
    type = fields.String(required=True)
    target = HostPort(required=True)
    timeout = Duration(load_default=10.0)


class DedupFileSinkSchema(FileSinkSchema):
    """The egress's file sink, plus `write_ids`: each value preceded by its dedup id."""

    write_ids = fields.Boolean(load_default=False)

    @validates_schema
    def _ids_need_frames(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("write_ids") and data.get("framing") != "length_prefixed":
            raise ValidationError('needs framing = "length_prefixed"', "write_ids")


class HttpSinkSchema(StrictSchema):
    type = fields.String(required=True)
    url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    timeout = Duration(load_default=10.0)
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)


SINK_SCHEMAS: dict[str, type[Schema]] = {
    "kafka": KafkaSinkSchema,
    "udp": UdpSinkSchema,
    "tcp": TcpSinkSchema,
    "file": DedupFileSinkSchema,
    "http": HttpSinkSchema,
}


# --- merge loop --------------------------------------------------------------------------


class MergeSchema(StrictSchema):
    bootstrap_servers = HostPortList(required=True)
    links = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    group_id = fields.String(load_default="ddc-dedup", validate=validate.Length(min=1))
    poll_max_records = fields.Integer(load_default=2000, validate=validate.Range(min=1))
    poll_timeout = Duration(load_default=0.5)
    # polled batches forwarded at once (MergeWindow keeps their offset commits in order)
    max_in_flight = fields.Integer(load_default=4, validate=validate.Range(min=1, max=64))
    retry_interval = Duration(load_default=1.0)
    auto_offset_reset = fields.String(
        load_default="earliest", validate=validate.OneOf(["earliest", "latest"])
    )
    options = fields.Dict(keys=fields.String(), load_default=dict)
    # as [dedup.sink] client: "librdkafka" drives a confluent-kafka consumer (merger_rd.py)
    client = fields.String(load_default="kafka-python", validate=validate.OneOf(KAFKA_CLIENTS))

    @validates_schema
    def _links(self, data: dict[str, Any], **kwargs: Any) -> None:
        links = data.get("links", {})
        if not links:
            raise ValidationError("needs at least one link = topic", "links")
        for name, topic in links.items():
            if not LINK_NAME.match(name):
                raise ValidationError(f"{name!r}: {LINK_NAME_PROBLEM}", "links")
            if not topic:
                raise ValidationError(f"{name!r}: empty topic", "links")
        if len(set(links.values())) != len(links):
            raise ValidationError("each link needs its own input topic", "links")
        _positive("poll_timeout", data)
        _positive("retry_interval", data)


# --- the role ----------------------------------------------------------------------------


POSITIVE_DURATIONS = (
    "window",
    "divergence_window",
    "pending_timeout",
    "redis_timeout",
    "commit_retry_timeout",
)
REDIS_TIMEOUT = 5.0  # also redis_client.connect()'s default, for clients made outside a config


class DedupSchema(StrictSchema):
    http_listen = HostPort(load_default=("127.0.0.1", 8080), allow_zero_port=True)
    redis_url = fields.String(  # absent: an embedded Redis-compatible server in data_dir
        load_default=None, validate=validate.Regexp(r"^(redis|rediss|unix)://")
    )
    redis_cluster = fields.Boolean(load_default=False)
    # the password (Redis AUTH) of the server at redis_url, from a secret file; the URL itself
    # should carry none: config files are not secrets
    redis_password_file = FilePath(load_default=None)
    data_dir = fields.String(load_default="dedup-data", validate=validate.Length(min=1))
    key_prefix = fields.String(
        load_default="ddc", validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,32}$")
    )
    window = Duration(load_default=86400.0)
    id_from = IdFrom(load_default=IdSpec("id"))
    # the links this service serves: a POST naming another link is refused (400) before any
    # state or metric label is made for it; the merge loop's links must be among them
    links = fields.List(
        fields.String(validate=validate.Regexp(LINK_NAME, error=LINK_NAME_PROBLEM)),
        required=True,
        validate=validate.Length(min=1, max=MAX_LINKS),
    )
    divergence_window = Duration(load_default=60.0)
    pending_timeout = Duration(load_default=30.0)
    redis_timeout = Duration(load_default=REDIS_TIMEOUT)
    commit_retry_timeout = Duration(load_default=60.0)
    max_batch = fields.Integer(load_default=10000, validate=validate.Range(min=1, max=1_000_000))
    max_request_size = Size(load_default=64 * 1024**2, positive=True)
    log_level = fields.String(load_default="INFO", validate=validate.OneOf(LOG_LEVELS))
    api_token_file = FilePath(load_default=None)  # unset: every POST answers 403
    sink = TypedTable(SINK_SCHEMAS, required=True)
    merge = fields.Nested(MergeSchema, load_default=None)

    @validates_schema
    def _password_needs_a_server(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("redis_password_file") and not data.get("redis_url"):
            raise ValidationError(
                "needs redis_url (the embedded server listens on loopback only)",
                "redis_password_file",
            )

    @validates_schema
    def _durations(self, data: dict[str, Any], **kwargs: Any) -> None:
        for name in POSITIVE_DURATIONS:
            _positive(name, data)

    @validates_schema
    def _sink_within_pending(self, data: dict[str, Any], **kwargs: Any) -> None:
        """A sink that may take longer than pending_timeout lets the claim expire mid-forward:
        the other copy is then forwarded too."""
        sink, pending = data.get("sink") or {}, data.get("pending_timeout")
        if pending is None:
            return
        waits = {"timeout": sink.get("timeout")}
        delivery = (sink.get("options") or {}).get("delivery_timeout_ms")
        if isinstance(delivery, int | float):
            waits["options.delivery_timeout_ms"] = delivery / 1000
        if sink.get("client") == "librdkafka":
            from dedup_service.sinks.kafka_rd import delivery_timeout

            waits["options.message.timeout.ms"] = delivery_timeout(sink.get("options"))
        for name, seconds in waits.items():
            if seconds is not None and seconds > pending:
                raise ValidationError(
                    f"{name} ({seconds:g}s) is longer than pending_timeout ({pending:g}s): a "
                    "slow send would outlive its claim and the other copy would be forwarded too",
                    "sink",
                )

    @validates_schema
    def _declared_links(self, data: dict[str, Any], **kwargs: Any) -> None:
        links = data.get("links") or []
        if len(set(links)) != len(links):
            raise ValidationError("a link is declared twice", "links")
        merge = data.get("merge") or {}
        undeclared = sorted(set(merge.get("links", {})) - set(links))
        if undeclared:
            raise ValidationError(
                f"merge link {undeclared[0]!r} is not declared in [dedup] links", "merge"
            )


def load_dedup_config(
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None = None,
    *,
    document: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The validated [dedup] table; relative paths (data_dir, file sink) resolve from the file's dir."""
    config = load_role_config(path, "dedup", DedupSchema(), environ, document=document)
    base = config_dir(path)
    config["data_dir"] = str(base / config["data_dir"])
    if config["sink"]["type"] == "file":
        config["sink"]["path"] = str(base / config["sink"]["path"])
    check_kafka_options(config)
    return config


def check_kafka_options(config: dict[str, Any]) -> None:
    """The Kafka clients' `options` tables, checked as the clients will build them: a misspelt
    or reserved key is a ConfigError at start, not a client that never connects."""
    if config["sink"]["type"] == "kafka" and config["sink"]["client"] == "librdkafka":
        from dedup_service.sinks.kafka_rd import sink_rd_config

        sink_rd_config(config["sink"])
    elif config["sink"]["type"] == "kafka":
        from dedup_service.sinks.kafka import sink_producer_options

        sink_producer_options(config["sink"])
    if config["merge"] and config["merge"]["client"] == "librdkafka":
        from dedup_service.merger_rd import merge_rd_config

        merge_rd_config(config["merge"])
    elif config["merge"]:
        from dedup_service.merger import merge_consumer_options

        merge_consumer_options(config["merge"])


def check_dedup(config: Mapping[str, Any]) -> None:
    """What the config names on this host (ddc.config.preflight): a ConfigError naming the key."""
    from ddc.config import preflight

    preflight.local("dedup.http_listen", config["http_listen"])
    if not config["redis_url"]:  # the embedded server keeps its data there
        preflight.writable_dir("dedup.data_dir", config["data_dir"])
    sink = config["sink"]
    if sink["type"] in ("udp", "tcp"):
        preflight.resolvable("dedup.sink.target", sink["target"])
    elif sink["type"] == "file":
        preflight.writable_file("dedup.sink.path", sink["path"])


def load_checked_dedup_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """load_dedup_config(), then check_dedup(): what `ddc-dedup serve` starts from."""
    config = load_dedup_config(path)
    check_dedup(config)
    return config

"""marshmallow schemas of the ingress and egress configs (docs/configuration.md).

Every default lives here; unknown keys are rejected.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from ddc.config.base import LOG_LEVELS, StrictSchema, log_level, require_positive
from ddc.config.fields import Duration, FilePath, HostPort, HostPortList, Rate, Size, TypedTable
from ddc.protocol.wire import HEADER_SIZE, MAX_DATAGRAM

__all__ = ["LOG_LEVELS", "ROLE_SCHEMAS", "StrictSchema"]

MIN_PACKET_SIZE = HEADER_SIZE + 55  # 64 bytes: the smallest datagram the fragmenter accepts


# --- ingress -----------------------------------------------------------------------------


class UdpSourceSchema(StrictSchema):
    type = fields.String(required=True)
    listen = HostPort(required=True)
    receive_buffer = Size(load_default=32 * 1024**2)


class TcpSourceSchema(StrictSchema):
    type = fields.String(required=True)
    listen = HostPort(required=True)
    max_record_size = Size(load_default=64 * 1024**2)
    max_connections = fields.Integer(load_default=1024, validate=validate.Range(min=1))


class KafkaSourceSchema(StrictSchema):
    type = fields.String(required=True)
    bootstrap_servers = HostPortList(required=True)
    topics = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    group_id = fields.String(required=True)
    commit_interval = Duration(load_default=1.0)
    poll_max_records = fields.Integer(load_default=2000, validate=validate.Range(min=1))
    options = fields.Dict(keys=fields.String(), load_default=dict)


SOURCE_SCHEMAS: dict[str, type[Schema]] = {
    "udp": UdpSourceSchema,
    "tcp": TcpSourceSchema,
    "kafka": KafkaSourceSchema,
}


class KeywordFilterSchema(StrictSchema):
    type = fields.String(required=True)
    words = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    case_sensitive = fields.Boolean(load_default=True)


class RegexFilterSchema(StrictSchema):
    type = fields.String(required=True)
    pattern = fields.String(required=True)
    action = fields.String(load_default="drop", validate=validate.OneOf(["drop", "keep"]))


class MaxSizeFilterSchema(StrictSchema):
    type = fields.String(required=True)
    max_bytes = Size(required=True)


class JsonSchemaFilterSchema(StrictSchema):
    type = fields.String(required=True)
    schema = FilePath(required=True)


FILTER_SCHEMAS: dict[str, type[Schema]] = {
    "keyword": KeywordFilterSchema,
    "regex": RegexFilterSchema,
    "max_size": MaxSizeFilterSchema,
    "json_schema": JsonSchemaFilterSchema,
}


class IngressTransportSchema(StrictSchema):
    destination = HostPort(required=True)
    bind = HostPort(load_default=("0.0.0.0", 0), allow_zero_port=True)
    max_packet_size = fields.Integer(
        load_default=MAX_DATAGRAM, validate=validate.Range(min=MIN_PACKET_SIZE, max=MAX_DATAGRAM)
    )
    rate = Rate(load_default=None)
    send_delay_ms = fields.Float(load_default=None, validate=validate.Range(min=0))
    send_buffer = Size(load_default=4 * 1024**2)
    heartbeat_interval = Duration(load_default=1.0)
    startup_burst = fields.Integer(load_default=200, validate=validate.Range(min=1, max=100000))
    shutdown_burst = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100000))
    envelope = fields.String(load_default=None, validate=validate.OneOf(["raw", "records"]))
    batch_max_bytes = Size(load_default=60 * 1024)
    linger_ms = fields.Float(load_default=5.0, validate=validate.Range(min=0))
    queue_size = fields.Integer(load_default=10000, validate=validate.Range(min=1))
    queue_bytes = Size(load_default=64 * 1024**2)
    queue_policy = fields.String(load_default="block", validate=validate.OneOf(["block", "drop"]))

    @validates_schema
    def _one_pacing(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("rate") is not None and data.get("send_delay_ms") is not None:
            raise ValidationError("set rate or send_delay_ms, not both", "send_delay_ms")
        require_positive(data, "heartbeat_interval")


class IngressSchema(StrictSchema):
    name = fields.String(load_default="ddc")
    http_listen = HostPort(load_default=None, allow_zero_port=True)
    log_level = log_level()
    source = TypedTable(SOURCE_SCHEMAS, required=True)
    filters = fields.List(TypedTable(FILTER_SCHEMAS), load_default=list)
    transport = fields.Nested(IngressTransportSchema, required=True)

    @post_load
    def _default_envelope(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # unset: Kafka records keep their key, headers and topic; other sources send values raw
        if data["transport"]["envelope"] is None:
            kafka = data["source"]["type"] == "kafka"
            data["transport"]["envelope"] = "records" if kafka else "raw"
        return data


# --- egress ------------------------------------------------------------------------------


class EgressTransportSchema(StrictSchema):
    listen = HostPort(required=True)
    expected_sender = fields.String(load_default=None)
    heartbeat_timeout = Duration(load_default=5.0)
    receive_buffer = Size(load_default=32 * 1024**2)
    max_chunk_size = Size(load_default=64 * 1024**2)
    envelope = fields.String(
        load_default="auto", validate=validate.OneOf(["auto", "raw", "records"])
    )
    queue_bytes = Size(load_default=256 * 1024**2)

    @validates_schema
    def _sender(self, data: dict[str, Any], **kwargs: Any) -> None:
        sender = data.get("expected_sender")
        if sender is not None:
            from ddc.units import parse_hostport

            try:
                parse_hostport(sender, allow_zero_port=True)
            except ValueError as exc:
                raise ValidationError(str(exc), "expected_sender") from exc
        require_positive(data, "heartbeat_timeout")


class UdpSinkSchema(StrictSchema):
    type = fields.String(required=True)
    target = HostPort(required=True)
    send_buffer = Size(load_default=4 * 1024**2)


class TcpSinkSchema(StrictSchema):
    type = fields.String(required=True)
    target = HostPort(required=True)
    reconnect_interval = Duration(load_default=1.0)
    buffer_max_bytes = Size(load_default=256 * 1024**2)


class FileSinkSchema(StrictSchema):
    type = fields.String(required=True)
    path = FilePath(required=True)
    framing = fields.String(
        load_default="length_prefixed",
        validate=validate.OneOf(["length_prefixed", "lines", "none"]),
    )
    fsync = fields.Boolean(load_default=False)


class KafkaSinkSchema(StrictSchema):
    type = fields.String(required=True)
    bootstrap_servers = HostPortList(required=True)
    topic = fields.String(load_default=None)
    topic_map = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    buffer_max_records = fields.Integer(load_default=100000, validate=validate.Range(min=1))
    options = fields.Dict(keys=fields.String(), load_default=dict)


class DedupSinkSchema(StrictSchema):
    type = fields.String(required=True)
    url = fields.Url(required=True, require_tld=False)
    link = fields.String(required=True)
    batch_max_records = fields.Integer(load_default=500, validate=validate.Range(min=1))
    timeout = Duration(load_default=10.0)
    retry_interval = Duration(load_default=1.0)
    buffer_max_records = fields.Integer(load_default=100000, validate=validate.Range(min=1))


SINK_SCHEMAS: dict[str, type[Schema]] = {
    "udp": UdpSinkSchema,
    "tcp": TcpSinkSchema,
    "file": FileSinkSchema,
    "kafka": KafkaSinkSchema,
    "dedup": DedupSinkSchema,
}


class EgressSpoolSchema(StrictSchema):
    """docs/spool.md: where complete chunks wait for the sink."""

    dir = fields.String(load_default="/var/lib/ddc/spool")
    max_bytes = Size(load_default=8 * 1024**3, validate=validate.Range(min=4096))
    when_full = fields.String(
        load_default="drop_newest", validate=validate.OneOf(["drop_newest", "drop_oldest"])
    )
    fsync_interval = Duration(load_default=1.0)

    @validates_schema
    def _interval(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("fsync_interval", 0) < 0:
            raise ValidationError("must be 0 (fsync every chunk) or more seconds", "fsync_interval")


class EgressSchema(StrictSchema):
    name = fields.String(load_default="ddc")
    http_listen = HostPort(load_default=None, allow_zero_port=True)
    log_level = log_level()
    transport = fields.Nested(EgressTransportSchema, required=True)
    sink = TypedTable(SINK_SCHEMAS, required=True)
    spool = fields.Nested(EgressSpoolSchema, load_default=lambda: EgressSpoolSchema().load({}))


ROLE_SCHEMAS: dict[str, type[Schema]] = {"ingress": IngressSchema, "egress": EgressSchema}

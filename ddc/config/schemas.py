"""marshmallow schemas of the ingress and egress configs (docs/configuration.md).

Every default lives here; unknown keys are rejected.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from ddc.config.base import (
    LINK_NAME,
    LINK_NAME_PROBLEM,
    LOG_LEVELS,
    StrictSchema,
    log_level,
    require_positive,
)
from ddc.config.fields import Duration, FilePath, HostPort, HostPortList, Rate, Size, TypedTable
from ddc.protocol.fec import MAX_SHARES as FEC_MAX_SHARES
from ddc.protocol.fec import MAX_STRIDE as FEC_MAX_STRIDE
from ddc.protocol.fec import PARITY_OVERHEAD
from ddc.protocol.wire import HEADER_SIZE, MAX_DATAGRAM

__all__ = ["LOG_LEVELS", "ROLE_SCHEMAS", "StrictSchema"]

MIN_PACKET_SIZE = HEADER_SIZE + 55  # 64 bytes: the smallest datagram the fragmenter accepts
SOCKET_BUFFER_MAX = 2**31 - 1  # setsockopt(SO_RCVBUF/SO_SNDBUF) takes a C int
MAX_DELAY_MS = 60_000.0  # send_delay_ms, linger_ms
MAX_COUNT = 10**9  # records or connections a queue or a table may hold
PEERS = ("ddc", "reference")  # peer: what runs on the other side of the diode
KAFKA_CLIENTS = ("kafka-python", "librdkafka")  # [ingress.source] / [egress.sink] client


# --- ingress -----------------------------------------------------------------------------


class UdpSourceSchema(StrictSchema):
    type = fields.String(required=True)
    listen = HostPort(required=True)
    receive_buffer = Size(load_default=32 * 1024**2, maximum=SOCKET_BUFFER_MAX)


class TcpSourceSchema(StrictSchema):
    type = fields.String(required=True)
    listen = HostPort(required=True)
    max_record_size = Size(load_default=64 * 1024**2, positive=True)
    max_pending_bytes = Size(load_default=256 * 1024**2, positive=True)
    max_connections = fields.Integer(load_default=1024, validate=validate.Range(min=1, max=65536))

    @validates_schema
    def _room_for_a_record(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["max_pending_bytes"] < data["max_record_size"]:
            raise ValidationError(
                "must be at least max_record_size (or no record that large could arrive)",
                "max_pending_bytes",
            )


class KafkaSourceSchema(StrictSchema):
    type = fields.String(required=True)
    bootstrap_servers = HostPortList(required=True)
    topics = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    group_id = fields.String(required=True)
    commit_interval = Duration(load_default=1.0, positive=True)
    poll_max_records = fields.Integer(
        load_default=2000, validate=validate.Range(min=1, max=1_000_000)
    )
    options = fields.Dict(keys=fields.String(), load_default=dict)
    client = fields.String(load_default="kafka-python", validate=validate.OneOf(KAFKA_CLIENTS))


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
    max_bytes = Size(required=True, positive=True)


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
    rate = Rate(load_default=None, positive=True)
    send_delay_ms = fields.Float(
        load_default=None, validate=validate.Range(min=0, max=MAX_DELAY_MS)
    )
    send_buffer = Size(load_default=4 * 1024**2, maximum=SOCKET_BUFFER_MAX)
    heartbeat_interval = Duration(load_default=1.0, positive=True)
    startup_burst = fields.Integer(load_default=200, validate=validate.Range(min=1, max=100000))
    shutdown_burst = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100000))
    envelope = fields.String(load_default=None, validate=validate.OneOf(["raw", "records"]))
    batch_max_bytes = Size(load_default=60 * 1024, positive=True)
    linger_ms = fields.Float(load_default=5.0, validate=validate.Range(min=0, max=MAX_DELAY_MS))
    queue_size = fields.Integer(load_default=10000, validate=validate.Range(min=1, max=MAX_COUNT))
    queue_bytes = Size(load_default=64 * 1024**2, positive=True)
    queue_policy = fields.String(load_default="block", validate=validate.OneOf(["block", "drop"]))
    # forward error correction (wire v2, docs/wire-protocol.md): K data + M parity per group
    fec_data = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=FEC_MAX_SHARES - 1)
    )
    fec_parity = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=FEC_MAX_SHARES - 1)
    )
    fec_linger_ms = fields.Float(
        load_default=5.0, validate=validate.Range(min=0, max=50)
    )  # < the egress hold (100 ms)
    fec_interleave = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=FEC_MAX_STRIDE)
    )
    # "reference": the other side is the Rust DDC (docs/wire-protocol.md): 65507-byte packets, at
    # most REFERENCE_MAX_PACKETS per chunk, no Shutdown, no FEC, no authentication
    peer = fields.String(load_default="ddc", validate=validate.OneOf(PEERS))
    auth_keys = FilePath(load_default=None)  # packet authentication (docs/security.md)

    @validates_schema
    def _one_pacing(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("rate") is not None and data.get("send_delay_ms") is not None:
            raise ValidationError("set rate or send_delay_ms, not both", "send_delay_ms")
        require_positive(data, "heartbeat_interval")

    @validates_schema
    def _fec(self, data: dict[str, Any], **kwargs: Any) -> None:
        k, m = data.get("fec_data", 0), data.get("fec_parity", 0)
        if m and not k:
            raise ValidationError("needs fec_data > 0 (the data packets per group)", "fec_parity")
        if k and k + m > FEC_MAX_SHARES:
            raise ValidationError(
                f"fec_data + fec_parity must be <= {FEC_MAX_SHARES}, got {k + m}", "fec_parity"
            )
        if (
            k
            and m
            and data.get("max_packet_size", MAX_DATAGRAM) < MIN_PACKET_SIZE + PARITY_OVERHEAD
        ):
            raise ValidationError(
                f"must be >= {MIN_PACKET_SIZE + PARITY_OVERHEAD} with FEC on "
                f"(parity adds {PARITY_OVERHEAD} bytes)",
                "max_packet_size",
            )

    @validates_schema
    def _reference_peer(self, data: dict[str, Any], **kwargs: Any) -> None:
        """The Rust DDC's receiver assumes 65,498-byte fragments and knows no FEC or trailer."""
        if data.get("peer") != "reference":
            return
        if data.get("max_packet_size", MAX_DATAGRAM) != MAX_DATAGRAM:
            raise ValidationError(
                f'must be {MAX_DATAGRAM} with peer = "reference" (its receiver assumes '
                f"{MAX_DATAGRAM - HEADER_SIZE}-byte fragments)",
                "max_packet_size",
            )
        for key in ("fec_data", "fec_parity", "auth_keys"):
            if data.get(key):
                raise ValidationError(
                    'must be unset with peer = "reference" (the Rust DDC has no FEC and no '
                    "authentication)",
                    key,
                )


class IngressSchema(StrictSchema):
    name = fields.String(load_default="ddc")
    http_listen = HostPort(load_default=None, allow_zero_port=True)
    log_level = log_level()
    source = TypedTable(SOURCE_SCHEMAS, required=True)
    filters = fields.List(TypedTable(FILTER_SCHEMAS), load_default=list)
    transport = fields.Nested(IngressTransportSchema, required=True)
    admin_token_file = FilePath(load_default=None)  # unset: /admin/* answers 403

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
    # unset: 5 s, or 0 (no alarm) with peer = "reference", whose ingress sends no HeartBeats
    heartbeat_timeout = Duration(load_default=None)
    receive_buffer = Size(load_default=32 * 1024**2, maximum=SOCKET_BUFFER_MAX)
    max_chunk_size = Size(load_default=64 * 1024**2, positive=True)
    # unset (or "auto", kept for old configs): follows the sink type (RECORDS_SINKS: records;
    # otherwise raw). Never guessed per chunk: a raw record is delivered as the same bytes.
    envelope = fields.String(load_default=None, validate=validate.OneOf(["auto", "raw", "records"]))
    queue_bytes = Size(load_default=256 * 1024**2, positive=True)
    peer = fields.String(load_default="ddc", validate=validate.OneOf(PEERS))
    auth_keys = FilePath(load_default=None)  # packet authentication (docs/security.md)
    max_clock_skew = Duration(load_default=600.0)  # 0 = off

    @validates_schema
    def _sender(self, data: dict[str, Any], **kwargs: Any) -> None:
        sender = data.get("expected_sender")
        if sender is not None:
            from ddc.units import parse_hostport

            try:
                parse_hostport(sender, allow_zero_port=True)
            except ValueError as exc:
                raise ValidationError(str(exc), "expected_sender") from exc
        if data.get("peer") != "reference" and data.get("heartbeat_timeout") is not None:
            require_positive(data, "heartbeat_timeout")

    @validates_schema
    def _reference_peer(self, data: dict[str, Any], **kwargs: Any) -> None:
        """The Rust DDC's ingress sends no HeartBeats, raw chunks only, and signs nothing."""
        if data.get("peer") != "reference":
            return
        if data.get("heartbeat_timeout"):
            raise ValidationError(
                'must be 0 with peer = "reference" (its ingress sends no HeartBeats)',
                "heartbeat_timeout",
            )
        if data.get("envelope") == "records":
            raise ValidationError(
                'must be raw with peer = "reference" (it sends raw chunks)', "envelope"
            )
        if data.get("auth_keys"):
            raise ValidationError(
                'must be unset with peer = "reference" (the Rust DDC signs nothing)', "auth_keys"
            )

    @post_load
    def _default_timeout(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data["heartbeat_timeout"] is None:
            data["heartbeat_timeout"] = 0.0 if data["peer"] == "reference" else 5.0
        return data


class UdpSinkSchema(StrictSchema):
    type = fields.String(required=True)
    target = HostPort(required=True)
    send_buffer = Size(load_default=4 * 1024**2, maximum=SOCKET_BUFFER_MAX)


class TcpSinkSchema(StrictSchema):
    type = fields.String(required=True)
    target = HostPort(required=True)
    reconnect_interval = Duration(load_default=1.0, positive=True)
    buffer_max_bytes = Size(load_default=256 * 1024**2, positive=True)


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
    buffer_max_records = fields.Integer(
        load_default=100000, validate=validate.Range(min=1, max=MAX_COUNT)
    )
    options = fields.Dict(keys=fields.String(), load_default=dict)
    compression_type = fields.String(
        load_default="none", validate=validate.OneOf(["none", "gzip", "snappy", "lz4", "zstd"])
    )
    client = fields.String(load_default="kafka-python", validate=validate.OneOf(KAFKA_CLIENTS))


class DedupSinkSchema(StrictSchema):
    type = fields.String(required=True)
    url = fields.Url(required=True, require_tld=False)
    link = fields.String(
        required=True, validate=validate.Regexp(LINK_NAME, error=LINK_NAME_PROBLEM)
    )
    batch_max_records = fields.Integer(
        load_default=2000, validate=validate.Range(min=1, max=1_000_000)
    )
    timeout = Duration(load_default=10.0, positive=True)
    retry_interval = Duration(load_default=1.0, positive=True)
    buffer_max_records = fields.Integer(
        load_default=100000, validate=validate.Range(min=1, max=MAX_COUNT)
    )
    token_file = FilePath(load_default=None)  # the dedup API's token ([dedup] api_token_file)
    max_in_flight = fields.Integer(load_default=4, validate=validate.Range(min=1, max=64))


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


RECORDS_SINKS = ("kafka", "dedup")  # sinks whose default envelope is records


class EgressSchema(StrictSchema):
    name = fields.String(load_default="ddc")
    http_listen = HostPort(load_default=None, allow_zero_port=True)
    log_level = log_level()
    transport = fields.Nested(EgressTransportSchema, required=True)
    sink = TypedTable(SINK_SCHEMAS, required=True)
    spool = fields.Nested(EgressSpoolSchema, load_default=lambda: EgressSpoolSchema().load({}))

    @post_load
    def _default_envelope(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data["transport"]["envelope"] in (None, "auto"):
            records = data["sink"]["type"] in RECORDS_SINKS
            records = records and data["transport"]["peer"] != "reference"
            data["transport"]["envelope"] = "records" if records else "raw"
        return data


ROLE_SCHEMAS: dict[str, type[Schema]] = {"ingress": IngressSchema, "egress": EgressSchema}

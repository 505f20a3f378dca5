"""Kafka message -> Record, and the `ddc-src` header that names where a record came from.

This module does not import kafka-python: the egress dedup sink and the dedup service use the
header without a Kafka client.
"""

from __future__ import annotations

from typing import Any

from ddc.protocol.record import Record

# "topic/partition/offset" of the original Kafka record (docs/dedup.md: id_from = "source").
SRC_HEADER = "ddc-src"


def to_record(message: Any) -> Record:
    """A kafka-python ConsumerRecord as a Record; a null value (a tombstone) stays None."""
    return Record(
        value=message.value,
        key=message.key,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp=message.timestamp if message.timestamp is not None else -1,
        headers=list(message.headers or ()),
    )


def source_id(record: Record) -> str | None:
    """The `ddc-src` value "topic/partition/offset" for a record read from Kafka, else None."""
    if record.topic is None or record.partition < 0 or record.offset < 0:
        return None
    return f"{record.topic}/{record.partition}/{record.offset}"

"""Reading exact offset ranges back from Kafka, outside any consumer group (`ddc replay`).

The consumer made here has no group_id: it assigns partitions itself and seeks, and it can
neither join a group nor commit, so the source's consumer group and its committed offsets are
never touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from ddc.kafka.options import consumer_options
from ddc.kafka.records import to_record
from ddc.protocol.record import Record

RESERVED = {
    "bootstrap_servers": "bootstrap_servers",
    "group_id": "replay (reads outside the consumer group)",
    "enable_auto_commit": "replay (never commits)",
}
POLL_TIMEOUT_MS = 500
POLL_MAX_RECORDS = 500


def range_consumer(bootstrap_servers: list[str], options: Mapping[str, Any] | None) -> Any:
    """A KafkaConsumer outside any group, from the ingress's `[ingress.source.options]`."""
    return KafkaConsumer(
        **consumer_options(
            options,
            key="ingress.source.options",
            reserved=RESERVED,
            defaults={},
            settings={
                "bootstrap_servers": list(bootstrap_servers),
                "group_id": None,
                "enable_auto_commit": False,
            },
        )
    )


@dataclass(slots=True)
class OffsetRange:
    """Offsets first..last (inclusive) of one partition, and what the log holds of them."""

    topic: str
    partition: int
    first: int
    last: int
    log_start: int = 0  # the partition's first offset still in the log
    log_end: int = 0  # the offset the next record written will get

    @property
    def gone(self) -> tuple[int, int] | None:
        """The part of the range no longer in the log (retention, deletion), or None."""
        if self.first >= self.log_start:
            return None
        return self.first, min(self.last, self.log_start - 1)

    @property
    def beyond(self) -> tuple[int, int] | None:
        """The part of the range past the log's end (a truncated log), or None."""
        if self.last < self.log_end:
            return None
        return max(self.first, self.log_end), self.last

    @property
    def readable(self) -> tuple[int, int] | None:
        low, high = max(self.first, self.log_start), min(self.last, self.log_end - 1)
        return (low, high) if low <= high else None


def open_range(consumer: Any, wanted: OffsetRange) -> OffsetRange:
    """Assign the partition and learn its log start and end (fills `wanted` in and returns it)."""
    tp = TopicPartition(wanted.topic, wanted.partition)
    consumer.assign([tp])
    wanted.log_start = consumer.beginning_offsets([tp])[tp]
    wanted.log_end = consumer.end_offsets([tp])[tp]
    return wanted


def read_range(consumer: Any, opened: OffsetRange, timeout: float) -> Iterator[list[Record]]:
    """The records of the readable part of an opened range, in offset order, a poll at a time.

    Offsets that hold no record (compaction, transaction markers) are skipped by Kafka itself.
    Stops at the range's end, or after `timeout` seconds without progress (TimeoutError).
    """
    readable = opened.readable
    if readable is None:
        return
    low, high = readable
    tp = TopicPartition(opened.topic, opened.partition)
    consumer.seek(tp, low)
    stalled_since = time.monotonic()
    position = low
    while position <= high:
        batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=POLL_MAX_RECORDS)
        records = [to_record(m) for m in batch.get(tp, ()) if low <= m.offset <= high]
        moved = consumer.position(tp)
        if records or moved != position:
            position = moved
            stalled_since = time.monotonic()
            if records:
                yield records
        elif time.monotonic() - stalled_since > timeout:
            raise TimeoutError(
                f"{opened.topic}/{opened.partition}: no progress for {timeout:g}s at offset "
                f"{consumer.position(tp)} (reading {low}..{high})"
            )

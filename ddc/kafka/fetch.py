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

from ddc.kafka.construct import create
from ddc.kafka.options import ClientOptions
from ddc.kafka.ranges import PartitionRange
from ddc.kafka.records import to_record
from ddc.protocol.record import Record

RESERVED = {
    "group_id": "replay (reads outside the consumer group)",
    "enable_auto_commit": "replay (never commits)",
}
OPTIONS = ClientOptions(KafkaConsumer, "ingress.source.options", RESERVED)
POLL_TIMEOUT_MS = 500
POLL_MAX_RECORDS = 500


def range_consumer(bootstrap_servers: list[str], options: Mapping[str, Any] | None) -> Any:
    """A KafkaConsumer outside any group, from the ingress's `[ingress.source.options]`.

    Their auto_offset_reset is left out: a seek past the log's end resets to the end
    ("latest"), never to the start of the partition.
    """
    options = {k: v for k, v in (options or {}).items() if k != "auto_offset_reset"}
    return create(
        KafkaConsumer,
        auto_offset_reset="latest",
        **OPTIONS.build(
            options,
            {
                "bootstrap_servers": list(bootstrap_servers),
                "group_id": None,
                "enable_auto_commit": False,
            },
        ),
    )


@dataclass(slots=True)
class OffsetRange(PartitionRange):
    """A partition's range and what the log holds of it."""

    log_start: int = 0  # the partition's first offset still in the log
    past_end: tuple[int, int] | None = None  # set by read_range: offsets past the log's end

    @property
    def gone(self) -> tuple[int, int] | None:
        """The part of the range no longer in the log (retention, deletion), or None."""
        if self.first_offset >= self.log_start:
            return None
        return self.first_offset, min(self.last_offset, self.log_start - 1)

    @property
    def readable(self) -> tuple[int, int] | None:
        low = max(self.first_offset, self.log_start)
        return (low, self.last_offset) if low <= self.last_offset else None


def open_range(consumer: Any, wanted: OffsetRange) -> OffsetRange:
    """Assign the partition and learn its log start (fills `wanted` in and returns it)."""
    tp = TopicPartition(wanted.topic, wanted.partition)
    consumer.assign([tp])
    wanted.log_start = consumer.beginning_offsets([tp])[tp]
    return wanted


def read_range(consumer: Any, opened: OffsetRange, timeout: float) -> Iterator[list[Record]]:
    """The records of the readable part of an opened range, in offset order, a poll at a time.

    Offsets that hold no record (compaction, transaction markers) are skipped by Kafka itself.
    Stops at the range's end; at the log's end (two empty polls at or past the end offset the
    broker reports: `opened.past_end` names the rest, a truncated log); or after `timeout`
    seconds without progress (TimeoutError). The end offset is not trusted before reading: a
    broker may report it late.
    """
    readable = opened.readable
    if readable is None:
        return
    low, high = readable
    tp = TopicPartition(opened.topic, opened.partition)
    consumer.seek(tp, low)
    stalled_since = time.monotonic()
    position = low
    empty = 0
    while position <= high:
        batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=POLL_MAX_RECORDS)
        records = [to_record(m) for m in batch.get(tp, ()) if low <= m.offset <= high]
        moved = consumer.position(tp)
        if records or moved != position:
            position = moved
            stalled_since = time.monotonic()
            empty = 0
            if records:
                yield records
            continue
        empty += 1
        if empty >= 2 and position >= consumer.end_offsets([tp])[tp]:
            opened.past_end = (max(position, low), high)
            return
        if time.monotonic() - stalled_since > timeout:
            raise TimeoutError(
                f"{opened.topic}/{opened.partition}: no progress for {timeout:g}s at offset "
                f"{position} (reading {low}..{high})"
            )

"""The stage between source and transport: filters, then the chunk envelope (raw or batches)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ddc.ingress.filters import FilterChain
from ddc.ingress.runs import SentRuns
from ddc.protocol.envelope import BATCH_OVERHEAD, MARK, MARK_COUNT, encode_records, record_size
from ddc.protocol.record import Record
from ddc.queues import ITEM_OVERHEAD, STOP, CostQueue

log = logging.getLogger(__name__)

Ack = Callable[[], None]
TAIL_MARKS_AFTER = 1.0  # seconds of quiet after which the partitions' tail marks are sent
MARK_COST = MARK.size + MARK_COUNT.size  # bytes a partition's mark adds to a batch (+ topic)


def value_of(item: Record | bytes) -> bytes:
    """The bytes a record carries (a tombstone's null value counts as empty)."""
    return item if isinstance(item, bytes | bytearray) else item.value or b""


class Framer:
    """Turns submissions (records, ack) from `inbox` into (chunk, acks, record count) on `outbox`.

    A chunk of None carries only acks (everything in it was filtered out), so acks still run in
    submission order, after everything before them was sent. Batches holding records read from
    Kafka are v2, marked per partition by `runs` (ddc/ingress/runs.py); after TAIL_MARKS_AFTER of
    quiet, and on STOP, a record-less batch of tail marks follows.
    """

    def __init__(
        self,
        envelope: str,
        batch_max_bytes: int,
        linger_ms: float,
        filters: FilterChain,
        inbox: CostQueue,
        outbox: CostQueue,
    ) -> None:
        self.envelope = envelope
        self.batch_max_bytes = batch_max_bytes
        self.linger = linger_ms / 1000.0
        self.filters = filters
        self.inbox = inbox
        self.outbox = outbox
        self._batch: list[Record | bytes] = []
        self._batch_bytes = BATCH_OVERHEAD
        self._batch_acks: list[Ack] = []
        self._batch_started = 0.0
        self.runs = SentRuns()
        self._last_flush = 0.0
        # the partition of the batch's last record: a record of another one adds a mark's bytes
        # (counted again when partitions interleave: an over-estimate, so a batch still fits)
        self._last_topic: str | None = None
        self._last_partition = -1

    def _emit(self, chunk: Any, acks: list[Ack], records: int) -> None:
        # the per-item overhead keeps empty records from queueing without bound
        self.outbox.put(
            (chunk, acks, records), (len(chunk) if chunk is not None else 0) + ITEM_OVERHEAD
        )

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        batch = self._batch
        if batch:
            start = 0
            segments = self.runs.mark(batch)
            for end, marks in segments:
                if end == start:
                    continue
                chunk = encode_records(
                    batch[start:end] if start or end < len(batch) else batch, marks or None
                )
                acks = self._batch_acks if end == len(batch) else []
                self._emit(chunk, acks, end - start)
                start = end
        elif self._batch_acks:
            self._emit(None, self._batch_acks, 0)
        self._batch = []
        self._batch_acks = []
        self._batch_bytes = BATCH_OVERHEAD
        self._last_topic = None

    def _send_tail_marks(self) -> None:
        while self.runs.dirty:
            self._emit(encode_records([], self.runs.tail_marks(self.batch_max_bytes)), [], 0)

    def run(self) -> None:
        while True:
            timeout = None
            if self._batch or self._batch_acks:
                timeout = max(0.0, self._batch_started + self.linger - time.monotonic())
            elif self.runs.dirty:
                timeout = max(0.0, self._last_flush + TAIL_MARKS_AFTER - time.monotonic())
            try:
                item = self.inbox.get(timeout)
            except TimeoutError:
                if self._batch or self._batch_acks:
                    self._flush()
                else:
                    self._send_tail_marks()
                continue
            if item is STOP:
                self._flush()
                self._send_tail_marks()
                self.outbox.put(STOP, 1)
                return
            items, ack = item
            if self.filters:
                items = self.filters.apply(items)
            if self.envelope == "raw":
                self._frame_raw(items, ack)
            else:
                self._frame_batch(items, ack)

    def _frame_raw(self, items: list[Record | bytes], ack: Ack | None) -> None:
        last = len(items) - 1
        for index, item in enumerate(items):
            self._emit(value_of(item), [ack] if ack is not None and index == last else [], 1)
        if not items and ack is not None:
            self._emit(None, [ack], 0)

    def _frame_batch(self, items: list[Record | bytes], ack: Ack | None) -> None:
        limit = self.batch_max_bytes
        for item in items:
            size = record_size(item)
            mark = 0
            if isinstance(item, Record) and item.topic is not None:
                if item.topic != self._last_topic or item.partition != self._last_partition:
                    mark = MARK_COST + 4 * len(item.topic)
                    self._last_topic, self._last_partition = item.topic, item.partition
            if self._batch and self._batch_bytes + size + mark > limit:
                self._flush()
                if isinstance(item, Record) and item.topic is not None:  # the new batch's mark
                    mark = MARK_COST + 4 * len(item.topic)
                    self._last_topic, self._last_partition = item.topic, item.partition
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.append(item)
            self._batch_bytes += size + mark
        if ack is not None:
            if not self._batch and not self._batch_acks:
                self._batch_started = time.monotonic()
            self._batch_acks.append(ack)
        if self._batch_bytes >= limit:
            self._flush()

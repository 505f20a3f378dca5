"""The egress's deliver stage: reassembled chunks → records (per the envelope setting) → the sink."""

from __future__ import annotations

import logging
from typing import cast

import gevent

from ddc.egress.gaps import GapTracker
from ddc.egress.sinks.base import Sink
from ddc.errors import EnvelopeError
from ddc.metrics import EgressMetrics
from ddc.protocol.envelope import decode_batch
from ddc.protocol.record import Record
from ddc.queues import ITEM_OVERHEAD, STOP, CostQueue

log = logging.getLogger(__name__)

# chunks delivered between two yields: a backlog must not starve the receiver
YIELD_EVERY = 16

Chunk = bytes | bytearray | memoryview


class Deliverer:
    """Takes chunks from a queue bounded by `queue_bytes`, hands their records to the sink.

    The receiver puts chunks in with enqueue() (blocking while the queue is full); run() is the
    greenlet body and returns when it takes STOP. A sink counts its own failures; an exception out
    of send() is still caught here, counted as "sink_error" and logged, and delivery goes on.
    """

    def __init__(self, envelope: str, queue_bytes: int, sink: Sink, metrics: EgressMetrics) -> None:
        self.envelope = envelope
        self.sink = sink
        self.metrics = metrics
        self.chunks = CostQueue(queue_bytes)
        self.records_delivered = 0
        self.gaps: GapTracker | None = None  # told every decoded batch's marks, in order

    def enqueue(self, chunk: Chunk) -> None:
        self.chunks.put(chunk, len(chunk) + ITEM_OVERHEAD)

    def records_of(self, chunk: Chunk) -> list[Record] | None:
        """The records a chunk carries; None when its envelope is broken (counted, logged)."""
        # the configured envelope, never a guess per chunk: with "raw" a chunk that happens
        # to parse as a records batch is still delivered as the same bytes
        if self.envelope == "records":
            try:
                batch = decode_batch(chunk)
                if self.gaps is not None and batch.marks:
                    self.gaps.batch(batch.marks, batch.records)
                return batch.records
            except EnvelopeError as exc:
                self.metrics.envelope_errors.inc()
                self.metrics.records_dropped.labels(reason="envelope").inc()
                log.error("chunk of %d bytes dropped: %s", len(chunk), exc)
                return None
        if not isinstance(chunk, bytes) and not self.sink.accepts_views:
            chunk = bytes(chunk)
        # a sink with accepts_views takes a view as a raw record's value (ddc/egress/sinks/base.py)
        return [Record(cast(bytes, chunk))]

    def run(self) -> None:
        delivered = 0
        while True:
            chunk = self.chunks.get()
            if chunk is STOP:
                return
            records = self.records_of(chunk)
            if records:
                self._send(records)
            delivered += 1
            if delivered % YIELD_EVERY == 0:
                gevent.sleep(0)

    def _send(self, records: list[Record]) -> None:
        try:
            self.sink.send(records)
            self.records_delivered += len(records)
        except Exception:
            self.metrics.records_dropped.labels(reason="sink_error").inc(len(records))
            self.metrics.sink_errors.inc()
            log.exception("sink failed on %d records; dropped", len(records))

    def count_undelivered(self) -> int:
        """Empties the queue after a drain timeout: counts and logs its records as dropped."""
        left = 0
        for chunk in self.chunks.drain():
            records = self.records_of(chunk)
            left += len(records) if records else 0
        if left:
            self.metrics.records_dropped.labels(reason="shutdown").inc(left)
            log.error(
                "drain timed out: %d records received but not delivered (counted as dropped)", left
            )
        return left

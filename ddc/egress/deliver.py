"""The egress's deliver stage: spool → records (per the envelope setting) → the sink → ack.

The receiver appends every complete chunk to the spool (enqueue(); never blocks, the spool
drops and counts when full). run() reads the spool in order, decodes each chunk and hands its
records to the sink with a done callback; the in-flight window (spool/window.py) turns the
sink's confirmations, in whatever order they come, into the spool's acknowledged position.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import cast

import gevent
from gevent.event import Event

from ddc.cooperate import HubTurn
from ddc.egress.gaps import GapTracker
from ddc.egress.sinks.base import Sink
from ddc.egress.spool import Spool
from ddc.egress.spool.base import Payload
from ddc.egress.spool.window import Slot, Window
from ddc.errors import EnvelopeError
from ddc.metrics import EgressMetrics
from ddc.protocol.envelope import decode_batch
from ddc.protocol.record import Record

log = logging.getLogger(__name__)

# chunks delivered between two yields: a backlog must not starve the receiver
YIELD_EVERY = 16
# bytes of spooled chunks handed to the sink and not yet confirmed
WINDOW_BYTES = 8 * 1024 * 1024
IDLE_WAIT = 0.5  # seconds between looks at the window while nothing wakes the loop
# spool drop reasons → records_dropped reasons
DROP_REASONS = {
    "drop_newest": "spool_full",
    "drop_oldest": "spool_full",
    "too_large": "spool_too_large",
    "write_error": "spool_write_error",
}

Chunk = bytes | bytearray | memoryview


class Deliverer:
    """Drains `spool` into `sink`; the spool advances only on the sink's confirmation.

    A sink counts its own drops; an exception out of send() is still caught here, counted as
    "sink_error" and logged, the records settled (dropped), and delivery goes on.
    """

    def __init__(self, envelope: str, spool: Spool, sink: Sink, metrics: EgressMetrics) -> None:
        self.envelope = envelope
        self.spool = spool
        self.sink = sink
        self.metrics = metrics
        self.window = Window(WINDOW_BYTES, sink.window_records)
        self.records_delivered = 0
        self.gaps: GapTracker | None = None  # told every decoded batch's marks, in order
        self.stopping = False
        self._wake = Event()
        self._hub_turn = HubTurn()
        spool.on_append = self._wake.set
        spool.on_drop = self._spool_dropped

    def enqueue(self, chunk: Chunk) -> None:
        """The receiver's callback: a complete chunk into the spool (dropped and counted there
        when it does not fit)."""
        self.spool.append(chunk)

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

    def count_records(self, chunk: Chunk) -> int:
        """How many records a chunk carries, without counting a broken envelope (1 then)."""
        if self.envelope != "records":
            return 1
        try:
            return len(decode_batch(chunk).records)
        except EnvelopeError:
            return 1

    def _spool_dropped(self, payload: Payload, reason: str) -> None:
        records = self.count_records(payload)
        self.metrics.records_dropped.labels(reason=DROP_REASONS.get(reason, reason)).inc(records)

    # --- the deliver greenlet -------------------------------------------------------------------

    def run(self) -> None:
        """Until stop(): acknowledge what the sink confirmed, send what the window has room for."""
        while not self.stopping:
            self._wake.clear()
            if not self.step():
                self._wake.wait(IDLE_WAIT)

    def step(self) -> bool:
        """One turn; True when it sent something (there may be more)."""
        spool, window = self.spool, self.window
        spool.flush()
        self.acknowledge()
        sent = 0
        hub_turn = self._hub_turn
        while window.room() and not self.stopping:
            item = spool.read()
            if item is None:
                break
            records = self.records_of(item.payload)
            slot = window.add(item.seq, item.size, len(records) if records else 0, item.time_ms)
            if records:
                self._send(records, slot)
            else:
                window.settle(slot)
            sent += 1
            if sent % YIELD_EVERY == 0:
                hub_turn()
                self.acknowledge()
            elif hub_turn.due():  # a chunk may be 300 sends: IO waits no longer than 2 ms
                hub_turn()
        return sent > 0

    def acknowledge(self) -> None:
        released = self.window.advance()
        if released is not None:
            self.spool.ack(released)

    def _send(self, records: list[Record], slot: Slot) -> None:
        try:
            self.sink.send(records, functools.partial(self._settled, slot))
            self.records_delivered += len(records)
        except Exception:
            self.metrics.records_dropped.labels(reason="sink_error").inc(len(records))
            self.metrics.sink_errors.inc()
            log.exception("sink failed on %d records; dropped", len(records))
            self.window.settle(slot)

    def _settled(self, slot: Slot) -> None:
        self.window.settle(slot)
        self._wake.set()

    # --- stopping and health --------------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything the spool holds was confirmed; False when `timeout` passed
        (a disk spool keeps what is left for the next start, a memory spool loses it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.acknowledge()
            if not self.window and not self.spool.unread:
                return True
            self._wake.set()
            gevent.sleep(0.05)
        return False

    def finish(self) -> int:
        """After the deliver greenlet and the sink stopped: acknowledge the last confirmations,
        count what a memory spool loses; the number of chunks left unacknowledged."""
        self.stopping = True
        self.acknowledge()
        left = self.spool.pending
        if left and self.spool.durable:
            log.info(
                "stopped with %d chunk(s) in the spool (%d in flight to the sink): delivered "
                "after the restart",
                left,
                len(self.window),
            )
        elif left:
            lost = self.window.unsettled_records()
            while (item := self.spool.read()) is not None:
                lost += self.count_records(item.payload)
            self.metrics.records_dropped.labels(reason="shutdown").inc(lost)
            log.error(
                "drain timed out: %d records received but not delivered (in-memory spool: "
                "counted as dropped)",
                lost,
            )
        self.spool.close()
        return left

    def oldest_age(self) -> float:
        """Seconds the oldest unacknowledged chunk has waited (0 when none)."""
        oldest = self.window.oldest_time_ms()
        if oldest is None:
            oldest = self.spool.next_time_ms()
        return 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)

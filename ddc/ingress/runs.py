"""The ingress's account of what it sent per Kafka partition: the marks of records batch v2.

A pure state machine fed by the framer, record by record, in the order they are framed; the
egress (ddc/egress/gaps.py) compares the marks with what it received to name exactly the records
it never got (docs/wire-protocol.md, "records (batch v2)").

Rules:
* A *run* is a strictly increasing sequence of offsets of one partition framed for sending by
  this process. The first record of a partition this process frames starts a run, and so does
  any record whose offset is not above the run's last one (the partition was read again after a
  rebalance or a restart elsewhere): a new random 32-bit run id, first_offset = that offset,
  nothing sent before it.
* A partition that leaves this ingress and comes back further on (another pair carried it
  meanwhile) stays in its run: prev_offset names the last record THIS process sent, so the
  egress claims nothing for the records the other pair carried, and nothing for offsets that
  were never records (compaction, transaction markers, deleted records) or were filtered out
  (filters run before the framer: a filtered record is never "sent").
* Every batch holding records of a partition carries one mark for it: the run, its first
  offset, prev_offset (the run's last record sent before this batch, -1 for none), sent_before
  (the run's records sent before this batch), and the batch's own count and last offset.
* A chunk never holds two runs of one partition, nor more than MAX_MARKS partitions: mark()
  cuts the batch there (the framer sends the pieces in order, the batch's acks with the last).
* Records without a Kafka origin (no topic, partition or offset) are not marked.
* tail_marks(): marks with count 0 for the partitions that sent records since the last call, so
  that the egress learns of a lost last batch without waiting for the next record (the framer
  sends them after a quiet second and on a graceful stop).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ddc.protocol.envelope import BATCH_OVERHEAD, MARK, MARK_COUNT, MAX_MARKS, Mark
from ddc.protocol.record import Record

Key = tuple[str, int]


@dataclass(slots=True)
class _Run:
    run: int
    first: int
    last: int = -1  # the last offset framed in this run
    sent: int = 0  # records framed in this run


@dataclass(slots=True)
class _Pending:
    """The current batch's records of one partition."""

    run: _Run
    prev: int
    sent_before: int
    count: int = 0
    last: int = -1


class SentRuns:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.SystemRandom()
        self.runs: dict[Key, _Run] = {}
        self.dirty: set[Key] = set()  # partitions with records framed since the last tail marks
        self.runs_started = 0

    def mark(self, batch: Sequence[Record | bytes]) -> list[tuple[int, list[Mark]]]:
        """The batch about to be sent, cut where it must be (a second run of a partition,
        MAX_MARKS partitions): [(end index, marks of batch[previous end:end])], in order.

        One pass over the records; consecutive records of one partition (what a Kafka source
        submits) cost no dictionary lookup.
        """
        segments: list[tuple[int, list[Mark]]] = []
        pending: dict[Key, _Pending] = {}
        current: _Pending | None = None
        topic: str | None = None
        partition = -1
        key: Key = ("", -1)
        for index, item in enumerate(batch):
            if item.__class__ is not Record:
                continue
            record = item
            offset = record.offset
            if record.topic is not topic or record.partition != partition or current is None:
                if record.topic is None or record.partition < 0 or offset < 0:
                    continue
                topic, partition = record.topic, record.partition
                key = (topic, partition)
                current = pending.get(key)
                if current is None:
                    if len(pending) >= MAX_MARKS:
                        segments.append((index, self._close(pending)))
                        pending = {}
                    current = pending[key] = self._open(key, offset)
            elif offset < 0:
                continue
            if offset <= current.last:  # read again: this partition's new run starts a segment
                segments.append((index, self._close(pending)))
                pending = {}
                current = pending[key] = self._open(key, offset)
            current.count += 1
            current.last = offset
        segments.append((len(batch), self._close(pending)))
        return segments

    def _open(self, key: Key, offset: int) -> _Pending:
        run = self.runs.get(key)
        if run is None or offset <= run.last:
            run = self.runs[key] = _Run(self.rng.getrandbits(32), offset)
            self.runs_started += 1
        return _Pending(run, run.last, run.sent)

    def _close(self, pending: dict[Key, _Pending]) -> list[Mark]:
        marks = []
        for key, p in pending.items():
            run = p.run
            run.last = p.last
            run.sent += p.count
            marks.append(
                Mark(key[0], key[1], run.run, run.first, p.prev, p.sent_before, p.count, p.last)
            )
        self.dirty.update(pending)
        return marks

    def tail_marks(self, max_bytes: int = 1 << 30) -> list[Mark]:
        """Count-0 marks of the partitions that sent records since the last call, as many as
        fit in a batch of `max_bytes` (at least one, at most MAX_MARKS; the rest stay due)."""
        marks: list[Mark] = []
        size = BATCH_OVERHEAD + MARK_COUNT.size
        while self.dirty and len(marks) < MAX_MARKS:
            key = next(iter(self.dirty))
            cost = MARK.size + 4 * len(key[0])
            if marks and size + cost > max_bytes:
                break
            self.dirty.discard(key)
            size += cost
            run = self.runs[key]
            marks.append(Mark(key[0], key[1], run.run, run.first, run.last, run.sent, 0, -1))
        return marks

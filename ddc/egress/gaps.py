"""The egress's lost-record report (`GET /gaps`, `ddc_egress_records_lost_total`).

A pure state machine, fed every decoded records batch in arrival order (batch()) and every
sequence gap reassembly finds (sequence_lost()). The ingress marks each v2 batch per Kafka
partition (ddc/ingress/runs.py): the run, the run's first offset, the offset of the previous
record it SENT in that run, and how many it had sent before the batch. From those marks:

* Per partition the tracker keeps the run, the last offset received and the run's records sent
  up to the last batch received (`sent`).
* Same run, mark.sent_before > sent: the records between are lost. Range
  [last received + 1, mark.prev_offset], exactly mark.sent_before - sent records. Offsets inside
  it that were never records (compaction, transaction markers, deleted or filtered records) are
  not records the ingress sent: the count says how many records the range holds, and no range is
  ever claimed where the ingress sent nothing (prev_offset == last received: no gap, whatever
  the offsets in between).
* A new run (ingress restart, partition read again): when its first batches never arrived
  (mark.sent_before > 0) the range [mark.first_offset, mark.prev_offset] with
  mark.sent_before records is lost; what the old run had sent after the last batch received
  is unknown unless its tail marks arrived (the ingress sends them after a quiet second and on a
  graceful stop).
* A partition not seen since this egress started: nothing claimed (its earlier batches may have
  been delivered by a previous egress process), unless the tracker has observed a session from
  its start (session_started(): a StartUp arrived while nothing of an earlier session waited
  for delivery). Then every run it meets began after it watched, and a first mark with
  sent_before > 0 means the run's first batches were lost: [first_offset, prev_offset].
* Same run, mark.sent_before < sent: a batch older than one already received; counted as
  `inconsistent`, logged, state unchanged. So is a claim that cannot be true (more records than
  offsets, a range ending before it starts).
* Recovery: a record that arrives later (replayed, or read again after a rebalance) with the
  topic, partition and offset of a record inside an open range counts as recovered, once per
  offset; a range whose every record was recovered is closed (`recovered == records`). Open
  ranges are what `ddc replay` still has to resend.
* Sequence ranges: packets reassembly never got (after FEC repair), as [first_seq, last_seq].
  For raw data that is all the report can say (one chunk per record, chunk boundaries unknown).
* Bounded memory: the newest `max_ranges` ranges of each kind are kept; a range adjacent to the
  previous one of its partition (or sequence) is merged into it; evicted ranges are counted and
  the totals stay exact. At most MAX_PARTITIONS partitions are tracked; marks of further ones
  are counted (`untracked_marks`) and logged, never claimed.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ddc.kafka.ranges import PartitionRange
from ddc.logs import ThrottledLog
from ddc.protocol.envelope import Mark
from ddc.protocol.record import Record
from ddc.protocol.wire import SEQ_MODULO

log = logging.getLogger(__name__)

MAX_RANGES = 10_000
MAX_PARTITIONS = 100_000  # partitions tracked at most (marks come from the network)
LOG_INTERVAL = 5.0


@dataclass(slots=True)
class KafkaGap(PartitionRange):
    records: int
    detected_at: float
    recovered: int = 0
    arrived: set[int] | None = None  # offsets recovered so far while open (not reported)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.range_json(),
            "records": self.records,
            "recovered": self.recovered,
            "detected_at": self.detected_at,
        }


@dataclass(slots=True)
class SeqGap:
    first_seq: int
    last_seq: int
    packets: int
    detected_at: float


@dataclass(slots=True)
class _Seen:
    run: int
    last: int  # the last offset received of this run (-1: none yet)
    sent: int  # the run's records sent up to the last batch received


class _OpenRanges:
    """One partition's ranges not fully recovered, sorted by first offset (bisected per record)."""

    __slots__ = ("firsts", "gaps", "highest")

    def __init__(self) -> None:
        self.firsts: list[int] = []
        self.gaps: list[KafkaGap] = []
        self.highest = -1  # no open range ends above this (never lowered: a cheap first test)

    def add(self, gap: KafkaGap) -> None:
        index = bisect.bisect_right(self.firsts, gap.first_offset)
        self.firsts.insert(index, gap.first_offset)
        self.gaps.insert(index, gap)
        self.highest = max(self.highest, gap.last_offset)

    def find(self, offset: int) -> KafkaGap | None:
        index = bisect.bisect_right(self.firsts, offset) - 1
        while index >= 0:  # ranges of different runs may overlap: look further left
            gap = self.gaps[index]
            if gap.last_offset >= offset:
                return gap
            index -= 1
        return None

    def remove(self, gap: KafkaGap) -> None:
        for index, candidate in enumerate(self.gaps):
            if candidate is gap:
                del self.gaps[index]
                del self.firsts[index]
                return


class GapTracker:
    def __init__(
        self, max_ranges: int = MAX_RANGES, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_ranges = max_ranges
        self.clock = clock
        self.partitions: dict[tuple[str, int], _Seen] = {}
        self.kafka: deque[KafkaGap] = deque()
        self.sequence: deque[SeqGap] = deque()
        self._latest: dict[tuple[str, int], KafkaGap] = {}
        self._open: dict[tuple[str, int], _OpenRanges] = {}  # ranges not fully recovered
        self.records_lost = 0
        self.records_recovered = 0
        self.packets_lost = 0
        self.kafka_evicted = 0
        self.records_evicted = 0
        self.sequence_evicted = 0
        self.packets_evicted = 0
        self.inconsistent = 0
        self.untracked = 0
        self.started_at = clock()
        self.session_observed = False
        self._log = ThrottledLog(log, LOG_INTERVAL)

    # --- input --------------------------------------------------------------------------------

    def session_started(self) -> None:
        """A StartUp arrived and no chunk of an earlier session is still waiting for batch()."""
        self.session_observed = True

    def batch(self, marks: Iterable[Mark], records: Iterable[Record] = ()) -> None:
        """The marks and records of one received batch (v1 batches have no marks)."""
        for mark in marks:
            self._mark(mark)
        if self._open:
            self._recover(records)

    def _recover(self, records: Iterable[Record]) -> None:
        opened = self._open
        for record in records:
            ranges = opened.get((record.topic, record.partition))  # type: ignore[arg-type]
            if ranges is None or record.offset > ranges.highest:
                continue
            gap = ranges.find(record.offset)
            if gap is None:
                continue
            arrived = gap.arrived if gap.arrived is not None else set()
            gap.arrived = arrived
            if record.offset not in arrived:
                arrived.add(record.offset)
                gap.recovered += 1
                self.records_recovered += 1
                if gap.recovered >= gap.records:
                    self._close(gap)

    def _close(self, gap: KafkaGap) -> None:
        gap.arrived = None
        key = (gap.topic, gap.partition)
        ranges = self._open.get(key)
        if ranges is not None:
            ranges.remove(gap)
            if not ranges.gaps:
                del self._open[key]

    def _mark(self, mark: Mark) -> None:
        key = (mark.topic, mark.partition)
        seen = self.partitions.get(key)
        if seen is None and len(self.partitions) >= MAX_PARTITIONS:
            self.untracked += 1
            self._log(
                "untracked", "more than %d partitions: %s/%d not tracked", MAX_PARTITIONS, *key
            )
            return
        if seen is not None and seen.run == mark.run:
            if mark.sent_before < seen.sent:
                self._inconsistent(mark, f"sent_before {mark.sent_before} < {seen.sent} received")
                return
            if mark.sent_before > seen.sent:
                self._claim(mark, seen.last + 1, mark.sent_before - seen.sent)
            elif mark.prev_offset != seen.last:
                self._inconsistent(mark, f"prev_offset {mark.prev_offset} != {seen.last}")
        elif mark.sent_before > 0 and (seen is not None or self.session_observed):
            self._claim(mark, mark.first_offset, mark.sent_before)  # a new run's start was lost
        if seen is None or seen.run != mark.run:
            seen = self.partitions[key] = _Seen(mark.run, -1, 0)
        if mark.count:
            seen.last = mark.last_offset
        elif mark.sent_before:
            seen.last = mark.prev_offset
        seen.sent = mark.sent_before + mark.count

    def _claim(self, mark: Mark, first: int, records: int) -> None:
        last = mark.prev_offset
        if first > last or records > last - first + 1 or first < 0:
            self._inconsistent(mark, f"cannot lose {records} records in {first}..{last}")
            return
        self.records_lost += records
        key = (mark.topic, mark.partition)
        previous = self._latest.get(key)
        self._log(
            "kafka",
            "records lost: %s/%d offsets %d..%d (%d records)",
            mark.topic,
            mark.partition,
            first,
            last,
            records,
        )
        if (
            previous is not None
            and previous.last_offset + 1 == first
            and previous.recovered < previous.records
        ):
            previous.last_offset = last
            previous.records += records
            opened = self._open.get(key)
            if opened is not None:
                opened.highest = max(opened.highest, last)
            return
        gap = KafkaGap(mark.topic, mark.partition, first, last, records, self.clock())
        self.kafka.append(gap)
        self._latest[key] = gap
        self._open.setdefault(key, _OpenRanges()).add(gap)
        if len(self.kafka) > self.max_ranges:
            evicted = self.kafka.popleft()
            self.kafka_evicted += 1
            self.records_evicted += evicted.records
            evicted_key = (evicted.topic, evicted.partition)
            if self._latest.get(evicted_key) is evicted:
                del self._latest[evicted_key]
            self._close(evicted)

    def _inconsistent(self, mark: Mark, why: str) -> None:
        self.inconsistent += 1
        self._log(
            "inconsistent",
            "batch marks of %s/%d do not add up (%s): no range claimed",
            mark.topic,
            mark.partition,
            why,
        )

    def sequence_lost(self, first_seq: int, count: int) -> None:
        """Reassembly found `count` packets missing from `first_seq` on."""
        if count <= 0:
            return
        self.packets_lost += count
        last_seq = (first_seq + count - 1) % SEQ_MODULO
        sequence = self.sequence
        if sequence and (sequence[-1].last_seq + 1) % SEQ_MODULO == first_seq:
            sequence[-1].last_seq = last_seq
            sequence[-1].packets += count
            return
        sequence.append(SeqGap(first_seq, last_seq, count, self.clock()))
        if len(sequence) > self.max_ranges:
            evicted = sequence.popleft()
            self.sequence_evicted += 1
            self.packets_evicted += evicted.packets

    # --- output -------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The body of GET /gaps (docs/http-api.md)."""
        return {
            "kafka": [gap.as_json() for gap in self.kafka],
            "sequence": [asdict(gap) for gap in self.sequence],
            "records_lost": self.records_lost,
            "records_recovered": self.records_recovered,
            "packets_lost": self.packets_lost,
            "evicted": {
                "kafka_ranges": self.kafka_evicted,
                "records": self.records_evicted,
                "sequence_ranges": self.sequence_evicted,
                "packets": self.packets_evicted,
            },
            "inconsistent_marks": self.inconsistent,
            "untracked_marks": self.untracked,
            "max_ranges": self.max_ranges,
            "partitions_tracked": len(self.partitions),
            "session_observed": self.session_observed,
            "since": self.started_at,
        }

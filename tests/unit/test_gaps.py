"""The exact lost-record report: batch v2 marks (ingress) against what arrived (egress).

Synthetic offsets with holes (compaction, transaction markers), filtered records, lost batches,
partition re-assignment and restarts on both sides: the tracker claims exactly the records that
were sent and lost, never a hole.
"""

from __future__ import annotations

import random

import gevent
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddc.egress.gaps import GapTracker
from ddc.errors import EnvelopeError
from ddc.ingress.filters import FilterChain
from ddc.ingress.framer import Framer
from ddc.ingress.runs import SentRuns
from ddc.protocol.envelope import Mark, decode_batch, encode_records, is_records
from ddc.protocol.reassembly import Reassembler
from ddc.protocol.record import Record
from ddc.queues import STOP, CostQueue


def rec(offset: int, partition: int = 0, topic: str = "t") -> Record:
    return Record(b"v%d" % offset, topic=topic, partition=partition, offset=offset)


class Sender:
    """A minimal framer: SentRuns + the v2 codec, `size` records per batch, in order."""

    def __init__(self, seed: int = 1) -> None:
        self.runs = SentRuns(random.Random(seed))
        self.batch: list[Record] = []

    def frame(self, records: list[Record], size: int = 3) -> list[bytes]:
        chunks = []
        for record in records:
            if len(self.batch) >= size:
                chunks.extend(self.flush_all())
            self.batch.append(record)
        return chunks

    def flush_all(self) -> list[bytes]:
        chunks, start = [], 0
        for end, marks in self.runs.mark(self.batch):
            chunks.append(encode_records(self.batch[start:end], marks))
            start = end
        self.batch = []
        return chunks

    def flush(self) -> bytes:
        (chunk,) = self.flush_all()
        return chunk

    def tail(self) -> bytes:
        return encode_records([], self.runs.tail_marks())


def receive(tracker: GapTracker, chunks: list[bytes], lost: set[int]) -> list[Record]:
    """Decode every chunk not in `lost` (by index) into the tracker; the records that arrived."""
    arrived = []
    for index, chunk in enumerate(chunks):
        if index in lost:
            continue
        batch = decode_batch(chunk)
        tracker.batch(batch.marks, batch.records)
        arrived.extend(batch.records)
    return arrived


def claimed(tracker: GapTracker, existing: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """(partition, offset) of the records inside the claimed ranges, given which offsets exist."""
    found = set()
    for gap in tracker.kafka:
        for partition, offset in existing:
            if partition == gap.partition and gap.first_offset <= offset <= gap.last_offset:
                found.add((partition, offset))
    return found


# --- the codec ------------------------------------------------------------------------------


def test_v2_round_trip_and_v1_still_decoded():
    records = [rec(5), rec(9), rec(7, partition=1), Record(b"no-origin")]
    marks = [Mark("t", 0, 7, 5, -1, 0, 2, 9), Mark("t", 1, 8, 7, 3, 2, 1, 7)]
    chunk = encode_records(records, marks)
    assert chunk[4] == 2 and is_records(chunk)
    batch = decode_batch(chunk)
    assert batch.version == 2 and batch.records == records and batch.marks == marks
    v1 = encode_records(records)
    assert v1[4] == 1 and decode_batch(v1).marks == [] and decode_batch(v1).records == records
    # a mark-only batch (tail marks) and an empty v2 batch
    assert decode_batch(encode_records([], [Mark("t", 0, 7, 5, 9, 2, 0, -1)])).records == []


def test_v2_marks_must_account_for_every_record_with_an_origin():
    with pytest.raises(EnvelopeError, match="marks count 1 records, the batch holds 2"):
        decode_batch(encode_records([rec(1), rec(2)], [Mark("t", 0, 1, 1, -1, 0, 1, 1)]))
    chunk = encode_records([rec(1)], [Mark("t", 0, 1, 1, -1, 0, 1, 1)])
    with pytest.raises(EnvelopeError):
        decode_batch(chunk[:20])


# --- the rule, by example -------------------------------------------------------------------


def test_compaction_holes_are_never_claimed_and_a_lost_batch_is_named_exactly():
    # a compacted partition: offsets 0, 3, 4, 10, 11, 12, 20, 25, 26 exist
    offsets = [0, 3, 4, 10, 11, 12, 20, 25, 26]
    sender, tracker = Sender(), GapTracker()
    chunks = sender.frame([rec(o) for o in offsets]) + [sender.flush()]
    assert receive(tracker, chunks, lost=set()) and not tracker.kafka  # holes: no gap
    sender, tracker = Sender(), GapTracker()
    chunks = sender.frame([rec(o) for o in offsets]) + [sender.flush()]
    receive(tracker, chunks, lost={1})  # the batch of 10, 11, 12
    assert [(g.first_offset, g.last_offset, g.records) for g in tracker.kafka] == [(5, 12, 3)]
    assert tracker.records_lost == 3
    assert claimed(tracker, {(0, o) for o in offsets}) == {(0, 10), (0, 11), (0, 12)}


def test_filtered_records_are_not_sent_so_not_claimed():
    sender, tracker = Sender(), GapTracker()
    kept = [o for o in range(30) if o % 4]  # every 4th record filtered out before the framer
    chunks = sender.frame([rec(o) for o in kept]) + [sender.flush()]
    receive(tracker, chunks, lost=set())
    assert tracker.records_lost == 0 and not tracker.kafka


def test_lost_last_batch_is_named_by_the_tail_marks():
    sender, tracker = Sender(), GapTracker()
    chunks = sender.frame([rec(o) for o in range(6)]) + [sender.flush(), sender.tail()]
    receive(tracker, chunks, lost={len(chunks) - 2})
    assert [(g.first_offset, g.last_offset, g.records) for g in tracker.kafka] == [(3, 5, 3)]


def test_reassigned_partition_coming_back_further_on_claims_nothing_for_the_other_pair():
    sender, tracker = Sender(), GapTracker()
    # 0..5 sent here; 6..99 carried by another pair; the partition comes back at 100
    records = [rec(o) for o in range(6)] + [rec(o) for o in range(100, 106)]
    chunks = sender.frame(records) + [sender.flush()]
    receive(tracker, chunks, lost=set())
    assert not tracker.kafka
    sender, tracker = Sender(), GapTracker()
    chunks = sender.frame(records) + [sender.flush()]
    receive(tracker, chunks, lost={1})  # 3, 4, 5 lost (sent here), not 6..99
    assert [(g.first_offset, g.last_offset, g.records) for g in tracker.kafka] == [(3, 5, 3)]


def test_partition_read_again_starts_a_new_run_and_a_lost_run_start_is_claimed():
    sender, tracker = Sender(), GapTracker()
    # rebalance: 0..8 sent, then the partition is read again from the committed offset 4
    records = [rec(o) for o in range(9)] + [rec(o) for o in range(4, 13)]
    chunks = sender.frame(records) + [sender.flush()]
    assert sender.runs.runs_started == 2
    receive(tracker, chunks, lost=set())
    assert not tracker.kafka
    tracker = GapTracker()
    receive(tracker, chunks, lost={3})  # the new run's first batch: 4, 5, 6
    assert [(g.first_offset, g.last_offset, g.records) for g in tracker.kafka] == [(4, 6, 3)]


def test_a_batch_holding_two_runs_of_a_partition_is_cut_between_them():
    sender = Sender()
    sender.batch = [rec(7), rec(8, partition=1), rec(8), rec(5), rec(9, partition=1), rec(6)]
    segments = sender.runs.mark(sender.batch)
    assert [end for end, _ in segments] == [3, 6]
    first, second = (marks for _, marks in segments)
    assert [(m.partition, m.count, m.last_offset) for m in first] == [(0, 2, 8), (1, 1, 8)]
    assert [(m.partition, m.prev_offset, m.count) for m in second] == [(0, -1, 2), (1, 8, 1)]
    assert second[0].run != first[0].run and second[1].run == first[1].run
    assert second[0].first_offset == 5 and second[1].sent_before == 1


def test_ingress_restart_then_egress_restart():
    tracker = GapTracker()
    first = Sender(seed=1)
    receive(tracker, first.frame([rec(o) for o in range(6)]) + [first.flush()], lost=set())
    # the ingress restarts and resumes at 6: a new run; its first batch is lost
    second = Sender(seed=2)
    chunks = second.frame([rec(o) for o in range(6, 15)]) + [second.flush()]
    receive(tracker, chunks, lost={0})
    assert [(g.first_offset, g.last_offset, g.records) for g in tracker.kafka] == [(6, 8, 3)]
    # a restarted egress knows no partition: it cannot tell lost from delivered-before
    fresh = GapTracker()
    receive(fresh, chunks, lost={0})
    assert not fresh.kafka and fresh.records_lost == 0


def test_a_fresh_egress_claims_nothing_before_a_partitions_first_batch():
    sender, tracker = Sender(), GapTracker()
    records = [rec(o, partition=o % 3) for o in range(1, 13)]
    chunks = sender.frame(records, 1) + [sender.flush(), sender.tail()]
    # partition 2 holds 2, 5, 8, 11 (chunks 1, 4, 7, 10): its first two batches are lost, so
    # is 11 once 8 has made the partition known
    receive(tracker, chunks, lost={1, 4, 10})
    assert [(g.partition, g.first_offset, g.last_offset, g.records) for g in tracker.kafka] == [
        (2, 9, 11, 1)
    ]


def test_an_egress_that_saw_the_startup_claims_lost_first_batches():
    sender, tracker = Sender(), GapTracker()
    tracker.session_started()
    records = [rec(o, partition=o % 3) for o in range(1, 13)]
    chunks = sender.frame(records, 1) + [sender.flush(), sender.tail()]
    receive(tracker, chunks, lost={0, 1, 4})  # partition 1's first, partition 2's first two
    claims = [(g.partition, g.first_offset, g.last_offset, g.records) for g in tracker.kafka]
    assert claims == [(1, 1, 1, 1), (2, 2, 5, 2)]
    assert tracker.report()["session_observed"] is True


def test_recovered_records_are_counted_once_and_close_their_range():
    sender, tracker = Sender(), GapTracker()
    chunks = sender.frame([rec(o) for o in range(9)]) + [sender.flush()]
    receive(tracker, chunks, lost={1})  # 3, 4, 5

    seeds = iter(range(10, 20))

    def replay(*offsets: int) -> None:  # each replay is a new ingress run
        replayer = Sender(seed=next(seeds))
        receive(tracker, replayer.frame([rec(o) for o in offsets], 5) + replayer.flush_all(), set())

    replay(3, 4)
    replay(3)  # twice: counts once
    gap = tracker.report()["kafka"][0]
    assert (gap["records"], gap["recovered"]) == (3, 2) and tracker._open
    replay(5)
    report = tracker.report()
    assert report["kafka"][0]["recovered"] == 3 and report["records_recovered"] == 3
    assert report["records_lost"] == 3 and not tracker._open


def test_partitions_tracked_are_bounded(monkeypatch):
    monkeypatch.setattr("ddc.egress.gaps.MAX_PARTITIONS", 2)
    tracker = GapTracker()
    tracker.session_started()
    for partition in range(3):
        tracker.batch([Mark("t", partition, 1, 5, 9, 3, 1, 10)])  # a lost run start each
    assert tracker.report()["untracked_marks"] == 1 and len(tracker.partitions) == 2
    assert tracker.records_lost == 6  # the untracked partition claims nothing


def test_inconsistent_marks_are_counted_not_claimed():
    tracker = GapTracker()
    tracker.batch([Mark("t", 0, 1, 0, -1, 0, 3, 2)])
    tracker.batch([Mark("t", 0, 1, 0, 9, 11, 1, 10)])  # 8 records cannot fit in offsets 3..9
    tracker.batch([Mark("t", 0, 1, 0, 2, 1, 1, 11)])  # older than what arrived
    assert tracker.inconsistent == 2 and not tracker.kafka and tracker.records_lost == 0


def test_bounded_ranges_merge_and_evict_with_exact_totals():
    tracker = GapTracker(max_ranges=3)
    tracker.batch([Mark("t", 0, 1, 0, -1, 0, 1, 0)])
    sent, last = 1, 0
    for _ in range(10):  # every other batch lost, each loss 2 records
        base = last + 10
        tracker.batch([Mark("t", 0, 1, 0, base + 1, sent + 2, 1, base + 2)])
        sent, last = sent + 3, base + 2
    assert len(tracker.kafka) == 3 and tracker.kafka_evicted == 7
    assert tracker.records_lost == 20 and tracker.records_evicted == 14
    # adjacent ranges merge
    merged = GapTracker()
    merged.batch([Mark("t", 0, 1, 0, -1, 0, 1, 0)])
    merged.batch([Mark("t", 0, 1, 0, 4, 5, 0, -1)])
    merged.batch([Mark("t", 0, 1, 0, 9, 10, 0, -1)])
    assert [(g.first_offset, g.last_offset, g.records) for g in merged.kafka] == [(1, 9, 9)]


def test_sequence_ranges_from_reassembly():
    tracker = GapTracker(max_ranges=2)
    reassembler = Reassembler(1 << 20)
    reassembler.on_loss = tracker.sequence_lost
    reassembler.reset()
    for seq in (0, 1, 4, 5, 9):
        reassembler.packet(3, seq, b"x", 0)
    reassembler.observe_seq(12)
    reassembler.packet(3, 20, b"x", 0)
    report = tracker.report()
    assert report["packets_lost"] == reassembler.stats.lost == 2 + 3 + 2 + 8
    # 2..3 (evicted), 6..8, then 10..11 (HeartBeat) and 12..19 merged
    assert [(g["first_seq"], g["last_seq"]) for g in report["sequence"]] == [(6, 8), (10, 19)]
    assert report["evicted"] == {
        "kafka_ranges": 0,
        "records": 0,
        "sequence_ranges": 1,
        "packets": 2,
    }


# --- the property ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=60),  # offset steps: > 1 is a hole
    st.lists(st.booleans(), min_size=60, max_size=60),  # filtered out?
    st.lists(st.booleans(), min_size=1, max_size=40),  # chunk i lost: drops[i % len(drops)]
    st.integers(1, 5),
    st.integers(0, 3),
    st.booleans(),
)
def test_claims_equal_the_lost_records_exactly(steps, filtered, drops, size, partitions, watched):
    offsets, offset = [], 0
    for step in steps:
        offset += step
        offsets.append(offset)
    records = [
        rec(o, partition=i % (partitions + 1))
        for i, o in enumerate(offsets)
        if not filtered[i % len(filtered)]
    ]
    sender, tracker = Sender(), GapTracker()
    if watched:  # the egress saw the session's StartUp
        tracker.session_started()
    chunks = sender.frame(records, size) + sender.flush_all()
    # a fresh egress cannot tell a partition's lost first batch from one a previous egress
    # delivered (test_a_fresh_egress_claims_nothing_before_a_partitions_first_batch)
    firsts = (
        set()
        if watched
        else {
            i for i, c in enumerate(chunks) if any(m.prev_offset < 0 for m in decode_batch(c).marks)
        }
    )
    lost = {i for i in range(len(chunks) - 1) if drops[i % len(drops)]} - firsts
    chunks.append(sender.tail())
    arrived = receive(tracker, chunks, lost)
    sent = {(r.partition, r.offset) for r in records}
    received = {(r.partition, r.offset) for r in arrived}
    missing = sent - received
    assert claimed(tracker, sent) == missing  # every lost record is inside a range
    assert not claimed(tracker, received)  # no range holds a record that arrived
    assert tracker.records_lost == len(missing) == sum(g.records for g in tracker.kafka)
    # a replay (a new sender run) of the ranges' records, filtered as before, closes them all
    replayer = Sender(seed=99)
    again = [r for r in records if (r.partition, r.offset) in claimed(tracker, sent)]
    receive(tracker, replayer.frame(again, size) + replayer.flush_all(), lost=set())
    assert tracker.records_recovered == tracker.records_lost
    assert all(g.recovered == g.records for g in tracker.kafka) and not tracker._open


# --- the framer -----------------------------------------------------------------------------


def test_framer_sends_v2_for_kafka_records_v1_otherwise_and_tail_marks_when_quiet(monkeypatch):
    monkeypatch.setattr("ddc.ingress.framer.TAIL_MARKS_AFTER", 0.05)
    inbox, outbox = CostQueue(1 << 20), CostQueue(1 << 20)
    framer = Framer("records", 60_000, 1.0, FilterChain([], None), inbox, outbox)  # type: ignore[arg-type]
    worker = gevent.spawn(framer.run)
    inbox.put(([rec(1), rec(2)], None), 2)
    gevent.sleep(0.03)  # past the linger: the next record is in a batch of its own
    inbox.put(([b"plain"], None), 1)
    gevent.sleep(0.2)
    inbox.put(STOP, 1)
    worker.join(2)
    items = []
    while (item := outbox.get(0.1)) is not STOP:
        items.append(item)
    batches = [decode_batch(chunk) for chunk, _acks, _n in items]
    assert [b.version for b in batches] == [2, 1, 2]  # records, plain, the tail marks
    assert [n for _c, _a, n in items] == [2, 1, 0]
    assert batches[0].marks[0].count == 2 and batches[0].marks[0].prev_offset == -1
    tail = batches[2].marks
    assert [(m.prev_offset, m.sent_before, m.count) for m in tail] == [(2, 2, 0)]


def test_framer_cuts_a_batch_at_a_reread_and_acks_after_its_last_piece():
    inbox, outbox = CostQueue(1 << 20), CostQueue(1 << 20)
    framer = Framer("records", 60_000, 1000.0, FilterChain([], None), inbox, outbox)  # type: ignore[arg-type]
    acks: list[str] = []
    inbox.put(([rec(1), rec(2), rec(3)], lambda: acks.append("a")), 3)
    inbox.put(([rec(2), rec(3)], lambda: acks.append("b")), 2)  # read again after a rebalance
    inbox.put(STOP, 1)
    framer.run()
    items = []
    while (item := outbox.get(0.1)) is not STOP:
        items.append(item)
    pieces = [(decode_batch(chunk), len(item_acks), n) for chunk, item_acks, n in items]
    assert [(len(b.records), a, n) for b, a, n in pieces[:2]] == [(3, 0, 3), (2, 2, 2)]
    assert pieces[1][0].marks[0].prev_offset == -1  # a new run
    assert not pieces[2][0].records  # the tail marks at STOP


def test_a_batch_with_its_marks_stays_within_batch_max_bytes():
    inbox, outbox = CostQueue(1 << 24), CostQueue(1 << 24)
    framer = Framer("records", 4096, 1000.0, FilterChain([], None), inbox, outbox)  # type: ignore[arg-type]
    # 300 records of 60 B, every one of another partition of a long-named topic
    records = [
        Record(b"v" * 60, topic="orders-" + "x" * 40, partition=p, offset=7) for p in range(300)
    ]
    inbox.put((records, None), len(records))
    inbox.put(STOP, 1)
    framer.run()
    sizes = []
    while (item := outbox.get(0.1)) is not STOP:
        sizes.append(len(item[0]))
    assert max(sizes) <= 4096 and len(sizes) > 10

"""Write-behind: with a sink that settles inside send(), what it took before the flush is never
written; everything else is written as before, and a restart replays exactly what was not
acknowledged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ddc.egress.deliver import Deliverer
from ddc.egress.sinks.base import Done, Sink
from ddc.egress.spool import DiskSpool
from ddc.egress.spool.format import HEADER_SIZE, SEGMENT_MAGIC, segment_name
from ddc.metrics import EgressMetrics
from ddc.protocol.record import Record

MAGIC = len(SEGMENT_MAGIC)


def payloads(first: int, n: int, size: int = 100) -> list[bytes]:
    return [i.to_bytes(4, "big") * (size // 4) for i in range(first, first + n)]


def read_all(spool: DiskSpool) -> list[tuple[int, bytes]]:
    out = []
    while (item := spool.read()) is not None:
        out.append((item.seq, bytes(item.payload)))
    return out


def active_file_size(path: Path, spool: DiskSpool) -> int:
    return (path / segment_name(spool.segments[-1].first_seq)).stat().st_size


def test_entries_acknowledged_before_the_flush_are_never_written(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    spool.set_write_behind(True)
    data = payloads(0, 5)
    for payload in data:
        spool.append(payload)
    got = read_all(spool)  # handed out before they are written
    assert [payload for _, payload in got] == data and [seq for seq, _ in got] == [1, 2, 3, 4, 5]
    spool.ack(5)
    assert spool.flush()
    assert active_file_size(tmp_path, spool) == MAGIC  # nothing written
    assert spool.skipped == 5 and spool.pending == 0 and spool.bytes == MAGIC
    assert spool.released == 5 and spool.appended == 5
    # the numbers were given back: the segment on disk stays contiguous
    later = payloads(5, 3)
    for payload in later:
        spool.append(payload)
    assert [seq for seq, _ in read_all(spool)] == [1, 2, 3]
    spool.ack(2)
    assert spool.flush()  # one entry is not acknowledged: all three are written
    assert active_file_size(tmp_path, spool) == MAGIC + 3 * (HEADER_SIZE + 100)
    os.close(spool._lock)  # a kill -9
    again = DiskSpool(str(tmp_path), 1 << 20)
    # the ack was never synced: all three are replayed (at-least-once), nothing else
    assert [payload for _, payload in read_all(again)] == later and again.torn_entries == 0
    again.close()


def test_never_rewound_below_an_ack_given_to_sync(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    spool.set_write_behind(True)
    for payload in payloads(0, 3):
        spool.append(payload)
    read_all(spool)
    spool.ack(3)
    # a sync that saves ack 3 while the entries are still buffered (it flushes first, so force
    # the order a yield inside sync() could give: the ack saved, then the entries flushed)
    spool._ack_floor = 3
    assert spool.flush()
    assert spool.skipped == 0 and spool.next_seq == 4  # written, not given back
    assert active_file_size(tmp_path, spool) == MAGIC + 3 * (HEADER_SIZE + 100)
    spool.append(b"next")
    assert [seq for seq, _ in read_all(spool)] == [4]
    spool.close()
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert again.pending == 1 and read_all(again) == [(4, b"next")]  # ack of 4 was never synced
    again.close()


def test_an_unread_or_unacknowledged_entry_is_written(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    spool.set_write_behind(True)
    for payload in payloads(0, 4):
        spool.append(payload)
    assert spool.read() is not None  # three left unread
    spool.ack(1)
    assert spool.flush()
    assert spool.skipped == 0
    assert active_file_size(tmp_path, spool) == MAGIC + 4 * (HEADER_SIZE + 100)
    assert [seq for seq, _ in read_all(spool)] == [2, 3, 4]
    spool.close()


def test_write_behind_is_off_with_fsync_interval_0(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, fsync_interval=0)
    spool.set_write_behind(True)
    assert not spool.write_behind
    spool.append(b"x")
    assert active_file_size(tmp_path, spool) == MAGIC + HEADER_SIZE + 1  # written at once
    spool.close()


def test_a_full_spool_renews_its_segment_after_a_skip(tmp_path: Path) -> None:
    """An append that finds the spool full of acknowledged entries flushes (here: forgets) them
    before it starts a fresh segment, so nothing buffered is written into the wrong file."""
    spool = DiskSpool(str(tmp_path), MAGIC + 3 * (HEADER_SIZE + 100), segment_bytes=1 << 20)
    spool.set_write_behind(True)
    for payload in payloads(0, 3):
        spool.append(payload)
    read_all(spool)
    spool.ack(3)
    assert spool.append(payloads(3, 1)[0])  # needs the room of the three acknowledged ones
    assert spool.skipped == 3 and spool.dropped == {}
    assert read_all(spool) == [(1, payloads(3, 1)[0])]
    spool.close()


class SettlingSink(Sink):
    """Settles every record inside send(), as the UDP sink does."""

    settles_in_send = True

    def __init__(self) -> None:
        super().__init__({}, EgressMetrics())
        self.got: list[bytes] = []

    def send(self, records: list[Record], done: Done) -> None:
        self.got.extend(bytes(r.value or b"") for r in records)
        done()


class LaterSink(SettlingSink):
    settles_in_send = False  # the same, but not declared: the spool writes before handing out


@pytest.mark.parametrize("sink_type", [SettlingSink, LaterSink])
def test_the_deliverer_writes_only_for_a_sink_that_does_not_settle_in_send(
    tmp_path: Path, sink_type: type[SettlingSink]
) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    sink = sink_type()
    deliverer = Deliverer("raw", spool, sink, EgressMetrics())
    chunks = payloads(0, 20)
    for burst in (chunks[:7], chunks[7:]):
        for chunk in burst:
            deliverer.enqueue(chunk)
        assert deliverer.step()
    deliverer.acknowledge()  # (without write-behind the next turn would)
    assert sink.got == chunks and spool.pending == 0
    written = active_file_size(tmp_path, spool) - MAGIC
    if sink.settles_in_send:
        assert written == 0 and spool.skipped == 20
    else:
        assert written == 20 * (HEADER_SIZE + 100) and spool.skipped == 0
    spool.close()

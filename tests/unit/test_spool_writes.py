"""The disk spool's writes: failed writes, and writes in a thread while appends go on."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.lock import Semaphore

from ddc.egress.spool import DiskSpool
from ddc.egress.spool.format import segment_name


def payloads(n: int, size: int = 100, first: int = 0) -> list[bytes]:
    return [i.to_bytes(4, "big") * (size // 4) for i in range(first, first + n)]


def drain(spool: DiskSpool) -> list[bytes]:
    out = []
    while (item := spool.read()) is not None:
        out.append(bytes(item.payload))
        spool.ack(item.seq)
    return out


def into_a_reused_file(spool: DiskSpool) -> None:
    """Fills, delivers and acknowledges segments until the active one is a reused file."""
    filler = payloads(1, 100, first=9999)[0]
    while not spool.segments[-1].reused:
        spool.append(filler)
        assert drain(spool) == [filler]
    assert spool.segments[-1].count == 1


class InFlight:
    """A write runner that runs `during` (the receiver appending) while a write is in flight,
    then the write, or raises `fail` instead of writing."""

    def __init__(self) -> None:
        self.during: list[Callable[[], Any]] = []
        self.fail: OSError | None = None

    def __call__(self, func: Callable[..., Any], *args: Any) -> Any:
        during, self.during = self.during, []
        for step in during:
            step()
        if self.fail is not None:
            raise self.fail
        return func(*args)


def test_a_failed_write_drops_its_entries_counted_and_the_file_keeps_what_came_before(
    tmp_path: Path,
) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    dropped: list[bytes] = []
    spool.on_drop = lambda payload, reason: dropped.append(bytes(payload))
    data = payloads(5)
    for p in data[:2]:
        spool.append(p)
    assert spool.flush()
    for p in data[2:4]:
        spool.append(p)
    writable = spool._fd
    spool._fd = os.open(tmp_path / segment_name(1), os.O_RDONLY)  # pwritev fails: EBADF
    assert not spool.flush()
    os.close(spool._fd)
    spool._fd = writable
    assert spool.dropped["write_error"] == 2 and dropped == data[2:4]
    assert spool.next_seq == 3 and spool.pending == 2
    spool.append(data[4])
    assert drain(spool) == [data[0], data[1], data[4]]
    spool.close()
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert again.torn_entries == 0 and again.next_seq == 4
    again.close()


@pytest.mark.parametrize("from_disk", [False, True], ids=["from-memory", "from-disk"])
def test_appends_while_a_write_is_in_flight_are_handed_out_only_once_written(
    tmp_path: Path, from_disk: bool
) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1024)
    into_a_reused_file(spool)  # what lies beyond the written entries: older entries, not EOF
    if from_disk:
        spool.reader.hot_bytes = 0  # every entry read back from the file
    writes = InFlight()
    spool.write_in(writes, nullcontext())
    data = payloads(6)
    for p in data[:2]:
        spool.append(p)
    writes.during = [lambda: spool.append(data[2]), lambda: spool.append(data[3])]
    first = [item for item in (spool.read(), spool.read()) if item is not None]
    assert [bytes(item.payload) for item in first] == data[:2]
    assert spool.reader.written_to == first[1].seq + 1  # 2 more came in during that write
    spool.ack(first[1].seq)
    spool.append(data[4])
    assert drain(spool) == data[2:5]
    assert spool.dropped["corrupt"] == 0 and not writes.during
    spool.close()
    again = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1024)
    assert again.torn_entries == 0 and drain(again) == []
    again.close()


def test_a_write_failing_in_flight_also_drops_what_was_appended_behind_it(
    tmp_path: Path,
) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    writes = InFlight()
    spool.write_in(writes, nullcontext())
    data = payloads(6)
    spool.append(data[0])
    assert spool.flush()
    spool.append(data[1])
    spool.append(data[2])
    writes.during = [lambda: spool.append(data[3])]
    writes.fail = OSError(errno.ENOSPC, "No space left on device")
    assert spool.read() is not None  # data[0], written before
    assert spool.read() is None  # its write failed: 1, 2 and 3 are gone
    assert spool.dropped["write_error"] == 3 and spool.next_seq == 2
    assert (tmp_path / segment_name(1)).stat().st_size == spool.segments[0].size  # cut back
    writes.fail = None
    spool.append(data[4])
    assert [bytes(item.payload) for item in [spool.read()] if item] == [data[4]]
    spool.close()
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert again.torn_entries == 0 and again.next_seq == 3
    again.close()


@pytest.mark.parametrize("hot_bytes", [32 << 20, 0], ids=["from-memory", "from-disk"])
def test_writes_in_gevents_threadpool_while_greenlets_append_and_read(
    tmp_path: Path, hot_bytes: int
) -> None:
    """The egress's arrangement: writes in a thread, one at a time, the receiver appending and the
    deliverer reading meanwhile, across many segment rotations."""
    spool = DiskSpool(str(tmp_path), 64 << 20, segment_bytes=256 << 10)
    spool.reader.hot_bytes = hot_bytes
    spool.write_in(lambda func, *args: gevent.get_hub().threadpool.apply(func, args), Semaphore())
    data = payloads(3000, 4000)
    got: list[bytes] = []

    def receive() -> None:
        for index, payload in enumerate(data):
            assert spool.append(payload)
            if index % 7 == 0:
                gevent.sleep(0)

    def deliver() -> None:
        while len(got) < len(data):
            spool.flush()
            item = spool.read()
            if item is None:
                gevent.sleep(0.001)
                continue
            got.append(bytes(item.payload))
            spool.ack(item.seq)

    greenlets = [gevent.spawn(receive), gevent.spawn(deliver)]
    gevent.joinall(greenlets, timeout=120, raise_error=True)
    assert all(g.dead for g in greenlets)
    assert got == data and sum(spool.dropped.values()) == 0
    spool.close()
    again = DiskSpool(str(tmp_path), 64 << 20)
    assert again.torn_entries == 0 and drain(again) == []
    again.close()


def test_a_kill_waits_for_the_write_or_fsync_in_flight() -> None:
    """The egress's runner: killing the greenlet that waits for a call in the threadpool takes
    effect once the call ended, so no write outlives the descriptor it was given."""
    import threading

    from ddc.cooperate import in_thread

    started, ended = threading.Event(), threading.Event()

    def slow_write() -> None:
        started.set()
        threading.Event().wait(0.3)  # a real thread blocking, as pwritev or fsync would
        ended.set()

    waiter = gevent.spawn(in_thread, slow_write)
    while not started.is_set():
        gevent.sleep(0.005)
    waiter.kill(block=True, timeout=5)
    assert ended.is_set() and waiter.dead
    assert isinstance(waiter.value, gevent.GreenletExit)


def test_a_segment_closed_while_the_readers_flush_waited_is_read_to_its_end(
    tmp_path: Path,
) -> None:
    """The reader's flush can wait for the receiver's write, after which the receiver closes
    the segment the reader is in and starts the next: the reader still reads the closed one to
    its end, not to where the new one's writes end."""
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1024)
    spool.reader.hot_bytes = 0  # every entry read back from the file
    data = payloads(30)
    for p in data[:3]:
        spool.append(p)
    got = drain(spool)  # the reader is past the first entries of the segment
    spool.append(data[3])
    real_flush = spool.reader.flush
    appended = 4

    def flush_after_the_receiver_rotated() -> bool:
        nonlocal appended
        spool.reader.flush = real_flush  # once
        first = spool.segments[-1]
        while spool.segments[-1] is first:  # the receiver goes on and starts a new segment
            spool.append(data[appended])
            appended += 1
        return real_flush()

    spool.reader.flush = flush_after_the_receiver_rotated
    got += drain(spool)
    for p in data[appended:]:
        spool.append(p)
    got += drain(spool)
    assert got == data and sum(spool.dropped.values()) == 0
    spool.close()


def test_a_peek_while_the_deliverer_waits_for_a_write_does_not_reorder(tmp_path: Path) -> None:
    """/healthz peeks at the next entry from its own greenlet: when that happens while the
    deliverer waits for a write, the deliverer still gets the entries in order."""
    spool = DiskSpool(str(tmp_path), 1 << 20)
    spool.write_in(lambda func, *args: (gevent.sleep(0.01), func(*args))[1], Semaphore())
    data = payloads(4)
    spool.append(data[0])
    first = spool.read()
    assert first is not None and bytes(first.payload) == data[0]
    spool.append(data[1])
    spool.append(data[2])  # neither written yet
    got: list[bytes] = []

    def receiver_flush_then_health() -> None:
        spool.flush()  # the deliverer's read waits for this write
        spool.next_time_ms()  # a health check right after it: takes data[1] as its peek

    def deliver() -> None:
        item = spool.read()
        got.append(b"" if item is None else bytes(item.payload))

    greenlets = [gevent.spawn(receiver_flush_then_health), gevent.spawn(deliver)]
    gevent.joinall(greenlets, timeout=10, raise_error=True)
    got += [bytes(item.payload) for item in [spool.read(), spool.read()] if item]
    assert got == data[1:3]
    spool.close()

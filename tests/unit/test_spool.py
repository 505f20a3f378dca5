"""The spool: format, append/read/ack, rotation and deletion, when_full, torn tails."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from ddc.egress.spool import DiskSpool, MemorySpool, SpoolError, open_spool
from ddc.egress.spool.format import (
    HEADER_SIZE,
    MARKER,
    SEGMENT_MAGIC,
    decode_ack,
    encode_ack,
    encode_entry,
    scan,
    segment_name,
    segment_seq,
)

MAGIC = len(SEGMENT_MAGIC)


def payloads(n: int, size: int = 100) -> list[bytes]:
    return [i.to_bytes(4, "big") * (size // 4) for i in range(n)]


def drain(spool, ack: bool = True) -> list[bytes]:
    out = []
    while (item := spool.read()) is not None:
        out.append(bytes(item.payload))
        if ack:
            spool.ack(item.seq)
    return out


def segment_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.endswith(".seg"))


# --- format -----------------------------------------------------------------------------------


def test_entry_round_trip_and_checks() -> None:
    data = encode_entry(7, 1234, b"hello") + encode_entry(8, 1235, b"")
    found = scan(data, 0, 7)
    assert [(e.seq, e.time_ms, bytes(e.payload)) for e in found.entries] == [
        (7, 1234, b"hello"),
        (8, 1235, b""),
    ]
    assert found.end == len(data) and found.next_seq == 9 and found.torn is None
    assert scan(data, 0, 6).torn == "sequence 7 where 6 was due"
    flipped = bytearray(data)
    flipped[HEADER_SIZE + 1] ^= 1
    assert scan(flipped, 0, 7).torn == "bad checksum"
    assert scan(flipped, 0, 7).entries == []
    cut = scan(data[:-3], 0, 7)
    assert len(cut.entries) == 1 and cut.torn == "partial header"
    assert scan(data[:-3], 0, 7, final=False).torn is None


def test_names_and_ack() -> None:
    assert segment_seq(segment_name(42)) == 42
    assert segment_seq("ack") is None and segment_seq("x.seg") is None
    assert decode_ack(encode_ack(99)) == 99
    assert decode_ack(encode_ack(99)[:-1]) is None
    broken = bytearray(encode_ack(99))
    broken[10] ^= 1
    assert decode_ack(bytes(broken)) is None


# --- the disk spool ---------------------------------------------------------------------------


def test_append_read_ack_in_order(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    data = payloads(50)
    assert all(spool.append(p) for p in data)
    assert spool.pending == 50 and spool.unread == 50
    assert spool.bytes == MAGIC + 50 * (HEADER_SIZE + 100)
    first = spool.read()
    assert first is not None and first.seq == 1 and bytes(first.payload) == data[0]
    assert spool.unread == 49 and spool.pending == 50
    rest = drain(spool, ack=False)
    assert rest == data[1:] and spool.read() is None
    spool.ack(25)
    assert spool.pending == 25 and spool.released == 25
    spool.ack(10)  # behind: nothing changes
    assert spool.pending == 25
    spool.close()


def test_restart_replays_unacked_only(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    data = payloads(30)
    for p in data:
        spool.append(p)
    for _ in range(30):
        item = spool.read()
        assert item is not None
    spool.ack(12)
    spool.close()
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert again.pending == 18 and again.acked == 12
    assert drain(again) == data[12:]
    assert again.append(b"new")
    assert again.read().seq == 31  # numbers go on, never reused
    again.close()


def test_ack_not_synced_is_replayed(tmp_path: Path) -> None:
    """A crash before sync(): what was acknowledged since is delivered again (at-least-once)."""
    spool = DiskSpool(str(tmp_path), 1 << 20)
    for p in payloads(10):
        spool.append(p)
    drain(spool)
    spool.sync()
    spool.append(b"late")
    spool.ack(spool.read().seq)
    os.close(spool._lock)  # a crash: no close(), no sync()
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert drain(again) == [b"late"]
    again.close()


def test_rotation_and_deletion(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1000)
    data = payloads(40)  # 124 bytes each: 8 per segment (7 fit under 1000, the 8th rotates)
    for p in data:
        spool.append(p)
    files = segment_files(tmp_path)
    assert len(files) == 5 and files[0] == segment_name(1) and files[1] == segment_name(9)
    assert spool.bytes == 5 * MAGIC + 40 * (HEADER_SIZE + 100)
    for _ in range(20):
        spool.read()
    spool.ack(16)
    assert segment_files(tmp_path) == files[2:]  # the two whole acknowledged segments are gone
    assert spool.bytes == 3 * MAGIC + 24 * (HEADER_SIZE + 100)
    assert drain(spool) == data[20:]
    assert segment_files(tmp_path) == files[-1:]  # the active segment stays
    spool.close()
    assert DiskSpool(str(tmp_path), 1 << 20).pending == 0


def test_segments_deleted_before_the_sync_are_never_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1000)
    spool.sync()
    for p in payloads(40):  # five segments of 8 entries
        spool.append(p)
    for _ in range(16):
        spool.ack(spool.read().seq)  # the first two segments wholly acknowledged and deleted
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    spool.sync()
    segments_synced = [os.path.basename(p) for p in synced if ".seg" in p]
    assert segments_synced == [segment_name(17), segment_name(25), segment_name(33)]
    spool.close()
    restarted = DiskSpool(str(tmp_path), 1 << 20)
    assert restarted.pending == 24


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_drop_newest_exact(tmp_path: Path, kind: str) -> None:
    dropped: list[bytes] = []
    if kind == "disk":
        spool = DiskSpool(str(tmp_path), MAGIC + 10 * (HEADER_SIZE + 100), "drop_newest")
    else:
        spool = MemorySpool(10 * (100 + 64), "drop_newest")
    spool.on_drop = lambda payload, reason: dropped.append(bytes(payload))
    data = payloads(25)
    accepted = [spool.append(p) for p in data]
    assert accepted == [True] * 10 + [False] * 15
    assert spool.dropped == {"drop_newest": 15} and dropped == data[10:]
    assert spool.bytes <= spool.max_bytes
    assert drain(spool) == data[:10]
    assert spool.append(data[0])  # room again once acknowledged


def test_drop_oldest_disk_frees_whole_unread_segments(tmp_path: Path) -> None:
    entry = HEADER_SIZE + 100
    # segments of 4 entries; room for 4 full segments
    spool = DiskSpool(
        str(tmp_path), 4 * (MAGIC + 4 * entry), "drop_oldest", segment_bytes=3 * entry + MAGIC + 1
    )
    dropped: list[bytes] = []
    spool.on_drop = lambda payload, reason: dropped.append(bytes(payload))
    data = payloads(30)
    first = spool.append(data[0])
    reading = spool.read()  # the reader is in segment 1: it is never a victim
    assert first and reading is not None
    assert all(spool.append(p) for p in data[1:])
    assert spool.bytes <= spool.max_bytes
    # 16 fit (4 full segments); the 17th, 21st, 25th and 29th each start a segment and drop
    # the oldest one after the reader's: entries 5-20
    assert spool.dropped == {"drop_oldest": 16}
    assert dropped == data[4:20]
    assert drain(spool) == data[1:4] + data[20:]


def test_drop_oldest_memory_exact(tmp_path: Path) -> None:
    spool = MemorySpool(10 * (100 + 64), "drop_oldest")
    dropped: list[bytes] = []
    spool.on_drop = lambda payload, reason: dropped.append(bytes(payload))
    data = payloads(25)
    assert all(spool.append(p) for p in data)
    assert spool.dropped == {"drop_oldest": 15} and dropped == data[:15]
    assert drain(spool) == data[15:]


def test_too_large_and_lock(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1000)
    assert not spool.append(b"x" * 1000)
    assert spool.dropped == {"too_large": 1}
    with pytest.raises(SpoolError, match="in use by another process"):
        DiskSpool(str(tmp_path), 1000)
    spool.close()


def test_foreign_segment_refused(tmp_path: Path) -> None:
    (tmp_path / segment_name(1)).write_bytes(b"something else entirely")
    with pytest.raises(SpoolError, match="not a DDC spool segment"):
        DiskSpool(str(tmp_path), 1000)


def test_open_spool_config(tmp_path: Path) -> None:
    config = {
        "dir": str(tmp_path),
        "max_bytes": 4096,
        "when_full": "drop_oldest",
        "fsync_interval": 0,
    }
    spool = open_spool(config, "pair-a")
    assert isinstance(spool, DiskSpool) and spool.directory == str(tmp_path / "pair-a")
    spool.close()
    assert isinstance(open_spool({**config, "dir": ""}, "pair-a"), MemorySpool)


# --- torn tails -------------------------------------------------------------------------------


def write_spool(path: Path, count: int, rng: random.Random) -> list[bytes]:
    spool = DiskSpool(str(path), 1 << 24, segment_bytes=20_000)
    data = [rng.randbytes(rng.randint(0, 3000)) for _ in range(count)]
    for p in data:
        spool.append(p)
    spool.close()
    return data


def test_torn_tail_100_random_cuts(tmp_path: Path) -> None:
    rng = random.Random(11)
    data = write_spool(tmp_path / "orig", 60, rng)
    files = segment_files(tmp_path / "orig")
    last = files[-1]
    first_in_last = segment_seq(last)
    before = first_in_last - 1  # entries in the earlier, untouched segments
    blob = (tmp_path / "orig" / last).read_bytes()
    ends = [e.end for e in [scan(blob, MAGIC, None, limit=n) for n in range(1, 60)]]
    boundaries = {MAGIC, *ends}
    for trial in range(100):
        cut = rng.randint(0, len(blob) - 1)
        work = tmp_path / f"t{trial}"
        work.mkdir()
        for name in files:
            (work / name).write_bytes((tmp_path / "orig" / name).read_bytes())
        (work / last).write_bytes(blob[:cut])
        spool = DiskSpool(str(work), 1 << 24, segment_bytes=20_000)
        whole = len(scan(blob[:cut], MAGIC, None).entries) if cut >= MAGIC else 0
        assert drain(spool) == data[: before + whole], f"cut at {cut}"
        cut_entry = 0 if cut in boundaries or cut >= len(blob) else 1
        if cut < MAGIC:  # the segment lost its magic: rewritten empty, nothing was in it
            cut_entry = 0
        assert spool.torn_entries == cut_entry, f"cut at {cut}"
        assert spool.dropped["torn"] == cut_entry
        expected_bytes = cut - (max(e for e in boundaries if e <= cut) if cut >= MAGIC else 0)
        assert spool.torn_bytes == expected_bytes
        assert spool.append(b"after the tear")  # appending goes on right behind
        assert drain(spool) == [b"after the tear"]
        spool.close()


def test_damage_inside_a_segment_at_read_and_at_open(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1000)
    spool.reader.hot_bytes = 0  # no cache of the newest entries: every read from the file
    data = payloads(20)
    for p in data:
        spool.append(p)
    with open(tmp_path / segment_name(1), "r+b") as handle:  # damage entry 3 of segment 1
        handle.seek(MAGIC + 2 * (HEADER_SIZE + 100) + HEADER_SIZE + 5)
        handle.write(b"\xff")
    out = drain(spool, ack=False)
    assert out == data[:2] + data[8:]
    assert spool.dropped == {"corrupt": 6}
    spool.close()
    again = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1000)
    assert again.torn_entries == 6  # up to the next segment's first entry
    assert drain(again) == data[:2] + data[8:]
    again.close()


def test_a_reader_keeping_up_is_served_from_memory(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    spool.append(b"abc")
    item = spool.read()
    assert item is not None and item.payload == b"abc"  # the appended object itself, no copy
    assert spool.reader._fd is None  # the file was never opened for reading
    assert (tmp_path / segment_name(1)).stat().st_size == MAGIC + HEADER_SIZE + 3  # written
    spool.close()


def test_kill_loses_only_unflushed(tmp_path: Path) -> None:
    """Without close(): what flush() wrote survives (the page cache), the rest of the buffer not."""
    spool = DiskSpool(str(tmp_path), 1 << 20)
    data = payloads(10)
    for p in data[:6]:
        spool.append(p)
    spool.flush()
    for p in data[6:]:
        spool.append(p)
    os.close(spool._lock)  # a kill -9: no close(), no flush
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert drain(again) == data[:6] and again.torn_entries == 0
    again.close()


def test_default_segments_are_small_enough_to_delete_on_the_receive_loop() -> None:
    from ddc.egress.spool.disk import default_segment_bytes

    assert default_segment_bytes(8 << 30) == 4 << 20  # the default max_bytes
    assert default_segment_bytes(64 << 20) == 2 << 20
    assert default_segment_bytes(1 << 20) == 1 << 20


# --- reused segment files (spares.py) ---------------------------------------------------------


def spare_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.endswith(".spare"))


def test_scan_ends_cleanly_at_the_end_marker_of_a_reused_file() -> None:
    data = encode_entry(7, 1234, b"hello") + encode_entry(8, 1235, b"x" * 300)
    older = encode_entry(3, 1000, b"z" * 400)  # what the reused file held before
    found = scan(data + MARKER + older, 0, 7)
    assert len(found.entries) == 2 and found.end == len(data)
    assert (found.torn, found.fill, found.next_seq) == (None, True, 9)
    assert scan(data + MARKER[:10], 0, 7).fill  # a marker cut off by the end of the file
    window = scan(data + MARKER[:10], 0, 7, final=False)  # or by the end of a window
    assert (window.fill, window.torn, window.end) == (False, None, len(data))
    damaged = bytearray(data + MARKER + older)
    damaged[len(data) + 5] = 0
    assert scan(damaged, 0, 7).torn == f"impossible length {0xFFFFFFFF}"
    # a torn append over the marker: its first bytes, then what was there
    torn = data + encode_entry(9, 1236, b"y" * 300)[:10] + MARKER[10:] + older
    assert scan(torn, 0, 7).torn == "bad checksum" and not scan(torn, 0, 7).fill
    # an append cut off right after a whole entry: the older bytes that follow are not due
    cut = data + encode_entry(9, 1236, b"y") + older
    assert scan(cut, 0, 7).torn == "sequence 3 where 10 was due"


def test_released_segment_files_are_written_again_as_new_segments(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1000)
    data = payloads(45)  # 8 entries (992 bytes + magic) per segment
    for p in data[:40]:
        spool.append(p)
    files = segment_files(tmp_path)
    for _ in range(20):
        spool.read()
    spool.ack(16)
    assert spool.bytes == 3 * MAGIC + 24 * (HEADER_SIZE + 100)
    assert segment_files(tmp_path) == files[2:]
    assert spare_files(tmp_path) == [files[0] + ".spare", files[1] + ".spare"]
    spare = tmp_path / (files[1] + ".spare")
    size = MAGIC + 8 * (HEADER_SIZE + 100)
    held = spare.read_bytes()  # the older entries stay, behind an end marker
    assert len(held) == size and held[: MAGIC + HEADER_SIZE] == SEGMENT_MAGIC + MARKER
    inode = spare.stat().st_ino
    for p in data[40:]:  # the 41st starts a segment: the spare taken last is written again
        spool.append(p)
    reused = tmp_path / segment_name(41)
    assert reused.stat().st_ino == inode and spare_files(tmp_path) == [files[0] + ".spare"]
    spool.flush()
    assert reused.stat().st_size == size  # longer than its 5 entries and their marker
    assert drain(spool, ack=False) == data[20:]
    os.close(spool._lock)  # a kill -9
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert again.torn_entries == 0 and dict(again.dropped) == {}
    assert spare_files(tmp_path) == []
    assert drain(again) == data[16:]  # 17 on: read but not acknowledged, or not read
    assert reused.stat().st_size == MAGIC + 5 * (HEADER_SIZE + 100)  # the rest cut at open
    again.close()


def test_a_torn_append_into_a_reused_file_is_counted(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1000)
    data = payloads(20)
    for p in data[:9]:
        spool.append(p)
    drain(spool)  # segment 1 becomes a spare
    spool.sync()
    for p in data[9:17]:  # the 17th starts segment 17 in the spare
        spool.append(p)
    spool.flush()
    reused = tmp_path / segment_name(17)
    end = MAGIC + HEADER_SIZE + 100
    with open(reused, "r+b") as handle:  # a kill -9 in the middle of the next append
        handle.seek(end)
        handle.write(encode_entry(18, 1, data[17])[:60])
    os.close(spool._lock)
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert again.torn_entries == 1 and again.dropped["torn"] == 1
    assert drain(again) == data[9:17]
    again.close()


@pytest.mark.parametrize("fsync_interval", [1.0, 0.0])
def test_a_reused_file_is_named_on_disk_before_data_is_fsynced_into_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync_interval: float
) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, "drop_newest", fsync_interval, segment_bytes=1000)
    for p in payloads(9):
        spool.append(p)
    drain(spool)
    spool.sync()  # the directory holds no renamed file before the next rotation
    calls: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: (calls.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    for p in payloads(8):
        spool.append(p)  # the 17th entry goes into the spare (fsync_interval 0: fsynced at once)
    spool.sync()
    named = [os.path.basename(path) for path in calls]
    assert named.index(tmp_path.name) < named.index(segment_name(17))
    assert named.count(tmp_path.name) == 1  # that fsync covers the rotation's changes too
    spool.close()


def test_spares_are_bounded_and_left_out_of_a_restart(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1000)
    for p in payloads(41):
        spool.append(p)
    drain(spool)
    assert len(spare_files(tmp_path)) == 2  # of the five released segments
    assert segment_files(tmp_path) == [segment_name(41)]
    os.close(spool._lock)
    again = DiskSpool(str(tmp_path), 1 << 20)
    assert spare_files(tmp_path) == [] and again.pending == 1  # 41: its ack was not synced
    again.close()


def test_a_sync_survives_the_rotation_and_release_of_the_segment_it_fsyncs(
    tmp_path: Path,
) -> None:
    # the egress runs each fsync in a thread while the receiver goes on: the active segment may
    # be closed by a rotation and deleted (or reused) by an ack before its fsync runs
    spool = DiskSpool(str(tmp_path), 1 << 20, segment_bytes=1000, spare_segments=0)
    for p in payloads(3):
        spool.append(p)

    def meanwhile() -> None:
        for p in payloads(8):
            spool.append(p)  # the 9th rotates: segment 1 closed
        drain(spool)  # and wholly acknowledged: deleted

    def run(func, *args):
        if func is os.fsync and not done:
            done.append(meanwhile())
        return func(*args)

    done: list[None] = []
    spool.sync(run)
    assert done and spool.pending == 0
    spool.close()

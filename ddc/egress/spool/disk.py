"""The disk spool: append-only segment files and an ack file in one directory (docs/spool.md).

Rules, on top of base.py's:

* Open: the directory is locked (a second process on it is refused), the ack file read, every
  segment checked (segments.recover): a torn tail is truncated, counted in `torn_entries`
  (and dropped["torn"]) and `torn_bytes`, and logged; nothing before it is lost. Segments
  entirely at or below the ack are deleted. Sequence numbers go on after the highest one seen.
* Append: the entry is buffered and written (one writev() for many entries) by flush(): at
  WRITE_BUFFER bytes, before the reader reads the active segment, and at every sync(). The
  egress flushes whenever its deliverer runs (after each burst the receiver takes, at most 32
  datagrams), so a kill -9 loses at most the entries of that burst, like the datagrams waiting
  in the socket's buffer; a power loss loses at most what was appended since the last sync()
  (fsync_interval). With fsync_interval 0 every append is written and fsynced (much slower).
* Writes in a thread (write_in, the egress): one write at a time, under the lock; appends go
  on meanwhile and wait for the next flush (the receiver flushes itself only at
  WRITE_BUFFER_IN_THREAD). The reader hands out only what is written and reads the active
  segment only up to the end of the last completed write. A failed write also drops what was
  appended behind it (the file is cut back to where the write began).
  A segment is closed once it holds `segment_bytes`; the next one is named after its first
  sequence number. A closed segment deleted (wholly acknowledged or dropped) before the next
  sync() is never fsynced: a target that keeps up means the disk sees little more than the
  active segment. A failed write (disk full) is undone, its entries
  counted as "write_error" and dropped.
* drop_oldest frees whole segments: the oldest one that the reader has not started and that is
  not the active one is deleted and each of its entries counted; when no such segment exists
  the new entry is dropped instead (counted as "drop_newest").
* Ack: segments whose last entry is acknowledged are deleted, except the active one (which is
  replaced by a new one when an append finds the spool full and it wholly acknowledged); the ack
  itself reaches the disk at the next sync(). After a crash the entries acknowledged since the
  last sync are delivered again (at-least-once).
* A segment that leaves the spool (acknowledged or dropped) is kept as a spare, up to
  `spare_segments` of them, and written again as a later segment instead of deleted (spares.py:
  its rules; writing over pages a file has costs the kernel far less than new ones). Entries are
  written at their offsets (pwritev), as such a file is longer than its entries.
* Read: entries whose bytes on disk fail their check (damage after open) are skipped to the
  end of their segment and counted as dropped["corrupt"], with an ERROR line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ddc.egress.spool import files
from ddc.egress.spool import segments as seg
from ddc.egress.spool.base import Item, Payload, Spool
from ddc.egress.spool.format import (
    HEADER_SIZE,
    MARKER,
    SEGMENT_MAGIC,
    Entry,
    entry_header,
)
from ddc.egress.spool.reader import Reader
from ddc.egress.spool.segments import IOV_MAX, Segment
from ddc.egress.spool.spares import KEEP, Spares

log = logging.getLogger(__name__)

MAGIC = len(SEGMENT_MAGIC)
_new = tuple.__new__
WRITE_BUFFER = 256 * 1024  # bytes appended before they are written without waiting for flush()
# with writes in a thread (write_in): the receiver leaves the writing to the deliverer's turns
# until this much is buffered
WRITE_BUFFER_IN_THREAD = 2 * 1024 * 1024
Runner = Callable[..., Any]  # runs a blocking call: run(func, *args)


def default_segment_bytes(max_bytes: int) -> int:
    """max_bytes / 32, from 1 to 4 MiB. Deleting (or closing) a segment frees its pages in the
    calling thread, the receiver's: a 64 MiB segment held the receive loop for up to 34 ms at
    300 MB/s, a 4 MiB one for under 4 ms (docs/spool.md)."""
    return max(1 << 20, min(4 << 20, max_bytes // 32))


def _direct(func: Callable[..., Any], *args: Any) -> Any:
    return func(*args)


class DiskSpool(Spool):
    durable = True

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        when_full: str = "drop_newest",
        fsync_interval: float = 1.0,
        segment_bytes: int | None = None,
        spare_segments: int = KEEP,
    ) -> None:
        super().__init__(max_bytes, when_full)
        self.directory = directory
        self.fsync_interval = fsync_interval
        self.segment_bytes = segment_bytes or default_segment_bytes(max_bytes)
        self.segments: list[Segment] = []
        self.torn_entries = 0
        self.torn_bytes = 0
        self._synced_ack = 0
        # closed segments written since the last sync, with their still open descriptors
        self._unsynced: dict[Segment, int] = {}
        self._dirty = False
        self._dir_dirty = False
        self._parts: list[Payload] = []  # appended, not yet written: header, payload, ...
        self._buffered = 0
        self._write_run: Runner = _direct  # runs each write (write_in)
        self._write_lock: AbstractContextManager[Any] = nullcontext()
        self._write_buffer = WRITE_BUFFER
        self._spares = Spares(spare_segments)
        self._open()

    # --- open -----------------------------------------------------------------------------------

    def _open(self) -> None:
        self._lock = files.lock(self.directory)
        Spares.discard_stale(self.directory)
        self.acked = self._synced_ack = files.read_ack(self.directory)
        self.segments, self.torn_entries, self.torn_bytes = seg.recover_all(
            self.directory, self.dropped
        )
        next_seq = self.segments[-1].last_seq + 1 if self.segments else 1
        if not self.segments or next_seq <= self.acked:  # the ack outran the data on disk
            self.segments.append(seg.create(self.directory, max(next_seq, self.acked + 1)))
            self._dir_dirty = True
        self.next_seq = self.segments[-1].last_seq + 1
        self._release()
        self.bytes = sum(s.size for s in self.segments)
        self._fd = os.open(self.segments[-1].path, os.O_WRONLY)
        self.reader = Reader(self.segments, self.dropped, self.flush)
        self.reader.written_to = self.next_seq
        self.reader.written_end = self.segments[-1].size
        if self.pending:
            log.info(
                "spool %s: %d chunk(s), %d bytes waiting from before the restart",
                self.directory,
                self.pending,
                self.bytes,
            )

    # --- append ---------------------------------------------------------------------------------

    def append(self, payload: Payload) -> bool:
        size = HEADER_SIZE + len(payload)
        if size + MAGIC > self.max_bytes:
            self._dropped(payload, "too_large", f"larger than max_bytes {self.max_bytes}")
            return False
        active = self.segments[-1]
        if active.count and active.last_seq <= self.acked and self.bytes + size > self.max_bytes:
            active = self._renew()
        rotate = active.count > 0 and active.size >= self.segment_bytes
        need = size + (MAGIC if rotate else 0)
        if self.bytes + need > self.max_bytes and self.when_full == "drop_oldest":
            self._drop_oldest(need)
        if self.bytes + need > self.max_bytes:
            self._dropped(payload, "drop_newest", self.full_reason())
            return False
        if rotate:
            if not self.flush():
                return self.append(payload)  # the failed entries are counted; try this one anew
            try:
                active = self._rotate()
            except OSError as exc:
                self._dropped(payload, "write_error", f"cannot start a segment: {exc}")
                return False
        time_ms = int(time.time() * 1000)
        self._parts.append(entry_header(self.next_seq, time_ms, payload))
        self._parts.append(payload)
        entry = _new(Entry, (self.next_seq, time_ms, size, payload, active.size))
        self.reader.appended(entry, active)
        self._buffered += size
        active.size += size
        active.count += 1
        self.bytes += size
        self.next_seq += 1
        self.appended += 1
        if (
            self._buffered >= self._write_buffer
            or len(self._parts) >= IOV_MAX
            or self.fsync_interval <= 0
        ):
            self.flush()
        if self.on_append is not None:
            self.on_append()
        return True

    def write_in(self, run: Runner, lock: AbstractContextManager[Any]) -> None:
        """Writes run through `run` from now on (the egress passes gevent's threadpool: the
        copy into the page cache then runs on another core while the receiver keeps going).
        `lock` keeps a second flush waiting until the one in flight is done; appends may come in
        meanwhile. The receiver then writes itself only past WRITE_BUFFER_IN_THREAD."""
        self._write_run = run
        self._write_lock = lock
        self._write_buffer = WRITE_BUFFER_IN_THREAD

    def flush(self) -> bool:
        """Write the buffered entries to the active segment (the page cache; sync() makes them
        durable). On a failed write they, and whatever was appended while it was in flight, are
        taken back out, counted as "write_error" and dropped, and False is returned."""
        with self._write_lock:
            if not self._parts:
                return True
            parts, self._parts = self._parts, []
            buffered, self._buffered = self._buffered, 0
            written_to = self.next_seq
            active = self.segments[-1]
            start = active.size - buffered
            # in a reused file the entries are followed by the end marker (spares.py)
            buffers = [*parts, MARKER] if active.reused else parts
            length = buffered + (len(MARKER) if active.reused else 0)
            if self.fsync_interval <= 0:
                self._sync_reused_name(_direct)
            self._dirty = True  # set first: a kill while the write is in flight skips the rest
            try:
                self._write_run(
                    seg.write_at, self._fd, buffers, start, length, self.fsync_interval <= 0
                )
            except OSError as exc:
                self._undo_write(active, start, parts, buffered, exc)
                return False
            self.reader.written_to = written_to
            self.reader.written_end = start + buffered
            return True

    def _undo_write(
        self, active: Segment, start: int, parts: list[Payload], buffered: int, exc: OSError
    ) -> None:
        """A failed write: the file cut back to `start`, its entries and those appended behind
        them (no rotation can happen while a write is in flight) dropped as "write_error"."""
        parts += self._parts
        buffered += self._buffered
        self._parts, self._buffered = [], 0
        self._undo(active, start)
        count = len(parts) // 2
        active.size, active.count = start, active.count - count
        self.bytes -= buffered
        self.next_seq -= count
        self.appended -= count
        self.reader.discard_from(self.next_seq)
        for payload in parts[1::2]:
            self._dropped(payload, "write_error", f"writing {active.path} failed: {exc}")

    def _undo(self, active: Segment, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            log.error("spool %s: cannot undo a failed write: %s", active.path, exc)

    def _renew(self) -> Segment:
        """A fresh active segment in place of a wholly acknowledged one (which is deleted)."""
        try:
            active = self._rotate()
        except OSError as exc:
            log.error("spool %s: cannot start a segment: %s", self.directory, exc)
            return self.segments[-1]
        self._release()
        return active

    def _rotate(self) -> Segment:
        segment = self._spares.take(self.directory, self.next_seq)
        if segment is None:
            segment = seg.create(self.directory, self.next_seq)
        self._unsynced[self.segments[-1]] = self._fd
        self._fd = os.open(segment.path, os.O_WRONLY)
        self.segments.append(segment)
        self.reader.written_end = segment.size
        self.bytes += segment.size
        self._dir_dirty = True
        return segment

    def _drop_oldest(self, need: int) -> None:
        while self.bytes + need > self.max_bytes:
            start = next(
                (i + 1 for i, s in enumerate(self.segments) if s is self.reader.segment), 0
            )
            if start >= len(self.segments) - 1:
                return  # nothing unread outside the reader's and the active segment
            victim = self.segments.pop(start)
            self._count_dropped(victim, self.full_reason())
            self.reader.forget(victim)
            self._delete(victim)

    def _count_dropped(self, victim: Segment, why: str) -> None:
        """Each entry of a segment about to be deleted, through _dropped (so on_drop sees it)."""
        entries, unreadable = seg.all_entries(victim)
        for entry in entries:
            self._dropped(entry.payload, "drop_oldest", why)
        self.dropped["drop_oldest"] += unreadable

    def _delete(self, segment: Segment) -> None:
        """A segment leaves the spool: kept as a spare (spares.py) or deleted."""
        if not self._spares.retire(segment):
            try:
                os.unlink(segment.path)
            except OSError as exc:
                log.error("spool %s: cannot delete %s: %s", self.directory, segment.path, exc)
        fd = self._unsynced.pop(segment, None)
        if fd is not None:  # deleted before its fsync: its pages need never reach the disk
            os.close(fd)
        self.bytes -= segment.size
        self._dir_dirty = True

    # --- read and ack ---------------------------------------------------------------------------

    def read(self) -> Item | None:
        return self.reader.next(self.acked)

    def next_time_ms(self) -> int | None:
        entry = self.reader.peek(self.acked)
        return None if entry is None else entry.time_ms

    def ack(self, seq: int) -> None:
        seq = min(seq, self.next_seq - 1)
        if seq <= self.acked:
            return
        self.released += self._count_between(self.acked, seq)
        self.acked = seq
        self._release()

    def _release(self) -> None:
        while len(self.segments) > 1 and self.segments[0].last_seq <= self.acked:
            self._delete(self.segments.pop(0))

    def _count_between(self, low: int, high: int) -> int:
        """Entries on disk with low < seq <= high."""
        total = 0
        for segment in self.segments:
            if segment.first_seq > high:
                break
            top = min(segment.last_seq, high)
            bottom = max(segment.first_seq, low + 1)
            if top >= bottom:
                total += top - bottom + 1
        return total

    @property
    def pending(self) -> int:
        return self._count_between(self.acked, self.next_seq - 1)

    @property
    def unread(self) -> int:
        reader = self.reader
        return len(reader.ahead) + self._count_between(reader.expect - 1, self.next_seq - 1)

    # --- durability -----------------------------------------------------------------------------

    def sync(self, run: Runner | None = None) -> None:
        """fsync what was written, then save the ack; `run` executes each blocking call (the
        egress passes gevent's threadpool so the receiver keeps running meanwhile)."""
        run = run or _direct
        self.flush()
        closed, self._unsynced = self._unsynced, {}
        # a copy of the active descriptor: the receiver may rotate and close it meanwhile
        active = os.dup(self._fd) if self._dirty else None
        self._dirty = False
        self._sync_reused_name(run)
        for fd in [*closed.values(), *([] if active is None else [active])]:
            try:
                run(os.fsync, fd)
            finally:
                os.close(fd)
        if self.acked != self._synced_ack:
            acked = self.acked
            run(files.save_ack, self.directory, acked)
            self._synced_ack = acked
        if self._dir_dirty:
            self._dir_dirty = False
            run(files.fsync_dir, self.directory)

    def _sync_reused_name(self, run: Runner) -> None:
        """A spare renamed to a segment since the last directory fsync: the name reaches the disk
        before the data written into the file (spares.py). That fsync covers every directory
        change made so far, so sync() need not fsync the directory again for them."""
        if self._spares.renamed:
            self._spares.renamed = False
            self._dir_dirty = False
            run(files.fsync_dir, self.directory)

    def close(self) -> None:
        if self._lock < 0:
            return
        try:
            self.sync()
        except OSError as exc:
            log.error("spool %s: final sync failed: %s", self.directory, exc)
        self.reader.close()
        self._spares.clear()
        for fd in (self._fd, self._lock):
            os.close(fd)
        self._lock = -1

    def describe(self) -> str:
        return self.directory

"""Segment files of a disk spool: what one holds, checking it at open, reading entries back.

recover_all() opens a spool's segments in order, each checked by recover(), the open-time
check of one segment (format.scan() over the whole file in windows):
it returns what the file holds and truncates a torn tail, so that appending can go on right
after the last whole entry. A file that does not start with SEGMENT_MAGIC is refused unless it
is shorter than the magic (a crash while creating it): that one is rewritten empty. What
follows an end marker (format.MARKER: a segment in a reused file) is cut off too, but not torn:
it is the file's older content, nothing of this segment.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass

from ddc.egress.spool.format import (
    HEADER,
    HEADER_SIZE,
    SEGMENT_MAGIC,
    Entry,
    scan,
    segment_name,
    segment_seq,
)
from ddc.errors import DDCError

log = logging.getLogger(__name__)

WINDOW = 4 * 1024 * 1024  # bytes read at a time when checking a segment
READ_BLOCK = 1024 * 1024  # bytes read at a time when delivering
IOV_MAX = 1024  # buffers per writev()


class SpoolError(DDCError):
    """A spool directory that cannot be used as it is (foreign files, no permission)."""


@dataclass(eq=False)  # identity: the spool keys its open descriptors by segment
class Segment:
    first_seq: int
    path: str
    size: int  # bytes in the file (magic + whole entries)
    count: int  # entries in it
    reused: bool = False  # a reused file (spares.py): its entries are followed by format.MARKER

    @property
    def last_seq(self) -> int:
        """The last entry's number (first_seq - 1 while empty)."""
        return self.first_seq + self.count - 1


@dataclass
class Torn:
    """What recover() cut from a segment's end."""

    entries: int  # 1 when bytes of a partial or damaged entry were cut, else 0
    bytes: int
    why: str


def create(directory: str, first_seq: int) -> Segment:
    path = os.path.join(directory, segment_name(first_seq))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, SEGMENT_MAGIC)
    finally:
        os.close(fd)
    return Segment(first_seq, path, len(SEGMENT_MAGIC), 0)


def recover(path: str, first_seq: int) -> tuple[Segment, Torn | None]:
    """Check a segment file entry by entry; truncate a torn tail (format.scan's rules)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        magic = handle.read(len(SEGMENT_MAGIC))
        if magic != SEGMENT_MAGIC:
            if len(magic) < len(SEGMENT_MAGIC) and SEGMENT_MAGIC.startswith(magic):
                handle.seek(0)
                handle.truncate()
                handle.write(SEGMENT_MAGIC)
                torn = Torn(0, size, "created, never written") if size else None
                return Segment(first_seq, path, len(SEGMENT_MAGIC), 0), torn
            raise SpoolError(f"{path} is not a DDC spool segment; move it out of the spool dir")
        offset, expect, count = len(SEGMENT_MAGIC), first_seq, 0
        why: str | None = None
        unused = False
        while offset < size:
            handle.seek(offset)
            window = handle.read(WINDOW)
            final = offset + len(window) >= size
            found = scan(window, 0, expect, base=offset, final=final)
            count += len(found.entries)
            expect = found.next_seq
            if found.fill:
                unused = True
                offset = found.end
                break
            if found.torn is not None or final:
                why = found.torn
                offset = found.end
                break
            if not found.entries:  # one entry longer than the window
                length = HEADER.unpack_from(window, 0)[0]
                handle.seek(offset)
                found = scan(handle.read(HEADER_SIZE + length), 0, expect, base=offset)
                if not found.entries:
                    why = found.torn or "unreadable entry"
                    break
                count += 1
                expect = found.next_seq
            offset = found.end
        torn = None
        if offset < size and unused:
            handle.truncate(offset)  # the end marker and a reused file's older content
        elif offset < size:
            torn = Torn(1, size - offset, why or "partial entry")
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())
    return Segment(first_seq, path, min(offset, size), count), torn


def recover_all(directory: str, dropped: Counter[str]) -> tuple[list[Segment], int, int]:
    """Every segment of `directory` in order, each checked by recover(); a tear is logged and
    counted in dropped["torn"] (inside the spool, up to the next segment's first entry).
    Returns the segments and the torn entries and bytes."""
    firsts = sorted(f for f in map(segment_seq, os.listdir(directory)) if f is not None)
    segments: list[Segment] = []
    torn_entries = torn_bytes = 0
    for index, first in enumerate(firsts):
        name = segment_name(first)
        segment, torn = recover(os.path.join(directory, name), first)
        if torn is not None and index + 1 < len(firsts):  # damage inside the spool
            torn.entries = max(torn.entries, firsts[index + 1] - segment.last_seq - 1)
        if torn is not None:
            torn_entries += torn.entries
            torn_bytes += torn.bytes
            dropped["torn"] += torn.entries
            log.error(
                "spool %s: %s ended in %d bytes that are not a whole entry (%s), cut off: "
                "%d chunk(s) lost to the tear; every entry before it kept",
                directory,
                name,
                torn.bytes,
                torn.why,
                torn.entries,
            )
        segments.append(segment)
    return segments, torn_entries, torn_bytes


def write_at(
    fd: int, buffers: list[bytes | memoryview], start: int, length: int, fsync: bool
) -> None:
    """pwritev of `buffers` (`length` bytes) at `start`, then an fsync if asked; OSError, also
    for a short write."""
    done = 0
    for first in range(0, len(buffers), IOV_MAX):
        done += os.pwritev(fd, buffers[first : first + IOV_MAX], start + done)
    if done != length:
        raise OSError(f"short write ({done} of {length} bytes)")
    if fsync:
        os.fsync(fd)


def read_entries(
    fd: int, segment: Segment, offset: int, expect_seq: int, end: int | None = None
) -> tuple[list[Entry], str]:
    """Whole entries from `offset` up to `end` (default: the segment's size; at least one if any
    is left, about READ_BLOCK bytes of them); with "" or, when the file holds something else
    there, why not."""
    left = (segment.size if end is None else end) - offset
    if left <= 0:
        return [], ""
    data = os.pread(fd, min(left, READ_BLOCK), offset)
    found = scan(data, 0, expect_seq, base=offset, final=len(data) >= left)
    if found.entries or found.torn is not None:
        return found.entries, found.torn or ""
    if len(data) < HEADER_SIZE:
        return [], "partial header"
    length = HEADER.unpack_from(data, 0)[0]
    data = os.pread(fd, HEADER_SIZE + length, offset)
    found = scan(data, 0, expect_seq, base=offset)
    return found.entries, found.torn or ""


def all_entries(segment: Segment) -> tuple[list[Entry], int]:
    """Every entry of a segment, and how many of its entries could not be read (damage)."""
    fd = os.open(segment.path, os.O_RDONLY)
    found: list[Entry] = []
    try:
        offset, expect = len(SEGMENT_MAGIC), segment.first_seq
        while offset < segment.size:
            entries, torn = read_entries(fd, segment, offset, expect)
            found += entries
            for entry in entries:
                offset, expect = entry.offset + entry.size, entry.seq + 1
            if torn or not entries:
                return found, segment.last_seq - expect + 1
    finally:
        os.close(fd)
    return found, 0

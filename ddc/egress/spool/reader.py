"""The disk spool's reader: its position in the segments, a read-ahead, and a cache of the newest
entries so that a reader keeping up never reads back what was just written.

Rules:

* The position is (segment, offset, expected sequence number). Entries are handed out in order,
  each once; entries at or below the acknowledged position are skipped.
* Every append also goes into the hot cache (references, no copy), which forgets its oldest
  entries past `hot_bytes`. The next entry is served from the cache when it holds exactly the
  expected sequence number, once it is written to the file (the spool's buffer is flushed
  first; the position then moves to that entry's segment); otherwise it is
  read from disk (segments.read_entries), buffered entries being written first when the reader
  is in the active segment.
* At the end of a segment that is not the active one the reader moves to the next segment in the
  list (segments dropped by drop_oldest are skipped that way, and forget() removes their entries
  from the cache). A damaged entry on disk ends its segment for the reader: the entries left in
  it are counted in dropped["corrupt"] with an ERROR line.
* The flush may wait for a write in a thread (DiskSpool.write_in), and meanwhile another greenlet
  may read (the deliverer, and a peek for /healthz): after every flush the next step is decided
  again from the current state (read-ahead first, the cache's head, the active segment's written
  end), never from what was seen before it.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from collections.abc import Callable

from ddc.egress.spool import segments as seg
from ddc.egress.spool.format import SEGMENT_MAGIC, Entry
from ddc.egress.spool.segments import Segment

log = logging.getLogger(__name__)

MAGIC = len(SEGMENT_MAGIC)
HOT_BYTES = 32 * 1024 * 1024


class Reader:
    def __init__(
        self,
        segments: list[Segment],
        dropped: Counter[str],
        flush: Callable[[], bool],
        hot_bytes: int = HOT_BYTES,
    ) -> None:
        self.segments = segments  # the spool's list, shared
        self.dropped = dropped
        self.flush = flush
        self.hot_bytes = hot_bytes
        self.segment = segments[0]
        self.offset = MAGIC
        self.expect = self.segment.first_seq
        self.ahead: deque[Entry] = deque()
        self._fd: int | None = None
        self._hot: deque[tuple[Entry, Segment]] = deque()
        self._hot_size = 0
        # the spool sets both: entries below this sequence number are in the file, and the
        # active segment's bytes up to this offset
        self.written_to = 0
        self.written_end = 0

    # --- the cache ------------------------------------------------------------------------------

    def appended(self, entry: Entry, segment: Segment) -> None:
        self._hot.append((entry, segment))
        self._hot_size += entry.size
        while self._hot_size > self.hot_bytes and self._hot:
            self._hot_size -= self._hot.popleft()[0].size

    def forget(self, segment: Segment) -> None:
        """A segment was deleted unread: its entries leave the cache."""
        kept = deque(pair for pair in self._hot if pair[1] is not segment)
        self._hot_size = sum(entry.size for entry, _ in kept)
        self._hot = kept

    def discard_from(self, seq: int) -> None:
        """Entries from `seq` on were never written (a failed write): they leave the cache."""
        while self._hot and self._hot[-1][0].seq >= seq:
            self._hot_size -= self._hot.pop()[0].size

    def _from_hot(self) -> Entry | None:
        hot = self._hot
        while hot and hot[0][0].seq < self.expect:
            self._hot_size -= hot.popleft()[0].size
        if not hot or hot[0][0].seq != self.expect:
            return None
        if hot[0][0].seq >= self.written_to:
            # flush() may wait for a write in flight (which can fail and discard entries) while
            # another greenlet reads (a peek for the health check): decide again afterwards
            self.flush()
            if self.ahead or not hot or hot[0][0].seq != self.expect:
                return None  # next() takes the read-ahead, or reads again
            if hot[0][0].seq >= self.written_to:
                return None  # never handed out before it is in the file
        entry, segment = hot.popleft()
        self._hot_size -= entry.size
        if segment is not self.segment:
            self._move_to(segment)
        self.offset = entry.offset + entry.size
        self.expect = entry.seq + 1
        return entry

    # --- reading --------------------------------------------------------------------------------

    def next(self, acked: int) -> Entry | None:
        """The next unread entry above `acked`, or None."""
        while True:
            entry = self.ahead.popleft() if self.ahead else self._from_hot()
            if entry is None:
                if not self._load():
                    return None
            elif entry.seq > acked:
                return entry

    def peek(self, acked: int) -> Entry | None:
        entry = self.next(acked)
        if entry is not None:
            self.ahead.appendleft(entry)
        return entry

    def _load(self) -> bool:
        """Fill the read-ahead from disk; False when nothing is unread."""
        while not self.ahead:
            if self.segment is self.segments[-1]:
                # may wait for a write in flight, during which the segment may be closed and
                # another greenlet may read: everything below is decided from the state after it
                self.flush()
                if self.ahead:
                    return True
            segment = self.segment
            end = segment.size
            if segment is self.segments[-1]:
                end = self.written_end  # appends may have come in during the write
            if self.offset >= end:
                if segment is self.segments[-1]:
                    return False
                following = next(s for s in self.segments if s.first_seq > segment.first_seq)
                self._move_to(following)
                continue
            if self._fd is None:
                self._fd = os.open(segment.path, os.O_RDONLY)
            entries, torn = seg.read_entries(self._fd, segment, self.offset, self.expect, end)
            for entry in entries:
                self.offset = entry.offset + entry.size
                self.expect = entry.seq + 1
            self.ahead.extend(entries)
            if torn:
                lost = segment.last_seq - self.expect + 1
                self.dropped["corrupt"] += lost
                log.error(
                    "spool: %s damaged at byte %d (%s): skipped %d chunk(s) to its end",
                    segment.path,
                    self.offset,
                    torn,
                    lost,
                )
                self.offset = segment.size
                self.expect = segment.last_seq + 1
        return True

    def _move_to(self, segment: Segment) -> None:
        self.close()
        self.segment = segment
        self.offset = MAGIC
        self.expect = segment.first_seq

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

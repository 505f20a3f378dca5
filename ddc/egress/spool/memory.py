"""The in-memory spool (`[egress.spool] dir = ""`): the same rules as a disk spool (base.py),
lost with the process. Charges each entry its length plus ENTRY_OVERHEAD against max_bytes;
drop_oldest drops the oldest unread entries one at a time, exactly as many as make room."""

from __future__ import annotations

import time
from collections import deque

from ddc.egress.spool.base import Item, Payload, Spool

ENTRY_OVERHEAD = 64  # bytes charged per entry, so empty chunks cannot queue without bound


class MemorySpool(Spool):
    def __init__(self, max_bytes: int, when_full: str = "drop_newest") -> None:
        super().__init__(max_bytes, when_full)
        self._unread: deque[Item] = deque()
        self._read: deque[Item] = deque()  # read, not yet acknowledged
        self._next = 1

    def append(self, payload: Payload) -> bool:
        size = len(payload) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            self._dropped(payload, "too_large", f"larger than max_bytes {self.max_bytes}")
            return False
        if self.bytes + size > self.max_bytes and self.when_full == "drop_oldest":
            while self._unread and self.bytes + size > self.max_bytes:
                old = self._unread.popleft()
                self.bytes -= old.size
                self._dropped(old.payload, "drop_oldest", self.full_reason())
        if self.bytes + size > self.max_bytes:
            self._dropped(payload, "drop_newest", self.full_reason())
            return False
        item = Item(self._next, int(time.time() * 1000), size, payload, 0)
        self._next += 1
        self._unread.append(item)
        self.bytes += size
        self.appended += 1
        if self.on_append is not None:
            self.on_append()
        return True

    def read(self) -> Item | None:
        if not self._unread:
            return None
        item = self._unread.popleft()
        self._read.append(item)
        return item

    def ack(self, seq: int) -> None:
        if seq <= self.acked:
            return
        self.acked = seq
        read = self._read
        while read and read[0].seq <= seq:
            self.bytes -= read.popleft().size
            self.released += 1

    @property
    def pending(self) -> int:
        return len(self._read) + len(self._unread)

    @property
    def unread(self) -> int:
        return len(self._unread)

    def next_time_ms(self) -> int | None:
        return self._unread[0].time_ms if self._unread else None

    def take_unacked(self) -> list[Item]:
        """Everything not acknowledged, emptied out (shutdown: the caller counts it lost)."""
        items = [*self._read, *self._unread]
        self._read.clear()
        self._unread.clear()
        self.bytes = 0
        return items

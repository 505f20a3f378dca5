"""The deliverer's in-flight window: spool entries handed to the sink, not yet acknowledged.

Rules (pure; no I/O):

* add() takes entries in spool order (increasing sequence numbers) and returns the entry's slot;
  settle(slot) marks it confirmed (or dropped and counted) by the sink, in any order, once.
* advance() releases the settled entries at the front and returns the highest sequence number
  released, or None: the spool may be acknowledged up to it. An unsettled entry holds back every
  entry behind it, so the spool's position never passes an unconfirmed entry.
* room() is False while the window holds `max_bytes` of entries or `max_records` records; an
  empty window always has room (one entry larger than the bounds still goes through).
"""

from __future__ import annotations

from collections import deque


class Slot:
    __slots__ = ("records", "seq", "settled", "size", "time_ms")

    def __init__(self, seq: int, size: int, records: int, time_ms: int) -> None:
        self.seq = seq
        self.size = size
        self.records = records
        self.time_ms = time_ms
        self.settled = False


class Window:
    def __init__(self, max_bytes: int, max_records: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.bytes = 0
        self.records = 0
        self._slots: deque[Slot] = deque()

    def __len__(self) -> int:
        return len(self._slots)

    def room(self) -> bool:
        if not self._slots:
            return True
        if self.bytes >= self.max_bytes:
            return False
        return self.max_records is None or self.records < self.max_records

    def add(self, seq: int, size: int, records: int, time_ms: int) -> Slot:
        slot = Slot(seq, size, records, time_ms)
        self._slots.append(slot)
        self.bytes += size
        self.records += records
        return slot

    @staticmethod
    def settle(slot: Slot) -> None:
        slot.settled = True

    def advance(self) -> int | None:
        released = None
        slots = self._slots
        while slots and slots[0].settled:
            slot = slots.popleft()
            self.bytes -= slot.size
            self.records -= slot.records
            released = slot.seq
        return released

    def oldest_time_ms(self) -> int | None:
        return self._slots[0].time_ms if self._slots else None

    def unsettled_records(self) -> int:
        return sum(slot.records for slot in self._slots if not slot.settled)

"""The merge loop's batches in flight, and which Kafka offsets they allow it to commit.

A pure state machine (no I/O); the loop (dedup_service.merger) forwards up to `max_in_flight`
polled batches at once and asks this window what it may commit and where to read again. Rules:
  * batches are opened in poll order and each is settled once: forwarded, or failed with the
    reason;
  * offsets are committed only up to the end of the longest run of forwarded batches from the
    oldest open one: no offset is committed past a record that was not forwarded, whatever order
    the batches finish in;
  * once the oldest open batch failed, the loop reads every partition again from the first offset
    the open batches hold for it (`rewind_points`, after every batch settled): records a later
    batch forwarded meanwhile are read again and found duplicates, none is skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

Offsets = dict[Hashable, int]  # partition → offset


@dataclass(eq=False)
class Flight:
    first: Offsets  # partition → the batch's first offset there
    end: Offsets  # partition → the offset after the batch's last record there
    settled: bool = False
    error: BaseException | None = None


class MergeWindow:
    def __init__(self) -> None:
        self.flights: deque[Flight] = deque()

    def __len__(self) -> int:
        return len(self.flights)

    def open(self, first: Mapping[Hashable, int], end: Mapping[Hashable, int]) -> Flight:
        flight = Flight(dict(first), dict(end))
        self.flights.append(flight)
        return flight

    @staticmethod
    def settle(flight: Flight, error: BaseException | None = None) -> None:
        if flight.settled:
            raise ValueError("a batch is settled once")
        flight.settled, flight.error = True, error

    def oldest(self) -> Flight | None:
        return self.flights[0] if self.flights else None

    def committable(self) -> Offsets:
        """Takes the forwarded batches from the oldest on; the offsets they allow to commit."""
        offsets: Offsets = {}
        while self.flights and self.flights[0].settled and self.flights[0].error is None:
            offsets.update(self.flights.popleft().end)
        return offsets

    def failure(self) -> BaseException | None:
        """The oldest open batch's error, once it failed (the loop then rewinds and pauses)."""
        oldest = self.oldest()
        return oldest.error if oldest is not None and oldest.settled else None

    def all_settled(self) -> bool:
        return all(flight.settled for flight in self.flights)

    def rewind_points(self) -> Offsets:
        """Per partition, the first offset an open batch holds: where to read again. Empties the
        window (call it once every batch settled)."""
        if not self.all_settled():
            raise ValueError("rewind only once every batch in flight settled")
        points: Offsets = {}
        for flight in self.flights:
            for tp, offset in flight.first.items():
                points[tp] = min(offset, points.get(tp, offset))
        self.flights.clear()
        return points

"""A queue bounded by the total cost of its items (records or bytes) between greenlet stages."""

from __future__ import annotations

from collections import deque
from typing import Any

from gevent.event import Event


class CostQueue:
    """FIFO bounded by the sum of item costs; put() blocks (or refuses) while over the bound.

    An item larger than the whole bound is still accepted into an empty queue, so one huge
    record cannot wedge the pipeline.
    """

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost
        self.cost = 0
        self._items: deque[tuple[Any, int]] = deque()
        self._readable = Event()
        self._writable = Event()
        self._writable.set()

    def __len__(self) -> int:
        return len(self._items)

    def full_for(self, cost: int) -> bool:
        return bool(self._items) and self.cost + cost > self.max_cost

    def put_nowait(self, item: Any, cost: int) -> bool:
        """False (nothing queued) when the item does not fit."""
        if self.full_for(cost):
            return False
        self._push(item, cost)
        return True

    def put(self, item: Any, cost: int, timeout: float | None = None) -> bool:
        """Wait for room; False when `timeout` passed first."""
        while self.full_for(cost):
            self._writable.clear()
            if not self._writable.wait(timeout) and timeout is not None:
                return False
        self._push(item, cost)
        return True

    def _push(self, item: Any, cost: int) -> None:
        self._items.append((item, cost))
        self.cost += cost
        self._readable.set()

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; raises TimeoutError when `timeout` passes first."""
        while not self._items:
            self._readable.clear()
            if not self._readable.wait(timeout):
                raise TimeoutError
        item, cost = self._items.popleft()
        self.cost -= cost
        self._writable.set()
        return item

    def get_nowait(self) -> Any:
        if not self._items:
            raise TimeoutError
        return self.get(0)

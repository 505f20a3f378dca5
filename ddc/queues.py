"""A queue bounded by the total cost of its items (records or bytes) between greenlet stages."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Final

import gevent
from gevent.event import Event

# Put behind the last item: the greenlet consuming the queue returns when it takes it.
STOP: Final = object()
# Cost charged per queued item on top of its bytes, so empty items cannot queue without bound.
ITEM_OVERHEAD: Final = 64


class CostQueue:
    """FIFO bounded by the sum of item costs, and optionally of their sizes in bytes.

    put() blocks (or put_nowait refuses) while over a bound. An item larger than the whole
    bound is still accepted into an empty queue, so one huge record cannot wedge the pipeline.
    """

    def __init__(self, max_cost: int, max_bytes: int | None = None) -> None:
        self.max_cost = max_cost
        self.max_bytes = max_bytes
        self.cost = 0
        self.bytes = 0
        self._items: deque[tuple[Any, int, int]] = deque()
        self._readable = Event()
        self._writable = Event()
        self._writable.set()

    def __len__(self) -> int:
        return len(self._items)

    def full_for(self, cost: int, size: int = 0) -> bool:
        if not self._items:
            return False
        if self.cost + cost > self.max_cost:
            return True
        return self.max_bytes is not None and self.bytes + size > self.max_bytes

    def put_nowait(self, item: Any, cost: int, size: int = 0) -> bool:
        """False (nothing queued) when the item does not fit."""
        if self.full_for(cost, size):
            return False
        self._push(item, cost, size)
        return True

    def put(self, item: Any, cost: int, timeout: float | None = None, size: int = 0) -> bool:
        """Wait for room; False when `timeout` passed first."""
        while self.full_for(cost, size):
            self._writable.clear()
            if not self._writable.wait(timeout) and timeout is not None:
                return False
        self._push(item, cost, size)
        return True

    def _push(self, item: Any, cost: int, size: int) -> None:
        self._items.append((item, cost, size))
        self.cost += cost
        self.bytes += size
        self._readable.set()

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; raises TimeoutError when `timeout` passes first."""
        while not self._items:
            self._readable.clear()
            if not self._readable.wait(timeout):
                raise TimeoutError
        item, cost, size = self._items.popleft()
        self.cost -= cost
        self.bytes -= size
        self._writable.set()
        return item

    def get_nowait(self) -> Any:
        if not self._items:
            raise TimeoutError
        return self.get(0)

    def drain(self) -> Iterator[Any]:
        """Takes every item left (STOP markers skipped), for counting what was never consumed."""
        while self._items:
            item = self.get_nowait()
            if item is not STOP:
                yield item


def finish(queue: CostQueue, consumer: gevent.Greenlet | None, timeout: float) -> bool:
    """Puts STOP behind what `consumer` still has to take from `queue` and waits up to `timeout`
    seconds for it to return; True when it did (or was not running)."""
    if consumer is None or consumer.dead:
        return True
    deadline = time.monotonic() + timeout
    queue.put(STOP, 1, timeout=max(0.1, timeout))
    consumer.join(max(0.1, deadline - time.monotonic()))
    return consumer.dead

"""A rate cap with a finite buffer behind it, like a real link's serialisation.

The link sends `rate` bits/s of UDP payload. A datagram admitted now leaves once the link has
sent everything admitted before it and itself; the backlog (bytes admitted but not yet sent)
never exceeds `buffer`: a datagram that does not fit is refused, and the caller drops it as
`overflow`. These drops depend on arrival times, like the real hardware's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import gevent
from gevent.event import Event


class RateCap:
    """admit() from the relay; run(send) in its own greenlet forwards each datagram when due."""

    def __init__(self, rate_bits: float, buffer: int) -> None:
        self.bytes_per_s = rate_bits / 8.0
        self.buffer = buffer
        self.queue: deque[tuple[float, bytes]] = deque()  # (time it leaves, datagram)
        self.queued_bytes = 0
        self._link_free_at = 0.0  # when the link has sent everything admitted so far
        self._ready = Event()
        self._draining = False

    def admit(self, datagram: bytes | memoryview) -> bool:
        """Queue a copy of `datagram`; False when the backlog would overflow the buffer."""
        size = len(datagram)
        now = time.monotonic()
        free_at = self._link_free_at
        backlog = (free_at - now) * self.bytes_per_s if free_at > now else 0.0
        if backlog + size > self.buffer:
            return False
        self._link_free_at = max(now, free_at) + size / self.bytes_per_s
        self.queue.append((self._link_free_at, bytes(datagram)))
        self.queued_bytes += size
        if not self._ready.is_set():
            self._ready.set()
        return True

    def run(self, send: Callable[[bytes], None]) -> None:
        """Forward each queued datagram at its time; returns once drain() was called and the
        queue is empty."""
        queue = self.queue
        while True:
            if not queue:
                if self._draining:
                    return
                self._ready.clear()
                self._ready.wait()
                continue
            delay = queue[0][0] - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
                continue
            _, datagram = queue.popleft()
            self.queued_bytes -= len(datagram)
            send(datagram)

    def drain(self) -> None:
        """run() forwards what is queued, then returns."""
        self._draining = True
        self._ready.set()

    def take_all(self) -> list[bytes]:
        """Empty the queue: the datagrams that were still waiting for the link."""
        left = [datagram for _, datagram in self.queue]
        self.queue.clear()
        self.queued_bytes = 0
        return left

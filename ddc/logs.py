"""Log lines about repeated events (drops, refusals, outages) at a bounded rate."""

from __future__ import annotations

import logging
import time


class ThrottledLog:
    """At most one line per `kind` every `interval` seconds, saying how many events it covers.

    Counters count every event; the log names the cause without writing a line per packet.
    """

    def __init__(self, logger: logging.Logger, interval: float, level: int = logging.ERROR):
        self.logger = logger
        self.interval = interval
        self.level = level
        self._last: dict[str, float] = {}
        self._pending: dict[str, int] = {}

    def __call__(
        self, kind: str, message: str, *args: object, count: int = 1, force: bool = False
    ) -> bool:
        """Log `message % args` (with the events since the last line) unless one was logged
        for `kind` less than `interval` ago; True when a line was written."""
        pending = self._pending.get(kind, 0) + count
        now = time.monotonic()
        if not force and now - self._last.get(kind, -self.interval) < self.interval:
            self._pending[kind] = pending
            return False
        self._last[kind] = now
        self._pending[kind] = 0
        if pending > count:
            message += " (%d such events since the last line)"
            args = (*args, pending)
        self.logger.log(self.level, message, *args)
        return True

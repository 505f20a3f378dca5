"""Per-link counters shared by every instance (a Redis hash), batched in memory between flushes."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from typing import Any

from dedup_service.errors import RedisUnavailable
from dedup_service.store import Store

log = logging.getLogger(__name__)

KINDS = ("first", "duplicate", "conflict", "invalid", "missing")


class StatsBook:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: Tally[str] = Tally()

    def add(self, link: str, kind: str, amount: int = 1) -> None:
        if amount:
            self._pending[f"{link}:{kind}"] += amount

    def flush(self) -> None:
        """Writes the counts gathered since the last flush; keeps them when Redis is down."""
        deltas, self._pending = dict(self._pending), Tally()
        try:
            self.store.add_stats(deltas)
        except RedisUnavailable:
            self._pending.update(deltas)
            raise

    def snapshot(self) -> dict[str, Any]:
        """{"links": {link: {first, duplicate, conflict, invalid, missing}}} across all instances."""
        try:
            self.flush()
        except RedisUnavailable:
            log.debug("stats not flushed: Redis unavailable")
        links: dict[str, dict[str, int]] = {
            name: dict.fromkeys(KINDS, 0) for name in self.store.links().values()
        }
        for field, value in self.store.read_stats().items():
            link, _, kind = field.rpartition(":")
            if kind in KINDS:
                links.setdefault(link, dict.fromkeys(KINDS, 0))[kind] = value
        return {"links": links}

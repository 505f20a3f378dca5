"""Divergence: a record that arrived on some links only, divergence_window after its first copy.

In redundant mode every record should arrive on every link; one that did not is counted as missing
on each link that lacks it (`ddc_dedup_missing_on_link_total{link}`, `/v1/stats`), and logged:
that is how an operator learns that one link silently loses data while the other covers for it.
Every instance may sweep; popping due ids is atomic, so each id is judged by one instance only.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally

from gevent.event import Event

from dedup_service.errors import RedisUnavailable
from dedup_service.metrics import DedupMetrics
from dedup_service.stats import StatsBook
from dedup_service.store import POP_LIMIT, Store

log = logging.getLogger(__name__)
LOG_SAMPLE = 5


class DivergenceWatch:
    def __init__(
        self, store: Store, metrics: DedupMetrics, stats: StatsBook, divergence_window: float
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.stats = stats
        self.window_ms = int(divergence_window * 1000)
        self.interval = min(1.0, max(0.05, divergence_window / 4))

    def sweep(self, now_ms: int | None = None) -> dict[str, int]:
        """Judges every id whose divergence window has passed; missing count per link."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        links = self.store.links(refresh=True)
        missing: Tally[str] = Tally()
        samples: dict[str, list[str]] = {}
        every_link = sum(1 << bit for bit in links)
        while True:
            popped, diverged = self.store.pop_due(now - self.window_ms, every_link)
            for ident, mask in diverged:
                if mask is None:
                    self.metrics.divergence_unknown.inc()
                    continue
                for bit, name in links.items():
                    if not mask >> bit & 1:
                        missing[name] += 1
                        if len(samples.setdefault(name, [])) < LOG_SAMPLE:
                            samples[name].append(ident)
            if popped < POP_LIMIT:
                break
        for name, amount in missing.items():
            self.metrics.missing_on_link.labels(name).inc(amount)
            self.stats.add(name, "missing", amount)
            log.warning(
                "link %s: %d record(s) arrived on other links only (none within %.1fs), e.g. %s",
                name,
                amount,
                self.window_ms / 1000,
                ", ".join(repr(i) for i in samples[name]),
            )
        return dict(missing)

    def run(self, stopping: Event) -> None:
        """Greenlet body: sweep and flush the shared stats until `stopping` is set."""
        while not stopping.wait(self.interval):
            try:
                self.sweep()
                self.stats.flush()
            except RedisUnavailable:
                log.debug("divergence sweep skipped: Redis unavailable")
        try:
            self.stats.flush()
        except RedisUnavailable:
            log.warning("final stats flush failed: Redis unavailable")

"""The spool's upkeep in the egress: periodic sync, the 80 % warning, metrics and /healthz.

Rules: sync() runs every fsync_interval seconds (1 s when fsync_interval is 0, for the ack
file), its blocking calls in gevent's threadpool, where the spool's writes run too (`write_in`);
crossing WARN_AT of max_bytes upward logs one WARNING (again only after usage fell below
CLEAR_AT); /healthz is degraded while usage is above WARN_AT. The drain rate is chunks
acknowledged per second over the last RATE_WINDOW seconds.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import gevent
from gevent.lock import Semaphore

from ddc.cooperate import in_thread
from ddc.egress.deliver import Deliverer
from ddc.egress.spool.base import Spool
from ddc.metrics import EgressMetrics, Exporter

log = logging.getLogger(__name__)

WARN_AT = 0.8
CLEAR_AT = 0.7
RATE_WINDOW = 10.0


class SpoolWatch:
    def __init__(self, spool: Spool, deliverer: Deliverer, metrics: EgressMetrics) -> None:
        self.spool = spool
        self.deliverer = deliverer
        self.metrics = metrics
        self.interval = getattr(spool, "fsync_interval", 1.0) or 1.0
        self.warned = False
        self._samples: deque[tuple[float, int]] = deque()
        self._exporter = Exporter()
        spool.write_in(in_thread, Semaphore())

    def run(self) -> None:
        while True:
            gevent.sleep(self.interval)
            if self.spool.durable:
                try:
                    self.spool.sync(in_thread)
                except OSError as exc:
                    log.error("spool %s: sync failed: %s", self.spool.describe(), exc)
            self.check()

    def check(self) -> None:
        usage = self.spool.usage()
        if usage > WARN_AT and not self.warned:
            self.warned = True
            log.warning(
                "spool %s is %.0f%% full (%d of %d bytes, %d chunks waiting, oldest %.0fs): the "
                "target takes less than the link brings; when full, chunks are dropped (%s)",
                self.spool.describe(),
                usage * 100,
                self.spool.bytes,
                self.spool.max_bytes,
                self.spool.pending,
                self.deliverer.oldest_age(),
                self.spool.when_full,
            )
        elif usage < CLEAR_AT and self.warned:
            self.warned = False
            log.info("spool %s back under %.0f%%", self.spool.describe(), CLEAR_AT * 100)
        now = time.monotonic()
        self._samples.append((now, self.spool.released))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()

    def drain_rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def over(self) -> bool:
        return self.spool.usage() > WARN_AT

    def export(self) -> None:
        spool, m, export = self.spool, self.metrics, self._exporter.export
        m.spool_bytes.set(spool.bytes)
        m.spool_chunks.set(spool.pending)
        m.spool_usage.set(spool.usage())
        m.spool_oldest_age.set(self.deliverer.oldest_age())
        export("appended", m.spool_appended, spool.appended)
        export("acked", m.spool_acked, spool.released)
        for reason, count in spool.dropped.items():
            export(f"dropped.{reason}", m.spool_dropped.labels(reason=reason), count)
        torn = spool.dropped.get("torn", 0) + spool.dropped.get("corrupt", 0)
        export("records_torn", m.records_dropped.labels(reason="spool_damaged"), torn)

    def health(self) -> dict[str, Any]:
        spool = self.spool
        return {
            "spool": {
                "dir": spool.describe(),
                "bytes": spool.bytes,
                "max_bytes": spool.max_bytes,
                "usage": round(spool.usage(), 4),
                "chunks": spool.pending,
                "unread": spool.unread,
                "in_flight": len(self.deliverer.window),
                "oldest_age_s": round(self.deliverer.oldest_age(), 3),
                "drain_rate": round(self.drain_rate(), 1),
                "dropped": dict(spool.dropped),
            }
        }

"""What the simulator tells: Prometheus on /metrics, JSON on /healthz, a periodic stderr line.

All read the exact counts at the time they are asked (no per-datagram metric calls).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import gevent
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ddc.diode_sim.counters import format_counters
from ddc.http import Routes
from ddc.units import format_hostport

if TYPE_CHECKING:
    from ddc.diode_sim.relay import DiodeSim

PREFIX = "ddc_diode_sim_"
# (metric name, counters() key, help) of the plain counters
COUNTERS = (
    ("packets_received", "received", "Datagrams received"),
    ("bytes_received", "received_bytes", "Datagram bytes received"),
    ("packets_forwarded", "forwarded", "Datagrams forwarded (duplicates included)"),
    ("bytes_forwarded", "forwarded_bytes", "Datagram bytes forwarded"),
    ("packets_duplicated", "duplicated", "Extra copies forwarded"),
    ("packets_reordered", "reordered", "Datagrams forwarded after a later one"),
)


class SimCollector:
    """Prometheus view of a DiodeSim's counters, read at scrape time."""

    def __init__(self, sim: DiodeSim) -> None:
        self.sim = sim

    def collect(self) -> Iterator[Metric]:
        counters = self.sim.counters()
        for name, key, text in COUNTERS:
            yield CounterMetricFamily(PREFIX + name, text, value=counters[key])
        dropped = CounterMetricFamily(
            PREFIX + "packets_dropped",
            "Datagrams dropped, by reason and DDC message type",
            labels=["reason", "message_type"],
        )
        for (reason, kind), count in sorted(self.sim.stats.dropped_by.items()):
            dropped.add_metric([reason, kind], count)
        yield dropped
        if counters["receive_buffer_drops"] is not None:
            yield CounterMetricFamily(
                PREFIX + "receive_buffer_drops",
                "Datagrams the kernel dropped before the simulator read them",
                value=counters["receive_buffer_drops"],
            )
        yield GaugeMetricFamily(
            PREFIX + "queued_packets", "Datagrams held or queued", value=counters["queued"]
        )
        yield GaugeMetricFamily(
            PREFIX + "queued_bytes", "Bytes held or queued", value=counters["queued_bytes"]
        )


def registry(sim: DiodeSim) -> CollectorRegistry:
    """The registry /metrics serves: the simulator's counters only."""
    result = CollectorRegistry()
    result.register(SimCollector(sim))
    return result


def routes(sim: DiodeSim) -> Routes:
    """GET /healthz: status, addresses, seed, uptime and every count."""

    def healthz() -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "status": "ok" if sim.crashed is None else "degraded",
            "listen": format_hostport(sim.address),
            "forward": format_hostport(sim.config.forward),
            "seed": sim.config.seed,
            "uptime_s": round(time.monotonic() - sim.started_at, 3),
        }
        body.update(sim.counters())
        return 200, body

    return {("GET", "/healthz"): healthz}


def print_stats(sim: DiodeSim, interval: float) -> None:
    """Every `interval` seconds, one "diode-sim:" line on stderr: rates and counts."""
    last = sim.counters()
    last_time = time.monotonic()
    while True:
        gevent.sleep(interval)
        now_counters, now = sim.counters(), time.monotonic()
        elapsed = max(now - last_time, 1e-9)
        rate_pps = (now_counters["received"] - last["received"]) / elapsed
        rate_mbs = (now_counters["received_bytes"] - last["received_bytes"]) / elapsed / 1e6
        print(
            f"diode-sim: {rate_pps:.0f} pkt/s {rate_mbs:.1f} MB/s {format_counters(now_counters)}",
            file=sys.stderr,
            flush=True,
        )
        last, last_time = now_counters, now

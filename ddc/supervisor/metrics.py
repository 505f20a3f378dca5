"""Prometheus metrics of the supervisor (its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SupervisorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "ddc_supervisor_polls",
            "/healthz polls, by side and result (ok | slow | unreachable | http_error)",
            ["pair", "side", "result"],
            registry=r,
        )
        self.egress_healthy = Gauge(
            "ddc_supervisor_egress_healthy",
            "1 while the egress is reachable with its link up",
            ["pair"],
            registry=r,
        )
        self.pair_down = Gauge(
            "ddc_supervisor_pair_down",
            "1 while the pair has been down for longer than grace",
            ["pair"],
            registry=r,
        )
        self.ingress_paused = Gauge(
            "ddc_supervisor_ingress_paused",
            "1 while the ingress reports paused",
            ["pair"],
            registry=r,
        )
        self.actions = Counter(
            "ddc_supervisor_actions",
            "pause/resume requests sent, by result",
            ["pair", "action", "result"],
            registry=r,
        )
        self.hooks = Counter(
            "ddc_supervisor_hooks",
            "Hook runs, by event and result (ok | failed | timeout)",
            ["pair", "event", "result"],
            registry=r,
        )

"""The Flask extension: the store, forwarder, stats and metrics an app's views use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app

from dedup_service.errors import RequestRejected
from dedup_service.forwarder import Forwarder
from dedup_service.metrics import DedupMetrics
from dedup_service.redis_client import RedisClient
from dedup_service.sinks.base import Sink
from dedup_service.stats import StatsBook
from dedup_service.store import Store

EXTENSION = "ddc_dedup"


class Dedup:
    """init_app(app, redis_client, sink) wires one Redis client and one sink into an app."""

    store: Store
    forwarder: Forwarder
    stats: StatsBook

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.metrics = DedupMetrics()
        self.sink: Sink | None = None
        self.allowed_links: frozenset[str] = frozenset()
        self.health_extras: list[Callable[[], dict[str, Any]]] = []

    def init_app(
        self,
        app: Flask,
        redis_client: RedisClient,
        sink: Sink,
        metrics: DedupMetrics | None = None,
    ) -> None:
        self.config = config = app.config["DEDUP"]
        if metrics is not None:
            self.metrics = metrics
        self.sink = sink
        self.store = Store(
            redis_client,
            prefix=config["key_prefix"],
            window=config["window"],
            pending_timeout=config["pending_timeout"],
        )
        self.store.on_availability = lambda up: self.metrics.redis_up.set(1 if up else 0)
        self.stats = StatsBook(self.store)
        self.forwarder = Forwarder(
            self.store,
            sink,
            self.metrics,
            self.stats,
            pending_timeout=config["pending_timeout"],
            commit_retry_timeout=config["commit_retry_timeout"],
        )
        self.allowed_links = frozenset(config["links"])  # the merge links are among them
        app.extensions[EXTENSION] = self

    def check_batch(self, name: str, size: int) -> None:
        limit = self.config["max_batch"]
        if size > limit:
            raise RequestRejected(
                413,
                "batch_too_large",
                f"at most {limit} {name} per request (max_batch)",
                {name: [f"{size} given, at most {limit} allowed"]},
            )

    def check_link(self, link: str) -> None:
        """RequestRejected (400) for a link not declared in [dedup] links: called before any
        metric label or Redis state names the link."""
        if link not in self.allowed_links:
            raise RequestRejected(
                400,
                "unknown_link",
                f"link {link!r} is not configured",
                {"link": [f"must be one of {', '.join(sorted(self.allowed_links))}"]},
            )


def dedup() -> Dedup:
    return current_app.extensions[EXTENSION]

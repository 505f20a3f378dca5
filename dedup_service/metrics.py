"""Prometheus metrics of the dedup service, in their own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class DedupMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.claims = Counter(
            "ddc_dedup_claims",
            "Ids claimed, by link and result (first|duplicate|conflict)",
            ["link", "result"],
            registry=r,
        )
        self.records_received = Counter(
            "ddc_dedup_records_received", "Records received, by link", ["link"], registry=r
        )
        self.records_forwarded = Counter(
            "ddc_dedup_records_forwarded",
            "First copies the sink acknowledged",
            ["link"],
            registry=r,
        )
        self.records_invalid = Counter(
            "ddc_dedup_records_invalid",
            "Records not forwarded because no id could be derived (id_from)",
            ["link"],
            registry=r,
        )
        self.missing_on_link = Counter(
            "ddc_dedup_missing_on_link",
            "Records that arrived on other links only, divergence_window after the first copy",
            ["link"],
            registry=r,
        )
        self.divergence_unknown = Counter(
            "ddc_dedup_divergence_unknown",
            "Ids due for the divergence check whose claim was gone (released, expired)",
            registry=r,
        )
        self.releases = Counter(
            "ddc_dedup_releases", "Pending claims released because the sink failed", registry=r
        )
        self.sink_errors = Counter("ddc_dedup_sink_errors", "Failed sink deliveries", registry=r)
        self.pending_waits = Counter(
            "ddc_dedup_pending_waits",
            "Ids that waited for another holder's pending claim",
            registry=r,
        )
        self.lease_lost = Counter(
            "ddc_dedup_lease_lost",
            "Forwarded records whose pending claim had expired and was taken (possible duplicate)",
            registry=r,
        )
        self.commit_retries = Counter(
            "ddc_dedup_commit_retries", "Commit attempts repeated while Redis was down", registry=r
        )
        self.api_auth_failures = Counter(
            "ddc_dedup_api_auth_failures",
            "Refused POST requests, by reason (no_token_configured, missing, bad_token)",
            ["reason"],
            registry=r,
        )
        self.redis_errors = Counter(
            "ddc_dedup_redis_errors",
            "Operations that failed because Redis was unavailable",
            registry=r,
        )
        self.redis_up = Gauge("ddc_dedup_redis_up", "1 while Redis is reachable", registry=r)
        self.http_requests = Counter(
            "ddc_dedup_http_requests",
            "HTTP requests, by route and status",
            ["route", "status"],
            registry=r,
        )
        self.merge_records = Counter(
            "ddc_dedup_merge_records",
            "Records consumed by the merge loop, by link",
            ["link"],
            registry=r,
        )
        self.merge_commits = Counter(
            "ddc_dedup_merge_commits", "Kafka offset commits of the merge loop", registry=r
        )
        self.merge_paused = Gauge(
            "ddc_dedup_merge_paused", "1 while the merge loop has stopped consuming", registry=r
        )
        self.reforward_found = Counter(
            "ddc_dedup_reforward_found",
            "Records of an earlier claim neither committed nor released that the sink already "
            "held (found by their idempotency key): committed, not forwarded again",
            registry=r,
        )
        self.reforwarded = Counter(
            "ddc_dedup_reforwarded",
            "Records forwarded again after an earlier claim was neither committed nor released "
            "(its holder crashed or its lease expired): the sink may have them twice, under the "
            "same idempotency key",
            registry=r,
        )

"""Prometheus keeps its scrape connection alive: `/metrics` and `/healthz` of a real ingress and
egress answer in one go on it, never after a delayed ACK (tests/integration/keepalive.py)."""

from __future__ import annotations

from tests.integration.keepalive import STALL, answer_gaps

GET = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"


def test_daemons_answer_kept_alive_scrapes_without_a_delayed_ack_stall(linked):
    pair, _ = linked("udp", "udp")
    for daemon in (pair.ingress, pair.egress):
        assert daemon is not None
        requests = [GET % path for path in (b"/metrics", b"/healthz") for _ in range(25)]
        gaps = answer_gaps(daemon.port, requests)
        stalled = sum(gap > STALL for gap in gaps)
        assert stalled <= 5, f"{daemon.name}: {stalled} of 50 answers waited for their body"

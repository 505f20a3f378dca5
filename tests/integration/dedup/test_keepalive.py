"""Kept-alive requests to a real `ddc-dedup serve` get their answer in one go (without
TCP_NODELAY 98 of 100 answers waited ~40 ms for a delayed ACK; tests/integration/keepalive.py)."""

from __future__ import annotations

import json

from tests.integration.dedup.conftest import API_TOKEN
from tests.integration.keepalive import STALL, answer_gaps


def post(index: int) -> bytes:
    body = json.dumps({"link": "a", "records": [{"id": f"k-{index}", "value": "dg=="}]})
    head = (
        f"POST /v1/records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body.encode()


def test_kept_alive_answers_do_not_wait_for_a_delayed_ack(dedup_server):
    server = dedup_server()
    port = int(server.url.rsplit(":", 1)[1])
    gaps = answer_gaps(port, (post(index) for index in range(50)))
    stalled = sum(gap > STALL for gap in gaps)
    assert stalled <= 5, f"{stalled} of 50 answers waited > {STALL * 1000:.0f} ms for their body"

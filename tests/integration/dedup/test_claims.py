"""First-wins claims against a real Redis, through real `ddc-dedup serve` processes."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from devtools.harness import wait_until
from tests.integration.dedup.conftest import b64, run_together

IDS = [f"order-{i:05d}" for i in range(10_000)]


def claim_all(server, link, ids, results, barrier, spans, batch=500):
    barrier.wait()
    began = time.monotonic()
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        response = server.post("/v1/claims", {"link": link, "ids": chunk})
        assert response.status_code == 200, response.text
        results.extend(zip(chunk, response.json()["results"], strict=True))
    spans[link] = (began, time.monotonic())


def test_two_concurrent_clients_same_10000_ids_each_exactly_one_first(dedup_server, redis_url):
    """Two clients, each through its own dedup instance (scale-out), both sharing one Redis."""
    one = dedup_server()
    prefix = one.config_path.read_text().split('key_prefix = "')[1].split('"')[0]
    two = dedup_server(key_prefix=prefix)
    order_a, order_b = IDS[:], IDS[:]
    random.Random(1).shuffle(order_a)
    random.Random(2).shuffle(order_b)
    got_a, got_b = [], []
    barrier, spans = threading.Barrier(2), {}
    threads = [
        threading.Thread(target=claim_all, args=(one, "a", order_a, got_a, barrier, spans)),
        threading.Thread(target=claim_all, args=(two, "b", order_b, got_b, barrier, spans)),
    ]
    run_together(threads, 120)
    assert len(got_a) == len(got_b) == len(IDS)
    firsts = Counter(ident for ident, result in got_a + got_b if result == "first")
    assert set(firsts) == set(IDS) and set(firsts.values()) == {1}
    others = {result for _, result in got_a + got_b if result != "first"}
    assert others == {"duplicate"}
    assert spans["a"][0] < spans["b"][1] and spans["b"][0] < spans["a"][1], (
        "clients did not overlap"
    )
    wins_a = sum(1 for _, result in got_a if result == "first")
    print(f"\nfirsts: client a {wins_a}, client b {len(IDS) - wins_a}")

    def totals() -> list[int]:
        stats = one.get("/v1/stats").json()["links"]  # a link appears once its counts are flushed
        return [
            sum(stats.get(link, {}).get(kind, 0) for link in "ab")
            for kind in ("first", "duplicate")
        ]

    # each instance flushes its counters to Redis every second
    wait_until(
        lambda: totals() == [len(IDS), len(IDS)],
        5,
        interval=0.2,
        message=lambda: f"first and duplicate totals {totals()} == {[len(IDS), len(IDS)]}",
    )


def test_conflict_same_id_other_content_is_detected_and_not_forwarded(dedup_server, tmp_path):
    out = tmp_path / "conflict.txt"
    server = dedup_server(sink={"type": "file", "path": str(out), "framing": "lines"})
    claims = server.post(
        "/v1/claims", {"link": "a", "ids": ["c1", "c2"], "fingerprints": ["f1", "f2"]}
    )
    assert claims.json()["results"] == ["first", "first"]
    again = server.post(
        "/v1/claims", {"link": "b", "ids": ["c1", "c2", "c3"], "fingerprints": ["f1", "XX", ""]}
    )
    assert again.json()["results"] == ["duplicate", "conflict", "first"]

    first = server.post(
        "/v1/records", {"link": "a", "records": [{"id": "r1", "value": b64(b"v1")}]}
    )
    assert first.json()["results"] == ["first"]
    second = server.post(
        "/v1/records",
        {
            "link": "b",
            "records": [
                {"id": "r1", "value": b64(b"v1-changed")},
                {"id": "r1", "value": b64(b"v1")},
            ],
        },
    )
    assert second.status_code == 200
    assert second.json()["results"] == [
        "conflict",
        "conflict",
    ]  # the second is a repeat of the first
    assert second.json()["conflicts"] == 2
    assert out.read_bytes() == b"v1\n"
    info = server.get("/v1/ids/r1").json()
    assert (
        info["state"] == "committed" and info["first_link"] == "a" and info["links"] == ["a", "b"]
    )
    assert server.metric("ddc_dedup_claims_total", link="b", result="conflict") == 3
    assert server.get("/v1/stats").json()["links"]["b"]["conflict"] == 3
    assert "reuse an id with different content" in server.log()

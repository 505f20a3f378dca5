"""POST /v1/records: exactly-once forwarding over two links, divergence counts, two-phase release."""

from __future__ import annotations

import threading
import time
from collections import Counter

from devtools.harness import wait_until
from tests.integration.dedup.conftest import SinkTarget, b64, read_length_prefixed, run_together

TOTAL = 100_000
BATCH = 1000


def post_link(server, link, indices, errors):
    try:
        for start in range(0, len(indices), BATCH):
            records = [
                {"id": f"rec-{i}", "value": b64(b"payload-%d" % i)}
                for i in indices[start : start + BATCH]
            ]
            response = server.post("/v1/records", {"link": link, "records": records})
            assert response.status_code == 200, response.text
    except BaseException as exc:  # surfaced by the test thread
        errors.append(exc)


def test_100k_records_two_links_each_losing_a_different_5_percent(dedup_server, tmp_path):
    out = tmp_path / "merged.bin"
    server = dedup_server(
        sink={"type": "file", "path": str(out)}, divergence_window="1s", max_batch=BATCH
    )
    lost_on_a = {i for i in range(TOTAL) if i % 20 == 0}
    lost_on_b = {i for i in range(TOTAL) if i % 20 == 7}
    errors: list[BaseException] = []
    threads = [
        threading.Thread(
            target=post_link,
            args=(server, "a", [i for i in range(TOTAL) if i not in lost_on_a], errors),
        ),
        threading.Thread(
            target=post_link,
            args=(server, "b", [i for i in range(TOTAL) if i not in lost_on_b], errors),
        ),
    ]
    started = time.monotonic()
    run_together(threads, 150)
    elapsed = time.monotonic() - started
    assert not errors, errors[0]

    values = Counter(read_length_prefixed(out))
    assert len(values) == TOTAL
    assert set(values.values()) == {1}, "a record was delivered twice"
    assert set(values) == {b"payload-%d" % i for i in range(TOTAL)}

    server.wait_for_missing({"a": len(lost_on_a), "b": len(lost_on_b)}, 15)
    assert server.metric("ddc_dedup_missing_on_link_total", link="a") == len(lost_on_a)
    assert server.metric("ddc_dedup_missing_on_link_total", link="b") == len(lost_on_b)
    forwarded = sum(server.metric("ddc_dedup_records_forwarded_total", link=link) for link in "ab")
    assert forwarded == TOTAL
    print(f"\n{2 * TOTAL - len(lost_on_a) - len(lost_on_b)} records posted in {elapsed:.1f}s")


def test_sink_failure_releases_the_claim_and_the_other_link_copy_goes_through(dedup_server):
    target = SinkTarget([(0, 500)])
    try:
        server = dedup_server(sink={"type": "http", "url": f"http://127.0.0.1:{target.port}/in"})
        record = {"id": "r-1", "value": b64(b"only-once")}
        failed = server.post("/v1/records", {"link": "a", "records": [record]})
        assert failed.status_code == 503
        assert failed.json()["code"] == "sink_failed"
        assert server.get("/v1/ids/r-1").status_code == 404, "the failed copy's claim was released"
        other = server.post("/v1/records", {"link": "b", "records": [record]})
        assert other.json()["results"] == ["first"]
        retry = server.post("/v1/records", {"link": "a", "records": [record]})
        assert retry.json()["results"] == ["duplicate"]
        assert target.accepted == [b"only-once"]
        assert server.metric("ddc_dedup_releases_total") == 1
        assert server.metric("ddc_dedup_sink_errors_total") == 1
    finally:
        target.close()


def test_concurrent_copy_waits_for_the_pending_claim_and_wins_after_release(dedup_server):
    gate = threading.Event()
    target = SinkTarget([(gate, 500)])  # link a's delivery hangs until the gate opens, then fails
    try:
        server = dedup_server(sink={"type": "http", "url": f"http://127.0.0.1:{target.port}/in"})
        record = {"id": "r-2", "value": b64(b"raced")}
        answers = {}

        def post(link):
            answers[link] = server.post("/v1/records", {"link": link, "records": [record]})

        first = threading.Thread(target=post, args=("a",))
        first.start()
        assert target.holding.wait(10)  # link a holds the pending claim, its delivery in flight
        second = threading.Thread(target=post, args=("b",))
        second.start()
        wait_until(
            lambda: server.metric("ddc_dedup_pending_waits_total") == 1,
            10,
            interval=0.2,
            message="ddc_dedup_pending_waits_total == 1",
        )
        gate.set()
        first.join(10)
        second.join(10)
        assert answers["a"].status_code == 503
        assert answers["b"].status_code == 200 and answers["b"].json()["results"] == ["first"]
        assert target.accepted == [b"raced"] and target.requests == 2
        info = server.get("/v1/ids/r-2").json()
        assert info["first_link"] == "b" and info["state"] == "committed"
    finally:
        gate.set()
        target.close()

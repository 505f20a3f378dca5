"""Redis outages: fail closed (503, nothing forwarded), recover, and survive kill -9 mid-stream."""

from __future__ import annotations

import threading
import time
from collections import Counter

import redis
import requests

from dedup_service.embedded import EmbeddedRedis
from devtools.harness import wait_until
from tests.integration.dedup.conftest import SinkTarget, b64, read_length_prefixed


def wait_ready(server, timeout=20):
    wait_until(
        lambda: server.get("/readyz").status_code == 200,
        timeout,
        interval=0.1,
        message="the dedup service to be ready again",
    )


def test_redis_down_answers_503_forwards_nothing_and_recovers(dedup_server, tmp_path):
    own = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    try:
        out = tmp_path / "out.txt"
        server = dedup_server(
            redis_url=own.url, sink={"type": "file", "path": str(out), "framing": "lines"}
        )
        one = {"link": "a", "records": [{"id": "one", "value": b64(b"one")}]}
        two = {"link": "a", "records": [{"id": "two", "value": b64(b"two")}]}
        assert server.post("/v1/records", one).json()["results"] == ["first"]

        own.stop()
        down = server.post("/v1/records", two)
        assert down.status_code == 503
        body = down.json()
        assert (
            body["code"] == "redis_unavailable" and body["status"] == 503 and body["errors"] is None
        )
        assert down.headers["Retry-After"] == "1"
        assert server.post("/v1/claims", {"link": "a", "ids": ["x"]}).status_code == 503
        assert server.get("/v1/ids/one").status_code == 503
        assert server.get("/readyz").status_code == 503
        health = server.get("/healthz").json()
        assert health["status"] == "degraded" and health["redis"] is False
        assert server.metric("ddc_dedup_redis_up") == 0
        assert out.read_bytes() == b"one\n", "nothing may be forwarded without a claim"

        own.start()
        wait_ready(server)
        assert server.post("/v1/records", two).json()["results"] == ["first"]
        assert server.post("/v1/records", one).json()["results"] == ["duplicate"]
        assert out.read_bytes() == b"one\ntwo\n"
        assert server.metric("ddc_dedup_redis_up") == 1
        assert "Redis unreachable" in server.log()
    finally:
        own.cleanup()


def stream(server, link, ids, batch, stats):
    for start in range(0, len(ids), batch):
        body = {
            "link": link,
            "records": [
                {"id": f"k-{i}", "value": b64(b"value-%d" % i)} for i in ids[start : start + batch]
            ],
        }
        while True:
            try:
                response = server.post("/v1/records", body, timeout=60)
                if response.status_code == 200:
                    break
                assert response.status_code == 503, response.text
                stats[response.json()["code"]] += 1
            except requests.RequestException:
                stats["connection"] += 1
            time.sleep(0.05)
        stats["batches"] += 1


def test_kill_9_redis_mid_stream_nothing_lost_no_duplicate(dedup_server, tmp_path):
    own = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    redis.Redis.from_url(own.url).config_set("appendfsync", "always")
    try:
        out = tmp_path / "out.bin"
        server = dedup_server(
            redis_url=own.url,
            sink={"type": "file", "path": str(out)},
            pending_timeout="4s",
            commit_retry_timeout="30s",
            redis_timeout="2s",
        )
        total, batch = 20_000, 200
        ids = list(range(total))
        stats = {link: Counter() for link in "ab"}
        threads = [
            threading.Thread(target=stream, args=(server, link, ids, batch, stats[link]))
            for link in "ab"
        ]
        for thread in threads:
            thread.start()
        wait_until(
            lambda: stats["a"]["batches"] >= total / batch / 3,
            60,
            interval=0.01,
            message="a third of link a's batches",
        )
        own.kill()  # SIGKILL mid-stream
        killed_at = stats["a"]["batches"]
        time.sleep(1.0)
        own.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)

        values = Counter(read_length_prefixed(out))
        assert set(values) == {b"value-%d" % i for i in ids}, "records lost"
        assert set(values.values()) == {1}, "records delivered twice"
        assert killed_at < total / batch, "the kill must land mid-stream"
        refused = sum(sum(v for k, v in s.items() if k != "batches") for s in stats.values())
        print(
            f"\nkilled after {killed_at} batches; refused/failed requests during the outage: {refused}"
        )
        print({link: dict(s) for link, s in stats.items()})
        print(
            "commit retries",
            server.metric("ddc_dedup_commit_retries_total"),
            "pending waits",
            server.metric("ddc_dedup_pending_waits_total"),
        )
        assert server.metric("ddc_dedup_lease_lost_total") == 0
    finally:
        own.cleanup()


def test_kill_9_redis_while_the_sink_holds_a_delivery_commit_survives(dedup_server, tmp_path):
    """The window that matters: claimed, forwarded, not yet committed, when Redis dies."""
    own = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    redis.Redis.from_url(own.url).config_set("appendfsync", "always")
    gate = threading.Event()
    target = SinkTarget([(0, 200), (gate, 200)])
    try:
        server = dedup_server(
            redis_url=own.url,
            sink={"type": "http", "url": f"http://127.0.0.1:{target.port}/in"},
            pending_timeout="20s",
            commit_retry_timeout="30s",
            redis_timeout="1s",
        )
        batches = [
            [{"id": f"g-{i}", "value": b64(b"g-%d" % i)} for i in range(start, start + 100)]
            for start in range(0, 300, 100)
        ]
        assert server.post("/v1/records", {"link": "a", "records": batches[0]}).status_code == 200
        answers = {}
        held = threading.Thread(
            target=lambda: answers.setdefault(
                "a", server.post("/v1/records", {"link": "a", "records": batches[1]})
            )
        )
        held.start()
        assert target.holding.wait(10), "the sink never received the second batch"
        own.kill()  # the batch is claimed and being delivered; its commit cannot happen now
        gate.set()  # the sink acknowledges while Redis is dead
        time.sleep(1.5)
        own.start()
        held.join(40)
        assert answers["a"].status_code == 200 and answers["a"].json()["forwarded"] == 100
        assert server.metric("ddc_dedup_commit_retries_total") > 0
        for batch in batches:  # the other link's copies, and the rest of the stream
            assert server.post("/v1/records", {"link": "b", "records": batch}).status_code == 200
        values = Counter(target.accepted)
        assert set(values) == {b"g-%d" % i for i in range(300)}
        assert set(values.values()) == {1}
    finally:
        gate.set()
        target.close()
        own.cleanup()

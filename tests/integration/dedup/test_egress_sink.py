"""The egress `dedup` sink posting to a live `ddc-dedup serve` (real HTTP, real Redis)."""

from __future__ import annotations

import time
from collections import Counter

import gevent

from ddc.config.schemas import DedupSinkSchema
from ddc.egress.sinks.dedup import DedupSink
from ddc.metrics import EgressMetrics
from ddc.protocol.record import Record
from tests.integration.dedup.conftest import read_length_prefixed, write_token


def make_sink(url, link, tmp_path=None, **overrides):
    """The sink with the test servers' API token (its token_file in `tmp_path`) unless
    `token_file` is given (None: no token)."""
    if "token_file" not in overrides and tmp_path is not None:
        overrides["token_file"] = str(write_token(tmp_path / "sink.token"))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = DedupSinkSchema().load({"type": "dedup", "url": url, "link": link, **overrides})
    metrics = EgressMetrics()
    return DedupSink(config, metrics), metrics


def run_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        gevent.sleep(0.05)


def kafka_records(indices):
    return [
        Record(value=b"r-%d" % i, key=b"k", topic="orders", partition=i % 3, offset=i)
        for i in indices
    ]


def test_two_links_through_the_egress_sink_deliver_each_record_once(dedup_server, tmp_path):
    out = tmp_path / "out.bin"
    server = dedup_server(id_from="source", sink={"type": "file", "path": str(out)})
    sink_a, metrics_a = make_sink(server.url, "a", tmp_path, batch_max_records=100)
    sink_b, _ = make_sink(server.url, "b", tmp_path, batch_max_records=100)
    sink_a.start()
    sink_b.start()
    sink_a.send(kafka_records(range(0, 600)), lambda: None)
    sink_b.send(kafka_records(range(400, 1000)), lambda: None)
    sink_a.send(kafka_records(range(600, 1000)), lambda: None)
    run_until(lambda: sink_a.buffered() == 0 and sink_b.buffered() == 0, 30)
    sink_a.stop(5)
    sink_b.stop(5)
    values = Counter(read_length_prefixed(out))
    assert set(values) == {b"r-%d" % i for i in range(1000)} and set(values.values()) == {1}
    info = server.get("/v1/ids/orders/1/7").json()  # ddc-src = topic/partition/offset
    assert info["links"] == ["a"] and info["state"] == "committed"
    assert server.get("/v1/ids/orders/1/412").json()["links"] == ["a", "b"]
    assert sink_a.health() == {"sink_ok": True, "dedup_buffered": 0}
    assert metrics_a.registry.get_sample_value("ddc_egress_sink_errors_total") == 0


def test_egress_sink_holds_records_through_an_outage_and_settles_on_the_200(dedup_server, tmp_path):
    out = tmp_path / "out.bin"
    server = dedup_server(start=False, id_from="source", sink={"type": "file", "path": str(out)})
    sink, metrics = make_sink(
        server.url, "a", tmp_path, retry_interval=0.1, buffer_max_records=500, timeout=2.0
    )
    sink.start()
    settled: list[int] = []
    sink.send(kafka_records(range(0, 300)), lambda: settled.append(1))
    run_until(lambda: metrics.registry.get_sample_value("ddc_egress_sink_errors_total") >= 2, 10)
    assert sink.health() == {"sink_ok": False, "dedup_buffered": 300}
    sink.send(kafka_records(range(300, 600)), lambda: settled.append(2))
    assert settled == []  # nothing confirmed while the service is down, nothing dropped
    server.start()
    run_until(lambda: sink.buffered() == 0, 30)
    sink.stop(5)
    assert sorted(settled) == [1, 2]  # in either order (POSTs in flight at once)
    assert not metrics.registry.get_sample_value(
        "ddc_egress_records_dropped_total", {"reason": "dedup_buffer_full"}
    )
    values = Counter(read_length_prefixed(out))
    assert set(values) == {b"r-%d" % i for i in range(600)} and set(values.values()) == {1}
    assert sink.health()["sink_ok"] is True


def test_records_without_an_id_are_counted_as_dropped(dedup_server, tmp_path):
    server = dedup_server(id_from="source", sink={"type": "file", "path": str(tmp_path / "o.bin")})
    sink, metrics = make_sink(server.url, "a", tmp_path)
    sink.start()
    # a non-Kafka record has no ddc-src
    sink.send([Record(value=b"no-source")] + kafka_records([1]), lambda: None)
    run_until(lambda: sink.buffered() == 0, 10)
    sink.stop(5)
    invalid = metrics.registry.get_sample_value(
        "ddc_egress_records_dropped_total", {"reason": "dedup_invalid"}
    )
    assert invalid == 1
    assert read_length_prefixed(tmp_path / "o.bin") == [b"r-1"]


def test_a_refused_token_keeps_the_records_buffered_and_names_the_token(
    dedup_server, tmp_path, caplog
):
    """401 (no/wrong token) is an outage: nothing dropped; with the right token all arrive."""
    out = tmp_path / "out.bin"
    server = dedup_server(id_from="source", sink={"type": "file", "path": str(out)})
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-api-token-at-all")
    sink, metrics = make_sink(server.url, "a", token_file=str(wrong), retry_interval=0.1)
    sink.start()
    settled: list[int] = []
    sink.send(kafka_records(range(50)), lambda: settled.append(1))
    run_until(lambda: metrics.registry.get_sample_value("ddc_egress_sink_errors_total") >= 2, 10)
    sink.stop(0.5)  # never confirmed: the spool would keep them
    assert settled == []
    assert (
        metrics.registry.get_sample_value(
            "ddc_egress_records_dropped_total", {"reason": "dedup_rejected"}
        )
        is None
    )
    assert "refused this sink's token (HTTP 401" in caplog.text
    assert server.metric("ddc_dedup_api_auth_failures_total", reason="bad_token") >= 2
    assert not out.exists() or read_length_prefixed(out) == []
    good, _ = make_sink(server.url, "a", tmp_path)
    good.start()
    good.send(kafka_records(range(50)), lambda: settled.append(2))
    run_until(lambda: settled == [2], 10)
    good.stop(5)
    assert len(read_length_prefixed(out)) == 50


def test_after_a_413_the_batch_size_grows_back(dedup_server, tmp_path):
    """One record over max_request_size halves the batch down to 1 (and is dropped); the 2,999
    after it go out in batches growing back to batch_max_records, not one POST each."""
    out = tmp_path / "out.bin"
    server = dedup_server(
        id_from="source", max_request_size="1MiB", sink={"type": "file", "path": str(out)}
    )
    sink, metrics = make_sink(server.url, "a", tmp_path, batch_max_records=500)
    sink.start()
    big = Record(value=b"x" * (2 * 1024**2), key=b"k", topic="orders", partition=0, offset=0)
    settled: list[int] = []
    sink.send([big, *kafka_records(range(1, 3000))], lambda: settled.append(1))
    run_until(lambda: settled == [1], 60)
    sink.stop(5)
    rejected = metrics.registry.get_sample_value(
        "ddc_egress_records_dropped_total", {"reason": "dedup_rejected"}
    )
    assert rejected == 1
    assert sorted(read_length_prefixed(out)) == sorted(b"r-%d" % i for i in range(1, 3000))
    refused = server.metric("ddc_dedup_http_requests_total", route="/v1/records", status="413")
    accepted = server.metric("ddc_dedup_http_requests_total", route="/v1/records", status="200")
    assert refused == 9  # 500, 250, 125, 62, 31, 15, 7, 3, 1 (then dropped)
    print(f"\n2,999 records after a 413: {accepted:.0f} POSTs")
    assert accepted <= 20, f"{accepted} POSTs for 2,999 records"

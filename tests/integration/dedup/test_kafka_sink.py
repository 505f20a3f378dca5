"""The dedup Kafka sink on both clients (`client` = kafka-python | librdkafka) with the Tansu
broker: POST /v1/records on two links → each record once in the topic, with its dedup id header,
tombstones as tombstones; an unreachable broker answers 503 and forwards nothing."""

from __future__ import annotations

import uuid

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from dedup_service.embedded import free_port
from tests.integration.dedup.conftest import b64
from tests.integration.dedup.test_tombstones import read_all

pytestmark = pytest.mark.kafka
CLIENTS = ["kafka-python", "librdkafka"]
TOTAL = 1200
BATCH = 400


def entry(i: int) -> dict:
    value = None if i % 100 == 7 else b64(b"value-%d" % i)
    return {"id": f"id-{i}", "key": b64(b"k-%d" % i), "value": value, "headers": {"h": b64(b"x")}}


def kafka_sink_server(dedup_server, bootstrap: str, partitions: int, **sink):
    """A dedup server whose Kafka sink writes to a new topic: (server, topic)."""
    topic = f"dedup-sink-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()
    sink = {"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic, **sink}
    return dedup_server(sink=sink), topic


@pytest.mark.parametrize("client", CLIENTS)
def test_each_record_once_with_its_dedup_id(dedup_server, kafka_bootstrap, client):
    server, topic = kafka_sink_server(
        dedup_server, kafka_bootstrap, 2, client=client, timeout="10s"
    )
    forwarded = 0
    for start in range(0, TOTAL, BATCH):
        records = [entry(i) for i in range(start, start + BATCH)]
        for link in ("a", "b"):  # the same batch on both links: b's copies are duplicates
            response = server.post("/v1/records", {"link": link, "records": records})
            assert response.status_code == 200, response.text
            answer = response.json()
            forwarded += answer["forwarded"]
            assert answer["forwarded"] + answer["duplicates"] == BATCH
    assert forwarded == TOTAL

    got = read_all(kafka_bootstrap, topic, TOTAL, timeout=30)
    assert len(got) == TOTAL  # read_all waits a second more: a duplicate would show
    by_id = {dict(r.headers)["ddc-dedup-id"].decode(): r for r in got}
    assert sorted(by_id) == sorted(f"id-{i}" for i in range(TOTAL))
    for i in range(TOTAL):
        record = by_id[f"id-{i}"]
        assert record.key == b"k-%d" % i
        assert record.value == (None if i % 100 == 7 else b"value-%d" % i)
        assert dict(record.headers)["h"] == b"x"
    assert server.metric("ddc_dedup_records_forwarded_total", link="a") == TOTAL
    assert server.metric("ddc_dedup_sink_errors_total") == 0
    assert server.get("/healthz").json()["sink_ok"] is True


@pytest.mark.parametrize("client", CLIENTS)
def test_an_unreachable_broker_answers_503_and_releases(dedup_server, client):
    server = dedup_server(
        sink={
            "type": "kafka",
            "bootstrap_servers": f"127.0.0.1:{free_port()}",
            "topic": "nowhere",
            "client": client,
            "timeout": "3s",
        }
    )
    response = server.post("/v1/records", {"link": "a", "records": [entry(1), entry(2)]})
    assert response.status_code == 503, response.text
    assert server.metric("ddc_dedup_records_forwarded_total", link="a") == 0
    assert server.get("/healthz").json()["sink_ok"] is False
    # the claims were released: the other link's copy is not a duplicate
    assert server.get("/v1/ids/id-1").status_code == 404


def test_a_full_librdkafka_queue_is_waited_out_not_failed(dedup_server, kafka_bootstrap):
    server, topic = kafka_sink_server(
        dedup_server,
        kafka_bootstrap,
        1,
        client="librdkafka",
        options={"queue.buffering.max.messages": 16},  # a batch of 400 overfills it
    )
    records = [entry(i) for i in range(BATCH)]
    response = server.post("/v1/records", {"link": "a", "records": records})
    assert response.status_code == 200, response.text
    assert response.json()["forwarded"] == BATCH
    got = read_all(kafka_bootstrap, topic, BATCH, timeout=30)
    assert sorted(dict(r.headers)["ddc-dedup-id"].decode() for r in got) == sorted(
        f"id-{i}" for i in range(BATCH)
    )

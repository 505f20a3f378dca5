"""The Kafka merge loop with a real broker: two input topics → one output topic, exactly once."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from dedup_service.embedded import EmbeddedRedis
from devtools.harness import wait_until

pytestmark = pytest.mark.kafka
FAST_GROUP = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 10000,
}
RD_FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
CLIENTS = ("kafka-python", "librdkafka")


def group_options(client: str) -> dict:
    """The merge loop's fast consumer-group timeouts in its client's option names."""
    return FAST_GROUP if client == "kafka-python" else RD_FAST_GROUP


def produce(bootstrap, topic, indices, ends):
    """Produces and records in `ends` each partition's next offset (from the broker's acks)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [
        producer.send(
            topic, value=b"v-%d" % i, key=b"k-%d" % i, headers=[("ddc-src", b"src/0/%d" % i)]
        )
        for i in indices
    ]
    producer.flush()
    producer.close()
    for future in futures:
        meta = future.get(timeout=10)
        tp = TopicPartition(meta.topic, meta.partition)
        ends[tp] = max(ends.get(tp) or 0, meta.offset + 1)


def drain(consumer, expected, timeout):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got += records
    return got


def committed(bootstrap, group, topics, partitions=2):
    """The group's committed offsets (fetched without joining the group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {
            TopicPartition(t, p): consumer.committed(TopicPartition(t, p))
            for t in topics
            for p in range(partitions)
        }
    finally:
        consumer.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_merge_loop_exactly_once_offsets_after_ack_pauses_while_redis_is_down(
    dedup_server, kafka_bootstrap, tmp_path, client
):
    tag = uuid.uuid4().hex[:8]
    out_a, out_b, merged, group = f"out-a-{tag}", f"out-b-{tag}", f"merged-{tag}", f"dedup-{tag}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(t, 2, 1) for t in (out_a, out_b, merged)])
    admin.close()
    own = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    # the test's own reader polls only between steps, which took more than 10 s on a loaded
    # machine: with the short max_poll_interval it left its group and read the topic again
    reader = KafkaConsumer(
        merged, bootstrap_servers=kafka_bootstrap, group_id=f"reader-{tag}",
        auto_offset_reset="earliest", **{**FAST_GROUP, "max_poll_interval_ms": 300_000},
    )  # fmt: skip
    try:
        total = 3000
        lost_a = {i for i in range(total) if i % 10 == 0}
        lost_b = {i for i in range(total) if i % 10 == 5}
        ends = {TopicPartition(t, p): None for t in (out_a, out_b) for p in range(2)}
        produce(kafka_bootstrap, out_a, [i for i in range(total) if i not in lost_a], ends)
        redelivered = [i for i in range(100, 200) if i not in lost_a]
        produce(kafka_bootstrap, out_a, redelivered, ends)  # a redelivery on link a
        produce(kafka_bootstrap, out_b, [i for i in range(total) if i not in lost_b], ends)
        server = dedup_server(
            redis_url=own.url,
            id_from="source",
            divergence_window="10s",  # b's copies may come seconds after a's on a loaded machine
            sink={"type": "kafka", "bootstrap_servers": kafka_bootstrap, "topic": merged},
            merge={
                "bootstrap_servers": kafka_bootstrap,
                "links": {"a": out_a, "b": out_b},
                "group_id": group,
                "poll_max_records": 500,
                "retry_interval": "0.3s",
                "client": client,
                "options": group_options(client),
            },
        )
        got = drain(reader, total, timeout=60)
        got += drain(reader, 1, timeout=1.5)  # anything extra would be a duplicate
        sources = Counter(dict(r.headers)["ddc-src"] for r in got)
        assert len(sources) == total and set(sources.values()) == {1}
        assert {r.value for r in got} == {b"v-%d" % i for i in range(total)}

        def offsets() -> dict:
            return committed(kafka_bootstrap, group, (out_a, out_b))

        def wait_committed() -> None:  # every record read from out_a and out_b: up to `ends`
            wait_until(
                lambda: offsets() == ends,
                10,
                interval=0.2,
                message=lambda: f"committed {offsets()} == {ends}",
            )

        wait_committed()

        def missing():
            links = server.get("/v1/stats").json()["links"]
            return links["a"]["missing"], links["b"]["missing"]

        wait_until(  # the stats are written in the background: slower on a loaded machine
            lambda: missing() == (len(lost_a), len(lost_b)), 45, interval=0.2,
            message=lambda: f"missing per link {missing()} == {(len(lost_a), len(lost_b))}",
        )  # fmt: skip

        # Redis down: the loop stops consuming (no output, no offset commits) and resumes after.
        own.stop()
        before = offsets()
        produce(kafka_bootstrap, out_a, range(total, total + 500), ends)
        produce(kafka_bootstrap, out_b, range(total, total + 500), ends)
        wait_until(
            lambda: server.get("/healthz").json()["merge"]["paused"], 10, interval=0.2,
            message="the merge loop paused",
        )  # fmt: skip
        assert drain(reader, 1, timeout=2) == []
        assert offsets() == before
        assert server.metric("ddc_dedup_merge_paused") == 1
        own.start()
        later = drain(reader, 500, timeout=30)
        later += drain(reader, 1, timeout=1.5)
        assert sorted(dict(r.headers)["ddc-src"] for r in later) == sorted(
            b"src/0/%d" % i for i in range(total, total + 500)
        )
        wait_committed()
        assert server.get("/healthz").json()["merge"]["paused"] is False
        assert "merge loop paused" in server.log() and "merge loop resumes" in server.log()
    finally:
        reader.close()
        own.cleanup()


@pytest.mark.parametrize("client", CLIENTS)
def test_an_unreachable_broker_shows_the_merge_loop_paused_with_the_reason(dedup_server, client):
    from dedup_service.embedded import free_port

    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    server = dedup_server(
        merge={
            "bootstrap_servers": nobody,
            "links": {"a": "out-a", "b": "out-b"},
            "retry_interval": "0.3s",
            "client": client,
        },
    )

    def merge_health() -> dict:
        return server.get("/healthz").json()["merge"]

    wait_until(lambda: merge_health()["reason"], 20, interval=0.2, message=merge_health)
    assert merge_health()["paused"] and "Kafka unreachable" in merge_health()["reason"]
    assert server.get("/healthz").json()["status"] == "degraded"

"""Kafka tombstones (null values) through the egress dedup sink, the API and the merge loop into a
real Kafka target: they arrive as tombstones, and nothing around them is dropped."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from ddc.protocol.record import Record
from devtools.embedded_kafka import FAST_GROUP_OPTIONS
from tests.integration.dedup.test_egress_sink import make_sink, run_until

pytestmark = pytest.mark.kafka


def read_all(bootstrap: str, topic: str, expected: int, timeout: float) -> list:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    got: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got += records
        for records in consumer.poll(timeout_ms=1000).values():  # anything extra: a duplicate
            got += records
    finally:
        consumer.close()
    return got


def test_tombstones_cross_the_egress_sink_the_api_and_the_merge_loop(
    dedup_server, kafka_bootstrap, tmp_path
):
    tag = uuid.uuid4().hex[:8]
    merged, merge_in = f"tomb-out-{tag}", f"tomb-in-{tag}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(t, 1, 1) for t in (merged, merge_in)])
    admin.close()
    server = dedup_server(
        id_from="source",
        sink={"type": "kafka", "bootstrap_servers": kafka_bootstrap, "topic": merged},
        merge={
            "bootstrap_servers": kafka_bootstrap,
            "links": {"b": merge_in},
            "group_id": tag,
            # the group's first join with kafka-python's default timeouts took over 30 s in a
            # loaded CI run: the merge loop had no partitions yet when the read gave up
            "options": FAST_GROUP_OPTIONS,
        },
    )
    # link a: the egress sink posts 100 records, every tenth a tombstone
    sink, metrics = make_sink(server.url, "a", tmp_path)
    sink.start()
    records = [
        Record(
            value=None if i % 10 == 3 else b"v-%d" % i,
            key=b"k-%d" % i,
            topic="orders",
            partition=0,
            offset=i,
        )
        for i in range(100)
    ]
    settled: list[int] = []
    sink.send(records, lambda: settled.append(1))
    run_until(lambda: settled == [1], 20)
    sink.stop(5)
    assert metrics.registry.get_sample_value("ddc_egress_records_dropped_total") is None
    # link b: the merge loop reads a tombstone and a record the egress sink did not carry
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(merge_in, value=None, key=b"k-200", headers=[("ddc-src", b"orders/0/200")])
    producer.send(merge_in, value=b"v-201", key=b"k-201", headers=[("ddc-src", b"orders/0/201")])
    producer.send(merge_in, value=None, key=b"k-13", headers=[("ddc-src", b"orders/0/13")])
    producer.flush()
    producer.close()

    got = read_all(kafka_bootstrap, merged, 102, timeout=60)
    by_key = {r.key: r.value for r in got}
    assert len(got) == 102 and len(by_key) == 102  # each once: orders/0/13 came on link a first
    expected = {b"k-%d" % i: (None if i % 10 == 3 else b"v-%d" % i) for i in range(100)}
    expected.update({b"k-200": None, b"k-201": b"v-201"})
    assert by_key == expected
    assert sum(value is None for value in by_key.values()) == 11
    assert server.metric("ddc_dedup_records_invalid_total", link="a") == 0

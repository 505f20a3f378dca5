"""Broker outages on either side of a pair: survived, logged once per state change, nothing lost."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from devtools.embedded_kafka import EmbeddedKafka
from tests.integration.kafka.helpers import (
    S3Kafka,
    S3Store,
    create_topics,
    moto_available,
    producer,
    read_topic,
    unique,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    client = producer(bootstrap)
    for i in range(start, start + count):
        client.send(topic, key=b"%08d" % i, value=b"%08d:" % i + os.urandom(150), partition=i % 4)
    client.flush(30)
    client.close()


def keys_of(consumed) -> set[bytes]:
    return {m.key for m in consumed.records}


@pytest.mark.skipif(
    not moto_available(), reason="moto[server] (S3 storage for Tansu) not installed"
)
@pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])
def test_source_broker_down_10s_nothing_lost_or_skipped(
    tmp_path: Path, kafka_bootstrap: str, make_pair, client
):
    # Tansu's default memory storage forgets topics and committed offsets on restart, so the
    # source broker keeps its data in S3 (moto's server), as a production broker keeps its log.
    store = S3Store(tmp_path).start()
    broker = S3Kafka(store, data_dir=tmp_path / "broker").start()
    try:
        source, target = broker.bootstrap, kafka_bootstrap
        create_topics(source, "src")
        dst = unique("outage-dst")
        create_topics(target, dst)
        before, after = 12000, 3000
        produce(source, "src", 0, before)
        # ~160-byte records at 2 Mbit/s: the stream takes ~8 s, so the broker dies mid-stream
        pair = make_pair(
            "a", source=source, sink=target, topics=["src"], group="outage",
            sink_config={"topic": dst}, ingress_transport={"rate": "2Mbit"}, client=client,
        ).start()  # fmt: skip
        wait_until(
            lambda: len(read_topic(target, dst, lambda c: len(c) >= 1500, 5)) >= 1500,
            30,
            message="flow",
        )
        broker.kill()
        time.sleep(10)
        broker.start()
        produce(source, "src", before, after)

        expected = {b"%08d" % i for i in range(before + after)}
        consumed = read_topic(target, dst, lambda c: expected <= keys_of(c), 60)
        missing = expected - keys_of(consumed)
        partitions = Counter(int(key) % 4 for key in missing)
        assert not missing, (
            f"{len(missing)} records lost, by source partition {dict(partitions)}\n{pair.diagnosis()}"
        )
        assert pair.ingress.process.poll() is None, pair.ingress.log()

        log = pair.ingress.log()
        down = log.count("Kafka source: broker unreachable")
        up = log.count("Kafka source: broker reachable")
        assert down == 1, log[-4000:]
        assert up == 2, log[-4000:]  # the first connect and the recovery
        assert pair.ingress.health()["kafka_connected"] is True
        pair.stop()
    finally:
        broker.cleanup()
        store.stop()


@pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])
def test_target_broker_down_spools_then_delivers(
    tmp_path: Path, kafka_bootstrap: str, make_pair, client
):
    target = EmbeddedKafka(data_dir=tmp_path / "target").start()
    try:
        src, dst = unique("sinkout-src"), "mirror"
        create_topics(kafka_bootstrap, src)
        create_topics(target.bootstrap, dst)
        pair = make_pair(
            "a", source=kafka_bootstrap, sink=target.bootstrap, topics=[src], group=unique("g"),
            sink_config={"topic": dst, "buffer_max_records": 3000}, client=client,
        ).start()  # fmt: skip
        produce(kafka_bootstrap, src, 0, 500)
        read_topic(target.bootstrap, dst, lambda c: len(c) >= 500, 30)
        target.kill()
        produce(kafka_bootstrap, src, 500, 4000)  # more than the sink may hold in flight
        wait_until(
            lambda: pair.egress.health()["sink_buffered_records"] > 0,
            30,
            message="records in flight",
        )
        # the producer retries silently; no acknowledgement for 5 s makes the sink unhealthy
        health = wait_until(
            lambda: (h := pair.egress.health())["sink_ok"] is False and h,
            15,
            message="sink degraded",
        )
        assert health["status"] == "degraded"
        # the in-flight window (3000 records, the last chunk may pass it); the rest is spooled
        assert health["sink_buffered_records"] < 4000
        assert health["spool"]["chunks"] > 0
        assert pair.egress.metric("ddc_egress_records_dropped_total") == 0

        target.start()  # memory storage: the restarted broker starts empty
        create_topics(target.bootstrap, dst)
        expected = {b"%08d" % i for i in range(500, 4500)}
        consumed = read_topic(
            target.bootstrap, dst, lambda c: expected <= {m.key for m in c.records}, 60
        )
        keys = {m.key for m in consumed.records}
        # every record that crossed during the outage reached the broker once it was back
        assert expected <= keys, len(expected - keys)
        wait_until(lambda: pair.egress.health()["sink_ok"], 20, message="sink recovered")
        assert pair.egress.metric("ddc_egress_records_dropped_total") == 0
        log = pair.egress.log()
        assert log.count("Kafka sink: cannot deliver") == 1, log[-4000:]
        pair.stop()
    finally:
        target.cleanup()

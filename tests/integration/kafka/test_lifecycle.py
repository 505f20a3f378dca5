"""Kafka pair lifecycle: bad options refused at start, graceful stop commits exactly what crossed."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from devtools.embedded_kafka import create_topics
from devtools.harness import DDC, wait_until
from tests.integration.kafka.helpers import (
    Daemon,
    ingress_tables,
    producer,
    read_topic,
    src_of,
    unique,
)

pytestmark = pytest.mark.timeout(90)


def test_unknown_consumer_option_exits_2_naming_the_key(tmp_path):
    tables = ingress_tables("127.0.0.1:9", ["t"], "g", 9)
    tables["ingress.source.options"]["sesion_timeout_ms"] = 1
    config = Daemon("ingress", "bad", tmp_path, tables).config
    done = subprocess.run(
        [*DDC, "ingress", "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "ingress.source.options.sesion_timeout_ms" in lines[0], done.stderr


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in range(4)}
    finally:
        consumer.close(autocommit=False)


@pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])
def test_sigterm_sends_what_was_read_then_commits_exactly_that(
    kafka_bootstrap: str, make_pair, client
):
    """...and the restarted pair sends the rest: every record once."""
    src, dst, group = unique("stop-src"), unique("stop-dst"), unique("stop")
    create_topics(kafka_bootstrap, src, dst)
    pair = make_pair(
        "s", source=kafka_bootstrap, sink=kafka_bootstrap, topics=[src], group=group,
        sink_config={"topic_map": {src: dst}}, client=client,
    ).start()  # fmt: skip
    stop_producing = threading.Event()
    produced = []

    def produce() -> None:  # a live topic: the ingress is stopped while records keep coming
        client = producer(kafka_bootstrap)
        i = 0
        while not stop_producing.is_set():
            for _ in range(100):
                client.send(src, key=b"%08d" % i, value=os.urandom(200))
                i += 1
            time.sleep(0.02)
        client.flush(30)
        client.close()
        produced.append(i)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: len(read_topic(kafka_bootstrap, dst, lambda c: len(c) >= 2000, 5)) >= 2000, 30
        )
        assert pair.ingress.stop(20) == 0, pair.ingress.log()[-3000:]
    finally:
        stop_producing.set()
        thread.join(30)
    assert "Kafka source closed (left group" in pair.ingress.log()

    committed = committed_offsets(kafka_bootstrap, group, src)
    total = sum(committed.values())
    assert 0 < total < produced[0], (committed, produced)  # stopped mid-stream

    assert pair.egress.stop(20) == 0  # flushes its producer
    # what crossed (a reader's first fetches took seconds on a loaded machine: wait for them),
    # then a second look whether anything beyond it arrives
    consumed = read_topic(kafka_bootstrap, dst, lambda c: len(c) >= total, 30)
    extra = read_topic(kafka_bootstrap, dst, lambda c: len(c) > total, 3)
    assert len(extra.records) <= total, f"{len(extra.records)} records crossed, {total} committed"
    per_partition: dict[int, list[int]] = {}
    for message in consumed.records:
        per_partition.setdefault(message.partition, []).append(src_of(message)[2])
    # everything read before the stop crossed, and the group committed exactly up to it
    assert {p: sorted(offsets) for p, offsets in per_partition.items()} == {
        p: list(range(n)) for p, n in committed.items() if n
    }

    pair.start()  # the same group: the ingress starts at the committed offsets
    everything = read_topic(kafka_bootstrap, dst, lambda c: len(c) >= produced[0], 90)
    crossed = [src_of(m) for m in everything.records]
    assert len(crossed) == produced[0], pair.diagnosis()
    assert len(set(crossed)) == produced[0]  # nothing twice, nothing lost
    wait_until(
        lambda: sum(committed_offsets(kafka_bootstrap, group, src).values()) == produced[0], 30
    )

"""`client = "librdkafka"` on both ends of a pair: the same guarantees as the kafka-python path.

Per codec (none, gzip, snappy, lz4, zstd): a confluent-kafka producer writes the topic, a pair
whose source and sink both use librdkafka mirrors it (the sink compressing with that codec), a
confluent-kafka consumer reads the target: every record identical, per key in order. A SIGTERM
mid-stream commits exactly what crossed, and the restarted ingress sends the rest: nothing lost,
nothing twice. Bad librdkafka options are one line naming the key and exit 2.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from devtools.harness import DDC
from tests.integration.kafka.helpers import (
    Daemon,
    create_topics,
    egress_tables,
    ingress_tables,
    producer,
    rd_read_topic,
    rd_tables,
    read_topic,
    src_of,
    stored_codecs,
    unique,
    wait_until,
)
from tests.integration.kafka.test_codecs import COUNT, produce

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_librdkafka_pair_moves_every_record_identical_and_in_order(
    kafka_bootstrap, make_pair, codec
):
    src, dst = unique(f"rd-src-{codec}"), unique(f"rd-dst-{codec}")
    create_topics(kafka_bootstrap, src, dst)
    pair = make_pair(
        codec,
        source=kafka_bootstrap,
        sink=kafka_bootstrap,
        topics=[src],
        group=unique("rd"),
        sink_config={"topic_map": {src: dst}, "compression_type": codec},
        client="librdkafka",
    ).start()
    expected = produce(kafka_bootstrap, src, codec, COUNT)
    if codec != "none":
        assert stored_codecs(kafka_bootstrap, src, COUNT) == {codec}

    messages = rd_read_topic(kafka_bootstrap, dst, COUNT, timeout=90)
    got: dict[bytes, list[tuple]] = {}
    for message in messages:
        headers = [(n, v) for n, v in (message.headers() or []) if n != "ddc-src"]
        got.setdefault(message.key(), []).append((message.value(), headers))
    assert len(messages) == COUNT, pair.diagnosis()
    assert got == expected  # every record identical, per key in the order produced
    if codec != "none":
        assert stored_codecs(kafka_bootstrap, dst, COUNT) == {codec}  # the sink compressed it
    health = pair.ingress.health()
    assert health["kafka_connected"] is True and health["kafka_member"] is True
    # the sink settled every record on its delivery report (nothing left in flight or spooled)
    settled = wait_until(
        lambda: (h := pair.egress.health())["sink_buffered_records"] == 0 and h, 10
    )
    assert settled["kafka_connected"] is True and settled["sink_ok"] is True
    assert settled["spool"]["chunks"] == 0, settled
    assert pair.ingress.metric("ddc_ingress_kafka_batch_errors_total") == 0
    assert pair.egress.metric("ddc_egress_packets_lost_total") == 0
    assert "librdkafka" in pair.ingress.log() and "Kafka sink: brokers" in pair.egress.log()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in range(4)}
    finally:
        consumer.close(autocommit=False)


def test_sigterm_commits_exactly_what_crossed_and_the_restart_sends_the_rest(
    kafka_bootstrap: str, make_pair
):
    src, dst, group = unique("rdstop-src"), unique("rdstop-dst"), unique("rdstop")
    create_topics(kafka_bootstrap, src, dst)
    pair = make_pair(
        "s",
        source=kafka_bootstrap,
        sink=kafka_bootstrap,
        topics=[src],
        group=group,
        sink_config={"topic_map": {src: dst}},
        client="librdkafka",
    ).start()
    stop_producing = threading.Event()
    produced = []

    def produce_live() -> None:  # a live topic: the ingress is stopped while records keep coming
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

    thread = threading.Thread(target=produce_live, daemon=True)
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

    consumed = read_topic(kafka_bootstrap, dst, lambda c: len(c) > total, 5)  # waits for extras
    per_partition: dict[int, list[int]] = {}
    for message in consumed.records:
        per_partition.setdefault(message.partition, []).append(src_of(message)[2])
    # everything read before the stop crossed, and the group committed exactly up to it
    assert {p: sorted(offsets) for p, offsets in per_partition.items()} == {
        p: list(range(n)) for p, n in committed.items() if n
    }

    pair.ingress.start()  # the same group: it starts at the committed offsets
    everything = read_topic(kafka_bootstrap, dst, lambda c: len(c) >= produced[0], 90)
    crossed = sorted((src_of(m)[1], src_of(m)[2]) for m in everything.records)
    assert len(crossed) == produced[0], pair.diagnosis()
    assert len(set(crossed)) == produced[0]  # nothing twice
    assert committed_offsets(kafka_bootstrap, group, src) != committed  # and it commits again
    wait_until(
        lambda: sum(committed_offsets(kafka_bootstrap, group, src).values()) == produced[0], 30
    )


def start_fails(role: str, tables: dict, tmp_path: Path, env: dict | None = None) -> str:
    """The daemon's one stderr line; asserts exit 2."""
    config = Daemon(role, "bad", tmp_path, tables).config
    done = subprocess.run(
        [*DDC, role, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("sesion.timeout.ms", 6000, "No such configuration property"),
        ("session.timeout.ms", "soon", "Invalid value"),
        ("enable.partition.eof", "maybe", "Expected bool"),
        ("linger.ms", 5, "producer property"),
        ("group.id", "other", "set by group_id"),
        ("bootstrap.servers", "127.0.0.1:1", "set by bootstrap_servers"),
    ],
)
def test_bad_source_option_exits_2_naming_the_key(tmp_path, name, value, why):
    tables = rd_tables(ingress_tables("127.0.0.1:9", ["t"], "g", 9))
    tables["ingress.source.options"][name] = value
    line = start_fails("ingress", tables, tmp_path)
    assert f"ingress.source.options.{name}" in line and why in line, line


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("linger_ms", 5, "No such configuration property"),  # kafka-python's spelling
        ("linger.ms", "later", "Invalid value"),
        ("compression.type", "gzip", "set by compression_type"),
        ("auto.offset.reset", "earliest", "consumer property"),
    ],
)
def test_bad_sink_option_exits_2_naming_the_key(tmp_path, name, value, why):
    tables = egress_tables("127.0.0.1:9", 9, {"client": "librdkafka", "topic": "t"})
    tables["egress.sink.options"] = {name: value}
    line = start_fails("egress", tables, tmp_path)
    assert f"egress.sink.options.{name}" in line and why in line, line


def test_librdkafka_without_confluent_kafka_is_a_config_error(tmp_path):
    hidden = tmp_path / "hidden"
    (hidden / "confluent_kafka").mkdir(parents=True)
    (hidden / "confluent_kafka" / "__init__.py").write_text("raise ImportError('hidden')\n")
    env = {"PYTHONPATH": f"{hidden}:{os.environ.get('PYTHONPATH', '')}"}
    tables = rd_tables(ingress_tables("127.0.0.1:9", ["t"], "g", 9))
    line = start_fails("ingress", tables, tmp_path, env)
    assert "ingress.source.client" in line and "confluent-kafka" in line, line
    tables = egress_tables("127.0.0.1:9", 9, {"client": "librdkafka", "topic": "t"})
    line = start_fails("egress", tables, tmp_path, env)
    assert "egress.sink.client" in line and "confluent-kafka" in line, line


def test_unknown_client_is_a_config_error(tmp_path):
    tables = ingress_tables("127.0.0.1:9", ["t"], "g", 9)
    tables["ingress.source"]["client"] = "rdkafka"
    assert "ingress.source.client" in start_fails("ingress", tables, tmp_path)

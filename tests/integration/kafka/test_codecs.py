"""Compressed topics: librdkafka (confluent-kafka) producers and consumers on both ends.

Per codec (and without one), with each Kafka client on the pair's ends (kafka-python, the
default, and librdkafka): a confluent-kafka producer writes a topic with compression.type = codec into the
real broker; a pair (Kafka source -> Kafka sink with compression_type = codec) mirrors it; a
confluent-kafka consumer reads the target. Every record identical (key, value, headers), per
key in order, and the batches the broker serves are compressed with that codec on both sides.
A batch the source cannot decode is a named, counted error, never "broker unreachable".
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.integration.kafka.helpers import (
    create_topics,
    rd_producer,
    rd_read_topic,
    stored_codecs,
    unique,
    wait_until,
)

pytestmark = pytest.mark.timeout(240)

CODECS = ["gzip", "snappy", "lz4", "zstd"]
COUNT = 4000
KEYS = 64
WORDS = [b"alpha", b"beta", b"gamma", b"delta", b"sensor", b"reading", b"42", b"-7.5"]


def produce(bootstrap: str, topic: str, codec: str, count: int) -> dict[bytes, list[tuple]]:
    """`count` compressible records with headers; the expected (value, headers) per key."""
    rng = random.Random(codec)
    producer = rd_producer(bootstrap, **{"compression.type": codec})
    expected: dict[bytes, list[tuple]] = {}
    for i in range(count):
        key = b"key-%d" % (i % KEYS)
        value = b" ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 400)))
        headers = [("seq", b"%d" % i), ("codec", codec.encode()), ("seq", b""), ("e", b"")]
        expected.setdefault(key, []).append((value, headers))
        producer.produce(topic, key=key, value=value, headers=headers)
        if i % 1000 == 999:
            producer.flush(30)
    assert producer.flush(30) == 0
    return expected


@pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])
@pytest.mark.parametrize("codec", ["none", *CODECS])
def test_compressed_topic_crosses_identical_and_in_order(kafka_bootstrap, make_pair, codec, client):
    """client: the pair's Kafka client on both ends (the producer and reader are librdkafka)."""
    src, dst = unique(f"codec-src-{codec}"), unique(f"codec-dst-{codec}")
    create_topics(kafka_bootstrap, src, dst)
    pair = make_pair(
        codec,
        source=kafka_bootstrap,
        sink=kafka_bootstrap,
        topics=[src],
        group=unique("codec"),
        sink_config={"topic_map": {src: dst}, "compression_type": codec},
        client=client,
    ).start()
    expected = produce(kafka_bootstrap, src, codec, COUNT)
    assert stored_codecs(kafka_bootstrap, src, COUNT) == {codec}  # librdkafka compressed it

    messages = rd_read_topic(kafka_bootstrap, dst, COUNT, timeout=90)
    got: dict[bytes, list[tuple]] = {}
    for message in messages:
        headers = [(n, v) for n, v in (message.headers() or []) if n != "ddc-src"]
        got.setdefault(message.key(), []).append((message.value(), headers))
    assert len(messages) == COUNT, pair.diagnosis()
    assert got == expected  # every record identical, per key in the order produced
    assert stored_codecs(kafka_bootstrap, dst, COUNT) == {codec}  # the sink compressed it
    # the sink settled every record on the broker's acknowledgement: nothing in flight or spooled
    settled = wait_until(
        lambda: (h := pair.egress.health())["sink_buffered_records"] == 0 and h, 10
    )
    assert settled["kafka_connected"] is True and settled["sink_ok"] is True
    assert settled["spool"]["chunks"] == 0, settled
    assert pair.ingress.health()["kafka_member"] is True
    assert pair.ingress.metric("ddc_ingress_kafka_batch_errors_total") == 0
    assert pair.egress.metric("ddc_egress_packets_lost_total") == 0


def test_batch_without_its_codec_library_is_named_and_holds_back_one_partition(
    kafka_bootstrap, make_pair, tmp_path: Path
):
    """zstd batches in partition 0 while the ingress has no zstandard module; gzip batches in
    partition 1 keep crossing."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "zstandard.py").write_text("raise ImportError('hidden by the test')\n")
    src, dst = unique("nocodec-src"), unique("nocodec-dst")
    create_topics(kafka_bootstrap, src, dst, partitions=2)
    pair = make_pair(
        "nocodec",
        source=kafka_bootstrap,
        sink=kafka_bootstrap,
        topics=[src],
        group=unique("nocodec"),
        sink_config={"topic_map": {src: dst}},
    )
    pair.ingress.env["PYTHONPATH"] = str(hidden)
    pair.start()
    for codec, partition in (("zstd", 0), ("gzip", 1)):
        producer = rd_producer(kafka_bootstrap, **{"compression.type": codec})
        for i in range(500):
            producer.produce(src, value=b"%s-%d" % (codec.encode(), i), partition=partition)
        assert producer.flush(30) == 0

    crossed = rd_read_topic(kafka_bootstrap, dst, 500, timeout=60, partitions=2)
    assert sorted(m.value() for m in crossed) == sorted(b"gzip-%d" % i for i in range(500))
    wait_until(lambda: pair.ingress.health()["kafka_batch_errors"], 20)
    health = pair.ingress.health()
    assert health["kafka_connected"] is True and health["status"] == "degraded"
    [error] = health["kafka_batch_errors"]
    assert f"(zstd) in {src}/0 at offset 0" in error and "pip install zstandard" in error
    assert pair.ingress.metric('ddc_ingress_kafka_batch_errors_total{codec="zstd"}') >= 1
    log = pair.ingress.log()
    assert "broker unreachable" not in log
    assert f"undecodable record batch (zstd) in {src}/0 at offset 0" in log

"""100,000 records of every size cross one pair, topic to topic, identical and in order."""

from __future__ import annotations

import hashlib
import os
import random
import time

import pytest

from tests.integration.kafka.helpers import create_topics, producer, scan_topic, src_of, unique

pytestmark = pytest.mark.timeout(180)

COUNT = 100_000
LARGE = 100  # records of 512 KiB among them
LARGE_SIZE = 512 * 1024


def small_size(rng: random.Random) -> int:
    """0 to 8,192 bytes, log-uniform: every size class as often, ~0.9 KiB on average (uniform
    sizes averaged 4 KiB: 400 MB through the pair, two minutes of the suite)."""
    return min(8192, int(2 ** rng.uniform(-0.2, 13.02)))


def digest(key: bytes, value: bytes, headers: list) -> bytes:
    h = hashlib.blake2b(key, digest_size=16)
    h.update(len(value).to_bytes(4, "little"))
    h.update(value)
    for name, item in headers:
        if name != "ddc-src":
            h.update(name.encode() + b"\0" + (item or b"") + b"\0")
    return h.digest()


def test_100k_records_cross_with_key_value_headers_and_order(kafka_bootstrap: str, make_pair):
    src, dst = unique("mirror-src"), unique("mirror-dst")
    create_topics(kafka_bootstrap, src, dst)
    pair = make_pair(
        "m", source=kafka_bootstrap, sink=kafka_bootstrap, topics=[src], group=unique("mirror"),
        sink_config={"topic_map": {src: dst}, "options": {"max_request_size": 2 * 1024**2}},
    ).start()  # fmt: skip

    rng = random.Random(7)
    pool = os.urandom(LARGE_SIZE + 8192)
    large = set(rng.sample(range(COUNT), LARGE))
    expected: dict[bytes, bytes] = {}
    client = producer(kafka_bootstrap, **{"message.max.bytes": 2 * 1024**2})
    started = time.monotonic()
    for i in range(COUNT):
        key = rng.randbytes(16)
        size = LARGE_SIZE if i in large else small_size(rng)
        start = rng.randrange(0, len(pool) - size + 1)
        value = pool[start : start + size]
        headers = [("seq", b"%d" % i), ("kind", b"large" if i in large else b"small")]
        expected[key] = digest(key, value, headers)
        client.send(src, key=key, value=value, headers=headers)
    client.flush(60)
    produced = time.monotonic() - started

    seen: dict[bytes, bytes] = {}
    last: dict[int, int] = {}
    disorder: list[tuple[int, int, int]] = []
    wrong_partition = []

    def visit(message) -> None:
        topic, partition, offset = src_of(message)
        if topic != src or message.partition != partition:
            wrong_partition.append((topic, partition, message.partition))
        if offset <= last.get(partition, -1):
            disorder.append((partition, last[partition], offset))
        last[partition] = offset
        seen[message.key] = digest(message.key, message.value, message.headers)

    scan_topic(kafka_bootstrap, dst, visit, lambda: len(seen) >= COUNT, 120)
    crossed = time.monotonic() - started
    print(
        f"produced {COUNT} records in {produced:.1f}s, all read back from {dst} after {crossed:.1f}s"
    )

    assert pair.egress.metric("ddc_egress_packets_lost_total") == 0
    assert len(seen) == COUNT, f"{COUNT - len(seen)} records missing"
    assert seen == expected  # key, value and headers identical
    assert not wrong_partition[:5]
    assert not disorder[:5], "order per source partition broken (or a duplicate)"
    assert pair.egress.metric("ddc_egress_records_dropped_total") == 0
    pair.stop()

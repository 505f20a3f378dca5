"""Consumer-group failover: two pairs share a group; killing or pausing one moves its partitions."""

from __future__ import annotations

import os
import re
import time
from collections import Counter

import pytest

from devtools.embedded_kafka import create_topics
from devtools.harness import wait_until
from tests.integration.kafka.helpers import Pair, producer, scan_topic, src_of, unique

pytestmark = pytest.mark.timeout(150)

SEQUENCE_TROUBLE = re.compile(r"(WARNING|ERROR) ddc\.(egress|protocol)")


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    client = producer(bootstrap)
    for i in range(start, start + count):
        client.send(topic, key=b"%08d" % i, value=b"%08d:" % i + os.urandom(190))
    client.flush(30)
    client.close()


CLIENTS = pytest.mark.parametrize("client", ["kafka-python", "librdkafka"])


def two_pairs(
    make_pair,
    bootstrap: str,
    src: str,
    dst: str,
    group: str,
    client: str = "kafka-python",
    **transport,
) -> tuple[Pair, Pair]:
    pairs = tuple(
        make_pair(
            name,
            source=bootstrap,
            sink=bootstrap,
            topics=[src],
            group=group,
            sink_config={"topic_map": {src: dst}},
            ingress_transport=transport,
            client=client,
        ).start()  # fmt: skip
        for name in ("a", "b")
    )
    wait_until(
        lambda: all(len(p.ingress.health()["assigned_partitions"]) == 2 for p in pairs),
        30, message="both ingresses to own two partitions",
    )  # fmt: skip
    return pairs


def assigned(pair: Pair) -> list[str]:
    return pair.ingress.health()["assigned_partitions"]


@CLIENTS
def test_kill_9_first_ingress_every_record_still_arrives(kafka_bootstrap: str, make_pair, client):
    src, dst = unique("fo-src"), unique("fo-dst")
    create_topics(kafka_bootstrap, src, dst)
    # ~240-byte records at 4 Mbit/s per pair: 20,000 records take ~5 s, so the kill lands mid-stream
    a, b = two_pairs(make_pair, kafka_bootstrap, src, dst, unique("fo"), client, rate="4Mbit")
    count = 20_000
    produce(kafka_bootstrap, src, 0, count)

    arrived: Counter = Counter()
    origins: dict[tuple[str, int, int], bytes] = {}

    def visit(message) -> None:
        origin = src_of(message)  # every copy carries ddc-src, so duplicates can be removed
        assert origins.setdefault(origin, message.key) == message.key
        arrived[message.key] += 1

    scan_topic(kafka_bootstrap, dst, visit, lambda: len(arrived) >= count // 5, 30)
    a.ingress.kill()
    killed_at = time.monotonic()
    wait_until(lambda: len(assigned(b)) == 4, 30, message="the survivor to take all partitions")
    takeover = time.monotonic() - killed_at

    arrived.clear()
    origins.clear()
    scan_topic(kafka_bootstrap, dst, visit, lambda: len(arrived) >= count, 60)
    duplicates = sum(n - 1 for n in arrived.values())
    print(
        f"takeover after {takeover:.1f}s; {len(arrived)} distinct records, {duplicates} duplicates"
    )

    assert set(arrived) == {b"%08d" % i for i in range(count)}
    assert len(origins) == count  # one source position per record: ddc-src removes every duplicate
    assert b.egress.metric("ddc_egress_packets_lost_total") == 0
    assert b.egress.metric("ddc_egress_chunks_aborted_total") == 0
    assert not SEQUENCE_TROUBLE.findall(b.egress.log())
    b.stop()
    a.egress.stop()


@CLIENTS
def test_pause_moves_all_partitions_and_resume_takes_some_back(
    kafka_bootstrap: str, make_pair, client
):
    src, dst = unique("pause-src"), unique("pause-dst")
    create_topics(kafka_bootstrap, src, dst)
    a, b = two_pairs(make_pair, kafka_bootstrap, src, dst, unique("pause"), client)

    assert a.ingress.post("/admin/pause") == {"paused": True}
    paused_at = time.monotonic()
    wait_until(
        lambda: len(assigned(b)) == 4 and assigned(a) == [], 15, message="partitions to move to b"
    )
    moved = time.monotonic() - paused_at
    health = a.ingress.health()
    assert health["paused"] is True and health["status"] == "ok" and health["kafka_member"] is False

    produce(kafka_bootstrap, src, 0, 2000)  # flows through b alone while a is paused
    keys: set[bytes] = set()
    scan_topic(kafka_bootstrap, dst, lambda m: keys.add(m.key), lambda: len(keys) >= 2000, 30)
    assert len(keys) == 2000

    assert a.ingress.post("/admin/resume") == {"paused": False}
    wait_until(
        lambda: assigned(a) and len(assigned(a)) + len(assigned(b)) == 4, 15, message="a to rejoin"
    )
    print(f"partitions moved {moved:.1f}s after /admin/pause; after resume a owns {assigned(a)}")
    for pair in (a, b):
        pair.stop()

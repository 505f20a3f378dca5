"""The merge loop while paused (Redis down) and its consumer group rebalances: nothing skipped.

kafka-python keeps a partition paused only while the consumer holds it; partitions a rebalance
hands a paused loop are fetched, and what poll returns then must not be skipped and committed past.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from dedup_service.embedded import EmbeddedRedis
from devtools.harness import wait_until
from tests.integration.dedup.conftest import read_length_prefixed
from tests.integration.dedup.test_merge import CLIENTS, committed, produce

pytestmark = pytest.mark.kafka
FAST_GROUP = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 500,
    "max_poll_interval_ms": 10000,
}
RD_FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
PARTITIONS = 4


@pytest.mark.parametrize("client", CLIENTS)
def test_rebalance_while_paused_loses_nothing(dedup_server, kafka_bootstrap, tmp_path, client):
    tag = uuid.uuid4().hex[:8]
    topic, group = f"rb-a-{tag}", f"rb-{tag}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    own = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    out = tmp_path / "merged.bin"
    merge = {
        "bootstrap_servers": kafka_bootstrap,
        "links": {"a": topic},
        "group_id": group,
        "poll_max_records": 50,
        "poll_timeout": "0.2s",
        "retry_interval": "0.3s",
        "client": client,
        "options": FAST_GROUP if client == "kafka-python" else RD_FAST_GROUP,
    }
    settings = {"redis_url": own.url, "id_from": "source", "key_prefix": f"rb{tag}"}
    sink = {"type": "file", "path": str(out)}
    try:
        ends: dict = {TopicPartition(topic, p): None for p in range(PARTITIONS)}
        produce(kafka_bootstrap, topic, range(100), ends)
        first = dedup_server(sink=sink, merge=merge, **settings)
        wait_until(lambda: len(read_length_prefixed(out)) == 100, 60, interval=0.2)

        own.stop()  # Redis down: the loop pauses on its next batch
        produce(kafka_bootstrap, topic, range(100, 340), ends)
        wait_until(lambda: first.get("/healthz").json()["merge"]["paused"], 20, interval=0.2)

        # a second instance joins the group (a rebalance), pauses on its own batch, then leaves
        # (another rebalance): the first instance is handed partitions it held paused or not
        second = dedup_server(sink=sink, merge=merge, start=False, **settings).start(ready=False)
        wait_until(
            lambda: second.get("/healthz").json()["merge"]["paused"],
            30,
            interval=0.2,
            message="the second instance took partitions and paused",
        )
        second.stop()
        time.sleep(8)  # the first instance rejoins and polls its new partitions while paused

        own.start()
        expected = {b"v-%d" % i for i in range(340)}
        wait_until(
            lambda: set(read_length_prefixed(out)) >= expected,
            60,
            interval=0.3,
            message=lambda: f"{len(expected - set(read_length_prefixed(out)))} record(s) lost",
        )
        wait_until(
            lambda: committed(kafka_bootstrap, group, (topic,), PARTITIONS) == ends,
            20,
            interval=0.3,
        )
        time.sleep(1.0)  # anything extra would be a duplicate
        counts = Counter(read_length_prefixed(out))
        assert set(counts) == expected and set(counts.values()) == {1}
    finally:
        own.cleanup()

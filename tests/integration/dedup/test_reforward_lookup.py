"""A claim left pending by a holder that crashed after producing (kill -9 between forward and
commit): the librdkafka Kafka sink reads its topic back for the records' `ddc-dedup-id` headers,
so what had reached the topic is committed and not produced a second time; the rest is forwarded
again (counted as re-forwards). The crashed holder is recreated exactly: its pending claims made
through the store, its records produced with their headers, its lease left to expire."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from dedup_service.redis_client import connect
from dedup_service.store import Store
from tests.integration.dedup.conftest import b64
from tests.integration.dedup.test_tombstones import read_all
from tests.integration.kafka.helpers import Producer

pytestmark = pytest.mark.kafka
PENDING = 2.0


def test_records_a_crashed_holder_produced_are_found_not_produced_again(
    dedup_server, kafka_bootstrap, redis_url
):
    tag = uuid.uuid4().hex[:8]
    topic, prefix = f"reforward-{tag}", f"rf{tag}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    sink = {
        "type": "kafka",
        "bootstrap_servers": kafka_bootstrap,
        "topic": topic,
        "client": "librdkafka",
        "timeout": f"{PENDING:g}s",
    }
    server = dedup_server(key_prefix=prefix, pending_timeout=f"{PENDING:g}s", sink=sink)
    ids = [f"order-{i}" for i in range(40)]
    crashed = Store(connect(redis_url), prefix=prefix, window=86400, pending_timeout=PENDING)
    crashed.links(refresh=True)
    assert crashed.claim("a", ids, [""] * len(ids), crashed.new_token(), pending=True)
    producer = Producer(kafka_bootstrap)
    for ident in ids[:25]:  # what it produced before it died
        producer.send(
            topic, value=b"v-" + ident.encode(), headers=[("ddc-dedup-id", ident.encode())]
        )
    producer.flush()
    producer.close()
    time.sleep(PENDING + 0.5)  # its lease expires; the egress posts the batch again

    records = [{"id": ident, "value": b64(b"v-" + ident.encode())} for ident in ids]
    answer = server.post("/v1/records", {"link": "a", "records": records}).json()
    assert answer["forwarded"] == 40 and answer["duplicates"] == 0
    assert server.metric("ddc_dedup_reforward_found_total") == 25
    assert server.metric("ddc_dedup_reforwarded_total") == 15
    again = server.post("/v1/records", {"link": "b", "records": records}).json()
    assert again["duplicates"] == 40  # every claim committed

    got = read_all(kafka_bootstrap, topic, 40, timeout=20)
    counts = Counter(dict(r.headers)["ddc-dedup-id"].decode() for r in got)
    assert counts == Counter(ids)  # each exactly once
    assert "already at the sink" in server.log()

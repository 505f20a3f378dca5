"""`client = "librdkafka"`: bad librdkafka options are one line naming the key, and exit 2.

The pair with librdkafka on both ends runs the kafka-python path's tests too: per codec
(test_codecs), SIGTERM and restart (test_lifecycle), failover and pause (test_failover),
broker outages (test_broker_outage). A record librdkafka refuses is dropped and counted, the
rest delivered in order.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from devtools.harness import DDC
from tests.integration.kafka.helpers import (
    Daemon,
    create_topics,
    egress_tables,
    ingress_tables,
    rd_producer,
    rd_read_topic,
    rd_tables,
    unique,
    wait_until,
)

pytestmark = pytest.mark.timeout(240)


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


def test_a_record_librdkafka_refuses_is_dropped_counted_and_the_rest_delivered(
    kafka_bootstrap, make_pair
):
    src, dst = unique("rdbig-src"), unique("rdbig-dst")
    create_topics(kafka_bootstrap, src, dst, partitions=1)
    ends = {"source": kafka_bootstrap, "sink": kafka_bootstrap, "client": "librdkafka"}
    sink = {"topic_map": {src: dst}, "options": {"message.max.bytes": 1000}}  # librdkafka's min
    pair = make_pair("big", **ends, topics=[src], group=unique("rdbig"), sink_config=sink).start()
    values = [b"%02d" % i + (b"x" * 3000 if i == 5 else b"y" * 100) for i in range(10)]
    client = rd_producer(kafka_bootstrap)
    for value in values:
        client.produce(src, value=value, partition=0)
    assert client.flush(30) == 0

    expected = [v for i, v in enumerate(values) if i != 5]
    got = [m.value() for m in rd_read_topic(kafka_bootstrap, dst, 9, timeout=60, partitions=1)]
    assert got == expected, pair.diagnosis()
    wait_until(
        lambda: pair.egress.metric('ddc_egress_records_dropped_total{reason="rejected"}') == 1, 10
    )
    assert pair.egress.health()["sink_buffered_records"] == 0
    assert "Kafka sink dropped a record (rejected)" in pair.egress.log()
    assert "MSG_SIZE_TOO_LARGE" in pair.egress.log()

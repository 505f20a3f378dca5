"""The dedup service's Kafka clients: options checked at load (exit 2), tombstones kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kafka.structs import TopicPartition

from ddc.errors import ConfigError
from ddc.protocol.record import Record
from dedup_service.config import load_dedup_config
from dedup_service.keys import IdSpec, fingerprint
from dedup_service.merger import MergeLoop, merge_consumer_options
from dedup_service.merger_rd import merge_rd_config
from dedup_service.metrics import DedupMetrics
from dedup_service.sinks.kafka import KafkaSink, sink_producer_options
from tests.unit.kafka.fakes import FakeConsumer, Message

ROOT = Path(__file__).resolve().parents[3]
KAFKA_SINK = {"type": "kafka", "bootstrap_servers": "127.0.0.1:9092", "topic": "out"}
FILE_SINK = {"type": "file", "path": "out.bin"}
MERGE = {"bootstrap_servers": "127.0.0.1:9092", "links": {"a": "in-a", "b": "in-b"}}
RD_MERGE = {**MERGE, "client": "librdkafka"}


def load(dedup: dict[str, Any]) -> dict[str, Any]:
    return load_dedup_config(None, {}, document={"dedup": {"links": ["a", "b"], **dedup}})


@pytest.mark.parametrize(
    "dedup, key, problem",
    [
        (
            {"sink": {**KAFKA_SINK, "options": {"ackz": "all"}}},
            "dedup.sink.options.ackz",
            "not a KafkaProducer option",
        ),
        (
            {"sink": {**KAFKA_SINK, "options": {"bootstrap_servers": "x:1"}}},
            "dedup.sink.options.bootstrap_servers",
            "not allowed here; set by bootstrap_servers",
        ),
        (
            {"sink": {**KAFKA_SINK, "options": {"delivery_timeout_ms": 1000}}},
            "dedup.sink.options.delivery_timeout_ms",
            "must be more than linger_ms + request_timeout_ms",
        ),
        (
            {"sink": FILE_SINK, "merge": {**MERGE, "options": {"sesion_timeout_ms": 6000}}},
            "dedup.merge.options.sesion_timeout_ms",
            "not a KafkaConsumer option",
        ),
        (
            {"sink": FILE_SINK, "merge": {**MERGE, "options": {"enable_auto_commit": True}}},
            "dedup.merge.options.enable_auto_commit",
            "not allowed here",
        ),
        (
            {"sink": FILE_SINK, "merge": {**MERGE, "options": {"group_id": "other"}}},
            "dedup.merge.options.group_id",
            "set by group_id",
        ),
        (
            {"sink": FILE_SINK, "merge": {**RD_MERGE, "options": {"group.id": "other"}}},
            "dedup.merge.options.group.id",
            "set by group_id",
        ),
        (
            {"sink": FILE_SINK, "merge": {**RD_MERGE, "options": {"enable.auto.commit": True}}},
            "dedup.merge.options.enable.auto.commit",
            "not allowed here",
        ),
        (
            {"sink": FILE_SINK, "merge": {**RD_MERGE, "options": {"sesion.timeout.ms": 6000}}},
            "dedup.merge.options.sesion.timeout.ms",
            "",
        ),
        (
            {"sink": FILE_SINK, "merge": {**MERGE, "max_in_flight": 0}},
            "dedup.merge.max_in_flight",
            "",
        ),
    ],
)
def test_a_bad_kafka_option_is_a_config_error_naming_it(dedup, key, problem):
    with pytest.raises(ConfigError) as error:
        load(dedup)
    assert error.value.key == key
    assert problem in error.value.problem


def test_options_reach_the_clients_over_the_defaults():
    config = load(
        {
            "sink": {**KAFKA_SINK, "options": {"linger_ms": 50, "acks": 1}},
            "merge": {**MERGE, "group_id": "g", "options": {"session_timeout_ms": 6000}},
        }
    )
    producer = sink_producer_options(config["sink"])
    assert producer["linger_ms"] == 50 and producer["acks"] == 1 and producer["retries"] == 3
    assert producer["bootstrap_servers"] == ["127.0.0.1:9092"]
    assert producer["max_block_ms"] == 30000
    consumer = merge_consumer_options(config["merge"])
    assert consumer["session_timeout_ms"] == 6000 and consumer["group_id"] == "g"
    assert consumer["enable_auto_commit"] is False
    assert consumer["auto_offset_reset"] == "earliest" and consumer["max_poll_records"] == 2000
    assert consumer["bootstrap_timeout_ms"] == 5000


def test_librdkafka_merge_options_reach_the_consumer_under_the_loops_own_settings():
    config = load(
        {"sink": FILE_SINK, "merge": {**RD_MERGE, "options": {"session.timeout.ms": 6000}}}
    )
    consumer = merge_rd_config(config["merge"])
    assert consumer["session.timeout.ms"] == 6000 and consumer["group.id"] == "ddc-dedup"
    assert consumer["enable.auto.commit"] is False and consumer["auto.offset.reset"] == "earliest"
    assert consumer["bootstrap.servers"] == "127.0.0.1:9092"


def test_serve_exits_2_with_one_line_on_a_misspelt_option(tmp_path):
    path = tmp_path / "dedup.toml"
    path.write_text(
        '[dedup]\nlinks = ["a"]\nredis_url = "redis://127.0.0.1:1/0"\n'
        '[dedup.sink]\ntype = "file"\npath = "out.bin"\n'
        '[dedup.merge]\nbootstrap_servers = "127.0.0.1:1"\nlinks = {a = "in-a"}\n'
        "[dedup.merge.options]\nsesion_timeout_ms = 6000\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "dedup_service.cli", "serve", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "dedup.merge.options.sesion_timeout_ms" in lines[0], done.stderr


# --- tombstones through the merge loop -------------------------------------------------------


class Forwarder:
    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.forwarded: list[tuple[str, list[Any]]] = []

    def forward(self, link: str, items: list[Any]) -> list[str]:
        self.forwarded.append((link, list(items)))
        return ["first"] * len(items)


def merge_loop(sink: Any, id_spec: IdSpec) -> tuple[MergeLoop, Forwarder]:
    config = load({"sink": FILE_SINK, "merge": MERGE})["merge"]
    forwarder = Forwarder(sink)
    stats = SimpleNamespace(add=lambda *args: None)
    loop = MergeLoop(config, forwarder, None, stats, DedupMetrics(), id_spec)
    loop.consumer = FakeConsumer()
    return loop, forwarder


def tombstone_batch() -> dict[TopicPartition, list[Message]]:
    headers = [("ddc-src", b"src/0/7")]
    return {
        TopicPartition("in-a", 0): [
            Message("in-a", 0, 7, 1700000000000, b"k", None, headers),
            Message("in-a", 0, 8, 1700000000001, b"k", b"", [("ddc-src", b"src/0/8")]),
        ]
    }


def test_a_tombstone_reaches_the_kafka_sink_as_a_null_value():
    sink = KafkaSink(load({"sink": KAFKA_SINK})["sink"])
    loop, forwarder = merge_loop(sink, IdSpec("source"))
    loop.process(tombstone_batch())
    ((link, items),) = forwarder.forwarded
    assert link == "a"
    assert [item.record.value for item in items] == [None, b""]
    assert [item.ident for item in items] == ["src/0/7", "src/0/8"]
    assert items[0].fingerprint == fingerprint(Record(b"", b"k"))  # ids as before: null as empty
    assert loop.consumer.commits == [{TopicPartition("in-a", 0): 9}]


def test_sinks_without_tombstones_get_the_null_value_empty():
    loop, forwarder = merge_loop(SimpleNamespace(), IdSpec("hash"))
    loop.process(tombstone_batch())
    ((_, items),) = forwarder.forwarded
    assert [item.record.value for item in items] == [b"", b""]
    assert items[0].ident == items[1].ident  # `hash` of a tombstone: as of an empty value

"""A Kafka-sourced pair through a lossy diode (FEC off): GET /gaps names exactly the source
offsets missing from the target topic, then `ddc replay` makes the target complete, every
record exactly once, without moving the consumer group's committed offsets.

Tansu makes no offset holes; filtered records (a keyword filter) are the holes in what the
ingress sent here, and tests/unit/test_gaps.py shows the rule on compacted offsets.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from ddc.diode_sim.config import SimConfig
from dedup_service.embedded import free_port
from devtools.diode_sim_thread import DiodeSimThread
from devtools.embedded_kafka import create_topics
from devtools.harness import DDC, child_env, wait_until, write_toml
from tests.integration.kafka.helpers import (
    Daemon,
    egress_tables,
    ingress_tables,
    producer,
    scan_topic,
    src_of,
    unique,
)

pytestmark = pytest.mark.timeout(300)

PARTITIONS = 4
COUNT = 8000
LOSS = 0.03
SEED = 20261201
NO_LOSS = 1e-12  # not 0: the simulator picks its impaired relay at start, and loss changes later


def value_of(index: int) -> bytes:
    text = b"record %06d " % index + b"x" * (50 + index % 200)
    return text + (b" SECRET" if index % 10 == 5 else b"")  # not among the first/last 4


def group_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


def read_all(bootstrap: str, topic: str, count: int, timeout: float = 90) -> list[Any]:
    seen: list[Any] = []
    scan_topic(bootstrap, topic, seen.append, lambda: len(seen) >= count, timeout, PARTITIONS)
    return seen


def run_replay(
    config: Path, gaps: str, *options: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`ddc replay -c CONFIG --gaps GAPS [options]` run to its end (a CompletedProcess)."""
    argv = [*DDC, "replay", "-c", str(config), "--gaps", gaps, *options]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_env())


def settled(ingress: Daemon, egress: Daemon) -> tuple[float, float, float]:
    """(records the ingress sent after its filters, delivered by the egress, lost per /gaps)."""
    m = ingress.metrics()
    sent = m.get("ddc_ingress_records_total", 0) - m.get("ddc_ingress_records_filtered_total", 0)
    e = egress.metrics()
    return (
        sent,
        e.get("ddc_egress_records_delivered_total", 0),
        egress.get_json("/gaps")["records_lost"],
    )


def test_gaps_are_exact_and_replay_completes_the_target(kafka_bootstrap: str, tmp_path):
    src, dst, group = unique("gaps-src"), unique("gaps-dst"), unique("gaps")
    create_topics(kafka_bootstrap, src, dst, partitions=PARTITIONS)
    egress_port = free_port(socket.SOCK_DGRAM)
    egress = Daemon(
        "egress",
        "gaps",
        tmp_path,
        egress_tables(kafka_bootstrap, egress_port, {"topic_map": {src: dst}}, envelope="records"),
    )
    sim = DiodeSimThread(
        SimConfig(
            listen=("127.0.0.1", 0), forward=("127.0.0.1", egress_port), loss=NO_LOSS, seed=SEED
        )
    )
    tables = ingress_tables(
        kafka_bootstrap,
        [src],
        group,
        0,
        envelope="records",
        batch_max_bytes=4096,  # ~25 records a batch: many batches, each one datagram
        linger_ms=2,
    )
    tables["ingress.filters"] = [{"type": "keyword", "words": ["SECRET"]}]
    ingress: Daemon | None = None
    client = producer(kafka_bootstrap)
    try:
        egress.start()
        sim.start()
        tables["ingress.transport"]["destination"] = f"127.0.0.1:{sim.address[1]}"
        ingress = Daemon("ingress", "gaps", tmp_path, tables)
        sim.config.loss = LOSS
        ingress.start()

        def send(indexes: range) -> None:
            for i in indexes:
                client.send(src, value=value_of(i), partition=i % PARTITIONS)
            client.flush(30)

        # 1. 3 % of datagrams dropped (seeded) from the first record on: the egress saw the
        # StartUp, so a partition's lost first batches are named too
        send(range(PARTITIONS + COUNT))
        total = PARTITIONS + COUNT + PARTITIONS
        wait_until(
            lambda: (
                ingress.metric("ddc_ingress_records_total") >= total - PARTITIONS
                and ingress.health()["queued_records"] == 0
                and ingress.health()["queued_chunk_bytes"] == 0
            ),
            90,
            message=lambda: f"ingress sent everything: {ingress.health()}",
        )
        # 2. the diode is repaired: one more record per partition, whose batch marks name
        # whatever was lost before it, whether or not the tail marks got through
        sim.config.loss = NO_LOSS
        send(range(PARTITIONS + COUNT, total))
        expected = sum(1 for i in range(total) if b"SECRET" not in value_of(i))
        wait_until(
            lambda: (s := settled(ingress, egress))[0] == expected and s[1] + s[2] == s[0],
            90,
            message=lambda: f"delivered + lost == sent: {settled(ingress, egress)}",
        )
        sent, delivered, lost = settled(ingress, egress)
        report = egress.get_json("/gaps")
        source = {(m.partition, m.offset): m.value for m in read_all(kafka_bootstrap, src, total)}
        assert len(source) == total
        sent_offsets = {key for key, value in source.items() if b"SECRET" not in value}
        assert len(sent_offsets) == sent
        target = read_all(kafka_bootstrap, dst, int(delivered))
        arrived = {src_of(m)[1:] for m in target}
        missing = sent_offsets - arrived
        print(
            f"{sent:.0f} records sent, {delivered:.0f} delivered, {len(missing)} missing, "
            f"{len(report['kafka'])} ranges; packets lost {report['packets_lost']}; "
            f"datagrams dropped by the simulator {sim.counters()}"
        )
        # /gaps names exactly the missing source offsets (filtered offsets inside a range are
        # not records the ingress sent: the range's count leaves them out)
        in_ranges = {
            (partition, offset)
            for gap in report["kafka"]
            for (partition, offset) in source
            if gap["topic"] == src
            and gap["partition"] == partition
            and gap["first_offset"] <= offset <= gap["last_offset"]
        }
        assert len(missing) > 0, "the simulator lost nothing: the test proves nothing"
        assert in_ranges & sent_offsets == missing
        assert report["records_lost"] == len(missing) == lost
        assert sum(gap["records"] for gap in report["kafka"]) == len(missing)
        assert egress.metric("ddc_egress_records_lost_total") == len(missing)
        assert report["packets_lost"] == egress.metric("ddc_egress_packets_lost_total") > 0
        assert report["inconsistent_marks"] == 0 and report["session_observed"] is True

        # 3. replay refuses while the ingress runs (two senders into one egress)...
        refused = run_replay(ingress.config, egress.url("/gaps"))
        assert refused.returncode == 1 and "stop it first" in refused.stderr, refused.stderr
        # ...and runs with the ingress stopped (graceful: its Shutdown frees the egress)
        ingress.stop()
        committed = group_offsets(kafka_bootstrap, group)
        assert sum(committed.values()) == total  # the ingress committed everything it read
        started = time.monotonic()
        result = run_replay(ingress.config, egress.url("/gaps"), timeout=120)
        took = time.monotonic() - started
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads(result.stdout)
        print(f"replay: {summary['records_sent']} records in {took:.1f}s")
        assert summary["complete"] and summary["records_sent"] == len(missing)
        assert all(r["status"] == "complete" for r in summary["ranges"])
        assert group_offsets(kafka_bootstrap, group) == committed  # never moved by replay
        wait_until(
            lambda: egress.metric("ddc_egress_records_delivered_total") >= delivered + len(missing),
            60,
        )
        target = read_all(kafka_bootstrap, dst, int(delivered) + len(missing))
        copies = Counter(src_of(m)[1:] for m in target)
        assert set(copies) == sent_offsets  # the target is complete...
        assert [k for k, n in copies.items() if n > 1] == []  # ...every record exactly once
        assert len(target) == sent
        after = egress.get_json("/gaps")
        assert after["records_lost"] == len(missing)  # the replay itself lost nothing
        assert after["inconsistent_marks"] == 0
        # every range is closed: each of its records arrived once
        assert after["records_recovered"] == len(missing)
        assert all(gap["recovered"] == gap["records"] for gap in after["kafka"])
        # so a second replay from the same report has nothing left to send
        again = run_replay(ingress.config, egress.url("/gaps"))
        assert again.returncode == 0, again.stderr[-2000:]
        second = json.loads(again.stdout)
        assert second["records_sent"] == 0 and not second["ranges"]
        assert len(second["already_recovered"]) == len(after["kafka"])
    finally:
        client.close()
        if ingress is not None:
            ingress.kill()
        egress.kill()
        sim.stop()


def test_replay_names_what_is_not_in_kafka_and_sends_the_rest(kafka_bootstrap: str, tmp_path):
    src, dst, group = unique("gone-src"), unique("gone-dst"), unique("gone")
    create_topics(kafka_bootstrap, src, dst, partitions=2)
    client = producer(kafka_bootstrap)
    for i in range(20):
        client.send(src, value=b"r%d" % i, partition=i % 2)
    client.flush(30)
    client.close()
    egress_port = free_port(socket.SOCK_DGRAM)
    egress = Daemon(
        "egress",
        "gone",
        tmp_path,
        egress_tables(kafka_bootstrap, egress_port, {"topic_map": {src: dst}}, envelope="records"),
    )
    tables = ingress_tables(kafka_bootstrap, [src], group, egress_port, envelope="records")
    tables["ingress"]["http_listen"] = f"127.0.0.1:{free_port()}"  # nothing listens: not running
    config = tmp_path / "ingress.toml"
    write_toml(config, tables)
    report = {
        "kafka": [
            {"topic": src, "partition": 0, "first_offset": 5, "last_offset": 9, "records": 5},
            {"topic": src, "partition": 1, "first_offset": 100, "last_offset": 105, "records": 2},
            {
                "topic": "elsewhere",
                "partition": 0,
                "first_offset": 0,
                "last_offset": 1,
                "records": 2,
            },
        ]
    }
    gaps = tmp_path / "gaps.json"
    gaps.write_text(json.dumps(report))
    try:
        egress.start()
        result = run_replay(config, str(gaps), "--settle", "0.2", timeout=120)
        assert result.returncode == 1, result.stderr[-3000:]
        summary = json.loads(result.stdout)
        present, past = summary["ranges"]
        assert (present["status"], present["read"], present["sent"]) == ("complete", 5, 5)
        assert (past["status"], past["sent"], past["beyond_log_end"]) == (
            "incomplete",
            0,
            [100, 105],
        )
        assert summary["not_a_topic_of_this_ingress"][0]["topic"] == "elsewhere"
        assert "offsets 100..105 are past the log's end" in result.stderr
        assert "not a topic of this ingress" in result.stderr
        target = read_all(kafka_bootstrap, dst, 5, timeout=30)
        assert sorted(src_of(m)[1:] for m in target) == [(0, o) for o in range(5, 10)]
        assert egress.get_json("/gaps")["records_lost"] == 0
        assert group_offsets(kafka_bootstrap, group) == {}  # no group was ever joined
    finally:
        egress.kill()

"""The egress spool with a Kafka sink: a backlog faster than the target loses nothing, and records
spooled while the target is down survive a kill -9 of the egress (at-least-once, counted)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from devtools.embedded_kafka import EmbeddedKafka, create_topics
from devtools.harness import wait_until
from tests.integration.kafka.helpers import producer, read_topic, src_of, unique

pytestmark = pytest.mark.timeout(300)


def produce(bootstrap: str, topic: str, start: int, count: int, size: int) -> None:
    client = producer(bootstrap)
    pad = b"x" * max(0, size - 9)
    for i in range(start, start + count):
        client.send(topic, key=b"%08d" % i, value=b"%08d:" % i + pad, partition=i % 4)
    client.flush(60)
    client.close()


def copying_pair(make_pair, source: str, src: str, sink: str, dst: str):
    """A started pair copying topic `src` of the broker `source` to `dst` of `sink`."""
    return make_pair(
        "a", source=source, sink=sink, topics=[src], group=unique("g"), sink_config={"topic": dst}
    ).start()


def crossed(pair, records: int) -> bool:
    """The ingress took `records` and every chunk it sent was reassembled at the egress."""
    ingress, egress = pair.ingress, pair.egress
    sent = ingress.metric("ddc_ingress_chunks_sent_total")
    return (
        ingress.metric("ddc_ingress_records_total") >= records
        and egress.metric("ddc_egress_chunks_delivered_total") >= sent > 0
    )


def test_200000_record_backlog_crosses_with_default_config_nothing_lost(
    kafka_bootstrap: str, make_pair
):
    # issue 11: 200,000 records of 200 B waiting in the source topic; with a 100,000-record
    # in-memory buffer the egress dropped 83,746 of them. With the spool (default config) none.
    src, dst, total = unique("backlog-src"), unique("backlog-dst"), 200_000
    create_topics(kafka_bootstrap, src, dst)
    produce(kafka_bootstrap, src, 0, total, 200)
    pair = copying_pair(make_pair, kafka_bootstrap, src, kafka_bootstrap, dst)
    consumed = read_topic(
        kafka_bootstrap, dst, lambda c: len({m.key for m in c.records}) >= total, 240
    )
    copies = Counter(m.key for m in consumed.records)
    missing = total - len(copies)
    assert missing == 0, f"{missing} records lost\n{pair.diagnosis()}"
    assert pair.egress.metric("ddc_egress_records_dropped_total") == 0, pair.diagnosis()
    print(f"backlog: {total} records, {sum(copies.values()) - total} duplicates at the target")
    pair.stop()


def test_target_down_egress_killed_restarted_every_spooled_record_delivered(
    tmp_path: Path, kafka_bootstrap: str, make_pair
):
    target = EmbeddedKafka(data_dir=tmp_path / "target").start()
    try:
        src, dst = unique("spool-src"), "mirror"
        create_topics(kafka_bootstrap, src)
        create_topics(target.bootstrap, dst)
        pair = copying_pair(make_pair, kafka_bootstrap, src, target.bootstrap, dst)
        produce(kafka_bootstrap, src, 0, 500, 200)
        read_topic(target.bootstrap, dst, lambda c: len(c) >= 500, 60)
        time.sleep(2.5)  # the spool's acknowledged position reaches the disk (fsync_interval)
        target.kill()
        spooled = 30_000
        produce(kafka_bootstrap, src, 500, spooled, 200)
        wait_until(lambda: crossed(pair, 500 + spooled), 120, message="crossed into the spool")
        # the sink reports the broker down once a delivery stalls (STALL_AFTER): health follows
        wait_until(
            lambda: (
                (h := pair.egress.health())["spool"]["chunks"] > 0 and h["status"] == "degraded"
            ),
            30,
            message=lambda: f"spooled and degraded: {pair.egress.health()}",
        )
        time.sleep(1.5)  # appended chunks reach the file (they are in the page cache already)
        pair.egress.kill()  # SIGKILL: nothing flushed or acknowledged on the way out
        pair.egress.start()
        log = pair.egress.log()
        assert "waiting from before the restart" in log, log[-3000:]

        target.start()  # memory storage: the restarted broker starts empty
        create_topics(target.bootstrap, dst)
        expected = {b"%08d" % i for i in range(500, 500 + spooled)}
        consumed = read_topic(
            target.bootstrap, dst, lambda c: expected <= {m.key for m in c.records}, 120
        )
        copies = Counter(m.key for m in consumed.records)
        missing = expected - set(copies)
        assert not missing, f"{len(missing)} spooled records lost\n{pair.diagnosis()}"
        replayed = {key for key in copies if key not in expected}  # acked before, not saved
        duplicates = sum(copies.values()) - len(copies)
        print(
            f"kill -9: {len(expected)} spooled records delivered, {duplicates} duplicates, "
            f"{len(replayed)} replays of records delivered before the outage"
        )
        # at-least-once: a copy beyond the first is the same source record (ddc-src) again
        sources = Counter(src_of(m) for m in consumed.records)
        assert len(sources) == len(copies)
        assert all(int(key) < 500 for key in replayed)
        # nothing was acknowledged during the outage, and the ack of the first 500 was saved
        # before it: exactly one copy of each
        assert (duplicates, len(replayed)) == (0, 0)
        assert pair.egress.metric("ddc_egress_records_dropped_total") == 0, pair.diagnosis()
        pair.stop()
    finally:
        target.cleanup()

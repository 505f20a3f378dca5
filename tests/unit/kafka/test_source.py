"""KafkaSource against a stand-in consumer: offsets follow the acks, never the poll."""

from __future__ import annotations

import logging
from typing import Any

import gevent
import pytest
from kafka.errors import CommitFailedError, KafkaConnectionError
from kafka.structs import TopicPartition

from ddc.errors import ConfigError
from ddc.ingress.sources import kafka as kafka_source
from ddc.ingress.sources.kafka import KafkaSource, consumer_options, to_record
from ddc.metrics import IngressMetrics
from tests.unit.kafka.fakes import FakeConsumer, batch, kafka_section, message, run

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


def config(**overrides: Any) -> dict[str, Any]:
    fields = {"topics": ["t"], "group_id": "g", "commit_interval": 1.0, "poll_max_records": 100}
    return kafka_section(fields, overrides)


class Harness:
    """A KafkaSource wired to a FakeConsumer and a submit() that keeps the acks."""

    def __init__(self, **overrides: Any) -> None:
        self.submitted: list[tuple[list, Any]] = []
        self.metrics = IngressMetrics()
        self.source = KafkaSource(config(**overrides), self._submit, self.metrics)
        self.consumer = FakeConsumer()
        self.source.consumer = self.consumer

    def _submit(self, records: list, ack: Any) -> None:
        self.submitted.append((records, ack))

    def join(self, *partitions: TopicPartition) -> None:
        self.source._join()
        run(self.consumer.listener.on_partitions_assigned(set(partitions)))

    def poll(self, *batches: dict) -> None:
        for item in batches:
            self.consumer.batches.append(item)
            self.source._step()

    def commit(self) -> dict:
        before = len(self.consumer.commits)
        self.source._commit()
        return self.consumer.commits[-1] if len(self.consumer.commits) > before else {}


# --- options and records --------------------------------------------------------------------


def test_options_pass_through_with_safe_defaults():
    options = consumer_options(config(options={"session_timeout_ms": 6000}))
    assert options["session_timeout_ms"] == 6000
    assert options["enable_auto_commit"] is False
    assert options["auto_offset_reset"] == "earliest"
    assert options["max_poll_records"] == 100
    assert options["group_id"] == "g" and options["bootstrap_servers"] == ["127.0.0.1:9092"]
    assert (
        consumer_options(config(options={"auto_offset_reset": "latest"}))["auto_offset_reset"]
        == "latest"
    )


@pytest.mark.parametrize(
    "key", ["enable_auto_commit", "group_id", "bootstrap_servers", "max_poll_records"]
)
def test_options_owned_by_ddc_are_refused(key):
    with pytest.raises(ConfigError) as error:
        KafkaSource(config(options={key: 1}), lambda *a: None, IngressMetrics())
    assert error.value.key == f"ingress.source.options.{key}"


def test_unknown_option_is_refused_with_its_name():
    with pytest.raises(ConfigError) as error:
        consumer_options(config(options={"sesion_timeout_ms": 1}))
    assert error.value.key == "ingress.source.options.sesion_timeout_ms"
    assert "KafkaConsumer" in error.value.problem


def test_to_record_keeps_metadata_and_a_null_value():
    record = to_record(message("t", 3, 42, value=None))
    assert (record.topic, record.partition, record.offset) == ("t", 3, 42)
    assert record.key == b"k42" and record.value is None
    assert record.timestamp == 1700000000042
    assert record.headers == [("h", b"1")]


# --- commits follow acks ---------------------------------------------------------------------


def test_nothing_is_committed_before_the_ack():
    h = Harness()
    h.join(P0)
    h.poll(batch("t", 0, 0, 10))
    records, ack = h.submitted[0]
    assert [r.offset for r in records] == list(range(10))
    assert h.commit() == {}
    ack()
    assert h.commit() == {P0: 10}
    assert h.commit() == {}  # nothing new acked: no commit request
    assert h.metrics.records._value.get() == 10


def test_commit_stops_at_the_last_acked_submission_per_partition():
    h = Harness()
    h.join(P0, P1)
    h.poll(batch("t", 0, 0, 5), batch("t", 1, 0, 3), batch("t", 0, 5, 5))
    (_, ack_a), (_, ack_b), (_, ack_c) = h.submitted
    ack_a()
    assert h.commit() == {P0: 5}
    ack_b()
    ack_c()
    assert h.commit() == {P0: 10, P1: 3}


def test_commits_happen_every_commit_interval_from_the_loop(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(kafka_source.time, "monotonic", lambda: clock[0])
    h = Harness(commit_interval=1.0)
    h.join(P0)
    h.poll(batch("t", 0, 0, 2))  # first step commits (nothing acked yet) and schedules the next
    h.submitted[0][1]()
    h.poll({})
    assert h.consumer.commits == []
    clock[0] += 1.01
    h.poll({})
    assert h.consumer.commits == [{P0: 2}]
    assert h.metrics.offsets_committed._value.get() == 1


def test_revocation_commits_acked_and_ignores_later_acks():
    h = Harness()
    h.join(P0, P1)
    h.poll(batch("t", 0, 0, 4), batch("t", 1, 0, 4), batch("t", 0, 4, 4))
    h.submitted[0][1]()  # P0 up to 4 acked; P0 4..7 and P1 0..3 still in flight
    run(h.consumer.listener.on_partitions_revoked({P0, P1}))
    assert h.consumer.async_commits == [{P0: 4}]
    assert h.source.health()["assigned_partitions"] == []
    h.submitted[1][1]()
    h.submitted[2][1]()  # late acks of revoked partitions: never committed
    assert h.commit() == {}


def test_reassigned_partition_ignores_acks_of_the_previous_assignment():
    h = Harness()
    h.join(P0)
    h.poll(batch("t", 0, 0, 10))
    stale_ack = h.submitted[0][1]
    run(h.consumer.listener.on_partitions_revoked({P0}))
    run(h.consumer.listener.on_partitions_assigned({P0}))
    h.poll(batch("t", 0, 0, 3))  # redelivered from the committed offset
    stale_ack()
    assert h.commit() == {}
    h.submitted[1][1]()
    assert h.commit() == {P0: 3}


def test_lost_partitions_are_not_committed():
    h = Harness()
    h.join(P0)
    h.poll(batch("t", 0, 0, 3))
    h.submitted[0][1]()
    run(h.consumer.listener.on_partitions_lost({P0}))
    assert h.consumer.async_commits == []
    assert h.commit() == {}


# --- pause, resume, close --------------------------------------------------------------------


def test_pause_commits_what_was_acked_and_leaves_the_group(monkeypatch):
    monkeypatch.setattr(kafka_source, "PAUSE_DRAIN_WAIT", 0.2)
    h = Harness()
    h.join(P0)
    h.poll(batch("t", 0, 0, 5))
    gevent.spawn_later(0.05, h.submitted[0][1])  # the transport acks while pause waits
    h.source.pause()
    h.source._step()
    assert h.consumer.commits == [{P0: 5}]
    assert h.consumer.unsubscribed == 1
    health = h.source.health()
    assert health["kafka_member"] is False and health["assigned_partitions"] == []
    assert health["source_ok"] is True  # paused on purpose is not a fault
    h.source.resume()
    h.source._step()
    assert h.consumer.subscribed == ["t"]


def test_close_commits_and_leaves_without_autocommit():
    h = Harness()
    h.join(P0)
    h.poll(batch("t", 0, 0, 7))
    h.submitted[0][1]()
    h.source.close(2.0)
    assert h.consumer.commits[-1] == {P0: 7}
    assert h.consumer.closed["autocommit"] is False
    assert h.source.consumer is None


def test_close_survives_a_failing_final_commit(caplog):
    h = Harness()
    h.join(P0)
    h.poll(batch("t", 0, 0, 1))
    h.submitted[0][1]()
    h.consumer.commit_error = KafkaConnectionError("down")
    with caplog.at_level(logging.ERROR):
        h.source.close(1.0)
    assert "final offset commit failed" in caplog.text
    assert h.consumer.closed is not None


# --- outages ------------------------------------------------------------------------------


def test_broker_outage_is_retried_and_logged_once_per_state_change(monkeypatch, caplog):
    monkeypatch.setattr(kafka_source, "BACKOFF_MIN", 0.001)
    monkeypatch.setattr(kafka_source, "BACKOFF_MAX", 0.002)
    h = Harness()
    attempts = {"n": 0}

    def new_consumer() -> FakeConsumer:
        attempts["n"] += 1
        if attempts["n"] <= 5:
            raise KafkaConnectionError("connection refused")
        return h.consumer

    h.source.consumer = None
    monkeypatch.setattr(h.source, "_new_consumer", new_consumer)
    monkeypatch.setattr(h.source, "_coordinator_known", lambda: True)
    with caplog.at_level(logging.INFO, logger="ddc.ingress.sources.kafka"):
        runner = gevent.spawn(h.source.run)
        gevent.sleep(0.1)
        assert h.source.health()["kafka_connected"] is True
        h.consumer.poll_error = KafkaConnectionError("gone")
        gevent.sleep(0.05)
        assert h.source.health()["source_ok"] is False
        assert "gone" in h.source.health()["kafka_error"]
        h.consumer.poll_error = None
        gevent.sleep(0.05)
        h.source.stop()
        runner.join(1)
    assert runner.dead and runner.successful()
    assert attempts["n"] == 6
    assert (
        caplog.text.count("broker unreachable") == 2
    )  # at start, then once more when it went away
    assert caplog.text.count("broker reachable, consuming") == 2
    assert h.metrics.source_errors.labels(kind="KafkaConnectionError")._value.get() >= 6


def test_commit_refused_by_a_rebalance_is_not_an_outage(caplog):
    h = Harness()
    h.join(P0)
    h.poll(batch("t", 0, 0, 2))
    h.submitted[0][1]()
    h.source.broker.set(True)
    h.consumer.commit_error = CommitFailedError("rebalancing")
    h.source._next_commit = 0.0
    with caplog.at_level(logging.WARNING):
        h.poll({})
    assert "refused during a rebalance" in caplog.text
    assert h.source.health()["kafka_connected"] is True
    h.consumer.commit_error = None
    assert h.commit() == {P0: 2}  # retried later, nothing lost


def test_each_partition_is_submitted_in_slices_with_its_own_ack():
    h = Harness()
    h.join(P0, P1)
    h.poll({**batch("t", 0, 0, 1200), **batch("t", 1, 0, 10)})
    sizes = [(records[0].partition, len(records)) for records, _ in h.submitted]
    assert sizes == [(0, 500), (0, 500), (0, 200), (1, 10)]
    h.submitted[0][1]()
    h.submitted[1][1]()
    assert h.commit() == {P0: 1000}  # the first two slices crossed, the third not yet
    h.submitted[3][1]()
    assert h.commit() == {P1: 10}


def test_a_tombstone_keeps_its_null_value_across_the_envelope():
    from types import SimpleNamespace

    from ddc.ingress.sources.kafka import to_record
    from ddc.protocol.envelope import decode_records, encode_records

    message = SimpleNamespace(
        value=None, key=b"k", topic="t", partition=1, offset=7, timestamp=5, headers=[("h", b"v")]
    )
    record = to_record(message)
    assert record.value is None
    assert decode_records(encode_records([record])) == [record]

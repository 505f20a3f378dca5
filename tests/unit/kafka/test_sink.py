"""KafkaSink against a stand-in producer: settled on acknowledgement, retried in order, every
drop counted."""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
import pytest
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from ddc.egress.sinks import kafka as kafka_sink
from ddc.egress.sinks.kafka import KafkaSink, outgoing_headers, producer_options
from ddc.errors import ConfigError
from ddc.metrics import EgressMetrics
from ddc.protocol.record import Record
from tests.unit.kafka.fakes import FakeProducer, kafka_section


@pytest.fixture(autouse=True)
def fake_producer(monkeypatch):
    FakeProducer.instances = []
    FakeProducer.fail_to_connect = 0
    monkeypatch.setattr(kafka_sink, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(kafka_sink, "BACKOFF_MIN", 0.01)
    monkeypatch.setattr(kafka_sink, "BACKOFF_MAX", 0.02)


def config(**overrides: Any) -> dict[str, Any]:
    return kafka_section({"topic": None, "topic_map": {}, "buffer_max_records": 100}, overrides)


def record(offset: int, topic: str | None = "src", partition: int = 1, **kw: Any) -> Record:
    return Record(b"v%d" % offset, b"k%d" % offset, topic, partition, offset, 1700000000000, **kw)


def started(**overrides: Any) -> tuple[KafkaSink, EgressMetrics]:
    metrics = EgressMetrics()
    sink = KafkaSink(config(**overrides), metrics)
    sink.start()
    gevent.sleep(0.01)
    return sink, metrics


class Done:
    """A send()'s done callback that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def dropped(metrics: EgressMetrics, reason: str) -> float:
    return metrics.records_dropped.labels(reason=reason)._value.get()


def test_options_default_to_acks_all_and_refuse_unknown_keys():
    options = producer_options(config(options={"linger_ms": 50}))
    assert options["acks"] == "all" and options["linger_ms"] == 50
    assert producer_options(config(options={"acks": 1}))["acks"] == 1
    with pytest.raises(ConfigError) as error:
        producer_options(config(options={"ackz": 1}))
    assert error.value.key == "egress.sink.options.ackz"
    with pytest.raises(ConfigError):
        producer_options(config(options={"bootstrap_servers": "x:1"}))


def test_src_header_added_and_an_existing_one_kept():
    assert outgoing_headers(record(7, headers=[("a", b"1")])) == [
        ("a", b"1"),
        ("ddc-src", b"src/1/7"),
    ]
    kept = [("ddc-src", b"orig/0/1")]
    assert outgoing_headers(record(7, headers=list(kept))) == kept
    assert outgoing_headers(Record(b"raw")) == []


def test_records_keep_key_value_headers_timestamp_and_partition_order():
    sink, _ = started(topic_map={"src": "dst"})
    sink.send([record(1, headers=[("h", b"x")]), record(2, topic="other", partition=6)], Done())
    gevent.sleep(0.01)
    (first, _), (second, _) = FakeProducer.instances[0].sent
    assert first == {
        "topic": "dst",
        "value": b"v1",
        "key": b"k1",
        "partition": 1,
        "timestamp_ms": 1700000000000,
        "headers": [("h", b"x"), ("ddc-src", b"src/1/1")],
    }
    assert second["topic"] == "other"  # unmapped topics keep their name
    assert second["partition"] == 6 % 4  # the source partition modulo the target's count


def test_one_topic_for_all_and_unknown_partition_left_to_the_partitioner():
    sink, _ = started(topic="all")
    sink.send([Record(b"raw value")], Done())
    gevent.sleep(0.01)
    sent, _ = FakeProducer.instances[0].sent[0]
    assert sent["topic"] == "all" and sent["partition"] is None and sent["timestamp_ms"] is None


def test_record_without_topic_is_dropped_counted_and_logged(caplog):
    sink, metrics = started()
    with caplog.at_level(logging.ERROR):
        sink.send([Record(b"no topic"), record(1)], Done())
    gevent.sleep(0.01)
    assert dropped(metrics, "no_topic") == 1
    assert "no_topic" in caplog.text
    assert len(FakeProducer.instances[0].sent) == 1


def test_a_send_is_settled_once_every_record_was_acknowledged():
    sink, metrics = started(buffer_max_records=10)
    assert sink.window_records == 10  # the deliverer keeps at most this many in flight
    first, second = Done(), Done()
    sink.send([record(i) for i in range(3)], first)
    sink.send([record(i) for i in range(3, 5)], second)
    gevent.sleep(0.01)
    producer = FakeProducer.instances[0]
    assert sink.health()["sink_buffered_records"] == 5  # in flight, not yet acknowledged
    producer.sent[3][1].success(None)  # out of order: the second send is not complete yet
    producer.sent[0][1].success(None)
    assert (first.calls, second.calls) == (0, 0)
    producer.ack_all()
    assert (first.calls, second.calls) == (1, 1)
    assert sink.health()["sink_buffered_records"] == 0
    assert dropped(metrics, "buffer_full") == 0


def test_failed_deliveries_are_resent_first_and_in_order_by_a_new_producer():
    sink, metrics = started()
    sink.send([record(i) for i in range(3)], Done())
    gevent.sleep(0.01)
    first = FakeProducer.instances[0]
    first.fail_all(KafkaTimeoutError("expired"))
    assert sink.health()["sink_ok"] is False
    assert metrics.sink_errors._value.get() == 3
    sink.send([record(3)], Done())
    gevent.sleep(0.1)
    assert first.closed  # a failed producer may be fenced or fatally broken: replaced
    second = FakeProducer.instances[1]
    offsets = [sent["headers"][-1][1] for sent, _ in second.sent]
    assert offsets == [b"src/1/0", b"src/1/1", b"src/1/2", b"src/1/3"]
    first.ack_all()  # late callbacks of the replaced producer change nothing
    assert sink.health()["sink_buffered_records"] == 4
    second.ack_all()
    assert sink.health() == {
        "sink_ok": True,
        "kafka_connected": True,
        "sink_buffered_records": 0,
        "sink_error": None,
    }


def test_broker_down_at_start_buffers_until_it_comes(caplog):
    FakeProducer.fail_to_connect = 3
    with caplog.at_level(logging.INFO, logger="ddc.egress.sinks.kafka"):
        sink, metrics = started()
        sink.send([record(1)], Done())
        assert sink.health()["sink_ok"] is False
        gevent.sleep(0.2)
    assert len(FakeProducer.instances) == 1
    assert len(FakeProducer.instances[0].sent) == 1
    assert caplog.text.count("cannot deliver") == 1
    assert dropped(metrics, "buffer_full") == 0


def test_stop_flushes_and_leaves_what_never_got_acknowledged_unsettled(caplog):
    sink, metrics = started()
    done = Done()
    sink.send([record(i) for i in range(4)], done)
    gevent.sleep(0.01)
    producer = FakeProducer.instances[0]
    gevent.spawn_later(0.05, producer.ack_all)
    sink.stop(1.0)
    assert producer.flushed and producer.closed
    assert done.calls == 1

    sink, metrics = started()
    done = Done()
    sink.send([record(i) for i in range(4)], done)
    with caplog.at_level(logging.INFO):
        sink.stop(0.1)
    assert done.calls == 0  # the spool keeps them: not dropped, delivered after a restart
    assert dropped(metrics, "shutdown") == 0
    assert "not acknowledged" in caplog.text


def test_the_tail_of_a_burst_of_drops_is_logged_too(monkeypatch, caplog):
    monkeypatch.setattr(kafka_sink, "DROP_LOG_INTERVAL", 0.05)
    sink, metrics = started()
    done = Done()
    with caplog.at_level(logging.ERROR):
        sink.send([record(i, topic=None) for i in range(5)], done)
        gevent.sleep(0.6)  # the pump logs what was dropped after the first line
    assert dropped(metrics, "no_topic") == 5
    assert done.calls == 1  # dropped records are settled: the spool moves on
    why = "record without a source topic, and no [egress.sink] topic"
    lines = [r.getMessage() for r in caplog.records if why in r.getMessage()]
    assert lines == [
        f"Kafka sink dropped a record (no_topic): {why}",
        f"Kafka sink dropped records (no_topic): {why} (4 such events since the last line)",
    ]


def test_null_header_values_go_out_empty():
    assert outgoing_headers(record(3, headers=[("n", None)])) == [
        ("n", b""),
        ("ddc-src", b"src/1/3"),
    ]


def test_a_record_the_producer_or_broker_refuses_is_dropped_not_retried(caplog):
    sink, metrics = started()
    too_large = Record(b"too large", None, "src", 1, 5)
    done = Done()
    with caplog.at_level(logging.ERROR):
        sink.send([record(1), too_large, record(2), record(3)], done)
        gevent.sleep(0.01)
        producer = FakeProducer.instances[0]
        producer.sent[1][1].failure(MessageSizeTooLargeError("broker says too large"))
        gevent.sleep(0.05)
    assert dropped(metrics, "rejected") == 2
    assert "rejected" in caplog.text
    assert len(FakeProducer.instances) == 1  # not an outage: the producer is kept
    assert done.calls == 0
    producer.ack_all()
    assert done.calls == 1
    assert sink.health()["sink_buffered_records"] == 0
    assert [sent["value"] for sent, _ in producer.sent] == [b"v1", b"v2", b"v3"]


def test_a_failed_pump_is_restarted_by_the_owner_and_unhealthy_meanwhile(monkeypatch, caplog):
    sink, _ = started()
    failures = [RuntimeError("pump bug")]

    def check_stall() -> None:
        if failures:
            raise failures.pop()

    monkeypatch.setattr(sink, "_check_stall", check_stall)
    with caplog.at_level(logging.ERROR):
        sink.send([record(1)], Done())
        gevent.sleep(0.05)
        health = sink.health()
        assert health["sink_ok"] is False and "pump bug" in health["sink_error"]
        assert sink.owner.restarts == {"kafka-sink": 1}
        assert "kafka-sink failed" in caplog.text
        gevent.sleep(1.2)  # restart_delay
    producer = FakeProducer.instances[0]
    assert [sent["value"] for sent, _ in producer.sent] == [b"v1"]  # the restarted pump sent it
    producer.ack_all()
    gevent.sleep(0.05)
    assert sink.health()["sink_buffered_records"] == 0
    # healthy again once the owner no longer counts the pump as failing
    assert sink.health()["sink_ok"] is (sink.owner.failing("kafka-sink") is None)
    sink.stop(1.0)


def test_a_hub_that_never_goes_idle_does_not_hold_the_pump():
    # the pump hands a big backlog over in steps of 1000 records with a hub turn between; it
    # waited for an idle hub once, and a hub kept busy (a leaked kafka-python watcher firing
    # every turn, or any steady IO) held it there for good after the first 1000
    sink, _ = started(buffer_max_records=5000)
    busy = gevent.spawn(lambda: [gevent.sleep(0) for _ in iter(int, 1)])
    try:
        sink.send([record(i) for i in range(2500)], Done())
        sent = FakeProducer.instances[0].sent
        deadline = time.monotonic() + 5.0  # the old pump stayed at 1000 for good
        while len(sent) < 2500 and time.monotonic() < deadline:
            gevent.sleep(0.05)
        assert len(sent) == 2500
    finally:
        busy.kill()
        sink.stop(0.1)


def test_health_says_stalled_even_while_the_pump_cannot_look(monkeypatch):
    monkeypatch.setattr(kafka_sink, "STALL_AFTER", 0.05)
    sink, _ = started()
    sink.send([record(1)], Done())
    gevent.sleep(0.01)
    time.sleep(0.1)  # nothing acknowledged, and the pump has not run since
    assert sink.health() == {
        "sink_ok": False,
        "kafka_connected": True,
        "sink_buffered_records": 1,
        "sink_error": kafka_sink.STALLED,
    }
    FakeProducer.instances[0].ack_all()
    assert sink.health()["sink_ok"] is True
    sink.stop(0.1)

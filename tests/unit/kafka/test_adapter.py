"""The kafka-python version check: private names inside the tested range, public API outside."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import kafka
import pytest

from ddc.egress.sinks import kafka as kafka_sink
from ddc.kafka import adapter, gevent_adapter
from ddc.metrics import EgressMetrics
from tests.unit.kafka.fakes import FakeProducer


@pytest.fixture
def version(monkeypatch):
    """Sets the installed kafka-python version the next check sees."""

    def install(text: str) -> None:
        monkeypatch.setattr(kafka, "__version__", text)
        monkeypatch.setattr(adapter, "_usable", None)

    yield install


class RecordingFuture:
    def __init__(self) -> None:
        self.registered: list[str] = []

    def _add_cb_eb(self, callback: Any, errback: Any) -> None:
        self.registered.append("_add_cb_eb")

    def add_both(self, callback: Any) -> None:
        self.registered.append("add_both")


class BrokenCloseProducer:
    def __init__(self) -> None:
        self._sender = SimpleNamespace(force_closed=False)
        self._sender.force_close = lambda: setattr(self._sender, "force_closed", True)

    def close(self, timeout: float) -> None:
        raise kafka.errors.KafkaTimeoutError("flush timed out")


class Consumer:
    def __init__(self, coordinator_unknown: bool) -> None:
        self._coordinator = SimpleNamespace(coordinator_unknown=lambda: coordinator_unknown)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    "text, parsed", [("3.0.12", (3, 0)), ("3.1.0.dev0", (3, 1)), ("10.2", (10, 2)), ("x", None)]
)
def test_version_tuple(text, parsed):
    assert adapter.version_tuple(text) == parsed


def test_inside_the_tested_range_the_private_names_are_used(version, caplog):
    version("3.0.12")
    with caplog.at_level(logging.WARNING, logger="ddc.kafka"):
        assert adapter.check_version() is True
    assert warnings_of(caplog) == []
    future = RecordingFuture()
    adapter.on_completion(future, print)
    assert future.registered == ["_add_cb_eb"]
    producer = BrokenCloseProducer()
    adapter.close_producer(producer, 0.1)
    assert producer._sender.force_closed
    assert adapter.coordinator_known(Consumer(coordinator_unknown=True)) is False
    assert adapter.coordinator_known(Consumer(coordinator_unknown=False)) is True


@pytest.mark.parametrize("installed", ["3.1.0", "4.0.0", "2.0.2", "unknown"])
def test_outside_it_the_public_api_only_after_one_warning(version, caplog, installed):
    version(installed)
    with caplog.at_level(logging.WARNING, logger="ddc.kafka"):
        assert adapter.check_version() is False
        assert adapter.check_version() is False
        future = RecordingFuture()
        adapter.on_completion(future, print)
        producer = BrokenCloseProducer()
        adapter.close_producer(producer, 0.1)
    assert future.registered == ["add_both"]
    assert not producer._sender.force_closed
    assert adapter.coordinator_known(Consumer(coordinator_unknown=True)) is True  # trusts poll()
    (warning, *_) = warnings_of(caplog)
    assert f"kafka-python {installed} is outside the tested range >=3.0,<3.1" in warning
    assert sum("outside the tested range" in line for line in warnings_of(caplog)) == 1


def test_outside_it_the_gevent_adapter_changes_nothing(version, monkeypatch):
    version("4.0.0")
    monkeypatch.setattr(gevent_adapter.monkey, "is_module_patched", lambda name: True)
    import kafka.future
    import kafka.producer.record_accumulator

    before = (kafka.future.threading, kafka.producer.record_accumulator.threading)
    gevent_adapter.native_producer_locks()
    assert (kafka.future.threading, kafka.producer.record_accumulator.threading) == before
    wakeup = print
    producer = SimpleNamespace(_sender=SimpleNamespace(wakeup=wakeup))
    gevent_adapter.coalesce_wakeups(producer)
    assert producer._sender.wakeup is wakeup


def test_the_check_runs_when_a_kafka_sink_is_created(version, monkeypatch, caplog):
    monkeypatch.setattr(kafka_sink, "KafkaProducer", FakeProducer)
    version("9.9.9")
    config = {
        "type": "kafka",
        "bootstrap_servers": ["127.0.0.1:9092"],
        "topic": "t",
        "topic_map": {},
        "buffer_max_records": 10,
        "options": {},
    }
    with caplog.at_level(logging.WARNING, logger="ddc.kafka"):
        kafka_sink.KafkaSink(config, EgressMetrics())
        kafka_sink.KafkaSink(config, EgressMetrics())
    assert sum("kafka-python 9.9.9" in line for line in warnings_of(caplog)) == 1

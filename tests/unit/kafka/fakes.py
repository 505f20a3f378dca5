"""Stand-ins for kafka-python's consumer and producer (unit tests only)."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

import gevent
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError
from kafka.future import Future
from kafka.structs import TopicPartition

Message = namedtuple("Message", "topic partition offset timestamp key value headers")


def kafka_section(fields: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A validated Kafka source or sink section: type, bootstrap_servers and an empty options
    table, then `fields`, then `overrides`."""
    base = {"type": "kafka", "bootstrap_servers": ["127.0.0.1:9092"], "options": {}}
    return {**base, **fields, **overrides}


def message(topic: str, partition: int, offset: int, value: bytes = b"v") -> Message:
    return Message(
        topic, partition, offset, 1700000000000 + offset, b"k%d" % offset, value, [("h", b"1")]
    )


def batch(
    topic: str, partition: int, first: int, count: int
) -> dict[TopicPartition, list[Message]]:
    return {
        TopicPartition(topic, partition): [
            message(topic, partition, o) for o in range(first, first + count)
        ]
    }


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


class FakeConsumer:
    def __init__(self, **options: Any) -> None:
        self.options = options
        self.batches: list[dict] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.async_commits: list[dict[TopicPartition, int]] = []
        self.listener: Any = None
        self.subscribed: list[str] | None = None
        self.unsubscribed = 0
        self.closed: dict[str, Any] | None = None
        self.poll_error: BaseException | None = None
        self.commit_error: BaseException | None = None
        self.paused: set[TopicPartition] = set()

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.subscribed = list(topics)
        self.listener = listener

    def unsubscribe(self) -> None:
        self.unsubscribed += 1
        self.subscribed = None

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        gevent.sleep(0.001)  # a real poll waits on its sockets: let other greenlets run
        if self.poll_error is not None:
            raise self.poll_error
        return self.batches.pop(0) if self.batches else {}

    def commit(self, offsets: dict, timeout_ms: int | None = None) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def commit_async(self, offsets: dict) -> Future:
        self.async_commits.append({tp: meta.offset for tp, meta in offsets.items()})
        return Future().success(None)

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None:
        self.closed = {"autocommit": autocommit, "timeout_ms": timeout_ms}

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)


class FakeProducer:
    """Records sends; each send's future stays pending until the test resolves it."""

    DEFAULT_CONFIG = KafkaProducer.DEFAULT_CONFIG
    instances: list[FakeProducer] = []
    fail_to_connect = 0

    def __init__(self, **options: Any) -> None:
        if FakeProducer.fail_to_connect:
            FakeProducer.fail_to_connect -= 1
            raise ConnectionError("no brokers")
        self.options = options
        self.sent: list[tuple[dict[str, Any], Future]] = []
        self.partition_count = 4
        self.closed = False
        self.flushed = False
        FakeProducer.instances.append(self)

    def send(self, topic: str, **kwargs: Any) -> Future:
        if kwargs["value"] == b"too large":
            raise MessageSizeTooLargeError("over max_request_size")
        future = Future()
        self.sent.append(({"topic": topic, **kwargs}, future))
        return future

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partition_count))

    def ack_all(self) -> None:
        for _, future in self.sent:
            if not future.is_done:
                future.success("metadata")

    def fail_all(self, exc: BaseException) -> None:
        for _, future in self.sent:
            if not future.is_done:
                future.failure(exc)

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True

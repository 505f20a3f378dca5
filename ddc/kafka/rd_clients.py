"""librdkafka (confluent-kafka) clients driven from one gevent hub.

librdkafka does its network I/O in its own C threads; what the application calls only moves
messages and events between queues. Under gevent the rule is: no call may hold the hub.
  * consume(timeout=0), poll(0), produce(), pause/resume/seek/assign/unsubscribe return at once:
    they are called directly, from the one greenlet that owns the client, and that greenlet
    sleeps cooperatively when there is nothing to do. Callbacks (rebalance, delivery reports,
    errors, logs) therefore run in that greenlet too, never in another thread.
  * commit (synchronous), close, list_topics wait for the broker: they run in gevent's
    threadpool (off_hub), the calling greenlet waits for the result, the hub keeps running.
Each wrapper exposes what the Kafka source and sink use, with partitions named by `Partition`
(topic, partition) tuples so no confluent-kafka type leaves this package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import gevent
from gevent import monkey

from ddc.kafka.rd_options import module
from ddc.protocol.record import Record

log = logging.getLogger("ddc.kafka.librdkafka")

ERRORS = ("_ALL_BROKERS_DOWN", "_TRANSPORT", "_RESOLVE", "_AUTHENTICATION", "_SSL")


class Partition(NamedTuple):
    topic: str
    partition: int


def off_hub(function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
    """function(*args) in gevent's threadpool; this greenlet waits (TimeoutError after
    `timeout` seconds: the call then finishes in its thread, its result unused), the hub does
    not."""
    try:
        return gevent.get_hub().threadpool.spawn(function, *args).get(timeout=timeout)
    except gevent.Timeout:
        raise TimeoutError(f"no answer from the broker within {timeout:g}s") from None


def to_record(message: Any) -> Record:
    """A confluent-kafka Message as a Record; a null value (a tombstone) stays None."""
    timestamp = message.timestamp()[1]
    return Record(
        message.value(),
        message.key(),
        message.topic(),
        message.partition(),
        message.offset(),
        timestamp if timestamp >= 0 else -1,
        message.headers() or [],
    )


class BrokerError(Exception):
    """A librdkafka error: its name ("_TRANSPORT", "MSG_SIZE_TOO_LARGE", ...) and text."""

    def __init__(self, error: Any) -> None:
        self.name = error.name()
        self.retriable = bool(error.retriable())
        super().__init__(f"{self.name}: {error.str()}")


def is_outage(error: Any) -> bool:
    """Whether an error_cb error means the broker cannot be reached (not one record's fault)."""
    return bool(error.name() in ERRORS or error.fatal())


_thread_id = monkey.get_original("_thread", "get_ident")


def owned(callback: Callable[..., None]) -> Callable[..., None]:
    """callback, called only in the OS thread that made it (the hub's): librdkafka may call
    back from a threadpool worker during close(), where gevent objects must not be touched."""
    owner = _thread_id()

    def guarded(*args: Any) -> None:
        if _thread_id() == owner:
            callback(*args)

    return guarded


def _partitions(kafka_partitions: Iterable[Any]) -> list[Partition]:
    return [Partition(tp.topic, tp.partition) for tp in kafka_partitions]


class RdConsumer:
    """A librdkafka group consumer; every method is called from the owning greenlet."""

    def __init__(
        self,
        config: Mapping[str, Any],
        on_error: Callable[[Any], None],
        on_commit: Callable[[list[tuple[Partition, int]]], None],
    ) -> None:
        """on_commit([(partition, offset)]): offsets commit_soon() got committed (served by
        consume/serve, in this greenlet; failures are logged and committed again later)."""
        self.kafka = module()

        def committed(error: Any, tps: list[Any]) -> None:
            if error is not None:
                log.warning("offset commit failed (committed again later): %s", error.str())
            done = [(Partition(tp.topic, tp.partition), tp.offset) for tp in tps if not tp.error]
            if done:
                on_commit(done)

        self.client = self.kafka.Consumer(
            {**config, "logger": log, "error_cb": owned(on_error), "on_commit": owned(committed)}
        )

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[[list[Partition]], None],
        on_revoke: Callable[[list[Partition]], None],
        on_lost: Callable[[list[Partition]], None],
    ) -> None:
        self.client.subscribe(
            topics,
            on_assign=owned(lambda _c, tps: on_assign(_partitions(tps))),
            on_revoke=owned(lambda _c, tps: on_revoke(_partitions(tps))),
            on_lost=owned(lambda _c, tps: on_lost(_partitions(tps))),
        )

    def consume(self, count: int) -> list[Any]:
        """Up to `count` messages (and per-partition errors) already fetched; never waits."""
        messages: list[Any] = self.client.consume(num_messages=count, timeout=0)
        return messages

    def serve(self) -> None:
        """Serve callbacks (rebalance, errors, logs) while not consuming (paused)."""
        self.client.poll(0)

    def _offsets(self, offsets: Mapping[Partition, Any]) -> list[Any]:
        return [
            self.kafka.TopicPartition(p.topic, p.partition, getattr(o, "offset", o))
            for p, o in offsets.items()
        ]

    def commit_soon(self, offsets: Mapping[Partition, Any]) -> None:
        """Ask for a commit and return at once: on_commit() tells when it was done."""
        try:
            self.client.commit(offsets=self._offsets(offsets), asynchronous=True)
        except self.kafka.KafkaException as exc:
            raise BrokerError(exc.args[0]) from None

    def commit(self, offsets: Mapping[Partition, Any], timeout_ms: int = 5000) -> None:
        """Commit offsets (each an int or has .offset: the next to read), waiting for the broker
        off the hub, at most timeout_ms (TimeoutError)."""
        kafka = self.kafka
        tps = self._offsets(offsets)
        try:
            result = off_hub(
                lambda: self.client.commit(offsets=tps, asynchronous=False),
                timeout=timeout_ms / 1000,
            )
        except kafka.KafkaException as exc:
            raise BrokerError(exc.args[0]) from None
        for tp in result or ():
            if tp.error is not None:
                raise BrokerError(tp.error)

    def pause(self, *partitions: Partition) -> None:
        self.client.pause([self.kafka.TopicPartition(*p) for p in partitions])

    def seek(self, partition: Partition, offset: int) -> None:
        """Read `partition` (assigned) from `offset` next."""
        self.client.seek(self.kafka.TopicPartition(partition.topic, partition.partition, offset))

    def resume(self, *partitions: Partition, offset: int | None = None) -> None:
        """Resume fetching; from `offset` when given (a held-back partition is read again)."""
        tps = [self.kafka.TopicPartition(*p) for p in partitions]
        if offset is not None:
            for tp in tps:
                self.client.seek(self.kafka.TopicPartition(tp.topic, tp.partition, offset))
        self.client.resume(tps)

    def unsubscribe(self) -> None:
        self.client.unsubscribe()

    def reachable(self, timeout: float) -> None:
        """Raise unless the cluster answers a metadata request within `timeout` (off the hub)."""
        off_hub(lambda: self.client.list_topics(timeout=timeout), timeout=timeout + 1)

    def close(self, autocommit: bool = False, timeout_ms: int = 10_000) -> None:
        """Leave the group and stop librdkafka's threads (never commits: the caller did).

        The group is left first, serving the revocation here (rebalance callbacks must run in
        the owning greenlet), then the client is closed off the hub."""
        deadline = time.monotonic() + timeout_ms / 1000
        try:
            self.client.unsubscribe()
            while self.client.assignment() and time.monotonic() < deadline:
                self.client.poll(0)
                gevent.sleep(0.01)
        finally:
            off_hub(self.client.close, timeout=max(1.0, deadline - time.monotonic()))


def produce_arguments(
    topic: str,
    record: Record,
    partition: int | None,
    report: Callable[[Any, Any], None],
    timestamp_ms: int,
    headers: list[tuple[str, bytes]],
) -> tuple[Any, ...]:
    """produce()'s arguments by position, (topic, value, key, partition, callback, on_delivery,
    timestamp, headers): keywords cost ~1 µs a record. The report goes in the `callback` slot
    (a None there would override on_delivery: no report at all); partition None is -1,
    librdkafka's partitioner; timestamp 0: librdkafka stamps it."""
    where = -1 if partition is None else partition
    return (topic, record.value, record.key, where, report, None, timestamp_ms, headers)


class RdProducer:
    """A librdkafka producer; delivery reports are served by poll(), in the owning greenlet."""

    def __init__(self, config: Mapping[str, Any], on_error: Callable[[Any], None]) -> None:
        self.kafka = module()
        self.client = self.kafka.Producer({**config, "logger": log, "error_cb": owned(on_error)})
        self.produce = self.client.produce  # (topic, value, key, partition, on_delivery, ...)
        self.poll = self.client.poll  # poll(0): serve delivery reports now

    def partitions_for(self, topic: str, timeout: float = 5.0) -> list[int]:
        """The topic's partitions from the cluster's metadata (off the hub); [] if it has none."""
        metadata = off_hub(lambda: self.client.list_topics(topic, timeout=timeout))
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return []
        return sorted(found.partitions)

    def reachable(self, timeout: float) -> None:
        """Raise unless the cluster answers a metadata request within `timeout` (off the hub)."""
        off_hub(lambda: self.client.list_topics(timeout=timeout), timeout=timeout + 1)

    def flush(self, timeout: float, step: float = 0.005) -> int:
        """Serve delivery reports until nothing is in flight or `timeout`; what is left."""
        deadline = time.monotonic() + timeout
        while len(self.client) and time.monotonic() < deadline:
            self.client.poll(0)
            gevent.sleep(step)
        self.client.poll(0)
        return len(self.client)

    def abandon(self) -> None:
        """Drop what is queued or in flight (their reports come as failures, then it is gone)."""
        try:
            self.client.purge(in_queue=True, in_flight=True)
            self.client.poll(0)
        except Exception as exc:
            log.debug("purging a replaced producer: %r", exc)

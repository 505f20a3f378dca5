"""Kafka sink: produces each record to its target topic, buffering through broker outages.

send() only appends to the pump's queue (the deliverer's window bounds it: at most
buffer_max_records records and 8 MiB in flight); one pump greenlet owns the KafkaProducer, sends in
arrival order and puts records whose delivery failed back in front of the queue, so a record is
settled (its send's done() counted down) only when the broker acknowledged it, or when it is
dropped for a reason about the record and counted. Unsettled records stay in the spool: after a
crash they are produced again with the same ddc-src header (at-least-once).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import time
from collections import deque
from typing import Any

import gevent
from gevent.event import Event

from ddc.cooperate import full_turn
from ddc.egress.sinks.base import Countdown, Done, Sink
from ddc.kafka import adapter
from ddc.kafka.clients import KafkaProducer
from ddc.kafka.construct import create
from ddc.kafka.errors import RECORD_REJECTED
from ddc.kafka.gevent_adapter import coalesce_wakeups, native_producer_locks
from ddc.kafka.options import ClientOptions
from ddc.kafka.reachability import Reachability
from ddc.kafka.records import SRC_HEADER, source_id
from ddc.logs import ThrottledLog
from ddc.metrics import EgressMetrics
from ddc.protocol.record import Record

log = logging.getLogger(__name__)

PUMP = "kafka-sink"  # the supervised pump greenlet's name
BACKOFF_MIN = 0.2
BACKOFF_MAX = 5.0
PARTITIONS_TTL = 30.0  # seconds a topic's partition count is cached
DROP_LOG_INTERVAL = 5.0
# seconds records may wait for the broker's acknowledgement before health degrades
STALL_AFTER = 5.0
STALLED = f"no acknowledgement from the broker for {STALL_AFTER:g}s"
OPTIONS = ClientOptions(
    KafkaProducer,
    "egress.sink.options",
    reserved={"compression_type": "compression_type (egress.sink.compression_type)"},
    defaults={"acks": "all", "linger_ms": 5, "max_block_ms": 10000},
)


def producer_options(config: dict[str, Any]) -> dict[str, Any]:
    """KafkaProducer keyword arguments for a validated sink config; ConfigError if unusable."""
    codec = compression(config.get("compression_type", "none"))
    return OPTIONS.for_section(config, compression_type=codec)


def compression(name: str) -> str | None:
    """KafkaProducer's compression_type for the sink's: "none" is kafka-python's None."""
    return None if name == "none" else name


def outgoing_headers(record: Record) -> list[tuple[str, bytes]]:
    """The record's headers plus ddc-src; a null header value goes out empty (kafka-python
    accepts bytes only)."""
    source = source_id(record)
    origin = None if source is None else source.encode()
    if not record.headers:
        return [] if origin is None else [(SRC_HEADER, origin)]
    headers = [(name, b"" if value is None else value) for name, value in record.headers]
    if origin is not None and not any(name == SRC_HEADER for name, _ in headers):
        headers.append((SRC_HEADER, origin))
    return headers


class KafkaSink(Sink):
    def __init__(self, config: dict[str, Any], metrics: EgressMetrics) -> None:
        super().__init__(config, metrics)
        self.options = self._client_options(config)
        self.servers = ",".join(config["bootstrap_servers"])
        self.topic: str | None = config.get("topic")
        self.topic_map: dict[str, str] = dict(config.get("topic_map") or {})
        self.limit = self.window_records = int(config["buffer_max_records"])
        self.producer: Any = None
        self._pump_greenlet: gevent.Greenlet | None = None  # the running one (restarts replace it)
        self._pending: deque[tuple[int, Record]] = deque()
        self._retry: list[tuple[int, Record]] = []  # heap by arrival number: resent first, in order
        self._inflight: dict[int, Record] = {}  # handed to the producer, not yet acknowledged
        self._settle: dict[int, Countdown] = {}  # by arrival number: the send it belongs to
        self._generation = 0  # of the producer; callbacks of a replaced one are ignored
        self._replace = False
        self._numbers = itertools.count()
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        self._closing = False
        self.broker = Reachability(self._reached, self._lost)
        self._retry_at = 0.0
        self._progress_at = 0.0  # last acknowledgement, or when records went in flight
        self._backoff = BACKOFF_MIN
        self._partitions: dict[str, tuple[float, int]] = {}
        self._drop_log = ThrottledLog(log, DROP_LOG_INTERVAL)
        self._unlogged_drops: dict[str, str] = {}  # reason → why, for drops not yet in a line

    # --- interface --------------------------------------------------------------------------

    def start(self) -> None:
        native_producer_locks()
        self.owner.supervise(self._pump, name=PUMP, restart_delay=1.0)
        log.info(
            "Kafka sink: brokers %s, topic %s%s",
            self.servers,
            self.topic or "(source topic)",
            f", topic_map {self.topic_map}" if self.topic_map else "",
        )

    def send(self, records: list[Record], done: Done) -> None:
        countdown = Countdown(len(records), done)
        for record in records:
            if record.topic is None and self.topic is None:
                self._drop("no_topic", "record without a source topic, and no [egress.sink] topic")
                countdown.one()
                continue
            number = next(self._numbers)
            self._settle[number] = countdown
            self._pending.append((number, record))
        if self._pending:
            self._idle.clear()
            self._wake.set()

    def stop(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._wake.set()
        self._idle.wait(max(0.0, deadline - time.monotonic()))
        self._closing = True
        self._wake.set()
        pump = self._pump_greenlet
        if pump is not None:
            pump.join(0.5)  # it leaves its loop at the next wakeup, unless blocked in send()
            pump.kill(block=True, timeout=1.0)
        if self.producer is not None:
            try:
                self.producer.flush(timeout=max(0.1, deadline - time.monotonic()))
            except Exception as exc:
                log.error("Kafka sink flush at stop failed: %r", exc)
            self._close(self.producer, 0.5)
            self.producer = None
        left = self.buffered
        if left:
            log.info("Kafka sink stopped with %d records not acknowledged by the broker", left)
            self._pending.clear()
            self._retry.clear()
            self._inflight.clear()
            self._settle.clear()

    def health(self) -> dict[str, Any]:
        pump_failure = self.owner.failing(PUMP)
        # the pump notices a stall on its next turn; said here too, so /healthz cannot say "ok"
        # while nothing is acknowledged, whatever holds the pump
        stalled = STALLED if self.broker.up and self._stalled() else None
        down = None if self.broker.up else self.broker.error
        return {
            "sink_ok": self.broker.up is not False and pump_failure is None and stalled is None,
            "kafka_connected": bool(self.broker.up),
            "sink_buffered_records": self.buffered,
            "sink_error": pump_failure or stalled or down,
        }

    @property
    def buffered(self) -> int:
        return len(self._pending) + len(self._retry) + len(self._inflight)

    # --- the pump ---------------------------------------------------------------------------

    def _pump(self) -> None:
        """The supervised greenlet that owns the producer (restarted by the owner if it fails)."""
        pump = gevent.getcurrent()
        assert isinstance(pump, gevent.Greenlet), "supervise() spawns the pump"
        self._pump_greenlet = pump
        while not self._closing:
            if self._replace:
                self._replace_producer()
            ready = time.monotonic() >= self._retry_at
            if self.producer is None and ready:
                self._connect()
            if self.producer is not None and ready:
                self._send_some()
            if not self._pending and not self._retry and not self._inflight:
                self._idle.set()
            self._check_stall()
            self._log_drops()
            idle = self._serve()
            waiting = self.producer is None or self._retry
            self._wake.wait(max(0.01, self._retry_at - time.monotonic()) if waiting else idle)
            self._wake.clear()

    def _check_stall(self) -> None:
        """The producer retries silently for delivery_timeout_ms: notice an outage sooner."""
        if self.broker.up and self._stalled():
            self.broker.set(False, STALLED)

    def _stalled(self) -> bool:
        """Records in flight, and none acknowledged for STALL_AFTER seconds."""
        return bool(self._inflight) and time.monotonic() - self._progress_at > STALL_AFTER

    def _connect(self) -> None:
        try:
            self.producer = self._new_producer()
        except Exception as exc:
            self._failed(exc)
            return
        self._generation += 1
        self.broker.set(True)

    def _replace_producer(self) -> None:
        """After a failed delivery: a new producer (the old one may be fenced or in a fatal state)."""
        self._replace = False
        old, self.producer = self.producer, None
        for number, record in self._inflight.items():
            heapq.heappush(self._retry, (number, record))
        self._inflight.clear()
        self._partitions.clear()
        if old is not None:
            log.warning(
                "Kafka sink: replacing the producer after a failed delivery (%s)", self.broker.error
            )
            self.owner.spawn(self._close, old, 1.0, name="kafka-sink-close")

    def _send_some(self) -> None:
        """Hand everything queued to the producer: the retries first, then new records."""
        generation = self._generation
        while (self._retry or self._pending) and not self._closing and not self._replace:
            number, record = heapq.heappop(self._retry) if self._retry else self._pending.popleft()
            done = self._callback(generation, number)
            try:
                future = self._produce(record, done)
            except RECORD_REJECTED as exc:
                self._drop("rejected", f"the producer refused a record: {exc!r}")
                self._settled(number)
                continue
            except Exception as exc:
                heapq.heappush(self._retry, (number, record))
                self._failed(exc)
                return
            if not self._inflight:
                self._progress_at = time.monotonic()
            self._inflight[number] = record
            self._completion(future, done)
            if len(self._inflight) % 1000 == 0:
                self._serve()
                full_turn()  # let the receiver and the producer's IO run during a big backlog

    # --- the client (kafka-python here; RdKafkaSink overrides these) ------------------------

    def _client_options(self, config: dict[str, Any]) -> dict[str, Any]:
        adapter.check_version()
        return producer_options(config)

    def _new_producer(self) -> Any:
        producer = create(KafkaProducer, **self.options)
        coalesce_wakeups(producer)
        return producer

    def _close(self, producer: Any, timeout: float) -> None:
        adapter.close_producer(producer, timeout)

    def _serve(self) -> float:
        """Serve the client's events (kafka-python's IO runs by itself); seconds to idle."""
        return 0.5

    def _callback(self, generation: int, number: int) -> Any:
        return functools.partial(self._done, generation, number)

    @staticmethod
    def _completion(future: Any, callback: Any) -> None:
        adapter.on_completion(future, callback)

    def _produce(self, record: Record, done: Any) -> Any:
        topic = self._target_topic(record)
        return self.producer.send(
            topic,
            value=record.value,
            key=record.key,
            headers=outgoing_headers(record),
            partition=self._partition(topic, record.partition),
            timestamp_ms=record.timestamp if record.timestamp >= 0 else None,
        )

    def _target_topic(self, record: Record) -> str:
        if self.topic:
            return self.topic
        if record.topic is None:  # send() drops these; RECORD_REJECTED if one got through
            raise ValueError("record without a source topic, and no [egress.sink] topic")
        return self.topic_map.get(record.topic, record.topic)

    def _partition(self, topic: str, source_partition: int) -> int | None:
        """The source partition modulo the target's count, so per-partition order holds."""
        if source_partition < 0:
            return None
        now = time.monotonic()
        cached = self._partitions.get(topic)
        if cached is None or cached[0] < now:
            partitions = self.producer.partitions_for(topic)
            if not partitions:
                return None
            cached = self._partitions[topic] = (now + PARTITIONS_TTL, len(partitions))
        return source_partition % cached[1]

    # --- delivery callbacks (the producer's IO thread) --------------------------------------

    def _done(self, generation: int, number: int, result: Any) -> None:
        if isinstance(result, BaseException):
            self._not_delivered(generation, number, result)
        else:
            self._delivered(generation, number)

    def _delivered(self, generation: int, number: int) -> None:
        if generation != self._generation or self._inflight.pop(number, None) is None:
            return
        self._settled(number)
        self._progress_at = time.monotonic()
        if not self.broker.up:
            self.broker.set(True)
        self._backoff = BACKOFF_MIN
        if not self._inflight:
            self._wake.set()

    def _not_delivered(self, generation: int, number: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        record = self._inflight.pop(number, None)
        if record is None:
            return
        self.metrics.sink_errors.inc()
        if isinstance(exc, RECORD_REJECTED):  # about this record: resending cannot help
            self._drop("rejected", f"the broker refused a record: {exc!r}")
            self._settled(number)
            self._wake.set()
            return
        heapq.heappush(self._retry, (number, record))
        self._failed(exc)
        self._replace = True
        self._wake.set()

    def _settled(self, number: int) -> None:
        countdown = self._settle.pop(number, None)
        if countdown is not None:
            countdown.one()

    # --- state ------------------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(BACKOFF_MAX, self._backoff * 2)
        self.broker.set(False, exc)

    def _reached(self) -> None:
        log.info("Kafka sink: broker reachable, producing (%d records buffered)", self.buffered)

    def _lost(self, error: str | None) -> None:
        log.error(
            "Kafka sink: cannot deliver (%s); up to %d records wait in flight, the rest in "
            "the spool, retrying with backoff",
            error,
            self.limit,
        )

    def _drop(self, reason: str, why: str) -> None:
        """Count a dropped record; ERROR log at most every DROP_LOG_INTERVAL per reason."""
        self.metrics.records_dropped.labels(reason=reason).inc()
        if self._drop_log(reason, "Kafka sink dropped a record (%s): %s", reason, why):
            self._unlogged_drops.pop(reason, None)
        else:
            self._unlogged_drops[reason] = why

    def _log_drops(self) -> None:
        """Log the drops not yet in a line (called by the pump, so the tail of a burst of drops
        is logged too)."""
        for reason, why in list(self._unlogged_drops.items()):
            if self._drop_log(reason, "Kafka sink dropped records (%s): %s", reason, why, count=0):
                del self._unlogged_drops[reason]

"""The Kafka sink with `client = "librdkafka"`: KafkaSink's contract on a confluent-kafka producer.

Same rules as the kafka-python sink (dedup_service.sinks.kafka): acks=all, an idempotent producer
(`enable.idempotence`), every record with its `ddc-dedup-id` header, tombstones produced as
tombstones, a batch acknowledged only once every record's delivery report said so. Driven from
the gevent hub without holding it (ddc.kafka.rd_clients):
  * produce() only queues inside librdkafka; the sending greenlet serves delivery reports with
    poll(0), sleeping IDLE_WAIT between polls, until every record of its batch was reported.
    Reports may belong to another greenlet's batch: each record's callback names its batch.
  * `message.timeout.ms` defaults to `timeout`: librdkafka reports a record it could not deliver
    in that time as failed and never sends it later, so a released claim is not delivered behind
    the forwarder's back. A batch still unreported `timeout` + REPORT_GRACE seconds after its
    last produce abandons the producer (its queue is purged) and counts the rest as failed.
  * a full librdkafka queue (BufferError) is back-pressure: reports are served and the produce
    retried, for at most `timeout` seconds.
  * connecting asks the cluster for metadata (off the hub), so an unreachable broker is a 503 at
    once, as with kafka-python; error_cb reports later outages (sink_ok false, one log line per
    THROTTLE seconds).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from ddc.cooperate import HubTurn
from ddc.kafka.rd_clients import BrokerError, RdProducer, is_outage, produce_arguments
from ddc.kafka.rd_options import RdOptions, flatten
from ddc.kafka.rd_scan import header_values_since, scan_config
from ddc.logs import ThrottledLog
from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.keys import IDEMPOTENCY_HEADER
from dedup_service.sinks.base import ConnectingSink

log = logging.getLogger(__name__)
IDLE_WAIT = 0.002  # seconds between delivery-report polls while a batch is in flight
REPORT_GRACE = 2.0  # seconds past `timeout` a report may still take before the producer goes
CONNECT_TIMEOUT = 5.0  # seconds the first metadata request may take (kafka-python's bootstrap)
THROTTLE = 10.0
LOOKUP_TIMEOUT = 20.0  # seconds reading the topic back may take (at most `timeout`)
SKEW_MS = 5000  # how far the broker's timestamps may lag the claim's clock
LINGER_MS = 5
TIMEOUT_PROPERTIES = ("message.timeout.ms", "delivery.timeout.ms")  # librdkafka's two names


def sink_rd_config(config: dict[str, Any]) -> dict[str, Any]:
    """librdkafka producer configuration for a validated Kafka [dedup.sink]; ConfigError if
    librdkafka refuses a property, or one DDC owns is set."""
    options = RdOptions(
        "producer",
        "dedup.sink.options",
        reserved={"enable.idempotence": "the sink (always idempotent)"},
        defaults={
            "acks": "all",
            "linger.ms": LINGER_MS,
            "message.timeout.ms": int(config["timeout"] * 1000),
        },
    )
    return options.build(
        config.get("options"),
        {
            "bootstrap.servers": ",".join(config["bootstrap_servers"]),
            "enable.idempotence": True,
        },
    )


def delivery_timeout(options: dict[str, Any] | None) -> float | None:
    """Seconds a librdkafka `options` table lets one record wait for delivery, if it sets it."""
    flat = flatten(options or {})
    for name in TIMEOUT_PROPERTIES:
        value = flat.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value / 1000
    return None


class Batch:
    """One send()'s records in flight: how many are unreported, which were delivered, the first
    failure's reason."""

    __slots__ = ("delivered", "failure", "unreported")

    def __init__(self) -> None:
        self.unreported = 0
        self.delivered: list[int] = []
        self.failure: str | None = None

    def callback(self, index: int) -> Any:
        def reported(error: Any, _message: Any) -> None:
            self.unreported -= 1
            if error is None:
                self.delivered.append(index)
            elif self.failure is None:
                self.failure = str(BrokerError(error))

        return reported


class RdKafkaSink(ConnectingSink):
    carries_tombstones = True  # the merge loop hands it null values as None

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.options = sink_rd_config(config)
        self.producer: RdProducer | None = None
        self.throttled = ThrottledLog(log, THROTTLE)

    def _connect(self) -> RdProducer:
        if self.producer is None:
            producer = RdProducer(self.options, self._client_error)
            try:
                producer.reachable(CONNECT_TIMEOUT)
            except Exception as exc:
                producer.abandon()
                self.ok = False
                raise SinkFailed(f"Kafka sink cannot connect: {exc!r}") from exc
            self.producer = producer
        return self.producer

    def find_forwarded(self, ids: list[str], since_ms: int) -> set[str] | None:
        """Reads the topic back (ddc.kafka.rd_scan) from the earlier claim's time, less SKEW_MS,
        for the ids' `ddc-dedup-id` headers: whatever that holder produced was appended before
        its claim expired, so before this read began; records stamped more than SKEW_MS after
        it began are not read (the topic is written meanwhile, by this very sink)."""
        config = scan_config(self.options)
        timeout = min(self.config["timeout"], LOOKUP_TIMEOUT)
        topic = self.config["topic"]
        since, until = since_ms - SKEW_MS, int(time.time() * 1000) + SKEW_MS
        return header_values_since(config, topic, IDEMPOTENCY_HEADER, ids, since, timeout, until)

    def send(self, records: list[Record]) -> None:
        topic = self.config["topic"]
        producer = self._connect()
        batch = Batch()
        refused: str | None = None
        turn = HubTurn()  # a big batch must not hold the hub (/healthz answers meanwhile)
        produce = producer.produce
        for index, record in enumerate(records):
            if turn.due():
                turn()
            headers = [(name, value or b"") for name, value in record.headers]
            arguments = produce_arguments(topic, record, None, batch.callback(index), 0, headers)
            try:
                try:
                    produce(*arguments)
                except BufferError:  # librdkafka's queue is full
                    self._produce_when_room(producer, arguments)
            except (BufferError, producer.kafka.KafkaException) as exc:
                refused = f"{exc!r}"  # this record and the rest are not sent
                break
            batch.unreported += 1
        self._wait(producer, batch)
        failed = len(records) - len(batch.delivered)
        if refused is not None or failed:
            reason = refused or batch.failure or "not acknowledged in time"
            raise SinkFailed(f"producing to {topic!r}: {failed} failed ({reason})", batch.delivered)

    def _produce_when_room(self, producer: RdProducer, arguments: tuple[Any, ...]) -> None:
        """Serve reports and produce again until librdkafka's queue takes the record, at most
        `timeout` seconds (then BufferError)."""
        deadline = time.monotonic() + self.config["timeout"]
        while True:
            producer.poll(0)
            gevent.sleep(IDLE_WAIT)
            try:
                producer.produce(*arguments)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise

    def _wait(self, producer: RdProducer, batch: Batch) -> None:
        """Serve delivery reports until every record of `batch` was reported; past the
        deadline the producer is abandoned (its reports then come as failures)."""
        deadline = time.monotonic() + self.config["timeout"] + REPORT_GRACE
        producer.poll(0)
        while batch.unreported > 0:
            if time.monotonic() > deadline:
                log.error(
                    "Kafka sink: %d record(s) unreported %gs after their timeout; the producer "
                    "is replaced",
                    batch.unreported,
                    REPORT_GRACE,
                )
                self._abandon(producer)
                return
            gevent.sleep(IDLE_WAIT)
            producer.poll(0)

    def _abandon(self, producer: RdProducer) -> None:
        if self.producer is producer:
            self.producer = None
        producer.abandon()

    def _client_error(self, error: Any) -> None:
        """librdkafka's error_cb (served by poll, in a sending greenlet)."""
        if is_outage(error):
            self.ok = False
            self.throttled("outage", "Kafka sink: broker unreachable: %s", error.str())
        else:
            self.throttled(error.name(), "Kafka sink: librdkafka reports %s", error.str())

    def stop(self, timeout: float) -> None:
        producer, self.producer = self.producer, None
        if producer is None:
            return
        left = producer.flush(timeout)
        if left:
            log.error("Kafka sink: %d record(s) unflushed at stop", left)
        producer.abandon()

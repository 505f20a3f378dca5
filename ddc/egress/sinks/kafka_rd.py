"""Kafka sink with `client = "librdkafka"`: the KafkaSink's rules on a confluent-kafka producer.

The queue, the retry heap, the in-flight table, settling only what the broker acknowledged,
dropping (and counting) only what the broker refused as a record, replacing the producer after a
failed delivery, reachability and the stall check are KafkaSink's own code; this class only
drives a different client (ddc.kafka.rd_clients, never holding the gevent hub):
  * produce() only queues inside librdkafka; its delivery reports are served by poll(0) in the
    pump greenlet (`_serve`), every IDLE_WAIT seconds while records are in flight;
  * a full librdkafka queue (BufferError) is back-pressure, not an outage: the pump serves
    reports and waits, up to MAX_BLOCK seconds (as kafka-python's max_block_ms) before it
    counts as a failure;
  * connecting asks the cluster for metadata (off the hub), so an unreachable broker is seen at
    once, as kafka-python's constructor sees it; librdkafka's error_cb reports outages later.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import gevent

from ddc.egress.sinks.kafka import KafkaSink, outgoing_headers
from ddc.kafka.rd_clients import BrokerError, RdProducer, is_outage, produce_arguments
from ddc.kafka.rd_options import RdOptions
from ddc.protocol.record import Record

log = logging.getLogger(__name__)

IDLE_WAIT = 0.002  # seconds between delivery-report polls while records are in flight
MAX_BLOCK = 10.0  # seconds produce() may wait for room in librdkafka's queue
CONNECT_TIMEOUT = 10.0  # seconds the first metadata request may take
# delivery errors about the record itself: resending cannot help (dropped and counted)
REJECTED = (
    "MSG_SIZE_TOO_LARGE",
    "_MSG_SIZE_TOO_LARGE",
    "INVALID_RECORD",
    "CORRUPT_MESSAGE",
    "RECORD_LIST_TOO_LARGE",
    "INVALID_MSG",
    "INVALID_MSG_SIZE",
    "_INVALID_ARG",
)
OPTIONS = RdOptions(
    "producer",
    "egress.sink.options",
    reserved={
        "compression.type": "compression_type (egress.sink.compression_type)",
        "compression.codec": "compression_type (egress.sink.compression_type)",
    },
    defaults={"acks": "all", "linger.ms": 5},
)


class RecordRejected(ValueError):
    """The broker or librdkafka refused this record (RECORD_REJECTED: dropped and counted)."""


def delivery_error(error: Any) -> Exception:
    """A delivery report's KafkaError as the exception KafkaSink sorts by type."""
    failure = BrokerError(error)
    return RecordRejected(str(failure)) if failure.name in REJECTED else failure


def producer_config(config: dict[str, Any]) -> dict[str, Any]:
    """librdkafka producer configuration for a validated sink config; ConfigError if unusable."""
    window = int(config["buffer_max_records"])
    return OPTIONS.build(
        {"queue.buffering.max.messages": max(100_000, window), **(config.get("options") or {})},
        {
            "bootstrap.servers": ",".join(config["bootstrap_servers"]),
            "compression.type": config.get("compression_type", "none"),
        },
    )


class RdKafkaSink(KafkaSink):
    def _client_options(self, config: dict[str, Any]) -> dict[str, Any]:
        return producer_config(config)

    def _new_producer(self) -> Any:
        producer = RdProducer(self.options, self._client_error)
        producer.reachable(CONNECT_TIMEOUT)  # raises while the cluster does not answer
        return producer

    def _close(self, producer: Any, timeout: float) -> None:
        self._generation += 1  # its last reports (purged records) are not ours any more
        producer.abandon()

    def _serve(self) -> float:
        if self.producer is not None:
            self.producer.poll(0)
        return IDLE_WAIT if self._inflight else 0.5

    def _callback(self, generation: int, number: int) -> Any:
        return functools.partial(self._reported, generation, number)

    @staticmethod
    def _completion(future: Any, callback: Any) -> None:
        """Nothing to do: produce() was given the callback."""

    def _reported(self, generation: int, number: int, error: Any, _message: Any) -> None:
        """librdkafka's delivery report (served by poll, in the pump greenlet)."""
        if error is None:
            self._delivered(generation, number)
        else:
            self._not_delivered(generation, number, delivery_error(error))

    def _produce(self, record: Record, done: Any) -> Any:
        topic = self._target_topic(record)
        partition = self._partition(topic, record.partition)
        arguments = produce_arguments(
            topic, record, partition, done, max(0, record.timestamp), outgoing_headers(record)
        )
        deadline = 0.0
        while True:
            try:
                return self.producer.produce(*arguments)
            except BufferError:  # librdkafka's queue is full: serve reports, then try again
                deadline = deadline or time.monotonic() + MAX_BLOCK
                if time.monotonic() > deadline:
                    raise
                self.producer.poll(0)
                gevent.sleep(IDLE_WAIT)
            except self.producer.kafka.KafkaException as exc:
                raise delivery_error(exc.args[0]) from None

    def _client_error(self, error: Any) -> None:
        """librdkafka's error_cb (served by poll, in the pump greenlet)."""
        if is_outage(error):
            self.metrics.sink_errors.inc()
            self.broker.set(False, BrokerError(error))
        else:
            log.warning("Kafka sink: librdkafka reports %s", error.str())

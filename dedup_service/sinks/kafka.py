"""Produces each record to one topic with acks=all; a batch is acknowledged once flushed.

A record with a null value (a tombstone read by the merge loop) is produced as a tombstone.
Every record carries its dedup id in the `ddc-dedup-id` header (the forwarder adds it); the
producer is kafka-python's idempotent one (its default), which removes duplicates of its own
retries within one producer session, not across a restart of the service.
"""

from __future__ import annotations

import logging
from typing import Any

from ddc.cooperate import HubTurn
from ddc.errors import ConfigError
from ddc.kafka import adapter
from ddc.kafka.clients import KafkaProducer
from ddc.kafka.construct import create
from ddc.kafka.options import producer_options
from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.sinks.base import ConnectingSink

log = logging.getLogger(__name__)
BOOTSTRAP_TIMEOUT_MS = 5000  # kafka-python's default (30 s) would hold up start-up that long
RESERVED_OPTIONS = {"bootstrap_servers": "bootstrap_servers"}
LINGER_MS = 5
REQUEST_TIMEOUT_MS = 30000  # kafka-python's default


def sink_producer_options(config: dict[str, Any]) -> dict[str, Any]:
    """KafkaProducer keyword arguments for a validated Kafka [dedup.sink]; ConfigError if unusable.

    A record not acknowledged within `timeout` is given up (its claim is released), so the
    producer must not deliver it later on its own: delivery_timeout_ms defaults to `timeout`,
    and request_timeout_ms to what fits in it (kafka-python wants delivery > linger + request).
    """
    timeout_ms = int(config["timeout"] * 1000)
    given = config.get("options") or {}
    linger = given.get("linger_ms", LINGER_MS)
    options = producer_options(
        config.get("options"),
        key="dedup.sink.options",
        reserved=RESERVED_OPTIONS,
        defaults={
            "acks": "all",
            "linger_ms": LINGER_MS,
            "retries": 3,
            "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
            "max_block_ms": timeout_ms,
            "delivery_timeout_ms": timeout_ms,
            "request_timeout_ms": max(1, min(REQUEST_TIMEOUT_MS, timeout_ms - linger - 1)),
        },
        settings={"bootstrap_servers": list(config["bootstrap_servers"])},
    )
    delivery, request = options["delivery_timeout_ms"], options["request_timeout_ms"]
    if delivery <= options["linger_ms"] + request:
        raise ConfigError(
            "dedup.sink.options.delivery_timeout_ms",
            f"{delivery} ms: must be more than linger_ms + request_timeout_ms "
            f"({options['linger_ms']} + {request} ms)",
        )
    return options


class KafkaSink(ConnectingSink):
    carries_tombstones = True  # the merge loop hands it null values as None

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        adapter.check_version()
        self.options = sink_producer_options(config)
        self.producer: Any = None

    def _connect(self) -> Any:
        if self.producer is None:
            try:
                self.producer = create(KafkaProducer, **self.options)
            except Exception as exc:  # NoBrokersAvailable and kin
                self.ok = False
                raise SinkFailed(f"Kafka sink cannot connect: {exc!r}") from exc
        return self.producer

    def send(self, records: list[Record]) -> None:
        topic = self.config["topic"]
        self._connect()
        futures = []
        turn = HubTurn()  # a big batch must not hold the hub (/healthz answers meanwhile)
        try:
            for record in records:
                if turn.due():
                    turn()
                futures.append(
                    self.producer.send(
                        topic,
                        value=record.value,
                        key=record.key,
                        headers=[(name, value or b"") for name, value in record.headers],
                    )
                )
            self.producer.flush(timeout=self.config["timeout"])
        except Exception as exc:  # kafka-python raises KafkaError or a timeout from flush
            done = [i for i, future in enumerate(futures) if future.is_done and future.succeeded()]
            raise SinkFailed(f"producing to {topic!r}: {exc!r}", done) from exc
        failed = [
            i for i, future in enumerate(futures) if not (future.is_done and future.succeeded())
        ]
        if failed:
            first = futures[failed[0]]
            reason = first.exception if first.is_done else "not acknowledged in time"
            done = [i for i in range(len(records)) if i not in set(failed)]
            raise SinkFailed(f"producing to {topic!r}: {len(failed)} failed ({reason!r})", done)

    def stop(self, timeout: float) -> None:
        if self.producer is not None:
            try:
                self.producer.flush(timeout=timeout)
            finally:
                adapter.close_producer(self.producer, timeout)
                self.producer = None

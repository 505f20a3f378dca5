"""Produces each record to one topic with acks=all; a batch is acknowledged once flushed."""

from __future__ import annotations

import logging
from typing import Any

from ddc.protocol.record import Record
from dedup_service.errors import SinkFailed
from dedup_service.sinks.base import Sink

log = logging.getLogger(__name__)
BOOTSTRAP_TIMEOUT_MS = 5000  # kafka-python's default (30 s) would hold up start-up that long


class KafkaSink(Sink):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.producer: Any = None

    def start(self) -> None:
        try:
            self._connect()
        except SinkFailed as exc:  # an outage, not a config error: sends fail until it is back
            log.error("%s; records are refused (503) until it is reachable", exc)

    def _connect(self) -> Any:
        if self.producer is None:
            from kafka import KafkaProducer

            options = {
                "acks": "all",
                "linger_ms": 5,
                "retries": 3,
                "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
                "max_block_ms": int(self.config["timeout"] * 1000),
                **self.config["options"],
            }
            try:
                self.producer = KafkaProducer(
                    bootstrap_servers=self.config["bootstrap_servers"], **options
                )
            except Exception as exc:  # NoBrokersAvailable and kin
                self.ok = False
                raise SinkFailed(f"Kafka sink cannot connect: {exc!r}") from exc
        return self.producer

    def send(self, records: list[Record]) -> None:
        topic = self.config["topic"]
        self._connect()
        futures = []
        try:
            for record in records:
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
                self.producer.close(timeout=timeout)
                self.producer = None

"""Kafka source with `client = "librdkafka"`: the KafkaSource's rules on a confluent-kafka consumer.

Everything about offsets is KafkaSource's own code (acks per slice, epochs per assignment,
commits only of what was acked, a commit before leaving the group or closing); this class only
drives a different client (ddc.kafka.rd_clients, never holding the gevent hub):
  * the run() greenlet takes what librdkafka has already fetched (consume without waiting) and
    waits on the source's wake event when there was nothing (IDLE_WAIT, doubled up to IDLE_MAX
    while nothing comes), and yields to the loop after each batch;
  * rebalance callbacks run inside that consume, in the same greenlet, as kafka-python's
    listener does in its IO loop: a revocation commits what was acked, then forgets the partitions;
  * the periodic commit does not wait (its result comes back through consume, on_commit): a
    greenlet waiting for it would not serve a rebalance the broker may hold it back for. The
    commits before leaving the group (pause), at revocation and at stop wait for the broker,
    off the hub, at most 5 s. Leaving the group closes the consumer; resume makes a new one;
  * a record batch librdkafka cannot decode is a message error naming topic, partition and
    offset: counted, named in /healthz, that partition alone held back and read again from that
    offset every BATCH_RETRY seconds (BlockedPartitions);
  * reachability: errors reported by librdkafka (all brokers down, transport, auth) mark the
    broker unreachable; records, an assignment or a metadata probe (every PROBE_INTERVAL while
    not known to be up) mark it reachable again.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, NamedTuple

from ddc.cooperate import full_turn
from ddc.ingress.sources.kafka import KafkaSource
from ddc.kafka import batches
from ddc.kafka.partitions import names
from ddc.kafka.rd_clients import BrokerError, Partition, RdConsumer, is_outage, to_record
from ddc.kafka.rd_options import RdOptions
from ddc.logs import ThrottledLog

log = logging.getLogger(__name__)

IDLE_WAIT = 0.005  # seconds the loop sleeps when librdkafka had nothing fetched, doubled while
IDLE_MAX = 0.04  # it keeps having nothing, up to this (an idle source wakes 25 times a second)
PROBE_INTERVAL = 2.0  # seconds between metadata probes while the broker is not known to be up
PROBE_TIMEOUT = 2.0
# message errors about one batch of one partition (librdkafka could not decode it)
BATCH_ERRORS = ("_BAD_MSG", "_BAD_COMPRESSION", "CORRUPT_MESSAGE", "INVALID_RECORD")
CODEC_IDS = {"0x1": "gzip", "0x2": "snappy", "0x3": "lz4", "0x4": "zstd"}
OPTIONS = RdOptions(
    "consumer",
    "ingress.source.options",
    reserved={
        "group.id": "group_id",
        "enable.auto.commit": "commit_interval (offsets are committed by DDC, after the send)",
    },
    defaults={"auto.offset.reset": "earliest"},
)


def consumer_config(config: dict[str, Any]) -> dict[str, Any]:
    """librdkafka consumer configuration for a validated source config; ConfigError if unusable."""
    return OPTIONS.build(
        config.get("options"),
        {
            "bootstrap.servers": ",".join(config["bootstrap_servers"]),
            "group.id": config["group_id"],
            "enable.auto.commit": False,
        },
    )


class RdKafkaSource(KafkaSource):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.max_records = int(self.config["poll_max_records"])
        self._probe_at = 0.0
        self._idle = IDLE_WAIT
        self._error_log = ThrottledLog(log, 10.0)

    def _client_options(self, config: dict[str, Any]) -> dict[str, Any]:
        return consumer_config(config)

    @staticmethod
    def _records(messages: list[Any]) -> list[Any]:
        return messages  # already Records (to_record in _take)

    # --- the loop ---------------------------------------------------------------------------

    def _step(self) -> None:
        if self._idle_while_paused():  # no consumer meanwhile: leaving the group closed it
            return
        if self.consumer is None:
            self.consumer = self._new_consumer()
        if not self._member:
            self._join()
        self._resume_blocked()
        messages = self.consumer.consume(self.max_records)
        if messages:
            self._take(messages)
            full_turn()  # the framer, timers and the HTTP server run between batches
            self._idle = IDLE_WAIT
        else:
            self._wake.wait(self._idle)
            self._wake.clear()
            self._idle = min(IDLE_MAX, self._idle * 2)
        self._probe()
        if time.monotonic() >= self._next_commit:
            self._commit_soon()

    def _commit_soon(self) -> None:
        """The periodic commit, without waiting: a greenlet waiting for a commit would not serve
        the rebalance the broker may be holding that commit back for."""
        self._next_commit = time.monotonic() + self.commit_interval
        due = self._due()
        if due:
            self.consumer.commit_soon(due)

    def _on_commit(self, offsets: list[tuple[Partition, int]]) -> None:
        self._committed({tp: _Offset(offset) for tp, offset in offsets})

    def _new_consumer(self) -> Any:
        consumer = RdConsumer(self.options, self._client_error, self._on_commit)
        log.info("Kafka consumer (librdkafka) created for %s", self.servers)
        return consumer

    def _join(self) -> None:
        self.consumer.subscribe(self.topics, self._on_assign, self._on_revoke, self._on_lost)
        self._member = True
        log.info("joining consumer group %s", self.group)

    def _leave(self) -> None:
        """KafkaSource's leave (acks drained, committed, unsubscribed), then the consumer is
        closed: a librdkafka consumer that subscribes again after leaving may never be given
        partitions, a new one (made on resume) is."""
        super()._leave()
        try:
            self.consumer.close()
        except Exception as exc:
            log.warning("closing the Kafka consumer after leaving the group: %r", exc)
        self.consumer = None

    def _take(self, messages: list[Any]) -> None:
        """Group the fetched messages by partition (as Records) and submit them; a partition's
        messages after its undecodable batch (or while it is held back) are not taken."""
        batch: dict[Any, list[Any]] = {}
        key: Any = None
        records: list[Any] = []
        for message in messages:
            if message.error() is not None:
                self._message_error(message)
                key = None
                continue
            where = (message.topic(), message.partition())
            if where != key:
                key = where
                if self.blocked and self.blocked.paused(where):
                    records = []  # read again from the failed offset when it is resumed
                else:
                    records = batch.setdefault(Partition(*where), [])
            records.append(to_record(message))
        batch = {tp: records for tp, records in batch.items() if records}
        if batch:
            self.broker.set(True)
            self._submit(batch)

    # --- errors and reachability --------------------------------------------------------------

    def _message_error(self, message: Any) -> None:
        """A per-partition error from consume(): a batch error holds its partition back."""
        error = BrokerError(message.error())
        tp = Partition(message.topic() or "", message.partition() or 0)
        if error.name not in BATCH_ERRORS:
            self.metrics.source_errors.labels(kind=error.name).inc()
            self._error_log(error.name, "Kafka source: %s on %s/%s", error, tp.topic, tp.partition)
            return
        codec = _codec(str(error))
        self.metrics.kafka_batch_errors.labels(codec=codec or "none").inc()
        failure = batches.BatchError(codec, tp.topic, tp.partition, message.offset(), str(error))
        self._hold_back(tp, failure)

    def _resume_blocked(self) -> None:
        for tp in self.blocked.due(time.monotonic()):
            failure = self.blocked.error(tp)
            if tp in self.partitions and failure is not None:
                self.consumer.resume(tp, offset=failure.offset)

    def _client_error(self, error: Any) -> None:
        """librdkafka's error_cb (served inside consume/poll, in this greenlet)."""
        name = error.name()
        if is_outage(error):
            self.metrics.source_errors.labels(kind=name).inc()
            self.broker.set(False, BrokerError(error))
            self._probe_at = time.monotonic() + PROBE_INTERVAL
        else:
            self._error_log(name, "Kafka source: librdkafka reports %s", error.str())

    def _probe(self) -> None:
        """While the broker is not known to be reachable, ask for metadata now and then."""
        now = time.monotonic()
        if self.broker.up or now < self._probe_at:
            return
        self._probe_at = now + PROBE_INTERVAL
        try:
            self.consumer.reachable(PROBE_TIMEOUT)
        except Exception as exc:
            self.broker.set(False, exc)
        else:
            self.broker.set(True)

    # --- rebalance callbacks (inside consume, in the run greenlet) -----------------------------

    def _on_assign(self, assigned: list[Partition]) -> None:
        for tp in assigned:
            self._assigned(tp)
        self.broker.set(True)
        log.info("partitions assigned: %s", names(assigned))

    def _on_revoke(self, revoked: list[Partition]) -> None:
        due = self._due(revoked)
        if due:
            try:
                self.consumer.commit(offsets=due)
                self._committed(due)
            except Exception as exc:
                log.warning("commit on revocation failed (records will be read again): %r", exc)
        self._forget(revoked)
        log.info("partitions revoked: %s", names(revoked))

    def _on_lost(self, lost: list[Partition]) -> None:
        self._forget(lost)
        log.warning("partitions lost (group membership expired): %s", names(lost))


class _Offset(NamedTuple):
    offset: int  # what KafkaSource._committed reads of an OffsetAndMetadata


def _codec(text: str) -> str:
    match = re.search(r"codec (0x\d)", text)
    return CODEC_IDS.get(match.group(1), f"unknown({match.group(1)})") if match else ""

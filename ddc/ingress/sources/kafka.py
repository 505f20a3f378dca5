"""Kafka source: a consumer-group member that commits only what has crossed the diode.

Every kafka-python call that blocks is made from the run() greenlet (or, for rebalances, from
kafka-python's own IO loop); ack(), pause(), resume() and stop() only change plain state and
wake the loop, so no two greenlets ever drive the consumer at the same time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event

from ddc.ingress.sources.base import Source, Submit
from ddc.ingress.sources.kafka_rebalance import Rebalance
from ddc.kafka import adapter, batches
from ddc.kafka.clients import KafkaConsumer, OffsetAndMetadata
from ddc.kafka.construct import create
from ddc.kafka.errors import REBALANCING
from ddc.kafka.options import ClientOptions
from ddc.kafka.partitions import BlockedPartitions
from ddc.kafka.reachability import Reachability
from ddc.kafka.records import to_record
from ddc.logs import ThrottledLog
from ddc.metrics import IngressMetrics

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
COMMIT_TIMEOUT_MS = 5000
BACKOFF_MIN = 0.2
BACKOFF_MAX = 5.0
PAUSE_DRAIN_WAIT = 2.0  # seconds to wait for in-flight acks before leaving the group
SUBMIT_SLICE = 500  # records per submission (one ack each)
COORDINATOR_GRACE = 3.0  # seconds without a group coordinator before the broker counts as down
BATCH_RETRY = 10.0  # seconds a partition with an undecodable batch waits before a new fetch
# Set from the schema's own keys, or required for "commit only what was acked".
OPTIONS = ClientOptions(
    KafkaConsumer,
    "ingress.source.options",
    reserved={
        "group_id": "group_id",
        "max_poll_records": "poll_max_records",
        "enable_auto_commit": "commit_interval (offsets are committed by DDC, after the send)",
    },
    defaults={"auto_offset_reset": "earliest"},
)


@dataclass(slots=True)
class _Partition:
    """Offsets of one assigned partition; `epoch` tells acks of an older assignment apart."""

    epoch: int
    acked: int = -1  # next offset to commit: last acked record's offset + 1
    committed: int = -1
    consumed: int = -1  # last submitted record's offset + 1


def consumer_options(config: dict[str, Any]) -> dict[str, Any]:
    """KafkaConsumer keyword arguments for a validated source config; ConfigError if unusable."""
    return OPTIONS.for_section(
        config,
        group_id=config["group_id"],
        enable_auto_commit=False,
        max_poll_records=config["poll_max_records"],
    )


class KafkaSource(Source):
    def __init__(self, config: dict[str, Any], submit: Submit, metrics: IngressMetrics) -> None:
        super().__init__(config, submit, metrics)
        self.options = self._client_options(config)
        self.group = str(config["group_id"])
        self.servers = ",".join(config["bootstrap_servers"])
        self.topics = list(config["topics"])
        self.commit_interval = float(config["commit_interval"])
        self.consumer: Any = None
        self.partitions: dict[Any, _Partition] = {}
        self._epoch = 0
        self._want_paused = False
        self._member = False  # subscribed (in the group, or joining it)
        self._stopped = False
        self._wake = Event()
        self._run_done = Event()
        self._run_done.set()
        self.broker = Reachability(self._reached, self._lost)
        self._coordinator_lost_at: float | None = None
        self._next_commit = 0.0
        self.blocked = BlockedPartitions(BATCH_RETRY)
        self._batch_log = ThrottledLog(log, BATCH_RETRY * 3)

    # --- interface --------------------------------------------------------------------------

    def start(self) -> None:
        if batches.missing_libraries():
            log.warning("Kafka source: %s", batches.missing_text())
        log.info(
            "Kafka source: topics %s, group %s, brokers %s",
            ",".join(self.topics),
            self.group,
            self.servers,
        )

    def run(self) -> None:
        self._run_done.clear()
        backoff = BACKOFF_MIN
        try:
            while not self._stopped:
                try:
                    self._step()
                    backoff = BACKOFF_MIN
                except Exception as exc:  # kafka-python raises many types for one outage
                    if self._stopped:
                        break
                    self.broker.set(False, exc)
                    self.metrics.source_errors.labels(kind=type(exc).__name__).inc()
                    self._wake.wait(backoff)
                    self._wake.clear()
                    backoff = min(BACKOFF_MAX, backoff * 2)
        finally:
            self._run_done.set()

    def pause(self) -> None:
        self._want_paused = True
        self._wake.set()

    def resume(self) -> None:
        self._want_paused = False
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._stopped = True
        self._wake.set()
        self._run_done.wait(max(0.0, timeout / 2))
        if self.consumer is not None:
            self._close_consumer(deadline)
            log.info("Kafka source closed (left group %s)", self.group)

    def _close_consumer(self, deadline: float) -> None:
        """Commit what crossed and close the consumer; the next _step() creates a new one."""
        try:
            if self._member:
                self._commit(timeout_ms=int(max(0.1, deadline - time.monotonic()) * 1000))
        except Exception as exc:
            log.error("final offset commit failed (those records will be read again): %r", exc)
        try:
            self.consumer.close(
                autocommit=False, timeout_ms=int(max(0.1, deadline - time.monotonic()) * 1000)
            )
        except Exception as exc:
            log.warning("closing the Kafka consumer: %r", exc)
        self._forget(list(self.partitions))
        self.consumer = None
        self._member = False

    def health(self) -> dict[str, Any]:
        assigned = sorted(f"{tp.topic}/{tp.partition}" for tp in self.partitions)
        return {
            "source_ok": (bool(self.broker.up) and not self.blocked) or self._want_paused,
            "kafka_connected": bool(self.broker.up),
            "kafka_member": self._member,
            "assigned_partitions": assigned,
            "kafka_error": None if self.broker.up else self.broker.error,
            "kafka_batch_errors": [error.describe() for error in self.blocked.errors()],
        }

    def _client_options(self, config: dict[str, Any]) -> dict[str, Any]:
        adapter.check_version()
        return consumer_options(config)

    @staticmethod
    def _records(messages: list[Any]) -> list[Any]:
        return [to_record(m) for m in messages]

    # --- the loop ---------------------------------------------------------------------------

    def _step(self) -> None:
        if self.consumer is None:
            self.consumer = self._new_consumer()
        if self._idle_while_paused():
            return
        if not self._member:
            self._join()
        self._resume_blocked()
        try:
            batch = self.consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        except batches.BATCH_ERRORS as exc:  # one batch of one partition, not the broker
            self._batch_failed(exc)
            return
        self._check_coordinator()
        if batch:
            self._submit(batch)
        if time.monotonic() >= self._next_commit:
            try:
                self._commit()
            except REBALANCING as exc:  # the group is moving partitions: not an outage
                log.warning("offset commit refused during a rebalance (retried after it): %r", exc)

    def _idle_while_paused(self) -> bool:
        """While paused: leave the group (once), then wait; False when not paused."""
        if not self._want_paused:
            return False
        if self._member:
            self._leave()
        self._wake.wait(0.5)
        self._wake.clear()
        return True

    def _new_consumer(self) -> Any:
        consumer = create(KafkaConsumer, **self.options)
        log.info("Kafka consumer connected to %s", self.servers)
        return consumer

    def _join(self) -> None:
        self.consumer.subscribe(self.topics, listener=Rebalance(self))
        self._member = True
        log.info("joining consumer group %s", self.group)

    def _leave(self) -> None:
        """Commit what crossed, then leave the group so Kafka moves our partitions elsewhere."""
        deadline = time.monotonic() + PAUSE_DRAIN_WAIT
        while time.monotonic() < deadline and any(
            p.acked < p.consumed for p in self.partitions.values()
        ):
            gevent.sleep(0.05)
        try:
            self._commit()
        except Exception as exc:
            log.warning(
                "commit before leaving the group failed (records will be read again): %r", exc
            )
        self.consumer.unsubscribe()
        self._forget(list(self.partitions))
        self._member = False
        log.warning("left consumer group %s (paused)", self.group)

    def _submit(self, batch: dict[Any, list[Any]]) -> None:
        """Per partition, in slices: an ack then covers few records, so a stop that cannot send
        everything still commits most of what crossed (fewer duplicates after a restart)."""
        for tp, messages in batch.items():
            state = self.partitions.get(tp)
            if state is None:  # assigned without our listener seeing it (should not happen)
                state = self._assigned(tp)
            self.metrics.records.inc(len(messages))
            if self.blocked:
                self.blocked.read(tp, messages[-1].offset)
            for start in range(0, len(messages), SUBMIT_SLICE):
                part = messages[start : start + SUBMIT_SLICE]
                state.consumed = part[-1].offset + 1
                self.submit(
                    self._records(part), self._make_ack([(tp, state.epoch, state.consumed)])
                )

    def _make_ack(self, upto: list[tuple[Any, int, int]]) -> Callable[[], None]:
        def ack() -> None:
            for tp, epoch, offset in upto:
                state = self.partitions.get(tp)
                if state is not None and state.epoch == epoch and offset > state.acked:
                    state.acked = offset

        return ack

    # --- offsets ----------------------------------------------------------------------------

    def _due(self, partitions: Iterable[Any] | None = None) -> dict[Any, Any]:
        wanted = self.partitions if partitions is None else partitions
        due = {}
        for tp in wanted:
            state = self.partitions.get(tp)
            if state is not None and state.acked > state.committed:
                due[tp] = OffsetAndMetadata(state.acked, "", -1)
        return due

    def _commit(self, timeout_ms: int = COMMIT_TIMEOUT_MS) -> None:
        self._next_commit = time.monotonic() + self.commit_interval
        due = self._due()
        if not due:
            return
        self.consumer.commit(offsets=due, timeout_ms=timeout_ms)
        self._committed(due)

    def _committed(self, offsets: dict[Any, Any]) -> None:
        for tp, meta in offsets.items():
            state = self.partitions.get(tp)
            if state is not None and meta.offset > state.committed:
                state.committed = meta.offset
        self.metrics.offsets_committed.inc()

    def _assigned(self, tp: Any) -> _Partition:
        self._epoch += 1
        state = self.partitions[tp] = _Partition(self._epoch)
        return state

    def _forget(self, partitions: Iterable[Any]) -> None:
        partitions = list(partitions)
        self.blocked.forget(partitions)
        for tp in partitions:
            state = self.partitions.pop(tp, None)
            if state is not None and state.consumed > state.acked:
                log.info(
                    "%s/%s revoked with offsets %s..%s not yet sent: the next owner reads them again",
                    tp.topic,
                    tp.partition,
                    state.acked,
                    state.consumed - 1,
                )

    # --- undecodable batches ----------------------------------------------------------------

    def _batch_failed(self, exc: BaseException) -> None:
        """Count and name the batch; hold back its partition only (retried every BATCH_RETRY)."""
        codec, reason = batches.codec_of(exc), batches.describe(exc)
        self.metrics.kafka_batch_errors.labels(codec=codec or "none").inc()
        found = adapter.failed_fetch(self.consumer)
        if found is None:  # kafka-python did not say which partition: start a new consumer
            self._batch_log(
                "unknown",
                "Kafka source: undecodable record batch (%s), partition not known: %s; "
                "reconnecting the consumer",
                codec or "codec not known",
                reason,
            )
            self._close_consumer(time.monotonic() + COMMIT_TIMEOUT_MS / 1000)
            self._wake.wait(BATCH_RETRY)  # the new consumer starts at the committed offsets
            return
        tp, offset = found
        self._hold_back(tp, batches.BatchError(codec, tp.topic, tp.partition, offset, reason))

    def _hold_back(self, tp: Any, error: batches.BatchError) -> None:
        """Pause the partition of an undecodable batch (fetched again every BATCH_RETRY)."""
        self.blocked.fail(tp, error, time.monotonic())
        if tp in self.partitions:  # still ours (a rebalance may have moved it meanwhile)
            self.consumer.pause(tp)
        retry = f"partition held back, fetched again every {BATCH_RETRY:g}s"
        self._batch_log(
            f"{tp.topic}/{tp.partition}", "Kafka source: %s; %s", error.describe(), retry
        )

    def _resume_blocked(self) -> None:
        for tp in self.blocked.due(time.monotonic()):
            if tp in self.partitions:
                self.consumer.resume(tp)

    # --- connection state -------------------------------------------------------------------

    def _check_coordinator(self) -> None:
        """Connected unless the group coordinator stayed unknown for COORDINATOR_GRACE seconds."""
        now = time.monotonic()
        if self._coordinator_known():
            self._coordinator_lost_at = None
            self.broker.set(True)
        elif self._coordinator_lost_at is None:
            self._coordinator_lost_at = now
        elif now - self._coordinator_lost_at > COORDINATOR_GRACE:
            self.broker.set(False, f"no group coordinator for {COORDINATOR_GRACE:g}s")

    def _coordinator_known(self) -> bool:
        return adapter.coordinator_known(self.consumer)

    def _reached(self) -> None:
        log.info("Kafka source: broker reachable, consuming")

    def _lost(self, error: str | None) -> None:
        log.error("Kafka source: broker unreachable (%s); retrying with backoff", error)

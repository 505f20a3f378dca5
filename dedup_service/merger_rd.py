"""The Kafka merge loop with `client = "librdkafka"`: MergeLoop's rules on a confluent-kafka consumer.

Everything about claims, forwarding, pausing and offsets is MergeLoop's own code; this module
only drives a different client (ddc.kafka.rd_clients, never holding the gevent hub) behind the
few consumer calls MergeLoop makes (poll, seek, pause, resume, paused, assignment, commit, close):
  * poll() takes what librdkafka has already fetched (consume without waiting), grouped by
    partition as Records; with nothing fetched it sleeps IDLE_WAIT, doubled up to IDLE_MAX while
    nothing comes, and never longer than the poll timeout. Rebalance callbacks run inside it,
    in the loop's greenlet, as kafka-python's listener does in its IO loop;
  * librdkafka, like kafka-python, hands a rebalance's new partitions over unpaused: while the
    loop is paused, the assignment callback pauses them (MergeLoop's paused branch still rewinds
    whatever a paused poll returns);
  * commit() only asks for the commit (the broker answers through a later poll): MergeLoop
    commits after the sink acknowledged and the claims were committed, so a commit lost to a
    rebalance or a crash means records read again and found duplicates, never a record skipped.
    A failed commit is logged by the client and superseded by the next batch's;
  * a per-partition error in what consume() returns (librdkafka could not read a batch) is
    logged, at most one line per THROTTLE seconds per error; that partition is held back
    (ddc.kafka.partitions.BlockedPartitions: sought to the offset the error names, paused) and
    read again after the loop's retry_interval, so no record behind the error is skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from ddc.kafka.batches import BatchError
from ddc.kafka.partitions import BlockedPartitions, names
from ddc.kafka.rd_clients import BrokerError, Partition, RdConsumer, is_outage, to_record
from ddc.kafka.rd_options import RdOptions
from ddc.logs import ThrottledLog
from dedup_service.merger import MergeLoop

log = logging.getLogger(__name__)
IDLE_WAIT = 0.002  # seconds poll() sleeps when nothing was fetched, doubled while nothing comes
IDLE_MAX = 0.05
THROTTLE = 10.0
OPTIONS = RdOptions(
    "consumer",
    "dedup.merge.options",
    reserved={
        "group.id": "group_id",
        "auto.offset.reset": "auto_offset_reset",
        "enable.auto.commit": "the merge loop (offsets are committed after the sink acknowledged)",
        "enable.auto.offset.store": "the merge loop",
    },
)


def merge_rd_config(config: dict[str, Any]) -> dict[str, Any]:
    """librdkafka consumer configuration for a validated [dedup.merge]; ConfigError if unusable."""
    return OPTIONS.build(
        config.get("options"),
        {
            "bootstrap.servers": ",".join(config["bootstrap_servers"]),
            "group.id": config["group_id"],
            "auto.offset.reset": config["auto_offset_reset"],
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        },
    )


class RdMergeLoop(MergeLoop):
    def _consumer_options(self, config: dict[str, Any]) -> dict[str, Any]:
        return merge_rd_config(config)

    def _new_consumer(self) -> Any:
        consumer = _Consumer(self.options, self)
        consumer.subscribe(list(self.link_of))
        return consumer

    @staticmethod
    def as_record(message: Any) -> Any:
        return message  # poll() made it a Record

    def health(self) -> dict[str, Any]:
        """MergeLoop's, and while librdkafka reports the brokers unreachable (until records or an
        assignment come again) paused with that reason, as kafka-python's loop is while it
        cannot connect."""
        found = super().health()
        outage = self.consumer.outage if self.consumer is not None else None
        if outage and not found["paused"]:
            return {"paused": True, "reason": f"Kafka unreachable: {outage}"}
        return found


class _Consumer:
    """The kafka-python consumer calls MergeLoop makes, on an RdConsumer."""

    def __init__(self, options: dict[str, Any], loop: MergeLoop) -> None:
        self.loop = loop
        self.client = RdConsumer(options, self._client_error, lambda _done: None)
        self.assigned: set[Partition] = set()
        self.paused_partitions: set[Partition] = set()
        self.idle = IDLE_WAIT
        self.error_log = ThrottledLog(log, THROTTLE)
        self.blocked = BlockedPartitions(loop.config["retry_interval"])
        self.outage: str | None = None  # librdkafka's last "brokers unreachable" error

    def subscribe(self, topics: list[str]) -> None:
        self.client.subscribe(topics, self._on_assign, self._on_revoke, self._on_revoke)

    def poll(self, timeout_ms: int, max_records: int = 500) -> dict[Partition, list[Any]]:
        for tp in self.blocked.due(time.monotonic()):
            if tp in self.assigned and self.loop.paused_since is None:
                self.resume(tp)
        messages = self.client.consume(max_records)
        if not messages:
            gevent.sleep(min(self.idle, timeout_ms / 1000))
            self.idle = min(IDLE_MAX, self.idle * 2)
            return {}
        self.idle = IDLE_WAIT
        self.outage = None
        batch: dict[Partition, list[Any]] = {}
        failed: set[Partition] = set()
        for message in messages:
            tp = Partition(message.topic() or "", message.partition() or 0)
            if message.error() is not None:
                self._message_error(tp, message)
                failed.add(tp)
            elif tp not in failed and not self.blocked.paused(tp):  # else read again later
                batch.setdefault(tp, []).append(to_record(message))
        if self.blocked:
            for tp, records in batch.items():
                self.blocked.read(tp, records[-1].offset)
        return batch

    def _message_error(self, tp: Partition, message: Any) -> None:
        error = BrokerError(message.error())
        self.error_log(
            error.name, "merge loop: %s on %s/%s (read again later)", error, tp.topic, tp.partition
        )
        if tp not in self.assigned or self.blocked.paused(tp):
            return
        offset = message.offset()
        if offset >= 0:
            self.seek(tp, offset)
        self.pause(tp)
        failure = BatchError("", tp.topic, tp.partition, offset, str(error))
        self.blocked.fail(tp, failure, time.monotonic())

    def _client_error(self, error: Any) -> None:
        if is_outage(error):
            self.outage = str(BrokerError(error))
        self.error_log(error.name(), "merge loop: librdkafka reports %s", error.str())

    def seek(self, tp: Partition, offset: int) -> None:
        self.client.seek(tp, offset)

    def pause(self, *partitions: Partition) -> None:
        self.client.pause(*partitions)
        self.paused_partitions.update(partitions)

    def resume(self, *partitions: Partition) -> None:
        self.client.resume(*partitions)
        self.paused_partitions.difference_update(partitions)

    def paused(self) -> set[Partition]:
        return set(self.paused_partitions)

    def assignment(self) -> set[Partition]:
        return set(self.assigned)

    def commit(self, offsets: dict[Partition, Any]) -> None:
        self.client.commit_soon(offsets)

    def close(self, autocommit: bool = False, timeout_ms: int = 10_000) -> None:
        self.client.close(autocommit, timeout_ms)

    # --- rebalance callbacks (inside consume, in the loop's greenlet) -------------------------

    def _on_assign(self, assigned: list[Partition]) -> None:
        self.outage = None
        self.assigned.update(assigned)
        paused = self.loop.paused_since is not None
        if paused and assigned:
            self.pause(*assigned)
        log.info(
            "merge loop: partitions assigned%s: %s",
            " (kept paused)" if paused else "",
            names(assigned),
        )

    def _on_revoke(self, revoked: list[Partition]) -> None:
        self.assigned.difference_update(revoked)
        self.blocked.forget(revoked)
        self.paused_partitions.difference_update(revoked)
        log.info("merge loop: partitions revoked: %s", names(revoked))

"""The Kafka merge loop: one input topic per link in, the first copy of each record out.

All instances share one consumer group, so the links' partitions spread across them. A polled
batch goes through the same claim → forward → commit path as the API; Kafka offsets are committed
only after the sink acknowledged and the claims were committed. Up to `max_in_flight` batches are
forwarded at once (each in a greenlet of the loop's group); MergeWindow keeps the commits in poll
order and, after a failure, says where to read again. When Redis (or the sink) is
unavailable the loop rewinds to the batch's first offsets, pauses its partitions (it keeps polling,
so it stays in the group) and resumes once Redis answers again: nothing skipped, nothing unclaimed.

kafka-python keeps a partition paused only while this consumer holds it: partitions a rebalance
hands a paused loop arrive unpaused. The rebalance listener pauses them, and whatever a paused
poll still returns is not forwarded, so its partitions are rewound to those records' first offsets
and paused: the loop never moves (or commits) past a record it did not forward.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Group

from ddc.kafka import adapter
from ddc.kafka.clients import AsyncConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
from ddc.kafka.construct import create
from ddc.kafka.options import consumer_options
from ddc.kafka.partitions import names
from ddc.kafka.records import to_record
from dedup_service.errors import InvalidRecord, RedisUnavailable, SinkFailed, StillPending
from dedup_service.forwarder import Forwarder, Item
from dedup_service.keys import IdSpec, extract_id, fingerprint, identity_basis
from dedup_service.merge_window import MergeWindow
from dedup_service.metrics import DedupMetrics
from dedup_service.stats import StatsBook
from dedup_service.store import Store

log = logging.getLogger(__name__)
PAUSED_POLL_MS = 200
BUSY_POLL_MS = 5  # the poll's wait while batches are in flight: their commits are not held up
STOP_WAIT = 10.0  # seconds a stop waits for the batches in flight before committing
OPTION_DEFAULTS = {"bootstrap_timeout_ms": 5000}  # kafka-python's 30 s would hold up start-up
RESERVED_OPTIONS = {
    "bootstrap_servers": "bootstrap_servers",
    "group_id": "group_id",
    "auto_offset_reset": "auto_offset_reset",
    "max_poll_records": "poll_max_records",
    "enable_auto_commit": "the merge loop (offsets are committed after the sink acknowledged)",
}


def merge_consumer_options(config: dict[str, Any]) -> dict[str, Any]:
    """KafkaConsumer keyword arguments for a validated [dedup.merge]; ConfigError if unusable."""
    return consumer_options(
        config.get("options"),
        key="dedup.merge.options",
        reserved=RESERVED_OPTIONS,
        defaults=OPTION_DEFAULTS,
        settings={
            "bootstrap_servers": list(config["bootstrap_servers"]),
            "group_id": config["group_id"],
            "auto_offset_reset": config["auto_offset_reset"],
            "max_poll_records": config["poll_max_records"],
            "enable_auto_commit": False,
        },
    )


class MergeLoop:
    def __init__(
        self,
        config: dict[str, Any],
        forwarder: Forwarder,
        store: Store,
        stats: StatsBook,
        metrics: DedupMetrics,
        id_spec: IdSpec,
    ) -> None:
        self.config = config
        self.forwarder = forwarder
        self.store = store
        self.stats = stats
        self.metrics = metrics
        self.id_spec = id_spec
        self.link_of = {topic: link for link, topic in config["links"].items()}
        adapter.check_version()
        self.options = self._consumer_options(config)
        # Only a sink that can produce a tombstone gets a null value; the others get it empty.
        self.keep_null_values = bool(getattr(forwarder.sink, "carries_tombstones", False))
        self.consumer: Any = None
        self.paused_since: float | None = None
        self.resume_at = 0.0
        self.pause_reason = ""
        self.max_in_flight = int(config["max_in_flight"])
        self.window = MergeWindow()
        self.flights = Group()  # the forwarding greenlets; failures settle their batch

    # --- the client (RdMergeLoop drives librdkafka behind the same calls) -------------------

    def _consumer_options(self, config: dict[str, Any]) -> dict[str, Any]:
        return merge_consumer_options(config)

    def _new_consumer(self) -> Any:
        consumer = create(KafkaConsumer, **self.options)
        consumer.subscribe(topics=list(self.link_of), listener=_KeepPaused(self))
        return consumer

    as_record = staticmethod(to_record)  # a polled message as a Record

    def start(self) -> None:
        log.info(
            "merge loop: topics %s → sink, consumer group %r",
            ", ".join(f"{topic} (link {link})" for topic, link in self.link_of.items()),
            self.config["group_id"],
        )

    def _connect(self) -> bool:
        """Creates the consumer; False (logged) while the brokers are unreachable."""
        try:
            self.consumer = self._new_consumer()
        except Exception as exc:  # KafkaTimeoutError, NoBrokersAvailable and kin
            self.pause_reason = f"Kafka unreachable: {exc}"
            log.error(
                "merge loop: %s; retrying every %.1fs",
                self.pause_reason,
                self.config["retry_interval"],
            )
            return False
        self.pause_reason = ""
        return True

    def health(self) -> dict[str, Any]:
        paused = self.paused_since is not None or self.consumer is None
        return {"paused": paused, "reason": self.pause_reason or None}

    def run(self, stopping: Event) -> None:
        """Greenlet body: poll, dedupe, forward, commit until `stopping` is set."""
        poll_ms = int(self.config["poll_timeout"] * 1000)
        while self.consumer is None and not self._connect():
            if stopping.wait(self.config["retry_interval"]):
                return
        try:
            while not stopping.is_set():
                if self.paused_since is not None:
                    self._paused_step()
                    continue
                self._settle()
                if self.paused_since is not None:
                    continue
                if len(self.window) >= self.max_in_flight:
                    gevent.wait(list(self.flights), timeout=poll_ms / 1000, count=1)
                    continue
                wait = min(poll_ms, BUSY_POLL_MS) if self.window else poll_ms
                batch = self.consumer.poll(
                    timeout_ms=wait, max_records=self.config["poll_max_records"]
                )
                if batch:
                    self._launch(batch)
        finally:
            self.flights.join(timeout=STOP_WAIT)
            offsets = self.window.committable()
            if offsets and self.consumer is not None:
                self._commit_offsets(offsets)

    def _paused_step(self) -> None:
        stray = self.consumer.poll(timeout_ms=PAUSED_POLL_MS)  # stays in the group
        if stray:  # from partitions that arrived unpaused: read again after resuming
            self._rewind(stray)
            self.consumer.pause(*self.consumer.assignment())
            log.info(
                "merge loop: %d record(s) polled while paused, rewound to read again",
                sum(len(messages) for messages in stray.values()),
            )
        if time.monotonic() >= self.resume_at:
            self._try_resume()

    def _launch(self, batch: dict[Any, list[Any]]) -> None:
        """Forwards a polled batch in a greenlet of its own (the window bounds how many)."""
        first = {tp: messages[0].offset for tp, messages in batch.items()}
        end = {tp: messages[-1].offset + 1 for tp, messages in batch.items()}
        per_link = self.items(batch)
        flight = self.window.open(first, end)

        def forward() -> None:
            try:
                self.forward(per_link)
            except BaseException as exc:  # settled as failed: run() rewinds, then pauses or raises
                self.window.settle(flight, exc)
                return
            self.window.settle(flight)

        self.flights.spawn(forward)

    def _settle(self) -> None:
        """Commits what the forwarded batches allow; after a failure, waits for every batch in
        flight, reads their partitions again from their first offsets and pauses."""
        offsets = self.window.committable()
        if offsets:
            self._commit_offsets(offsets)
        error = self.window.failure()
        if error is None:
            return
        self.flights.join()  # each forward ends within the sink's and Redis's timeouts
        for tp, offset in self.window.rewind_points().items():
            self._seek(tp, offset)
        if not isinstance(error, (RedisUnavailable, SinkFailed, StillPending)):
            raise error
        self._pause(error)

    def items(self, batch: dict[Any, list[Any]]) -> dict[str, list[Item]]:
        """A polled batch's records with their ids, per link (records without an id counted)."""
        per_link: dict[str, list[Item]] = {}
        for tp, messages in batch.items():
            link = self.link_of[tp.topic]
            self.metrics.merge_records.labels(link).inc(len(messages))
            for message in messages:
                record = self.as_record(message)
                basis = identity_basis(record)
                if not self.keep_null_values:
                    record = basis
                try:
                    ident = extract_id(self.id_spec, basis)
                except InvalidRecord as exc:
                    self.metrics.records_invalid.labels(link).inc()
                    self.stats.add(link, "invalid")
                    log.error(
                        "link %s: %s[%d]@%d has no id (id_from %s: %s): not forwarded",
                        link,
                        tp.topic,
                        tp.partition,
                        message.offset,
                        self.id_spec,
                        exc,
                    )
                    continue
                per_link.setdefault(link, []).append(Item(ident, fingerprint(basis), record))
        return per_link

    def forward(self, per_link: dict[str, list[Item]]) -> None:
        """Each link's records of a batch in a greenlet of their own, all at once: a copy of a
        record the other link's greenlet is claiming attaches to that claim (held.py) instead of
        claiming in Redis too. Returns once every link's forward ended; raises the first error."""
        for link, items in per_link.items():
            self.metrics.records_received.labels(link).inc(len(items))
        jobs = [gevent.spawn(self._forward_link, link, items) for link, items in per_link.items()]
        try:
            gevent.joinall(jobs)
        except BaseException:  # killed (a stop): its links still settle their claims first
            gevent.joinall(jobs)
            raise
        for job in jobs:
            if job.value is not None:
                raise job.value

    def _forward_link(self, link: str, items: list[Item]) -> BaseException | None:
        try:
            self.forwarder.forward(link, items)
        except BaseException as exc:  # re-raised by forward(), in the batch's greenlet
            return exc
        return None

    def process(self, batch: dict[Any, list[Any]]) -> None:
        """One batch at once: forwarded, then its offsets committed."""
        self.forward(self.items(batch))
        self._commit(batch)

    def _commit(self, batch: dict[Any, list[Any]]) -> None:
        self._commit_offsets({tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})

    def _commit_offsets(self, offsets: dict[Any, int]) -> None:
        try:
            self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
            self.metrics.merge_commits.inc()
        except Exception as exc:  # a rebalance: the new owner re-reads them as duplicates
            log.warning(
                "merge loop: offset commit failed (%r); records re-read are deduplicated", exc
            )

    def _rewind(self, batch: dict[Any, list[Any]]) -> None:
        for tp, messages in batch.items():
            self._seek(tp, messages[0].offset)

    def _seek(self, tp: Any, offset: int) -> None:
        try:
            self.consumer.seek(tp, offset)
        except Exception as exc:  # partition revoked meanwhile: its new owner re-reads it
            log.info("merge loop: cannot rewind %s (%r)", tp, exc)

    def _pause(self, exc: Exception) -> None:
        self.consumer.pause(*self.consumer.assignment())
        self.paused_since = time.monotonic()
        self.resume_at = self.paused_since + self.config["retry_interval"]
        self.pause_reason = f"{type(exc).__name__}: {exc}"
        self.metrics.merge_paused.set(1)
        log.error("merge loop paused, will retry the batch: %s", self.pause_reason)

    def _try_resume(self) -> None:
        if not self.store.ping():
            self.resume_at = time.monotonic() + self.config["retry_interval"]
            return
        assert self.paused_since is not None
        log.info("merge loop resumes after %.1fs", time.monotonic() - self.paused_since)
        self.consumer.resume(*self.consumer.paused())
        self.paused_since = None
        self.pause_reason = ""
        self.metrics.merge_paused.set(0)

    def close(self, timeout: float) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False, timeout_ms=int(timeout * 1000))
            self.consumer = None


class _KeepPaused(AsyncConsumerRebalanceListener):
    """Pauses the partitions a rebalance assigns while the loop is paused (runs on kafka-python's
    IO loop: it only flips flags)."""

    def __init__(self, loop: MergeLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        log.info("merge loop: partitions revoked: %s", names(revoked))

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        paused = self.loop.paused_since is not None
        if paused and assigned:
            self.loop.consumer.pause(*assigned)
        log.info(
            "merge loop: partitions assigned%s: %s",
            " (kept paused)" if paused else "",
            names(assigned),
        )

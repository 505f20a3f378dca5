"""A consumer's partitions: their names in log lines, and those held back by a batch it cannot read.

`names(partitions)`: "topic/partition, ..." sorted, or "none" (the ingress's Kafka sources and
the dedup merge loops log assignments and revocations with it).

BlockedPartitions: a pure state machine (no I/O, no clock of its own); the consumer's owner (the
ingress's Kafka source, the dedup service's librdkafka merge loop) pauses and resumes the
consumer's partitions as it says. Rules:
  * fail(tp, error, now): tp is blocked at error.offset; it is paused until now + retry,
    then due() hands it back once to be resumed (fetched again from error.offset). Nothing at
    or after that offset is skipped: a batch that stays undecodable keeps its partition
    blocked (and the source's health degraded) until it decodes or the operator acts.
  * read(tp, offset): a record at or past the blocked offset was read, so tp is unblocked.
  * forget(tps): revoked or lost partitions are no longer ours to retry.
Other partitions are never held back by a blocked one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ddc.kafka.batches import BatchError


def names(partitions: Iterable[Any]) -> str:
    """The partitions as "topic/partition, ..." (sorted), or "none"."""
    return ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)) or "none"


class BlockedPartitions:
    def __init__(self, retry: float) -> None:
        self.retry = retry
        self._errors: dict[Any, BatchError] = {}
        self._resume_at: dict[Any, float] = {}  # paused partitions only

    def __bool__(self) -> bool:
        return bool(self._errors)

    def fail(self, tp: Any, error: BatchError, now: float) -> None:
        self._errors[tp] = error
        self._resume_at[tp] = now + self.retry

    def due(self, now: float) -> list[Any]:
        """Paused partitions whose retry time has come (each returned once per fail())."""
        ready = [tp for tp, at in self._resume_at.items() if at <= now]
        for tp in ready:
            del self._resume_at[tp]
        return ready

    def read(self, tp: Any, offset: int) -> None:
        error = self._errors.get(tp)
        if error is not None and offset >= error.offset:
            del self._errors[tp]
            self._resume_at.pop(tp, None)

    def forget(self, partitions: Iterable[Any]) -> None:
        for tp in partitions:
            self._errors.pop(tp, None)
            self._resume_at.pop(tp, None)

    def paused(self, tp: Any) -> bool:
        """Whether tp waits for its retry (what was fetched of it meanwhile is not taken)."""
        return tp in self._resume_at

    def error(self, tp: Any) -> BatchError | None:
        return self._errors.get(tp)

    def errors(self) -> list[BatchError]:
        return sorted(self._errors.values(), key=lambda e: (e.topic, e.partition))

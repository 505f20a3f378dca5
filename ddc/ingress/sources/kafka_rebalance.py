"""The Kafka source's kafka-python rebalance listener (ddc.ingress.sources.kafka).

It runs on kafka-python's IO loop, so it must not block: a revocation commits what was acked
(commit_async, awaited) and forgets the partitions; an assignment starts a new epoch per
partition; lost partitions (membership expired) are forgotten without a commit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ddc.kafka.clients import AsyncConsumerRebalanceListener
from ddc.kafka.partitions import names

if TYPE_CHECKING:
    from ddc.ingress.sources.kafka import KafkaSource

log = logging.getLogger("ddc.ingress.sources.kafka")  # the source's own log lines


class Rebalance(AsyncConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        source = self.source
        due = source._due(revoked)
        if due:
            try:
                await source.consumer.commit_async(offsets=due)
                source._committed(due)
            except Exception as exc:
                log.warning("commit on revocation failed (records will be read again): %r", exc)
        source._forget(revoked)
        log.info("partitions revoked: %s", names(revoked))

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        for tp in assigned:
            self.source._assigned(tp)
        log.info("partitions assigned: %s", names(assigned))

    async def on_partitions_lost(self, lost: set[Any]) -> None:
        self.source._forget(lost)
        log.warning("partitions lost (group membership expired): %s", names(lost))

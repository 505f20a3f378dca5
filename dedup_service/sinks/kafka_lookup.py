"""Which records a Kafka target already holds, by their `ddc-dedup-id` header.

After a crash between forwarding and committing, a claim comes back as REFORWARD: the record may
or may not have reached the topic. The forwarder asks the sink, and the librdkafka sink reads its
topic here: every partition from the first record stamped at or after `since_ms` (the earlier
claim's time, less SKEW_MS for the broker's clock) up to its end as the read finds it (librdkafka's
partition EOF), and collects the wanted ids found in the header. Whatever that earlier holder produced was appended
before its claim expired, so before this read began. A group-less consumer (assign, nothing
committed) under gevent: the calls that wait for the broker run off the hub.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

import gevent

from ddc.kafka.rd_clients import off_hub
from ddc.kafka.rd_options import module
from dedup_service.keys import IDEMPOTENCY_HEADER

log = logging.getLogger(__name__)
SKEW_MS = 5000  # how far the broker's timestamps may lag the claim's clock
BATCH = 2000
IDLE_WAIT = 0.005
PARTITION_EOF = -191  # librdkafka's _PARTITION_EOF
# librdkafka consumer properties a producer's configuration shares (connection and security)
SHARED_PREFIXES = ("security.", "sasl.", "ssl.", "client.", "socket.", "broker.", "api.version")


def consumer_config(producer_config: dict[str, Any]) -> dict[str, Any]:
    """A group-less consumer's configuration from the sink's producer configuration."""
    shared = {
        name: value
        for name, value in producer_config.items()
        if name == "bootstrap.servers" or name.startswith(SHARED_PREFIXES)
    }
    return {
        **shared,
        "group.id": "ddc-dedup-lookup",  # required by the client; nothing joins or commits
        "enable.auto.commit": False,
        "enable.partition.eof": True,  # where a partition's read ends
    }


def ids_in_topic(
    config: dict[str, Any], topic: str, wanted: Collection[str], since_ms: int, timeout: float
) -> set[str]:
    """The ids of `wanted` found in `topic`'s records appended since `since_ms` - SKEW_MS.
    TimeoutError when the read does not finish within `timeout` seconds."""
    kafka = module()
    deadline = time.monotonic() + timeout
    consumer = kafka.Consumer(config)
    try:
        metadata = off_hub(lambda: consumer.list_topics(topic, timeout=timeout), timeout=timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return set()
        asked = [
            kafka.TopicPartition(topic, partition, max(0, since_ms - SKEW_MS))
            for partition in sorted(described.partitions)
        ]
        starts = off_hub(
            lambda: consumer.offsets_for_times(asked, timeout=timeout), timeout=timeout
        )
        assigned = [tp for tp in starts if tp.offset >= 0]  # -1: nothing since then
        if not assigned:
            return set()
        consumer.assign(assigned)
        return _read(consumer, {tp.partition for tp in assigned}, set(wanted), deadline)
    finally:
        off_hub(consumer.close, timeout=10)


def _read(consumer: Any, unread: set[int], wanted: set[str], deadline: float) -> set[str]:
    """Reads until every partition reported its end (librdkafka's partition EOF, from the high
    watermark its fetch saw)."""
    found: set[str] = set()
    scanned = 0
    while unread:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{scanned} records read, {len(unread)} partition(s) unfinished")
        messages = consumer.consume(BATCH, timeout=0)
        if not messages:
            gevent.sleep(IDLE_WAIT)
            continue
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == PARTITION_EOF:
                    unread.discard(message.partition())
                continue
            scanned += 1
            for name, value in message.headers() or ():
                if name == IDEMPOTENCY_HEADER and value is not None:
                    ident = value.decode("utf-8", "replace")
                    if ident in wanted:
                        found.add(ident)
        gevent.sleep(0)
    log.info(
        "looked for %d id(s) in %d record(s) of the target: %d found",
        len(wanted),
        scanned,
        len(found),
    )
    return found

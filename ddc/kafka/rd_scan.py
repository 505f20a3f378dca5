"""Reading a topic back with librdkafka: which of some values a header carries in the records
appended since a time.

The dedup service's librdkafka Kafka sink asks this after a crash between forwarding and
committing (a REFORWARD claim): did the record reach the topic? Every partition is read from the
first record stamped at or after `since_ms` (offsets_for_times) up to its end as the read finds
it (librdkafka's partition EOF: brokers such as Tansu answer ListOffsets imprecisely, so the
high watermark is not asked) or, given `until_ms`, up to its first record stamped later (a topic
written meanwhile is not chased: after a crash the sink's own topic is, and a read that had to
catch up with it timed out), and the wanted values found in the header are collected. A
group-less consumer (assign, nothing committed) under gevent: the calls that wait for the broker
run off the hub (rd_clients.off_hub), consume() never waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

import gevent

from ddc.kafka.rd_clients import off_hub
from ddc.kafka.rd_options import module

log = logging.getLogger(__name__)
BATCH = 2000
IDLE_WAIT = 0.005
# librdkafka consumer properties a producer's configuration shares (connection and security)
SHARED_PREFIXES = ("security.", "sasl.", "ssl.", "client.", "socket.", "broker.", "api.version")


def scan_config(producer_config: dict[str, Any]) -> dict[str, Any]:
    """A group-less consumer's configuration from a producer's (its brokers and security)."""
    shared = {
        name: value
        for name, value in producer_config.items()
        if name == "bootstrap.servers" or name.startswith(SHARED_PREFIXES)
    }
    return {
        **shared,
        "group.id": "ddc-scan",  # required by the client; nothing joins or commits
        "enable.auto.commit": False,
        "enable.partition.eof": True,  # where a partition's read ends
    }


def header_values_since(
    config: dict[str, Any],
    topic: str,
    header: str,
    wanted: Collection[str],
    since_ms: int,
    timeout: float,
    until_ms: int | None = None,
) -> set[str]:
    """The values of `wanted` that header `header` carries (UTF-8) in `topic`'s records stamped
    since `since_ms` (and, per partition, before its first record stamped after `until_ms`).
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
            kafka.TopicPartition(topic, partition, max(0, since_ms))
            for partition in sorted(described.partitions)
        ]
        starts = off_hub(
            lambda: consumer.offsets_for_times(asked, timeout=timeout), timeout=timeout
        )
        assigned = [tp for tp in starts if tp.offset >= 0]  # -1: nothing since then
        if not assigned:
            return set()
        consumer.assign(assigned)
        unread = {tp.partition for tp in assigned}
        eof = kafka.KafkaError._PARTITION_EOF
        found, scanned = _read(consumer, unread, header, set(wanted), deadline, eof, until_ms)
        log.info(
            "looked for %d value(s) of header %s in %d record(s) of %s: %d found",
            len(wanted),
            header,
            scanned,
            topic,
            len(found),
        )
        return found
    finally:
        off_hub(consumer.close, timeout=10)


def _read(
    consumer: Any,
    unread: set[int],
    header: str,
    wanted: set[str],
    deadline: float,
    eof: int,
    until_ms: int | None = None,
) -> tuple[set[str], int]:
    """Reads until every partition reported its end (librdkafka's partition EOF, from the high
    watermark its fetch saw) or a record stamped after `until_ms`."""
    last = until_ms if until_ms is not None else float("inf")
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
                if error.code() == eof:
                    unread.discard(message.partition())
                continue
            if message.timestamp()[1] > last:
                unread.discard(message.partition())  # appended after the read began
                continue
            scanned += 1
            for name, value in message.headers() or ():
                if name == header and value is not None:
                    text = value.decode("utf-8", "replace")
                    if text in wanted:
                        found.add(text)
        gevent.sleep(0)
    return found, scanned

"""The kafka-python version check, and every use of a kafka-python private name.

The private names were read in kafka-python 3.0.12. Inside TESTED_RANGE they are used; outside
it (checked once, when the first Kafka source, sink or merge loop is created) every function
here falls back to kafka-python's public API, after one WARNING naming the version.

Private names used (here and in gevent_adapter):
  Future._add_cb_eb            one lock round per delivery callback instead of two
  KafkaProducer._sender        .force_close() after a close that timed out; .wakeup coalesced
  KafkaConsumer._coordinator   .coordinator_unknown(): the broker is down though poll() is quiet
  KafkaConsumer._fetcher._next_partition_records   the partition whose batch poll() failed on
  kafka.record.*_records.*_decode   wrapped to name the codec (ddc.kafka.batches.install_guard)
  kafka.future.threading, kafka.producer.record_accumulator.threading   native locks
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import kafka

from ddc.kafka import batches

log = logging.getLogger(__name__)

TESTED_RANGE = ((3, 0), (3, 1))  # kafka-python >= 3.0, < 3.1
TESTED_TEXT = ">=3.0,<3.1"

_usable: bool | None = None  # None until check_version() ran


def version_tuple(text: str) -> tuple[int, int] | None:
    """(major, minor) of a version string such as "3.0.12" or "3.1.0.dev0"; None if unparseable."""
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_version() -> bool:
    """True when the installed kafka-python is in the tested range (its internals may be used).

    Decided once per process; outside the range one WARNING says so.
    """
    global _usable
    if _usable is None:
        installed = getattr(kafka, "__version__", "unknown")
        version = version_tuple(installed)
        low, high = TESTED_RANGE
        _usable = version is not None and low <= version < high
        if _usable:
            batches.install_guard()
        else:
            log.warning(
                "kafka-python %s is outside the tested range %s: using its public API only "
                "(slower producer under gevent, broker outages seen later by the Kafka source)",
                installed,
                TESTED_TEXT,
            )
    return _usable


def on_completion(future: Any, callback: Callable[[Any], None]) -> None:
    """callback(value or exception) once a kafka-python Future completes."""
    register = getattr(future, "_add_cb_eb", None) if check_version() else None
    if register is not None:
        register(callback, callback)
    else:
        future.add_both(callback)


def close_producer(producer: Any, timeout: float) -> None:
    """Close a producer whose broker may be gone (its close() raises when a flush times out)."""
    try:
        producer.close(timeout=timeout)
    except Exception as exc:
        log.debug("producer close: %r", exc)
        sender = getattr(producer, "_sender", None) if check_version() else None
        if sender is not None:
            sender.force_close()  # abort what is left, stop the IO thread
        else:
            log.warning("Kafka producer did not close within %.1fs: %r", timeout, exc)


def coordinator_known(consumer: Any) -> bool:
    """False while the consumer knows no group coordinator (the broker is unreachable).

    Outside the tested range (or without that internal) this trusts poll() and says True.
    """
    if not check_version():
        return True
    try:
        return not consumer._coordinator.coordinator_unknown()
    except AttributeError:
        return True


def failed_fetch(consumer: Any) -> tuple[Any, int] | None:
    """(TopicPartition, offset) of the batch poll() just failed on, its records discarded.

    kafka-python keeps the failed partition's records as "next in line" and, once its
    iterator has raised, poll() would spin on them; discarding them lets the other partitions
    flow and makes the next fetch of that partition start again at `offset`. None outside the
    tested range or when kafka-python holds no such records (the caller then recreates the
    consumer).
    """
    if not check_version():
        return None
    fetcher: Any = getattr(consumer, "_fetcher", None)
    part = getattr(fetcher, "_next_partition_records", None)
    if fetcher is None or part is None or not hasattr(part, "drain"):
        return None
    tp, offset = part.topic_partition, int(part.next_fetch_offset)
    part.drain()
    fetcher._next_partition_records = None
    fetcher._next_in_line_exception_metadata = None
    return tp, offset

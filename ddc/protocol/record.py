"""The unit of data the proxies carry: a record with its optional Kafka metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[str, bytes | None]]


@dataclass(slots=True)
class Record:
    value: bytes | None  # None: a Kafka tombstone (null value); other sinks write it as empty
    key: bytes | None = None
    topic: str | None = None
    partition: int = -1
    offset: int = -1
    timestamp: int = -1  # milliseconds since the epoch, -1 when unknown
    headers: Headers = field(default_factory=list)

"""A range of offsets of one Kafka partition: what /gaps reports and `ddc replay` resends.

Pure data (no kafka-python): the egress's lost-record tracker, the replay plan, the replay's
per-range result and the range reader all extend this one type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class PartitionRange:
    """Offsets first_offset..last_offset (inclusive) of one partition of one topic."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int

    def key(self) -> tuple[str, int, int, int]:
        """(topic, partition, first_offset, last_offset): another range type's first fields."""
        return self.topic, self.partition, self.first_offset, self.last_offset

    def range_json(self) -> dict[str, Any]:
        """The range as the /gaps report and the replay summary name it."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
        }

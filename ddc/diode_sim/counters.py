"""The simulator's exact counts, kept as plain integers on the relay's hot path."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ddc.protocol.wire import type_name

DROP_REASONS = ("loss", "burst", "overflow", "send_error", "shutdown")


@dataclass
class Counters:
    received: int = 0
    received_bytes: int = 0
    forwarded: int = 0
    forwarded_bytes: int = 0
    dropped_loss: int = 0
    dropped_burst: int = 0
    dropped_overflow: int = 0
    dropped_send_error: int = 0
    dropped_shutdown: int = 0
    duplicated: int = 0
    reordered: int = 0
    forward_refused: int = 0  # port unreachable reported for --forward: nothing listens there
    # (reason, DDC message type) → drops: lets a test compare with the egress's lost packets,
    # which count only data packets.
    dropped_by: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(getattr(self, f"dropped_{reason}") for reason in DROP_REASONS)

    def drop(self, reason: str, datagram: bytes | memoryview) -> None:
        """Count one dropped datagram under `reason` (one of DROP_REASONS) and its type."""
        name = f"dropped_{reason}"
        setattr(self, name, getattr(self, name) + 1)
        key = (reason, type_name(datagram))
        self.dropped_by[key] = self.dropped_by.get(key, 0) + 1

    def values(self) -> dict[str, Any]:
        """Every count by name, with the total `dropped` and `dropped_by_type` {type: drops}."""
        values: dict[str, Any] = {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if item.name != "dropped_by"
        }
        values["dropped"] = self.dropped
        by_type: dict[str, int] = {}
        for (_, kind), count in self.dropped_by.items():
            by_type[kind] = by_type.get(kind, 0) + count
        values["dropped_by_type"] = by_type
        return values


def format_counters(counters: dict[str, Any]) -> str:
    """`name=value ...` of counters(), `dropped_by_type` as one `dropped_TYPE_packets=N` each."""
    parts = [f"{key}={value}" for key, value in counters.items() if not isinstance(value, dict)]
    by_type = counters.get("dropped_by_type") or {}
    parts += [f"dropped_{kind}_packets={count}" for kind, count in sorted(by_type.items())]
    return " ".join(parts)

"""What a spool is: a bounded FIFO of chunks between reassembly and the sink, read in order,
released only by acknowledgement.

Rules shared by the disk spool (disk.py) and the in-memory one (memory.py):

* append(payload) gives the chunk the next sequence number (1, 2, ...; never reused, also across
  restarts of a disk spool) unless it is dropped: it never blocks the receiver.
* read() hands out the unread entries in sequence order, each once per process life.
* ack(seq) says the target confirmed every entry up to seq: they are released (never read
  again, also after a restart). An ack at or below the current one changes nothing.
* `bytes` never exceeds `max_bytes` after an append. When an entry does not fit:
  when_full = "drop_newest" refuses it; "drop_oldest" drops the oldest entries not yet read
  (a disk spool frees whole segments, see disk.py) and, if that does not make room, the new
  one. Every dropped entry is counted in `dropped[reason]` (reason "drop_newest" or
  "drop_oldest", or "too_large" for an entry larger than max_bytes) and passed to `on_drop`
  (the deliverer counts its records); an ERROR line (throttled) names the cause.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ddc.egress.spool.format import Entry as Item
from ddc.logs import ThrottledLog

log = logging.getLogger(__name__)

WHEN_FULL = ("drop_newest", "drop_oldest")
DROP_LOG_INTERVAL = 5.0

Payload = bytes | bytearray | memoryview
__all__ = ["Item", "Payload", "Spool"]


class Spool:
    """The interface and the drop accounting; see the module docstring for the rules."""

    durable = False

    def __init__(self, max_bytes: int, when_full: str) -> None:
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {WHEN_FULL}, not {when_full!r}")
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.bytes = 0  # charged against max_bytes
        self.acked = 0  # highest acknowledged sequence number
        self.appended = 0  # entries appended by this process
        self.released = 0  # entries acknowledged by this process
        self.dropped: Counter[str] = Counter()  # entries, by reason
        self.on_drop: Callable[[Payload, str], None] | None = None
        self.on_append: Callable[[], None] | None = None  # wakes the reader
        self._drop_log = ThrottledLog(log, DROP_LOG_INTERVAL)

    # --- the interface --------------------------------------------------------------------------

    def append(self, payload: Payload) -> bool:
        raise NotImplementedError

    def read(self) -> Item | None:
        raise NotImplementedError

    def ack(self, seq: int) -> None:
        raise NotImplementedError

    @property
    def pending(self) -> int:
        """Entries appended and not yet acknowledged (read or not)."""
        raise NotImplementedError

    @property
    def unread(self) -> int:
        raise NotImplementedError

    def next_time_ms(self) -> int | None:
        """Append time of the next unread entry (None when there is none)."""
        raise NotImplementedError

    def flush(self) -> bool:
        """Hand buffered appends to the OS (disk spools); False when a write failed."""
        return True

    def sync(self, run: Callable[..., Any] | None = None) -> None:
        """Make what was appended and acknowledged durable (disk spools); `run(func, *args)`
        executes each blocking call."""

    def write_in(self, run: Callable[..., Any], lock: AbstractContextManager[Any]) -> None:
        """Run each write through `run(func, *args)`, one at a time under `lock` (disk spools)."""

    def close(self) -> None:
        """Sync and release files."""

    def usage(self) -> float:
        return self.bytes / self.max_bytes if self.max_bytes else 0.0

    # --- shared ---------------------------------------------------------------------------------

    def _dropped(self, payload: Payload, reason: str, why: str) -> None:
        self.dropped[reason] += 1
        if self.on_drop is not None:
            self.on_drop(payload, reason)
        self._drop_log(
            reason,
            "spool %s: dropped a chunk of %d bytes (%s): %s",
            self.describe(),
            len(payload),
            reason,
            why,
        )

    def full_reason(self) -> str:
        return (
            f"spool full ({self.bytes} of {self.max_bytes} bytes): the target takes less than "
            "the link brings, or is down"
        )

    def describe(self) -> str:
        return "in memory"

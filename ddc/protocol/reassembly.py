"""The receiver's state machine: sequence tracking, loss detection, chunk reassembly.

Rules (docs/wire-protocol.md): a seq gap counts the missing packets as lost and aborts the chunk in
progress; Data packets after a lost DataFirst are dropped until the next DataFirst; packets
behind the expected seq are late (dropped, counted); a partial chunk is never delivered; a
chunk over `max_chunk_size` or with an inconsistent `remaining` is aborted as malformed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ddc.protocol.wire import SEQ_MODULO, MessageType, seq_distance

# A HeartBeat further behind than reordering explains, or this many data packets in a row
# behind, means the sender started a new sequence and its StartUp was lost: resync.
RESYNC_BEHIND = 65536
RESYNC_LATE_RUN = 32
DATA_FIRST = MessageType.DATA_FIRST
DATA = MessageType.DATA


class ReassemblyStats:
    """Plain integer counters, cheap on the hot path; exported to Prometheus at scrape time."""

    __slots__ = ("lost", "late", "orphaned", "delivered", "aborted", "malformed", "resyncs")

    def __init__(self) -> None:
        self.resyncs = 0
        self.lost = 0
        self.late = 0
        self.orphaned = 0
        self.delivered = 0
        self.aborted: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()


class Reassembler:
    """Feeds on packets of one sender in arrival order; returns each complete chunk once."""

    def __init__(self, max_chunk_size: int, stats: ReassemblyStats | None = None) -> None:
        self.max_chunk_size = max_chunk_size
        self.stats = stats or ReassemblyStats()
        self.expected: int | None = None  # None until the first packet (or StartUp) syncs us
        self._parts: bytearray | None = None
        self._remaining = 0
        self._late_run = 0
        self._since_observe = 0  # packets accepted since the last HeartBeat/Shutdown
        # told (first missing seq, count) of every sequence gap (the egress's /gaps report)
        self.on_loss: Callable[[int, int], None] | None = None
        self.on_reset: Callable[[str], None] | None = None  # told each reset()'s reason

    @property
    def in_chunk(self) -> bool:
        return self._parts is not None

    def _abort(self, reason: str) -> bool:
        if self._parts is None:
            return False
        self._parts = None
        self.stats.aborted[reason] += 1
        return True

    def reset(self, reason: str = "startup") -> None:
        """StartUp: the sender starts again at seq 0; a partial chunk is dropped."""
        self._abort(reason)
        self.expected = 0
        if self.on_reset is not None:
            self.on_reset(reason)

    def unsync(self, reason: str) -> None:
        """Forget the sequence (new sender pinned without StartUp): resync at the next DataFirst."""
        self._abort(reason)
        self.expected = None

    def _advance(self, seq: int, kind: int) -> bool:
        """Check `seq` against the expected one; False when the packet is late (drop it)."""
        expected = self.expected
        if expected is None or seq == expected:
            self.expected = (seq + 1) % SEQ_MODULO
            self._late_run = 0
            self._since_observe += 1
            return True
        gap = seq_distance(seq, expected)
        if gap < 0:
            self._late_run += 1
            if self._late_run >= RESYNC_LATE_RUN:
                self._resync((seq + 1) % SEQ_MODULO)
                return True
            self.stats.late += 1
            return False
        self._late_run = 0
        self.stats.lost += gap
        if self.on_loss is not None:
            self.on_loss(expected, gap)
        if not self._abort("loss") and kind == DATA:
            self.stats.aborted["loss"] += 1  # the lost packets held the start of this chunk
        self.expected = (seq + 1) % SEQ_MODULO
        return True

    def observe_seq(self, seq: int) -> None:
        """HeartBeat/Shutdown carry the next seq the sender will use: detects loss at a stream's tail."""
        expected = self.expected
        since, self._since_observe = self._since_observe, 0
        if expected is None:
            self.expected = seq
            return
        gap = seq_distance(seq, expected)
        if gap > 0:
            self.stats.lost += gap
            if self.on_loss is not None:
                self.on_loss(expected, gap)
            self._abort("loss")
            self.expected = seq
        elif gap < 0:
            # behind: a HeartBeat overtaken by at most the packets that arrived since the last
            # one is merely late; further behind, the sender has started a new sequence
            behind = -gap
            if behind > since or behind > RESYNC_BEHIND:
                self._resync(seq)

    def _resync(self, seq: int) -> None:
        """The sender's sequence went backwards for good: follow it from `seq` on."""
        self._abort("resync")
        self.stats.resyncs += 1
        self._late_run = 0
        self.expected = seq

    def packet(
        self, kind: int, seq: int, payload: bytes | memoryview, remaining: int
    ) -> bytes | bytearray | memoryview | None:
        """A DataFirst or Data packet; the complete chunk when this packet finishes one.

        A one-packet chunk comes back as the payload object itself (no copy).
        """
        if not self._advance(seq, kind):
            return None
        if kind == DATA_FIRST:
            if self._parts is not None:
                self._abort("incomplete")  # a new chunk began before the last one ended
            if remaining == 0:
                if len(payload) > self.max_chunk_size:
                    self.stats.malformed["chunk_too_large"] += 1
                    return None
                self.stats.delivered += 1
                return payload
            if len(payload) > self.max_chunk_size:
                self.stats.malformed["chunk_too_large"] += 1
                return None
            self._parts = bytearray(payload)
            self._remaining = remaining
            return None
        # DATA
        parts = self._parts
        if parts is None:
            self.stats.orphaned += 1
            return None
        if remaining != self._remaining - 1:
            self.stats.malformed["remaining_mismatch"] += 1
            self._abort("malformed")
            return None
        if len(parts) + len(payload) > self.max_chunk_size:
            self.stats.malformed["chunk_too_large"] += 1
            self._abort("too_large")
            return None
        parts += payload
        self._remaining = remaining
        if remaining:
            return None
        self._parts = None
        self.stats.delivered += 1
        return parts

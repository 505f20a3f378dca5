"""The receiver's state machine: sequence tracking, loss detection, chunk reassembly.

Rules (docs/wire-protocol.md): a seq gap counts the missing packets as lost and aborts the chunk in
progress; Data packets after a lost DataFirst are dropped until the next DataFirst; packets
behind the expected seq are late (dropped, counted); a partial chunk is never delivered; a
chunk over `max_chunk_size` or with an inconsistent `remaining` is aborted as malformed.

HeartBeat/Shutdown seq (`observe_seq`, the next seq the sender will use), never trusted alone:
* ahead of the expected seq by more than MAX_HEARTBEAT_GAP: ignored and counted
  (`ignored_heartbeats`): one junk HeartBeat cannot add billions of lost packets;
* ahead by at most that: a claim of tail loss. It is confirmed (loss counted, the chunk in
  progress aborted, the sequence moved to it) by the next HeartBeat at or past it, or by
  `unsync` (Shutdown, new sender); any data packet withdraws it (data measures gaps itself);
* behind (the sender may have restarted without a StartUp reaching us): a claim of restart,
  confirmed only by a second HeartBeat also behind, at or past the first and at most
  MAX_HEARTBEAT_GAP after it; then the sequence follows it (a `resync`). A HeartBeat at or ahead
  of the expected seq withdraws it. A HeartBeat overtaken by the packets sent after it, or a
  delayed duplicate, is a single claim: it neither aborts a chunk nor counts loss.
* Late data packets never move the sequence back, however many: a replayed burst of captured
  packets is dropped as late, never delivered twice. A restarted sender is followed at once
  through its StartUp (`reset`), else after two of its HeartBeats.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ddc.protocol.wire import SEQ_MODULO, MessageType, seq_distance

# The furthest a HeartBeat may claim the sequence moved, ahead of the expected seq or between
# the two HeartBeats of a restart claim.
MAX_HEARTBEAT_GAP = 65536
DATA_FIRST = MessageType.DATA_FIRST
DATA = MessageType.DATA


class ReassemblyStats:
    """Plain integer counters, cheap on the hot path; exported to Prometheus at scrape time."""

    __slots__ = (
        "lost",
        "late",
        "orphaned",
        "delivered",
        "aborted",
        "malformed",
        "resyncs",
        "ignored_heartbeats",
    )

    def __init__(self) -> None:
        self.resyncs = 0
        self.ignored_heartbeats = 0
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
        self._ahead: int | None = None  # a HeartBeat's claim of tail loss up to this seq
        self._behind: int | None = None  # a HeartBeat's claim that the sender restarted here
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
        self._ahead = self._behind = None
        self.expected = 0
        if self.on_reset is not None:
            self.on_reset(reason)

    def unsync(self, reason: str) -> None:
        """Forget the sequence (Shutdown, new sender pinned without StartUp): resync at the next
        DataFirst. A pending claim of tail loss is confirmed first (the sender's last word)."""
        if self._ahead is not None:
            self._confirm_ahead(self._ahead)
        self._abort(reason)
        self._behind = None
        self.expected = None

    def _advance(self, seq: int, kind: int) -> bool:
        """Check `seq` against the expected one; False when the packet is late (drop it)."""
        self._ahead = None  # data measures the gap itself
        expected = self.expected
        if expected is None or seq == expected:
            self.expected = (seq + 1) % SEQ_MODULO
            return True
        gap = seq_distance(seq, expected)
        if gap < 0:
            self.stats.late += 1
            return False
        self.stats.lost += gap
        if self.on_loss is not None:
            self.on_loss(expected, gap)
        if not self._abort("loss") and kind == DATA:
            self.stats.aborted["loss"] += 1  # the lost packets held the start of this chunk
        self.expected = (seq + 1) % SEQ_MODULO
        return True

    def observe_seq(self, seq: int) -> None:
        """HeartBeat/Shutdown carry the next seq the sender will use: detects loss at a stream's
        tail and a sender restarted without StartUp, each confirmed by a second HeartBeat."""
        expected = self.expected
        if expected is None:
            self.expected = seq
            self._ahead = self._behind = None
            return
        gap = seq_distance(seq, expected)
        if gap == 0:
            self._ahead = self._behind = None
        elif gap > 0:
            self._behind = None
            if gap > MAX_HEARTBEAT_GAP:
                self.stats.ignored_heartbeats += 1
                self._ahead = None
            elif self._ahead is not None and seq_distance(seq, self._ahead) >= 0:
                self._confirm_ahead(seq)
            else:
                self._ahead = seq
        else:
            self._ahead = None
            first = self._behind
            if first is not None and 0 <= seq_distance(seq, first) <= MAX_HEARTBEAT_GAP:
                self._resync(seq)
            else:
                self._behind = seq

    def _confirm_ahead(self, seq: int) -> None:
        """A tail loss claimed twice: count it, abort the chunk in progress, follow `seq`."""
        expected = self.expected
        self._ahead = None
        if expected is None:
            return
        gap = seq_distance(seq, expected)
        if gap > 0:
            self.stats.lost += gap
            if self.on_loss is not None:
                self.on_loss(expected, gap)
            self._abort("loss")
            self.expected = seq

    def _resync(self, seq: int) -> None:
        """The sender's sequence went backwards for good: follow it from `seq` on."""
        self._abort("resync")
        self.stats.resyncs += 1
        self._ahead = self._behind = None
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

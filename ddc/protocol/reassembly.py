"""The receiver's state machine: sequence tracking, loss detection, chunk reassembly.

Rules (docs/wire-protocol.md): a seq gap counts the missing packets as lost and aborts the chunk in
progress; Data packets after a lost DataFirst are dropped until the next DataFirst; packets
behind the expected seq are late (dropped, counted); a partial chunk is never delivered; a
chunk over `max_chunk_size` or with an inconsistent `remaining` is aborted as malformed.

Restarts and replays. Without authentication a sender restarted without its StartUp reaching us
and captured packets sent again look alike (seqs behind the expected one). The rules follow the
first and never deliver the second:
* A StartUp (`reset`) starts a new session at once; everything below is forgotten.
* Resync (the sequence moves back; counted in `resyncs`): RESYNC_LATE_RUN late data packets with
  consecutive seqs (a sender's stream, not scattered duplicates), or a HeartBeat further behind
  than the seqs accounted since the previous HeartBeat (reordering cannot explain it) or than
  RESYNC_BEHIND. A late packet in one of the last LOST_MEMORY gaps counted lost (a straggler, such
  as one the FEC hold released after giving up on its gap) is only late: it never counts toward
  a run, so late packets from the FEC hold never resync.
* Never delivered twice: a digest (length, first and last DIGEST_SPAN bytes) of each of the last
  DELIVERED_MEMORY chunks of the session is kept by the chunk's first seq. After a resync, while
  the sequence is behind the furthest seq the session reached (its frontier), a complete chunk
  whose first seq and digest match a remembered one is not delivered (aborted, `replayed`).
* The frontier is kept: the chunk in progress at the resync is parked, not aborted. A data
  packet or HeartBeat at or past the frontier (other than the next expected seq) undoes the
  resync: the sequence is back at the frontier, the parked chunk continues, and only seqs past
  the frontier count as lost. So a replayed burst changes nothing: its chunks are dropped and the
  genuine stream goes on where it was. A restarted sender's stream that reaches the frontier in
  order just goes on (the parked chunk is aborted, `resync`).
* A HeartBeat further ahead than HEARTBEAT_CLAIM is a claim, not a fact (a junk or forged one
  would count billions of packets lost and push the sequence past the genuine stream): it
  counts its gap only once confirmed by the next HeartBeat at or at most HEARTBEAT_CLAIM past
  it (an idle sender repeats its seq); a data packet at or past it makes it moot (the packet's
  own gap is counted), one behind it leaves it pending; counted in `claims_refused` when a new
  unconfirmed one replaces it. Nearer HeartBeats count a stream's tail loss at once.
Limits: a replay of chunks older than DELIVERED_MEMORY, or a replayed StartUp, is delivered again
(authentication, docs/security.md, closes both); a restarted sender whose first chunk after a lost
StartUp equals (by digest) the one at the same seq in the old session loses that chunk, counted.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from zlib import crc32

from ddc.protocol.wire import SEQ_MODULO, MessageType, seq_distance

# A HeartBeat further behind than reordering explains, or this many consecutive data packets
# behind, means the sender started a new sequence and its StartUp was lost: resync.
RESYNC_BEHIND = 65536
HEARTBEAT_CLAIM = 65536  # a HeartBeat further ahead waits for confirmation (see the rules)
RESYNC_LATE_RUN = 32
LOST_MEMORY = 64  # recent gaps remembered: late packets in them are stragglers
DELIVERED_MEMORY = 65536  # chunks whose digest is remembered (two generations of half each)
DIGEST_SPAN = 128
DATA_FIRST = MessageType.DATA_FIRST
DATA = MessageType.DATA

Chunk = bytes | bytearray | memoryview


def digest(chunk: Chunk) -> int:
    """A cheap fingerprint of a chunk: its length and CRC-32 of its first and last bytes."""
    size = len(chunk)
    if size <= 2 * DIGEST_SPAN:
        return size << 32 | crc32(chunk)
    return size << 32 | crc32(chunk[-DIGEST_SPAN:], crc32(chunk[:DIGEST_SPAN]))


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
        "claims_refused",
    )

    def __init__(self) -> None:
        self.resyncs = 0
        self.claims_refused = 0  # far-ahead HeartBeats never confirmed (see the rules)
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
        self._first = 0  # the first seq of the chunk in progress
        self._late_run = 0
        self._late_next = 0  # the seq that continues the run of late packets
        self._since_observe = 0  # seqs accounted since the last HeartBeat/Shutdown
        self._lost: deque[tuple[int, int]] = deque(maxlen=LOST_MEMORY)  # (first seq, count)
        self._digests: dict[int, int] = {}  # first seq -> digest, the newer generation
        self._older: dict[int, int] = {}
        self._frontier: int | None = None  # set while behind the session's furthest seq
        self._claim: int | None = None  # a far-ahead HeartBeat's seq, not yet confirmed
        self._parked: tuple[bytearray, int, int] | None = None  # chunk in progress at the resync
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

    def _drop_chunks(self, reason: str) -> None:
        self._claim = None
        self._abort(reason)
        if self._parked is not None:
            self._parked = None
            self.stats.aborted[reason] += 1
        self._late_run = 0

    def reset(self, reason: str = "startup") -> None:
        """StartUp: the sender starts again at seq 0 in a new session; a partial chunk is dropped."""
        self._drop_chunks(reason)
        self._frontier = None
        self._lost.clear()
        self._digests = {}
        self._older = {}
        self.expected = 0
        if self.on_reset is not None:
            self.on_reset(reason)

    def unsync(self, reason: str) -> None:
        """Forget the sequence (Shutdown, new sender pinned without StartUp): resync at the next
        DataFirst. The session goes on (only a StartUp starts a new one): if that packet is
        behind the frontier, what follows is a resync (a replay after a Shutdown is dropped)."""
        self._drop_chunks(reason)
        if self._frontier is None:
            self._frontier = self.expected
        self.expected = None

    def _count_lost(self, first: int, gap: int) -> None:
        self.stats.lost += gap
        self._lost.append((first, gap))
        if self.on_loss is not None:
            self.on_loss(first, gap)

    def _advance(self, seq: int, kind: int) -> bool:
        """Check `seq` against the expected one; False when the packet is late (drop it)."""
        if self._claim is not None and seq_distance(seq, self._claim) >= 0:
            self._claim = None  # moot: this packet's own gap says what was lost
        expected = self.expected
        if seq == expected or expected is None:
            self.expected = (seq + 1) % SEQ_MODULO
            self._late_run = 0
            self._since_observe += 1
            if self._frontier is not None and seq_distance(seq, self._frontier) >= 0:
                self._reached_frontier()
            return True
        frontier = self._frontier
        if frontier is not None and seq_distance(seq, frontier) >= 0:
            self._rejoin()  # the stream from before the resync goes on
            return self._advance(seq, kind)
        gap = seq_distance(seq, expected)
        if gap < 0:
            return self._late(seq)
        self._late_run = 0
        self._since_observe += gap + 1
        self._count_lost(expected, gap)
        if not self._abort("loss") and kind == DATA:
            self.stats.aborted["loss"] += 1  # the lost packets held the start of this chunk
        self.expected = (seq + 1) % SEQ_MODULO
        return True

    def _late(self, seq: int) -> bool:
        """A data packet behind the expected seq: dropped, unless it completes a late run."""
        if self._straggler(seq):
            self._late_run = 0
        else:
            self._late_run = self._late_run + 1 if seq == self._late_next else 1
            self._late_next = (seq + 1) % SEQ_MODULO
            if self._late_run >= RESYNC_LATE_RUN and self._resync((seq + 1) % SEQ_MODULO):
                return True
        self.stats.late += 1
        return False

    def _straggler(self, seq: int) -> bool:
        """Is `seq` in one of the last gaps counted lost?"""
        for first, count in self._lost:
            if 0 <= seq_distance(seq, first) < count:
                return True
        return False

    def observe_seq(self, seq: int) -> None:
        """HeartBeat/Shutdown carry the next seq the sender will use: detects loss at a stream's tail."""
        expected = self.expected
        since, self._since_observe = self._since_observe, 0
        frontier = self._frontier
        if expected is None:
            self.expected = seq
            if frontier is not None and seq_distance(seq, frontier) >= 0:
                self._reached_frontier()
            return
        if frontier is not None and seq != expected and seq_distance(seq, frontier) >= 0:
            self._rejoin()
            expected = frontier
        gap = seq_distance(seq, expected)
        if gap > HEARTBEAT_CLAIM:
            claim = self._claim
            if claim is None or not 0 <= seq_distance(seq, claim) <= HEARTBEAT_CLAIM:
                if claim is not None:
                    self.stats.claims_refused += 1
                self._claim = seq
                return
        if gap > 0:
            self._claim = None
            self._count_lost(expected, gap)
            self._abort("loss")
            self.expected = seq
        elif gap < 0:
            # behind: a HeartBeat overtaken by at most the seqs accounted since the last one is
            # merely late; further behind, the sender has started a new sequence
            behind = -gap
            if behind > since or behind > RESYNC_BEHIND:
                self._resync(seq)

    def _resync(self, seq: int) -> bool:
        """The sender's sequence went backwards for good: follow it from `seq` on, keeping the
        frontier and the chunk in progress there (see the rules)."""
        if seq == self.expected:  # the run ended just behind the expected seq: nothing to follow
            self._late_run = 0
            return False
        if self._frontier is None and self.expected is not None:
            self._frontier = self.expected
            if self._parts is not None:
                self._parked = (self._parts, self._remaining, self._first)
                self._parts = None
        else:
            self._abort("resync")
        self._claim = None
        self.stats.resyncs += 1
        self._late_run = 0
        self.expected = seq
        return True

    def _rejoin(self) -> None:
        """Undo the resync: back at the frontier, with the chunk that was in progress there."""
        self._abort("resync")
        self.expected, self._frontier = self._frontier, None
        parked, self._parked = self._parked, None
        if parked is not None:
            self._parts, self._remaining, self._first = parked

    def _reached_frontier(self) -> None:
        """The resynced stream reached the frontier in order: it is the sender's stream now. The
        parked chunk continues if no chunk is in progress; the same chunk replayed up to here
        is not counted twice."""
        parked, self._parked = self._parked, None
        self._frontier = None
        if parked is None:
            return
        parts = self._parts
        if parts is None:
            self._parts, self._remaining, self._first = parked
        elif parked[2] != self._first or parked[0] != parts:
            self.stats.aborted["resync"] += 1

    def _remember(self, first: int, chunk: Chunk) -> bool:
        """Keeps the chunk's digest; False when it was delivered already (after a resync)."""
        value = digest(chunk)
        if self._frontier is not None:
            known = self._digests.get(first)
            if known is None:
                known = self._older.get(first)
            if known == value:
                self.stats.aborted["replayed"] += 1
                return False
        digests = self._digests
        digests[first] = value
        if len(digests) >= DELIVERED_MEMORY // 2:
            self._older, self._digests = digests, {}
        return True

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
            if len(payload) > self.max_chunk_size:
                self.stats.malformed["chunk_too_large"] += 1
                return None
            if remaining == 0:
                if not self._remember(seq, payload):
                    return None
                self.stats.delivered += 1
                return payload
            self._parts = bytearray(payload)
            self._remaining = remaining
            self._first = seq
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
        if not self._remember(self._first, parts):
            return None
        self.stats.delivered += 1
        return parts

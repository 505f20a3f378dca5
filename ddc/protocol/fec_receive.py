"""FEC on the receiving side: the group decoder plus a bounded reorder hold before reassembly.

Reassembly (v1) takes packets in seq order and treats a gap as loss at once; a packet restored
from parity arrives after the packets that followed it, so it would come too late. The hold
sits in front of the Reassembler and keeps the order:

* No gap (the normal case): a data packet goes to reassembly at once; FEC adds no latency.
* A data packet after a gap is held (not passed on) while the gap may still be repaired; a
  restored packet that fills the gap is passed on, followed by the held ones in seq order.
* The hold gives up on a gap (passes the next held packet on, and reassembly counts the gap as
  lost exactly as without FEC) as soon as no seq of the gap can be repaired any more (each one
  is before a later interleave block the decoder heard of, or in a group found unrecoverable:
  `FecDecoder.hopeless`), or FEC is not active (no parity from the sender lately: without FEC
  at the ingress nothing is held, except right after the egress starts, see
  `FecDecoder.active`), or a bound is hit: `max_held` packets or `max_held_bytes` held, or the
  oldest waiting packet has waited `max_delay` seconds (a backstop: the sender's linger sends a
  group's parity within `fec_linger_ms`, so `max_delay` must exceed it plus the path's jitter).
* A HeartBeat announcing seqs that have not arrived (loss at the tail of a burst) waits the same
  way before reassembly sees it, so packets repaired by the group's late parity are not counted
  lost; packets behind the expected seq go on at once (reassembly counts them late, and its
  resync rule keeps working); a restored packet behind it is dropped (`repaired_late`).

Integration (egress receiver), replacing the direct Reassembler calls:
  DataFirst/Data  -> fec.data(seq, datagram, now)     (the whole datagram, header included)
  Parity (type 6) -> fec.parity(datagram, now)
  HeartBeat       -> fec.heartbeat(seq, now)          (instead of reassembler.observe_seq)
  StartUp         -> fec.startup(now), then reassembler.reset(...) as before
  Shutdown        -> fec.drain(), then observe_seq / unsync as before
  new sender      -> fec.startup(now) before reassembler.unsync(...)
  a timer         -> fec.poll(time.monotonic()) at `deadline` (or every ~10 ms)
Chunks come out through `deliver`, in the same order and with the same counting as before.
"""

from __future__ import annotations

from collections.abc import Callable

from ddc.protocol.fec_decoder import FecDecoder, Restored
from ddc.protocol.reassembly import Reassembler
from ddc.protocol.wire import HEADER, HEADER_SIZE, SEQ_MODULO, seq_distance

Datagram = memoryview | bytes
Chunk = bytes | bytearray | memoryview


class FecReceiver:
    """Feeds on data, parity and HeartBeat packets in arrival order; drives the Reassembler."""

    def __init__(
        self,
        reassembler: Reassembler,
        deliver: Callable[[Chunk], None],
        max_held: int = 4096,
        max_held_bytes: int = 64 << 20,
        max_delay: float = 0.1,
        decoder: FecDecoder | None = None,
    ) -> None:
        self.reassembler = reassembler
        self.deliver = deliver
        self.max_held = max_held
        self.max_held_bytes = max_held_bytes
        self.max_delay = max_delay
        self.decoder = decoder or FecDecoder()
        self.stats = self.decoder.stats
        self._held: dict[int, tuple[Datagram, float]] = {}  # insertion order = arrival order
        self._held_bytes = 0
        self._observe: int | None = None  # a HeartBeat's seq waiting behind a gap
        self._observe_since = 0.0
        self._resyncs = reassembler.stats.resyncs
        self._scan: tuple[int, int] | None = None  # (expected, first seq not known hopeless)

    @property
    def holding(self) -> int:
        return len(self._held)

    @property
    def deadline(self) -> float | None:
        """When `poll` must run to enforce `max_delay`; None while nothing waits."""
        oldest = self._oldest()
        return None if oldest is None else oldest + self.max_delay

    def data(self, seq: int, datagram: Datagram, now: float) -> None:
        reassembler = self.reassembler
        if reassembler.stats.resyncs != self._resyncs:  # the sender started over
            self._resyncs = reassembler.stats.resyncs
            self.startup(now)
        restored = self.decoder.data(seq, datagram, now)
        if seq == reassembler.expected and not self._held and self._observe is None:
            self._release(datagram)  # the hot path: in order, nothing waiting
            if not restored:
                return
        else:
            self._offer(seq, datagram, now, False)
        self._after_decoder(restored, now)

    def parity(self, datagram: Datagram, now: float) -> None:
        self._after_decoder(self.decoder.parity(datagram, now), now)

    def _after_decoder(self, restored: Restored, now: float) -> None:
        """After a datagram: offer what the decoder restored, then settle what is held."""
        if restored:
            self._offer_restored(restored, now)
        if self._held or self._observe is not None:
            self._settle(now)

    def heartbeat(self, seq: int, now: float) -> None:
        """A HeartBeat's seq (the next one the sender will use)."""
        if self._held or self._observe is not None:
            if self._observe is None:
                self._observe_since = now
            self._observe = seq
            self._settle(now)
            return
        expected = self.reassembler.expected
        decoder = self.decoder
        if (
            decoder.active
            and expected is not None
            and 0 < seq_distance(seq, expected) <= decoder.retain
        ):
            self._observe = seq
            self._observe_since = now
            self._settle(now)
            return
        self.reassembler.observe_seq(seq)

    def poll(self, now: float) -> None:
        """Time bounds: gaps waited for too long, groups too old to complete."""
        self.decoder.expire(now)
        if self._held or self._observe is not None:
            self._settle(now)

    def drain(self) -> None:
        """Passes on everything held, giving up on every gap (Shutdown, or before a reset)."""
        while self._held or self._observe is not None:
            self._give_up()

    def startup(self, now: float) -> None:
        """A new sequence: pass on what is held, forget the old groups."""
        self.drain()
        self.decoder.reset(now)

    def _offer_restored(self, restored: Restored, now: float) -> None:
        for seq, datagram in restored:
            self._offer(seq, datagram, now, True)

    def _offer(self, seq: int, datagram: Datagram, now: float, repaired: bool) -> None:
        expected = self.reassembler.expected
        if expected is None:  # not in sync: reassembly syncs on this packet
            self._release(datagram)
            return
        distance = seq_distance(seq, expected)
        if distance < 0:
            if repaired:
                self.stats.repaired_late += 1
            else:
                self._release(datagram)  # late: reassembly counts it (and may resync)
            return
        if distance == 0:
            self._release(datagram)
            self._drain_in_order()
            return
        if not self._held and not self.decoder.active:
            self._release(datagram)  # no FEC: reassembly counts the gap now
            return
        if distance > self.decoder.retain:  # a jump no FEC group spans: stop waiting
            self.drain()
            self._release(datagram)
            return
        if seq in self._held:
            self.stats.duplicate_data += 1
            return
        self._held[seq] = (datagram, now)
        self._held_bytes += len(datagram)
        self.stats.held += 1

    def _release(self, datagram: Datagram) -> None:
        kind, seq, length, remaining = HEADER.unpack_from(datagram)
        payload = memoryview(datagram)[HEADER_SIZE : HEADER_SIZE + length]
        chunk = self.reassembler.packet(kind, seq, payload, remaining)
        if chunk is not None:
            self.deliver(chunk)

    def _drain_in_order(self) -> None:
        held = self._held
        reassembler = self.reassembler
        while held:
            expected = reassembler.expected
            entry = None if expected is None else held.pop(expected, None)
            if entry is None:
                break
            self._held_bytes -= len(entry[0])
            self._release(entry[0])
        observe = self._observe
        if observe is not None and not held:
            expected = reassembler.expected
            if expected is None or seq_distance(observe, expected) <= 0:
                self._observe = None
                reassembler.observe_seq(observe)

    def _oldest(self) -> float | None:
        oldest = next(iter(self._held.values()))[1] if self._held else None
        if self._observe is not None and (oldest is None or self._observe_since < oldest):
            oldest = self._observe_since
        return oldest

    def _settle(self, now: float) -> None:
        while (self._held or self._observe is not None) and self._hopeless(now):
            self._give_up()

    def _hopeless(self, now: float) -> bool:
        """True when the first gap cannot (or may no longer) be waited for."""
        decoder = self.decoder
        expected = self.reassembler.expected
        if expected is None or not decoder.active:
            return True
        if len(self._held) > self.max_held or self._held_bytes > self.max_held_bytes:
            return True
        oldest = self._oldest()
        if oldest is not None and now - oldest >= self.max_delay:
            return True
        return self._gap_hopeless(expected)

    def _gap_hopeless(self, expected: int) -> bool:
        """True when every missing seq of the first gap can no longer be restored: only then
        may reassembly see the gap (a later seq of it may still be repaired)."""
        decoder = self.decoder
        held = self._held
        seq = expected
        if self._scan is not None and self._scan[0] == expected:
            seq = self._scan[1]  # seqs found hopeless stay hopeless
        for _ in range(decoder.retain):
            if seq in held or seq == self._observe:
                return True
            if not decoder.hopeless(seq):
                self._scan = (expected, seq)
                return False
            seq = (seq + 1) % SEQ_MODULO
        return True

    def _first_held(self, expected: int | None) -> int:
        """The held seq closest after `expected` (held is not empty)."""
        held = self._held
        if expected is not None:
            seq = expected
            for _ in range(self.decoder.retain + 1):
                if seq in held:
                    return seq
                seq = (seq + 1) % SEQ_MODULO
        base = next(iter(held)) if expected is None else expected
        return min(held, key=lambda seq: seq_distance(seq, base))

    def _give_up(self) -> None:
        """Passes on the first held packet after the gap (or the waiting HeartBeat)."""
        self.stats.gaps_given_up += 1
        held = self._held
        reassembler = self.reassembler
        if not held:
            observe, self._observe = self._observe, None
            if observe is not None:
                reassembler.observe_seq(observe)
            return
        datagram, _ = held.pop(self._first_held(reassembler.expected))
        self._held_bytes -= len(datagram)
        self._release(datagram)
        self._drain_in_order()

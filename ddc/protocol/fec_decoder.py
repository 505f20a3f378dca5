"""The receiver's FEC group decoder: restores lost data packets from parity (format: fec.py).

Rules:
* Data datagrams are remembered by seq (they pass on at once; this only keeps a reference) for
  as long as a group may still need them: the last `retain` data packets received (at least 4
  groups' span as learned from parity headers; up to EVICT_BATCH more are let in before the
  oldest are forgotten together) and at most `max_retained_bytes`.
* A parity packet names its group (first seq, K, M, stride); the group is created by its first
  parity packet. When the group's K data packets are all there, it is complete. When data
  packets are missing and data + parity packets held reach K, the missing ones are restored
  (returned in seq order) and counted in `recovered`.
* A group is unrecoverable (counted, with its missing data packets) as soon as it cannot reach K:
  even its parity indexes still to come would not be enough, or a parity packet of a later
  interleave block arrived (a block's parity is all sent before the next block: fec.py).
* `settled_before`: the first seq of the newest block heard of. A missing data packet before it
  can no longer be restored, nor can one in a group found unrecoverable (`hopeless`); the
  reorder hold (fec_receive) stops waiting for it. This assumes the link keeps packet order, as
  a diode does; a reordered parity packet only costs its repair.
* `active`: a parity packet arrived within the last `active_span` data packets (a fresh decoder
  presumes FEC on, `assume_active`, so the first group can be repaired too: then a gap among the
  first `active_span` data packets from a sender without FEC waits at most the hold's
  `max_delay`). Later, without FEC at the sender, nothing is held back.
* Bounded memory: groups are forgotten `retain` seqs behind the newest data packet, after
  `group_max_age` seconds (`expire`), or beyond `max_groups`; a forgotten group still missing data
  counts as unrecoverable (`expired_groups`). A group's loss (data + parity packets that never
  arrived) is recorded when it is forgotten, for `worst_loss` and `repair_margin` over the last
  minute, and its parity packets that never arrived are counted (`parity_lost`; a group whose M
  parity packets were all lost is never heard of, so this counts a little short).
* `seen`: (K, M, interleave) of the sender's groups since the last reset, K the largest seen (a
  group the linger closed early has fewer data packets): what /healthz shows.
"""

from __future__ import annotations

from collections import Counter, deque

from ddc.protocol.fec import (
    PARITY,
    PARITY_DATAGRAM_HEADER,
    PARITY_OVERHEAD,
    SCHEME_ZFEC,
    ParityInfo,
    decode_group,
    pad,
    parse_parity,
    unpad,
)
from ddc.protocol.fec_losses import LossWindow
from ddc.protocol.wire import HEADER_SIZE, SEQ_MODULO, seq_distance

Restored = list[tuple[int, bytes]]
NOTHING: Restored = []  # returned (never mutated) when nothing was restored
MIN_RETAIN = 1024
MAX_RETAIN = 1 << 16
EVICT_BATCH = 256  # data packets forgotten at once past `retain` (one call, not one per packet)
PENDING, COMPLETE, RECOVERED, LOST = 0, 1, 2, 3
HALF = SEQ_MODULO // 2


class FecStats:
    """Plain integer counters, exported at scrape time."""

    __slots__ = (
        "groups",
        "parity",
        "recovered",
        "unrecoverable_groups",
        "unrecoverable_packets",
        "expired_groups",
        "duplicate_parity",
        "malformed",
        "held",
        "gaps_given_up",
        "repaired_late",
        "duplicate_data",
        "parity_lost",
    )

    def __init__(self) -> None:
        self.groups = 0  # groups heard of (by at least one parity packet)
        self.parity = 0  # parity packets accepted
        self.recovered = 0  # data packets restored
        self.unrecoverable_groups = 0
        self.unrecoverable_packets = 0  # data packets missing in unrecoverable groups
        self.expired_groups = 0  # of unrecoverable_groups: forgotten while still waiting
        self.duplicate_parity = 0
        self.malformed: Counter[str] = Counter()
        # the reorder hold (fec_receive)
        self.held = 0  # data packets that waited behind a gap
        self.gaps_given_up = 0  # gaps passed on unrepaired (reassembly counts them lost)
        self.repaired_late = 0  # restored after the hold had given up on them (dropped)
        self.duplicate_data = 0  # a second copy of a held packet (dropped)
        self.parity_lost = 0  # parity packets of forgotten groups that never arrived


class _Group:
    __slots__ = ("info", "members", "parity", "indexes", "top_index", "missing", "state", "born")

    def __init__(self, info: ParityInfo, now: float) -> None:
        self.info = info
        self.members = info.members()
        self.parity: dict[int, memoryview] = {}
        self.indexes: set[int] = set()
        self.top_index = -1
        self.missing = info.k  # data packets missing when the group was settled
        self.state = PENDING
        self.born = now


class FecDecoder:
    """Feeds on received data and parity datagrams (arrival order); returns restored ones."""

    def __init__(
        self,
        max_retained_bytes: int = 64 << 20,
        max_groups: int = 4096,
        group_max_age: float = 5.0,
        stats: FecStats | None = None,
        assume_active: bool = True,
    ) -> None:
        self.max_retained_bytes = max_retained_bytes
        self.max_groups = max_groups
        self.group_max_age = group_max_age
        self.stats = stats or FecStats()
        self.retain = MIN_RETAIN
        self.active_span = MIN_RETAIN
        self.settled_before: int | None = None
        self.seen: tuple[int, int, int] | None = None  # (largest K, M, interleave) since reset
        self._data_since_parity: int | None = 0 if assume_active else None  # None: no parity
        self._recent: dict[int, memoryview | bytes] = {}
        self._order: deque[int] = deque()
        self._recent_bytes = 0
        self._newest: int | None = None
        self._groups: dict[int, _Group] = {}
        self._pending: dict[int, _Group] = {}
        self._lost: deque[_Group] = deque(maxlen=16)  # the latest unrecoverable groups
        self._losses = LossWindow()

    @property
    def active(self) -> bool:
        since = self._data_since_parity
        return since is not None and since <= self.active_span

    def reset(self, now: float) -> None:
        """A new sequence (StartUp or resync): forget all groups and data, keep the counters."""
        for group in list(self._groups.values()):
            self._forget(group, now)
        self._recent.clear()
        self._order.clear()
        self._recent_bytes = 0
        self._newest = None
        self.settled_before = None
        self.seen = None
        self._lost.clear()

    def data(self, seq: int, datagram: memoryview | bytes, now: float) -> Restored:
        """A received data datagram; restored packets if it completes a pending group."""
        since = self._data_since_parity
        if since is not None:
            self._data_since_parity = since + 1
        recent = self._recent
        if seq in recent:
            return NOTHING
        recent[seq] = datagram
        order = self._order
        order.append(seq)
        self._recent_bytes += len(datagram)
        newest = self._newest
        if newest is None or (seq - newest) % SEQ_MODULO < HALF:
            self._newest = seq
        if len(order) > self.retain + EVICT_BATCH or self._recent_bytes > self.max_retained_bytes:
            self._evict_data()
        if not self._pending:
            return NOTHING
        for group in list(self._pending.values()):
            offset = seq_distance(seq, group.info.first)
            if 0 <= offset < len(group.members) * group.info.stride:
                if offset % group.info.stride == 0:
                    return self._try(group)
        return NOTHING

    def parity(self, datagram: memoryview | bytes, now: float) -> Restored:
        """A parity datagram; the data packets it lets us restore, in seq order."""
        if self._settled_group_parity(datagram):
            return NOTHING
        info = parse_parity(datagram)
        if isinstance(info, str):
            self.stats.malformed[info] += 1
            return NOTHING
        group = self._groups.get(info.first)
        if group is None:
            self._evict_groups(now)
            group = self._new_group(info, now)
            seen = self.seen
            if seen is None or seen[1:] != (info.m, info.stride) or seen[0] < info.k:
                k = (
                    info.k
                    if seen is None or seen[1:] != (info.m, info.stride)
                    else max(seen[0], info.k)
                )
                self.seen = (k, info.m, info.stride)
        else:
            known = group.info
            shape = (info.k, info.m, info.stride, info.slot, len(info.block))
            if (known.k, known.m, known.stride, known.slot, len(known.block)) != shape:
                self.stats.malformed["parity_mismatch"] += 1
                return NOTHING
            if info.index in group.indexes:
                self.stats.duplicate_parity += 1
                return NOTHING
        self.stats.parity += 1
        self._data_since_parity = 0
        group.indexes.add(info.index)
        group.top_index = max(group.top_index, info.index)
        self._settle_before(info.block_first)
        if group.state != PENDING:
            return NOTHING
        group.parity[info.index] = info.block
        return self._try(group)

    def _settled_group_parity(self, datagram: memoryview | bytes) -> bool:
        """The hot path: another parity packet of a group already complete, recovered or lost
        (every one after the first when nothing was lost) is checked against the group and
        counted, nothing more. False: not such a packet (`parity` then does the full work)."""
        if len(datagram) < PARITY_OVERHEAD:
            return False
        kind, first, length, _, scheme, k, m, index, stride, slot = (
            PARITY_DATAGRAM_HEADER.unpack_from(datagram)
        )
        group = self._groups.get(first)
        if group is None or group.state == PENDING:
            return False
        known = group.info
        if (
            scheme != SCHEME_ZFEC
            or (k, m, stride, slot) != (known.k, known.m, known.stride, known.slot)
            or len(datagram) - PARITY_OVERHEAD != len(known.block)
            or length != len(datagram) - HEADER_SIZE
            or kind != PARITY
            or index >= m
            or index in group.indexes
        ):
            return False  # malformed, mismatched or a duplicate: `parity` counts it
        self.stats.parity += 1
        self._data_since_parity = 0
        group.indexes.add(index)
        if index > group.top_index:
            group.top_index = index
        return True

    def _new_group(self, info: ParityInfo, now: float) -> _Group:
        group = _Group(info, now)
        self._groups[info.first] = group
        self._pending[info.first] = group
        self.stats.groups += 1
        span = (info.k - 1) * info.stride + 1
        self.retain = min(MAX_RETAIN, max(self.retain, 4 * span))
        self.active_span = self.retain
        while len(self._groups) > self.max_groups:
            self._forget(next(iter(self._groups.values())), now)
        return group

    def _settle_before(self, block_first: int) -> None:
        """A parity packet of the block starting at `block_first`: every earlier block has sent
        all its parity, so its groups still pending are unrecoverable."""
        settled = self.settled_before
        if settled is not None and seq_distance(block_first, settled) <= 0:
            return
        self.settled_before = block_first
        for group in list(self._pending.values()):
            if seq_distance(group.info.block_first, block_first) < 0:
                self._lose(group)

    def hopeless(self, seq: int) -> bool:
        """True when a missing data packet can no longer be restored."""
        settled = self.settled_before
        if settled is not None and seq_distance(seq, settled) < 0:
            return True
        for group in self._lost:
            offset = seq_distance(seq, group.info.first)
            if 0 <= offset <= seq_distance(group.members[-1], group.info.first):
                if offset % group.info.stride == 0:
                    return True
        return False

    def _try(self, group: _Group) -> Restored:
        info = group.info
        recent = self._recent
        if all(map(recent.__contains__, group.members)):
            group.missing = 0
            self._settle(group, COMPLETE)
            return NOTHING
        present = [(i, recent[seq]) for i, seq in enumerate(group.members) if seq in recent]
        group.missing = info.k - len(present)
        if len(present) + len(group.parity) < info.k:
            if len(present) + len(group.parity) + (info.m - 1 - group.top_index) < info.k:
                self._lose(group)
            return NOTHING
        size = len(info.block)
        blocks: list[bytes | memoryview] = [pad(d, size) for _, d in present]
        numbers = [i for i, _ in present]
        for index, block in group.parity.items():
            if len(blocks) == info.k:
                break
            blocks.append(block)
            numbers.append(info.k + index)
        restored_blocks = decode_group(info.k, info.m, blocks, numbers)
        have = set(numbers)
        restored: Restored = []
        for i, seq in enumerate(group.members):
            if i in have:
                continue
            datagram = unpad(restored_blocks[i], seq)
            if datagram is None:
                self.stats.malformed["parity_bad_repair"] += 1
                self._lose(group)
                return NOTHING
            restored.append((seq, datagram))
        self.stats.recovered += len(restored)
        self._settle(group, RECOVERED)
        return restored

    def _settle(self, group: _Group, state: int) -> None:
        group.state = state
        group.parity.clear()
        self._pending.pop(group.info.first, None)

    def _lose(self, group: _Group) -> None:
        present = sum(1 for seq in group.members if seq in self._recent)
        group.missing = group.info.k - present
        self.stats.unrecoverable_groups += 1
        self.stats.unrecoverable_packets += group.missing
        self._settle(group, LOST)
        self._lost.append(group)

    def _evict_data(self) -> None:
        order = self._order
        pop, popleft = self._recent.pop, order.popleft
        freed = 0
        for _ in range(len(order) - self.retain):
            datagram = pop(popleft(), None)
            if datagram is not None:
                freed += len(datagram)
        self._recent_bytes -= freed
        while order and self._recent_bytes > self.max_retained_bytes:
            datagram = pop(popleft(), None)
            if datagram is not None:
                self._recent_bytes -= len(datagram)

    def _evict_groups(self, now: float) -> None:
        """Forgets groups that ended more than `retain` seqs before the newest data packet."""
        groups = self._groups
        newest = self._newest
        while groups and newest is not None:
            group = next(iter(groups.values()))
            if seq_distance(newest, group.members[-1]) < self.retain:
                break
            self._forget(group, now)

    def expire(self, now: float) -> None:
        """Forgets groups older than `group_max_age` (a quiet link after a loss)."""
        groups = self._groups
        while groups:
            group = next(iter(groups.values()))
            if now - group.born < self.group_max_age:
                break
            self._forget(group, now)
        self._losses.expire(now)

    def _forget(self, group: _Group, now: float) -> None:
        info = group.info
        del self._groups[info.first]
        if group.state == PENDING:
            self.stats.expired_groups += 1
            self._lose(group)
        self.stats.parity_lost += info.m - len(group.indexes)
        loss = group.missing + info.m - len(group.indexes)
        self._losses.record(loss, info.m - loss, now)

    def worst_loss(self, now: float) -> int | None:
        """The most packets (data + parity) any group lost over the last minute."""
        return self._losses.worst_loss(now)

    def repair_margin(self, now: float) -> int | None:
        """min(M - loss) over the groups of the last minute: < 0 means data was lost."""
        return self._losses.repair_margin(now)

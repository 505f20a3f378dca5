"""The repair margin: the worst loss per FEC group over the last minute, against its parity.

Each forgotten group reports its loss (data + parity packets that never arrived) and its margin
(M - loss: negative when data was lost). The history is kept in BUCKET-second buckets holding
the worst loss and the least margin seen in them; buckets older than WINDOW are dropped, so
memory is bounded whatever the packet rate.
"""

from __future__ import annotations

from collections import deque

WINDOW = 60.0  # seconds of history for worst_loss / repair_margin
BUCKET = 10.0


class LossWindow:
    def __init__(self) -> None:
        self._buckets: deque[list] = deque()  # [bucket start, worst loss, least margin]

    def record(self, loss: int, margin: int, now: float) -> None:
        buckets = self._buckets
        start = now - now % BUCKET
        if buckets and buckets[-1][0] == start:
            bucket = buckets[-1]
            bucket[1] = max(bucket[1], loss)
            bucket[2] = min(bucket[2], margin)
        else:
            buckets.append([start, loss, margin])
        self.expire(now)

    def expire(self, now: float) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] <= now - WINDOW - BUCKET:
            buckets.popleft()

    def worst_loss(self, now: float) -> int | None:
        """The most packets (data + parity) any group lost over the last minute."""
        self.expire(now)
        return max((bucket[1] for bucket in self._buckets), default=None)

    def repair_margin(self, now: float) -> int | None:
        """min(M - loss) over the groups of the last minute: < 0 means data was lost."""
        self.expire(now)
        return min((bucket[2] for bucket in self._buckets), default=None)

"""The link's packet loss ratio before FEC repair, over a sliding window (`ddc_egress_packet_loss_ratio`).

Rules:
* Cumulative counts are sampled (`sample`, about once a second, by the egress's FEC timer):
  `lost` = packets the link lost before repair (data packets that reassembly never got, plus
  those FEC restored, plus parity packets of finished groups that never arrived), `arrived` =
  data and parity packets received.
* `ratio()` = lost / (lost + arrived) between the oldest sample still inside the window
  (`window` seconds, default 60) and the newest; None before two samples or without traffic.
* A sample whose counts went backwards (counters reset) restarts the window.
"""

from __future__ import annotations

from collections import deque

WINDOW = 60.0


class LossWindow:
    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, int, int]] = deque()  # (time, lost, arrived)

    def sample(self, now: float, lost: int, arrived: int) -> None:
        samples = self._samples
        if samples and (lost < samples[-1][1] or arrived < samples[-1][2]):
            samples.clear()
        samples.append((now, lost, arrived))
        # keep one sample at or before the window's start, so the window spans all of it
        while len(samples) > 2 and samples[1][0] <= now - self.window:
            samples.popleft()

    def ratio(self) -> float | None:
        samples = self._samples
        if len(samples) < 2:
            return None
        _, lost0, arrived0 = samples[0]
        _, lost1, arrived1 = samples[-1]
        lost, arrived = lost1 - lost0, arrived1 - arrived0
        if lost + arrived <= 0:
            return None
        return lost / (lost + arrived)

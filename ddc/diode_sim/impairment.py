"""The seeded fate of each datagram: burst loss, loss, duplication, reordering.

Per datagram, one `random.Random(seed)` draw is made for each enabled impairment, always in this
order and whatever the outcome: burst start, loss, duplicate, reorder. The n-th datagram's fate
therefore depends only on n and the seed, never on timing.

* burst loss (P, LEN): a burst of LEN consecutive drops starts with probability P; the
  datagrams of a running burst are dropped whatever their own draws say.
* loss P: an independent drop.
* duplicate P: the datagram is forwarded twice.
* reorder P: the datagram is held back and forwarded right after the next one (the relay also
  releases it after `reorder_hold` seconds of silence). While one is held, another datagram
  drawn for reordering is forwarded in order.
"""

from __future__ import annotations

import random

from ddc.diode_sim.config import SimConfig

BURST = "burst"
LOSS = "loss"


class Impairments:
    """A pure state machine: fate() once per datagram, in arrival order."""

    __slots__ = ("config", "rng", "burst_left")

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.burst_left = 0  # drops still due in the running burst

    def fate(self) -> tuple[str | None, int, bool]:
        """(drop reason or None, copies to forward, hold back for reordering) of the next
        datagram."""
        cfg, rng = self.config, self.rng
        burst_start = cfg.burst_loss and rng.random() < cfg.burst_loss
        lost = cfg.loss and rng.random() < cfg.loss
        duplicate = cfg.duplicate and rng.random() < cfg.duplicate
        reorder = cfg.reorder and rng.random() < cfg.reorder
        if self.burst_left:
            self.burst_left -= 1
            return BURST, 0, False
        if burst_start:
            self.burst_left = cfg.burst_length - 1
            return BURST, 0, False
        if lost:
            return LOSS, 0, False
        return None, 2 if duplicate else 1, bool(reorder)

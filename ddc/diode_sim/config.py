"""What a diode simulator does: its addresses, impairments, rate cap and buffers."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ddc.errors import ConfigError

DEFAULT_BUFFER = 4 * 1024**2
DEFAULT_RECEIVE_BUFFER = 64 * 1024**2
DEFAULT_SEND_BUFFER = 16 * 1024**2
DEFAULT_REORDER_HOLD = 0.05
PROBABILITIES = ("loss", "burst_loss", "reorder", "duplicate")


@dataclass
class SimConfig:
    listen: tuple[str, int]
    forward: tuple[str, int]
    loss: float = 0.0
    burst_loss: float = 0.0
    burst_length: int = 0
    reorder: float = 0.0
    duplicate: float = 0.0
    rate: float | None = None  # bits/s of UDP payload; None: no cap
    buffer: int = DEFAULT_BUFFER  # bytes behind the rate cap
    seed: int | None = None  # None: one is drawn and logged so the run can be repeated
    forward_bind: tuple[str, int] | None = None
    receive_buffer: int = DEFAULT_RECEIVE_BUFFER
    send_buffer: int = DEFAULT_SEND_BUFFER
    reorder_hold: float = DEFAULT_REORDER_HOLD
    http_listen: tuple[str, int] | None = None
    stats_interval: float | None = None

    def __post_init__(self) -> None:
        for key in PROBABILITIES:
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(key, f"probability must be between 0 and 1, got {value}")
        if self.burst_loss and self.burst_length < 1:
            raise ConfigError("burst_loss", "burst length must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError("rate", "must be greater than 0")
        if self.buffer < 0:
            raise ConfigError("buffer", "must not be negative")
        if self.stats_interval is not None and self.stats_interval <= 0:
            raise ConfigError("stats_interval", "must be greater than 0")
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)

    @property
    def impaired(self) -> bool:
        return bool(self.loss or self.burst_loss or self.reorder or self.duplicate or self.rate)

    def describe(self) -> str:
        """The impairments in one line, for the start-up log: ", loss 0.01, rate 8e+08 ..."."""
        text = "".join(
            f", {key} {getattr(self, key)}"
            for key in ("loss", "reorder", "duplicate")
            if getattr(self, key)
        )
        if self.burst_loss:
            text += f", burst {self.burst_loss}x{self.burst_length}"
        if self.rate:
            text += f", rate {self.rate:.0f} bit/s buffer {self.buffer}"
        return text

"""Pacing of the ingress's sends: a token bucket in bits/s, or a fixed delay per packet.

`take(size, packets)` comes before each send of `packets` datagrams of `size` bytes in all (one
send may carry several: ddc/ingress/gso.py)."""

from __future__ import annotations

import time

import gevent

from ddc.cooperate import HubTurn


class TokenBucket:
    """Allows `rate` bits/s on average with bursts of at most `burst` bytes.

    take(n) sleeps cooperatively just long enough to keep the average; the debt is carried
    over so the long-run rate is exact whatever the sleep granularity.
    """

    def __init__(self, rate_bits: float, burst_bytes: int | None = None) -> None:
        if rate_bits <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate_bits / 8.0  # bytes per second
        # 5 ms worth of traffic, at least two 64 KiB datagrams: gevent sleeps are ~1 ms coarse
        self.burst = (
            burst_bytes if burst_bytes is not None else max(int(self.rate * 0.005), 2 * 65536)
        )
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def take(self, size: int, packets: int = 1) -> None:
        now = time.monotonic()
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - size
        self.stamp = now
        self.tokens = tokens
        if tokens < 0:
            gevent.sleep(-tokens / self.rate)


class FixedDelay:
    """The reference implementation's pacing: sleep `delay_ms` after every packet (the transport
    then sends every packet on its own)."""

    def __init__(self, delay_ms: float) -> None:
        self.delay = delay_ms / 1000.0

    def take(self, size: int, packets: int = 1) -> None:
        gevent.sleep(self.delay * packets)


class Unlimited:
    """No pacing; yields to other greenlets every `every` packets so the daemon stays responsive."""

    def __init__(self, every: int = 64) -> None:
        self.every = every
        self.count = 0
        self.hub_turn = HubTurn()

    def take(self, size: int, packets: int = 1) -> None:
        self.count += packets
        if self.count >= self.every:
            self.count = 0
            self.hub_turn()


def make_pacer(rate_bits: float | None, send_delay_ms: float | None):
    if rate_bits:
        return TokenBucket(rate_bits)
    if send_delay_ms:
        return FixedDelay(send_delay_ms)
    return Unlimited()

"""The benches' rate search: the highest offered rate at which a trial passes.

`RateSearch` is driven one trial at a time (`rate`, then `record`), so a bench can run the
searches of several scenarios in lockstep: trial i of each scenario at about the same time,
under the same load from whatever else runs on the machine (a same-run ratio then compares like
with like). `rate_search` runs one search to the end.

Rules, with `achieved` what the system under test managed in a trial (same unit as the rate):
* A failed trial at rate R shows the capacity is below R. Until something passes, a failed
  trial that achieved A < R also sets an estimate: the capacity is probably below OVERSHOOT * A
  (a trial offered far more than it can take delivers roughly its capacity, often less), so a
  wild first rate does not leave the search bisecting towards it. The estimate is not proof: a
  pass within `close_enough` of it raises it by OVERSHOOT (never past the lowest failed rate).
* Until something passes, the next rate is 90 % of `achieved` (at most 80 % of the bound), or a
  quarter of the rate when nothing was achieved.
* After a pass: the geometric middle between the best pass and the bound, until they are within
  `close_enough` of each other, or the steps are used up.
"""

from __future__ import annotations

from collections.abc import Callable

OVERSHOOT = 1.5


class RateSearch:
    def __init__(self, high: float, steps: int, close_enough: float = 1.05) -> None:
        self.rate: float | None = high  # the next rate to try; None once the search is over
        self.close_enough = close_enough
        self.left = max(1, steps)
        self.best: float | None = None  # the highest passing rate
        self.failed: float | None = None  # the lowest failing rate
        self.estimate: float | None = None  # the capacity is probably below this
        self.tried: list[tuple[float, bool]] = []

    @property
    def bound(self) -> float | None:
        """Where the search looks below: the lowest failed rate, or the estimate under it."""
        bounds = [b for b in (self.failed, self.estimate) if b is not None]
        return min(bounds) if bounds else None

    def record(self, passed: bool, achieved: float | None) -> None:
        """The outcome of the trial at `rate`; sets the next rate (None: done)."""
        rate = self.rate
        assert rate is not None, "the search is over"
        self.tried.append((rate, passed))
        self.left -= 1
        if passed:
            self.best = rate
            estimate = self.estimate
            if estimate is not None and estimate / rate < self.close_enough:
                raised = estimate * OVERSHOOT
                self.estimate = raised if self.failed is None else min(raised, self.failed)
        else:
            self.failed = rate if self.failed is None else min(self.failed, rate)
            if self.best is None and achieved and OVERSHOOT * achieved < rate:
                estimate = OVERSHOOT * achieved
                self.estimate = estimate if self.estimate is None else min(self.estimate, estimate)
        self.rate = self._next(rate, achieved) if self.left > 0 else None

    def _next(self, rate: float, achieved: float | None) -> float | None:
        best, bound = self.best, self.bound
        if best is not None:
            if bound is None or bound / best < self.close_enough:
                return None
            return (best * bound) ** 0.5
        assert bound is not None  # nothing passed yet: the last trial failed
        return min(0.9 * achieved, 0.8 * bound) if achieved else rate / 4


def rate_search(
    trial: Callable[[float], tuple[bool, float | None]],
    high: float,
    steps: int,
    close_enough: float = 1.05,
) -> tuple[float | None, list[tuple[float, bool]]]:
    """The highest rate at which trial(rate) passes, in at most `steps` trials from `high` down.

    trial returns (passed, achieved). Returns (best passing rate or None, [(rate, passed), ...]).
    """
    search = RateSearch(high, steps, close_enough)
    while search.rate is not None:
        search.record(*trial(search.rate))
    return search.best, search.tried

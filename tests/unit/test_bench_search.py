"""The benches' rate search (devtools/bench/search.py rules), against simulated capacities."""

from __future__ import annotations

from devtools.bench.search import RateSearch, rate_search


def pair_with_capacity(capacity: float, overload_cost: float = 0.0):
    """A trial: passes up to `capacity`; above it delivers the capacity, less `overload_cost`
    per unit offered beyond it (what a swamped pair wastes on what it drops)."""
    offered: list[float] = []

    def trial(rate: float) -> tuple[bool, float]:
        offered.append(rate)
        if rate <= capacity:
            return True, rate
        return False, max(0.0, capacity - overload_cost * (rate - capacity))

    return trial, offered


def test_a_wild_first_rate_does_not_leave_the_search_bisecting_towards_it():
    trial, offered = pair_with_capacity(30.0, overload_cost=0.001)
    best, tried = rate_search(trial, 1400.0, 6)
    assert best is not None and 28.5 <= best <= 30.0  # within 5 % of the capacity
    assert max(offered[1:]) < 40  # after the first trial, never near the raw rate again


def test_the_search_stops_once_pass_and_failure_are_close():
    trial, offered = pair_with_capacity(100.0)
    best, tried = rate_search(trial, 1000.0, 20)
    assert best is not None and best >= 100.0 / 1.05
    assert len(tried) < 20
    assert tried[0] == (1000.0, False)


def test_a_first_pass_ends_the_search_and_steps_bound_it():
    trial, _ = pair_with_capacity(100.0)
    assert rate_search(trial, 50.0, 6) == (50.0, [(50.0, True)])
    trial, offered = pair_with_capacity(1.0)
    best, tried = rate_search(trial, 1000.0, 3)
    assert len(offered) == 3 and len(tried) == 3


def test_nothing_achieved_quarters_the_rate():
    search = RateSearch(400.0, 4)
    search.record(False, None)
    assert search.rate == 100.0
    search.record(False, 0.0)
    assert search.rate == 25.0


def test_searches_can_run_in_lockstep():
    searches = {name: RateSearch(1000.0, 6) for name in ("off", "on")}
    trials = {"off": pair_with_capacity(30.0)[0], "on": pair_with_capacity(21.0)[0]}
    order: list[str] = []
    while any(search.rate is not None for search in searches.values()):
        for name, search in searches.items():
            if search.rate is not None:
                order.append(name)
                search.record(*trials[name](search.rate))
    assert order[:4] == ["off", "on", "off", "on"]
    off, on = searches["off"].best, searches["on"].best
    assert off is not None and on is not None
    assert 0.66 <= on / off <= 0.74  # 0.7 found within the searches' 5 % steps


def test_an_estimate_from_a_swamped_trial_is_raised_when_passes_reach_it():
    """A pair that delivers well under its capacity when swamped (here 60 %)."""

    def trial(rate: float) -> tuple[bool, float]:
        return (True, rate) if rate <= 40.0 else (False, 24.0)

    best, tried = rate_search(trial, 1000.0, 8)
    assert best is not None and best >= 40.0 / 1.05  # not stuck under the first estimate (36)
    assert max(rate for rate, _ in tried[1:]) < 60

"""The yield point of a hot loop: other greenlets run often, the hub polls IO at least every 2 ms.

Why not `gevent.sleep(0)` alone: it queues the greenlet as a loop callback, and gevent runs
callbacks in a batch, looking at the clock only every 50 callbacks before it polls IO. Two hot
loops that each yield with sleep(0) (the egress's receiver and its deliverer, the ingress's
source and its sender) ping-pong inside that batch: each callback is a unit of their work (32
datagrams, 16 chunks of hundreds of records), so IO waited 50 units of work, and a /healthz
request that needs four or five IO turns (accept, read, answer) took 0.8–5 s under load.

`HubTurn` rules (one per hot loop; call it between items):
* before the budget (`BUDGET` s since this loop last gave the hub a full turn) is spent: a plain
  `gevent.sleep(0)`, so the other greenlets of the pipeline keep running as before;
* once it is spent: `gevent.idle()`, which returns only after the hub polled IO and ran every
  pending event (the HTTP server's accept and reads, timers), and starts a new budget.
A loop's own work between two calls is not bounded here: keep the units small.
"""

from __future__ import annotations

import time

import gevent

BUDGET = 0.002  # seconds a hot loop may run before the hub polls IO


class HubTurn:
    """A hot loop's yield point (see the module docstring)."""

    __slots__ = ("budget", "deadline")

    def __init__(self, budget: float = BUDGET) -> None:
        self.budget = budget
        self.deadline = time.perf_counter() + budget

    def due(self) -> bool:
        """The budget is spent: the next call gives the hub a full turn."""
        return time.perf_counter() >= self.deadline

    def __call__(self) -> None:
        if time.perf_counter() < self.deadline:
            gevent.sleep(0)
            return
        gevent.idle()
        self.deadline = time.perf_counter() + self.budget

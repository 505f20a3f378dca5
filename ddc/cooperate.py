"""Cooperating with the gevent hub: the yield point of a hot loop (the hub polls IO at least every
2 ms), and blocking calls in its threadpool (`in_thread`).

Why not `gevent.sleep(0)` alone: it queues the greenlet as a loop callback, and gevent runs
callbacks in a batch, looking at the clock only every 50 callbacks before it polls IO. Two hot
loops that each yield with sleep(0) (the egress's receiver and its deliverer) ping-pong inside
that batch: each callback is a unit of their work (32 datagrams, 16 chunks of hundreds of
records), so IO waited 50 units of work, and a /healthz request that needs four or five IO turns
(accept, read, answer) took 0.8–5 s under load.

Why not `gevent.idle()`: it resumes only in a loop turn with nothing else pending, so a loop that
uses it is starved by any steady stream of IO or callbacks; measured on the egress's deliverer,
it fell 25-30 % behind a blast the unchanged code kept up with.

`HubTurn` rules (one per hot loop; call it between items, or when `due()`):
* before the budget (`BUDGET` s since this loop last gave the hub a full turn) is spent: a plain
  `gevent.sleep(0)`, so the other greenlets of the pipeline keep running as before;
* once it is spent: wait on a 0-second timer. libev polls IO (without blocking: the timer is
  already due) before it runs expired timers, so the loop resumes in the very next turn, after
  the IO events of that turn (the HTTP server's accept and reads) were dispatched, and never
  waits behind them for longer than that turn. Then a new budget starts.
A loop's own work between two calls is not bounded here: keep the units small.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import gevent
from gevent.hub import get_hub

T = TypeVar("T")

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
        full_turn()
        self.deadline = time.perf_counter() + self.budget


def full_turn() -> None:
    """Give the hub one full turn (IO polled, callbacks and expired timers run) and resume in
    the next: waits on a 0-second timer, so unlike `gevent.idle()` nothing can starve it."""
    hub = get_hub()
    timer = hub.loop.timer(0.0)
    try:
        hub.wait(timer)
    finally:
        timer.close()


def in_thread(func: Callable[..., T], *args: Any) -> T:
    """func(*args) in gevent's threadpool, the calling greenlet waiting (the hub runs on). A kill
    of that greenlet takes effect only once the call ended: a write, fsync or read in the
    thread never outlives the descriptor or the state it was given."""
    call = get_hub().threadpool.spawn(func, *args)
    try:
        return cast(T, call.get())
    except BaseException:
        while not call.ready():  # whatever kills arrive meanwhile
            try:
                call.wait()
            except gevent.GreenletExit:
                continue
        raise

"""Whether a Kafka client reaches its broker, as the sources and sinks report it in /healthz.

Rules: `up` is None until the first attempt tells, then whether the last attempt reached the
broker; `error` is the last failure named (kept while up, for the log). set() records a new
state and calls the client's `on_up` or `on_down(error)` when `up` changed, so each transition
is logged once.
"""

from __future__ import annotations

from collections.abc import Callable


class Reachability:
    __slots__ = ("error", "on_down", "on_up", "up")

    def __init__(self, on_up: Callable[[], None], on_down: Callable[[str | None], None]) -> None:
        self.up: bool | None = None
        self.error: str | None = None
        self.on_up = on_up
        self.on_down = on_down

    def set(self, up: bool, error: BaseException | str | None = None) -> None:
        """Record `up` (and `error`, when given); on_up()/on_down(error) when `up` changed."""
        if error is not None:
            self.error = error if isinstance(error, str) else repr(error)
        if up == self.up:
            return
        self.up = up
        if up:
            self.on_up()
        else:
            self.on_down(self.error)

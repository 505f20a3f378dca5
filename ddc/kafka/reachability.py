"""Whether a Kafka client reaches its broker, as the sources and sinks report it in /healthz.

Rules: `up` is None until the first attempt tells, then whether the last attempt reached the
broker; `error` is the last failure named (kept while up, for the log). change() records a new
state and says whether it differs from the one before, so the client logs each transition once.
"""

from __future__ import annotations


class Reachability:
    __slots__ = ("error", "up")

    def __init__(self) -> None:
        self.up: bool | None = None
        self.error: str | None = None

    def change(self, up: bool, error: BaseException | str | None = None) -> bool:
        """Record `up` (and `error`, when given); True when `up` changed."""
        if error is not None:
            self.error = error if isinstance(error, str) else repr(error)
        changed, self.up = up != self.up, up
        return changed

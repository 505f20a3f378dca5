"""What the supervisor decides for one pair, from what both sides' /healthz said (no I/O here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ddc.supervisor.client import Reply

log = logging.getLogger(__name__)

DOWN, PAUSE, RESUME = "down", "pause", "resume"


def egress_problem(egress: Reply) -> str | None:
    """Why this egress /healthz answer means the link is not delivering, or None."""
    if egress.error is not None and not egress.body:
        return f"egress unreachable ({egress.error})"
    link_up = egress.body.get("link_up")
    if link_up is False:
        age = egress.body.get("last_packet_age_s")
        since = f", last packet {age:.1f}s ago" if isinstance(age, int | float) else ""
        return f"egress reports link down{since}"
    if link_up is not True:
        return f"egress /healthz has no link_up ({egress.error or 'unexpected body'})"
    return None


@dataclass
class PairMonitor:
    """The pause/resume state machine of one pair.

    observe() is called after each poll with both answers; it returns the actions to take
    (DOWN: run on_down once per outage; PAUSE; RESUME). The caller reports the outcome of a
    PAUSE/RESUME with paused()/resumed().

    A slow egress (it took the connection but did not answer within the timeout: a busy daemon)
    is slow, not down: it proves nothing either way, so it neither starts an outage nor ends
    one. Only when every answer since `slow_since` was slow for `grace` is the pair down for
    that (the outage dates from the first slow answer); `problem` is the current problem or None.
    """

    name: str
    grace: float
    down_since: float | None = None
    reason: str | None = None
    slow_since: float | None = None
    problem: str | None = None
    declared_down: bool = False
    paused_by_us: bool = False
    _warned_ingress: bool = field(default=False, repr=False)

    def deadline(self) -> float | None:
        """When the current problem will have lasted `grace` (a poll should happen then)."""
        if self.declared_down:
            return None
        if self.down_since is None:
            return None if self.slow_since is None else self.slow_since + self.grace
        return self.down_since + self.grace

    def observe(self, now: float, ingress: Reply, egress: Reply) -> list[str]:
        if not egress.slow:
            self.slow_since = None
            problem = egress_problem(egress)
        elif self._slow_only(now):
            return []
        else:
            problem = self.reason or (
                f"egress /healthz slow: no answer for {now - (self.slow_since or now):.1f}s"
            )
        self.problem = problem
        ingress_paused = ingress.body.get("paused") if ingress.ok else None
        if problem is not None:
            if self.down_since is None:
                self.down_since = now if self.slow_since is None else self.slow_since
                log.warning(
                    "pair %s: %s; pausing its ingress if this lasts %.1fs",
                    self.name,
                    problem,
                    self.grace,
                )
            self.reason = problem
            if now - self.down_since < self.grace:
                return []
            actions = []
            if not self.declared_down:
                self.declared_down = True
                log.error("pair %s: down for %.1fs: %s", self.name, now - self.down_since, problem)
                actions.append(DOWN)
            if ingress_paused is False:
                actions.append(PAUSE)
                self._warned_ingress = False
            elif ingress_paused is None and not self._warned_ingress:
                self._warned_ingress = True
                log.error(
                    "pair %s: cannot pause the ingress: %s",
                    self.name,
                    ingress.error or "its /healthz has no 'paused'",
                )
            return actions

        if self.down_since is not None:
            log.warning(
                "pair %s: egress healthy again after %.1fs", self.name, now - self.down_since
            )
        self.down_since, self.reason, self.declared_down, self._warned_ingress = (
            None,
            None,
            False,
            False,
        )
        if not self.paused_by_us:
            return []
        if ingress_paused is True:
            return [RESUME]
        if ingress_paused is False:
            log.info(
                "pair %s: ingress already running (restarted or resumed by someone else)", self.name
            )
            self.paused_by_us = False
        return []

    def _slow_only(self, now: float) -> bool:
        """A slow answer that does not (yet) mean anything: no outage running, and the answers
        have been slow for less than `grace`."""
        if self.slow_since is None:
            self.slow_since = now
            log.warning(
                "pair %s: egress /healthz is slow; counted as slow, not down, for %.1fs",
                self.name,
                self.grace,
            )
        return self.down_since is None and now - self.slow_since < self.grace

    def paused(self) -> None:
        self.paused_by_us = True

    def resumed(self) -> None:
        self.paused_by_us = False

"""The supervisor daemon: one watcher greenlet per pair, hooks in greenlets, /metrics and /healthz."""

from __future__ import annotations

import logging
import time
from typing import Any

from gevent.event import Event
from gevent.lock import Semaphore

from ddc.daemon import DRAIN_TIMEOUT, Service
from ddc.http import HttpServer
from ddc.supervisor.client import Reply, request
from ddc.supervisor.hooks import run_hook
from ddc.supervisor.metrics import SupervisorMetrics
from ddc.supervisor.monitor import DOWN, PAUSE, RESUME, PairMonitor
from ddc.tokens import bearer_header, optional_token

log = logging.getLogger(__name__)

MIN_WAIT = 0.01


def _result(reply: Reply) -> str:
    if reply.ok:
        return "ok"
    if reply.slow:
        return "slow"
    return "unreachable" if reply.status is None else "http_error"


class Supervisor(Service):
    name = "supervisor"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.metrics = SupervisorMetrics()
        self.monitors = {
            pair["name"]: PairMonitor(pair["name"], config["grace"]) for pair in config["pairs"]
        }
        self.views: dict[str, dict[str, Any]] = {
            pair["name"]: {"polled": False} for pair in config["pairs"]
        }
        self.halt = Event()
        # one pair's hooks run one at a time, in the order of the events
        self.hook_locks = {pair["name"]: Semaphore() for pair in config["pairs"]}
        default_token = optional_token(config["token_file"], "supervisor.token_file")
        # the Authorization header of each pair's /admin/* calls (its own token_file first)
        self.admin_headers = {
            pair["name"]: bearer_header(
                optional_token(pair["token_file"], f"supervisor.pairs.{pair['name']}.token_file")
                if pair["token_file"]
                else default_token
            )
            for pair in config["pairs"]
        }
        routes = {("GET", "/healthz"): self.healthz}
        self.http = HttpServer(config["http_listen"], self.metrics.registry, routes)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.http.start()
        for pair in self.config["pairs"]:
            self.spawn(self._watch, pair, name=f"watch {pair['name']}")
        log.info(
            "watching %d pair(s): poll every %.1fs, pause after %.1fs of egress trouble",
            len(self.config["pairs"]),
            self.config["poll_interval"],
            self.config["grace"],
        )

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        self.halt.set()
        self.group.join(timeout=timeout)
        self.group.kill(block=True, timeout=1.0)
        self.http.stop(1.0)
        log.info("supervisor stopped")

    # --- polling --------------------------------------------------------------------------

    def _watch(self, pair: dict[str, Any]) -> None:
        monitor = self.monitors[pair["name"]]
        while not self.halt.is_set():
            self.poll(pair, monitor)
            delay = self.config["poll_interval"]
            deadline = monitor.deadline()
            if deadline is not None:
                delay = min(delay, max(MIN_WAIT, deadline - time.monotonic()))
            if self.halt.wait(delay):
                return

    def poll(self, pair: dict[str, Any], monitor: PairMonitor) -> None:
        name, timeout = pair["name"], self.config["timeout"]
        egress = request("GET", f"{pair['egress']}/healthz", timeout)
        ingress = request("GET", f"{pair['ingress']}/healthz", timeout)
        self.metrics.polls.labels(pair=name, side="egress", result=_result(egress)).inc()
        self.metrics.polls.labels(pair=name, side="ingress", result=_result(ingress)).inc()
        now = time.monotonic()
        actions = monitor.observe(now, ingress, egress)
        problem = monitor.problem
        paused = ingress.body.get("paused") if ingress.ok else None
        self.metrics.egress_healthy.labels(pair=name).set(0 if problem else 1)
        self.metrics.ingress_paused.labels(pair=name).set(1 if paused else 0)
        self.metrics.pair_down.labels(pair=name).set(1 if monitor.declared_down else 0)
        self.views[name] = {
            "polled": True,
            "egress_ok": problem is None,
            "egress_problem": problem,
            "egress_slow": egress.slow,
            "ingress_reachable": ingress.ok,
            "ingress_error": ingress.error,
            "ingress_paused": paused,
            "paused_by_supervisor": monitor.paused_by_us,
            "down_for_s": None
            if monitor.down_since is None
            else round(now - monitor.down_since, 3),
        }
        for action in actions:
            if action == DOWN:
                self._hook(pair, "on_down", monitor.reason or "")
            elif action == PAUSE:
                self._admin(pair, monitor, "pause", monitor.reason or "")
            elif action == RESUME:
                self._admin(pair, monitor, "resume", "egress healthy again")

    def _admin(self, pair: dict[str, Any], monitor: PairMonitor, action: str, reason: str) -> None:
        name = pair["name"]
        url = f"{pair['ingress']}/admin/{action}"
        reply = request("POST", url, self.config["timeout"], self.admin_headers[name])
        if not reply.ok:
            self.metrics.actions.labels(pair=name, action=action, result="failed").inc()
            log.error("pair %s: POST %s failed: %s (will retry)", name, url, reply.error)
            return
        self.metrics.actions.labels(pair=name, action=action, result="ok").inc()
        if action == "pause":
            monitor.paused()
            self.metrics.ingress_paused.labels(pair=name).set(1)
            log.warning("pair %s: PAUSED ingress %s: %s", name, pair["ingress"], reason)
        else:
            monitor.resumed()
            self.metrics.ingress_paused.labels(pair=name).set(0)
            log.warning("pair %s: RESUMED ingress %s: %s", name, pair["ingress"], reason)
        self.views[name]["paused_by_supervisor"] = monitor.paused_by_us
        self.views[name]["ingress_paused"] = action == "pause"
        self._hook(pair, f"on_{action}", reason)

    def _hook(self, pair: dict[str, Any], event: str, reason: str) -> None:
        command = pair[event]
        if not command:
            return
        env = {
            "DDC_PAIR": pair["name"],
            "DDC_EVENT": event.removeprefix("on_"),
            "DDC_REASON": reason,
            "DDC_INGRESS_URL": pair["ingress"],
            "DDC_EGRESS_URL": pair["egress"],
        }

        def run() -> None:
            with self.hook_locks[pair["name"]]:
                log.info("pair %s: running %s hook", pair["name"], event)
                result = run_hook(command, env, self.config["hook_timeout"])
                self.metrics.hooks.labels(pair=pair["name"], event=event, result=result).inc()

        self.spawn(run, name=f"{event} {pair['name']}")

    # --- HTTP -----------------------------------------------------------------------------

    def healthz(self) -> tuple[int, dict[str, Any]]:
        degraded = self.crashed is not None or any(
            view.get("polled") and not view.get("egress_ok") for view in self.views.values()
        )
        return 200, {
            "status": "degraded" if degraded else "ok",
            "role": "supervisor",
            "pairs": self.views,
        }

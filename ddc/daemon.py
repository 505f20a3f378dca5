"""Daemon plumbing shared by every long-running command.

A Service owns its greenlets in one gevent Group; a greenlet that dies with an exception is
logged and makes the process exit non-zero (locust's runners). SIGTERM/SIGINT ask for a
graceful stop; a second signal forces the exit (gevent's servers). SIGHUP calls
Service.reload().
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Group

from ddc.errors import ConfigError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_CRASH = 1
EXIT_FORCED = 130
DRAIN_TIMEOUT = 10.0  # seconds a graceful stop may take
# Objects allocated between young-generation collections (CPython's default is 700). A
# daemon that buffers a backlog keeps most of what it allocates alive, so at the default every
# collection walks surviving records again: 26 % of the egress's CPU in `scripts/bench kafka`.
GC_YOUNG_THRESHOLD = 10_000
# A restarted greenlet that has run this long (seconds) without failing is healthy again.
STABLE_AFTER = 3.0


class Deadline:
    """The end of a time budget (a graceful stop's) that several steps share."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, at_least: float = 0.1) -> float:
        """Seconds until the end, but `at_least` (a step past the deadline still gets a try)."""
        return max(at_least, self.end - time.monotonic())


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # kafka-python logs every reconnect attempt; our sources and sinks log each state change
    logging.getLogger("kafka").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.CRITICAL
    )


class Service:
    """Something with start() and stop(timeout) whose greenlets live in self.group.

    Two ways to run a greenlet, and no third:
    * spawn(): the greenlet is essential; if it raises, the failure is logged, `crashed` is set
      and the daemon stops and exits non-zero (so an orchestrator restarts it).
    * supervise(): the greenlet may fail and be restarted; each failure is logged with its cause
      and counted in `restarts[name]`, and the greenlet runs again after `restart_delay`
      seconds, until the service stops. A component running one reports itself unhealthy
      (/healthz "degraded") while `failing(name)` is not None: from the failure until the
      restarted greenlet has run STABLE_AFTER seconds without failing, or returned.
      `supervised(name)` is its current greenlet (a restart replaces it), to join at stop.
    """

    name = "service"

    def __init__(self) -> None:
        self.group = Group()
        self.crashed: BaseException | None = None
        self.stopping = Event()
        self.restarts: dict[str, int] = {}
        self._failing: dict[str, tuple[str, float]] = {}  # name → (failure, restarted at)
        self._supervised: dict[str, gevent.Greenlet] = {}

    def spawn(
        self, func: Callable[..., Any], *args: Any, name: str | None = None
    ) -> gevent.Greenlet:
        greenlet = self.group.spawn(func, *args)
        greenlet.name = name or str(getattr(func, "__name__", "greenlet"))
        greenlet.link_exception(self._greenlet_failed)
        return greenlet

    def supervise(
        self,
        func: Callable[..., Any],
        *args: Any,
        name: str,
        restart_delay: float = 1.0,
        delay: float = 0.0,
    ) -> gevent.Greenlet:
        """Run func(*args) now (or after `delay`), restarting it after every failure."""
        greenlet = gevent.Greenlet(func, *args)
        greenlet.name = name
        greenlet.link_exception(
            lambda failed: self._supervised_failed(failed, func, args, restart_delay)
        )
        greenlet.link_value(lambda _done: self._failing.pop(name, None))
        self.group.add(greenlet)
        self._supervised[name] = greenlet
        if delay > 0:
            greenlet.start_later(delay)
        else:
            greenlet.start()
        return greenlet

    def failing(self, name: str) -> str | None:
        """The last failure of the supervised greenlet `name`, until its restart proved stable."""
        failure = self._failing.get(name)
        if failure is None:
            return None
        reason, restarted_at = failure
        current = self._supervised.get(name)
        running = current is not None and not current.dead
        if running and time.monotonic() - restarted_at >= STABLE_AFTER:
            del self._failing[name]
            return None
        return reason

    def supervised(self, name: str) -> gevent.Greenlet | None:
        """The current greenlet of the supervised `name` (also one waiting to restart)."""
        return self._supervised.get(name)

    def _supervised_failed(
        self,
        greenlet: gevent.Greenlet,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        restart_delay: float,
    ) -> None:
        name = greenlet.name
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self._failing[name] = (repr(greenlet.exception), time.monotonic() + restart_delay)
        if self.stopping.is_set():
            log.error("%s: %s failed while stopping: %r", self.name, name, greenlet.exception)
            return
        log.error(
            "%s: %s failed (%r); restarting in %.1fs (restart %d)",
            self.name,
            name,
            greenlet.exception,
            restart_delay,
            self.restarts[name],
            exc_info=greenlet.exc_info,
        )
        self.supervise(func, *args, name=name, restart_delay=restart_delay, delay=restart_delay)

    def _greenlet_failed(self, greenlet: gevent.Greenlet) -> None:
        log.error(
            "%s: greenlet %s failed: %r",
            self.name,
            greenlet.name,
            greenlet.exception,
            exc_info=greenlet.exc_info,
        )
        if self.crashed is None:
            self.crashed = greenlet.exception
        self.stopping.set()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        raise NotImplementedError

    def reload(self) -> None:
        """SIGHUP: re-read what can change without a restart (the ingress and egress: their
        authentication key file). Nothing by default."""
        log.info("%s: SIGHUP received, nothing to reload", self.name)


def tune_gc() -> None:
    """Collect less often, and never again walk what start-up allocated (modules, config)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def serve(service: Service, drain_timeout: float = DRAIN_TIMEOUT) -> int:
    """Run a service until a signal or a crash; the process exit code."""
    signals = {"count": 0}

    def on_signal(signum: int) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            log.warning("second %s: forcing exit", signal.Signals(signum).name)
            os._exit(EXIT_FORCED)
        log.info("%s received: stopping gracefully (again to force)", signal.Signals(signum).name)
        service.stopping.set()

    handlers: list[Any] = [
        gevent.signal_handler(signal.SIGTERM, on_signal, signal.SIGTERM),
        gevent.signal_handler(signal.SIGINT, on_signal, signal.SIGINT),
        gevent.signal_handler(signal.SIGHUP, service.reload),
    ]
    try:
        try:
            service.start()
        except ConfigError as exc:
            return config_error_exit(exc)
        except OSError as exc:
            log.error("%s cannot start: %s", service.name, exc)
            print(f"error: {service.name} cannot start: {exc}", file=sys.stderr)
            return EXIT_CRASH
        tune_gc()
        service.stopping.wait()
        service.stop(drain_timeout)
    finally:
        for handler in handlers:
            handler.cancel()
    if service.crashed is not None:
        log.error("%s exiting after a failure: %r", service.name, service.crashed)
        return EXIT_CRASH
    return 0


def config_error_exit(exc: ConfigError) -> int:
    print(f"config error: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def boot(config_path: str, load: str, service: str, drain_timeout: float = DRAIN_TIMEOUT) -> int:
    """The one way a daemon command starts; the process exit code.

    Monkey-patches first, then imports `load` and `service` ("module:name"): load(config_path)
    returns the validated config, service(config) builds the Service. A config error is one line
    on stderr and exit 2, before anything started; logging is configured from `log_level`; the
    service runs until a signal or a crash (serve()).
    """
    from gevent import monkey

    monkey.patch_all()  # before anything imports sockets or threads
    try:
        config = import_named(load)(config_path)
        configure_logging(config["log_level"])
        built = import_named(service)(config)
    except ConfigError as exc:
        return config_error_exit(exc)
    return serve(built, drain_timeout)


def proxy_command(
    role: str, service: str
) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
    """configure_parser and run of `ddc ingress|egress -c FILE [--drain-timeout S]`."""

    def configure_parser(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-c", "--config", required=True, help=f"{role} TOML config")
        parser.add_argument(
            "--drain-timeout", type=float, default=DRAIN_TIMEOUT, help="graceful stop limit (s)"
        )

    def run(args: argparse.Namespace) -> int:
        load = f"ddc.config.preflight:load_{role}_config"  # validated, then checked on this host
        return boot(args.config, load, service, args.drain_timeout)

    return configure_parser, run


def import_named(name: str) -> Any:
    """The object a "package.module:attribute" string names."""
    module_name, _, attribute = name.partition(":")
    return getattr(importlib.import_module(module_name), attribute)

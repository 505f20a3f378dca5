"""Real `ddc-dedup serve` processes on loopback, against the session's real Redis."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from dedup_service.embedded import free_port
from devtools.harness import child_env, parse_metrics, wait_until, write_toml
from tests.integration.streams import read_length_prefixed as read_length_prefixed  # for the tests

ROOT = Path(__file__).resolve().parents[3]
LINKS = ["a", "b", "c"]  # the links every test server declares unless told otherwise
API_TOKEN = "dedup-test-api-token-0123456789"


def write_token(path: Path, token: str = API_TOKEN) -> Path:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_config(
    path: Path, dedup: dict[str, Any], sink: dict[str, Any], merge: dict | None = None
) -> Path:
    """[dedup] declares LINKS unless `dedup` has its own `links`."""
    dedup = {"links": LINKS, **dedup}
    tables = {"dedup": dedup, "dedup.sink": sink, **({"dedup.merge": merge} if merge else {})}
    return write_toml(path, tables)


def run_together(threads: list[threading.Thread], timeout: float) -> None:
    """Starts every thread, then waits up to `timeout` for each."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)


def subprocess_env() -> dict[str, str]:
    """This environment with the checkout first on PYTHONPATH (the harness's child_env)."""
    return child_env()


@dataclass
class DedupServer:
    url: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen | None = None
    session: requests.Session = field(default_factory=requests.Session)
    token: str | None = API_TOKEN  # sent as Authorization: Bearer by post()

    def __post_init__(self) -> None:
        if self.token is not None:
            self.session.headers["Authorization"] = f"Bearer {self.token}"

    def start(self, timeout: float = 30.0, ready: bool = True) -> DedupServer:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dedup_service.cli", "serve", "-c", str(self.config_path)],
            cwd=ROOT,
            env=subprocess_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"dedup server exited {self.process.returncode}:\n{self.log()}")
            try:
                status = requests.get(self.url + "/readyz", timeout=1).status_code
            except requests.ConnectionError:
                return False
            return status == 200 or (not ready and status == 503)

        wait_until(answers, timeout, message=lambda: f"the dedup server to answer:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def post(self, path: str, body: Any, timeout: float = 60) -> requests.Response:
        return self.session.post(self.url + path, json=body, timeout=timeout)

    def get(self, path: str, timeout: float = 10) -> requests.Response:
        return self.session.get(self.url + path, timeout=timeout)

    def missing(self) -> dict[str, int]:
        """link → records that arrived on the other links only (/v1/stats)."""
        links = self.get("/v1/stats").json()["links"]
        return {link: counts["missing"] for link, counts in links.items()}

    def wait_for_missing(self, expected: dict[str, int], timeout: float) -> None:
        wait_until(
            lambda: self.missing() == expected,
            timeout,
            interval=0.2,
            message=lambda: f"missing per link {self.missing()} == {expected}",
        )

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        key = f"{name}{{{wanted}}}" if labels else name
        return parse_metrics(self.get("/metrics").text).get(key, 0.0)


class HTTPTarget:
    """A real HTTP endpoint on a free local port, `handler` serving it in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SinkTarget(HTTPTarget):
    """A real HTTP endpoint for the http sink; `plan` says how each request is answered."""

    def __init__(self, plan):
        self.plan = list(
            plan
        )  # (delay seconds or an Event to wait for, status) per request; then 200
        self.accepted: list[bytes] = []
        self.requests = 0
        self.holding = threading.Event()  # set while a request waits for its Event
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                delay, status = target.plan.pop(0) if target.plan else (0, 200)
                target.requests += 1
                if isinstance(delay, threading.Event):
                    target.holding.set()
                    delay.wait(30)
                else:
                    time.sleep(delay)
                if status == 200:
                    target.accepted += [
                        base64.b64decode(r["value"]) for r in json.loads(body)["records"]
                    ]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(Handler)


@pytest.fixture
def dedup_server(tmp_path: Path, redis_url: str) -> Iterator:
    """A factory: dedup_server(sink={...}, **dedup_keys) → a started DedupServer (stopped after).

    Every server declares LINKS and has the API token API_TOKEN (its session sends it) unless
    `links` / `api_token_file` are given."""
    servers: list[DedupServer] = []

    def make(
        sink: dict[str, Any] | None = None,
        merge: dict[str, Any] | None = None,
        start: bool = True,
        **dedup: Any,
    ) -> DedupServer:
        index = len(servers)
        port = free_port()
        settings = {
            "http_listen": f"127.0.0.1:{port}",
            "redis_url": redis_url,
            "key_prefix": "t" + uuid.uuid4().hex[:10],
            "log_level": "INFO",
            "api_token_file": str(write_token(tmp_path / "api.token")),
            **dedup,
        }
        settings = {key: value for key, value in settings.items() if value is not None}
        sink = sink or {"type": "file", "path": str(tmp_path / "out.bin")}
        config = write_config(tmp_path / f"dedup{index}.toml", settings, sink, merge)
        server = DedupServer(
            f"http://127.0.0.1:{port}",
            config,
            tmp_path / f"dedup{index}.log",
            token=API_TOKEN if "api_token_file" in settings else None,
        )
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()

"""A small JSON-over-HTTP client on gevent sockets: cooperative with or without monkey-patching."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import socket


class _GeventConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), self.timeout)


@dataclass
class Reply:
    """The outcome of one request: `error` is set when there is no usable JSON answer; `slow`
    when the daemon took the connection but had not answered within the timeout (a busy daemon,
    not a dead one)."""

    status: int | None = None
    body: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    slow: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


def request(method: str, url: str, timeout: float, headers: dict[str, str] | None = None) -> Reply:
    """GET or POST (empty body) `url`; never raises for network or protocol trouble."""
    parts = urlsplit(url)
    connection = _GeventConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    connected = False
    try:
        with gevent.Timeout(timeout):
            connection.connect()
            connected = True
            connection.request(
                method,
                parts.path or "/",
                body=b"" if method == "POST" else None,
                headers={"Accept": "application/json", "Connection": "close", **(headers or {})},
            )
            response = connection.getresponse()
            raw = response.read()
    except (gevent.Timeout, TimeoutError):  # TimeoutError: the socket's own timeout
        if connected:
            return Reply(error=f"connected, but no answer within {timeout:g}s", slow=True)
        return Reply(error=f"no connection within {timeout:g}s")
    except (OSError, http.client.HTTPException) as exc:
        return Reply(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    finally:
        connection.close()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return Reply(response.status, error=f"HTTP {response.status} with a body that is not JSON")
    if not isinstance(body, dict):
        return Reply(
            response.status, error=f"HTTP {response.status} with a JSON body that is not an object"
        )
    if response.status != 200:
        return Reply(response.status, body, error=f"HTTP {response.status}")
    return Reply(response.status, body)

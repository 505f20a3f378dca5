"""The small HTTP server every daemon runs on `http_listen`: /metrics, /healthz, admin routes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

# (method, path) → handler() returning (status code, JSON body)
Routes = dict[tuple[str, str], Callable[[], tuple[int, dict[str, Any]]]]

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _QuietLog:
    def write(self, *_args: Any) -> None:
        pass

    def writelines(self, *_args: Any) -> None:
        pass

    def flush(self) -> None:
        pass


class HttpServer:
    """GET /metrics from `registry`, and JSON `routes`; start()/stop(timeout)."""

    def __init__(
        self,
        listen: tuple[str, int],
        registry: CollectorRegistry,
        routes: Routes,
        before_scrape: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.routes = routes
        self.before_scrape = before_scrape
        self.server = WSGIServer(listen, self.app, log=_QuietLog(), error_log=log)

    @property
    def address(self) -> tuple[str, int]:
        address = self.server.address
        assert isinstance(address, tuple), "listens on an IP address"
        return address

    def start(self) -> None:
        self.server.start()
        log.info("HTTP on %s:%s", *self.server.address[:2])

    def stop(self, timeout: float = 2.0) -> None:
        self.server.stop(timeout)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if path == "/metrics" and method in ("GET", "HEAD"):
            if self.before_scrape is not None:
                self.before_scrape()
            body = generate_latest(self.registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        handler = self.routes.get((method, path))
        if handler is None:
            known = any(route_path == path for _, route_path in self.routes)
            status, payload = (
                (405, {"error": "method not allowed"}) if known else (404, {"error": "not found"})
            )
        else:
            try:
                status, payload = handler()
            except Exception:
                log.exception("HTTP handler %s %s failed", method, path)
                status, payload = 500, {"error": "internal error"}
        body = json.dumps(payload).encode()
        start_response(
            f"{status} {_REASONS.get(status, 'OK')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def http_server(
    listen: tuple[str, int] | None,
    registry: CollectorRegistry,
    routes: Routes,
    before_scrape: Callable[[], None] | None = None,
) -> HttpServer | None:
    """The daemon's HTTP server, or None when its `http_listen` is not set."""
    return None if listen is None else HttpServer(listen, registry, routes, before_scrape)

"""The small HTTP server every daemon runs on `http_listen`: /metrics, /healthz, admin routes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ddc.tokens import TokenGuard
from ddc.wsgi import NoDelayHandler

log = logging.getLogger(__name__)

# (method, path) → handler() returning (status code, JSON body)
Routes = dict[tuple[str, str], Callable[[], tuple[int, dict[str, Any]]]]

_REASONS = {
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
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
    """GET /metrics from `registry`, and JSON `routes`; start()/stop(timeout).

    With a `guard`, every route under GUARDED_PREFIX needs its bearer token (ddc.tokens).
    """

    GUARDED_PREFIX = "/admin/"

    def __init__(
        self,
        listen: tuple[str, int],
        registry: CollectorRegistry,
        routes: Routes,
        before_scrape: Callable[[], None] | None = None,
        guard: TokenGuard | None = None,
    ) -> None:
        self.registry = registry
        self.routes = routes
        self.before_scrape = before_scrape
        # fail closed: without a guard, admin routes answer 403 like an unconfigured token
        self.guard = guard or TokenGuard(None, "a token file", what="the admin routes")
        self.server = WSGIServer(
            listen, self.app, log=_QuietLog(), error_log=log, handler_class=NoDelayHandler
        )

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
        headers = [("Content-Type", "application/json")]
        refusal = None
        if handler is not None and path.startswith(self.GUARDED_PREFIX):
            refusal = self.guard.check(
                environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR", "?")
            )
        if refusal is not None:
            status, payload = refusal[0], {"error": refusal[1]}
            if status == 401:
                headers.append(("WWW-Authenticate", "Bearer"))
        elif handler is None:
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
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_REASONS.get(status, 'OK')}", headers)
        return [body]


def http_server(listen: tuple[str, int] | None, *args: Any, **kwargs: Any) -> HttpServer | None:
    """HttpServer(listen, *args, **kwargs), or None when the daemon's `http_listen` is not set."""
    return None if listen is None else HttpServer(listen, *args, **kwargs)

"""The Flask app factory: blueprints, JSON errors, request metrics."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from ddc.errors import ConfigError
from ddc.tokens import TokenGuard, optional_token
from dedup_service.api import claims, health, ids, records, stats
from dedup_service.errors import (
    RedisUnavailable,
    RequestRejected,
    SinkFailed,
    StillPending,
    TooManyLinks,
)
from dedup_service.extension import Dedup
from dedup_service.metrics import DedupMetrics
from dedup_service.redis_client import RedisClient, connect_configured
from dedup_service.schemas import ErrorSchema
from dedup_service.sinks import build_sink
from dedup_service.sinks.base import Sink

log = logging.getLogger(__name__)
CONFIG_ENV = "DDC_DEDUP_CONFIG"


class InsertionOrderJSON(DefaultJSONProvider):
    """JSON bodies keep the order the schemas declare their fields in."""

    sort_keys = False


class DedupFlask(Flask):
    json_provider_class = InsertionOrderJSON


def error_response(
    status: int,
    code: str,
    message: str,
    errors: Mapping[str, Any] | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    body = ErrorSchema().dump(
        {"code": code, "status": status, "message": message, "errors": errors}
    )
    response = jsonify(body)
    response.status_code = status
    for name, value in headers:
        response.headers[name] = value
    return response


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ValidationError)
    def invalid(exc: ValidationError) -> Response:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return error_response(400, "invalid_request", "the request is invalid", messages)

    @app.errorhandler(RequestRejected)
    def rejected(exc: RequestRejected) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.errors)

    @app.errorhandler(TooManyLinks)
    def too_many_links(exc: TooManyLinks) -> Response:
        return error_response(400, "too_many_links", str(exc), {"link": [str(exc)]})

    @app.errorhandler(RedisUnavailable)
    def redis_down(exc: RedisUnavailable) -> Response:
        app.extensions["ddc_dedup"].metrics.redis_errors.inc()
        return error_response(503, "redis_unavailable", str(exc), None, [("Retry-After", "1")])

    @app.errorhandler(SinkFailed)
    def sink_failed(exc: SinkFailed) -> Response:
        return error_response(503, "sink_failed", str(exc), None, [("Retry-After", "1")])

    @app.errorhandler(StillPending)
    def still_pending(exc: StillPending) -> Response:
        return error_response(503, "pending", str(exc), None, [("Retry-After", "1")])

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() == "allow"]
        status = exc.code or 500
        return error_response(status, code, exc.description or exc.name, None, headers)

    @app.errorhandler(Exception)
    def crashed(exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "internal error (logged)")


def body_size_refusal(length: int | None, limit: int) -> Response | None:
    """A POST body is read only when its Content-Length is declared and within limit: a chunked
    body (no length) is refused with 411, a longer one with 413, before a byte of it is read."""
    if length is None:
        return error_response(
            411, "length_required", "a POST body needs a Content-Length (chunked is not accepted)"
        )
    if length > limit:
        return error_response(
            413,
            "request_entity_too_large",
            f"the body is {length} bytes, more than max_request_size ({limit} bytes)",
        )
    return None


def create_app(
    config: dict[str, Any] | None = None,
    *,
    redis_client: RedisClient | None = None,
    sink: Sink | None = None,
    metrics: DedupMetrics | None = None,
) -> Flask:
    """The dedup API. Without `config` it is read from the file named by $DDC_DEDUP_CONFIG.

    Without `redis_client` one is made from `redis_url`; without `sink` one is built from
    `[dedup.sink]` and started (`ddc-dedup serve` passes both, and owns their lifecycles).
    """
    if config is None:
        from dedup_service.config import load_dedup_config

        config = load_dedup_config(os.environ.get(CONFIG_ENV))
    if redis_client is None:
        if not config["redis_url"]:
            raise ConfigError("dedup.redis_url", "required unless started by 'ddc-dedup serve'")
        redis_client = connect_configured(config, config["redis_url"])
    if sink is None:
        sink = build_sink(config["sink"])
        sink.start()
    app = DedupFlask(__name__, static_folder=None)
    app.config["DEDUP"] = config
    app.config["MAX_CONTENT_LENGTH"] = config["max_request_size"]
    ext = Dedup()
    ext.init_app(app, redis_client, sink, metrics)
    for blueprint in (claims.bp, records.bp, ids.bp, stats.bp, health.bp):
        app.register_blueprint(blueprint)
    _register_errors(app)
    guard = TokenGuard(
        optional_token(config.get("api_token_file"), "dedup.api_token_file"),
        "[dedup] api_token_file",
        lambda reason: ext.metrics.api_auth_failures.labels(reason).inc(),
        what="POST on the dedup API",
    )

    @app.before_request
    def require_token() -> Response | None:
        # every POST changes state: it needs the token before its body is even read
        if request.method != "POST":
            return None
        refusal = guard.check(request.headers.get("Authorization"), request.remote_addr or "?")
        if refusal is None:
            return body_size_refusal(request.content_length, config["max_request_size"])
        status, message = refusal
        code = "forbidden" if status == 403 else "unauthorized"
        headers = [("WWW-Authenticate", "Bearer")] if status == 401 else []
        return error_response(status, code, message, None, headers)

    @app.after_request
    def count_request(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        ext.metrics.http_requests.labels(route, str(response.status_code)).inc()
        return response

    return app

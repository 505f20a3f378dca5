"""/healthz, /readyz (Redis reachable), /metrics and /openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dedup_service.errors import RedisUnavailable
from dedup_service.extension import dedup
from dedup_service.openapi import build_spec
from dedup_service.schemas import HealthSchema, ReadySchema

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    ext = dedup()
    redis_ok = ext.store.ping()
    sink = ext.sink.health() if ext.sink else {"sink": "none", "sink_ok": False}
    merge: dict[str, Any] | None = None
    for extra in ext.health_extras:
        merge = {**(merge or {}), **extra()}
    healthy = redis_ok and sink["sink_ok"] and not (merge or {}).get("paused", False)
    return HealthSchema().dump(
        {
            "status": "ok" if healthy else "degraded",
            "redis": redis_ok,
            "sink": sink["sink"],
            "sink_ok": sink["sink_ok"],
            "merge": merge,
        }
    )


@bp.get("/readyz")
def readyz() -> Any:
    if not dedup().store.ping():
        raise RedisUnavailable("Redis unreachable")
    return ReadySchema().dump({"status": "ready", "redis": True})


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(dedup().metrics.registry), content_type=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
def openapi() -> Any:
    spec = current_app.extensions.get("ddc_dedup_openapi")
    if spec is None:
        spec = current_app.extensions["ddc_dedup_openapi"] = build_spec()
    return jsonify(spec)

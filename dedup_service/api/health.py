"""/healthz, /readyz (Redis reachable), /metrics and /openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dedup_service.api.endpoint import Operation, endpoint
from dedup_service.errors import RedisUnavailable
from dedup_service.extension import dedup
from dedup_service.openapi import build_spec
from dedup_service.schemas import HealthSchema, ReadySchema

bp = Blueprint("health", __name__)
SPEC_CACHE = "ddc_dedup_openapi"


@bp.get("/healthz")
@endpoint(Operation("Liveness", ok="health", response=HealthSchema))
def healthz() -> dict[str, Any]:
    ext = dedup()
    redis_ok = ext.store.reachable()
    sink = ext.sink.health() if ext.sink else {"sink": "none", "sink_ok": False}
    merge: dict[str, Any] | None = None
    for extra in ext.health_extras:
        merge = {**(merge or {}), **extra()}
    healthy = redis_ok and sink["sink_ok"] and not (merge or {}).get("paused", False)
    return {
        "status": "ok" if healthy else "degraded",
        "redis": redis_ok,
        "sink": sink["sink"],
        "sink_ok": sink["sink_ok"],
        "merge": merge,
    }


@bp.get("/readyz")
@endpoint(Operation("Readiness: Redis reachable", ok="ready", response=ReadySchema, errors=(503,)))
def readyz() -> dict[str, Any]:
    if not dedup().store.reachable():
        raise RedisUnavailable("Redis unreachable")
    return {"status": "ready", "redis": True}


@bp.get("/metrics")
@endpoint(
    Operation(
        "Prometheus metrics",
        ok="text exposition format",
        response={"type": "string"},
        media_type="text/plain",
    )
)
def metrics() -> Response:
    return Response(generate_latest(dedup().metrics.registry), content_type=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
@endpoint(Operation("This document", ok="OpenAPI 3", response={"type": "object"}))
def openapi() -> Response:
    spec = current_app.extensions.get(SPEC_CACHE)
    if spec is None:
        spec = current_app.extensions[SPEC_CACHE] = build_spec(current_app)
    return jsonify(spec)

"""GET /v1/stats: per-link first arrivals, duplicates, conflicts, invalid and missing records."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from dedup_service.api.endpoint import Operation, endpoint
from dedup_service.extension import dedup
from dedup_service.schemas import StatsResponseSchema

bp = Blueprint("stats", __name__)


@bp.get("/v1/stats")
@endpoint(
    Operation(
        "Per-link counters across every instance sharing the Redis",
        ok="the counters",
        response=StatsResponseSchema,
        errors=(503,),
    )
)
def get_stats() -> dict[str, Any]:
    ext = dedup()
    return {
        **ext.stats.snapshot(),
        "window_s": ext.config["window"],
        "divergence_window_s": ext.config["divergence_window"],
        "id_from": str(ext.config["id_from"]),
    }

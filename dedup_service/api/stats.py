"""GET /v1/stats: per-link first arrivals, duplicates, conflicts, invalid and missing records."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from dedup_service.extension import dedup
from dedup_service.schemas import StatsResponseSchema

bp = Blueprint("stats", __name__)


@bp.get("/v1/stats")
def get_stats() -> Any:
    ext = dedup()
    snapshot = ext.stats.snapshot()
    return StatsResponseSchema().dump(
        {
            **snapshot,
            "window_s": ext.config["window"],
            "divergence_window_s": ext.config["divergence_window"],
            "id_from": str(ext.config["id_from"]),
        }
    )

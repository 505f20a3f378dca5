"""POST /v1/claims: first-wins claims of ids, committed at once."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from dedup_service.api.endpoint import Operation, endpoint
from dedup_service.extension import dedup
from dedup_service.forwarder import Item
from dedup_service.schemas import ClaimRequestSchema, ClaimResponseSchema

bp = Blueprint("claims", __name__)


@bp.post("/v1/claims")
@endpoint(
    Operation(
        "Claim ids: of concurrent claims of one id exactly one is `first`",
        ok="one result per id",
        body=ClaimRequestSchema,
        response=ClaimResponseSchema,
        errors=(400, 411, 413, 503),
        batch="ids",
    )
)
def claim(body: dict[str, Any]) -> dict[str, Any]:
    ext = dedup()
    ext.check_link(body["link"])
    ext.check_batch("ids", len(body["ids"]))
    fps = body["fingerprints"] or [""] * len(body["ids"])
    items = [Item(ident, fp) for ident, fp in zip(body["ids"], fps, strict=True)]
    return {"results": ext.forwarder.claim(body["link"], items)}

"""GET /v1/ids/<id>: what the store knows about one id."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from dedup_service.api.endpoint import Operation, endpoint
from dedup_service.errors import RequestRejected
from dedup_service.extension import dedup
from dedup_service.schemas import IdPathSchema, IdResponseSchema

bp = Blueprint("ids", __name__)


@bp.get("/v1/ids/<path:ident>")
@endpoint(
    Operation(
        "What is known about one id",
        ok="the claim",
        path=IdPathSchema,
        response=IdResponseSchema,
        errors=(404, 503),
    )
)
def get_id(ident: str) -> dict[str, Any]:
    store = dedup().store
    claim = store.lookup(ident)
    if claim is None:
        raise RequestRejected(404, "not_found", "id unknown (never claimed, or past the window)")
    names = store.links()
    if any(
        bit not in names
        for bit in range(claim.links_mask.bit_length())
        if claim.links_mask >> bit & 1
    ):
        names = store.links(refresh=True)
    seen = [names.get(bit, f"#{bit}") for bit in sorted(names) if claim.links_mask >> bit & 1]
    return {
        "id": ident,
        "state": claim.state,
        "first_link": names.get(claim.first_index),
        "links": seen,
        "fingerprint": claim.fingerprint or None,
        "ttl_s": claim.ttl_ms / 1000.0,
    }

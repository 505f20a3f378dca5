"""POST /v1/records: forwards the first copy of each record to the sink."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint

from ddc.cooperate import HubTurn
from ddc.protocol.record import Record
from dedup_service.api.endpoint import Operation, endpoint
from dedup_service.errors import InvalidRecord
from dedup_service.extension import dedup
from dedup_service.forwarder import Item
from dedup_service.keys import extract_id, fingerprint, identity_basis
from dedup_service.schemas import RecordsRequestSchema, RecordsResponseSchema

bp = Blueprint("records", __name__)
log = logging.getLogger(__name__)


@bp.post("/v1/records")
@endpoint(
    Operation(
        "Forward the first copy of each record to the sink",
        ok="one result per record",
        body=RecordsRequestSchema,
        response=RecordsResponseSchema,
        errors=(400, 411, 413, 503),
        batch="records",
    )
)
def post_records(body: dict[str, Any]) -> dict[str, Any]:
    ext = dedup()
    link, raw = body["link"], body["records"]
    ext.check_link(link)
    ext.check_batch("records", len(raw))
    spec = ext.config["id_from"]
    # a tombstone (null value) stays null for a sink that can write one, else it goes out empty
    keep_null = bool(getattr(ext.forwarder.sink, "carries_tombstones", False))
    items: list[Item] = []
    positions: list[int] = []
    errors: dict[str, str] = {}
    turn = HubTurn()  # /healthz and the other requests get the hub while a big batch is read
    for index, entry in enumerate(raw):
        if turn.due():
            turn()
        # by position (value, key, topic, partition, offset, timestamp, headers): cheaper
        record = Record(entry["value"], entry["key"], None, -1, -1, -1, [*entry["headers"].items()])
        basis = record if record.value is not None else identity_basis(record)
        try:
            ident = extract_id(spec, basis, entry.get("id"))
        except InvalidRecord as exc:
            errors[str(index)] = f"id_from {spec}: {exc}"
            continue
        items.append(Item(ident, fingerprint(basis), record if keep_null else basis))
        positions.append(index)
    ext.metrics.records_received.labels(link).inc(len(raw))
    if errors:
        ext.metrics.records_invalid.labels(link).inc(len(errors))
        ext.stats.add(link, "invalid", len(errors))
        index_text, problem = next(iter(errors.items()))
        log.warning(
            "link %s: %d record(s) without an id, not forwarded (record %s: %s)",
            link,
            len(errors),
            index_text,
            problem,
        )
    results = ["invalid"] * len(raw)
    for position, result in zip(positions, ext.forwarder.forward(link, items), strict=True):
        results[position] = result
    return {
        "received": len(raw),
        "forwarded": results.count("first"),
        "duplicates": results.count("duplicate"),
        "conflicts": results.count("conflict"),
        "invalid": len(errors),
        "results": results,
        "errors": errors,
    }

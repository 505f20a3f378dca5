"""POST /v1/records: forwards the first copy of each record to the sink."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint

from ddc.cooperate import HubTurn
from ddc.errors import EnvelopeError
from ddc.protocol.envelope import MEDIA_TYPE, VERSION, batch_count, decode_batch
from ddc.protocol.record import Record
from dedup_service.api.endpoint import Operation, endpoint
from dedup_service.errors import InvalidRecord, RequestRejected
from dedup_service.extension import dedup
from dedup_service.forwarder import Item
from dedup_service.keys import extract_id, fingerprint, identity_basis
from dedup_service.schemas import RecordsQuerySchema, RecordsRequestSchema, RecordsResponseSchema

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
        binary=MEDIA_TYPE,
        query=RecordsQuerySchema,
        binary_text="the records as one records-envelope batch (version 1, docs/wire-protocol.md), "
        "the link in the query: what the egress dedup sink sends (no JSON or base64 per record); "
        "an id travels in the record's ddc-id header",
    )
)
def post_records(body: dict[str, Any]) -> dict[str, Any]:
    ext = dedup()
    link = body["link"]
    ext.check_link(link)
    raw: list[Any] = body["records"] if "raw" not in body else _batch_records(body["raw"])
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
        if type(entry) is Record:  # a batch's: only its key, value and headers count here
            headers = entry.headers if len(entry.headers) < 2 else _first_of_each(entry.headers)
            record = Record(entry.value, entry.key, None, -1, -1, -1, headers)
            explicit = None
        else:
            headers = [*entry["headers"].items()]
            record = Record(entry["value"], entry["key"], None, -1, -1, -1, headers)
            explicit = entry.get("id")
        basis = record if record.value is not None else identity_basis(record)
        try:
            ident = extract_id(spec, basis, explicit)
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


def _batch_records(raw: bytes) -> list[Record]:
    """The records of a records-batch body, refused (400) as a whole when it is not one exactly;
    its declared count is held to max_batch before it is decoded."""
    try:
        count = batch_count(raw)
        dedup().check_batch("records", count)
        batch = decode_batch(raw)
    except EnvelopeError as exc:
        raise RequestRejected(
            400, "invalid_batch", f"the body is not a records batch: {exc}"
        ) from None
    if batch.version != VERSION:
        raise RequestRejected(
            400, "invalid_batch", f"records batch version {batch.version}: only {VERSION} is taken"
        )
    if not batch.records:
        raise RequestRejected(400, "invalid_batch", "the records batch holds no record")
    return batch.records


def _first_of_each(headers: list[tuple[str, bytes | None]]) -> list[tuple[str, bytes | None]]:
    """The first header of each name, as the JSON body's headers object holds them."""
    first: dict[str, bytes | None] = {}
    for name, value in headers:
        first.setdefault(name, value)
    return [*first.items()]

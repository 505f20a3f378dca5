"""marshmallow schemas of every request, response and the error body; /openapi.json derives from them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from ddc.config.schemas import StrictSchema
from dedup_service.config import LINK_NAME, LINK_NAME_PROBLEM
from dedup_service.keys import MAX_ID_LENGTH

MAX_FINGERPRINT_LENGTH = 128
RESULTS = ["first", "duplicate", "conflict"]
RECORD_RESULTS = [*RESULTS, "invalid"]


class Base64(fields.Field[bytes]):
    """Bytes carried as standard base64 text (in the OpenAPI document: a string of format byte)."""

    default_error_messages = {"invalid": "Not a valid string.", "base64": "not valid base64"}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {}).update(type="string", format="byte")
        super().__init__(**kwargs)

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bytes:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise self.make_error("base64") from None

    def _serialize(
        self, value: bytes | None, attr: str | None, obj: object, **kwargs: Any
    ) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")


def encodable(value: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValidationError("not valid Unicode (lone surrogate)") from None


class Strings(fields.List[str]):
    """A list of strings, checked in one pass when every item is fine (id batches are large);
    otherwise the inner field's validators name the bad items."""

    def __init__(self, *, min_length: int = 0, max_length: int, forbid: str = "", **kwargs: Any):
        validators: list[Callable[[str], object]] = [
            validate.Length(min=min_length, max=max_length),
            encodable,
        ]
        if forbid:
            validators.append(
                validate.Regexp(f"^[^{forbid}]*$", error=f"must not contain {forbid!r}")
            )
        super().__init__(fields.String(validate=validators), **kwargs)
        self.bounds = (min_length, max_length)
        self.forbid = forbid

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[str | None]:
        low, high = self.bounds
        if isinstance(value, list) and all(
            type(item) is str and low <= len(item) <= high for item in value
        ):
            joined = "".join(value)
            try:
                joined.encode()
                if not (self.forbid and self.forbid in joined):
                    result: list[str | None] = list(value)
                    for validator in self.validators:
                        validator(result)
                    return result
            except UnicodeEncodeError:
                pass
        return super()._deserialize(value, attr, data, **kwargs)


class Results(fields.List[str]):
    """One result name per item; dumped as the list itself when every item is a string (the
    inner field's per-item dump was a few % of the service's CPU on large batches)."""

    def __init__(self, names: list[str], **kwargs: Any) -> None:
        super().__init__(fields.String(validate=validate.OneOf(names)), **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> list[Any] | None:
        if type(value) is list and all(type(item) is str for item in value):
            return list(value)
        return super()._serialize(value, attr, obj, **kwargs)


def link_field(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(LINK_NAME, error=LINK_NAME_PROBLEM),
        metadata={"description": "the link (redundant path) this copy arrived on", "example": "a"},
        **kwargs,
    )


def id_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=MAX_ID_LENGTH), encodable], **kwargs)


class ErrorSchema(StrictSchema):
    code = fields.String(required=True, metadata={"example": "redis_unavailable"})
    status = fields.Integer(required=True, metadata={"example": 503})
    message = fields.String(required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        allow_none=True,
        required=True,
        metadata={"description": "field → problems, for invalid input; else null"},
    )


class ClaimRequestSchema(StrictSchema):
    link = link_field(required=True)
    ids = Strings(
        min_length=1, max_length=MAX_ID_LENGTH, required=True, validate=validate.Length(min=1)
    )
    fingerprints = Strings(
        max_length=MAX_FINGERPRINT_LENGTH,
        forbid="|",
        load_default=None,
        metadata={
            "description": "content fingerprint per id (same length as ids); enables conflict"
        },
    )

    @validates_schema
    def _same_length(self, data: dict[str, Any], **kwargs: Any) -> None:
        fps = data.get("fingerprints")
        if fps is not None and len(fps) != len(data.get("ids", ())):
            raise ValidationError("must have one entry per id", "fingerprints")


class ClaimResponseSchema(StrictSchema):
    results = Results(RESULTS, required=True)


class RecordSchema(StrictSchema):
    id = id_field(metadata={"description": 'the record id when id_from = "id"'})
    key = Base64(allow_none=True, load_default=None)
    value = Base64(
        required=True,
        allow_none=True,
        metadata={"description": "null: a Kafka tombstone (ids and fingerprints take it as empty)"},
    )
    headers = fields.Dict(
        keys=fields.String(),
        values=Base64(allow_none=True),
        load_default=dict,
        metadata={"description": "header name → base64 value (the egress sink adds ddc-src)"},
    )


RECORD_FIELDS = frozenset(("id", "key", "value", "headers"))


def _b64(value: object) -> bytes | None:
    """Base64 text as bytes (None stays None); ValueError (or TypeError) when it is not.

    binascii's strict mode is what b64decode(validate=True) runs (Python 3.11+), without its
    Python wrapper: the same text is accepted, and non-ASCII text is a ValueError as well."""
    if value is None:
        return None
    if type(value) is not str:
        raise TypeError("not a string")
    return binascii.a2b_base64(value, strict_mode=True)


def fast_record(entry: object) -> dict[str, Any]:
    """One record as RecordSchema loads it, checked in plain Python; ValueError/TypeError (then
    RecordSchema names the problem) for anything it does not accept exactly as RecordSchema."""
    if type(entry) is not dict or not entry.keys() <= RECORD_FIELDS or "value" not in entry:
        raise ValueError("not a plain record")
    headers = entry.get("headers", {})
    if type(headers) is not dict:
        raise TypeError("headers")
    record: dict[str, Any] = {
        "value": _b64(entry["value"]),
        "key": _b64(entry.get("key")),
        "headers": {},
    }
    for name, value in headers.items():
        if type(name) is not str:
            raise TypeError("header name")
        record["headers"][name] = _b64(value)
    if "id" in entry:
        ident = entry["id"]
        if type(ident) is not str or not 1 <= len(ident) <= MAX_ID_LENGTH:
            raise ValueError("id")
        ident.encode()  # a lone surrogate: UnicodeEncodeError, a ValueError
        record["id"] = ident
    return record


class Records(fields.List[dict[str, Any]]):
    """The records of a batch, each checked in plain Python when it is well formed (marshmallow
    per record was most of the service's time); at the first one that is not, the whole list
    goes through RecordSchema, which names every problem."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.Nested(RecordSchema), **kwargs)

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[Any]:
        if type(value) is list:
            try:
                return [fast_record(entry) for entry in value]
            except (ValueError, TypeError, binascii.Error):
                pass
        return super()._deserialize(value, attr, data, **kwargs)


class RecordsRequestSchema(StrictSchema):
    link = link_field(required=True)
    records = Records(required=True, validate=validate.Length(min=1))


class RecordsQuerySchema(StrictSchema):
    """POST /v1/records with a records-batch body: the link travels as a query parameter."""

    link = link_field(required=True)


class RecordsResponseSchema(StrictSchema):
    received = fields.Integer(required=True)
    forwarded = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    conflicts = fields.Integer(required=True)
    invalid = fields.Integer(required=True)
    results = Results(RECORD_RESULTS, required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "record index → why it is invalid"},
    )


class IdPathSchema(StrictSchema):
    ident = id_field(required=True, data_key="id")


class IdResponseSchema(StrictSchema):
    id = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(["pending", "committed"]))
    first_link = fields.String(required=True, allow_none=True)
    links = fields.List(fields.String(), required=True)
    fingerprint = fields.String(required=True, allow_none=True)
    ttl_s = fields.Float(required=True)


class LinkStatsSchema(StrictSchema):
    first = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    conflict = fields.Integer(required=True)
    invalid = fields.Integer(required=True)
    missing = fields.Integer(
        required=True,
        metadata={
            "description": "records that arrived on other links only, past divergence_window"
        },
    )


class StatsResponseSchema(StrictSchema):
    links = fields.Dict(keys=fields.String(), values=fields.Nested(LinkStatsSchema), required=True)
    window_s = fields.Float(required=True)
    divergence_window_s = fields.Float(required=True)
    id_from = fields.String(required=True)


class HealthSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "degraded"]))
    redis = fields.Boolean(required=True)
    sink = fields.String(required=True)
    sink_ok = fields.Boolean(required=True)
    merge = fields.Dict(keys=fields.String(), values=fields.Raw(), allow_none=True, required=True)


class ReadySchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["ready"]))
    redis = fields.Boolean(required=True)

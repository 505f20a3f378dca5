"""One declaration per view: what it takes, what it answers, which errors it documents.

`@endpoint(Operation(...))` under the blueprint's route decorator wraps the view: the request body
is loaded with the declared schema before the view runs (marshmallow.ValidationError → 400) and
the view's result is dumped with the declared response schema. openapi.py builds /openapi.json
from the same declarations by walking the app's url_map, so the document and the views cannot
drift apart (flask-smorest's idea, without its dependency).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import request
from flask.typing import ResponseReturnValue
from marshmallow import Schema

from dedup_service.errors import RequestRejected
from dedup_service.extension import dedup

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    """What /openapi.json says about one view, and what its wrapper enforces.

    response: the 200 body, a schema (the view returns a dict, dumped with it) or a JSON Schema
    (the view returns its own Response, passed through). path: the path parameters, documented
    only (the view gets them as Flask converted them); a field's data_key names the parameter.
    """

    summary: str
    ok: str
    response: type[Schema] | dict[str, Any]
    media_type: str = JSON
    body: type[Schema] | None = None
    path: type[Schema] | None = None
    errors: tuple[int, ...] = ()
    # the body's list field held to max_batch before any per-item validation (a huge batch
    # costs far more to validate than to refuse)
    batch: str | None = None
    # a second media type for the body: its raw bytes reach the view as body["raw"], beside the
    # query parameters `query` loads (what the JSON body would say besides its batch)
    binary: str | None = None
    query: type[Schema] | None = None
    binary_text: str = ""


class Endpoint:
    """A view wrapped by its Operation: Flask calls it, openapi.py reads `operation`."""

    def __init__(self, view: Callable[..., Any], operation: Operation) -> None:
        functools.update_wrapper(self, view)
        self.view = view
        self.operation = operation
        self.body_schema = operation.body() if operation.body is not None else None
        self.query_schema = operation.query() if operation.query is not None else None
        response = operation.response
        self.response_schema = response() if isinstance(response, type) else None

    def __call__(self, **path: Any) -> ResponseReturnValue:
        binary = self.operation.binary
        if binary is not None and request.mimetype == binary:
            result = self.view(load_raw(self.query_schema), **path)
        elif self.body_schema is not None:
            result = self.view(load_body(self.body_schema, self.operation.batch), **path)
        else:
            result = self.view(**path)
        if self.response_schema is None:
            return result
        dumped: dict[str, Any] = self.response_schema.dump(result)
        return dumped


def endpoint(operation: Operation) -> Callable[[Callable[..., Any]], Endpoint]:
    """The decorator that attaches `operation` to a view (put it under @bp.get/@bp.post)."""

    def wrap(view: Callable[..., Any]) -> Endpoint:
        return Endpoint(view, operation)

    return wrap


def load_body(schema: Schema, batch: str | None = None) -> dict[str, Any]:
    """The JSON body validated by `schema` (marshmallow.ValidationError → 400); its list field
    `batch` is held to max_batch first (413). JSON nested too deep for the parser is a 400."""
    try:
        data = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        data = None
    if not isinstance(data, dict):
        raise RequestRejected(400, "invalid_json", "the request body must be a JSON object")
    if batch is not None and isinstance(data.get(batch), list):
        dedup().check_batch(batch, len(data[batch]))
    loaded: dict[str, Any] = schema.load(data)
    return loaded


def load_raw(query: Schema | None) -> dict[str, Any]:
    """The query parameters validated by `query` (marshmallow.ValidationError → 400), and the
    raw body as "raw"."""
    loaded: dict[str, Any] = query.load(request.args.to_dict()) if query is not None else {}
    return {**loaded, "raw": request.get_data(cache=False)}

"""The HTTP API's blueprints, one per resource."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema

from dedup_service.errors import RequestRejected


def load_body(schema: Schema) -> dict[str, Any]:
    """The JSON body validated by `schema` (marshmallow.ValidationError → 400)."""
    data = request.get_json(force=True, silent=True)
    if data is None:
        raise RequestRejected(400, "invalid_json", "the request body must be a JSON object")
    return schema.load(data)

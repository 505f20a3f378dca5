"""The OpenAPI 3 document (/openapi.json), built from the app's routes and their declarations.

Every rule of the app's url_map must lead to a view declared with api.endpoint.Operation; its
path, methods and path parameters come from the rule, its schemas and statuses from the
Operation (the same schemas the views load and dump with), turned into JSON Schema by apispec.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from werkzeug.routing import Rule

from dedup_service.api.endpoint import JSON, Endpoint, Operation
from dedup_service.schemas import ErrorSchema

ERROR_TEXT = {
    400: "invalid input (the body names the fields)",
    401: "no or wrong Authorization: Bearer token ([dedup] api_token_file)",
    403: "no token configured: set [dedup] api_token_file to enable POST routes",
    404: "not found",
    411: "no Content-Length: a POST body must declare its length (chunked is refused)",
    413: "batch larger than max_batch, or body larger than max_request_size",
    503: "Redis unavailable, sink failed or ids still pending elsewhere: nothing was lost, retry",
}
UNDOCUMENTED_METHODS = {"HEAD", "OPTIONS"}
RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def _content(schema: type[Any] | dict[str, Any], media_type: str = JSON) -> dict[str, Any]:
    return {"content": {media_type: {"schema": schema}}}


def _path_of(rule: Rule, operation: Operation) -> str:
    """The rule's path in OpenAPI form: `<path:ident>` → `{id}` when the path schema's field
    `ident` has data_key "id"."""
    names: dict[str, str] = {}
    if operation.path is not None:
        fields = operation.path().fields
        names = {name: field.data_key or name for name, field in fields.items()}
    return RULE_ARGUMENT.sub(lambda m: "{" + names.get(m[1], m[1]) + "}", rule.rule)


def _operation_spec(operation: Operation) -> dict[str, Any]:
    responses: dict[int, Any] = {
        200: {"description": operation.ok, **_content(operation.response, operation.media_type)}
    }
    for status in operation.errors:
        responses[status] = {"description": ERROR_TEXT[status], **_content(ErrorSchema)}
    spec: dict[str, Any] = {"summary": operation.summary}
    if operation.path is not None:
        spec["parameters"] = [{"in": "path", "schema": operation.path}]
    if operation.body is not None:
        spec["requestBody"] = {"required": True, **_content(operation.body)}
    if operation.binary is not None:
        content = spec.setdefault("requestBody", {"required": True, "content": {}})["content"]
        content[operation.binary] = {
            "schema": {"type": "string", "format": "binary", "description": operation.binary_text}
        }
    if operation.query is not None:
        spec.setdefault("parameters", []).append({"in": "query", "schema": operation.query})
    spec["responses"] = responses
    return spec


def build_spec(app: Flask) -> dict[str, Any]:
    """The document of every route of `app`; TypeError naming a view without a declaration."""
    spec = APISpec(
        title="DDC dedup service",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Merges the copies that redundant DDC links deliver (docs/dedup.md)."},
    )
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not isinstance(view, Endpoint):
            raise TypeError(f"route {rule.rule} ({rule.endpoint}) has no api.endpoint declaration")
        operations = paths.setdefault(_path_of(rule, view.operation), {})
        for method in sorted((rule.methods or set()) - UNDOCUMENTED_METHODS):
            operation = _operation_spec(view.operation)
            if method == "POST":  # every POST needs the API token (ddc.tokens)
                operation["security"] = [{"bearer": []}]
                for status in (401, 403):
                    operation["responses"][status] = {
                        "description": ERROR_TEXT[status],
                        **_content(ErrorSchema),
                    }
            operations[method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path, operations=operations)
    return spec.to_dict()

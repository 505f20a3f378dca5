import re

import pytest
import redis
from flask import Flask
from marshmallow import ValidationError

from dedup_service.app import create_app
from dedup_service.config import load_dedup_config
from dedup_service.openapi import RULE_ARGUMENT, build_spec
from dedup_service.schemas import (
    ClaimRequestSchema,
    RecordSchema,
    RecordsRequestSchema,
    fast_record,
)
from dedup_service.sinks.base import Sink


def test_claim_request_fast_and_slow_paths_agree():
    schema = ClaimRequestSchema()
    ok = schema.load({"link": "a", "ids": ["x", "y"], "fingerprints": ["1", ""]})
    assert ok == {"link": "a", "ids": ["x", "y"], "fingerprints": ["1", ""]}
    assert schema.load({"link": "a", "ids": ["x"]})["fingerprints"] is None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"link": "a", "ids": []}, "ids"),
        ({"link": "a", "ids": ["x", ""]}, "ids"),
        ({"link": "a", "ids": ["x" * 1025]}, "ids"),
        ({"link": "a", "ids": ["\udc80"]}, "ids"),
        ({"link": "a", "ids": "x"}, "ids"),
        ({"link": "a", "ids": ["x", 1]}, "ids"),
        ({"link": "a", "ids": ["x"], "fingerprints": ["a|b"]}, "fingerprints"),
        ({"link": "a", "ids": ["x"], "fingerprints": ["1", "2"]}, "fingerprints"),
        ({"link": "-a", "ids": ["x"]}, "link"),
        ({"link": "a", "ids": ["x"], "extra": 1}, "extra"),
    ],
)
def test_claim_request_errors_name_the_field(body, field):
    with pytest.raises(ValidationError) as caught:
        ClaimRequestSchema().load(body)
    assert field in caught.value.messages


def test_records_fast_path_matches_marshmallow():
    body = {
        "link": "a",
        "records": [
            {"id": "x", "value": "aGk=", "key": "aw==", "headers": {"h": "aGk=", "n": None}},
            {"value": ""},
        ],
    }
    loaded = RecordsRequestSchema().load(body)
    assert loaded["records"] == [
        {"id": "x", "value": b"hi", "key": b"k", "headers": {"h": b"hi", "n": None}},
        {"value": b"", "key": None, "headers": {}},
    ]


@pytest.mark.parametrize(
    "record, problem",
    [
        ({"value": "!!"}, {"value": ["not valid base64"]}),
        ({"value": "aGk=", "x": 1}, {"x": ["Unknown field."]}),
        ({"value": "aGk=", "key": "é"}, {"key": ["not valid base64"]}),
        ({"id": "", "value": "aGk="}, {"id": ["Length must be between 1 and 1024."]}),
        ({"key": "aGk="}, {"value": ["Missing data for required field."]}),
    ],
)
def test_records_errors_name_record_and_field(record, problem):
    with pytest.raises(ValidationError) as caught:
        RecordsRequestSchema().load({"link": "a", "records": [{"value": ""}, record]})
    assert caught.value.messages == {"records": {1: problem}}


@pytest.fixture(scope="module")
def app():
    """The real app with every route; its Redis client never connects, its sink never starts."""
    document = {"dedup": {"links": ["a"], "sink": {"type": "udp", "target": "127.0.0.1:9"}}}
    config = load_dedup_config(None, {}, document=document)
    return create_app(config, redis_client=redis.Redis(), sink=Sink(config["sink"]))


def test_openapi_document(app):
    spec = build_spec(app)
    assert spec["openapi"] == "3.0.3"
    assert set(spec["paths"]) == {
        "/v1/claims",
        "/v1/records",
        "/v1/ids/{id}",
        "/v1/stats",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }
    claim = spec["paths"]["/v1/claims"]["post"]
    assert claim["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert claim["security"] == [{"bearer": []}]
    assert {"401", "403"} <= set(claim["responses"])
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert "security" not in spec["paths"]["/v1/stats"]["get"]
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "status", "message", "errors"}
    assert spec["components"]["schemas"]["Record"]["properties"]["value"]["format"] == "byte"
    ids = spec["paths"]["/v1/ids/{id}"]["get"]
    assert ids["parameters"] == [
        {
            "in": "path",
            "name": "id",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 1024},
        }
    ]
    assert set(ids["responses"]) == {"200", "404", "503"}
    assert spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"] == {
        "text/plain": {"schema": {"type": "string"}}
    }


def test_every_route_is_in_the_openapi_document_and_nothing_else(app):
    """Both sides with their path parameters unnamed: `<path:ident>` and `{id}` are `{}`."""
    routes = {
        (RULE_ARGUMENT.sub("{}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (re.sub(r"\{[^}]+\}", "{}", path), method)
        for path, operations in build_spec(app)["paths"].items()
        for method in operations
    }
    assert routes == documented
    assert len(routes) == 8


def test_a_route_without_a_declaration_is_refused():
    bare = Flask(__name__, static_folder=None)
    bare.add_url_rule("/v1/undeclared", view_func=lambda: "")
    with pytest.raises(TypeError, match="/v1/undeclared"):
        build_spec(bare)


@pytest.mark.parametrize(
    "entry",
    [
        {"value": None, "key": None, "headers": {"ddc-src": "b3JkZXJzLzAvMQ==", "n": None}},
        {"id": "é-order", "value": "aGk="},
        {"value": "", "headers": {}},
    ],
)
def test_the_fast_record_check_loads_what_record_schema_loads(entry):
    assert fast_record(entry) == RecordSchema().load(entry)


@pytest.mark.parametrize(
    "entry",
    [
        {"value": "aGk", "key": None},  # bad padding
        {"value": "aGk=", "headers": None},
        {"value": "aGk=", "id": None},
        {"value": "aGk=", "id": "x" * 1025},
        {"value": "aGk=", "id": "\ud800"},
        {"value": 7},
        {"value": "aGk=", "headers": {"h": 1}},
        {"value": "aGk=", "extra": 1},
        ["aGk="],
    ],
)
def test_the_fast_record_check_leaves_every_refusal_to_record_schema(entry):
    with pytest.raises((ValueError, TypeError)):
        fast_record(entry)
    with pytest.raises(ValidationError):
        RecordsRequestSchema().load({"link": "a", "records": [entry]})

import pytest
from marshmallow import ValidationError

from dedup_service.openapi import build_spec
from dedup_service.schemas import ClaimRequestSchema, RecordsRequestSchema


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


def test_openapi_document():
    spec = build_spec()
    assert spec["openapi"] == "3.0.3"
    assert set(spec["paths"]) == {
        "/v1/claims", "/v1/records", "/v1/ids/{id}", "/v1/stats", "/healthz", "/readyz", "/metrics",
        "/openapi.json",
    }  # fmt: skip
    claim = spec["paths"]["/v1/claims"]["post"]
    assert claim["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "status", "message", "errors"}
    assert spec["components"]["schemas"]["Record"]["properties"]["value"]["format"] == "byte"

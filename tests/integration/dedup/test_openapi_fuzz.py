"""schemathesis against /openapi.json: no 5xx, every response as documented (status, type, schema).

The app runs in-process (WSGI) on a real Redis and a real file sink. Every operation is fuzzed
with valid (positive) and invalid (negative) requests. (schemathesis' pytest plugin does not work
with pytest 9, so the operations are driven through their hypothesis strategies directly.)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from dedup_service.app import create_app
from dedup_service.config import load_dedup_config
from dedup_service.openapi import build_spec
from dedup_service.sinks.base import Sink
from tests.integration.dedup.conftest import API_TOKEN, write_token

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 40
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}  # every POST needs the API token


def fuzz_config(redis_url: str, out: Path, token: Path | None = None) -> dict[str, Any]:
    document = {
        "dedup": {
            "links": ["a", "b"],
            **({"api_token_file": str(token)} if token else {}),
            "redis_url": redis_url,
            "key_prefix": "fuzz" + uuid.uuid4().hex[:8],
            "max_batch": 200,
            "pending_timeout": "2s",
            "sink": {"type": "file", "path": str(out)},
        }
    }
    return load_dedup_config(None, {}, document=document)


@pytest.fixture(scope="module")
def api_schema(redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    app = create_app(fuzz_config(redis_url, tmp / "out.bin", write_token(tmp / "api.token")))
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def operation_labels() -> list[str]:
    """Every operation of the app's document (its Redis client never connects here)."""
    config = fuzz_config("redis://127.0.0.1:9/0", Path(os.devnull))
    app = create_app(config, redis_client=redis.Redis(), sink=Sink(config["sink"]))
    paths = build_spec(app)["paths"]
    return [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", operation_labels())
def test_api_conforms_to_its_openapi_document(api_schema, label, mode):
    operation = api_schema.find_operation_by_label(label)
    if mode is GenerationMode.NEGATIVE and not (operation.body or operation.path_parameters):
        pytest.skip("no input to make invalid")
    seen = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case):
        response = case.call_and_validate(checks=CHECKS, headers=AUTH)
        seen.append(response.status_code)

    run()
    assert seen, "no request was made"
    assert max(seen) < 500

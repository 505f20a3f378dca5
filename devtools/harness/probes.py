"""Probes of a daemon's HTTP port: JSON bodies and Prometheus text."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def get_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def get_json(url: str, timeout: float = 5.0) -> Any:
    """The decoded body; an error status raises urllib.error.HTTPError (an OSError)."""
    return json.loads(get_text(url, timeout))


def post_json(
    url: str, body: Any = None, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> Any:
    """POST `body` as JSON (an empty body when None); the decoded answer."""
    data = b"" if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def parse_metrics(text: str) -> dict[str, float]:
    """{'name{labels}': value} from Prometheus text, and under the bare name of a labelled
    sample the sum over its label sets: values["ddc_ingress_packets_sent_total"] counts every type.
    """
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, text_value = line.rpartition(" ")
        value = float(text_value)
        values[name] = value
        if "{" in name:
            bare = name.split("{", 1)[0]
            values[bare] = values.get(bare, 0.0) + value
    return values

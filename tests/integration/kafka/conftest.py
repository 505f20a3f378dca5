"""Fixtures of the Kafka integration tests: DDC processes cleaned up whatever the outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kafka.helpers import Pair


@pytest.fixture
def make_pair(tmp_path: Path) -> Iterator[Any]:
    pairs: list[Pair] = []

    def make(name: str, **kwargs: Any) -> Pair:
        pair = Pair(tmp_path, name, **kwargs)
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        pair.ingress.kill()
        pair.egress.kill()

"""Fixtures of the integration tests: link pairs of real ddc processes on loopback."""

from __future__ import annotations

import pytest

from devtools.harness import Pair


@pytest.fixture
def pairs(tmp_path):
    started: list[Pair] = []

    def make(**options) -> Pair:
        pair = Pair(tmp_path, name=f"p{len(started)}", **options)
        started.append(pair)
        return pair

    yield make
    for pair in started:
        pair.stop()

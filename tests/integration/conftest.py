"""Fixtures of the integration tests: link pairs of real ddc processes on loopback."""

from __future__ import annotations

import pytest

from devtools.harness import Pair
from tests.integration.streams import Collector


@pytest.fixture
def pairs(tmp_path):
    """make(**Pair options) → a Pair (not started), stopped at the end of the test."""
    started: list[Pair] = []

    def make(**options) -> Pair:
        pair = Pair(tmp_path, name=f"p{len(started)}", **options)
        started.append(pair)
        return pair

    yield make
    for pair in started:
        pair.stop()


@pytest.fixture
def linked(pairs):
    """make(source, sink, **Pair options) → (pair, collector): a started pair whose UDP or TCP
    sink delivers to a running Collector."""
    collectors: list[Collector] = []

    def make(source: str, sink: str, **options) -> tuple[Pair, Collector]:
        pair = pairs(source=source, sink=sink, **options)
        collector = Collector(sink, pair.sink_port)
        collector.start()
        collectors.append(collector)
        pair.start()
        return pair, collector

    yield make
    for collector in collectors:
        collector.stop()

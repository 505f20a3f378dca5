"""Fixtures of the security tests: authenticated link pairs of real ddc processes on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddc.protocol.auth_keys import new_key_line
from devtools.harness import Pair
from tests.integration.conftest import pairs  # noqa: F401  (real link pairs)
from tests.integration.dedup.conftest import dedup_server  # noqa: F401  (real Redis)
from tests.integration.streams import Collector


def write_keys(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    path.chmod(0o600)
    return path


@pytest.fixture
def key_line():
    return new_key_line(1)


@pytest.fixture
def auth_pairs(tmp_path, key_line):
    """make(**Pair options) → (pair, collector): a started UDP→UDP pair, both sides
    authenticating with one key file (`pair.keys`), the sink delivering to a Collector."""
    started: list[tuple[Pair, Collector]] = []

    def make(start: bool = True, **options) -> tuple[Pair, Collector]:
        name = f"s{len(started)}"
        keys = write_keys(tmp_path / f"{name}.keys", key_line)
        options.setdefault("source", "udp")
        options.setdefault("sink", "udp")
        options["transport"] = {"auth_keys": str(keys), **options.get("transport", {})}
        options["egress_transport"] = {
            "auth_keys": str(keys),
            **options.get("egress_transport", {}),
        }
        pair = Pair(tmp_path, name=name, **options)
        pair.keys = keys  # type: ignore[attr-defined]
        assert pair.sink_port is not None
        collector = Collector(pair.sink_type, pair.sink_port)
        collector.start()
        started.append((pair, collector))
        if start:
            pair.start()
        return pair, collector

    yield make
    for pair, collector in started:
        collector.stop()
        pair.stop()

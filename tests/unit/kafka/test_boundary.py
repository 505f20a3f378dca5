"""kafka-python's private names appear only in ddc/kafka/ (imports: ruff's TID251, pyproject)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PRIVATE = re.compile(
    r"_add_cb_eb|\._sender\b|\._coordinator\b|\._client\b|\._fetcher\b|\._subscription\b"
    r"|\bkafka\.(future|producer|consumer|coordinator|conn|client_async)\b"
)


def test_no_kafka_python_private_name_outside_ddc_kafka():
    adapter = ROOT / "ddc" / "kafka"
    offenders = []
    for package in ("ddc", "dedup_service"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if adapter in path.parents:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if PRIVATE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_ruff_bans_kafka_imports_outside_the_adapter():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"TID251"' in pyproject
    assert '"kafka".msg' in pyproject
    assert '"ddc/kafka/**" = ["TID251"]' in pyproject

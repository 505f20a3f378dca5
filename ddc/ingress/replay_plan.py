"""What `ddc replay` resends: the Kafka ranges of an egress's lost-record report (GET /gaps).

The report comes from a file or the egress's URL; it is checked here (an unusable report is a
ReplayInputError naming the problem, never a traceback), and its ranges are sorted and merged
per partition, so each partition is read once, in offset order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddc.kafka.ranges import PartitionRange

FETCH_TIMEOUT = 10.0


class ReplayInputError(Exception):
    """The --gaps report cannot be read or is not a lost-record report."""


@dataclass(slots=True)
class PlannedRange(PartitionRange):
    records: int  # records the ingress had sent in the range (the report's count)
    sources: list[int] = field(default_factory=list)  # the report entries merged into it


def read_report(spec: str) -> dict[str, Any]:
    """The report at `spec`: an http(s) URL (the egress's /gaps) or a file path."""
    import urllib.error  # here: the CLI imports this module before monkey-patching
    import urllib.request

    if spec.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(spec, timeout=FETCH_TIMEOUT) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReplayInputError(f"--gaps {spec}: cannot fetch: {reason}") from None
    else:
        try:
            text = Path(spec).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplayInputError(f"--gaps {spec}: cannot read: {exc}") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayInputError(f"--gaps {spec}: not JSON: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("kafka"), list):
        raise ReplayInputError(
            f'--gaps {spec}: not a lost-record report (no "kafka" list; see docs/http-api.md)'
        )
    return report


def _integer(entry: dict[str, Any], name: str, index: int, minimum: int) -> int:
    value = entry.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ReplayInputError(f"kafka[{index}].{name}: must be an integer >= {minimum}")
    return value


def plan(report: dict[str, Any]) -> tuple[list[PlannedRange], list[dict[str, Any]]]:
    """(the report's Kafka ranges to resend, the entries already fully recovered).

    Ranges are checked, sorted and merged (overlapping or adjacent ones of a partition become
    one range whose record count is the sum). An entry whose `recovered` (optional) reached its
    `records` arrived after all (an earlier replay, a re-read): it is not resent.
    """
    ranges = []
    recovered_entries = []
    for index, entry in enumerate(report["kafka"]):
        if not isinstance(entry, dict):
            raise ReplayInputError(f"kafka[{index}]: must be an object")
        topic = entry.get("topic")
        if not isinstance(topic, str) or not topic:
            raise ReplayInputError(f"kafka[{index}].topic: must be a non-empty string")
        partition = _integer(entry, "partition", index, 0)
        first = _integer(entry, "first_offset", index, 0)
        last = _integer(entry, "last_offset", index, first)
        records = _integer(entry, "records", index, 1)
        if "recovered" in entry and _integer(entry, "recovered", index, 0) >= records:
            recovered_entries.append(entry)
            continue
        ranges.append(PlannedRange(topic, partition, first, last, records, [index]))
    ranges.sort(key=lambda r: (r.topic, r.partition, r.first_offset))
    merged: list[PlannedRange] = []
    for item in ranges:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and (previous.topic, previous.partition) == (item.topic, item.partition)
            and item.first_offset <= previous.last_offset + 1
        ):
            previous.last_offset = max(previous.last_offset, item.last_offset)
            previous.records += item.records
            previous.sources.extend(item.sources)
        else:
            merged.append(item)
    return merged, recovered_entries

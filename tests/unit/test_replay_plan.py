"""`ddc replay`'s input: the --gaps report checked (one clear line, never a traceback) and planned."""

from __future__ import annotations

import json
import subprocess

import pytest

from ddc.ingress.replay import RangeResult
from ddc.ingress.replay_plan import ReplayInputError, plan, read_report
from devtools.harness import DDC, child_env


def entry(topic="t", partition=0, first=0, last=0, records=1):
    return {
        "topic": topic,
        "partition": partition,
        "first_offset": first,
        "last_offset": last,
        "records": records,
    }


def test_ranges_are_sorted_and_merged_per_partition():
    report = {
        "kafka": [
            entry(partition=1, first=50, last=60, records=3),
            entry(first=10, last=19, records=4),
            entry(first=20, last=25, records=2),  # adjacent: merged
            entry(first=40, last=45, records=1),
            entry(topic="u", first=20, last=25, records=2),
            {**entry(first=26, last=30, records=2), "recovered": 2},  # arrived after all
            {**entry(first=46, last=50, records=2), "recovered": 1},
        ]
    }
    ranges, recovered = plan(report)
    planned = [
        (p.topic, p.partition, p.first_offset, p.last_offset, p.records, p.sources) for p in ranges
    ]
    assert planned == [
        ("t", 0, 10, 25, 6, [1, 2]),
        ("t", 0, 40, 50, 3, [3, 6]),
        ("t", 1, 50, 60, 3, [0]),
        ("u", 0, 20, 25, 2, [4]),
    ]
    assert [e["first_offset"] for e in recovered] == [26]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"kafka": [entry(first=5, last=4)]}, "kafka[0].last_offset: must be an integer >= 5"),
        ({"kafka": [entry(records=0)]}, "kafka[0].records: must be an integer >= 1"),
        ({"kafka": [entry(partition=-1)]}, "kafka[0].partition"),
        ({"kafka": [entry(topic="")]}, "kafka[0].topic"),
        ({"kafka": [entry(first=True)]}, "kafka[0].first_offset"),
        ({"kafka": ["x"]}, "kafka[0]: must be an object"),
    ],
)
def test_bad_ranges_are_named(bad, message):
    with pytest.raises(ReplayInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan(bad)


def test_reports_that_are_not_reports(tmp_path):
    with pytest.raises(ReplayInputError, match="cannot read"):
        read_report(str(tmp_path / "missing.json"))
    path = tmp_path / "gaps.json"
    path.write_text("{not json")
    with pytest.raises(ReplayInputError, match="not JSON"):
        read_report(str(path))
    path.write_text(json.dumps({"sequence": []}))
    with pytest.raises(ReplayInputError, match='no "kafka" list'):
        read_report(str(path))
    with pytest.raises(ReplayInputError, match="cannot fetch"):
        read_report("http://127.0.0.1:9/gaps")


def test_range_status():
    def status(**fields):
        result = RangeResult("t", 0, 0, 9, expected=5, **fields)
        result.finish()
        return result.status

    assert status(read=5, sent=5) == "complete"
    assert status(read=6, filtered=1, sent=5) == "complete"
    assert status(read=6, filtered=2, sent=4) == "incomplete"
    assert status(read=7, sent=7) == "complete"  # another pair carried some: dedup drops them
    assert status(read=5, sent=5, gone=[0, 2]) == "incomplete"
    assert status(read=5, sent=5, error="boom") == "failed"


def replay(*args: str) -> subprocess.CompletedProcess:
    argv = [*DDC, "replay", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=child_env())


def test_cli_exits_2_with_one_line_on_a_bad_report(tmp_path):
    config = tmp_path / "ingress.toml"
    config.write_text(
        '[ingress]\nname = "x"\n[ingress.source]\ntype = "kafka"\n'
        'bootstrap_servers = ["127.0.0.1:1"]\ntopics = ["t"]\ngroup_id = "g"\n'
        '[ingress.transport]\ndestination = "127.0.0.1:9"\nenvelope = "records"\n'
    )
    gaps = tmp_path / "gaps.json"
    gaps.write_text(json.dumps({"kafka": [entry(first=3, last=1)]}))
    result = replay("-c", str(config), "--gaps", str(gaps))
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: kafka[0].last_offset: must be an integer >= 3"]
    config.write_text(config.read_text().replace('type = "kafka"', 'type = "udp"'))
    result = replay("-c", str(config), "--gaps", str(gaps))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "ingress.source" in result.stderr

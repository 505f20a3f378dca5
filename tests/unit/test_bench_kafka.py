"""scripts/bench kafka's arithmetic: option names for librdkafka, ratios of the median rates."""

from __future__ import annotations

from devtools.bench.kafka import report
from devtools.bench.kafka_copy import rdkafka_options


def test_group_options_become_librdkafka_properties():
    assert rdkafka_options({"session_timeout_ms": 6000, "max_poll_interval_ms": 10000}) == {
        "session.timeout.ms": 6000,
        "max.poll.interval.ms": 10000,
    }


def run(rate: float, egress_cpu: float | None = None) -> dict:
    cpu = {"copy": 1.0} if egress_cpu is None else {"ingress": 1.0, "egress": egress_cpu}
    rss = dict.fromkeys(cpu, 1 << 20)
    return {"count": 10, "rate": rate, "rss": rss, "cpu": cpu, "lost": 0, "dropped": 0}


def test_ratios_are_of_the_medians_and_per_round(capsys):
    report(
        {
            "rdkafka": [run(100.0), run(300.0)],
            "disk": [run(90.0, 4.0), run(60.0, 6.0)],
            "memory": [run(100.0, 4.0), run(100.0, 4.0)],
        }
    )
    out = capsys.readouterr().out
    assert "ratio disk/memory 0.75 (rounds: 0.90, 0.60) (target >= 0.8)" in out
    assert "ratio disk/rdkafka 0.38 (rounds: 0.90, 0.20) (target >= 0.5)" in out
    assert "ratio disk/python" not in out  # not measured
    assert "egress CPU s memory/disk 0.80 (4.0 / 5.0, medians)" in out

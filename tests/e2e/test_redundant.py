"""The redundant-links topology end to end (the demo's stack): any one component may fail."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

import pytest

from ddc import demo
from devtools.harness import wait_until


def test_demo_delivers_every_record_exactly_once():
    result = subprocess.run(
        [sys.executable, "-m", "devtools.demo", "--records", "3000", "--rate", "3000"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delivered exactly once" in result.stdout
    table = dict(
        line.rsplit(None, 1) for line in result.stdout.splitlines() if line.startswith("  ")
    )
    assert table["  duplicates reaching the target"].strip() == "0"
    assert table["  delivered once"].replace(",", "") == "3000"


@pytest.fixture
def stack(tmp_path):
    links = [demo.Link(name) for name in demo.LINKS]
    running = demo.Stack(tmp_path)
    args = argparse.Namespace(loss=0.0)
    dedup_http, bootstrap = demo.start_stack(running, links, args)
    counter = demo.OutputCounter(bootstrap)
    yield running, links, counter, dedup_http
    counter.close()
    running.stop()


@pytest.mark.parametrize("victim", ["ingress-a", "egress-b"])
def test_kill_9_one_component_mid_stream_target_still_gets_every_record_once(stack, victim):
    running, links, counter, dedup_http = stack
    count = 12000
    sender = threading.Thread(target=demo.send_records, args=(links, count, 2000.0, lambda: None))
    sender.start()
    wait_until(lambda: counter.poll() >= 1500, 30, message="first records delivered")
    running.kill(victim)
    time.sleep(1.0)
    running.restart(victim)
    link = next(link for link in links if link.name == victim[-1])
    port = link.ingress_http if victim.startswith("ingress") else link.egress_http
    demo.wait_http(running, port, victim)
    # the restarted component carries data again: its egress delivers records after the restart
    before = demo.metrics(link.egress_http).get("ddc_egress_records_delivered_total", 0)
    wait_until(
        lambda: (
            demo.metrics(link.egress_http).get("ddc_egress_records_delivered_total", 0)
            > before + 100
        ),
        30,
        message=f"link {link.name} flowing again",
    )
    sender.join(60)
    wait_until(lambda: counter.poll() >= count, 60, message=f"all {count} records")
    time.sleep(1.0)
    assert counter.poll() == count
    assert counter.duplicates == 0
    stats = demo.get_json(dedup_http, "/v1/stats")["links"]
    assert sum(s["first"] for s in stats.values()) == count

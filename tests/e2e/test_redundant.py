"""The redundant-links topology end to end (the demo's stack): any one component may fail."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from devtools import demo
from devtools.harness import Stack, child_env, python_argv, wait_until


def test_demo_delivers_every_record_exactly_once():
    result = subprocess.run(
        python_argv("devtools.demo", "--records", "3000", "--rate", "3000"),
        capture_output=True,
        text=True,
        timeout=180,
        env=child_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delivered exactly once" in result.stdout
    table = dict(
        line.rsplit(None, 1) for line in result.stdout.splitlines() if line.startswith("  ")
    )
    assert table["  duplicates reaching the target"].strip() == "0"
    assert table["  delivered once"].replace(",", "") == "3000"


@pytest.fixture
def topology(tmp_path):
    stack = Stack()
    try:
        running = demo.start_stack(stack, tmp_path, loss=0.0)
        counter = demo.OutputCounter(running.bootstrap)
        yield running, counter
        counter.close()
    finally:
        stack.stop()


@pytest.mark.parametrize("victim", ["ingress-a", "egress-b"])
def test_kill_9_one_component_mid_stream_target_still_gets_every_record_once(topology, victim):
    running, counter = topology
    # 12 s of records: a restart can take seconds under load (python's imports), and the
    # restarted component must still see enough of the stream to show it flows again
    count = 24000
    sender = threading.Thread(
        target=demo.send_records, args=(running.links, count, 2000.0, lambda: None)
    )
    sender.start()
    wait_until(lambda: counter.poll() >= 1500, 30, message="first records delivered")
    link = next(link for link in running.links if link.name == victim[-1])
    process = link.ingress if victim.startswith("ingress") else link.egress
    process.kill()
    time.sleep(1.0)  # the link stays down while records go on
    process.start()
    # the restarted component carries data again: its egress delivers records after the restart
    delivered = "ddc_egress_records_delivered_total"
    before = link.egress.metric(delivered)
    wait_until(
        lambda: link.egress.metric(delivered) > before + 100,
        30,
        message=f"link {link.name} flowing again",
    )
    sender.join(60)
    wait_until(lambda: counter.poll() >= count, 60, message=f"all {count} records")
    time.sleep(1.0)  # a window in which a late duplicate would arrive
    assert counter.poll() == count
    assert counter.duplicates == 0
    stats = running.dedup.get_json("/v1/stats")["links"]
    assert sum(s["first"] for s in stats.values()) == count


def test_a_burst_faster_than_the_dedup_service_is_spooled_not_dropped(topology):
    # issue 11: 120,000 records at 25,000/s mirrored into both links (no diode loss): with
    # in-memory buffers both egress dedup sinks dropped 6,899 of them (dedup_buffer_full)
    running, counter = topology
    count = 120_000
    dropped = "ddc_egress_records_dropped_total"
    demo.send_records(running.links, count, 25_000.0, lambda: None)
    # ends early on a drop: the code before the spool failed here in seconds
    wait_until(
        lambda: (
            counter.poll() >= count or any(link.egress.metric(dropped) for link in running.links)
        ),
        240,
        message=f"all {count} records",
    )
    for link in running.links:
        assert link.egress.metric(dropped) == 0, link.egress.metrics()
        assert link.egress.metric("ddc_egress_packets_lost_total") == 0
    time.sleep(1.0)  # a window in which a late duplicate would arrive
    assert counter.poll() == count
    assert counter.duplicates == 0

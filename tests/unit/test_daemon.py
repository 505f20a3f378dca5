"""Service plumbing: a crashed greenlet exits non-zero; SIGTERM stops gracefully; a second forces."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

SCRIPT = """
import sys, gevent
from ddc.daemon import Service, serve, configure_logging

class Demo(Service):
    name = "demo"
    def start(self):
        self.spawn(self.work, name="worker")
        print("started", flush=True)
    def work(self):
        if sys.argv[1] == "crash":
            gevent.sleep(0.2)
            raise RuntimeError("boom")
        gevent.sleep(3600)
    def stop(self, timeout):
        print("stopping", flush=True)
        if sys.argv[1] == "slow-stop":
            gevent.sleep(3600)
        self.group.kill()

configure_logging("INFO")
sys.exit(serve(Demo()))
"""


def run(mode: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "started"
    return process


def test_a_failed_greenlet_makes_the_process_exit_non_zero():
    process = run("crash")
    assert process.wait(10) == 1
    err = process.stderr.read()
    assert "greenlet worker failed: RuntimeError('boom')" in err


def test_sigterm_stops_gracefully_with_exit_0():
    process = run("idle")
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert "stopping" in process.stdout.read()


def test_second_signal_forces_exit():
    process = run("slow-stop")
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert process.poll() is None  # stuck in a slow stop
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 130
    assert "forcing exit" in process.stderr.read()


def test_tune_gc_collects_less_often_and_freezes_start_up_objects():
    import gc

    from ddc.daemon import GC_YOUNG_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

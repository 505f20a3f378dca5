"""Service plumbing: a crashed greenlet exits non-zero; SIGTERM stops gracefully; a second forces."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import gevent
from gevent.event import Event

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


# --- Service.spawn / Service.supervise, in process ---------------------------------------


def test_spawn_failure_marks_the_service_crashed_and_stops_it():
    from ddc.daemon import Service

    service = Service()
    error = RuntimeError("essential failed")

    def essential():
        raise error

    greenlet = service.spawn(essential, name="essential")
    greenlet.join(1)
    gevent.sleep(0)  # link callbacks run in the next loop iteration
    assert service.crashed is error
    assert service.stopping.is_set()
    assert service.restarts == {}


def test_supervise_restarts_counts_and_reports_failing_until_the_restart_is_stable(monkeypatch):
    from ddc import daemon

    monkeypatch.setattr(daemon, "STABLE_AFTER", 0.3)
    service = daemon.Service()
    runs: list[gevent.Greenlet] = []
    third_run = Event()

    def work():
        runs.append(gevent.getcurrent())
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")
        third_run.set()
        gevent.sleep(3600)

    first = service.supervise(work, name="worker", restart_delay=0.05)
    assert third_run.wait(5)
    assert service.restarts == {"worker": 2}
    assert service.failing("worker") == "RuntimeError('boom 2')"
    assert service.supervised("worker") is runs[2] is not first
    assert service.crashed is None and not service.stopping.is_set()
    gevent.sleep(0.4)  # the restart has run STABLE_AFTER without failing
    assert service.failing("worker") is None
    service.group.kill()


def test_a_supervised_greenlet_that_returns_is_not_failing_and_not_restarted():
    from ddc.daemon import Service

    service = Service()
    calls = []

    def once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first")

    service.supervise(once, name="once", restart_delay=0.01)
    gevent.sleep(0.2)
    assert calls == [1, 1]
    assert service.restarts == {"once": 1}
    assert service.failing("once") is None


def test_no_restart_once_the_service_is_stopping():
    from ddc.daemon import Service

    service = Service()
    calls = []

    def fails():
        calls.append(1)
        raise RuntimeError("late")

    service.stopping.set()
    service.supervise(fails, name="late", restart_delay=0.01)
    gevent.sleep(0.1)
    assert calls == [1]
    assert service.failing("late") == "RuntimeError('late')"
    assert service.crashed is None

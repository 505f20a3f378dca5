"""kafka-python's producer adapted to one gevent hub: native locks, coalesced wakeups."""

from __future__ import annotations

import _thread
import ast
import importlib
import inspect
from types import SimpleNamespace

import gevent
import gevent.lock
import kafka.future
import kafka.producer.record_accumulator
import pytest

from ddc.kafka import gevent_adapter
from ddc.kafka import gevent_adapter as kafka_gevent
from ddc.kafka.gevent_adapter import coalesce_wakeups, native_producer_locks


@pytest.fixture
def patched(monkeypatch):
    """As in the daemons, which monkey-patch threading; module globals restored afterwards."""
    monkeypatch.setattr(kafka_gevent.monkey, "is_module_patched", lambda name: True)
    as_patched = SimpleNamespace(Lock=gevent.lock.Semaphore)  # what patch_all gives kafka-python
    monkeypatch.setattr(kafka.future, "threading", as_patched)
    monkeypatch.setattr(kafka.producer.record_accumulator, "threading", as_patched)


def sender_counting_wakeups() -> SimpleNamespace:
    sender = SimpleNamespace(wakeups=0)

    def wakeup() -> None:
        sender.wakeups += 1

    sender.wakeup = wakeup
    return sender


def test_futures_and_accumulator_get_native_locks(patched):
    native = type(_thread.allocate_lock())
    assert type(kafka.future.Future()._lock) is not native
    native_producer_locks()
    assert type(kafka.future.Future()._lock) is native
    counter = kafka.producer.record_accumulator.AtomicInteger()
    assert type(counter._lock) is native
    assert counter.increment() == 1 and counter.decrement() == 0


def test_locks_left_alone_without_monkey_patching(patched, monkeypatch):
    monkeypatch.setattr(kafka_gevent.monkey, "is_module_patched", lambda name: False)
    before = kafka.future.threading
    native_producer_locks()
    assert kafka.future.threading is before


def test_wakeups_coalesce_to_one_per_turn_of_the_hub(patched):
    producer = SimpleNamespace(_sender=sender_counting_wakeups())
    coalesce_wakeups(producer)
    for _ in range(1000):
        producer._sender.wakeup()
    assert producer._sender.wakeups == 0  # nothing can run before the caller yields
    gevent.sleep(0)
    assert producer._sender.wakeups == 1
    producer._sender.wakeup()
    gevent.sleep(0)
    assert producer._sender.wakeups == 2


def test_wakeups_untouched_when_the_sender_is_a_real_thread(monkeypatch):
    monkeypatch.setattr(kafka_gevent.monkey, "is_module_patched", lambda name: False)
    producer = SimpleNamespace(_sender=sender_counting_wakeups())
    coalesce_wakeups(producer)
    producer._sender.wakeup()
    assert producer._sender.wakeups == 1


@pytest.mark.parametrize("module_name", gevent_adapter.PATCHED_MODULES)
def test_canary_patched_modules_use_nothing_of_threading_but_lock(module_name):
    """native_producer_locks() hands these modules a `threading` holding only Lock: if a new
    kafka-python uses anything else of it there, the swap must be revisited."""
    module = importlib.import_module(module_name)
    nodes = list(ast.walk(ast.parse(inspect.getsource(module))))
    attributes = [
        node.attr
        for node in nodes
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "threading"
    ]
    names = [node for node in nodes if isinstance(node, ast.Name) and node.id == "threading"]
    imported_from = [
        alias.name
        for node in nodes
        if isinstance(node, ast.ImportFrom) and node.module == "threading"
        for alias in node.names
    ]
    assert "threading" in vars(module), f"{module_name} no longer imports threading"
    assert set(attributes) <= gevent_adapter.NATIVE_THREADING_NAMES, attributes
    assert len(names) == len(attributes), "`threading` used other than as threading.X"
    assert imported_from == [], f"{module_name} imports {imported_from} from threading"

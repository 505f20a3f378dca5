"""kafka-python's producer made cheaper to drive from one gevent hub.

Under monkey-patching the producer's IO "thread" is a greenlet in the same OS thread as the
code that calls send(), so two things built for real threads cost CPU for nothing (py-spy on
`scripts/bench kafka`): gevent's Python-level locks, taken several times per record, and a
wakeup byte written to the producer's socketpair on every send() while its IO greenlet has not
yet run to drain a full batch.

Both reach into kafka-python internals, so both apply only inside adapter.TESTED_RANGE; the
canary test tests/unit/kafka/test_gevent_adapt.py fails if the patched modules start using
anything of `threading` other than Lock.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gevent
from gevent import monkey

from ddc.kafka.adapter import check_version

# The kafka-python modules whose `threading` global is swapped, and all they may use of it.
PATCHED_MODULES = ("kafka.future", "kafka.producer.record_accumulator")
NATIVE_THREADING_NAMES = frozenset({"Lock"})


def native_producer_locks() -> None:
    """Give kafka-python's per-record futures and its record accumulator native locks.

    Safe in this one-OS-thread process because every critical section they guard only moves
    Python objects (append to a batch, pop a batch, swap a future's fields) and never blocks
    on gevent, so a greenlet never switches out while holding one. Waits that must cooperate
    (flush waiting on a batch's Event) keep gevent's primitives.
    """
    if not monkey.is_module_patched("threading") or not check_version():
        return
    import kafka.future
    import kafka.producer.record_accumulator

    native = SimpleNamespace(Lock=monkey.get_original("_thread", "allocate_lock"))
    kafka.future.threading = native
    kafka.producer.record_accumulator.threading = native


def coalesce_wakeups(producer: Any) -> None:
    """At most one wakeup of the producer's IO greenlet per turn of the hub.

    A wakeup cannot take effect before the caller yields anyway; kafka-python asks for one on
    every send() while more than one batch waits for a partition.
    """
    if not monkey.is_module_patched("threading") or not check_version():
        return
    sender = getattr(producer, "_sender", None)
    if sender is None:
        return
    wake = sender.wakeup
    loop = gevent.get_hub().loop
    pending = False

    def deliver() -> None:
        nonlocal pending
        pending = False
        wake()

    def wakeup() -> None:
        nonlocal pending
        if not pending:
            pending = True
            loop.run_callback(deliver)

    sender.wakeup = wakeup

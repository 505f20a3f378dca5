"""The deliverer between spool and sink: in order, bounded in flight, acknowledged only on the
sink's confirmation, drops counted in records; the in-flight window's rules."""

from __future__ import annotations

from pathlib import Path

import gevent
import pytest

from ddc.config.loader import load_config
from ddc.egress.deliver import Deliverer
from ddc.egress.sinks.base import Done, Sink
from ddc.egress.spool import DiskSpool, MemorySpool
from ddc.egress.spool.window import Window
from ddc.errors import ConfigError
from ddc.metrics import EgressMetrics
from ddc.protocol.envelope import encode_records
from ddc.protocol.record import Record


class HeldSink(Sink):
    """Confirms only when told to; records what it got."""

    def __init__(self) -> None:
        super().__init__({}, EgressMetrics())
        self.got: list[bytes] = []
        self.waiting: list[Done] = []

    def send(self, records: list[Record], done: Done) -> None:
        self.got.extend(bytes(r.value or b"") for r in records)
        self.waiting.append(done)

    def confirm(self, indexes: list[int]) -> None:
        for i in indexes:
            self.waiting[i]()


def dropped(metrics: EgressMetrics, reason: str) -> float:
    return metrics.records_dropped.labels(reason=reason)._value.get()


def test_window_releases_only_the_settled_front() -> None:
    window = Window(max_bytes=300, max_records=None)
    slots = [window.add(seq, 100, 1, seq) for seq in (5, 6, 7)]
    assert not window.room()
    window.settle(slots[1])
    assert window.advance() is None  # 5 unconfirmed holds 6 back
    window.settle(slots[0])
    assert window.advance() == 6 and window.room() and len(window) == 1
    window.settle(slots[2])
    assert window.advance() == 7 and len(window) == 0 and window.bytes == 0
    records = Window(max_bytes=10**9, max_records=2)
    records.add(1, 1, 2, 0)
    assert not records.room()


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_spool_advances_on_confirmation_only(tmp_path: Path, kind: str) -> None:
    spool = MemorySpool(1 << 20) if kind == "memory" else DiskSpool(str(tmp_path), 1 << 20)
    sink = HeldSink()
    deliverer = Deliverer("raw", spool, sink, EgressMetrics())
    for i in range(5):
        deliverer.enqueue(b"r%d" % i)
    assert deliverer.step()
    assert sink.got == [b"r0", b"r1", b"r2", b"r3", b"r4"]
    sink.confirm([1, 2])
    deliverer.step()
    assert spool.acked == 0 and spool.pending == 5  # r0 is not confirmed: nothing moves
    sink.confirm([0])
    deliverer.step()
    assert spool.acked == 3 and spool.pending == 2
    sink.confirm([3, 4])
    deliverer.finish()
    assert spool.pending == 0


def test_window_bounds_what_the_sink_holds() -> None:
    spool = MemorySpool(1 << 30)
    sink = HeldSink()
    sink.window_records = 3
    deliverer = Deliverer("raw", spool, sink, EgressMetrics())
    for i in range(10):
        deliverer.enqueue(b"x%d" % i)
    deliverer.step()
    assert len(sink.got) == 3 and spool.unread == 7
    sink.confirm([0, 1, 2])
    deliverer.step()
    assert len(sink.got) == 6 and spool.acked == 3


def test_spool_full_counts_records_of_each_dropped_chunk() -> None:
    metrics = EgressMetrics()
    batch = encode_records([Record(b"a" * 100, topic="t", partition=0, offset=i) for i in range(7)])
    spool = MemorySpool(len(batch) + 64, "drop_newest")
    deliverer = Deliverer("records", spool, HeldSink(), metrics)
    deliverer.enqueue(batch)
    deliverer.enqueue(batch)
    deliverer.enqueue(batch)
    assert dropped(metrics, "spool_full") == 14 and spool.dropped == {"drop_newest": 2}


def test_memory_spool_counts_what_stop_loses_and_a_raising_sink_is_counted() -> None:
    metrics = EgressMetrics()
    spool = MemorySpool(1 << 20)
    sink = HeldSink()
    deliverer = Deliverer("raw", spool, sink, metrics)
    for i in range(4):
        deliverer.enqueue(b"r%d" % i)
    sink.window_records = None
    deliverer.window.max_bytes = 1  # one chunk in flight at a time
    deliverer.step()
    assert not deliverer.wait_idle(0.1)
    assert deliverer.finish() == 4
    assert dropped(metrics, "shutdown") == 4

    class Raising(HeldSink):
        def send(self, records: list[Record], done: Done) -> None:
            raise RuntimeError("bug")

    spool = MemorySpool(1 << 20)
    deliverer = Deliverer("raw", spool, Raising(), metrics)
    deliverer.enqueue(b"x")
    deliverer.step()
    deliverer.step()
    assert dropped(metrics, "sink_error") == 1 and spool.pending == 0


def test_run_wakes_on_append_and_on_confirmation(tmp_path: Path) -> None:
    spool = DiskSpool(str(tmp_path), 1 << 20)
    sink = HeldSink()
    deliverer = Deliverer("raw", spool, sink, EgressMetrics())
    runner = gevent.spawn(deliverer.run)
    gevent.sleep(0.01)
    deliverer.enqueue(b"one")
    gevent.sleep(0.01)
    assert sink.got == [b"one"]
    sink.confirm([0])
    gevent.sleep(0.01)
    assert spool.acked == 1
    deliverer.stopping = True
    runner.kill()
    deliverer.finish()


def test_spool_config(tmp_path: Path) -> None:
    path = tmp_path / "egress.toml"
    base = '[egress.transport]\nlisten = "127.0.0.1:7001"\n[egress.sink]\ntype = "file"\n'
    path.write_text(base + f'path = "{tmp_path}/out"\n')
    spool = load_config(str(path), "egress", {})["spool"]
    assert spool == {
        "dir": "/var/lib/ddc/spool",
        "max_bytes": 8 * 1024**3,
        "when_full": "drop_newest",
        "fsync_interval": 1.0,
    }
    path.write_text(
        base + f'path = "{tmp_path}/out"\n[egress.spool]\ndir = ""\nmax_bytes = "1GiB"\n'
        'when_full = "drop_oldest"\nfsync_interval = "250ms"\n'
    )
    spool = load_config(str(path), "egress", {})["spool"]
    assert spool["max_bytes"] == 1024**3 and spool["fsync_interval"] == 0.25
    path.write_text(base + f'path = "{tmp_path}/out"\n[egress.spool]\nwhen_full = "block"\n')
    with pytest.raises(ConfigError, match="when_full"):
        load_config(str(path), "egress", {})


def test_a_graceful_stop_delivers_what_a_disk_spool_holds_not_only_what_is_in_flight(
    tmp_path: Path,
) -> None:
    """With the target up, stop() waits (within its timeout) until the sink confirmed every
    spooled chunk: none is left for the next start only because it was not yet read."""

    class Confirming(HeldSink):
        def send(self, records: list[Record], done: Done) -> None:
            super().send(records, done)
            gevent.spawn_later(0.001, done)  # confirmed a moment later, as a broker would

    spool = DiskSpool(str(tmp_path), 1 << 20)
    sink = Confirming()
    deliverer = Deliverer("raw", spool, sink, EgressMetrics())
    for i in range(200):
        deliverer.enqueue(b"r%d" % i)
    deliver = gevent.spawn(deliverer.run)
    assert deliverer.wait_idle(5.0)
    assert sink.got == [b"r%d" % i for i in range(200)] and spool.unread == 0
    deliverer.stopping = True
    deliver.kill()
    assert deliverer.finish() == 0

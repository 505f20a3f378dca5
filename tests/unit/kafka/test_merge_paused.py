"""The merge loop while paused: what a rebalance hands it stays unread, never skipped."""

from __future__ import annotations

from types import SimpleNamespace

import gevent
from gevent.event import Event
from kafka.structs import TopicPartition

from dedup_service.keys import IdSpec
from dedup_service.merger import _KeepPaused
from tests.unit.kafka.fakes import batch, run
from tests.unit.kafka.test_dedup_kafka import merge_loop

A0, A1 = TopicPartition("in-a", 0), TopicPartition("in-a", 1)


class SeekingConsumer:
    """FakeConsumer's API plus seek/assignment, recording what the loop asked for."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seeks: list[tuple[TopicPartition, int]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def assignment(self) -> set[TopicPartition]:
        return {A0, A1}


def paused_loop():
    loop, forwarder = merge_loop(SimpleNamespace(), IdSpec("hash"))
    loop.consumer = SeekingConsumer(loop.consumer)
    loop.paused_since = 0.0
    loop.resume_at = float("inf")
    return loop, forwarder


def test_records_polled_while_paused_are_rewound_not_skipped():
    loop, forwarder = paused_loop()
    loop.consumer.batches.append({**batch("in-a", 1, 40, 5), **batch("in-a", 0, 7, 2)})
    stopping = Event()
    runner = gevent.spawn(loop.run, stopping)
    gevent.sleep(0.05)
    stopping.set()
    runner.join(2)
    assert forwarder.forwarded == [] and loop.consumer.commits == []
    assert sorted(loop.consumer.seeks) == [(A0, 7), (A1, 40)]
    assert loop.consumer.paused == {A0, A1}


def test_partitions_assigned_while_paused_are_paused():
    loop, _ = paused_loop()
    run(_KeepPaused(loop).on_partitions_assigned({A1}))
    assert loop.consumer.paused == {A1}
    loop.paused_since = None
    run(_KeepPaused(loop).on_partitions_assigned({A0}))
    assert loop.consumer.paused == {A1}

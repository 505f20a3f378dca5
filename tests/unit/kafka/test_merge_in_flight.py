"""The merge loop with several batches in flight: commits in poll order, a failure rewinds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gevent
from gevent.event import Event
from kafka.structs import TopicPartition

from dedup_service.errors import SinkFailed
from dedup_service.keys import IdSpec
from tests.unit.kafka.fakes import batch
from tests.unit.kafka.test_dedup_kafka import merge_loop
from tests.unit.kafka.test_merge_paused import SeekingConsumer

A0, A1 = TopicPartition("in-a", 0), TopicPartition("in-a", 1)


class SlowFirstForwarder:
    """Forwards the batch starting at offset 40 only once `release` is set (then fails it if
    `fail`); every other batch at once."""

    def __init__(self, fail: bool) -> None:
        self.sink = SimpleNamespace()
        self.release = Event()
        self.fail = fail
        self.forwarded: list[int] = []

    def forward(self, link: str, items: list[Any]) -> list[str]:
        first = items[0].record.offset
        if first == 40:
            self.release.wait()
            if self.fail:
                raise SinkFailed("sink down")
        self.forwarded.append(first)
        return ["first"] * len(items)


def running_loop(fail: bool):
    loop, _ = merge_loop(SimpleNamespace(), IdSpec("hash"))
    forwarder = SlowFirstForwarder(fail)
    loop.forwarder = forwarder
    loop.consumer = SeekingConsumer(loop.consumer)
    loop.consumer.batches += [batch("in-a", 0, 40, 5), batch("in-a", 1, 7, 3)]
    stopping = Event()
    return loop, forwarder, stopping, gevent.spawn(loop.run, stopping)


def test_a_later_batch_forwarded_first_is_committed_only_after_the_earlier_one():
    loop, forwarder, stopping, runner = running_loop(fail=False)
    gevent.sleep(0.1)
    assert forwarder.forwarded == [7] and loop.consumer.commits == []
    forwarder.release.set()
    gevent.sleep(0.1)
    stopping.set()
    runner.join(2)
    assert forwarder.forwarded == [7, 40]
    assert {tp: o for commit in loop.consumer.commits for tp, o in commit.items()} == {
        A0: 45,
        A1: 10,
    }


def test_a_failed_batch_rewinds_every_open_batch_and_pauses():
    loop, forwarder, stopping, runner = running_loop(fail=True)
    gevent.sleep(0.1)
    forwarder.release.set()
    gevent.sleep(0.1)
    stopping.set()
    runner.join(2)
    assert forwarder.forwarded == [7]  # forwarded, but behind the failure: read again
    assert loop.consumer.commits == []
    assert sorted(loop.consumer.seeks) == [(A0, 40), (A1, 7)]
    assert loop.paused_since is not None and "sink down" in loop.pause_reason

"""ddc.kafka.fetch against a fake consumer: exact ranges over a compacted log with retention."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kafka import TopicPartition

from ddc.kafka.fetch import OffsetRange, open_range, read_range


class FakeConsumer:
    """A partition whose log holds `offsets` (compacted: holes) from `log_start` on."""

    def __init__(self, offsets: list[int], log_start: int, end: int) -> None:
        self.log = [o for o in offsets if o >= log_start]
        self.log_start, self.end = log_start, end
        self.pos = 0

    def assign(self, parts):
        self.tp = parts[0]

    def beginning_offsets(self, parts):
        return {parts[0]: self.log_start}

    def end_offsets(self, parts):
        return {parts[0]: self.end}

    def seek(self, tp, offset):
        self.pos = offset

    def position(self, tp):
        return self.pos

    def poll(self, timeout_ms, max_records):
        found = [o for o in self.log if o >= self.pos][:2]  # two records a poll
        if not found:
            self.pos = max(self.pos, self.end)  # a fetch at the end moves past trailing holes
            return {}
        self.pos = found[-1] + 1
        messages = [
            SimpleNamespace(
                topic="t", partition=0, offset=o, value=b"%d" % o, key=None, timestamp=1, headers=[]
            )
            for o in found
        ]
        return {TopicPartition("t", 0): messages}


def read(consumer: FakeConsumer, first: int, last: int) -> tuple[OffsetRange, list[int]]:
    opened = open_range(consumer, OffsetRange("t", 0, first, last))
    offsets = [r.offset for batch in read_range(consumer, opened, 1.0) for r in batch]
    return opened, offsets


def test_a_range_over_holes_yields_exactly_its_records():
    opened, offsets = read(FakeConsumer([0, 3, 4, 10, 11, 15], 0, 16), 2, 11)
    assert offsets == [3, 4, 10, 11] and opened.gone is None and opened.past_end is None


def test_what_retention_took_is_named():
    opened, offsets = read(FakeConsumer([0, 3, 4, 10, 11, 15], 4, 16), 0, 10)
    assert opened.gone == (0, 3) and offsets == [4, 10]
    opened, offsets = read(FakeConsumer([0, 3, 4], 10, 10), 0, 5)
    assert opened.gone == (0, 5) and offsets == []  # all of it gone: nothing read


def test_what_lies_past_the_log_end_is_named():
    opened, offsets = read(FakeConsumer([0, 1, 2], 0, 3), 1, 8)
    assert offsets == [1, 2] and opened.past_end == (3, 8)


def test_no_progress_is_a_timeout():
    class Stuck(FakeConsumer):
        def poll(self, timeout_ms, max_records):
            return {}

    consumer = Stuck([0, 1, 2], 0, 3)
    opened = open_range(consumer, OffsetRange("t", 0, 0, 2))
    with pytest.raises(TimeoutError, match="no progress"):
        list(read_range(consumer, opened, 0.0))

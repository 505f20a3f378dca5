"""MergeWindow: offsets committed in poll order whatever order batches finish in; where to read
again after a failure."""

from __future__ import annotations

import pytest

from dedup_service.merge_window import MergeWindow

A0, A1, B0 = ("a", 0), ("a", 1), ("b", 0)


def test_offsets_are_committed_only_past_the_oldest_forwarded_batches():
    window = MergeWindow()
    first = window.open({A0: 0}, {A0: 10})
    second = window.open({A0: 10, A1: 5}, {A0: 20, A1: 9})
    third = window.open({B0: 3}, {B0: 4})
    window.settle(third)
    window.settle(second)
    assert window.committable() == {}  # the oldest is still in flight
    window.settle(first)
    assert window.committable() == {A0: 20, A1: 9, B0: 4}
    assert len(window) == 0 and window.failure() is None


def test_after_a_failure_every_partition_is_read_again_from_its_first_open_offset():
    window = MergeWindow()
    done = window.open({A0: 0}, {A0: 10})
    failed = window.open({A0: 10, A1: 5}, {A0: 20, A1: 9})
    later = window.open({A0: 20, B0: 3}, {A0: 30, B0: 4})
    window.settle(done)
    window.settle(later)  # forwarded, but behind a failure: read again as duplicates
    assert window.committable() == {A0: 10}
    assert window.failure() is None  # the failed batch has not finished yet
    error = RuntimeError("sink down")
    window.settle(failed, error)
    assert window.committable() == {} and window.failure() is error
    assert window.rewind_points() == {A0: 10, A1: 5, B0: 3}
    assert len(window) == 0


def test_rewinding_waits_for_every_batch_and_a_batch_settles_once():
    window = MergeWindow()
    failed = window.open({A0: 0}, {A0: 10})
    window.open({A1: 0}, {A1: 10})
    window.settle(failed, RuntimeError("redis down"))
    with pytest.raises(ValueError):
        window.rewind_points()
    with pytest.raises(ValueError):
        window.settle(failed)

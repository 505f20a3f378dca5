"""The claim → forward → commit/release logic, against an in-memory stand-in for the Redis store."""

import pytest

from ddc.protocol.record import Record
from dedup_service import lua
from dedup_service.errors import RedisUnavailable, SinkFailed, StillPending
from dedup_service.forwarder import Forwarder, Item, dedupe_batch
from dedup_service.metrics import DedupMetrics


class MemoryStore:
    """Same contract as store.Store for claim/commit/release (tests only)."""

    def __init__(self):
        self.claims = {}  # id → [state, fp, token]
        self.masks = {}  # id → bits of the links whose copies were marked
        self.bits = {}
        self.tokens = 0
        self.fail_commits = 0

    def link_bit(self, link):
        return self.bits.setdefault(link, len(self.bits))

    def _mark(self, ident, mask):
        self.masks[ident] = self.masks.get(ident, 0) | mask

    def new_token(self):
        self.tokens += 1
        return f"t{self.tokens}"

    def claim(self, link, ids, fps, token, *, pending):
        out = []
        for ident, fp in zip(ids, fps, strict=True):
            held = self.claims.get(ident)
            self._mark(ident, 1 << self.link_bit(link))
            if held is None:
                self.claims[ident] = ["P" if pending else "C", fp, token]
                out.append(lua.FIRST)
            elif held[1] and fp and held[1] != fp:
                out.append(lua.CONFLICT)
            elif held[0] == "P" and held[2] == token:
                out.append(lua.FIRST)
            elif held[0] == "P":
                out.append(lua.PENDING)
            else:
                out.append(lua.DUPLICATE)
        return out

    def commit(self, link, ids, fps, token, extra_links=None):
        if self.fail_commits:
            self.fail_commits -= 1
            raise RedisUnavailable("down")
        out = []
        for ident, extra in zip(ids, extra_links or [0] * len(ids), strict=True):
            held = self.claims.get(ident)
            if held is None or (held[0] == "P" and held[2] == token):
                self.claims[ident] = ["C", held[1] if held else "", ""]
                self._mark(ident, (1 << self.link_bit(link)) | extra)
                out.append(lua.COMMITTED)
            elif held[0] == "P":
                out.append(lua.HELD_BY_OTHER)
            else:
                self._mark(ident, extra)
                out.append(lua.ALREADY_COMMITTED)
        return out

    def release(self, ids, token):
        gone = [i for i in ids if self.claims.get(i, [None, None, None])[2] == token]
        for ident in gone:
            del self.claims[ident]
        return len(gone)


class ListSink:
    def __init__(self, fail_with=None):
        self.config = {"type": "list"}
        self.ok = True
        self.got = []
        self.fail_with = fail_with

    def send(self, records):
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            self.got += [r for i, r in enumerate(records) if i in error.delivered]
            raise error
        self.got += records


class Stats:
    def __init__(self):
        self.counts = {}

    def add(self, link, kind, amount=1):
        self.counts[(link, kind)] = self.counts.get((link, kind), 0) + amount


def make(sink=None, pending_timeout=1.0):
    store, stats = MemoryStore(), Stats()
    sink = sink or ListSink()
    forwarder = Forwarder(
        store,
        sink,
        DedupMetrics(),
        stats,
        pending_timeout=pending_timeout,
        commit_retry_timeout=2.0,
    )
    return forwarder, store, sink, stats


def items(*specs):
    return [Item(ident, fp, Record(value=f"{ident}:{fp}".encode())) for ident, fp in specs]


def test_dedupe_batch_flags_repeats_and_conflicts():
    unique, repeats = dedupe_batch(items(("a", "1"), ("b", "1"), ("a", "1"), ("a", "2"), ("b", "")))
    assert unique == [0, 1]
    assert repeats == {2: (0, "duplicate"), 3: (0, "conflict"), 4: (1, "duplicate")}


def test_first_copy_forwarded_and_committed_second_is_duplicate():
    forwarder, store, sink, stats = make()
    assert forwarder.forward("a", items(("x", "1"), ("y", "1"))) == ["first", "first"]
    assert forwarder.forward("b", items(("x", "1"), ("y", "9"))) == ["duplicate", "conflict"]
    assert [r.value for r in sink.got] == [b"x:1", b"y:1"]
    assert store.claims["x"][0] == "C"
    assert stats.counts == {("a", "first"): 2, ("b", "duplicate"): 1, ("b", "conflict"): 1}


def test_sink_failure_releases_so_the_other_copy_goes_through():
    forwarder, store, sink, _ = make(ListSink(fail_with=SinkFailed("boom")))
    with pytest.raises(SinkFailed):
        forwarder.forward("a", items(("x", "1")))
    assert "x" not in store.claims
    assert forwarder.forward("b", items(("x", "1"))) == ["first"]
    assert [r.value for r in sink.got] == [b"x:1"]


def test_partial_delivery_commits_delivered_and_releases_the_rest():
    forwarder, store, sink, stats = make(ListSink(fail_with=SinkFailed("half", delivered=[0])))
    with pytest.raises(SinkFailed) as caught:
        forwarder.forward("a", items(("x", "1"), ("y", "1")))
    assert caught.value.delivered == {0}
    assert store.claims["x"][0] == "C" and "y" not in store.claims
    assert stats.counts == {("a", "first"): 1}


def test_waits_for_a_pending_claim_then_takes_it_when_released():
    forwarder, store, sink, _ = make()
    store.claims["x"] = ["P", "1", "someone-else"]
    calls = {"n": 0}
    original = store.claim

    def claim(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            store.release(["x"], "someone-else")
        return original(*args, **kwargs)

    store.claim = claim
    assert forwarder.forward("b", items(("x", "1"))) == ["first"]
    assert calls["n"] == 3 and len(sink.got) == 1


def test_pending_that_never_resolves_is_reported():
    forwarder, store, sink, _ = make(pending_timeout=0.05)
    store.claims["x"] = ["P", "1", "someone-else"]
    with pytest.raises(StillPending):
        forwarder.forward("b", items(("x", "1"), ("y", "1")))
    assert [r.value for r in sink.got] == [b"y:1"]  # the rest of the batch went through


def test_commit_is_retried_while_redis_is_down():
    forwarder, store, sink, _ = make()
    store.fail_commits = 2
    assert forwarder.forward("a", items(("x", "1"))) == ["first"]
    assert store.claims["x"][0] == "C"


def test_one_phase_claims():
    forwarder, store, _, _ = make()
    got = forwarder.claim("a", [Item("x", "1"), Item("y", ""), Item("x", "2")])
    assert got == ["first", "first", "conflict"]
    assert forwarder.claim("b", [Item("x", "1"), Item("y", "7")]) == ["duplicate", "duplicate"]
    assert store.claims["x"][0] == "C"

"""HeldClaims: a copy waiting on this process's pending claim wakes when the holder settles."""

import threading
import time

from ddc.protocol.record import Record
from dedup_service import held as held_module
from dedup_service.errors import SinkFailed
from dedup_service.forwarder import Item
from dedup_service.held import HeldClaims
from tests.unit.dedup.test_forwarder import ListSink, make


def waiter(claims, ids, poll):
    thread = threading.Thread(target=claims.wait, args=(ids, poll), daemon=True)
    thread.start()
    return thread


def test_a_waiter_wakes_when_every_holding_batch_settled():
    claims = HeldClaims(cap=60.0)
    first = claims.hold_unheld(["a", "b"], ["1", "1"])
    second = claims.hold_unheld(["c"], ["1"])
    thread = waiter(claims, ["a", "c"], poll=60.0)
    claims.settle(["a", "b"], first)
    thread.join(0.3)
    assert thread.is_alive()  # "c" is still held
    claims.settle(["c"], second)
    thread.join(10.0)
    assert not thread.is_alive()
    assert claims.held == {}


def test_settle_forgets_only_the_ids_its_batch_still_holds():
    claims = HeldClaims()
    old = claims.hold_unheld(["a", "b"], ["1", "1"])
    new = claims.hold_unheld(["b", "c"], ["1", "1"])
    assert claims.held == {"a": old, "b": old, "c": new}  # b stays old's until new wins it
    claims.keep(new, ["b", "c"], {"b"})  # new's claim won b (its own token's, say), not c
    claims.settle(["a", "b"], old)
    assert claims.held == {"b": new} and old.settled.is_set() and not new.settled.is_set()


def test_an_id_held_elsewhere_waits_the_poll_interval(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(held_module.time, "sleep", slept.append)
    claims = HeldClaims(cap=60.0)
    claims.wait(["x"], poll=0.05)
    assert len(slept) == 2 and slept[0] == held_module.GRACE and 0.04 < slept[1] <= 0.05


def test_an_id_held_after_the_grace_is_waited_for(monkeypatch):
    claims = HeldClaims(cap=60.0)
    events = []
    monkeypatch.setattr(
        held_module.time, "sleep", lambda _s: events.append(claims.hold_unheld(["x"], ["1"]))
    )
    thread = waiter(claims, ["x"], poll=60.0)
    deadline = time.monotonic() + 10.0
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    claims.settle(["x"], events[0])
    thread.join(10.0)
    assert not thread.is_alive() and len(events) == 1


class GatedSink(ListSink):
    """Blocks the first send until `gate` is set (a slow forward by link a)."""

    def __init__(self):
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Event()

    def send(self, records):
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(10.0)
        super().send(records)


def two_copies(early_lookup: bool = True):
    """Link a's forward of "x" held in its sink; link b's forward of "x" started 0.3 s later
    (six of the old 50 ms polls), claims counted from then on. Returns (claims b made while a
    was held, let a finish and return the results, every claim b made)."""
    sink = GatedSink()
    forwarder, store, _, _ = make(sink, pending_timeout=30.0)
    batch = [Item("x", "1", Record(value=b"x"))]
    results: dict[str, list[str]] = {}
    a = threading.Thread(target=lambda: results.update(a=forwarder.forward("a", batch)))
    a.start()
    assert sink.entered.wait(10.0)
    if not early_lookup:
        forwarder.held.wait_held = lambda *_args: ([], {})  # as if a had not held x yet
    calls: list[int] = []
    claim = store.claim

    def counted(*args, **kwargs):
        calls.append(1)
        return claim(*args, **kwargs)

    store.claim = counted
    b = threading.Thread(target=lambda: results.update(b=forwarder.forward("b", batch)))
    b.start()
    time.sleep(0.3)
    during = len(calls)
    sink.gate.set()
    a.join(10.0)
    b.join(10.0)
    assert len(sink.got) == 1
    return during, results, calls, forwarder


def test_the_other_links_copy_rides_on_the_holders_commit_without_a_claim():
    during, results, calls, forwarder = two_copies()
    assert during == 0  # b waited on a's batch instead of claiming: Redis would say pending
    assert results == {"a": ["first"], "b": ["duplicate"]}
    assert calls == []  # a's commit marked b's link: b needed no claim at all
    assert forwarder.store.masks == {"x": 0b11}
    assert forwarder.metrics.pending_waits._value.get() == 1


def test_a_copy_met_while_pending_claims_again_once_the_holder_settled():
    """The holder's claim answered after the waiter's lookup: the waiter finds it pending in
    Redis, then waits on the local batch (not on 50 ms polls)."""
    during, results, calls, forwarder = two_copies(early_lookup=False)
    assert during == 1  # pending once, then waiting on a's batch
    assert results == {"a": ["first"], "b": ["duplicate"]}
    assert len(calls) == 2
    assert forwarder.store.masks == {"x": 0b11}


class FailingGatedSink(GatedSink):
    """The held first send fails once the gate opens (link a's sink is down)."""

    def send(self, records):
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(10.0)
            raise SinkFailed("down")
        ListSink.send(self, records)


def race(sink, b_fingerprint="1"):
    """Link a forwards "x" into `sink` (held at its gate); link b's copy arrives meanwhile."""
    forwarder, store, _, _ = make(sink, pending_timeout=30.0)
    results: dict[str, list[str]] = {}

    def forward(link, fingerprint):
        try:
            results[link] = forwarder.forward(link, [Item("x", fingerprint, Record(value=b"x"))])
        except SinkFailed:
            results[link] = ["sink failed"]

    a = threading.Thread(target=forward, args=("a", "1"))
    a.start()
    assert sink.entered.wait(10.0)
    b = threading.Thread(target=forward, args=("b", b_fingerprint))
    b.start()
    time.sleep(0.3)
    sink.gate.set()
    a.join(10.0)
    b.join(10.0)
    return results, store, sink


def test_a_copy_attached_to_a_batch_whose_sink_failed_claims_and_goes_through():
    results, store, sink = race(FailingGatedSink())
    assert results == {"a": ["sink failed"], "b": ["first"]}
    assert [r.value for r in sink.got] == [b"x"] and store.claims["x"][0] == "C"


def test_a_copy_with_other_content_does_not_attach_and_is_judged_a_conflict():
    results, store, _ = race(GatedSink(), b_fingerprint="2")
    assert results == {"a": ["first"], "b": ["conflict"]}
    assert store.masks == {"x": 0b11}  # b's own claim marked its link


def test_a_holding_takes_no_copy_once_its_commit_began():
    holding = HeldClaims().hold_unheld(["x", "y"], ["1", ""])
    assert holding.attach("x", "1", 1) and holding.attach("y", "7", 2)
    assert not holding.attach("x", "2", 3)  # contradicts the holder's content
    assert holding.extra_links(["x", "y", "z"]) == [0b10, 0b100, 0]
    assert not holding.attach("x", "1", 3)  # sealed


def test_a_copy_arriving_while_the_holders_claim_is_on_its_way_needs_no_claim():
    """Link a's claim of "x" is in flight when link b's copy arrives: a holds x from before its
    claim, so b attaches and a's commit marks b's link (b claimed nothing)."""
    forwarder, store, sink, _ = make(pending_timeout=30.0)
    gate, entered, claims = threading.Event(), threading.Event(), []
    claim = store.claim

    def slow_claim(link, *args, **kwargs):
        claims.append(link)
        if link == "a":
            entered.set()
            assert gate.wait(10.0)
        return claim(link, *args, **kwargs)

    store.claim = slow_claim
    results: dict[str, list[str]] = {}
    batch = [Item("x", "1", Record(value=b"x")), Item("y", "1", Record(value=b"y"))]
    a = threading.Thread(target=lambda: results.update(a=forwarder.forward("a", batch[:1])))
    a.start()
    assert entered.wait(10.0)
    b = threading.Thread(target=lambda: results.update(b=forwarder.forward("b", batch)))
    b.start()
    time.sleep(0.3)
    gate.set()
    a.join(10.0)
    b.join(10.0)
    assert results == {"a": ["first"], "b": ["duplicate", "first"]}
    assert claims == ["a", "b"]  # b claimed only y, which a did not carry
    assert store.masks == {"x": 0b11, "y": 0b10}
    assert [r.value for r in sink.got] == [b"x", b"y"] and forwarder.held.held == {}

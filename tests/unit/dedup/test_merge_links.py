"""MergeLoop.forward: a polled batch's links forward at once, so copies in one batch meet."""

import gevent
import gevent.event
import pytest

from ddc.protocol.record import Record
from dedup_service import held as held_module
from dedup_service.errors import SinkFailed
from dedup_service.forwarder import Item
from dedup_service.merger import MergeLoop
from tests.unit.dedup.test_forwarder import make


def loop_over(forwarder):
    """A MergeLoop with only what forward() uses (no consumer, no config)."""
    loop = MergeLoop.__new__(MergeLoop)
    loop.forwarder, loop.metrics = forwarder, forwarder.metrics
    return loop


@pytest.fixture
def hub_claims(monkeypatch):
    """The service's world: one gevent hub, its events, a Redis round trip that yields."""
    monkeypatch.setattr(held_module, "Settled", gevent.event.Event)
    forwarder, store, sink, _ = make(pending_timeout=30.0)
    claims: list[tuple[str, list[str]]] = []
    claim = store.claim

    def round_trip(link, ids, *args, **kwargs):
        claims.append((link, list(ids)))
        gevent.sleep(0.01)
        return claim(link, ids, *args, **kwargs)

    store.claim = round_trip
    return forwarder, store, sink, claims


@pytest.fixture
def gated_claims(monkeypatch):
    """As hub_claims, but each claim's round trip lasts until the test opens its gate: the order
    of events is the test's, not the timers' (a loaded machine fires several in one turn)."""
    monkeypatch.setattr(held_module, "Settled", gevent.event.Event)
    forwarder, store, sink, _ = make(pending_timeout=30.0)
    gates: list[tuple[str, list[str], gevent.event.Event]] = []
    claim = store.claim

    def round_trip(link, ids, *args, **kwargs):
        gate = gevent.event.Event()
        gates.append((link, list(ids), gate))
        gate.wait()
        return claim(link, ids, *args, **kwargs)

    store.claim = round_trip
    return forwarder, store, sink, gates


def batch(*idents):
    return [Item(ident, "1", Record(value=ident.encode())) for ident in idents]


def test_copies_polled_together_claim_once_and_both_links_are_marked(hub_claims):
    forwarder, store, sink, claims = hub_claims
    loop_over(forwarder).forward({"a": batch("x", "y"), "b": batch("x", "y", "z")})
    assert claims == [("a", ["x", "y"]), ("b", ["z"])]  # b's x and y rode on a's commit
    assert store.masks == {"x": 0b11, "y": 0b11, "z": 0b10}
    assert sorted(r.value for r in sink.got) == [b"x", b"y", b"z"]
    assert forwarder.held.held == {}


def test_a_failing_link_fails_the_batch_after_the_other_link_settled(hub_claims):
    forwarder, store, sink, claims = hub_claims
    sink.fail_with = SinkFailed("down")
    with pytest.raises(SinkFailed):
        loop_over(forwarder).forward({"a": batch("x"), "b": batch("y")})
    assert forwarder.held.held == {}
    assert [r.value for r in sink.got] == [b"y"] and store.claims["y"][0] == "C"
    assert "x" not in store.claims  # released: read again, it goes through


def test_a_copy_looks_again_after_waiting_and_rides_on_a_batch_that_began_meanwhile(gated_claims):
    """b's batch carries x and y: it waits on a's batch holding x; meanwhile a's next batch
    takes y. After the wait b finds y held and rides on that batch too: b claims nothing."""
    forwarder, store, sink, gates = gated_claims
    waits = forwarder.metrics.pending_waits._value.get
    a1 = gevent.spawn(forwarder.forward, "a", batch("x"))
    gevent.idle()  # a1 holds x, its claim on its way
    b = gevent.spawn(forwarder.forward, "b", batch("x", "y"))
    gevent.idle()  # b waits on a1's holding
    a2 = gevent.spawn(forwarder.forward, "a", batch("y"))
    gevent.idle()  # a2 holds y, its claim on its way
    assert [(link, ids) for link, ids, _ in gates] == [("a", ["x"]), ("a", ["y"])]
    gates[0][2].set()
    gevent.idle()  # a1 committed x with b's bit; b looked again and waits on a2's holding of y
    assert a1.ready() and not b.ready() and waits() == 1
    gates[1][2].set()
    gevent.joinall([a1, b, a2], raise_error=True)
    assert b.value == ["duplicate", "duplicate"]
    assert waits() == 2  # x and y, each counted once
    assert len(gates) == 2  # b claimed nothing
    assert store.masks == {"x": 0b11, "y": 0b11}
    assert sorted(r.value for r in sink.got) == [b"x", b"y"]

"""Filters, pacing, queues, link state, units (no sockets)."""

from __future__ import annotations

import json

import gevent
import pytest

from ddc import units
from ddc.egress.link import LinkState
from ddc.ingress import pacing
from ddc.ingress.filters import (
    FilterChain,
    JsonSchemaFilter,
    KeywordFilter,
    MaxSizeFilter,
    RegexFilter,
)
from ddc.ingress.pacing import TokenBucket
from ddc.metrics import IngressMetrics
from ddc.protocol.record import Record
from ddc.queues import CostQueue


def test_filter_chain_drops_and_counts():
    metrics = IngressMetrics()
    chain = FilterChain(
        [
            KeywordFilter(["SECRET"]),
            RegexFilter(r"^\d{4}-\d{4}$"),
            MaxSizeFilter(10),
            JsonSchemaFilter({"type": "object", "required": ["id"]}),
        ],
        metrics,
    )
    items = [
        b'{"id": 1}',
        b"my SECRET",
        b"1234-5678",
        b'{"id": 1234567}',
        b'{"x": 1}',
        Record(b'{"id":2}'),
    ]
    kept = chain.apply(items)
    assert kept == [b'{"id": 1}', items[5]]
    value = metrics.registry.get_sample_value
    assert value("ddc_ingress_records_filtered_total", {"filter": "keyword"}) == 1
    assert value("ddc_ingress_records_filtered_total", {"filter": "regex"}) == 1
    assert value("ddc_ingress_records_filtered_total", {"filter": "max_size"}) == 1
    assert value("ddc_ingress_records_filtered_total", {"filter": "json_schema"}) == 1


def test_keyword_case_insensitive_and_regex_keep():
    assert KeywordFilter(["secret"], case_sensitive=False).rejects(b"TOP SECRET")
    keep = RegexFilter("^ok", action="keep")
    assert keep.rejects(b"ok fine") is None and keep.rejects(b"not ok")
    assert JsonSchemaFilter({"type": "object"}).rejects(b"\xff") is not None


class FakeClock:
    """time.monotonic() and gevent.sleep() for the token bucket: a sleep advances the clock by
    what was asked plus `oversleep` (gevent's timers are ~1 ms coarse)."""

    def __init__(self, oversleep: float) -> None:
        self.now = 0.0
        self.oversleep = oversleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.oversleep


@pytest.mark.parametrize("oversleep", [0.0, 0.001])
@pytest.mark.parametrize("rate_bits", [8e6, 80e6, 1e9])
def test_token_bucket_keeps_the_rate_whatever_the_sleep_granularity(
    monkeypatch, rate_bits, oversleep
):
    # simulated time: the rule, not this machine's scheduler, is under test (a timed version of
    # this test failed under load)
    clock = FakeClock(oversleep)
    monkeypatch.setattr(pacing, "time", clock)
    monkeypatch.setattr(pacing, "gevent", clock)
    bucket = TokenBucket(rate_bits)
    packet = 65507 if rate_bits > 1e7 else 1472
    sent = 0
    while clock.now < 1.0 and sent < rate_bits:  # (a bucket that never sleeps ends the loop too)
        bucket.take(packet)
        sent += packet
    assert clock.now >= 1.0, f"{sent} bytes without a second of pacing"
    achieved = (sent - bucket.burst) * 8 / clock.now  # the initial full bucket is free
    assert achieved == pytest.approx(rate_bits, rel=0.01)


def test_cost_queue_blocks_and_admits_an_oversized_item_when_empty():
    queue = CostQueue(10)
    assert queue.put_nowait("a", 8)
    assert not queue.put_nowait("b", 8)
    getter = gevent.spawn_later(0.05, queue.get)
    assert queue.put("b", 8, timeout=1)
    assert getter.get() == "a"
    assert queue.get() == "b"
    assert queue.put_nowait("huge", 1000)
    with pytest.raises(TimeoutError):
        gevent.with_timeout(1, lambda: (queue.get(), queue.get(timeout=0.01)))


def test_link_state_pins_refuses_and_releases():
    from ddc.protocol.wire import MessageType

    startup, data = MessageType.STARTUP, MessageType.DATA_FIRST
    link = LinkState(heartbeat_timeout=2.0)
    a, b, c = ("10.0.0.1", 1000), ("10.0.0.2", 1000), ("10.0.0.3", 1000)
    assert link.may_pin(a, 0.0, data)  # a fresh egress takes the first sender
    link.pin(a, 0.0)
    link.heard(0.0)
    assert not link.may_pin(b, 1.0, data)  # a is alive
    assert not link.may_pin(b, 1.0, startup)  # refused too, but remembered: a restart on a new port
    assert link.check_timeout(2.5) and not link.up
    assert not link.may_pin(c, 2.5, data)  # never sent a StartUp: cannot hijack the silent link
    assert link.may_pin(b, 2.5, data)  # its StartUp was refused while a held the link
    assert link.may_pin(c, 2.5, startup)
    link.pin(b, 2.6)
    link.heard(2.6)
    link.shutdown()
    assert link.down_reason == "shutdown"
    assert link.may_pin(c, 2.7, startup) and not link.may_pin(c, 2.7, data)


def test_expected_sender_is_the_only_one():
    assert LinkState(5.0, "localhost:7").expected == ("127.0.0.1", 7)  # names resolve once
    link = LinkState(5.0, "10.0.0.1:0")
    assert link.allowed(("10.0.0.1", 4242)) and not link.allowed(("10.0.0.9", 4242))
    strict = LinkState(5.0, "10.0.0.1:33333")
    assert strict.allowed(("10.0.0.1", 33333)) and not strict.allowed(("10.0.0.1", 1))


def test_units():
    assert units.parse_size("64KiB") == 65536 and units.parse_size(10) == 10
    assert units.parse_rate("1Gbit") == 1e9 and units.parse_rate("10Mbps") == 1e7
    assert units.parse_duration("250ms") == 0.25 and units.parse_duration("24h") == 86400
    assert units.parse_hostport("[::1]:80") == ("::1", 80)
    for bad in ("1 parsec", True, -1):
        with pytest.raises(ValueError):
            units.parse_size(bad)
    json.dumps(units.format_hostport(("::1", 80)))


def test_unjudgeable_records_are_rejected_not_crashing():
    metrics = IngressMetrics()
    chain = FilterChain([JsonSchemaFilter({"type": "array"})], metrics)
    assert chain.apply([b"[" * 100000, b"[1]"]) == [b"[1]"]
    assert (
        metrics.registry.get_sample_value(
            "ddc_ingress_records_filtered_total", {"filter": "json_schema"}
        )
        == 1
    )


def test_a_silent_link_follows_a_sender_whose_second_heartbeat_comes_from_a_new_address():
    """A restarted relay (or NAT rebinding) moves the ingress's packets to a new source address;
    that ingress never says StartUp again, so two HeartBeats must be enough once the old
    address has gone silent, and never while it is alive."""
    from ddc.protocol.wire import MessageType

    heartbeat, data = MessageType.HEARTBEAT, MessageType.DATA
    link = LinkState(heartbeat_timeout=2.0)
    old, new, other = ("10.0.0.1", 1000), ("10.0.0.1", 2000), ("10.0.0.3", 1000)
    link.pin(old, 0.0)
    link.heard(0.0)
    assert not link.may_pin(new, 1.0, heartbeat) and not link.may_pin(new, 1.5, heartbeat)
    assert link.check_timeout(2.5)
    assert not link.may_pin(new, 2.5, data)  # data alone never takes over
    assert not link.may_pin(new, 2.6, heartbeat)  # the first HeartBeat is remembered...
    assert not link.may_pin(other, 2.7, heartbeat)  # ...by address: another one starts over
    assert not link.may_pin(new, 2.8, heartbeat)
    assert link.may_pin(new, 3.6, heartbeat)  # the second one in a row from it takes over
    link.pin(new, 3.6)
    assert link.heartbeat_from is None and link.pinned == new

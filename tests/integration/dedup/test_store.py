"""store.Store semantics against a real Redis: pending/commit/release, leases, divergence pops."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from dedup_service import lua
from dedup_service.redis_client import connect
from dedup_service.store import Store
from tests.integration.dedup.conftest import run_together


@pytest.fixture
def store(redis_url):
    return Store(
        connect(redis_url),
        prefix="s" + uuid.uuid4().hex[:8],
        window=60,
        pending_timeout=0.3,
    )


def test_concurrent_claims_from_threads_exactly_one_first(redis_url, store):
    ids = [f"id-{i}" for i in range(10_000)]
    results = {}

    def run(link):
        own = Store(connect(redis_url), prefix=store.prefix, window=60, pending_timeout=30)
        codes = []
        for start in range(0, len(ids), 1000):
            codes += own.claim(
                link, ids[start : start + 1000], [""] * 1000, own.new_token(), pending=False
            )
        results[link] = codes

    run_together([threading.Thread(target=run, args=(link,)) for link in ("a", "b")], 120)
    for index in range(len(ids)):
        assert sorted((results["a"][index], results["b"][index])) == [lua.FIRST, lua.DUPLICATE]


def test_pending_commit_release_and_lease(store):
    mine, other = store.new_token(), store.new_token()
    assert store.claim("a", ["x", "y"], ["f", "f"], mine, pending=True) == [lua.FIRST, lua.FIRST]
    assert store.claim("a", ["x"], ["f"], mine, pending=True) == [lua.FIRST]  # idempotent retry
    assert store.claim("b", ["x", "y"], ["f", "g"], other, pending=True) == [
        lua.PENDING,
        lua.CONFLICT,
    ]
    assert store.lookup("x").state == "pending"
    assert store.release(["y"], other) == 0  # not its claim
    assert store.release(["y"], mine) == 1
    assert store.lookup("y") is None
    assert store.commit("a", ["x"], ["f"], mine) == [lua.COMMITTED]
    claim = store.lookup("x")
    assert (
        claim.state == "committed" and claim.links_mask == 0b11 and 59_000 < claim.ttl_ms <= 60_000
    )
    assert store.claim("b", ["x"], ["f"], other, pending=True) == [lua.DUPLICATE]
    assert store.commit("a", ["x"], ["f"], mine) == [lua.ALREADY_COMMITTED]

    assert store.claim("a", ["z"], ["f"], mine, pending=True) == [lua.FIRST]
    time.sleep(0.4)  # the pending lease (0.3 s) expires: the other copy may take it, and is
    # told that the first holder neither committed nor released it (a possible re-forward)
    assert store.claim("b", ["z"], ["f"], other, pending=True) == [lua.REFORWARD]
    assert store.commit("a", ["z"], ["f"], mine) == [lua.HELD_BY_OTHER]
    # a committed claim keeps no claim time, a released one is gone
    assert store.claim("a", ["w", "v"], ["f", "f"], mine, pending=True) == [lua.FIRST] * 2
    assert store.release(["w"], mine) == 1
    assert store.commit("a", ["v"], ["f"], mine) == [lua.COMMITTED]
    assert store.claim("b", ["w"], ["f"], other, pending=True) == [lua.FIRST]
    assert store.forward_marks(["v"]) == [None]


def test_a_lease_taken_over_keeps_the_first_claims_time_and_both_links(store):
    first, second = store.new_token(), store.new_token()
    assert store.claim("a", ["q"], ["f"], first, pending=True, now_ms=1_000_000) == [lua.FIRST]
    assert store.lookup("q").state == "pending" and store.lookup("q").ttl_ms <= 300
    assert store.claim("b", ["q"], ["f"], second, pending=True) == [lua.PENDING]  # lease runs
    time.sleep(0.4)
    assert store.claim("b", ["q"], ["f"], second, pending=True, now_ms=2_000_000) == [lua.REFORWARD]
    assert store.forward_marks(["q"]) == [1_000_000]
    assert store.claim("a", ["q"], ["g"], first, pending=True) == [lua.CONFLICT]
    assert store.commit("b", ["q"], ["f"], second) == [lua.COMMITTED]
    claim = store.lookup("q")
    bits = {name: bit for bit, name in store.links().items()}
    assert claim.state == "committed" and claim.first_index == bits["b"]
    assert claim.links_mask == 1 << bits["a"] | 1 << bits["b"]
    assert store.forward_marks(["q"]) == [None]


def test_a_one_phase_claim_commits_a_lease_that_ended(store):
    assert store.claim("a", ["o"], ["f"], store.new_token(), pending=True) == [lua.FIRST]
    time.sleep(0.4)
    assert store.claim("b", ["o"], ["f"], store.new_token(), pending=False) == [lua.FIRST]
    assert store.lookup("o").state == "committed"


def test_commit_recreates_a_claim_redis_lost(store):
    token = store.new_token()
    assert store.commit("a", ["lost"], ["f"], token) == [lua.COMMITTED]
    assert store.lookup("lost").state == "committed"


def test_a_commit_marks_the_links_of_the_copies_that_waited_on_it(store):
    """extra_links: the bits of the links whose copies waited in the committing process ride
    on the commit wherever it leaves the claim committed, never on another holder's claim."""
    bits = {link: store.link_bit(link) for link in ("a", "b", "c")}
    mine, other = store.new_token(), store.new_token()
    b_and_c = 1 << bits["b"] | 1 << bits["c"]
    store.claim("a", ["p", "done"], ["f", "f"], mine, pending=True)
    assert store.commit("a", ["done"], ["f"], mine) == [lua.COMMITTED]
    store.claim("b", ["held"], ["f"], other, pending=True)
    codes = store.commit(
        "a",
        ["p", "done", "lost", "held"],
        ["f"] * 4,
        mine,
        [1 << bits["b"], b_and_c, b_and_c, 0b111],
    )
    assert codes == [lua.COMMITTED, lua.ALREADY_COMMITTED, lua.COMMITTED, lua.HELD_BY_OTHER]
    masks = {ident: store.lookup(ident).links_mask for ident in ("p", "done", "lost", "held")}
    a = 1 << bits["a"]
    assert masks == {
        "p": a | 1 << bits["b"],
        "done": a | b_and_c,
        "lost": a | b_and_c,
        "held": 1 << bits["b"],
    }
    assert store.lookup("done").ttl_ms > 59_000  # marking a committed claim keeps its TTL
    assert store.lookup("held").state == "pending"


def test_divergence_pop_is_once_and_names_only_ids_a_link_lacks(store):
    now = int(time.time() * 1000)
    store.claim(
        "a", ["both", "only-a"], ["", ""], store.new_token(), pending=False, now_ms=now - 5000
    )
    store.claim("b", ["both"], [""], store.new_token(), pending=False, now_ms=now - 5000)
    store.claim("a", ["recent"], [""], store.new_token(), pending=False, now_ms=now)
    store.claim("a", ["gone"], [""], store.new_token(), pending=False, now_ms=now - 5000)
    store.client.delete(store.key("gone"))
    bits = {name: bit for bit, name in store.links().items()}
    every = 1 << bits["a"] | 1 << bits["b"]
    popped, diverged = store.pop_due(now - 1000, every)
    assert popped == 3
    assert sorted(diverged) == [("gone", None), ("only-a", 1 << bits["a"])]
    assert store.pop_due(now - 1000, every) == (0, [])
    # a second is due once it has ended: `recent` only after its second's last millisecond
    assert store.pop_due(now + 1000, every) == (1, [("recent", 1 << bits["a"])])
    assert store.pop_due(now + 1000, every) == (0, [])
    assert not store.client.keys(store.prefix + ":*:d*")


def test_only_ids_committed_without_every_links_copy_are_listed_for_the_sweep(store):
    """Listed at commit, in the commit's second: not the id whose other copy attached (both
    links marked by the commit), the one committed before its other copy came, judged later."""
    now = int(time.time() * 1000) - 5000
    store.link_bit("a"), store.link_bit("b")  # both links have carried records before
    bits = {name: bit for bit, name in store.links().items()}
    token = store.new_token()
    store.claim("a", ["met", "late", "alone"], ["f"] * 3, token, pending=True, now_ms=now - 9000)
    extra = [1 << bits["b"], 0, 0]
    assert (
        store.commit("a", ["met", "late", "alone"], ["f"] * 3, token, extra, now_ms=now)
        == [lua.COMMITTED] * 3
    )
    assert store.claim("b", ["late"], ["f"], store.new_token(), pending=True) == [lua.DUPLICATE]
    every = 1 << bits["a"] | 1 << bits["b"]
    assert store.pop_due(now - 5000, every) == (0, [])  # nothing listed at the claim's second
    assert store.pop_due(now + 1000, every) == (2, [("alone", 1 << bits["a"])])
    assert not store.client.keys(store.prefix + ":*:d*")


def test_divergence_pops_a_big_second_in_parts(store):
    from dedup_service.store import POP_LIMIT
    from dedup_service.store_wire import shard_of

    now = int(time.time() * 1000) - 5000
    candidates = (f"big-{i}" for i in range(10**6))
    ids = [ident for ident in candidates if shard_of(ident) == 7][: POP_LIMIT * 5 // 2]
    store.claim("a", ids, [""] * len(ids), store.new_token(), pending=False, now_ms=now)
    bits = {name: bit for bit, name in store.links().items()}
    seen = []
    while True:
        popped, diverged = store.pop_due(now + 1000, 1 << bits["a"])
        seen.append(popped)
        assert diverged == []  # judged against link a alone
        if popped == 0:
            break
    assert seen == [POP_LIMIT, POP_LIMIT, POP_LIMIT // 2, 0]


def test_unicode_and_odd_ids(store):
    odd = ["ü/ß", 'q"uote', "new\nline", "nul\x00byte", "emoji 😀", "b64:/wA=", "x" * 1024]
    token = store.new_token()
    assert store.claim("a", odd, [""] * len(odd), token, pending=True) == [lua.FIRST] * len(odd)
    assert store.commit("a", odd, [""] * len(odd), token) == [lua.COMMITTED] * len(odd)
    assert all(store.lookup(ident).state == "committed" for ident in odd)
    assert store.claim("b", odd, [""] * len(odd), store.new_token(), pending=False) == [
        lua.DUPLICATE
    ] * len(odd)


def test_a_batch_of_several_script_calls_answers_in_input_order(store):
    """Past store.CALL_IDS ids a standalone claim is several calls: each id keeps its answer."""
    from dedup_service.store import CALL_IDS

    old = [f"old-{i}" for i in range(CALL_IDS)]
    store.claim("a", old, ["f"] * len(old), store.new_token(), pending=False)
    new = [f"new-{i}" for i in range(CALL_IDS)]
    mixed = [ident for pair in zip(new, old, strict=True) for ident in pair]
    fps = ["g" if ident.startswith("old-1") else "f" for ident in mixed]  # content changed
    expected = [
        lua.FIRST if ident.startswith("new") else lua.CONFLICT if fp == "g" else lua.DUPLICATE
        for ident, fp in zip(mixed, fps, strict=True)
    ]
    token = store.new_token()
    assert store.claim("b", mixed, fps, token, pending=True) == expected
    firsts = [ident for ident in mixed if ident.startswith("new")]
    assert store.commit("b", firsts, ["f"] * len(firsts), token) == [lua.COMMITTED] * len(firsts)


def test_reachable_answers_from_recent_calls_and_pings_only_when_they_are_stale(
    redis_url, tmp_path
):
    """/healthz under load: a Redis answer to any call in the last HEALTH_FRESH s stands for
    reachability (no PING queued behind the claim scripts); stale, it pings; down, it says so."""
    from dedup_service.embedded import EmbeddedRedis
    from dedup_service.store import HEALTH_FRESH

    own = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    try:
        store = Store(connect(own.url), prefix="r", window=60, pending_timeout=30)
        info = connect(own.url)

        def pings() -> int:
            return int(info.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))

        store.claim("a", ["x"], ["f"], store.new_token(), pending=False)
        before = pings()
        assert all(store.reachable() for _ in range(100))
        assert pings() == before
        time.sleep(HEALTH_FRESH + 0.1)
        assert store.reachable() and pings() == before + 1
        own.stop()
        assert store.reachable()  # the ping just now is recent: at most HEALTH_FRESH s stale
        time.sleep(HEALTH_FRESH + 0.1)
        assert store.reachable() is False
    finally:
        own.cleanup()

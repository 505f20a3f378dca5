from dedup_service.store_wire import SHARDS, parse_claim, rows, scatter, shard_of


def test_parse_claim():
    claim = parse_claim(b"C|3|0|abcd|", 5000)
    assert (claim.state, claim.links_mask, claim.first_index, claim.fingerprint) == (
        "committed",
        3,
        0,
        "abcd",
    )
    assert parse_claim(b"P|1|0||tok", -2).state == "pending"
    assert parse_claim(b"P|1|0||tok", -2).ttl_ms == 0
    assert parse_claim(b"garbage", 1) is None


def test_shards_are_stable_and_spread():
    assert shard_of("order-1") == shard_of("order-1")
    assert len({shard_of(f"id-{i}") for i in range(2000)}) == SHARDS


def test_rows_and_scatter():
    assert rows(["a", "b", "ü"], [["1", "2", "3"]], [2, 0]) == '["ü","3","a","1"]'.encode()
    assert rows(["a", "b"], [["1", "2"], [0, 6]], [1, 0]) == b'["b","2",6,"a","1",0]'
    groups = {5: [2, 0], 9: [1]}
    assert scatter(3, groups, [b"01", b"3"]) == [1, 3, 0]

"""Memory per remembered id, measured on a real Redis (MEMORY USAGE and INFO used_memory).

The figures are printed (pytest -s) and quoted in dedup_service/store.py. What a key costs
differs between servers (Valkey 9 vs Debian's Redis 7.0: 135 vs 215 B/id), so the bounds are
ratios to what the same server spends, in the same run, on a plain `SET key value PX ttl` of
the same key and value lengths (its own database): a claim should cost about one such key
(measured: 1.02 on Valkey, 1.10 on Redis 7.0), and one still in its divergence list a little
more (1.39 on Valkey; it was 1.83 in a sorted set per shard). The bounds catch an extra structure per id, or divergence entries
left behind, on any server.
"""

from __future__ import annotations

import time
import uuid

import redis

from dedup_service.embedded import EmbeddedRedis
from dedup_service.redis_client import connect
from dedup_service.store import Store

IDS = 100_000
TTL_MS = 86_400_000


def used(client: redis.Redis) -> int:
    return client.info("memory")["used_memory"]


def plain_keys_cost(url: str, ids: list[str], key_size: int, value_size: int) -> tuple[float, int]:
    """(used_memory per key, MEMORY USAGE of one key) for plain string keys with a TTL, one per
    id, in database 1 of the same server."""
    client = redis.Redis.from_url(url.rsplit("/", 1)[0] + "/1")
    keys = ["x" * (key_size - len(ident)) + ident for ident in ids]
    before = used(client)
    for start in range(0, len(keys), 5000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 5000]:
            pipe.set(key, b"v" * value_size, px=TTL_MS)
        pipe.execute()
    per_key = (used(client) - before) / len(keys)
    return per_key, client.memory_usage(keys[12345], samples=0)


def test_memory_per_id(tmp_path):
    with EmbeddedRedis(data_dir=tmp_path, appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        version = client.info("server")
        store = Store(connect(server.url), prefix="ddc", window=86400, pending_timeout=30)
        ids = [str(uuid.UUID(int=i)) for i in range(IDS)]  # 36 characters each
        store.link_bit("a")
        store.link_bit("b")
        before = used(client)
        for start in range(0, IDS, 5000):
            chunk = ids[start : start + 5000]
            fps = ["0123456789abcdef"] * len(chunk)
            token = store.new_token()
            store.claim("a", chunk, fps, token, pending=True)
            store.commit("a", chunk, fps, token)
            store.claim("b", chunk, fps, store.new_token(), pending=True)
        with_divergence = (used(client) - before) / IDS
        sample = store.key(ids[12345])
        key_bytes = client.memory_usage(sample, samples=0)
        value_size = len(client.get(sample))
        while store.pop_due(int(time.time() * 1000) + 1000, 0b11)[0]:
            pass
        claims_only = (used(client) - before) / IDS
        plain, plain_key_bytes = plain_keys_cost(server.url, ids, len(sample), value_size)
        print(
            f"\n{version.get('server_name', 'redis')} "
            f"{version.get('valkey_version', version['redis_version'])}, per id "
            f"(36-char ids): MEMORY USAGE of a claim {key_bytes} B (a plain key "
            f"{plain_key_bytes} B); used_memory {claims_only:.0f} B/id after the divergence "
            f"window, {with_divergence:.0f} B/id within it (a plain key {plain:.0f} B)"
        )
        assert key_bytes / plain_key_bytes < 1.4
        assert claims_only / plain < 1.4
        assert with_divergence / plain < 1.7

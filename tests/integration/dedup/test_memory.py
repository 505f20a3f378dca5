"""Memory per remembered id, measured on a real Redis (MEMORY USAGE and INFO used_memory).

The figures are printed (pytest -s) and quoted in dedup_service/store.py; the bounds only catch
a regression by a large factor.
"""

from __future__ import annotations

import time
import uuid

import redis

from dedup_service.embedded import EmbeddedRedis
from dedup_service.store import Store, connect

IDS = 100_000


def used(client):
    return client.info("memory")["used_memory"]


def test_memory_per_id(tmp_path):
    with EmbeddedRedis(data_dir=tmp_path, appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
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
        key_bytes = client.memory_usage(store.key(ids[12345]), samples=0)
        while store.pop_due(int(time.time() * 1000) + 1000):
            pass
        claims_only = (used(client) - before) / IDS
        print(
            f"\nper id (36-char ids): MEMORY USAGE of a claim {key_bytes} B; used_memory "
            f"{claims_only:.0f} B/id after the divergence window, {with_divergence:.0f} B/id within it"
        )
        assert key_bytes < 160
        assert claims_only < 200
        assert with_divergence < 400

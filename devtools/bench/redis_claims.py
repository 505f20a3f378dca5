"""`scripts/bench redis_claims`: Redis's CPU per record of the redundant pattern, against SET NX.

Redundant links hand every record to the dedup service twice. What Redis does for one record is
then: claim it pending for link a, commit it, claim it for link b (a duplicate); or, when both
copies meet in one service process (dedup_service/held.py), a claim for link a and a commit that
marks link b as well. This runs both patterns through dedup_service.store.Store for --records
records in batches of --batch against an embedded Valkey (AOF everysec, as the demo's; --no-aof:
none), and as the baseline, in the same run and on the same server, one pipelined
`SET key 1 NX PX window` per record: Redis's CPU (INFO cpu, user + system) per record for each,
and their ratio. No divergence sweep runs (records are judged
divergence_window after their claim: a minute, longer than a run).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from functools import partial

from dedup_service.embedded import EmbeddedRedis
from dedup_service.redis_client import RedisClient, connect
from dedup_service.store import Store

WINDOW_S = 86_400


def redis_cpu(client: RedisClient) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def per_record(client: RedisClient, records: int, run: Callable[[], None]) -> float:
    """Redis's CPU microseconds per record while `run` ran."""
    before = redis_cpu(client)
    run()
    return 1e6 * (redis_cpu(client) - before) / records


def claims(store: Store, prefix: str, records: int, batch: int) -> None:
    for start in range(0, records, batch):
        ids = [f"{prefix}-{index:09d}" for index in range(start, min(start + batch, records))]
        fingerprints = ["0123456789abcdef"] * len(ids)
        token = store.new_token()
        store.claim("a", ids, fingerprints, token, pending=True)
        store.commit("a", ids, fingerprints, token)
        store.claim("b", ids, fingerprints, store.new_token(), pending=True)


def attached(store: Store, prefix: str, records: int, batch: int) -> None:
    """Both copies meeting in one service process: link b's copy attaches to a's holding and
    a's commit marks b (dedup_service/held.py); b claims nothing."""
    b_bit = [1 << store.link_bit("b")] * batch
    for start in range(0, records, batch):
        ids = [f"{prefix}-{index:09d}" for index in range(start, min(start + batch, records))]
        fingerprints = ["0123456789abcdef"] * len(ids)
        token = store.new_token()
        store.claim("a", ids, fingerprints, token, pending=True)
        store.commit("a", ids, fingerprints, token, b_bit[: len(ids)])


def set_nx(client: RedisClient, prefix: str, records: int, batch: int) -> None:
    for start in range(0, records, batch):
        pipe = client.pipeline(transaction=False)
        for index in range(start, min(start + batch, records)):
            pipe.set(f"{prefix}-{index:09d}", b"1", nx=True, px=WINDOW_S * 1000)
        pipe.execute()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench redis_claims", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--records", type=int, default=100_000, help="records per round")
    parser.add_argument("--batch", type=int, default=300, help="records per claim call")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of each")
    parser.add_argument(
        "--no-aof", action="store_true", help="Redis without persistence (what the AOF costs)"
    )
    args = parser.parse_args(argv)
    data_dir = tempfile.mkdtemp(prefix="ddc-bench-claims-")
    with EmbeddedRedis(data_dir=data_dir, appendonly=not args.no_aof) as server:
        client = connect(server.url)
        store = Store(client, prefix="bench", window=WINDOW_S, pending_timeout=30)
        store.link_bit("a")
        store.link_bit("b")
        print(
            f"Redis CPU per record, {args.records:,} records a round, batches of {args.batch}, "
            f"appendonly {'no' if args.no_aof else 'yes'}:"
        )
        for round_ in range(args.rounds):
            raw = per_record(
                client, args.records, partial(set_nx, client, f"raw{round_}", args.records, 1000)
            )
            pattern = per_record(
                client, args.records, partial(claims, store, f"r{round_}", args.records, args.batch)
            )
            met = per_record(
                client,
                args.records,
                partial(attached, store, f"m{round_}", args.records, args.batch),
            )
            print(
                f"  round {round_}: claim a + commit + claim b {pattern:6.2f} us (ratio "
                f"{pattern / raw:.1f}), b attached to a {met:6.2f} us (ratio {met / raw:.1f}), "
                f"pipelined SET NX {raw:5.2f} us"
            )
    return 0

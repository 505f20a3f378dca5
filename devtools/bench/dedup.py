"""`scripts/bench dedup`: ids/s through the dedup service, against raw Redis in the same run.

1. baseline: redis-py pipelined `SET id 1 NX PX window`, in batches, from --clients threads;
2. POST /v1/claims batches to a `ddc-dedup serve` process, same ids count, batch and clients;
3. the Kafka merge loop: two input topics carrying the same --merge-records records each (a
   redundant pair), merged into one output topic (two-phase claims, Kafka sink with acks=all).

Every figure is printed with its ratio to the baseline. Real servers: an embedded Redis (AOF
everysec) and the Tansu Kafka broker, both started here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from dedup_service.embedded import EmbeddedRedis, free_port
from devtools.bench import pyspy, redis_profile
from devtools.harness import Process, python_argv, wait_progress, wait_until, write_toml

API_TOKEN = "bench-dedup-api-token-0123456789"
RD_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
CLIENTS = ("kafka-python", "librdkafka")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench dedup", description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=200_000, help="ids per measurement")
    parser.add_argument("--batch", type=int, default=5000, help="ids per request / pipeline")
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients")
    parser.add_argument(
        "--merge-records", type=int, default=20_000, help="records per link (0: skip)"
    )
    parser.add_argument(
        "--merge-clients",
        type=lambda text: text.split(","),
        default=["kafka-python/kafka-python", "librdkafka/librdkafka"],
        help="merge loop runs, each CONSUMER/SINK client ([dedup.merge] and [dedup.sink] client,"
        " kafka-python or librdkafka), comma-separated",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the merging service")
    parser.add_argument(
        "--merge-in-flight", type=int, help="[dedup.merge] max_in_flight (default: the service's)"
    )
    return parser.parse_args(argv)


def run_threads(count: int, target, *args) -> float:
    threads = [threading.Thread(target=target, args=(index, *args)) for index in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def baseline_set_nx(
    redis_url: str, ids: list[str], batch: int, clients: int, prefix: str = "raw:"
) -> float:
    import redis

    def work(index: int) -> None:
        client = redis.Redis.from_url(redis_url)
        mine = ids[index::clients]
        for start in range(0, len(mine), batch):
            pipe = client.pipeline(transaction=False)
            for ident in mine[start : start + batch]:
                pipe.set(prefix + ident, b"1", nx=True, px=86_400_000)
            pipe.execute()

    return len(ids) / run_threads(clients, work)


def start_service(
    tmp: Path, dedup: dict[str, Any], sink: dict[str, Any], merge: dict[str, Any] | None = None
) -> Process:
    """A `ddc-dedup serve` process with these tables (links a and b, the bench's API token
    unless `dedup` says otherwise), started."""
    port = free_port()
    token = tmp / "api.token"
    token.write_text(API_TOKEN + "\n")
    token.chmod(0o600)
    base = {"links": ["a", "b"], "api_token_file": str(token)}
    tables = {
        "dedup": {"http_listen": f"127.0.0.1:{port}", "log_level": "WARNING", **base, **dedup},
        "dedup.sink": sink,
    }
    if merge:
        tables["dedup.merge"] = merge
    config = write_toml(tmp / f"dedup-{port}.toml", tables)
    argv = python_argv("dedup_service.cli", "serve", "-c", str(config))
    return Process(f"dedup-{port}", argv, tmp, http_port=port).start(30)


def claims_through_api(port: int, ids: list[str], batch: int, clients: int) -> float:
    bodies: list[list[bytes]] = [[] for _ in range(clients)]
    for index in range(clients):
        mine = ids[index::clients]
        for start in range(0, len(mine), batch):
            body = {"link": "a", "ids": mine[start : start + batch]}
            bodies[index].append(json.dumps(body).encode())

    def work(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
        for body in bodies[index]:
            conn.request("POST", "/v1/claims", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"claims answered {response.status}: {data[:200]!r}")

    return len(ids) / run_threads(clients, work)


POLL = 0.2  # seconds between the merge loop's progress reads


def merge_loop(
    redis_server: EmbeddedRedis,
    tmp: Path,
    records: int,
    clients: tuple[str, str],
    profile: bool = False,
    in_flight: int | None = None,
) -> tuple[float, float]:
    """ids/s the loop took (from its first record to the last) and the unique records forwarded;
    `clients`: the merge loop's consumer client and the sink's producer client. Prints Redis's
    commandstats per unique record."""
    from kafka import KafkaProducer

    from devtools.embedded_kafka import FAST_GROUP_OPTIONS, EmbeddedKafka, create_topics

    with EmbeddedKafka() as broker:
        tag = uuid.uuid4().hex[:6]
        topics = {"a": f"out-a-{tag}", "b": f"out-b-{tag}"}
        create_topics(broker.bootstrap, *topics.values(), f"merged-{tag}", partitions=2)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
        for topic in topics.values():
            for i in range(records):
                producer.send(topic, value=b"v" * 100, headers=[("ddc-src", b"src/0/%d" % i)])
        producer.flush()
        producer.close()
        redis_profile.reset(redis_server)
        service = start_service(
            tmp,
            {"redis_url": redis_server.url, "key_prefix": f"m{tag}", "id_from": "source"},
            {
                "type": "kafka",
                "bootstrap_servers": broker.bootstrap,
                "topic": f"merged-{tag}",
                "client": clients[1],
            },
            {
                "bootstrap_servers": broker.bootstrap,
                "links": topics,
                "group_id": f"g{tag}",
                "client": clients[0],
                "options": FAST_GROUP_OPTIONS if clients[0] == "kafka-python" else RD_GROUP,
                **({"max_in_flight": in_flight} if in_flight else {}),
            },
        )
        try:
            expected = 2 * records
            first_seen: list[tuple[float, float]] = []  # (time, records) at the first progress

            profiles: dict[str, pyspy.Profile] = {}
            spy: threading.Thread | None = None

            def merged() -> bool:
                nonlocal spy
                done = service.metric("ddc_dedup_merge_records_total")
                if done and not first_seen:
                    first_seen.append((time.perf_counter(), done))
                    if profile and service.process is not None:
                        spy = pyspy.record_later({"dedup": service.process.pid}, 0.5, 4, profiles)
                return done >= expected

            # every poll renders the service's /metrics: 20 a second (wait_until's default) took
            # ~7 % of its CPU in py-spy; 5 a second leaves the timing error within +-0.2 s
            wait_until(merged, 300, interval=POLL, message="the merge loop to take every record")
            start_time, start_count = first_seen[0]
            rate_in = (expected - start_count) / max(time.perf_counter() - start_time, 1e-9)
            # first copies count as forwarded once the sink acknowledged them: a moment later
            forwarded = wait_progress(
                lambda: service.metric("ddc_dedup_records_forwarded_total"),
                lambda count: count >= records,
                timeout=60,
                quiet=2.0,
            )
            print(redis_profile.report(redis_server, records), file=sys.stderr)
            if spy is not None:
                spy.join(60)
                print(pyspy.report(profiles, 25), file=sys.stderr)
            return rate_in, forwarded
        finally:
            service.stop(15)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ddc-bench-dedup-"))
    ids = [str(uuid.uuid4()) for _ in range(args.ids)]
    print(
        f"dedup bench: {args.ids} ids, batches of {args.batch}, {args.clients} clients, "
        f"{os.cpu_count()} CPUs (Redis, service and clients share them)"
    )
    with EmbeddedRedis(data_dir=tmp / "redis") as redis_server:
        base = baseline_set_nx(redis_server.url, ids, args.batch, args.clients)
        print(f"  raw redis-py pipelined SET NX      {base:>10,.0f} ids/s   (baseline)")
        service = start_service(
            tmp,
            {"redis_url": redis_server.url, "key_prefix": "bench", "max_batch": args.batch},
            {"type": "file", "path": str(tmp / "out.bin")},
        )
        try:
            claims_through_api(
                service.port, [f"warm-{i}" for i in range(args.batch)], args.batch, 1
            )
            rate = claims_through_api(service.port, ids, args.batch, args.clients)
            print(
                f"  POST /v1/claims (first-wins, Lua)  {rate:>10,.0f} ids/s   ratio {rate / base:.2f}"
            )
            dup = claims_through_api(service.port, ids, args.batch, args.clients)
            print(
                f"  POST /v1/claims, all duplicates    {dup:>10,.0f} ids/s   ratio {dup / base:.2f}"
            )
        finally:
            service.stop(15)
        merged = []
        for pair in args.merge_clients if args.merge_records else ():
            consumer, _, sink = pair.partition("/")
            if consumer not in CLIENTS or sink not in CLIENTS:
                raise SystemExit(f"--merge-clients: {pair!r} is not CONSUMER/SINK of {CLIENTS}")
            rate_in, forwarded = merge_loop(
                redis_server,
                tmp,
                args.merge_records,
                (consumer, sink),
                args.profile,
                args.merge_in_flight,
            )
            merged.append((pair, rate_in, forwarded))
        if merged:
            # the baseline moved by up to 1.8x between runs: measured again after the merge
            # loops, the higher of the two is the one they are compared with
            again = baseline_set_nx(redis_server.url, ids, args.batch, args.clients, "raw2:")
            print(f"  raw redis-py pipelined SET NX again{again:>10,.0f} ids/s")
            best = max(base, again)
        for pair, rate_in, forwarded in merged:
            print(
                f"  merge loop ({pair}), 2 links x {args.merge_records} records "
                f"{rate_in:>10,.0f} ids/s   ratio {rate_in / best:.2f} to the higher "
                f"baseline ({forwarded:.0f} unique forwarded)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

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
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench dedup", description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=200_000, help="ids per measurement")
    parser.add_argument("--batch", type=int, default=5000, help="ids per request / pipeline")
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients")
    parser.add_argument(
        "--merge-records", type=int, default=20_000, help="records per link (0: skip)"
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


def baseline_set_nx(redis_url: str, ids: list[str], batch: int, clients: int) -> float:
    import redis

    def work(index: int) -> None:
        client = redis.Redis.from_url(redis_url)
        mine = ids[index::clients]
        for start in range(0, len(mine), batch):
            pipe = client.pipeline(transaction=False)
            for ident in mine[start : start + batch]:
                pipe.set("raw:" + ident, b"1", nx=True, px=86_400_000)
            pipe.execute()

    return len(ids) / run_threads(clients, work)


def start_service(tmp: Path, dedup: dict, sink: dict, merge: dict | None = None) -> tuple:
    from dedup_service.embedded import free_port, wait_for_port

    port = free_port()
    lines = ["[dedup]", f'http_listen = "127.0.0.1:{port}"', 'log_level = "WARNING"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in dedup.items()]
    lines += ["[dedup.sink]"] + [f"{k} = {json.dumps(v)}" for k, v in sink.items()]
    if merge:
        lines += ["[dedup.merge]"]
        for key, value in merge.items():
            if isinstance(value, dict):
                inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {inline} }}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    config = tmp / f"dedup-{port}.toml"
    config.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(tmp / f"dedup-{port}.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dedup_service.cli", "serve", "-c", str(config)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_port("127.0.0.1", port, 30, process)
    return process, port


def claims_through_api(port: int, ids: list[str], batch: int, clients: int) -> float:
    bodies = [[] for _ in range(clients)]
    for index in range(clients):
        mine = ids[index::clients]
        for start in range(0, len(mine), batch):
            body = {"link": "a", "ids": mine[start : start + batch]}
            bodies[index].append(json.dumps(body).encode())

    def work(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}
        for body in bodies[index]:
            conn.request("POST", "/v1/claims", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"claims answered {response.status}: {data[:200]!r}")

    return len(ids) / run_threads(clients, work)


def metric_total(port: int, name: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def merge_loop(redis_url: str, tmp: Path, records: int) -> tuple[float, float]:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from devtools.embedded_kafka import EmbeddedKafka

    with EmbeddedKafka() as broker:
        tag = uuid.uuid4().hex[:6]
        topics = {"a": f"out-a-{tag}", "b": f"out-b-{tag}"}
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic(t, 2, 1) for t in [*topics.values(), f"merged-{tag}"]])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
        for topic in topics.values():
            for i in range(records):
                producer.send(topic, value=b"v" * 100, headers=[("ddc-src", b"src/0/%d" % i)])
        producer.flush()
        producer.close()
        fast = {
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "max_poll_interval_ms": 10000,
        }
        process, port = start_service(
            tmp,
            {"redis_url": redis_url, "key_prefix": f"m{tag}", "id_from": "source"},
            {"type": "kafka", "bootstrap_servers": broker.bootstrap, "topic": f"merged-{tag}"},
            {
                "bootstrap_servers": broker.bootstrap,
                "links": topics,
                "group_id": f"g{tag}",
                "options": fast,
            },
        )
        try:
            expected = 2 * records
            first_seen = None
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                done = metric_total(port, "ddc_dedup_merge_records_total")
                now = time.perf_counter()
                if done and first_seen is None:
                    first_seen = (now, done)
                if done >= expected:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("merge loop did not finish")
            start_time, start_count = first_seen
            rate_in = (expected - start_count) / max(now - start_time, 1e-9)
            forwarded = metric_total(port, "ddc_dedup_records_forwarded_total")
            return rate_in, forwarded
        finally:
            process.terminate()
            process.wait(15)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from dedup_service.embedded import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp(prefix="ddc-bench-dedup-"))
    ids = [str(uuid.uuid4()) for _ in range(args.ids)]
    print(
        f"dedup bench: {args.ids} ids, batches of {args.batch}, {args.clients} clients, "
        f"{os.cpu_count()} CPUs (Redis, service and clients share them)"
    )
    with EmbeddedRedis(data_dir=tmp / "redis") as redis_server:
        base = baseline_set_nx(redis_server.url, ids, args.batch, args.clients)
        print(f"  raw redis-py pipelined SET NX      {base:>10,.0f} ids/s   (baseline)")
        process, port = start_service(
            tmp,
            {"redis_url": redis_server.url, "key_prefix": "bench", "max_batch": args.batch},
            {"type": "file", "path": str(tmp / "out.bin")},
        )
        try:
            claims_through_api(port, [f"warm-{i}" for i in range(args.batch)], args.batch, 1)
            rate = claims_through_api(port, ids, args.batch, args.clients)
            print(
                f"  POST /v1/claims (first-wins, Lua)  {rate:>10,.0f} ids/s   ratio {rate / base:.2f}"
            )
            dup = claims_through_api(port, ids, args.batch, args.clients)
            print(
                f"  POST /v1/claims, all duplicates    {dup:>10,.0f} ids/s   ratio {dup / base:.2f}"
            )
        finally:
            process.terminate()
            process.wait(15)
        if args.merge_records:
            rate_in, forwarded = merge_loop(redis_server.url, tmp, args.merge_records)
            print(
                f"  merge loop, 2 links x {args.merge_records} records {rate_in:>10,.0f} ids/s   "
                f"ratio {rate_in / base:.2f}  ({forwarded:.0f} unique forwarded)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`scripts/bench dedup_records`: the dedup service's CPU per posted record, POST /v1/records →
Kafka sink, for each Kafka client named (kafka-python, the old path, and librdkafka) in one run.

Each of --clients loader processes POSTs batches of --batch new 200-byte records (by default the
redundant bench's JSON records, id_from = "json:id"), every batch
twice (on link a, then on link b: the redundant pattern, so half the posted records are
duplicates), for --duration seconds. The service runs against an embedded Redis and the Tansu
broker, started here. Printed per client: posted and unique records/s, the service's CPU
seconds over the run, and CPU µs per posted record (the figure to cut); --profile adds the
service's py-spy top functions.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dedup_service.embedded import EmbeddedRedis
from devtools.bench import pyspy
from devtools.bench.common import cpu_seconds, print_table
from devtools.bench.dedup import API_TOKEN, start_service
from devtools.bench.redundant import record_maker
from devtools.harness import Process, python_argv, wait_progress

SIZE = 200
CLIENTS = ("kafka-python", "librdkafka")


def make_records(id_from: str, prefix: str) -> Callable[[int, int], list[dict[str, Any]]]:
    """records(first, count): `id` fields and random values, or (id_from json) values that are
    the redundant bench's JSON records, their id inside."""
    if id_from == "json":
        make = record_maker(prefix)
        return lambda first, count: [
            {"value": base64.b64encode(make(first + i)).decode()} for i in range(count)
        ]
    value = base64.b64encode(os.urandom(SIZE)).decode()
    return lambda first, count: [
        {"id": f"{prefix}-{first + i}", "value": value} for i in range(count)
    ]


def load(port: int, duration: float, batch: int, prefix: str, id_from: str) -> int:
    """POST each batch of new records on link a, then on link b, for `duration` seconds."""
    records_from = make_records(id_from, prefix)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
    sent = 0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        records = records_from(sent, batch)
        for link in ("a", "b"):
            body = json.dumps({"link": link, "records": records}).encode()
            connection.request("POST", "/v1/records", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"/v1/records answered {response.status}: {answer[:200]!r}")
        sent += batch
    print(json.dumps({"unique": sent}), flush=True)
    return 0


def measure(args: argparse.Namespace, work: Path, redis_url: str, client: str) -> dict[str, Any]:
    from devtools.embedded_kafka import EmbeddedKafka, create_topics

    tag = uuid.uuid4().hex[:6]
    with EmbeddedKafka() as broker:
        create_topics(broker.bootstrap, f"out-{tag}", partitions=2)
        sink = {"type": "kafka", "bootstrap_servers": broker.bootstrap, "topic": f"out-{tag}"}
        if client != "kafka-python":  # the default: this bench also runs on a tree without the key
            sink["client"] = client
        dedup = {"redis_url": redis_url, "key_prefix": f"r{tag}", "log_level": "WARNING"}
        dedup["id_from"] = "json:id" if args.id_from == "json" else "id"
        service = start_service(work, dedup, sink)
        try:
            assert service.process is not None
            pid = service.process.pid
            loaders = [
                Process(
                    f"load-{tag}-{index}",
                    python_argv(
                        "devtools.bench.dedup_records",
                        "load",
                        *("--port", str(service.port), "--duration", str(args.duration)),
                        *("--batch", str(args.batch), "--prefix", f"{tag}{index}"),
                        *("--id-from", args.id_from),
                    ),
                    work,
                ).start()
                for index in range(args.clients)
            ]
            cpu0, started = cpu_seconds(pid), time.monotonic()
            profiles = {}
            if args.profile:
                time.sleep(min(2.0, args.duration / 4))
                profiles = pyspy.record({f"dedup ({client})": pid}, args.duration / 2)
            for loader in loaders:
                loader.reap(args.duration + 120)
            elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu0
            posted = service.metric("ddc_dedup_records_received_total")
            forwarded = wait_progress(
                lambda: service.metric("ddc_dedup_records_forwarded_total"),
                lambda count: count * 2 >= posted,
                timeout=30,
                quiet=1.0,
            )
        finally:
            service.stop(15)
    if profiles:
        print(pyspy.report(profiles, 15))
    return {
        "client": client,
        "posted/s": round(posted / elapsed),
        "unique/s": round(forwarded / elapsed),
        "duplicated": int(max(0, forwarded * 2 - posted)),
        "cpu s": round(cpu, 1),
        "cpu %": round(100 * cpu / elapsed),
        "µs/posted": round(1e6 * cpu / max(posted, 1), 1),
        "load": round(os.getloadavg()[0], 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench dedup_records", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command")
    loader = sub.add_parser("load", help=argparse.SUPPRESS)
    loader.add_argument("--port", type=int, required=True)
    loader.add_argument("--duration", type=float, required=True)
    loader.add_argument("--batch", type=int, required=True)
    loader.add_argument("--prefix", required=True)
    loader.add_argument("--id-from", choices=("id", "json"), required=True)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per client")
    parser.add_argument("--clients", type=int, default=4, help="loader processes")
    parser.add_argument("--batch", type=int, default=500, help="records per POST")
    parser.add_argument(
        "--client",
        action="append",
        choices=CLIENTS,
        help="Kafka client of the sink (repeatable; default: both, kafka-python first)",
    )
    parser.add_argument(
        "--id-from",
        choices=("id", "json"),
        default="json",
        help="json (the redundant stack's): id_from = json:id, the id inside each JSON value; "
        "id: an `id` field beside a random value",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the service meanwhile")
    args = parser.parse_args(argv)
    if args.command == "load":
        return load(args.port, args.duration, args.batch, args.prefix, args.id_from)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ddc-bench-records-") as name:
        work = Path(name)
        with EmbeddedRedis(data_dir=work / "redis") as redis_server:
            for client in args.client or CLIENTS:
                rows.append(measure(args, work, redis_server.url, client))
    print(
        f"POST /v1/records x{args.clients} clients, batches of {args.batch} posted on links a "
        f"and b, {SIZE} B records, id_from {args.id_from}, Kafka sink (Tansu), "
        f"{os.cpu_count()} CPUs shared"
    )
    print_table(list(rows[0]), [list(row.values()) for row in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
